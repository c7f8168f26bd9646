"""What a hand-made hub's files answer of the template's questions.

A hand-made hub (the pangeo-cloud-federation layout of 2019-2023) says most
of what the template asks: hubploy.yaml (0.4's `images:` + `cluster:`, or
today's `cluster:` only) names the cloud, cluster and image; the helm values
(under `pangeo:`, `daskhub:` or no umbrella key) name the hosts, login, sizes
and culler; image/binder/environment.yml the Python and packages. Each
answer found is kept with the file it came from, so the operator sees why.

The hub's files are untrusted: read with the bounded safe loader, never a
link (a link is reported and read as absent), never executed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import load_data
from .logins import authenticator_classes
from .safe_yaml import load_all_bounded, load_bounded

# hubploy's cloud names, as the template's cloud_provider answers.
PROVIDERS = {"gcloud": "gcp", "aws": "aws", "azure": "azure"}
# cluster:<provider> keys, as the template's answers (both hubploys).
CLUSTER_KEYS = {
    "gcp": {"project": "gcp_project", "cluster": "gcp_cluster", "zone": "gcp_zone"},
    "aws": {"account_id": "aws_account_id", "region": "aws_region", "cluster": "aws_cluster"},
    "azure": {"resource_group": "azure_resource_group", "cluster": "azure_cluster"},
}
# What the template cannot render without: adoption asks for each it did not find.
REQUIRED = {
    "gcp": ("gcp_project", "gcp_cluster", "gcp_zone"),
    "aws": ("aws_account_id", "aws_region", "aws_cluster"),
    "azure": ("azure_resource_group", "azure_cluster", "azure_registry"),
}
REQUIRED_ALWAYS = ("cloud_provider", "domain", "image_name")
# What each login cannot do without (data/logins.yml's logins; GitHub's is the default).
REQUIRED_BY_LOGIN = {"github": ("github_orgs",), "cilogon": ("cilogon_idps",), "oidc": ("oidc_issuer",)}
# oauthenticator's Auth0 class, which the template's generic OIDC login expresses.
AUTH0 = ("auth0", "auth0oauthenticator")
UMBRELLAS = ("daskhub", "pangeo")
# Packages the template's environment always adds (copier.yml's help).
ALWAYS_IN_IMAGE = {"python", "pip", "dask", "distributed", "dask-gateway", "dask-labextension"}


@dataclass
class Inferred:
    """Answers found in a hub's files, each with where it was found."""

    answers: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the template does not express
    umbrella: str | None = None  # the values' umbrella key, None when they have none

    def put(self, name: str, value: Any, origin: str) -> None:
        if value in (None, "", []) or name in self.answers:
            return
        self.answers[name] = value
        self.origins[name] = origin


def missing(answers: dict[str, Any]) -> list[str]:
    """The answers the template cannot do without that `answers` lacks."""
    login = str(answers.get("login") or "github")
    wanted = [
        *REQUIRED_ALWAYS,
        *REQUIRED_BY_LOGIN.get(login, ()),
        *REQUIRED.get(str(answers.get("cloud_provider")), ()),
    ]
    # An OIDC login lets in a group or an email domain (a hand-made one often let in anyone).
    if login == "oidc" and not answers.get("oidc_allowed_groups"):
        wanted.append("oidc_allowed_domains")
    return [name for name in wanted if name not in answers]


def linked(hub: Path, relpath: str) -> bool:
    """Whether the file, or a folder on its way from the hub, is a link."""
    path = hub / relpath
    return any(p.is_symlink() for p in (path, *path.parents) if hub in p.parents)


def read_text(hub: Path, relpath: str, notes: list[str]) -> str | None:
    """A hub's file, or None when absent or a link (noted: never followed)."""
    if linked(hub, relpath):
        notes.append(f"{relpath}: a link, not followed (read as absent)")
        return None
    path = hub / relpath
    if not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        notes.append(f"{relpath}: not UTF-8 text, not read")
        return None


