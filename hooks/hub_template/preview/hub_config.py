"""JupyterHub's configuration for a preview: the hub's merged helm values loaded
as z2jh 4.4's jupyterhub_config.py loads them (`hub.config` as `c.<Class>.<trait>`,
`hub.services`, the singleuser environment, then `hub.extraConfig` sorted by
key), then the local stand-ins of `overrides.HUB`, applied last.

The generated jupyterhub_config.py reads its inputs from a JSON file beside it,
so no value of the hub is ever pasted into Python source.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Kubernetes expands $(NAME) in a container's env from the variables before it.
K8S_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")

# What z2jh's hub pod has in its environment, for the chart's own snippet.
RELEASE = "preview"

CONFIG_PY = '''\
# Written by `hub-template preview`: the hub's values as z2jh loads them, then
# the local stand-ins (hub_template.preview.overrides.HUB). Inputs: preview.json.
import json
import os
import re
from pathlib import Path

plan = json.loads((Path(__file__).parent / "preview.json").read_text())
os.environ.update(plan["hub_pod_env"])

# z2jh: hub.config, services, the singleuser environment.
for cls, traits in plan["hub_config"].items():
    for trait, value in traits.items():
        setattr(getattr(c, cls), trait, value)
c.JupyterHub.services = [dict(service, name=name) for name, service in plan["services"].items()]
c.JupyterHub.load_roles = [dict(role, name=name) for name, role in plan["roles"].items()]
c.KubeSpawner.environment = dict(plan["singleuser_env"])

# z2jh: hub.extraConfig, sorted by key.
for key, source in sorted(plan["extra_config"].items()):
    exec(compile(source, "hub.extraConfig." + key, "exec"), {"c": c, "__name__": "__main__"})

#@ local stand-ins
# Local stand-ins, applied last (hub_template.preview.overrides.HUB).
local = plan["local"]
if local.get("oidc"):
    # The hub's own GenericOAuthenticator, against the loopback OIDC provider.
    for trait, value in local["oidc"].items():
        setattr(c.GenericOAuthenticator, trait, value)
else:
    c.JupyterHub.authenticator_class = "shared-password"
    c.SharedPasswordAuthenticator.user_password = local["password"]
    c.SharedPasswordAuthenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = local["home_dir_template"]
c.JupyterHub.bind_url = local["bind_url"]
c.JupyterHub.hub_bind_url = local["hub_bind_url"]
c.ConfigurableHTTPProxy.api_url = local["proxy_api_url"]
c.ConfigurableHTTPProxy.command = [local["chp"]]
c.JupyterHub.db_url = local["db_url"]
c.JupyterHub.cookie_secret_file = local["cookie_secret_file"]
c.JupyterHub.pid_file = local["pid_file"]
c.Spawner.cmd = local["cmd"]
c.Spawner.args = local["args"]
c.Spawner.default_url = plan["default_url"]
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
for service in c.JupyterHub.services:
    if service["name"] in local["services"]:
        service.update(local["services"][service["name"]])

_var = re.compile(r"\\$\\(([A-Za-z_][A-Za-z0-9_]*)\\)")
env = {**c.KubeSpawner.environment, **local["env"]}


def _expanded(value):
    """Kubernetes' $(VAR) expansion, per user, done when the server spawns."""
    if not isinstance(value, str) or not _var.search(value):
        return value
    return lambda spawner: _var.sub(
        lambda m: spawner.user.name if m[1] == "JUPYTERHUB_USER" else env.get(m[1], m[0]), value)


c.Spawner.environment = {name: _expanded(value) for name, value in env.items()}

_hub_hook = c.KubeSpawner.get("pre_spawn_hook")


