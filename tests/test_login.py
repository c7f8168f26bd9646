"""How people log in (copier.yml's `login`): GitHub (the default), CILogon or
a generic OpenID Connect provider.

Each login is rendered, checked, and its merged hub.config (common, env,
secrets, as hubploy layers them; hub.extraConfig run as z2jh runs it) loaded
into the real oauthenticator class JupyterHub would load, which then decides
on a user the provider vouches for: only its HTTP calls to the provider are
replaced (get_token_info, token_to_user), the rest is oauthenticator's and
JupyterHub's own (username claim, allow rules, groups, post_auth_hook).
Each login on each cloud, through the federation's real chart (helm
template) and kubernetes-validate --strict: test_render_matrix.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from conftest import BIN, chart_data, render
from hub_cells import REAL_IDS, copy_hub
from test_check import edit, failures, line_of
from test_preview import needs_browser  # noqa: F401 - the fixture: Chromium and configurable-http-proxy

from hub_template.helm_values import coalesce

CILOGON = {
    "login": "cilogon",
    "cilogon_idps": ["google", "https://idp.uni.edu/idp/shibboleth"],
    "cilogon_domains": "uni.edu, ADA@lab.org",
    "admin_users": ["ada@uni.edu"],
}
OIDC_GROUPS = {
    "login": "oidc",
    # Pasted as the discovery document's URL: read as the issuer.
    "oidc_issuer": "https://my-lab.us.auth0.com/.well-known/openid-configuration",
    "oidc_username_claim": "nickname",
    "oidc_allowed_groups": "hub-users",
    "admin_users": ["ada"],
}
OIDC_DOMAINS = {
    "login": "oidc",
    "oidc_issuer": "sso.uni.edu/realms/hub/",
    "oidc_allowed_domains": "https://uni.edu/",
}
LOGINS = {"github": {}, "cilogon": CILOGON, "oidc-groups": OIDC_GROUPS, "oidc-domains": OIDC_DOMAINS}

# (claims the provider vouches for, let in?) per login.
PEOPLE: dict[str, list[tuple[dict[str, Any], bool]]] = {
    "cilogon": [
        ({"idp": "http://google.com/accounts/o8/id", "email": "ada@uni.edu"}, True),
        ({"idp": "http://google.com/accounts/o8/id", "email": "eve@gmail.com"}, False),
        ({"idp": "https://idp.uni.edu/idp/shibboleth", "email": "bob@lab.org"}, True),
    ],
    "oidc-groups": [
        ({"nickname": "ada", "groups": ["hub-users", "x"]}, True),
        ({"nickname": "eve", "groups": ["others"]}, False),
        ({"nickname": "mallory"}, False),
    ],
    "oidc-domains": [
        ({"preferred_username": "ada", "email": "ada@uni.edu", "email_verified": True}, True),
        ({"preferred_username": "eve", "email": "eve@uni.edu.evil.com"}, False),
        ({"preferred_username": "mal", "email": "mal@uni.edu", "email_verified": False}, False),
    ],
}

_hubs: dict[tuple[str, str], Path] = {}


def login_hub(template_repo: Path, tmp_path_factory, login: str, provider: str = "gcp") -> Path:
    """deployments/charlie rendered with this login (shared: copy it before changing it)."""
    key = (login, provider)
    if key not in _hubs:
        dst = tmp_path_factory.mktemp(f"login-{login}-{provider}") / "deployments" / "charlie"
        data = {**REAL_IDS, "cloud_provider": provider, "customise": True, **LOGINS[login]}
        _hubs[key] = render(template_repo, dst, **data)
    return _hubs[key]


def hub_values(hub: Path, env: str) -> dict[str, Any]:
    """The jupyterhub chart's values of ``env``, merged as helm merges hubploy's files."""
    merged: dict[str, Any] = {}
    for rel in ("config/common.yaml", f"config/{env}.yaml", f"secrets/{env}.yaml"):
        merged = coalesce(merged, yaml.safe_load((hub / rel).read_text()))
    return merged["daskhub"]["jupyterhub"]


def authenticator(hub: Path, env: str) -> Any:
    """The authenticator JupyterHub makes from the hub's values, as z2jh's
    jupyterhub_config.py loads them: hub.config as c.<Class>.<trait>, then
    hub.extraConfig's snippets, sorted by key."""
    from traitlets.config import Config

    hub_section = hub_values(hub, env)["hub"]
    c = Config()
    for cls, traits in hub_section["config"].items():
        for trait, value in traits.items():
            setattr(getattr(c, cls), trait, value)
    for key, source in sorted((hub_section.get("extraConfig") or {}).items()):
        exec(compile(source, f"hub.extraConfig.{key}", "exec"), {"c": c, "__name__": "__main__"})
    name = c.JupyterHub.authenticator_class
    (entry,) = entry_points(group="jupyterhub.authenticators", name=name)
    return entry.load()(config=c)


