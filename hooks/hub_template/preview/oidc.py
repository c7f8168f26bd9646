"""The loopback OpenID Connect provider a preview of a generic-OIDC hub logs in
through, in place of the hub's real provider (unreachable from here).

It is oidc-provider-mock (the package index; `python -m oidc_provider_mock`):
a standards-following provider (discovery, authorization code with PKCE,
token, userinfo) that accepts any client and asks, on its authorization
page, which subject logs in. The preview gives it one user whose claims the
hub's own rules let in: its username claim is the smoke's user, its email is
of the hub's first allowed domain, its groups claim lists the first allowed
group. The hub's GenericOAuthenticator keeps everything else (overrides.OIDC_LOGIN).
"""

from __future__ import annotations

import ast
import json
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any

from hub_template.logins import authenticator_classes
from hub_template.preview import PreviewError
from hub_template.preview.processes import Processes, free_port

LOGIN_DOMAINS = "hub-template-login-domains"  # the template's email-domain snippet (config/common.yaml)


def generic_login(hub_section: dict[str, Any]) -> dict[str, Any] | None:
    """The hub's GenericOAuthenticator settings, when it logs in with one."""
    config = hub_section.get("config") or {}
    chosen = authenticator_classes().get(str((config.get("JupyterHub") or {}).get("authenticator_class")))
    if chosen is None or chosen[0] != "oidc":
        return None
    settings = config.get("GenericOAuthenticator")
    return dict(settings) if isinstance(settings, dict) else {}


def login_domains(hub_section: dict[str, Any]) -> list[str]:
    """The email domains of the template's email-domain snippet (LOGIN_DOMAINS
    = [...]), read with ast, never run."""
    source = (hub_section.get("extraConfig") or {}).get(LOGIN_DOMAINS)
    try:
        tree = ast.parse(source) if isinstance(source, str) else None
    except SyntaxError:
        return []
    for node in ast.walk(tree) if tree else ():
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "LOGIN_DOMAINS" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            return [str(d) for d in value] if isinstance(value, list) else []
    return []


def user_claims(settings: dict[str, Any], user: str, domains: list[str]) -> dict[str, Any]:
    """The claims of one user the hub's rules let in."""
    claim = settings.get("username_claim") or settings.get("username_key") or "username"
    if not isinstance(claim, str):
        raise PreviewError("the hub's GenericOAuthenticator.username_claim is a function: the preview needs a claim")
    domain = next((d.removeprefix("*.") for d in domains), "example.org")
    claims: dict[str, Any] = {"sub": user, "email": f"{user}@{domain}", "email_verified": True, claim: user}
    groups = sorted(settings.get("allowed_groups") or [])
    key = str(settings.get("auth_state_groups_key") or "oauth_user.groups")
    if groups and key.startswith("oauth_user."):
        claims[key.removeprefix("oauth_user.")] = groups[:1]
    return claims


def start(procs: Processes, work: Path, claims: dict[str, Any], callback: str) -> dict[str, str]:
    """Start the provider on a free loopback port; GenericOAuthenticator's
    traits that point the hub at it."""
    port = free_port()
    proc = procs.start(
        "oidc-provider",
        [
            sys.executable,
            "-m",
            "oidc_provider_mock",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--user-claims",
            json.dumps(claims),
        ],
        # Plain http on loopback: authlib refuses it unless told.
        {**os.environ, "AUTHLIB_INSECURE_TRANSPORT": "1"},
        work,
    )
    discovery = f"http://127.0.0.1:{port}/.well-known/openid-configuration"
    procs.wait_http("oidc-provider", proc, discovery, 60)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    with opener.open(discovery, timeout=10) as answer:
        endpoints = json.load(answer)
    return {
        "authorize_url": endpoints["authorization_endpoint"],
        "token_url": endpoints["token_endpoint"],
        "userdata_url": endpoints["userinfo_endpoint"],
        "oauth_callback_url": callback,
        "client_id": "hub-template-preview",
        "client_secret": "hub-template-preview",
    }