def read_yaml(hub: Path, relpath: str, notes: list[str]) -> Any:
    """A hub's YAML file, or None when absent, a link or unreadable (noted)."""
    text = read_text(hub, relpath, notes)
    if text is None:
        return None
    try:
        return load_bounded(text)
    except (yaml.YAMLError, ValueError) as error:
        notes.append(f"{relpath}: not read ({str(error).splitlines()[0]})")
        return None


def _get(tree: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def unwrap(values: Any) -> tuple[str | None, dict[str, Any]]:
    """(umbrella key, daskhub's values) of a values file."""
    if not isinstance(values, dict):
        return None, {}
    for key in UMBRELLAS:
        if isinstance(values.get(key), dict):
            return key, values[key]
    return None, values


def infer(hub: Path) -> Inferred:
    found = Inferred()
    found.put("hub_name", hub.name, "the folder's name")
    _from_hubploy(found, read_yaml(hub, "hubploy.yaml", found.notes))
    values = {env: read_yaml(hub, f"config/{env}.yaml", found.notes) for env in ("common", "staging", "prod")}
    umbrellas = {unwrap(v)[0] for v in values.values() if isinstance(v, dict)}
    found.umbrella = next(iter(umbrellas - {None}), None)
    if found.umbrella:
        found.put("helm_umbrella_key", found.umbrella, "config/*.yaml")
    elif any(isinstance(v, dict) for v in values.values()):
        found.notes.append(
            "config/*.yaml: values not under an umbrella key (the daskhub chart deployed directly); "
            "the template nests them under `daskhub:`"
        )
    for env in ("prod", "staging", "common"):
        _from_values(found, env, unwrap(values[env])[1])
    if found.answers.get("home_storage") == "nfs":
        _from_nfs_manifests(found, hub)
    _from_image(found, hub)
    registry = re.match(r"([a-z0-9]+)\.azurecr\.io/", str(found.answers.get("image_name", "")))
    found.put("azure_registry", registry[1] if registry else None, found.origins.get("image_name", ""))
    _from_secrets(found, hub)
    return found


def _from_hubploy(found: Inferred, hubploy: Any) -> None:
    origin = "hubploy.yaml"
    image = _get(hubploy, "images", "image_name")
    if isinstance(image, str):
        found.put("image_name", re.sub(r":[^/]*$", "", image), origin)
        found.notes.append("hubploy.yaml: hubploy 0.4's `images:` block (today's hubploy ignores it)")
    provider = PROVIDERS.get(str(_get(hubploy, "cluster", "provider")))
    if provider is None:
        return
    found.put("cloud_provider", provider, origin)
    settings = _get(hubploy, "cluster", {"gcp": "gcloud"}.get(provider, provider)) or {}
    for key, answer in CLUSTER_KEYS[provider].items():
        if isinstance(settings.get(key), str):
            found.put(answer, settings[key], origin)
    zone = settings.get("zone")
    if provider == "gcp" and isinstance(zone, str) and zone.count("-") == 2:
        found.put("gcp_region", zone.rsplit("-", 1)[0], origin)
    if "service_key" in settings or "auth_file" in settings:
        found.notes.append("hubploy.yaml: deploys with a cloud key file; the template's CI logs in keyless (OIDC)")


def _quantity(value: Any) -> float | None:
    """`2G`, `512M`, `10Gi` or a number of bytes, in GB."""
    match = re.fullmatch(r"([0-9.]+)\s*([KMGT]i?)?", str(value))
    if not match:
        return None
    scale = {None: 1e-9, "K": 1e-6, "M": 1e-3, "G": 1, "T": 1e3, "Ki": 1e-6, "Mi": 1e-3, "Gi": 1, "Ti": 1e3}
    return round(float(match[1]) * scale[match[2]], 3)


def _from_values(found: Inferred, env: str, values: dict[str, Any]) -> None:
    origin = f"config/{env}.yaml"
    hub = _get(values, "jupyterhub") or {}
    hosts = _get(hub, "proxy", "https", "hosts")
    if isinstance(hosts, list) and hosts and isinstance(hosts[0], str):
        found.put({"prod": "domain", "staging": "staging_domain"}.get(env, "domain"), hosts[0], origin)
    found.put("contact_email", _get(hub, "proxy", "https", "letsencrypt", "contactEmail"), origin)
    config = _get(hub, "hub", "config") or {}
    _login(found, origin, config, _get(hub, "auth"))
    admins = _get(config, "Authenticator", "admin_users") or _get(hub, "auth", "admin", "users")
    found.put("admin_users", admins if isinstance(admins, list) else None, origin)
    single = _get(hub, "singleuser") or {}
    image = _get(single, "image", "name")
    found.put("image_name", image if isinstance(image, str) else None, origin)
    # No answer holds users' CPU and memory since 1.2.0 (the sizes do): the
    # hub's own singleuser cpu/memory stay its own, said so.
    if any(_get(single, kind) for kind in ("cpu", "memory")):
        found.notes.append(f"{origin}: singleuser cpu/memory kept as the hub's own (the template's are its sizes)")
    storage = _get(single, "storage") or {}
    if storage.get("type") == "static":
        found.put("home_storage", "nfs", origin)
        sub_path = _get(storage, "static", "subPath")
        found.notes.append(
            f"{origin}: homes on NFS at subPath {sub_path!r}, kept as the hub's own (the template's is "
            "'{hubnamespace}/{username}'); KubeSpawner 7 slugs {username} safely, so a name that is not "
            "lowercase letters, digits and - (escaped before 7) finds another folder"
        )
    found.put("user_storage", int(_quantity(storage.get("capacity")) or 0) or None, origin)
    for variable in ("SCRATCH_BUCKET", "PANGEO_SCRATCH"):
        url = _get(single, "extraEnv", variable)
        if isinstance(url, str) and (match := re.match(r"[a-z0-9]+://([^/$]+)", url)):
            found.put("scratch_bucket", match[1], origin)
    _from_profiles(found, origin, single)
    cull = _get(hub, "cull") or {}
    if isinstance(cull.get("timeout"), int):
        found.put("cull_idle_minutes", cull["timeout"] // 60, origin)
    if isinstance(cull.get("maxAge"), int):
        found.put("cull_max_age_hours", cull["maxAge"] // 3600, origin)


def _login(found: Inferred, origin: str, config: dict[str, Any], auth: Any) -> None:
    """How people log in: GitHub's organizations, CILogon's identity providers
    and domains, or a generic (Auth0, Keycloak...) provider's endpoints,
    username claim and groups, as the login questions take them."""
    authenticator = _get(config, "JupyterHub", "authenticator_class") or _get(auth, "type")
    named = str(authenticator or "github").rsplit(".", 1)[-1].lower()
    logins = {name.rsplit(".", 1)[-1].lower(): login for name, (login, _) in authenticator_classes().items()}
    login = "oidc" if named in AUTH0 else logins.get(named)
    if login is None:
        found.notes.append(f"{origin}: logs in with {authenticator}; the template offers GitHub, CILogon or OIDC")
        return
    if authenticator:
        found.put("login", login, origin)
    if login == "github":
        orgs = _get(config, "GitHubOAuthenticator", "allowed_organizations") or _get(auth, "github", "orgWhitelist")
        found.put("github_orgs", orgs if isinstance(orgs, list) else None, origin)
    elif login == "cilogon":
        cilogon = _get(config, "CILogonOAuthenticator") or {}
        idps = cilogon.get("allowed_idps") or cilogon.get("idps") if isinstance(cilogon, dict) else None
        if isinstance(idps, dict):
            found.put("cilogon_idps", [str(entity) for entity in idps], origin)
            domains = [d for idp in idps.values() if isinstance(idp, dict) for d in idp.get("allowed_domains") or []]
            found.put("cilogon_domains", list(dict.fromkeys(map(str, domains))), origin)
    else:
        _generic_login(found, origin, config, named)


def _generic_login(found: Inferred, origin: str, config: dict[str, Any], named: str) -> None:
    cls = "Auth0OAuthenticator" if named.startswith("auth0") else "GenericOAuthenticator"
    generic = _get(config, cls) or {}
    if not isinstance(generic, dict):
        return
    urls = {key: generic.get(f"{key}_url") for key in ("authorize", "token", "userdata")}
    subdomain = generic.get("auth0_subdomain") or generic.get("auth0_domain")
    known = next((u for u in (urls["token"], urls["authorize"], urls["userdata"]) if isinstance(u, str)), None)
    if isinstance(subdomain, str):  # Auth0OAuthenticator names its tenant only
        found.put("oidc_issuer", f"https://{subdomain}{'' if '.' in subdomain else '.auth0.com'}", origin)
    elif known:
        found.put("oidc_issuer", _issuer_of(known), origin)
    for key, url in urls.items():
        found.put(f"oidc_{key}_url", url if isinstance(url, str) else None, origin)
    claim = generic.get("username_claim") or generic.get("username_key")
    found.put("oidc_username_claim", claim if isinstance(claim, str) else None, origin)
    groups = generic.get("allowed_groups")
    found.put("oidc_allowed_groups", list(groups) if isinstance(groups, list) else None, origin)
    groups_key = generic.get("auth_state_groups_key") or generic.get("claim_groups_key")
    if isinstance(groups_key, str):
        found.put("oidc_groups_claim", groups_key.removeprefix("oauth_user."), origin)
    scope = generic.get("scope")
    found.put("oidc_scope", list(scope) if isinstance(scope, list) else None, origin)
    if not groups and not generic.get("allowed_users"):
        found.notes.append(f"{origin}: lets in anyone its provider knows; the template asks for groups or domains")


def _issuer_of(url: str) -> str:
    """The issuer an endpoint belongs to, by the conventions of data/logins.yml
    (https://atmos.auth0.com/oauth/token: https://atmos.auth0.com), else its origin."""
    from . import load_data

    for rule in load_data("logins.yml")["oidc"]["endpoints"]:
        for template in (rule["authorize"], rule["token"], rule["userdata"]):
            head, marker, suffix = template.partition("{issuer}")
            if marker and not head and suffix and url.endswith(suffix):
                issuer = url[: -len(suffix)]
                if re.fullmatch(rule["match"], issuer) and rule["match"] != ".*":
                    return issuer
    match = re.match(r"https?://[^/]+", url)
    return match[0] if match else url


def _from_nfs_manifests(found: Inferred, hub: Path) -> None:
    """The NFS server and export of the hub's homes: the one NFS
    PersistentVolume of its manifests beside the values (multi-document YAML,
    pangeo-cloud-federation's shared-nfs-<env>.yaml), when they agree."""
    exports: dict[tuple[str, str], str] = {}
    for found_file in sorted([*hub.glob("*.yaml"), *hub.glob("config/*.yaml")]):
        relpath = found_file.relative_to(hub).as_posix()
        text = read_text(hub, relpath, found.notes)
        try:
            docs = load_all_bounded(text or "")
        except (yaml.YAMLError, RecursionError):
            continue  # not a manifest: the values files are read (and reported) above
        for doc in docs:
            nfs = _get(doc, "spec", "nfs") if _get(doc, "kind") == "PersistentVolume" else None
            if isinstance(nfs, dict) and isinstance(nfs.get("server"), str) and isinstance(nfs.get("path"), str):
                exports.setdefault((nfs["server"], nfs["path"]), relpath)
    if len(exports) == 1:
        ((server, export), origin) = exports.popitem()
        found.put("nfs_server", server, origin)
        found.put("nfs_path", export, origin)
    elif exports:
        found.notes.append(
            f"{', '.join(sorted(set(exports.values())))}: several NFS exports; answer nfs_server, nfs_path"
        )
    found.notes.append(
        "NFS homes: the hub's own PersistentVolume manifests stay its own (the template's federation chart makes one from deployment.homeNfs once the hub's values ask)"
    )


def _profile_images(profile: dict[str, Any]) -> tuple[list[tuple[str, Any]], bool]:
    """(label, image) of each image a profile offers (its own override's,
    each profile_options choice's), and whether it takes a typed image."""
    images = []
    override = profile.get("kubespawner_override")
    if isinstance(override, dict) and override.get("image"):
        images.append((str(profile.get("slug") or profile.get("display_name") or ""), override["image"]))
    typed = False
    options = profile.get("profile_options")
    for option in options.values() if isinstance(options, dict) else ():
        if not isinstance(option, dict):
            continue
        choices = option.get("choices")
        for key, choice in choices.items() if isinstance(choices, dict) else ():
            image = _get(choice, "kubespawner_override", "image")
            if image:
                images.append((str(key), image))
        typed = typed or bool(_get(option, "unlisted_choice", "enabled"))
    return images, typed


def _from_profiles(found: Inferred, origin: str, single: dict[str, Any]) -> None:
    """profileList's images as user_images (on every size: the template's
    sizes are machine types, asked apart) and a typed image as other_image."""
    profiles = _get(single, "profileList")
    if not isinstance(profiles, list):
        return
    hub_image = _get(single, "image", "name")
    pangeo = load_data("versions.yml")["pangeo_images"]
    known = {f"{repo}:{pangeo['tag']}": name for name, repo in pangeo["names"].items()}
    entries: list[Any] = ["hub"]
    seen: set[str] = set()
    typed = False
    for profile in profiles:
        if not isinstance(profile, dict):
            continue
        images, typed_here = _profile_images(profile)
        typed = typed or typed_here
        for label, image in images:
            name, colon, tag = str(image).rpartition(":")
            if not isinstance(image, str) or image in seen or name == hub_image:
                continue
            seen.add(image)
            if not colon or "/" in tag or tag == "latest":
                found.notes.append(f"{origin}: profileList offers {image} with no version tag; user_images needs one")
            elif image in known:
                entries.append(known[image])
            else:
                key = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:32].strip("-")
                key = key if key and key != "hub" else name.rsplit("/", 1)[-1][:32]
                used = {e if isinstance(e, str) else e["name"] for e in entries}
                key = next(k for k in (key, *(f"{key[:29]}-{n}" for n in range(2, 99))) if k not in used)
                entries.append({"name": key, "image": image})
    if len(entries) > 1:
        found.put("user_images", entries, origin)
        found.notes.append(f"{origin}: profileList's images offered on every size (user_images)")
    if typed:
        found.put("other_image", True, origin)


def _from_image(found: Inferred, hub: Path) -> None:
    binder = hub / "image" / "binder"
    if not binder.is_dir():
        binder = hub / "image"
    relative = binder.relative_to(hub)
    if (binder / "Dockerfile").is_file():
        found.notes.append(f"{relative}/Dockerfile: the image is built from it; the template writes environment.yml")
    env = read_yaml(hub, f"{relative}/environment.yml", found.notes)
    origin = f"{relative}/environment.yml"
    conda: list[str] = []
    pip: list[str] = []
    for dependency in _get(env, "dependencies") or []:
        if isinstance(dependency, dict) and isinstance(dependency.get("pip"), list):
            pip += [str(p) for p in dependency["pip"]]
        elif isinstance(dependency, str):
            name = re.split(r"[=<>!~ ]", dependency, maxsplit=1)[0]
            if name == "python" and (version := re.search(r"3\.\d+", dependency)):
                found.put("python_version", version[0], origin)
            elif name not in ALWAYS_IN_IMAGE:
                conda.append(dependency)
    found.put("conda_packages", conda, origin)
    found.put("pip_packages", pip, origin)
    apt = read_text(hub, f"{relative}/apt.txt", found.notes) or ""
    packages = [line.strip() for line in apt.splitlines() if line.strip() and not line.startswith("#")]
    found.put("apt_packages", packages, f"{relative}/apt.txt")


def _from_secrets(found: Inferred, hub: Path) -> None:
    if (hub / ".sops.yaml").is_file():
        found.put("secrets_backend", "sops", ".sops.yaml")
    else:  # git-crypt, the template's default
        found.put("secrets_backend", "git-crypt", "no .sops.yaml")
        if not (hub / ".gitattributes").is_file():  # the repository's root one, with its shared key
            found.put("git_crypt_key", "default", "no .gitattributes of its own")
