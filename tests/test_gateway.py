"""The rendered hub's dask pieces, run for real on 127.0.0.1.

- A real dask-gateway-server whose configuration is the RENDERED
  `dask-gateway.gateway.extraConfig` snippets, appended (sorted by key) after a
  local setup, as the chart's gateway ConfigMap appends them after its own.
  The local setup stands in for the Kubernetes backend: UnsafeLocalBackend runs
  schedulers and workers as processes, and its cluster config class gets the
  two fields Kubernetes' KubeClusterConfig has and the local one lacks (`image`,
  and fractional `worker_cores`), so the hub's option handler runs unchanged.
- A client configured by the dask config the RENDERED image installs (its
  postBuild run as the checker runs it), with only the address and the auth
  overridden to loopback and basic auth, and the cluster made by the
  labextension factory that config names.
- The RENDERED `jupyterhub.hub.extraConfig` snippets (the chart's own
  00-add-dask-gateway-values merged with the hub's values) run against a
  traitlets Config, with the environment the z2jh chart gives the hub pod.
"""

from __future__ import annotations

import base64
import copy
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import dask
import dask.config
import dask_gateway  # registers its config defaults before any test sets config
import psutil
import pytest
import yaml

from conftest import CHART
from hub_cells import rendered_hub
from hub_template.checks.hub import Hub
from hub_template.checks.runtime import runtime_config
from hub_template.helm_values import Chart, ValuesFile

BIN = Path(sys.executable).parent
PASSWORD = "hub-template-tests"
START_TIMEOUT = 30

