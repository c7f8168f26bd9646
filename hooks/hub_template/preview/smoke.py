"""`--smoke`: the researcher's path through a running preview, in a headless
Debian Chromium driven by playwright. One line per step with its time; a
screenshot of the page at a failure (and, if asked, of JupyterLab at the end).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nbformat

from hub_template.preview import PreviewError, Say
from hub_template.preview.notebooks import needs_cloud

if TYPE_CHECKING:
    from collections.abc import Callable

    from playwright.sync_api import Page

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
USER = "researcher"
GATEWAY_STEPS = (
    "the dask panel's +NEW makes a cluster",
    "the dask panel shows the cluster's dashboard",
    "a Task Stream pane updates while the cluster computes",
)
END_GATEWAY_STEPS = ("the limits refuse a too-large worker", "the dask panel's cluster shuts down")
# The dashboard plots the smoke expects among the panel's buttons.
DASHBOARD_PLOTS = ("Task Stream", "Progress")
SERVER_TIMEOUT = 180_000  # ms: a first server start imports JupyterLab on 2 shared cores
RUN_TIMEOUT = 300_000


@dataclass
class Target:
    url: str  # the proxy's public URL
    password: str
    home: Path  # the user's home folder
    notebook: str | None  # the workspace's notebook, relative to the home
    gateway_prefix: str | None  # "/services/dask-gateway" when the hub has a gateway
    # Why a step does not apply to this hub (the workspace opens no notebook,
    # the hub has no gateway), said on the step's line instead of the time.
    no_notebook: str = "the hub's workspace opens no notebook"
    no_gateway: str = "the hub's dask-gateway is disabled"
    # The users' Python and environment as a notebook's kernel has them: a
    # computation on the panel's cluster runs there, as the user.
    python: Path | None = None
    client_env: dict[str, str] = field(default_factory=dict)
    # "password" (the shared password's form) or "oidc" (the hub's
    # GenericOAuthenticator, through the loopback provider's page).
    login: str = "password"


LOGIN_STEPS = {
    "password": "log in through the form",
    "oidc": "log in through the OIDC provider, with the hub's own authenticator",
}


def log_in(page: Page, target: Target) -> None:
    """The login page, as a user meets it: the password form, or the hub's
    "Sign in with ..." button, then the provider's page, then back."""
    page.goto(f"{target.url}/hub/login")
    if target.login == "oidc":
        page.get_by_role("button", name="Sign in with").click()
        page.wait_for_selector("input[name=sub]")
        page.fill("input[name=sub]", USER)
        page.get_by_role("button", name="Authorize").click()
        return
    page.fill("input#username_input", USER)
    page.fill("input#password_input", target.password)
    page.click("#login_submit")


class NeedsCloud(PreviewError):
    """A notebook stopped at a cloud endpoint this machine cannot reach."""


class Steps:
    def __init__(self, out: Say) -> None:
        self.out, self.start = out, time.monotonic()

    def done(self, what: str, since: float) -> None:
        self.out(f"smoke: {what:<58} {time.monotonic() - since:6.1f} s")

    def not_applicable(self, what: str, why: str) -> None:
        self.out(f"smoke: {what:<58} not applicable: {why}")


