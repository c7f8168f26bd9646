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
c.SimpleLocalProcessSpawner.home_dir_template = local["homes"] + "/{username}"
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
'''


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
            name: dict(service or {}) for name, service in (hub.get("services") or {}).items() if service is not None
        },
        "singleuser_env": env,
        "extra_config": {key: source for key, source in (hub.get("extraConfig") or {}).items() if source},
        "default_url": singleuser.get("defaultUrl") or "/lab",
        "local": {
            "password": password,
            "homes": str(work / "homes"),
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


def z2jh_part() -> str:
    """The generated config without the local stand-ins: z2jh's loading alone."""
    return CONFIG_PY.split("#@ local stand-ins\n")[0]


def write(work: Path, the_plan: dict[str, Any]) -> Path:
    (work / "preview.json").write_text(json.dumps(the_plan, indent=1))
    config = work / "jupyterhub_config.py"
    config.write_text(CONFIG_PY)
    return config
