"""What a preview replaces in a hub's configuration, and why: the one list.

Everything else comes from the rendered hub. The preview prints this list, and
the tests assert that the configurations they run differ from the hub's by
exactly these entries.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Override:
    """One replaced setting: `target` is the trait (Class.trait) or key, `why` one line."""

    target: str
    why: str


# dask-gateway-server: its backend, its addresses and its auth.
GATEWAY_BACKEND = (
    Override(
        "DaskGateway.backend_class",
        "Kubernetes -> UnsafeLocalBackend: schedulers and workers are local processes, on loopback only",
    ),
    Override(
        "UnsafeLocalBackend.cluster_config_class",
        "local cluster config with KubeClusterConfig's `image` and fractional `worker_cores`",
    ),
    Override("UnsafeLocalBackend.clusters_directory", "clusters' working folders in the preview's folder"),
)
GATEWAY_ADDRESSES = (
    Override("DaskGateway.address", "the gateway's API on a free loopback port"),
    Override("Proxy.address", "the gateway's proxy on a free loopback port"),
)
GATEWAY_SIMPLE_AUTH = (
    Override("DaskGateway.authenticator_class", "no JupyterHub: SimpleAuthenticator"),
    Override("SimpleAuthenticator.password", "SimpleAuthenticator's password"),
)
GATEWAY_HUB_AUTH = (
    Override("DaskGateway.authenticator_class", "JupyterHubAuthenticator against the local hub"),
    Override("JupyterHubAuthenticator.jupyterhub_api_url", "the local hub's API on loopback"),
    Override("JupyterHubAuthenticator.jupyterhub_api_token", "the gateway service's token for the local hub"),
)

# JupyterHub's login: a shared password stands in for GitHub or CILogon,
# which cannot be reached from here.
PASSWORD_LOGIN = (
    Override("JupyterHub.authenticator_class", "GitHub OAuth -> SharedPasswordAuthenticator (password printed)"),
    Override("SharedPasswordAuthenticator.user_password", "the printed password"),
    Override("SharedPasswordAuthenticator.allow_all", "no GitHub organizations to check: any user name"),
)
# A generic OIDC hub keeps its GenericOAuthenticator (username claim, scope,
# allowed groups, its email-domain hook): only the provider is stood in for,
# by a loopback OpenID Connect provider (oidc-provider-mock, preview/oidc.py).
OIDC_LOGIN = (
    Override("GenericOAuthenticator.authorize_url", "the loopback OIDC provider's authorization_endpoint"),
    Override("GenericOAuthenticator.token_url", "the loopback OIDC provider's token_endpoint"),
    Override("GenericOAuthenticator.userdata_url", "the loopback OIDC provider's userinfo_endpoint"),
    Override("GenericOAuthenticator.oauth_callback_url", "the preview's own /hub/oauth_callback on loopback"),
    Override("GenericOAuthenticator.client_id", "any id: the loopback provider registers none"),
    Override("GenericOAuthenticator.client_secret", "any secret: the hub's own stays encrypted"),
    Override("provider user", "one user whose claims the hub's rules let in (username claim, email, groups)"),
)

# JupyterHub: what z2jh's Kubernetes pieces become on one machine.
RUNTIME = (
    Override("JupyterHub.spawner_class", "KubeSpawner -> a local process spawner"),
    Override(
        "SimpleLocalProcessSpawner.home_dir_template",
        "each user's home in the preview's folder (static homes: in the claim's folder, at static.subPath)",
    ),
    Override(
        "Spawner.pre_spawn_hook",
        "KubeSpawner's volume mounts, after the hub's own pre_spawn_hook, as sandbox binds of local folders",
    ),
    Override(
        "Spawner.cmd",
        "the users' server through the rendered binder/start, as the image's user in a bubblewrap sandbox",
    ),
    Override("Spawner.args", "--allow-root where the preview runs as root (pods run as jovyan)"),
    Override("Spawner.default_url", "singleuser.defaultUrl, which z2jh gives KubeSpawner"),
    Override("Spawner.start_timeout", "a first start on a small machine is slow"),
    Override("Spawner.http_timeout", "a first start on a small machine is slow"),
    Override("Spawner.environment", "KubeSpawner's environment, with the entries below"),
    Override("JupyterHub.bind_url", "the proxy on a free loopback port"),
    Override("JupyterHub.hub_bind_url", "the hub's API on a free loopback port"),
    Override("ConfigurableHTTPProxy.api_url", "configurable-http-proxy's API on a free loopback port"),
    Override("ConfigurableHTTPProxy.command", "configurable-http-proxy from npm, found on PATH"),
    Override("JupyterHub.db_url", "the hub's database in the preview's folder"),
    Override("JupyterHub.cookie_secret_file", "a cookie secret in the preview's folder"),
    Override("JupyterHub.pid_file", "the hub's pid file in the preview's folder"),
    Override("JupyterHub.services", "dask-gateway's url: traefik-<release>-dask-gateway -> the local gateway"),
    Override("env JUPYTER_IMAGE_SPEC", "<image>:preview, the image KubeSpawner would name"),
    Override("env DASK_GATEWAY__ADDRESS", "proxy-public -> the local proxy"),
    Override("env DASK_GATEWAY__PROXY_ADDRESS", "traefik service -> the local gateway's proxy"),
    Override("env PATH", "the users' environment first"),
    Override("env REPO_DIR", "the hub's image/ folder, where repo2docker puts /srv/repo"),
    Override("env DASK_ROOT_CONFIG", "the dask config postBuild installed, in the preview's prefix"),
    Override("env JUPYTER_CONFIG_PATH", "the Jupyter config postBuild installed, in the preview's prefix"),
    Override("env $(VAR)", "Kubernetes' $(VAR) expansion, done per user at spawn"),
)
HUB = (*PASSWORD_LOGIN, *RUNTIME)
HUB_OIDC = (*OIDC_LOGIN, *RUNTIME)
