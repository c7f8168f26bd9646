"""`hub-template preview --smoke`, for real: JupyterHub, configurable-http-proxy,
dask-gateway-server and JupyterLab on loopback, driven by Debian's Chromium
through playwright, on the default hub and on a hub made from a notebook
repository. Screenshots land in test-artifacts/ (CI uploads the folder).

Where Chromium or configurable-http-proxy is absent the tests skip, saying how
to install it; .ci/run installs both, so there they run.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml
from conftest import BIN, ROOT, chart_data, git, render, skip_unless_required

from hub_template.preview import overrides
from hub_template.preview.smoke import CHROMIUM, MODIFIED_ON_OPEN

ARTIFACTS = ROOT / "test-artifacts" / "preview"
README_SHOT = ROOT / "docs" / "preview.png"
TIMEOUT = 1500  # s: a first run makes the users' environment (uv, or pip), once per environment.yml

STEPS = ["log in through the form", "the server starts, JupyterLab opens"]
GATEWAY_STEPS = [
    "the dask panel's +NEW makes a cluster with the hub's options",
    "the dask panel shows the cluster's dashboard",
    "a Task Stream pane updates while the cluster computes",
]
END_STEPS = ["the limits refuse a too-large worker", "the dask panel's cluster shuts down"]
NOTEBOOKS_STEP = "the hub's notebooks run (hub-template run-notebooks)"
NOT_ASKED = "not applicable: not asked (--notebooks)"

browser = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no {CHROMIUM}: apt-get install chromium (.ci/run does)"),
    pytest.mark.skipif(
        shutil.which("configurable-http-proxy") is None,
        reason="no configurable-http-proxy: npm install -g configurable-http-proxy (.ci/run does)",
    ),
]


@pytest.fixture
def needs_browser():
    for mark in browser:
        if mark.args[0]:
            pytest.skip(mark.kwargs["reason"])


def preview(hub: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    tmp = Path(tempfile.mkdtemp(prefix="preview-tmpdir-"))  # its own, to see what it leaves there
    env = {**os.environ, "HUB_TEMPLATE_CHART_DATA": str(chart_data()), "TMPDIR": str(tmp)}
    before = {p.pid for p in psutil.process_iter()}
    done = subprocess.run(
        [str(BIN / "hub-template"), "preview", str(hub), "--smoke", "--artifacts", str(ARTIFACTS / name), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    (ARTIFACTS / name).mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / name / "output.txt").write_text(done.stdout + done.stderr)
    # A failed preview keeps its programs' logs in its folder: into the artifacts (CI uploads them).
    logs = [Path(log) for log in re.findall(r"(/\S+/hub-template-preview-[^/\s]+/[^/\s,]+\.log)", done.stderr)]
    for log in logs:
        shutil.copyfile(log, ARTIFACTS / name / log.name)
    for folder in {log.parent for log in logs}:
        shutil.rmtree(folder, ignore_errors=True)
    # No leftovers: nothing the preview started outlives it. Its programs work
    # in its folder (hub-template-preview-* in its own TMPDIR, so that another
    # preview on the machine is not taken for it) and Chromium in the artifacts'.
    leftovers = []
    for p in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        if p.pid in before or p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        where = f"{p.info['cwd'] or ''} {' '.join(p.info['cmdline'] or [])}"
        if str(tmp) in where or str(ARTIFACTS / name) in where:
            leftovers.append(p.info["cmdline"])
    assert leftovers == [], leftovers
    assert _preview_folders(tmp) == []  # its folder is removed, whether it passed or failed
    shutil.rmtree(tmp, ignore_errors=True)
    return done


def smoke_lines(stdout: str) -> list[str]:
    return [
        re.sub(r"\s+\d+\.\d s$", "", line[len("smoke: ") :]).rstrip()
        for line in stdout.splitlines()
        if line.startswith("smoke: ") and not line.startswith("smoke: passed")
    ]


def printed_block(stdout: str, title: str) -> list[str]:
    """The names of the indented lines right under ``title``."""
    lines = stdout.splitlines()
    block = itertools.takewhile(lambda line: line.startswith("  "), lines[lines.index(title) + 1 :])
    return [line.strip().split(":")[0] for line in block]


def printed_overrides(stdout: str) -> list[str]:
    return printed_block(stdout, "replaced, as a preview must (everything else is the hub's own):")


def printed_sizes(stdout: str) -> list[str]:
    return printed_block(stdout, "sizes offered at login (KubeSpawner's form; here a local process each):")


def test_a_kubernetes_backend_hub_is_refused_in_one_line(template_repo, tmp_path):
    hub = render(template_repo, tmp_path / "deployments" / "charlie", dask_backend="kubernetes")
    done = subprocess.run(
        [str(BIN / "hub-template"), "preview", str(hub), "--chart", str(chart_data())], capture_output=True, text=True
    )
    assert done.returncode != 0
    (line,) = done.stderr.strip().splitlines()
    assert line == (
        "hub-template preview: charlie uses the kubernetes dask backend, whose clusters need Kubernetes: "
        "preview runs gateway hubs"
    )


def test_the_hub_config_is_z2jhs_loading_with_only_the_listed_overrides(template_repo, tmp_path, monkeypatch):
    """The generated jupyterhub_config.py, loaded by traitlets as JupyterHub
    loads it, differs from z2jh's loading of the same values by exactly the
    printed list (overrides.HUB)."""
    from traitlets.config import PyFileConfigLoader

    from hub_template.preview import command, hub_config

    hub = render(template_repo, tmp_path / "deployments" / "charlie")
    values = command.read(hub, chart_data())["values"]
    ports = hub_config.Ports(*range(40001, 40006))
    plan = hub_config.plan(
        values,
        ports=ports,
        work=tmp_path,
        password="pw",
        chp="configurable-http-proxy",
        cmd=["bash", "start", "jupyterhub-singleuser"],
        user_env={
            "PATH": "/env/bin",
            "REPO_DIR": str(hub / "image"),
            "DASK_ROOT_CONFIG": "/x",
            "JUPYTER_CONFIG_PATH": "/y",
        },
        gateway_token="t",
        image_spec="img:preview",
    )
    full = hub_config.write(tmp_path, plan)
    z2jh = tmp_path / "z2jh_only.py"
    z2jh.write_text(hub_config.z2jh_part())
    for name in ("HELM_RELEASE_NAME", "POD_NAMESPACE", "PROXY_HTTP_SERVICE_HOST"):
        monkeypatch.delenv(name, raising=False)

    def load(path: Path) -> dict:
        config = PyFileConfigLoader(path.name, str(path.parent)).load_config()
        return {f"{cls}.{trait}": value for cls, traits in config.items() for trait, value in traits.items()}

    preview, theirs = load(full), load(z2jh)
    changed = {key for key in preview.keys() | theirs.keys() if preview.get(key) != theirs.get(key)}
    listed = [o.target for o in overrides.HUB]
    assert changed == {t for t in listed if not t.startswith("env ")}
    # The users' environment: KubeSpawner's (the hub's extraEnv and the chart's
    # snippet) with only the listed variables replaced or added.
    kube, local = theirs["KubeSpawner.environment"], preview["Spawner.environment"]
    replaced = {name for name in kube.keys() | local.keys() if kube.get(name) != local.get(name)}
    expanded = {name for name, value in kube.items() if "$(" in str(value)}
    assert replaced == {t[4:] for t in listed if t.startswith("env ") and t != "env $(VAR)"} | expanded
    assert expanded == {"SCRATCH_BUCKET", "PANGEO_SCRATCH"}
    assert theirs["JupyterHub.authenticator_class"] == "github"  # the hub's own, replaced
    assert "GitHubOAuthenticator.allowed_organizations" not in changed
    # The health service and its role, as z2jh loads them; the fresh secrets'
    # placeholder (public: it is in the template) is never a token.
    services = {s["name"]: s for s in preview["JupyterHub.services"]}
    assert "api_token" not in services["hub-health"]
    roles = {r["name"]: r for r in preview["JupyterHub.load_roles"]}
    assert roles["hub-health"]["services"] == ["hub-health"]
    assert roles["hub-health"]["scopes"] == ["servers!user=health_check", "access:servers!user=health_check"]


def test_run_notebooks_refuses_a_token_it_cannot_use_before_asking_the_hub(template_repo, tmp_path):
    """What fails the deploy job's health step (exit 2): the rendered
    placeholder, a file git-crypt still locks, secrets of a hub made before
    the service (no apiToken). Port 9 (discard) would refuse any request."""
    hub = render(template_repo, tmp_path / "deployments" / "charlie")
    locked = tmp_path / "locked.yaml"
    locked.write_bytes(b"\0GITCRYPT\0" + os.urandom(64))
    older = tmp_path / "older.yaml"
    older.write_text(re.sub(r"(?ms)^      services:.*", "", (hub / "secrets" / "staging.yaml").read_text()))
    for secrets_file, said in [
        (hub / "secrets" / "staging.yaml", "is still the template's placeholder, which the hub refuses as a token"),
        (locked, "is git-crypt encrypted: `git-crypt unlock` first"),
        (older, "sets no jupyterhub.hub.services.hub-health.apiToken: add it"),
    ]:
        done = subprocess.run(
            [str(BIN / "hub-template"), "run-notebooks", "http://127.0.0.1:9", "--secrets", str(secrets_file)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 2 and said in done.stderr, done.stderr
        assert done.stdout == ""


def test_a_dropped_connection_is_asked_again_and_an_unreachable_hub_is_said_at_once():
    """After a deploy the proxy may drop a connection (its pod replaced, or
    busy): run-notebooks asks again, as it does for a proxy with no route yet.
    A hub that refuses the connection is unreachable: said at once."""
    import asyncio
    import socket
    import struct

    from hub_template.preview import PreviewError
    from hub_template.preview.notebooks import Api, Dropped

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted = []

    def serve() -> None:
        while len(accepted) < 3:
            conn, _ = listener.accept()
            accepted.append(conn)
            conn.recv(65536)
            if len(accepted) < 3:  # the first two are reset, as a replaced proxy does
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                body = b'{"name": "health_check"}'
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
                conn.sendall(b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    api = Api(f"http://127.0.0.1:{port}", "not-a-real-token")
    assert asyncio.run(api.request("GET", "/hub/api/users/health_check")) == {"name": "health_check"}
    assert len(accepted) == 3
    listener.close()
    thread.join(5)

    with pytest.raises(PreviewError) as refused:  # nothing listens there now
        api._request("GET", "/hub/api/users/health_check", None)
    assert not isinstance(refused.value, Dropped)
    assert "Connection refused" in str(refused.value), refused.value


@pytest.mark.slow
def test_the_health_check_runs_as_ci_runs_it_with_the_hubs_own_service(template_repo, tmp_path):
    """CI's health check, for real: the rendered hub's `hub-health` service and
    role, with the token its secrets hold (set as its README says), loaded by
    the preview into a real JupyterHub; `hub-template run-notebooks --secrets`,
    the workflow's command, runs the hub's notebooks in `health_check`'s
    server, and the token can do nothing else."""
    if shutil.which("configurable-http-proxy") is None:
        pytest.skip("no configurable-http-proxy: npm install -g configurable-http-proxy (.ci/run does)")
    import secrets
    import signal
    import urllib.error
    import urllib.request

    from hub_template.preview.notebooks import HEALTH

    hub = render(template_repo, tmp_path / "deployments" / "charlie")
    secrets_file = hub / "secrets" / "staging.yaml"
    token = secrets.token_hex(32)  # `openssl rand -hex 32`, as the README says
    secrets_file.write_text(
        secrets_file.read_text().replace("<hub-template placeholder: hub-health-api-token>", token, 1)
    )
    env = {**os.environ, "HUB_TEMPLATE_CHART_DATA": str(chart_data())}
    running = subprocess.Popen(
        [str(BIN / "hub-template"), "preview", str(hub)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    reader = None
    try:
        url = None
        for line in running.stdout:  # type: ignore[union-attr]
            if match := re.search(r"hub ready in \S+ s at (http://127\.0\.0\.1:\d+)/", line):
                url = match[1]
                break
        assert url, "the preview never said its URL"
        # The preview's further lines are read as they come (a full pipe would
        # stall it) and shown if the run fails.
        later: list[str] = []
        reader = threading.Thread(target=lambda: later.extend(running.stdout), daemon=True)  # type: ignore[arg-type]
        reader.start()
        done = subprocess.run(
            [str(BIN / "hub-template"), "run-notebooks", url, "--secrets", str(secrets_file)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert done.returncode == 0, done.stdout + done.stderr + "\nthe preview said:\n" + "".join(later)
        assert done.stdout.splitlines() == ["notebook welcome.ipynb: pass"]
        assert token not in done.stdout + done.stderr

        def status(method: str, path: str) -> int:
            request = urllib.request.Request(
                url + path, method=method, headers={"Authorization": f"token {token}"}, data=b"{}"
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return response.status
            except urllib.error.HTTPError as error:
                return error.code

        user = HEALTH["user"]
        # The runner stopped the server it started; the user's model is all the token reads.
        assert status("GET", f"/hub/api/users/{user}") == 200
        for method, path in [
            ("GET", "/hub/api/users"),  # no other user
            ("POST", "/hub/api/users/someone"),  # no user made
            ("GET", f"/hub/api/users/{user}/tokens"),  # no token of the user's
            ("PATCH", f"/hub/api/users/{user}"),  # no admin flag
            ("DELETE", f"/hub/api/users/{user}"),
            ("GET", "/hub/api/services"),
        ]:
            assert status(method, path) == 403, (method, path)
    finally:
        running.send_signal(signal.SIGINT)
        if reader is None:
            stopped = running.communicate(timeout=120)[0]
        else:
            running.wait(timeout=120)
            reader.join(30)
            running.stdout.close()  # type: ignore[union-attr]
            stopped = "".join(later)
    assert "stopped every process it started" in stopped, stopped


@pytest.mark.usefixtures("needs_browser")
def test_preview_smoke_of_the_default_hub(template_repo, tmp_path):
    hub = render(template_repo, tmp_path / "deployments" / "charlie")
    # Without --notebooks: run-notebooks is run against a preview as CI runs it by
    # test_the_health_check_runs_as_ci_runs_it_with_the_hubs_own_service, and
    # through the smoke by the notebook repository's smoke below.
    done = preview(hub, "default-hub", "--screenshot", str(ARTIFACTS / "default-hub" / "lab.png"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert smoke_lines(done.stdout) == [
        *STEPS,
        "the workspace opens hub-notebooks/welcome.ipynb",
        "hub-notebooks/welcome.ipynb opens unmodified",  # as JupyterLab would save it, its kernel's metadata too
        *GATEWAY_STEPS,
        "hub-notebooks/welcome.ipynb runs to the end",
        *END_STEPS,
        f"{NOTEBOOKS_STEP:<58} {NOT_ASKED}",
        "the server stops",
    ]
    # What it replaced, printed: the one list, nothing more.
    expected = [
        o.target
        for o in (*overrides.HUB, *overrides.GATEWAY_BACKEND, *overrides.GATEWAY_ADDRESSES, *overrides.GATEWAY_HUB_AUTH)
    ]
    assert printed_overrides(done.stdout) == expected
    # The sizes of the hub's profile list, as KubeSpawner's login form offers them.
    common = yaml.safe_load((hub / "config" / "common.yaml").read_text())
    profiles = common["daskhub"]["jupyterhub"]["singleuser"]["profileList"]
    assert printed_sizes(done.stdout) == [p["slug"] for p in profiles] and len(profiles) == 3
    assert re.search(r"password: \S+\)", done.stdout)
    assert "APPROXIMATE" in done.stdout
    # The README's picture: JupyterLab with the dask panel and the notebook, as the test saw it.
    shot = ARTIFACTS / "default-hub" / "lab.png"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Taken again for docs/ only when asked: a test run leaves the checkout clean.
    if os.environ.get("HUB_TEMPLATE_UPDATE_DOCS"):
        shutil.copyfile(shot, README_SHOT)


@pytest.mark.usefixtures("needs_browser")
def test_preview_smoke_of_a_hub_from_a_notebook_repository(template_repo, tmp_path):
    """A notebook repository's hub: its first notebook opens and runs in
    JupyterLab; --notebooks reports each notebook: pass, the first failing
    cell (a module the image lacks), or needs the cloud (a public bucket)."""
    source = tmp_path / "notebooks"
    source.mkdir()
    import nbformat

    def notebook(name: str, *cells: str) -> None:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}"), *map(nbformat.v4.new_code_cell, cells)]
        nbformat.write(nb, source / name)

    notebook("analysis.ipynb", "import dask.array as da\n\nda.ones((1000, 1000)).sum().compute()")
    notebook("y-search.ipynb", "x = 1", "import satstac")
    notebook(
        "z-goes.ipynb",
        "import urllib.request\n\nurllib.request.urlopen('https://noaa-goes16.s3.amazonaws.com/', timeout=20)",
    )
    git(source, "init", "-q")
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", "notebooks")
    hub = render(template_repo, tmp_path / "deployments" / "charlie", source_repo=str(source))
    assert (hub / "image" / "analysis.ipynb").exists()
    done = preview(hub, "notebook-repository", "--yes", "--notebooks")
    # The source's scripts (merged into the hub's), shown before they ran.
    assert "--- binder/postBuild ---" in done.stdout and "--- binder/start ---" in done.stdout
    lines = smoke_lines(done.stdout)
    assert lines[:2] == STEPS
    assert all(step in lines for step in GATEWAY_STEPS)
    # The workspace opens the source's own notebook (there is no welcome notebook), which runs.
    assert "the workspace opens hub-notebooks/analysis.ipynb" in lines
    assert "hub-notebooks/analysis.ipynb runs to the end" in lines
    # A notebook written with no kernel metadata (nbformat's new_notebook) is
    # one JupyterLab changes on open: the smoke sees it, and says so.
    opened = re.compile(r"hub-notebooks/analysis\.ipynb opens unmodified +not applicable: (.+)")
    assert [m[1] for m in map(opened.fullmatch, lines) if m] == [MODIFIED_ON_OPEN], lines
    report = [line.strip() for line in lines if line.startswith("  notebook ")]
    assert report[:2] == [
        "notebook analysis.ipynb: pass",
        "notebook y-search.ipynb: cell 2 failed: ModuleNotFoundError: No module named 'satstac'",
    ]
    assert report[2].startswith("notebook z-goes.ipynb: cell 1 failed (needs the cloud, unreachable from here): ")
    # A notebook that fails for its own reason fails the smoke, naming it.
    assert done.returncode == 1
    assert (
        "smoke step 'the hub's notebooks run (hub-template run-notebooks)' failed: "
        "notebook y-search.ipynb: cell 2 failed: ModuleNotFoundError: No module named 'satstac'"
    ) in done.stderr


def test_an_uninstallable_package_is_named_by_the_installers_own_lines(tmp_path, monkeypatch):
    """uv's reason (the package it cannot find), not only its last line, and
    a log file that exists with all of uv's output."""
    from hub_template import load_data
    from hub_template.preview import PreviewError, userenv

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    environment = tmp_path / "environment.yml"
    environment.write_text(
        "channels: [conda-forge]\ndependencies:\n  - python=3.12\n  - hub-template-no-such-package\n"
    )
    with pytest.raises(PreviewError) as raised:
        userenv.ensure(environment, load_data("versions.yml")["jupyterhub"], lambda line: None)
    message = str(raised.value)
    assert message.startswith("uv could not install environment.yml's packages; its output ends:\n")
    assert "hub-template-no-such-package was not found in the package registry" in " ".join(message.split())
    log = Path(message.rpartition("all of it: ")[2])
    assert log.is_file() and "hub-template-no-such-package" in log.read_text()


