"""HV012: who the hub's login lets in, read from each environment's merged
values (common, env, secrets, as helm merges them), never run.

The logins the template renders (data/logins.yml: GitHub, CILogon, generic
OAuth/OIDC) are judged; any other authenticator a hand-made hub uses is left
alone. A finding is a hub that would let in anyone with an account at a
public provider, or nobody at all, or whose provider calls back to another
host than the environment's own:

- allow_all without anything narrowing it: on GitHub, CILogon's public
  identity providers (Google, GitHub, ORCID, Microsoft) and a generic OIDC
  provider (unless an extraConfig snippet sets `post_auth_hook`, which the
  template's email-domain rule does);
- no allow rule at all: oauthenticator 16+ lets in only admin_users then;
- a generic provider without `username_claim` (oauthenticator's default,
  `username`, is no OIDC claim: every login fails) or allowed_groups
  without manage_groups (oauthenticator refuses to start);
- an `oauth_callback_url` that is not https://<the environment's host>/hub/oauth_callback.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Any

from .. import load_data
from ..helm_values import Problem, coalesce
from ..logins import authenticator_classes
from .base import Helm, code, get_path, report
from .hub import Hub

CALLBACK = "https://{host}/hub/oauth_callback"


def _merged(hub: Hub, env: str) -> tuple[dict[str, Any], list[Any]]:
    merged: dict[str, Any] = {}
    layers = hub.values_layers(env)
    for f in layers:
        merged = coalesce(merged, f.data)
    return merged, layers


def _line(layers: list[Any], keys: list[str]) -> tuple[str, int | None]:
    """The last layer that sets ``keys`` (its label and line), else the
    nearest key above them in the first layer (common.yaml)."""
    for f in reversed(layers):
        if get_path(f.data, keys) is not None:
            return f.label, f.line_of(keys)
    return (layers[0].label, layers[0].line_of(keys)) if layers else ("config/common.yaml", None)


def _sets_post_auth_hook(snippets: object) -> bool:
    """Whether a hub.extraConfig snippet assigns c.Authenticator.post_auth_hook
    (or the class's own): read with ast, never run."""
    for source in snippets.values() if isinstance(snippets, dict) else ():
        try:
            tree = ast.parse(source) if isinstance(source, str) else None
        except SyntaxError:
            continue  # HV004's finding
        for node in ast.walk(tree) if tree else ():
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Attribute) and t.attr == "post_auth_hook" for t in node.targets
            ):
                return True
    return False


def _who(login: str, settings: dict[str, Any], hub_section: dict[str, Any]) -> Iterator[tuple[list[str], str]]:
    """(keys under hub.config.<class>, what is wrong) for the allow rules."""
    public = set(load_data("logins.yml")["cilogon"]["public_idps"].values())
    if login == "cilogon":
        idps = settings.get("allowed_idps") or settings.get("idps")
        if not isinstance(idps, dict) or not idps:
            yield ["allowed_idps"], "names no identity provider: CILogonOAuthenticator refuses to start"
            return
        for entity, idp in idps.items():
            if isinstance(idp, dict) and idp.get("allow_all") and str(entity) in public:
                yield (
                    ["allowed_idps", str(entity), "allow_all"],
                    f"lets in anyone with an account at {entity}: set its allowed_domains instead",
                )
        return
    allowed = settings.get("allow_all") or any(
        settings.get(key) for key in ("allowed_users", "allowed_organizations", "allowed_groups", "allowed_teams")
    )
    if login == "oidc":
        if not settings.get("username_claim") and not settings.get("username_key"):
            yield ["username_claim"], "is unset: oauthenticator's `username` is no OIDC claim, so every login fails"
        if settings.get("allowed_groups") and not settings.get("manage_groups"):
            yield ["allowed_groups"], "needs `manage_groups: true`: oauthenticator refuses to start without it"
        if settings.get("allow_all") and not _sets_post_auth_hook(hub_section.get("extraConfig")):
            yield ["allow_all"], "lets in anyone the provider knows: set allowed_groups, or an email-domain rule"
    elif login == "github" and settings.get("allow_all"):
        yield ["allow_all"], "lets in anyone with a GitHub account: set allowed_organizations instead"
    if not allowed:
        yield [], "has no allow rule (allowed_groups, allowed_organizations, allow_all): only admin_users log in"


class HV012(Helm):
    "The login lets in only the people the hub names, and calls back to the hub's own host"

    def run(self, hub: Hub) -> str:
        classes = authenticator_classes()
        problems: dict[tuple[str, int | None, str], list[str]] = {}  # common.yaml's finding once, with its envs
        for env in hub.environments:
            merged, layers = _merged(hub, env)
            for root, path in hub.chart_paths([("jupyterhub",)]):
                jupyterhub = get_path(merged, [*root, *path])
                section = get_path(jupyterhub, ["hub"]) if isinstance(jupyterhub, dict) else None
                if not isinstance(section, dict):
                    continue
                found = section.get("config")
                config: dict[str, Any] = found if isinstance(found, dict) else {}
                chosen = classes.get(str(get_path(config, ["JupyterHub", "authenticator_class"])))
                if chosen is None:
                    continue  # an authenticator the template does not render: not judged
                login, cls = chosen
                own = config.get(cls)
                settings: dict[str, Any] = own if isinstance(own, dict) else {}
                base = [*root, *path, "hub", "config", cls]
                for keys, what in _who(login, settings, section):
                    label, line = _line(layers, base + keys)
                    name = ".".join([cls, *keys])
                    problems.setdefault((label, line, f"{code(name)} {what}"), []).append(env)
                hosts = get_path(jupyterhub, ["proxy", "https", "hosts"])
                host = hosts[0] if isinstance(hosts, list) and hosts else None
                callback = settings.get("oauth_callback_url")
                wanted = CALLBACK.format(host=host) if isinstance(host, str) else None
                if wanted and callback != wanted:
                    label, line = _line(layers, [*base, "oauth_callback_url"])
                    what = f"{code(cls + '.oauth_callback_url')} is {callback!r}, not {code(wanted)}"
                    problems.setdefault((label, line, what), []).append(env)
        return report(
            Problem(label, line, f"{message} (in {', '.join(map(code, envs))}).")
            for (label, line, message), envs in problems.items()
        )


CHECKS = (HV012,)
