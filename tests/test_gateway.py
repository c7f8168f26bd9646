"""The rendered hub's dask pieces, run for real on 127.0.0.1.

- A real dask-gateway-server whose configuration is the RENDERED
  `dask-gateway.gateway.extraConfig` snippets, appended (sorted by key) after a
  local setup, as the chart's gateway ConfigMap appends them after its own.
  The local setup is `hub-template preview`'s (hub_template.preview), and a
  test asserts it replaces only the listed backend, addresses and auth: the
  scheduler and worker commands, options and limits are the hub's own.
- A client, in its own process as in a notebook (tests/gateway_client.py),
  configured by the dask config the RENDERED image installs (its postBuild
  run as the checker runs it), with only the address and the auth set to
  loopback and basic auth by DASK_GATEWAY__* variables, as helm sets them in
  the hub; it makes its cluster with the labextension factory that config names.
- The RENDERED `jupyterhub.hub.extraConfig` snippets (the chart's own
  00-add-dask-gateway-values merged with the hub's values) run against a
  traitlets Config, with the environment the z2jh chart gives the hub pod.
"""

from __future__ import annotations

import ctypes
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

import psutil
import pytest
import yaml
from conftest import BIN, chart_data
from hub_cells import rendered_hub

from hub_template import load_data
from hub_template.checks.hub import Hub
from hub_template.checks.runtime import runtime_config
from hub_template.helm_values import Chart, ValuesFile
from hub_template.preview import gateway_config

PASSWORD = "hub-template-tests"
START_TIMEOUT = 30
CLIENT_TIMEOUT = 120  # a client step takes seconds; a hang must fail, not stall the suite

# The gateway runs with what a notebook image resolves today: distributed 2026.6
# and newer have no dask-scheduler/dask-worker scripts (the test extra pins it).
NO_LEGACY_SCRIPTS = "2026.6"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hub_values(hub: Path, env: str = "staging") -> dict[str, dict]:
    """Each chart's values for one release, merged as helm merges them: daskhub's
    subcharts, or the jupyterhub chart alone that a kubernetes hub deploys."""
    files = [ValuesFile.load(hub / rel, rel) for rel in ("config/common.yaml", f"config/{env}.yaml")]
    chart = Chart(chart_data())
    if "daskhub" not in files[0].data:
        return {"jupyterhub": chart.direct("jupyterhub", [f.data["jupyterhub"] for f in files])}
    return chart.merged([f.data["daskhub"] for f in files])


def no_proxy_opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _die_with_parent() -> None:
    """Linux: SIGTERM the server if pytest dies without tearing down (a killed
    run), so it still stops its clusters and exits."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@pytest.fixture(scope="module")
def hub(template_repo, tmp_path_factory) -> Path:
    return rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", "gateway")


@pytest.fixture(scope="module")
def answers(hub) -> dict:
    return yaml.safe_load((hub / ".copier-answers.yml").read_text())


@pytest.fixture(scope="module")
def gateway_files(hub, tmp_path_factory) -> dict:
    """dask_gateway_config.py as the preview writes it: the rendered extraConfig
    after the local stand-ins, which are the preview's printed overrides only."""
    work = tmp_path_factory.mktemp("gateway")
    clusters = work / "clusters"
    clusters.mkdir()
    api_port, proxy_port = free_port(), free_port()
    gateway_values = hub_values(hub)["dask-gateway"]["gateway"]
    settings = gateway_config.local_settings(api_port, proxy_port, clusters, password=PASSWORD)
    config = work / "dask_gateway_config.py"
    config.write_text(gateway_config.config_text(settings, gateway_values["extraConfig"], gateway_values))
    return {
        "work": work,
        "clusters": clusters,
        "config": config,
        "settings": settings,
        "address": f"http://127.0.0.1:{proxy_port}{gateway_values['prefix']}",
        "values": gateway_values,
    }


def test_the_gateway_runs_the_rendered_config_with_only_the_listed_overrides(gateway_files):
    from traitlets.config import PyFileConfigLoader

    def load(path: Path) -> dict[str, object]:
        config = PyFileConfigLoader(path.name, str(path.parent)).load_config()
        # Options objects compare by identity: compare what they offer users.
        return {
            f"{cls}.{trait}": value.get_specification() if hasattr(value, "get_specification") else value
            for cls, traits in config.items()
            for trait, value in traits.items()
        }

    rendered_only = gateway_files["work"] / "rendered_only.py"
    values = gateway_files["values"]
    rendered_only.write_text(gateway_config.config_text({}, values["extraConfig"], values))
    full, hubs = load(gateway_files["config"]), load(rendered_only)
    changed = {key for key in full.keys() | hubs.keys() if full.get(key) != hubs.get(key)}
    listed = gateway_config.listed(gateway_files["settings"])
    assert changed == {o.target for o in listed} == set(gateway_files["settings"])
    assert [o.target for o in listed] == [
        "DaskGateway.backend_class",
        "UnsafeLocalBackend.cluster_config_class",
        "UnsafeLocalBackend.clusters_directory",
        "DaskGateway.address",
        "Proxy.address",
        "DaskGateway.authenticator_class",
        "SimpleAuthenticator.password",
    ]
    # Nothing the hub itself decides is set by the stand-ins: the commands come from the hub.
    assert not any(target.startswith("ClusterConfig.") for target in changed)
    assert hubs["ClusterConfig.scheduler_cmd"] == ["dask", "scheduler"]