def log_in(auth: Any, claims: dict[str, Any]) -> dict[str, Any] | None:
    """JupyterHub's own login decision for a user whose provider returned
    ``claims``: only the two HTTP calls to the provider are replaced."""

    async def token_info(handler: object, params: dict[str, Any]) -> dict[str, Any]:
        assert params["redirect_uri"] == auth.oauth_callback_url
        return {"access_token": "token", "token_type": "Bearer", "scope": " ".join(auth.scope)}

    async def token_to_user(token: dict[str, Any]) -> dict[str, Any]:
        return dict(claims)

    class Callback:
        """The provider's redirect to /hub/oauth_callback, as tornado's handler reads it."""

        def get_argument(self, name: str, default: str | None = None) -> str | None:
            return {"code": "the-code"}.get(name, default)

        def get_state_cookie(self) -> str:
            # The state cookie the login handler set (PKCE's verifier in it).
            from oauthenticator.oauth2 import _serialize_state

            return _serialize_state({"state_id": "s", "code_verifier": "verifier"})

    auth.get_token_info = token_info
    auth.token_to_user = token_to_user
    return asyncio.run(auth.get_authenticated_user(Callback(), {"code": "the-code"}))


@pytest.mark.parametrize("login", LOGINS)
def test_each_login_renders_what_oauthenticator_accepts_and_passes_the_checker(template_repo, tmp_path_factory, login):
    hub = login_hub(template_repo, tmp_path_factory, login)
    assert failures(hub) == {}
    for env, host in (("staging", "staging.charlie.pangeo.io"), ("prod", "charlie.pangeo.io")):
        auth = authenticator(hub, env)
        assert auth.oauth_callback_url == f"https://{host}/hub/oauth_callback"
        # The client id and secret: the template's placeholders, in secrets/ only.
        assert auth.client_id.startswith("<hub-template placeholder: ")
        assert "client_secret" not in (hub / "config" / "common.yaml").read_text()
        for claims, let_in in PEOPLE.get(login, []):
            model = log_in(auth, claims)
            assert (model is not None) == let_in, (claims, model)
    kind = type(auth).__name__
    assert kind == {"github": "GitHubOAuthenticator", "cilogon": "CILogonOAuthenticator"}.get(
        login, "GenericOAuthenticator"
    )
    if login == "oidc-groups":
        # The issuer's conventions (Auth0's), from the pasted discovery URL.
        assert (auth.authorize_url, auth.token_url, auth.userdata_url) == (
            "https://my-lab.us.auth0.com/authorize",
            "https://my-lab.us.auth0.com/oauth/token",
            "https://my-lab.us.auth0.com/userinfo",
        )
        assert log_in(auth, {"nickname": "Ada", "groups": ["hub-users"]})["name"] == "ada"
    if login == "oidc-domains":
        assert auth.authorize_url == "https://sso.uni.edu/realms/hub/protocol/openid-connect/auth"
    if login == "cilogon":
        assert log_in(auth, PEOPLE["cilogon"][0][0])["name"] == "ada@uni.edu"
        assert log_in(auth, PEOPLE["cilogon"][0][0])["admin"] is True