def _no_network(env: dict[str, str]) -> dict[str, str]:
    """``env`` as on a machine with no network: https through a port nothing
    answers on, and no git URL rewritten to ../shared/upstream."""
    proxy = "http://127.0.0.1:9"
    return {**env, "HTTPS_PROXY": proxy, "https_proxy": proxy, "GIT_CONFIG_GLOBAL": os.devnull}


def _preview_folders(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.glob("hub-template-preview-*"))


@pytest.mark.skipif(
    shutil.which("configurable-http-proxy") is None,
    reason="no configurable-http-proxy: npm install -g configurable-http-proxy (.ci/run does)",
)
def test_without_a_chart_the_federations_is_built_once_and_a_failure_is_named_by_its_own_output(
    template_repo, tmp_path
):
    """`preview HUB` with no --chart builds the daskhub chart as the
    federation's CI does (its daskhub action: dask/helm-chart at the pinned
    commit, helm dependency build), the network stood in for by
    ../shared/upstream (tests/standins), into the user's cache; a second
    preview reuses it with no network at all. Where the build fails, one line
    names what was tried and the offline options, and no half chart is kept.
    Each run removes its folder, failed or not; a failing postBuild is named
    by its own output and a log that outlives the folder."""
    from kube_tools import helm
    from standins import UPSTREAM, Boundary

    from hub_template import daskhub_chart
    from hub_template.preview import userenv

    if not (UPSTREAM / "git" / "dask-helm-chart.git").is_dir():
        skip_unless_required(f"no upstream repositories in {UPSTREAM}: keep hub-template beside shared/", "CI")
    hub = render(template_repo, tmp_path / "deployments" / "charlie")
    post_build = hub / "image" / "binder" / "postBuild"
    post_build.write_text(
        post_build.read_text()
        + '\necho "jupyter labextension install: dask-labextension@0.3.0 needs JupyterLab 2" >&2\n'
        + "echo '  warnings.warn(f\"See the log file for details: {log_path!s}\")' >&2\nexit 3\n"
    )
    # A user's cache of their own, but the users' environment this machine made already.
    cache = tmp_path / "cache"
    (cache / "hub-template").mkdir(parents=True)
    userenv.cache_dir().mkdir(parents=True, exist_ok=True)
    (cache / "hub-template" / "preview-envs").symlink_to(userenv.cache_dir())
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    boundary = Boundary(tmp_path / "boundary", template_repo)
    env = {k: v for k, v in boundary.env().items() if k != "HUB_TEMPLATE_CHART_DATA"}
    env.update(XDG_CACHE_HOME=str(cache), TMPDIR=str(tmp), PATH=f"{helm().parent}{os.pathsep}{env['PATH']}")
    command = [str(BIN / "hub-template"), "preview", str(hub)]
    try:
        built = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    finally:
        boundary.close()
    chart = Path(re.search(r"daskhub chart: building \S+ as the federation's CI does, once: (\S+)", built.stdout)[1])
    assert chart.parent == cache / "hub-template" / "daskhub"
    assert yaml.safe_load((chart / "Chart.yaml").read_text())["version"] == "2024.1.2-dev.e25bf51"
    assert sorted(p.name for p in (chart / "charts").iterdir()) == ["dask-gateway-2026.3.0.tgz", "jupyterhub-4.4.0.tgz"]
    served = {f"https://{r['host']}{r['path']}" for r in boundary.requests() if r["status"] == 200}
    assert served == {
        "https://jupyterhub.github.io/helm-chart/index.yaml",
        "https://jupyterhub.github.io/helm-chart/jupyterhub-4.4.0.tgz",
        "https://helm.dask.org/index.yaml",
        "https://helm.dask.org/dask-gateway-2026.3.0.tgz",
    }
    assert sorted(p.name for p in chart.parent.iterdir()) == [chart.name, f"{chart.name}.lock"]  # no scratch left

    offline = subprocess.run(command, env=_no_network(env), capture_output=True, text=True, timeout=TIMEOUT)
    assert f"daskhub chart: reused {chart}" in offline.stdout.splitlines()
    for done in (built, offline):
        assert done.returncode == 1, done.stdout + done.stderr
        assert "image/binder/postBuild failed (exit 3); its output ends:" in done.stderr
        assert "  jupyter labextension install: dask-labextension@0.3.0 needs JupyterLab 2" in done.stderr
        log = Path(re.search(r"all of it: (\S+)", done.stderr)[1])
        assert log.parent.parent == cache / "hub-template" / "preview-logs"
        assert "dask-labextension@0.3.0" in log.read_text()
        assert f"the programs' logs: {log}" in done.stderr
    assert _preview_folders(tmp) == []

    # No network and no chart yet: one line, what was tried, the offline options; nothing cached.
    shutil.rmtree(cache / "hub-template" / "daskhub")
    failed = subprocess.run(command, env=_no_network(env), capture_output=True, text=True, timeout=TIMEOUT)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    (line,) = failed.stderr.splitlines()
    assert line.startswith(
        "hub-template preview: cannot build the daskhub chart (tried git clone https://github.com/dask/helm-chart "
        "at e25bf51): fatal: unable to access 'https://github.com/dask/helm-chart/': "
    )
    assert line.endswith(f"; {daskhub_chart.OFFLINE}")
    assert [p.suffix for p in (cache / "hub-template" / "daskhub").iterdir()] == [".lock"]
    assert _preview_folders(tmp) == []