def test_the_gateway_runs_a_distributed_without_the_legacy_scripts():
    """What the image resolves today (environment.yml leaves distributed
    unpinned): the hub must name `dask scheduler`/`dask worker` itself."""
    from importlib.metadata import version

    from packaging.version import Version

    assert Version(version("distributed")) >= Version(NO_LEGACY_SCRIPTS)
    assert not (BIN / "dask-scheduler").exists() and not (BIN / "dask-worker").exists()


@pytest.fixture(scope="module")
def gateway(gateway_files):
    """A dask-gateway-server running the hub's rendered extraConfig; yields its public address."""
    work, clusters, config = gateway_files["work"], gateway_files["clusters"], gateway_files["config"]
    env = {**os.environ, "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")])}
    log = (work / "server.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "dask-gateway-server"), "-f", str(config)],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    address = gateway_files["address"]
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


def run_client(step: str, env: dict, *args: str) -> dict:
    """tests/gateway_client.py in its own process, as a notebook would be, bounded in time."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("gateway_client.py")), step, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def client_env(hub, gateway, answers) -> dict:
    """A notebook pod's environment: the dask config the rendered image installs,
    with only the gateway's address and auth set by variables, as helm sets them."""
    installed = runtime_config(Hub(hub)).files
    assert [f.label for f in installed] == ["image/.dask/config.yaml"]  # what postBuild put in the image
    env = {name: value for name, value in os.environ.items() if not name.startswith("DASK_")}
    return {
        **env,
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
        "DASK_CONFIG": str(hub / installed[0].label),
        "DASK_GATEWAY__ADDRESS": gateway,
        "DASK_GATEWAY__AUTH__TYPE": "basic",
        "DASK_GATEWAY__AUTH__KWARGS": repr({"username": "jovyan", "password": PASSWORD}),
        # A notebook's own image, which DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE passes to workers.
        "JUPYTER_IMAGE_SPEC": f"{answers['image_name']}:2026-11-26",
    }


def test_the_client_lists_the_options_the_handler_exposes(client_env, answers):
    options = run_client("options", client_env)
    assert options.keys() == {"worker_cores", "worker_memory", "image"}
    assert options["worker_cores"] == {
        "value": float(answers["worker_cores"]),
        "min": 0.25,
        "max": float(answers["worker_cores_max"]),
    }
    assert options["worker_memory"]["value"] == float(answers["worker_memory"])
    assert options["worker_memory"]["max"] == float(answers["worker_memory_max"])
    assert options["image"]["value"] == client_env["JUPYTER_IMAGE_SPEC"]  # from the image's config


def test_a_cluster_from_the_labextension_factory_computes(client_env):
    result = run_client("compute", client_env)
    assert result == {
        "factory": "dask_gateway.GatewayCluster",
        "cluster": "GatewayCluster",
        "sum": 2 * 400 * 400,
        "workers": 1,
    }


def test_schedulers_and_workers_listen_on_loopback_only(client_env, gateway_files):
    """The preview's clusters are reachable from this machine only: every
    socket their schedulers, nannies and workers listen on is 127.0.0.1
    (`dask worker` binds every interface unless the backend names a host)."""
    client = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("gateway_client.py")), "compute"],
        env=client_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    listening: dict[str, set[str]] = {}
    try:
        while client.poll() is None:
            for proc in psutil.process_iter(["cmdline"]):
                try:
                    if not Path(proc.cwd()).is_relative_to(gateway_files["clusters"]):
                        continue
                    role = "worker" if "worker" in " ".join(proc.info["cmdline"] or []) else "scheduler"
                    for conn in proc.net_connections(kind="inet"):
                        if conn.status == psutil.CONN_LISTEN:
                            listening.setdefault(role, set()).add(conn.laddr.ip)
                except (psutil.Error, OSError):
                    continue
            time.sleep(0.1)
        _, err = client.communicate(timeout=CLIENT_TIMEOUT)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, err
    assert listening.keys() == {"scheduler", "worker"}, listening
    assert listening == {"scheduler": {"127.0.0.1"}, "worker": {"127.0.0.1"}}


def test_the_dask_panels_new_button_makes_a_cluster(client_env):
    """+NEW with the image's labextension defaults (an `adapt` there fails:
    GatewayCluster.adapt() is a coroutine the panel never awaits)."""
    made = run_client("panel", client_env)
    assert made == {"name": "GatewayCluster 1", "workers": 1, "adapt": None, "clusters left": 0}