def _mounted(spawner):
    """KubeSpawner's volume mounts (z2jh's, after the hub's own
    pre_spawn_hook decided them) as the sandbox's binds: each claim a folder
    of the preview's, each subPath a folder in it; the server sees its own
    home, not the others'."""
    spawner.volume_mounts = json.loads(json.dumps(local["volume_mounts"]))
    if _hub_hook:
        _hub_hook(spawner)
    mounts = spawner.volume_mounts
    binds = ["--bind", spawner.home_dir, spawner.home_dir]
    for mount in mounts.values() if isinstance(mounts, dict) else mounts:
        if mount["name"] not in local["volumes"] or mount["mountPath"] == local["home_mount_path"]:
            continue  # the home (above), or a volume the preview has no folder for
        sub = mount.get("subPath") or ""
        source = Path(local["volumes"][mount["name"]], sub.format(username=spawner.user.name, hubnamespace=local["namespace"]))
        source.mkdir(parents=True, exist_ok=True)
        binds += ["--ro-bind" if mount.get("readOnly") else "--bind", str(source), mount["mountPath"]]
    Path(spawner.home_dir).mkdir(parents=True, exist_ok=True)
    # The sandbox's bind of every home (sandbox.argv's `home`) gives way to this one's.
    base, everyone = list(local["cmd"]), ["--bind", local["homes_root"], local["homes_root"]]
    at = next((i for i in range(len(base)) if base[i : i + 3] == everyone), None)
    if at is not None:
        del base[at : at + 3]
    cut = base.index("--")
    spawner.cmd = [*base[:cut], *binds, *base[cut:]]