@pytest.mark.skipif(
    shutil.which("configurable-http-proxy") is None or shutil.which("bwrap") is None,
    reason="no configurable-http-proxy or bwrap: npm install -g configurable-http-proxy; apt-get install bubblewrap",
)
@pytest.mark.parametrize(("stop", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)], ids=["SIGTERM", "Ctrl-C"])
def test_a_stopped_preview_leaves_no_folder_and_no_process(template_repo, tmp_path, stop, code):
    """Stopped while the hub's postBuild runs, the preview stops it and
    removes its folder."""
    hub = render(template_repo, tmp_path / "deployments" / "charlie")
    post_build = hub / "image" / "binder" / "postBuild"
    post_build.write_text(post_build.read_text() + '\ntouch "$NB_PYTHON_PREFIX/postBuild-started"\nsleep 600\n')
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "HUB_TEMPLATE_CHART_DATA": str(chart_data()), "TMPDIR": str(tmp)}
    before = {p.pid for p in psutil.process_iter()}
    preview = subprocess.Popen(
        [str(BIN / "hub-template"), "preview", str(hub)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        for _ in range(TIMEOUT * 2):
            if (
                list(tmp.glob("hub-template-preview-*/nb-python-prefix/postBuild-started"))
                or preview.poll() is not None
            ):
                break
            time.sleep(0.5)
        assert preview.poll() is None, preview.communicate()
        preview.send_signal(stop)
        out, err = preview.communicate(timeout=60)
    finally:
        preview.kill()
    assert preview.returncode == code, (out + err).decode()
    assert _preview_folders(tmp) == []
    left = [p.info["cmdline"] for p in psutil.process_iter(["cmdline"]) if p.pid not in before]
    assert not [cmd for cmd in left if cmd and "sleep" in cmd and "600" in cmd], left


def _fail_after(script: Path, lines: str) -> None:
    script.write_text(script.read_text() + "\n" + lines + "\nexit 3\n")


def _postbuild_log(stderr: str) -> str:
    log = Path(re.search(r"all of it: (\S+)", stderr)[1])
    try:
        return log.read_text()
    finally:
        shutil.rmtree(log.parent, ignore_errors=True)


# What postBuild reports of itself: its user, its whole environment, and
# whether it can read a file of the operator's (the test's OPERATOR_FILE).
WHO_AM_I = 'echo "uid=$(id -u)"; env | sort; cat "$(cat operator-file-path)" 2>/dev/null'
OPERATOR_SECRET = "the operator's own file"


def _operator_file(tmp_path: Path, image: Path) -> None:
    secret = tmp_path / "operator-file"
    secret.write_text(OPERATOR_SECRET)
    secret.chmod(0o600)
    (image / "operator-file-path").write_text(str(secret))


@pytest.mark.skipif(
    shutil.which("configurable-http-proxy") is None or shutil.which("bwrap") is None,
    reason="no configurable-http-proxy or bwrap: npm install -g configurable-http-proxy; apt-get install bubblewrap",
)
def test_postbuild_runs_as_the_images_user_with_only_a_pods_environment(template_repo, tmp_path):
    """Issue 27: postBuild ran as root with the operator's environment."""
    hub = render(template_repo, tmp_path / "deployments" / "charlie")
    _fail_after(hub / "image" / "binder" / "postBuild", WHO_AM_I)
    _operator_file(tmp_path, hub / "image")
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": "operator-secret", "HUB_TEMPLATE_CHART_DATA": str(chart_data())}
    done = subprocess.run(
        [str(BIN / "hub-template"), "preview", str(hub)], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert done.returncode == 1, done.stdout + done.stderr
    log = _postbuild_log(done.stderr)
    assert "uid=1000" in log.splitlines()
    assert "AWS_SECRET_ACCESS_KEY" not in log and "operator-secret" not in log
    assert "HUB_TEMPLATE_CHART_DATA" not in log  # no operator variable
    assert OPERATOR_SECRET not in log  # the sandbox shows only what it needs


@pytest.mark.skipif(
    shutil.which("configurable-http-proxy") is None or shutil.which("bwrap") is None,
    reason="no configurable-http-proxy or bwrap: npm install -g configurable-http-proxy; apt-get install bubblewrap",
)
def test_a_source_repositorys_scripts_are_shown_and_run_only_when_accepted(template_repo, tmp_path):
    source = tmp_path / "notebooks"
    (source / "binder").mkdir(parents=True)
    (source / "binder" / "postBuild").write_text(f"#!/bin/bash\n{WHO_AM_I}\nexit 3\n")
    git(source, "init", "-q")
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", "notebooks")
    hub = render(template_repo, tmp_path / "deployments" / "charlie", source_repo=str(source))
    _operator_file(tmp_path, hub / "image")
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": "operator-secret", "HUB_TEMPLATE_CHART_DATA": str(chart_data())}
    command = [str(BIN / "hub-template"), "preview", str(hub)]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "--- binder/postBuild ---" in refused.stdout and WHO_AM_I in refused.stdout  # what would run, shown
    assert refused.stderr.strip() == (
        "hub-template preview: the source repository's scripts were not accepted: "
        "read them above, then run again with --yes"
    )
    accepted = subprocess.run([*command, "--yes"], env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert accepted.returncode == 1, accepted.stdout + accepted.stderr
    log = _postbuild_log(accepted.stderr)
    assert "uid=1000" in log.splitlines() and "operator-secret" not in log and OPERATOR_SECRET not in log


@pytest.mark.skipif(
    shutil.which("configurable-http-proxy") is None or shutil.which("bwrap") is None,
    reason="no configurable-http-proxy or bwrap: npm install -g configurable-http-proxy; apt-get install bubblewrap",
)
def test_a_url_requirement_is_refused_unless_named(template_repo, tmp_path):
    """Issue 27: a `pkg @ file://...` requirement ran its setup code while the environment was made."""
    hub = render(template_repo, tmp_path / "deployments" / "charlie")
    environment = hub / "image" / "binder" / "environment.yml"
    environment.write_text(environment.read_text() + "  - pip:\n      - evil @ file:///tmp/evil\n")
    done = subprocess.run(
        [str(BIN / "hub-template"), "preview", str(hub), "--chart", str(chart_data())], capture_output=True, text=True
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[0] == (
        "hub-template preview: environment.yml's pip requirement 'evil @ file:///tmp/evil' is a URL or path, "
        "whose setup code would run here: refused unless named, e.g. --allow-requirement 'evil @ file:///tmp/evil'"
    )


UPSTREAM_GIT = ROOT.parent / "shared" / "upstream" / "git"
REPORT_LINE = re.compile(
    r"notebook (?P<name>\S+\.ipynb): (pass|cell \d+ failed( \(needs the cloud, unreachable from here\))?: .+)"
)


@pytest.mark.slow
@pytest.mark.usefixtures("needs_browser")
@pytest.mark.parametrize("repository", ["pangeo-gallery-cmip6", "pythia-cmip6-cookbook"])
def test_a_real_notebook_repository_previews_and_reports_each_notebook(template_repo, tmp_path, repository):
    """A real notebook repository (../shared/upstream/git, as GitHub serves it)
    imported, previewed and walked in Chromium: its first notebook opens, the
    dask panel works, and --notebooks reports every notebook: pass, its first
    failing cell, or that it needs the cloud (public buckets are unreachable here)."""
    source = UPSTREAM_GIT / f"{repository}.git"
    if not source.is_dir():
        pytest.skip(f"no {source}: keep hub-template beside shared/ (as CI does)")
    hub = render(template_repo, tmp_path / "deployments" / "charlie", source_repo=str(source))
    image = hub / "image"
    # What start copies to ~/hub-notebooks: all but binder/ and hidden folders.
    notebooks = sorted(
        str(p.relative_to(image))
        for p in image.rglob("*.ipynb")
        if p.relative_to(image).parts[0] != "binder" and not any(x.startswith(".") for x in p.relative_to(image).parts)
    )
    assert notebooks
    done = preview(hub, repository, "--yes", "--notebooks")
    lines = smoke_lines(done.stdout)
    assert lines[:2] == STEPS, done.stdout + done.stderr
    (opened,) = [line for line in lines if line.startswith("the workspace opens hub-notebooks/")]
    first = opened.removeprefix("the workspace opens ")
    assert all(step in lines for step in GATEWAY_STEPS), lines
    # The first notebook runs in JupyterLab, or the step says why it could not here.
    ran_lines = [line for line in lines if line.startswith(f"{first} runs to the end")]
    assert len(ran_lines) == 1, done.stdout + done.stderr
    (ran,) = ran_lines
    assert ran == f"{first} runs to the end" or re.fullmatch(
        rf"{re.escape(first)} runs to the end +not applicable: it needs the cloud, unreachable from here: cell \d+ .+",
        ran,
    ), ran
    report = [line.strip() for line in lines if line.startswith("  notebook ")]
    matched = [REPORT_LINE.fullmatch(line) for line in report]
    assert all(matched), report
    assert sorted(m["name"] for m in matched if m) == notebooks
    # The smoke passes only if every notebook passed or needs the cloud; else it names the first that failed.
    failed = [line for line in report if not line.endswith(": pass") and "(needs the cloud" not in line]
    assert done.returncode == (1 if failed else 0), done.stdout + done.stderr
    if failed:
        assert failed[0] in done.stderr


def test_a_resolver_that_gives_up_reads_as_the_cloud_out_of_reach():
    """On a busy machine the resolver times out instead of saying the name is
    unknown: the notebook still needs the cloud, it did not fail on its own."""
    import urllib.error

    from hub_template.preview.notebooks import needs_cloud

    assert needs_cloud(f"URLError: {urllib.error.URLError(TimeoutError('timed out'))}")
    assert needs_cloud("URLError: <urlopen error [Errno -2] Name or service not known>")
    assert not needs_cloud("ModuleNotFoundError: No module named 'xesmf'")


def test_only_the_newest_failed_previews_keep_their_logs(tmp_path, capsys):
    """A failed preview's logs stay in the user's cache for reading; the cache
    keeps the newest KEPT_FAILURES of them, not every failure ever."""
    from hub_template.preview.command import KEPT_FAILURES, keep_logs

    cache = tmp_path / "cache" / "preview-logs"
    for i in range(KEPT_FAILURES + 2):
        earlier = cache / f"hub-template-preview-old{i:02}"
        earlier.mkdir(parents=True)
        (earlier / "jupyterhub.log").write_text("an earlier failure\n")
        os.utime(earlier, (1_000_000 + i, 1_000_000 + i))
    work = tmp_path / "hub-template-preview-new"
    work.mkdir()
    (work / "jupyterhub.log").write_text("this failure\n")
    keep_logs(work, cache / work.name, failed=True)
    assert str(cache / work.name / "jupyterhub.log") in capsys.readouterr().err
    newest = [f"hub-template-preview-old{i:02}" for i in range(3, KEPT_FAILURES + 2)]
    assert sorted(d.name for d in cache.iterdir()) == sorted([work.name, *newest])

    passed = tmp_path / "hub-template-preview-passed"
    passed.mkdir()
    (passed / "jupyterhub.log").write_text("fine\n")
    keep_logs(passed, cache / passed.name, failed=False)
    assert sorted(d.name for d in cache.iterdir()) == sorted([work.name, *newest])