def test_the_github_login_renders_as_before(template_repo, tmp_path_factory):
    """Existing hubs (no `login` answer) and new default ones render the same
    GitHub values, asked for nothing more."""
    hub = login_hub(template_repo, tmp_path_factory, "github")
    config = hub_values(hub, "prod")["hub"]["config"]
    assert config["JupyterHub"]["authenticator_class"] == "github"
    assert config["GitHubOAuthenticator"] == {
        "allowed_organizations": ["pangeo-data"],
        "scope": ["read:org"],
        "oauth_callback_url": "https://charlie.pangeo.io/hub/oauth_callback",
        "client_id": "<hub-template placeholder: github-oauth-client-id>",
        "client_secret": "<hub-template placeholder: github-oauth-client-secret>",
    }
    assert {"CILogonOAuthenticator", "GenericOAuthenticator"}.isdisjoint(config)


BREAKAGES = [
    # (login, file, pattern, replacement, marker of the line named, what the finding says)
    (
        "oidc-groups",
        "config/common.yaml",
        r'^          username_claim: "nickname"\n',
        "",
        "^        GenericOAuthenticator:",
        "`GenericOAuthenticator.username_claim` is unset",
    ),
    (
        "oidc-domains",
        "config/common.yaml",
        r"^        hub-template-login-domains: \|\n(^          .*\n|^\n)*",
        "",
        "allow_all: true",
        "`GenericOAuthenticator.allow_all` lets in anyone the provider knows",
    ),
    (
        "oidc-groups",
        "config/common.yaml",
        r"^          manage_groups: true\n",
        "",
        "allowed_groups:",
        "`GenericOAuthenticator.allowed_groups` needs `manage_groups: true`",
    ),
    (
        "cilogon",
        "config/common.yaml",
        r'^              allowed_domains: \["uni.edu", "lab.org"\]\n              allowed_domains_claim: email\n',
        "              allow_all: true\n",
        "allow_all: true",
        "lets in anyone with an account at http://google.com/accounts/o8/id",
    ),
    (
        "cilogon",
        "config/prod.yaml",
        r"https://charlie.pangeo.io/hub/oauth_callback",
        "https://staging.charlie.pangeo.io/hub/oauth_callback",
        "oauth_callback_url",
        "is 'https://staging.charlie.pangeo.io/hub/oauth_callback', not "
        "`https://charlie.pangeo.io/hub/oauth_callback` (in `prod`).",
    ),
]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda b: f"{b[0]}-{b[5][:40]}")
def test_a_login_that_lets_in_anyone_or_nobody_fails_hv012(template_repo, tmp_path_factory, tmp_path, breakage):
    login, rel, pattern, replacement, marker, says = breakage
    hub = copy_hub(login_hub(template_repo, tmp_path_factory, login), tmp_path)
    edit(hub / rel, pattern, replacement)
    failed = failures(hub)
    assert failed.keys() == {"HV012"}, failed
    message = failed["HV012"]
    assert f"`{rel}:{line_of(hub / rel, marker)}`" in message, message
    assert says in message, message
    assert len(message.splitlines()) == 1, message  # one finding, for every environment it holds in


REFUSALS = [
    ({"login": "cilogon", "cilogon_idps": "google", "cilogon_domains": ""}, "cilogon_domains", "needed"),
    ({"login": "cilogon", "cilogon_idps": "idp.uni.edu"}, "cilogon_idps", "'idp.uni.edu': not an EntityID"),
    ({"login": "cilogon", "admin_users": "octocat"}, "admin_users", "'octocat': not an email"),
    ({"login": "github", "admin_users": "ada@uni.edu"}, "admin_users", "'ada@uni.edu': not a GitHub user"),
    ({"admin_users": "ada@uni.edu"}, "admin_users", "'ada@uni.edu': not a GitHub user"),
    ({"login": "oidc", "oidc_issuer": "https://x.org", "oidc_allowed_domains": ""}, "oidc_allowed_domains", "uni.edu"),
    ({"login": "oidc", "oidc_issuer": "http://x.org", "oidc_allowed_groups": "a"}, "oidc_issuer", "not an https"),
    (
        {"login": "oidc", "oidc_issuer": "https://x.org", "oidc_allowed_groups": "a", "oidc_scope": "profile"},
        "oidc_scope",
        "'profile': add openid",
    ),
    (
        {
            "login": "oidc",
            "oidc_issuer": "https://x.org",
            "oidc_allowed_groups": "a",
            "gpu_size": True,
            "gpu_teams": "my-lab:gpu",
        },
        "gpu_teams",
        "teams need login github",
    ),
]