def test_the_limits_bite(client_env, answers):
    too_big = {
        "worker_cores": float(answers["worker_cores_max"]) * 2,
        "worker_memory": float(answers["worker_memory_max"]) + 1,
        "image": "docker.io/someone/else:latest",
    }
    refused = run_client("limits", client_env, json.dumps(too_big))
    assert (
        refused["worker_cores"]
        == f"worker_cores must be <= {float(answers['worker_cores_max']):f}, got {too_big['worker_cores']}"
    )
    assert refused["worker_memory"].startswith(f"worker_memory must be <= {float(answers['worker_memory_max']):f}")
    assert refused["worker_memory (client)"] == refused["worker_memory"]  # the same bound, client side
    assert refused["image"].startswith(f"Workers run this hub's image, {answers['image_name']}:<tag>")
    assert refused["clusters"] == 0  # the refused requests started nothing


def test_workers_run_an_image_offered_at_login_and_no_other(client_env, hub, answers):
    """A notebook on the pangeo-notebook choice (its JUPYTER_IMAGE_SPEC, which
    the image's dask config passes as the image option) gets a cluster that
    computes; an image the hub does not offer, or another tag of an offered
    one, is refused. The local backend runs every worker on this machine's
    Python whatever the image: the handler's decision is what is tested."""
    jupyterhub = hub_values(hub)["jupyterhub"]
    offered = [
        choice["kubespawner_override"]["image"]
        for profile in jupyterhub["singleuser"]["profileList"]
        for choice in profile["profile_options"]["image"]["choices"].values()
        if choice["kubespawner_override"].get("image")
    ]
    pangeo = offered[0]
    assert pangeo.startswith("pangeo/pangeo-notebook:")  # the default's fallback image
    on_pangeo = {**client_env, "JUPYTER_IMAGE_SPEC": pangeo}
    assert run_client("options", on_pangeo)["image"]["value"] == pangeo
    assert run_client("compute", on_pangeo)["workers"] == 1
    other_tag = pangeo.rpartition(":")[0] + ":2020.01.01"
    refused = run_client("limits", client_env, json.dumps({"image": other_tag}))
    assert refused["image"] == (
        f"Workers run this hub's image, {answers['image_name']}:<tag>, or one offered at login "
        f"({pangeo}); got {other_tag!r}."
    )
    assert refused["clusters"] == 0


@pytest.mark.parametrize("backend", ["gateway", "kubernetes"])
@pytest.mark.parametrize("https", [True, False], ids=["proxy-http", "proxy-public"])
def test_the_hub_extra_config_runs_against_a_traitlets_config(
    template_repo, tmp_path_factory, monkeypatch, capsys, backend, https
):
    from traitlets.config import Config, PyFileConfigLoader

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
    c.JupyterHub.services = [
        {**service, "name": name} for name, service in (jupyterhub["hub"].get("services") or {}).items()
    ]
    snippets = jupyterhub["hub"].get("extraConfig") or {}
    for key, source in sorted(snippets.items()):
        exec(compile(source, f"hub.extraConfig.{key}", "exec"), {"c": c})
    capsys.readouterr()  # the chart's snippet prints what it sets

    env = c.KubeSpawner.environment
    if backend == "kubernetes":
        assert "00-add-dask-gateway-values" not in snippets
        assert not any(name.startswith("DASK_GATEWAY__") for name in env)
        # The health check's service only (data/health.yml): no dask-gateway.
        assert [s["name"] for s in c.JupyterHub.services] == [load_data("health.yml")["service"]]
        account = yaml.safe_load((hub / "config" / "common.yaml").read_text())["deployment"]["serviceAccount"]
        assert jupyterhub["singleuser"]["serviceAccountName"] == account["name"]
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

    # The dask panel (dask-labextension 7) shows a dashboard only from a link
    # under the user's server's proxy/: the image's start makes the gateway's
    # links so, to the host and port this pod reaches the gateway at ...
    pod = {
        **{name: str(value) for name, value in env.items()},
        "PATH": os.pathsep.join([str(BIN), "/usr/bin", "/bin"]),
        "HOME": str(tmp_path_factory.mktemp("home")),
        "REPO_DIR": str(hub / "image"),
        "JUPYTERHUB_SERVICE_PREFIX": "/user/jovyan/",
    }
    started = subprocess.run(
        ["bash", str(hub / "image" / "binder" / "start"), "env"], env=pod, capture_output=True, text=True
    )
    assert started.returncode == 0, started.stderr
    pod_env = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
    host, port = ("10.0.0.7", "8000") if https else ("proxy-public", "80")
    assert pod_env["DASK_GATEWAY__PUBLIC_ADDRESS"] == f"/user/jovyan/proxy/{host}:{port}/services/dask-gateway"
    # ... and the Jupyter config its postBuild installs lets jupyter-server-proxy reach that host.
    prefix = tmp_path_factory.mktemp("prefix")
    built = subprocess.run(
        ["bash", "binder/postBuild"],
        cwd=hub / "image",
        env={**pod, "NB_PYTHON_PREFIX": str(prefix)},
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    monkeypatch.setenv("DASK_GATEWAY__ADDRESS", env["DASK_GATEWAY__ADDRESS"])
    server_config = PyFileConfigLoader("jupyter_server_config.py", str(prefix / "etc" / "jupyter")).load_config()
    assert host in server_config.ServerProxy.host_allowlist