SERVER_CONFIG = '''\
# Local stand-ins for what the chart's gateway ConfigMap sets for Kubernetes.
from dask_gateway_server.backends.local import LocalClusterConfig
from traitlets import Float, Unicode


class HubClusterConfig(LocalClusterConfig):
    """LocalClusterConfig with the KubeClusterConfig fields the hub's handler sets."""

    image = Unicode(config=True)
    worker_cores = Float(1, min=0, config=True)


c.DaskGateway.address = "127.0.0.1:{api_port}"
c.Proxy.address = "127.0.0.1:{proxy_port}"
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.UnsafeLocalBackend.cluster_config_class = HubClusterConfig
c.UnsafeLocalBackend.clusters_directory = {clusters!r}
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.SimpleAuthenticator.password = {password!r}
# Current distributed has no dask-scheduler / dask-worker executables.
c.ClusterConfig.scheduler_cmd = ["dask", "scheduler"]
c.ClusterConfig.worker_cmd = ["dask", "worker"]
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def extra_config(snippets) -> str:
    """The chart's rendering of gateway.extraConfig: a string as is, a mapping sorted by key."""
    if isinstance(snippets, str):
        return "# From gateway.extraConfig\n" + snippets
    return "".join(f"\n# From gateway.extraConfig.{key}\n{snippets[key]}" for key in sorted(snippets))


def hub_values(hub: Path, env: str = "staging") -> dict[str, dict]:
    """Each subchart's values for one release, merged as helm merges them."""
    files = [ValuesFile.load(hub / rel, rel) for rel in ("config/common.yaml", f"config/{env}.yaml")]
    return Chart(CHART).merged([f.data["daskhub"] for f in files])


def no_proxy_opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def hub(template_repo, tmp_path_factory) -> Path:
    return rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", "gateway")


@pytest.fixture(scope="module")
def answers(hub) -> dict:
    return yaml.safe_load((hub / ".copier-answers.yml").read_text())


@pytest.fixture(scope="module")
def gateway(hub, tmp_path_factory):
    """A dask-gateway-server running the hub's rendered extraConfig; yields its public address."""
    work = tmp_path_factory.mktemp("gateway")
    clusters = work / "clusters"
    clusters.mkdir()
    api_port, proxy_port = free_port(), free_port()
    snippets = hub_values(hub)["dask-gateway"]["gateway"]["extraConfig"]
    config = work / "dask_gateway_config.py"
    config.write_text(SERVER_CONFIG.format(api_port=api_port, proxy_port=proxy_port, clusters=str(clusters),
                                           password=PASSWORD) + extra_config(snippets))
    env = {**os.environ, "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")])}
    log = (work / "server.log").open("w")
    server = subprocess.Popen([str(BIN / "dask-gateway-server"), "-f", str(config)], cwd=work, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{proxy_port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with no_proxy_opener().open(f"{address}/api/health", timeout=2) as response:
                    if json.loads(response.read())["status"] == "pass":
                        break
            except (urllib.error.URLError, ConnectionError, OSError, KeyError):
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dask-gateway-server did not start:\n{(work / 'server.log').read_text()}")
            time.sleep(0.2)
        yield address
    finally:
        server.send_signal(signal.SIGTERM)  # it stops its clusters on the way out
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        # Schedulers and workers run in their own sessions, in our clusters folder: stop any left.
        for proc in psutil.process_iter(["pid"]):
            try:
                if Path(proc.cwd()).is_relative_to(clusters):
                    proc.kill()
            except (psutil.Error, OSError):
                continue


@pytest.fixture
def client_config(hub, gateway, answers, monkeypatch):
    """The dask config the rendered image reads, with only address and auth pointed at loopback."""
    runtime = runtime_config(Hub(hub))
    assert runtime.error is None and runtime.config
    # A notebook's own image, which DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE passes to workers.
    monkeypatch.setenv("JUPYTER_IMAGE_SPEC", f"{answers['image_name']}:2026-11-26")
    loopback = {"gateway": {"address": gateway, "auth": {"type": "basic",
                                                         "kwargs": {"username": "jovyan", "password": PASSWORD}}}}
    config = dask.config.merge(copy.deepcopy(runtime.config), loopback)
    with dask.config.set(_leaves(config)):
        yield config


def closed(gateway) -> None:
    """dask-gateway 2026.3's Gateway.__del__ closes the client again, and a
    stopped distributed LoopRunner raises on that (inside __del__, where no one
    can catch it). A closed client needs no runner: drop it, so __del__ skips."""
    gateway.__dict__.pop("_loop_runner", None)


def _leaves(config: dict, prefix: str = "") -> dict:
    """Dotted keys for dask.config.set, so unrelated defaults stay in place."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_a_cluster_from_the_labextension_factory_computes(client_config, answers):
    import dask.array as da

    with dask_gateway.Gateway() as gw:
        options = gw.cluster_options()
        assert set(options) == {"worker_cores", "worker_memory", "image"}
        assert options.worker_cores == answers["worker_cores"]
        assert options.worker_memory == answers["worker_memory"]
        assert options.image == os.environ["JUPYTER_IMAGE_SPEC"]
    closed(gw)

    factory = client_config["labextension"]["factory"]
    cluster_class = getattr(importlib.import_module(factory["module"]), factory["class"])
    cluster = cluster_class(*factory["args"], **factory["kwargs"])
    try:
        cluster.scale(1)
        with cluster.get_client() as client:
            client.wait_for_workers(1, timeout=60)
            x = da.ones((400, 400), chunks=(100, 100))
            assert (x + x.T).sum().compute() == 2 * 400 * 400
            assert len(client.scheduler_info()["workers"]) == 1
    finally:
        cluster.shutdown()
        closed(cluster.gateway)


def test_the_limits_bite(client_config, answers):
    """GatewayCluster(**kwargs) submits through Gateway.new_cluster, as here: the
    options go to the server as given, and the hub's options refuse them there."""
    too_many = answers["worker_cores_max"] * 2
    with dask_gateway.Gateway() as gw:
        with pytest.raises(ValueError, match=rf"worker_cores must be <= {answers['worker_cores_max']:f}, got {too_many}"):
            gw.new_cluster(worker_cores=too_many)
        with pytest.raises(ValueError, match=rf"Workers run this hub's image, {answers['image_name']}:<tag>"):
            gw.new_cluster(image="docker.io/someone/else:latest")
        options = gw.cluster_options()
        with pytest.raises(ValueError, match="worker_memory must be <="):
            options.worker_memory = answers["worker_memory_max"] + 1  # the same bound, client side
        assert gw.list_clusters() == []  # the refused requests started nothing
    closed(gw)


@pytest.mark.parametrize("backend", ["gateway", "kubernetes"])
@pytest.mark.parametrize("https", [True, False], ids=["proxy-http", "proxy-public"])
def test_the_hub_extra_config_runs_against_a_traitlets_config(template_repo, tmp_path_factory, monkeypatch,
                                                               capsys, backend, https):
    from traitlets.config import Config

    hub = rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", backend)
    jupyterhub = hub_values(hub)["jupyterhub"]
    release = "charlie-staging"
    # What the z2jh 4.4 hub pod gets: its deployment sets HELM_RELEASE_NAME and
    # POD_NAMESPACE; Kubernetes adds PROXY_HTTP_* when autohttps made a proxy-http service.
    monkeypatch.setenv("HELM_RELEASE_NAME", release)
    monkeypatch.setenv("POD_NAMESPACE", release)
    if https:
        monkeypatch.setenv("PROXY_HTTP_SERVICE_HOST", "10.0.0.7")
        monkeypatch.setenv("PROXY_HTTP_SERVICE_PORT", "8000")
    else:
        monkeypatch.delenv("PROXY_HTTP_SERVICE_HOST", raising=False)
        monkeypatch.delenv("PROXY_HTTP_SERVICE_PORT", raising=False)
    # What z2jh's jupyterhub_config.py sets before it execs hub.extraConfig, sorted by key.
    c = Config()
    c.KubeSpawner.environment = dict(jupyterhub["singleuser"].get("extraEnv") or {})
    c.JupyterHub.services = [{**service, "name": name}
                             for name, service in (jupyterhub["hub"].get("services") or {}).items()]
    snippets = jupyterhub["hub"].get("extraConfig") or {}
    for key, source in sorted(snippets.items()):
        exec(compile(source, f"hub.extraConfig.{key}", "exec"), {"c": c})
    capsys.readouterr()  # the chart's snippet prints what it sets

    env = c.KubeSpawner.environment
    if backend == "kubernetes":
        assert "00-add-dask-gateway-values" not in snippets
        assert not any(name.startswith("DASK_GATEWAY__") for name in env)
        assert [s["name"] for s in c.JupyterHub.services] == []
        assert jupyterhub["singleuser"]["serviceAccountName"] == "daskkubernetes"
        return
    assert "00-add-dask-gateway-values" in snippets
    image_config = runtime_config(Hub(hub)).config["gateway"]
    if https:
        assert env["DASK_GATEWAY__ADDRESS"] == "http://10.0.0.7:8000/services/dask-gateway/"
    else:  # the address the image's own config falls back to
        assert env["DASK_GATEWAY__ADDRESS"] == image_config["address"] == "http://proxy-public/services/dask-gateway"
    assert env["DASK_GATEWAY__PROXY_ADDRESS"] == f"gateway://traefik-{release}-dask-gateway.{release}:80"
    assert env["DASK_GATEWAY__PUBLIC_ADDRESS"] == image_config["public-address"]
    assert env["DASK_GATEWAY__AUTH__TYPE"] == image_config["auth"]["type"] == "jupyterhub"
    assert env["DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE"] == "{JUPYTER_IMAGE_SPEC}"  # the hub's own value kept
    (service,) = [s for s in c.JupyterHub.services if s["name"] == "dask-gateway"]
    assert service["url"] == f"http://traefik-{release}-dask-gateway.{release}"