@pytest.mark.parametrize(("data", "question", "says"), REFUSALS, ids=lambda v: str(v)[:30])
def test_a_wrong_login_answer_is_refused_in_one_line(template_repo, tmp_path, data, question, says):
    with pytest.raises(ValueError) as refused:
        render(template_repo, tmp_path / "deployments" / "charlie", customise=True, **REAL_IDS, **data)
    (line,) = str(refused.value).splitlines()
    assert line.startswith(f"Validation error for question '{question}': "), line
    assert says in line, line
    assert len(line) <= 80, line


# --- every login on every cloud, through the federation's real chart ----------------


# --- adopt: a hand-made hub's login, as these answers ----------------------------------

HANDMADE_LOGINS = [
    (
        {
            "JupyterHub": {"authenticator_class": "oauthenticator.generic.GenericOAuthenticator"},
            "GenericOAuthenticator": {
                "token_url": "https://sso.uni.edu/realms/hub/protocol/openid-connect/token",
                "userdata_url": "https://sso.uni.edu/realms/hub/protocol/openid-connect/userinfo",
                "username_key": "preferred_username",
                "claim_groups_key": "roles",
                "allowed_groups": ["hub-users"],
                "scope": ["openid", "roles"],
            },
        },
        {
            "login": "oidc",
            "oidc_issuer": "https://sso.uni.edu/realms/hub",
            "oidc_token_url": "https://sso.uni.edu/realms/hub/protocol/openid-connect/token",
            "oidc_userdata_url": "https://sso.uni.edu/realms/hub/protocol/openid-connect/userinfo",
            "oidc_username_claim": "preferred_username",
            "oidc_groups_claim": "roles",
            "oidc_allowed_groups": ["hub-users"],
            "oidc_scope": ["openid", "roles"],
        },
    ),
    (
        {"JupyterHub": {"authenticator_class": "auth0"}, "Auth0OAuthenticator": {"auth0_subdomain": "ocean-lab"}},
        {"login": "oidc", "oidc_issuer": "https://ocean-lab.auth0.com"},
    ),
    (
        {
            "JupyterHub": {"authenticator_class": "cilogon"},
            "CILogonOAuthenticator": {
                "allowed_idps": {
                    "https://idp.uni.edu/idp/shibboleth": {
                        "username_derivation": {"username_claim": "email"},
                        "allowed_domains": ["uni.edu"],
                    }
                }
            },
        },
        {"login": "cilogon", "cilogon_idps": ["https://idp.uni.edu/idp/shibboleth"], "cilogon_domains": ["uni.edu"]},
    ),
]


@pytest.mark.parametrize(("config", "expected"), HANDMADE_LOGINS, ids=["keycloak", "auth0", "cilogon"])
def test_adopt_reads_a_handmade_login_as_the_login_answers(tmp_path, config, expected):
    from hub_template.adopt_answers import infer, missing

    hub = tmp_path / "deployments" / "lab"
    (hub / "config").mkdir(parents=True)
    (hub / "config" / "common.yaml").write_text(
        yaml.safe_dump({"daskhub": {"jupyterhub": {"hub": {"config": config}}}})
    )
    found = infer(hub)
    assert {name: found.answers[name] for name in expected} == expected
    assert not any(name.startswith(("github", "oidc", "cilogon")) for name in set(found.answers) - set(expected))
    # What adoption still asks: an Auth0 hub that named no group, its domains.
    assert ("oidc_allowed_domains" in missing(found.answers)) == (expected.get("oidc_issuer", "").endswith("auth0.com"))
    assert "github_orgs" not in missing(found.answers)