c.Spawner.pre_spawn_hook = _mounted
'''


@dataclass(frozen=True)
class Storage:
    """Where a preview keeps what the users' pods mount: each claim a folder
    of the preview's (work/volumes/<claim>), the homes as z2jh mounts them."""

    homes_root: Path  # the one folder the servers' homes are under
    home_dir_template: str  # SimpleLocalProcessSpawner's, {username} left to it
    volumes: dict[str, str]  # volume name -> its folder
    volume_mounts: dict[str, dict[str, Any]]  # z2jh's, keyed as z2jh keys them


def storage(values: dict[str, Any], work: Path) -> Storage:
    """z2jh 4.4's volumes for the singleuser values: a static home on its
    claim at static.subPath ({hubnamespace} being the release's namespace),
    else a home of its own per user; then extraVolumes and extraVolumeMounts."""
    singleuser = values["jupyterhub"].get("singleuser") or {}
    settings = singleuser.get("storage") or {}
    volumes: dict[str, str] = {}
    mounts: dict[str, dict[str, Any]] = {}
    home_path = settings.get("homeMountPath") or "/home/jovyan"
    if settings.get("type") == "static":
        claim = (settings.get("static") or {}).get("pvcName") or "home"
        root = work / "volumes" / claim
        sub = ((settings.get("static") or {}).get("subPath") or "").replace("{hubnamespace}", RELEASE)
        template = str(root / sub) if sub else str(root)
        volumes["home"] = str(root)
        mounts["home"] = {"name": "home", "mountPath": home_path, "subPath": sub}
    else:
        root = work / "homes"
        template = str(root / "{username}")
    extra = settings.get("extraVolumes") or []
    for volume in extra.values() if isinstance(extra, dict) else extra:
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim:
            volumes[volume["name"]] = str(work / "volumes" / claim)
    extra_mounts = settings.get("extraVolumeMounts") or []
    if isinstance(extra_mounts, dict):
        mounts.update(extra_mounts)
    else:
        mounts.update({f"{i}-{m['name']}": m for i, m in enumerate(extra_mounts)})
    return Storage(root, template, volumes, mounts)


@dataclass(frozen=True)
class Ports:
    proxy: int
    proxy_api: int
    hub: int
    gateway_api: int
    gateway_proxy: int


def plan(
    values: dict[str, Any],
    *,
    ports: Ports,
    work: Path,
    password: str,
    chp: str,
    cmd: list[str],
    user_env: dict[str, str],
    gateway_token: str,
    image_spec: str,
    oidc: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Everything jupyterhub_config.py loads: the hub's values (as merged by helm)
    and the local settings of `overrides.HUB`."""
    volumes = storage(values, work)
    jupyterhub = values["jupyterhub"]
    hub, singleuser = jupyterhub.get("hub") or {}, jupyterhub.get("singleuser") or {}
    env = {name: value for name, value in (singleuser.get("extraEnv") or {}).items()}
    gateway = values.get("dask-gateway") or {}
    gateway_on = bool(gateway.get("enabled"))
    prefix = ((gateway.get("gateway") or {}).get("prefix") or "/").rstrip("/")
    local_env = {
        # KubeSpawner sets the image the pod runs; the option handler wants it.
        "JUPYTER_IMAGE_SPEC": image_spec,
        **user_env,
    }
    if gateway_on:
        local_env["DASK_GATEWAY__ADDRESS"] = f"http://127.0.0.1:{ports.proxy}{prefix}"
        local_env["DASK_GATEWAY__PROXY_ADDRESS"] = f"gateway://127.0.0.1:{ports.gateway_proxy}"
    services = {}
    if gateway_on and "dask-gateway" in (hub.get("services") or {}):
        # The chart's service URL is the gateway's traefik proxy; here, its own proxy.
        services["dask-gateway"] = {"url": f"http://127.0.0.1:{ports.gateway_proxy}", "api_token": gateway_token}
    return {
        "hub_pod_env": {"HELM_RELEASE_NAME": RELEASE, "POD_NAMESPACE": RELEASE},
        "hub_config": {cls: dict(traits) for cls, traits in (hub.get("config") or {}).items()},
        "services": {
            name: _service(service or {})
            for name, service in (hub.get("services") or {}).items()
            if service is not None
        },
        "roles": {name: dict(role) for name, role in (hub.get("loadRoles") or {}).items() if role},
        "singleuser_env": env,
        "extra_config": {key: source for key, source in (hub.get("extraConfig") or {}).items() if source},
        "default_url": singleuser.get("defaultUrl") or "/lab",
        "local": {
            "password": password,
            "homes_root": str(volumes.homes_root),
            "home_dir_template": volumes.home_dir_template,
            "home_mount_path": (singleuser.get("storage") or {}).get("homeMountPath") or "/home/jovyan",
            "volumes": volumes.volumes,
            "volume_mounts": volumes.volume_mounts,
            "namespace": RELEASE,
            "bind_url": f"http://127.0.0.1:{ports.proxy}",
            "hub_bind_url": f"http://127.0.0.1:{ports.hub}",
            "proxy_api_url": f"http://127.0.0.1:{ports.proxy_api}",
            "chp": chp,
            "db_url": f"sqlite:///{work / 'jupyterhub.sqlite'}",
            "cookie_secret_file": str(work / "jupyterhub_cookie_secret"),
            "pid_file": str(work / "jupyterhub.pid"),
            "cmd": cmd,
            # jupyter-server refuses root without it; CI and containers run as root.
            "args": ["--allow-root"] if os.geteuid() == 0 else [],
            "services": services,
            "env": local_env,
            # GenericOAuthenticator's traits against the loopback provider (preview/oidc.py).
            "oidc": oidc or {},
        },
    }


def _service(service: dict[str, Any]) -> dict[str, Any]:
    """A service as z2jh gives it to JupyterHub: its `apiToken` (the values',
    else one the chart generates and keeps in the hub's Secret) as `api_token`."""
    loaded = {key: value for key, value in service.items() if key not in ("apiToken", "api_token")}
    loaded["api_token"] = service.get("apiToken") or service.get("api_token") or secrets.token_hex(32)
    return loaded


def z2jh_part() -> str:
    """The generated config without the local stand-ins: z2jh's loading alone."""
    return CONFIG_PY.split("#@ local stand-ins\n")[0]


def write(work: Path, the_plan: dict[str, Any]) -> Path:
    (work / "preview.json").write_text(json.dumps(the_plan, indent=1))
    config = work / "jupyterhub_config.py"
    config.write_text(CONFIG_PY)
    return config