def run(
    target: Target,
    artifacts: Path,
    screenshot: Path | None,
    out: Say,
    memory: Callable[[], int] = lambda: 0,
    notebooks: bool = False,
) -> dict[str, float]:
    """Drive the path; raises PreviewError naming the failed step."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise PreviewError(f"{CHROMIUM} not found: apt-get install chromium (Debian's)")
    steps = Steps(out)
    times: dict[str, float] = {}
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(artifacts / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1400, "height": 900},
        )
        page = browser.new_page()
        step = "start"
        try:
            t = time.monotonic()
            step = LOGIN_STEPS[target.login]
            log_in(page, target)
            steps.done(step, t)

            t = time.monotonic()
            step = "the server starts, JupyterLab opens"
            page.wait_for_url(f"**/user/{USER}/lab**", timeout=SERVER_TIMEOUT)
            page.wait_for_selector(".jp-LabShell", timeout=SERVER_TIMEOUT)
            times["server ready"] = time.monotonic() - t
            steps.done(step, t)

            if target.notebook:
                t = time.monotonic()
                step = f"the workspace opens {target.notebook}"
                name = Path(target.notebook).name
                page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text=name).first.wait_for(timeout=60_000)
                page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=60_000)
                _accept_preferred_kernel(page, PlaywrightError)
                steps.done(step, t)
                t = time.monotonic()
                step = f"{target.notebook} opens unmodified"
                if _modified_once_kernel_ready(page, name):
                    steps.not_applicable(step, MODIFIED_ON_OPEN)
                else:
                    steps.done(step, t)
            else:
                steps.not_applicable("the workspace opens a notebook", target.no_notebook)

            token = None
            if not target.gateway_prefix:
                for what in GATEWAY_STEPS:
                    steps.not_applicable(what, target.no_gateway)
            else:
                t = time.monotonic()
                step = GATEWAY_STEPS[0]
                panel = page.locator(".dask-DaskClusterManager")
                panel.get_by_text("NEW", exact=True).click(timeout=60_000)
                _wait_cluster_or_error(page)
                token = _user_token(page, target.url)
                clusters = _gateway(page, target, token, "GET", "/api/v1/clusters/")
                if len(clusters) != 1:
                    raise PreviewError(f"the gateway has {len(clusters)} clusters after +NEW, not 1")
                (cluster,) = clusters.values()
                options = cluster.get("options") or {}
                # The hub's options, as its rendered config makes the gateway offer them.
                spec = {
                    f["field"]: f for f in _gateway(page, target, token, "GET", "/api/v1/options")["cluster_options"]
                }
                for name, field_ in spec.items():
                    if name != "image" and options.get(name) != field_["default"]:
                        raise PreviewError(
                            f"+NEW cluster option {name}={options.get(name)!r}, "
                            f"the hub's default is {field_['default']!r}"
                        )
                hub_image = spec["image"]["default"].rpartition(":")[0]
                if not str(options.get("image", "")).startswith(hub_image + ":"):
                    raise PreviewError(f"+NEW cluster image {options.get('image')!r} is not {hub_image}:<tag>")
                times["first cluster"] = time.monotonic() - t
                steps.done(step + " with the hub's options", t)
                cluster_name = cluster["name"]

                t = time.monotonic()
                step = GATEWAY_STEPS[1]
                _wait_dashboard(page, cluster_name)
                steps.done(step, t)

                t = time.monotonic()
                step = GATEWAY_STEPS[2]
                _task_stream_updates(page, target, token, cluster_name)
                steps.done(step, t)

            if target.notebook:
                t = time.monotonic()
                step = f"{target.notebook} runs to the end"
                try:
                    _run_all(page, target.home / target.notebook)
                    times["notebook run"] = time.monotonic() - t
                    steps.done(step, t)
                except NeedsCloud as error:
                    steps.not_applicable(step, f"it needs the cloud, unreachable from here: {error}")
            else:
                steps.not_applicable("the notebook runs to the end", target.no_notebook)

            times["memory with a server and a cluster (MiB)"] = memory() / 2**20
            news = page.get_by_role("button", name="No", exact=True)
            if news.count():
                news.first.click()  # JupyterLab's question about news, out of the picture
                news.first.wait_for(state="detached", timeout=10_000)
            if screenshot is not None:
                if target.gateway_prefix:  # the dashboard, with the tasks it drew
                    page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text="Task Stream").first.click()
                    _tasks_drawn(page, 0)
                    time.sleep(1)  # Bokeh redraws a pane shown again
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot))

            if not target.gateway_prefix:
                for what in END_GATEWAY_STEPS:
                    steps.not_applicable(what, target.no_gateway)
            else:
                assert token is not None  # made with the cluster, above
                t = time.monotonic()
                step = END_GATEWAY_STEPS[0]
                too_big = spec["worker_cores"]["spec"]["max"] * 2
                refused = _gateway(
                    page,
                    target,
                    token,
                    "POST",
                    "/api/v1/clusters/",
                    {"cluster_options": {"worker_cores": too_big}},
                    expect_error=True,
                )
                if "worker_cores must be <=" not in refused:
                    raise PreviewError(f"a {too_big}-core worker was not refused: {refused[:120]}")
                steps.done(step, t)

                t = time.monotonic()
                step = END_GATEWAY_STEPS[1]
                page.locator(".dask-ClusterListingItem-stop").first.click()
                deadline = time.monotonic() + 60
                while _gateway(page, target, token, "GET", "/api/v1/clusters/"):
                    if time.monotonic() > deadline:
                        raise PreviewError("clusters still running 60 s after SHUTDOWN")
                    time.sleep(1)
                steps.done(step, t)

            step = "the hub's notebooks run (hub-template run-notebooks)"
            if notebooks:
                t = time.monotonic()
                _run_notebooks(target, token or _user_token(page, target.url), out)
                steps.done(step, t)
            else:
                steps.not_applicable(step, "not asked (--notebooks)")

            t = time.monotonic()
            step = "the server stops"
            status, text = _hub_api(page, target.url, "DELETE", f"users/{USER}/server")
            if status not in (202, 204):
                raise PreviewError(f"stopping the server answered {status} {text[:80]}")
            steps.done(step, t)
        except (PreviewError, PlaywrightError) as error:
            shot = artifacts / f"failed-{step.replace(' ', '-').replace('/', '-')[:60]}.png"
            with contextlib.suppress(PlaywrightError):
                page.screenshot(path=str(shot))
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise PreviewError(f"smoke step '{step}' failed: {first} (screenshot {shot})") from None
        finally:
            browser.close()
    return times


def _run_notebooks(target: Target, token: str, out: Say) -> None:
    """`hub-template run-notebooks` against this preview's hub, as a federation's
    CI runs it against a deployed one: each notebook passes, or needs the cloud."""
    runner = Path(sys.executable).parent / "hub-template"
    done = subprocess.run(
        [str(runner), "run-notebooks", target.url, "--user", USER],
        env={**os.environ, "JUPYTERHUB_API_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=3600,
    )
    report = [line for line in done.stdout.splitlines() if line.startswith("notebook ")]
    for line in report:
        out(f"smoke:   {line}")
    failed = [line for line in report if not line.endswith(": pass") and "(needs the cloud" not in line]
    if done.returncode not in (0, 1) or not report:
        raise PreviewError(f"run-notebooks failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    if failed:
        raise PreviewError(failed[0])


def _wait_dashboard(page: Page, cluster_name: str) -> None:
    """The panel's URL box names the cluster and its dashboard buttons are
    enabled: dask-labextension reached the dashboard through the user's server."""
    buttons = page.locator(".dask-DashboardListing-list button")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        enabled = {b.get_attribute("value") for b in buttons.all() if b.is_enabled()}
        if all(plot in enabled for plot in DASHBOARD_PLOTS):
            break
        time.sleep(0.5)
    else:
        box = page.locator(".dask-URLInput input").input_value()
        shown = " ".join(page.locator(".dask-DashboardListing-inactive").all_inner_texts()).split()
        raise PreviewError(
            f"no {' or '.join(DASHBOARD_PLOTS)} button 60 s after +NEW: the URL box says {box!r}"
            + (f", the panel {' '.join(shown)[:60]!r}" if shown else "")
        )
    box = page.locator(".dask-URLInput input").input_value()
    if cluster_name not in box:
        raise PreviewError(f"the dask panel shows {box!r}, not the dashboard of cluster {cluster_name}")