# --- the preview logs in through a loopback OIDC provider -----------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("needs_browser")
def test_the_preview_logs_in_through_the_hubs_own_generic_oauthenticator(template_repo, tmp_path_factory, tmp_path):
    """`hub-template preview` of an OIDC hub runs its GenericOAuthenticator
    (username claim, groups, scope) against oidc-provider-mock on loopback:
    Chromium clicks "Sign in with", authorizes at the provider's page, and
    JupyterLab opens for the user the provider named. Only the provider's
    endpoints, the callback and the client are replaced, as the preview prints."""
    from playwright.sync_api import sync_playwright

    from hub_template.preview import overrides, smoke

    hub = login_hub(template_repo, tmp_path_factory, "oidc-groups")
    env = {**os.environ, "HUB_TEMPLATE_CHART_DATA": str(chart_data())}
    before = {p.pid for p in psutil.process_iter()}
    preview = subprocess.Popen(
        [str(BIN / "hub-template"), "preview", str(hub)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert preview.stdout is not None
        for line in preview.stdout:
            lines.append(line.rstrip())
            if line.startswith("hub ready in "):
                break
        ready = lines[-1]
        assert "log in as researcher at the loopback OIDC provider" in ready, "\n".join(lines)
        url = ready.split(" at ", 1)[1].split("/  ", 1)[0]
        title = "replaced, as a preview must (everything else is the hub's own):"
        printed = [line.strip().split(":")[0] for line in lines[lines.index(title) + 1 :] if line.startswith("  ")]
        assert printed[: len(overrides.HUB_OIDC)] == [o.target for o in overrides.HUB_OIDC]
        target = smoke.Target(url=url, password="", home=tmp_path, notebook=None, gateway_prefix=None, login="oidc")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=smoke.CHROMIUM, args=smoke.FLAGS)
            page = browser.new_page()
            # Someone the provider knows, outside the hub's groups: refused by the hub.
            page.goto(f"{url}/hub/login")
            page.get_by_role("button", name="Sign in with").click()
            page.wait_for_selector("input[name=sub]")
            provider = page.url.split("/oauth2/", 1)[0]
            stranger = {"nickname": "stranger", "groups": ["others"], "email": "stranger@example.org"}
            assert page.request.put(f"{provider}/users/stranger", data=stranger).ok  # the provider's own API
            page.fill("input[name=sub]", "stranger")
            page.get_by_role("button", name="Authorize").click()
            page.wait_for_load_state()
            text = page.locator("body").inner_text()
            assert "/hub/oauth_callback" in page.url and "403" in text, text[:2000]
            smoke.log_in(page, target)
            page.wait_for_url(f"**/user/{smoke.USER}/lab**", timeout=smoke.SERVER_TIMEOUT)
            page.wait_for_selector(".jp-LabShell", timeout=smoke.SERVER_TIMEOUT)
            # Only the hub's allowed_groups admits anyone (no allow_all; its admin is `ada`):
            # the provider's groups claim let the user in.
            assert f"/user/{smoke.USER}/lab" in page.url
            browser.close()
    finally:
        preview.send_signal(signal.SIGINT)
        out, _ = preview.communicate(timeout=60)
        lines += out.splitlines()
    assert preview.returncode == 130, "\n".join(lines)
    assert "stopped every process it started" in "\n".join(lines)
    left = [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline", "status"])
        if p.info["pid"] not in before
        and p.info["status"] != psutil.STATUS_ZOMBIE
        and "oidc_provider_mock" in " ".join(p.info["cmdline"] or [])
    ]
    assert left == []


def test_the_preview_of_an_oidc_hub_changes_only_the_listed_traits(template_repo, tmp_path_factory, tmp_path):
    """The preview's jupyterhub_config.py of an OIDC hub, loaded by traitlets as
    JupyterHub loads it, differs from z2jh's loading of the same values by
    exactly overrides.HUB_OIDC: the hub's GenericOAuthenticator (claim,
    groups, scope) is its own, the password login absent."""
    from traitlets.config import PyFileConfigLoader

    from hub_template.preview import command, hub_config, oidc, overrides

    hub = login_hub(template_repo, tmp_path_factory, "oidc-groups")
    values = command.read(hub, chart_data())["values"]
    section = values["jupyterhub"]["hub"]
    settings = oidc.generic_login(section)
    assert settings is not None
    claims = oidc.user_claims(settings, "researcher", oidc.login_domains(section))
    assert claims == {
        "sub": "researcher",
        "nickname": "researcher",
        "email": "researcher@example.org",
        "email_verified": True,
        "groups": ["hub-users"],
    }
    stand_in = {
        "authorize_url": "http://127.0.0.1:1/oauth2/authorize",
        "token_url": "http://127.0.0.1:1/oauth2/token",
        "userdata_url": "http://127.0.0.1:1/userinfo",
        "oauth_callback_url": "http://127.0.0.1:2/hub/oauth_callback",
        "client_id": "x",
        "client_secret": "y",
    }
    plan = hub_config.plan(
        values,
        ports=hub_config.Ports(*range(40001, 40006)),
        work=tmp_path,
        password="pw",
        chp="configurable-http-proxy",
        cmd=["bash", "start"],
        user_env={},
        gateway_token="t",
        image_spec="img:preview",
        oidc=stand_in,
    )
    full = hub_config.write(tmp_path, plan)
    z2jh = tmp_path / "z2jh_only.py"
    z2jh.write_text(hub_config.z2jh_part())

    def load(path: Path) -> dict:
        config = PyFileConfigLoader(path.name, str(path.parent)).load_config()
        return {f"{cls}.{trait}": value for cls, traits in config.items() for trait, value in traits.items()}

    preview, theirs = load(full), load(z2jh)
    changed = {key for key in preview.keys() | theirs.keys() if preview.get(key) != theirs.get(key)}
    listed = {o.target for o in overrides.HUB_OIDC if not o.target.startswith("env ") and o.target != "provider user"}
    assert changed == listed
    assert preview["JupyterHub.authenticator_class"] == "generic-oauth"
    assert preview["GenericOAuthenticator.allowed_groups"] == ["hub-users"]


def test_a_researcher_chooses_cilogon_at_the_prompt(template_repo, tmp_path):
    """In a real terminal, behind `customise`: CILogon chosen, the public
    provider named in short, a domain pasted as a URL (a wrong one refused in
    one line and asked again), then the administrators as CILogon names
    them, by email."""
    from test_prompt import answer_in_a_terminal

    typed = {
        "hub_name": "charlie",
        "cloud_provider": "aws",
        "aws_account_id": "210987654321",
        "customise": "y",
        "admin_users": "ada@uni.edu",
        "login": "cilogon",
        "cilogon_idps": "google, https://idp.uni.edu/idp/shibboleth",
        "cilogon_domains": "https://uni.edu/",
    }
    mistakes = {"cilogon_domains": ("uni..edu", "'uni..edu': not a domain")}
    asked, _, hub = answer_in_a_terminal(template_repo, tmp_path, typed, mistakes)

    assert asked.index("login") < asked.index("cilogon_idps") < asked.index("admin_users")
    assert not any(name.startswith("oidc_") for name in asked)
    config = hub_values(hub, "prod")["hub"]["config"]
    idps = config["CILogonOAuthenticator"]["allowed_idps"]
    assert list(idps) == ["http://google.com/accounts/o8/id", "https://idp.uni.edu/idp/shibboleth"]
    assert {idp["allowed_domains"][0] for idp in idps.values()} == {"uni.edu"}, (
        hub / ".copier-answers.yml"
    ).read_text()
    assert config["Authenticator"]["admin_users"] == ["ada@uni.edu"]
    assert config["CILogonOAuthenticator"]["oauth_callback_url"] == "https://charlie.pangeo.io/hub/oauth_callback"
