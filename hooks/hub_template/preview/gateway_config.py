"""dask-gateway-server's configuration for a preview: the local stand-ins of
`overrides`, then the hub's RENDERED `dask-gateway.gateway.extraConfig`,
appended as the chart's gateway ConfigMap appends it after its own setup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub_template.preview import overrides

# KubeClusterConfig has `image` and a fractional `worker_cores`; the local
# backend's config lacks both, so the hub's option handler would be refused.
LOCAL_CLUSTER_CONFIG = '''\
from dask_gateway_server.backends.local import LocalClusterConfig, UnsafeLocalBackend
from traitlets import Float, Unicode


class HubClusterConfig(LocalClusterConfig):
    """LocalClusterConfig with the KubeClusterConfig fields the hub's handler sets."""

    image = Unicode(config=True)
    worker_cores = Float(1, min=0, config=True)


class LoopbackLocalBackend(UnsafeLocalBackend):
    """UnsafeLocalBackend whose workers listen on loopback only, as its
    schedulers do: `dask worker` binds every interface unless given a host."""

    def get_worker_command(self, cluster, worker_name, scheduler_address=None):
        return [*super().get_worker_command(cluster, worker_name, scheduler_address), "--host", "127.0.0.1"]

'''


def extra_config(snippets: str | dict[str, str] | None) -> str:
    """The chart's rendering of gateway.extraConfig: a string as is, a mapping sorted by key."""
    if isinstance(snippets, str):
        return "# From gateway.extraConfig\n" + snippets
    mapping = snippets or {}
    return "".join(f"\n# From gateway.extraConfig.{key}\n{mapping[key]}" for key in sorted(mapping))


def local_settings(
    api_port: int,
    proxy_port: int,
    clusters: Path,
    *,
    password: str | None = None,
    hub_api_url: str | None = None,
    hub_token: str | None = None,
) -> dict[str, str]:
    """Each override's Python value, keyed by its target: SimpleAuthenticator
    with `password`, else JupyterHubAuthenticator against `hub_api_url`."""
    values = {
        "DaskGateway.backend_class": "LoopbackLocalBackend",
        "UnsafeLocalBackend.cluster_config_class": "HubClusterConfig",
        "UnsafeLocalBackend.clusters_directory": repr(str(clusters)),
        "DaskGateway.address": repr(f"127.0.0.1:{api_port}"),
        "Proxy.address": repr(f"127.0.0.1:{proxy_port}"),
    }
    if password is not None:
        values["DaskGateway.authenticator_class"] = repr("dask_gateway_server.auth.SimpleAuthenticator")
        values["SimpleAuthenticator.password"] = repr(password)
    else:
        values["DaskGateway.authenticator_class"] = repr("dask_gateway_server.auth.JupyterHubAuthenticator")
        values["JupyterHubAuthenticator.jupyterhub_api_url"] = repr(hub_api_url)
        values["JupyterHubAuthenticator.jupyterhub_api_token"] = repr(hub_token)
    return values


def listed(values: dict[str, str]) -> tuple[overrides.Override, ...]:
    """The overrides these settings are, in the order `overrides` lists them."""
    auth = overrides.GATEWAY_SIMPLE_AUTH if "SimpleAuthenticator.password" in values else overrides.GATEWAY_HUB_AUTH
    return overrides.GATEWAY_BACKEND + overrides.GATEWAY_ADDRESSES + auth


def config_text(values: dict[str, str], snippets: str | dict[str, str] | None, chart_gateway: dict[str, Any]) -> str:
    """The whole dask_gateway_config.py: stand-ins, the chart's own settings a
    preview keeps (the prefix), then the hub's snippets."""
    lines = [f"c.{target} = {value}" for target, value in values.items()]
    prefix = chart_gateway.get("prefix") or "/"
    chart = f"# The chart's gateway.prefix.\nc.Proxy.prefix = {prefix!r}\n"
    return (
        LOCAL_CLUSTER_CONFIG
        + "# Local stand-ins (hub_template.preview.overrides).\n"
        + "\n".join(lines)
        + "\n"
        + chart
        + extra_config(snippets)
    )