# The number of tasks a Task Stream pane has drawn: the rows of its Bokeh
# document's data source with task durations (-1 until Bokeh has loaded).
TASKS_DRAWN_JS = """() => {
    if (!window.Bokeh || !Bokeh.documents.length) return -1;
    let n = 0;
    for (const m of Bokeh.documents[0].all_models) {
        if (m.data && m.data.duration !== undefined) n += m.data.duration.length;
    }
    return n;
}"""
# A computation on the panel's cluster, as a notebook would run one.
COMPUTE_PY = """\
import sys

import dask.array as da
from dask_gateway import Gateway

cluster = Gateway().connect(sys.argv[1], shutdown_on_close=False)
client = cluster.get_client()
for _ in range(4):
    da.random.random((4_000, 4_000), chunks=(500, 500)).sum().compute()
client.close()
"""


def _task_stream_updates(page: Page, target: Target, token: str, cluster_name: str) -> None:
    """Open the dask panel's dashboard layout (Task Stream, Workers Memory,
    Progress) from the command palette, compute on the panel's cluster as the
    user, and see the Task Stream pane draw the tasks while they run."""
    if target.python is None:
        raise PreviewError("no users' Python to compute on the cluster with")
    page.keyboard.press("Control+Shift+c")
    page.locator(".lm-CommandPalette-input").fill("Launch Dask Dashboard Layout")
    page.keyboard.press("Enter")
    before = _tasks_drawn(page, -1)
    env = {**target.client_env, "JUPYTERHUB_API_TOKEN": token}
    compute = subprocess.Popen(
        [str(target.python), "-c", COMPUTE_PY, cluster_name],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        drawn, deadline = before, time.monotonic() + 120
        while drawn <= before and time.monotonic() < deadline:
            time.sleep(0.5)
            drawn = _tasks_drawn(page, -1)
            if compute.poll() is not None and compute.returncode != 0:
                break
        _, err = compute.communicate(timeout=120)
    finally:
        if compute.poll() is None:
            compute.kill()
            compute.wait()
    if compute.returncode != 0:
        last = (err.strip().splitlines() or ["no output"])[-1]
        raise PreviewError(f"the computation on cluster {cluster_name} failed: {last}"[:200])
    if drawn <= before:
        raise PreviewError(f"the Task Stream pane drew no task while cluster {cluster_name} computed")


def _tasks_drawn(page: Page, more_than: int) -> int:
    """How many tasks the Task Stream pane has drawn, once it has drawn more
    than `more_than` (-1: once Bokeh has loaded)."""
    from playwright.sync_api import Error as PlaywrightError

    frame_element = page.locator(".jp-IFrame iframe[src*='individual-task-stream']").first
    deadline = time.monotonic() + 60
    while True:
        frame_element.wait_for(timeout=30_000)
        frame = frame_element.element_handle().content_frame()
        if frame is None:
            raise PreviewError("the Task Stream pane has no frame")
        try:
            drawn = int(frame.evaluate(TASKS_DRAWN_JS))
        except PlaywrightError as error:
            # The pane reloads its page (Bokeh reconnecting): read it again.
            if "Execution context was destroyed" not in str(error) or time.monotonic() > deadline:
                raise
            drawn = more_than
        if drawn > more_than:
            return drawn
        if time.monotonic() > deadline:
            raise PreviewError(f"the Task Stream pane ({frame.url}) drew no more than {more_than} tasks in 60 s")
        time.sleep(0.5)


def _wait_cluster_or_error(page: Page) -> None:
    """A cluster appears in the panel, or JupyterLab shows the start error."""
    item, dialog = page.locator(".dask-ClusterListingItem"), page.locator(".jp-Dialog")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if dialog.count():
            raise PreviewError(" ".join(dialog.first.inner_text().split())[:160])
        if item.count():
            return
        time.sleep(0.5)
    raise PreviewError("no cluster in the dask panel 120 s after +NEW")


HUB_API_JS = """async ([method, path, body]) => {
    const response = await fetch(window.jhdata.base_url + "api/" + path, {
        method, headers: {"X-XSRFToken": window.jhdata.xsrf_token, "Content-Type": "application/json"},
        body: body === null ? undefined : JSON.stringify(body)});
    return [response.status, await response.text()];
}"""


def _hub_api(page: Page, url: str, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, str]:
    """The hub's REST API as the logged-in user, from a hub page (its cookie and XSRF token)."""
    hub_page = page.context.new_page()
    try:
        hub_page.goto(f"{url}/hub/home")
        status, text = hub_page.evaluate(HUB_API_JS, [method, path, body])
        return status, text
    finally:
        hub_page.close()


def _user_token(page: Page, url: str) -> str:
    """A token of the logged-in user, made as the user through the hub's API."""
    status, text = _hub_api(
        page, url, "POST", f"users/{USER}/tokens", {"note": "hub-template preview --smoke", "expires_in": 3600}
    )
    if status != 201:
        raise PreviewError(f"the hub refused a token for {USER}: {status} {text[:80]}")
    token: str = json.loads(text)["token"]
    return token


def _gateway(
    page: Page,
    target: Target,
    token: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    expect_error: bool = False,
) -> Any:  # the parsed JSON, or the text of an expected error
    """The gateway's REST API through the hub's proxy, authenticated as the user."""
    url = f"{target.url}{target.gateway_prefix}{path}"
    headers = {"Authorization": f"jupyterhub {token}"}
    response = page.request.fetch(
        url, method=method, headers=headers, data=json.dumps(body) if body is not None else None
    )
    if expect_error:
        if response.ok:
            raise PreviewError(f"the gateway accepted {body}")
        return response.text()
    if not response.ok:
        raise PreviewError(f"the gateway answered {response.status} to {method} {path}")
    return response.json()


def _run_all(page: Page, path: Path) -> None:
    """Run All from JupyterLab's Run menu, save, then read the saved notebook:
    every code cell ran, none raised."""
    page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text=path.name).first.click()  # over the dashboard
    page.locator(".jp-NotebookPanel .jp-Notebook").first.click()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    cells = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt")
    deadline, idle = time.monotonic() + RUN_TIMEOUT / 1000, 0
    while True:
        prompts = [text.strip() for text in cells.all_inner_texts()]
        ran = [p.startswith("[") and p[1:-2].isdigit() for p in prompts]
        if prompts and all(ran):
            break
        # Run All stops at a cell that raised: the cells after it stay unrun.
        idle = idle + 1 if any(ran) and not any("*" in p for p in prompts) else 0
        if idle >= 3:
            break
        if time.monotonic() > deadline:
            raise PreviewError(f"the notebook did not finish in {RUN_TIMEOUT // 1000} s: {prompts}")
        time.sleep(1)
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while True:
        notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]  # unannotated in nbformat
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        raised = any(out.output_type == "error" for cell in code for out in cell.outputs)
        if raised or all(cell.execution_count for cell in code):
            break
        if time.monotonic() > deadline:
            raise PreviewError(f"{path} was not saved with its outputs")
        time.sleep(0.5)
    errors = [(n, out) for n, cell in enumerate(code, 1) for out in cell.outputs if out.output_type == "error"]
    if errors:
        number, error = errors[0]
        text = f"cell {number} raised {error.ename}: {error.evalue}"[:200]
        if needs_cloud(f"{error.ename}: {error.evalue}\n" + "\n".join(error.get("traceback", []))):
            raise NeedsCloud(text)
        raise PreviewError(text)


# JupyterLab writes its kernel's kernelspec and language_info into a notebook
# it opens; a notebook whose own differ shows as modified before the user types.
MODIFIED_ON_OPEN = "JupyterLab marks it modified as its kernel starts (its kernelspec or language_info differ)"


def _modified_once_kernel_ready(page: Page, name: str) -> bool:
    """Whether the notebook's tab is marked modified once its kernel is idle
    (JupyterLab sets the kernel's metadata from its kernel_info reply)."""
    page.wait_for_selector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=120_000)
    time.sleep(1)  # the kernel_info reply is handled as the kernel turns idle: let its metadata land
    tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text=name).first
    return "jp-mod-dirty" in (tab.get_attribute("class") or "").split()


def _accept_preferred_kernel(page: Page, playwright_error: type[Exception]) -> None:
    """A notebook that names no kernel (many a repository's do not) opens
    with JupyterLab's kernel dialog: choose the preferred kernel, as a user
    would press Select."""
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    try:
        dialog.wait_for(timeout=5_000)
    except playwright_error:  # the notebook names its kernel: no dialog
        return
    dialog.locator(".jp-mod-accept").click()
    dialog.wait_for(state="detached", timeout=10_000)
