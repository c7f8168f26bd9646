"""`--smoke`: the researcher's path through a running preview, in a headless
Debian Chromium driven by playwright. One line per step with its time; a
screenshot of the page at a failure (and, if asked, of JupyterLab at the end).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nbformat

from hub_template.preview import PreviewError, Say

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
SERVER_TIMEOUT = 180_000  # ms: a first server start imports JupyterLab on 2 shared cores
RUN_TIMEOUT = 300_000


@dataclass
class Target:
    url: str  # the proxy's public URL
    password: str
    home: Path  # the user's home folder
    notebook: str | None  # the workspace's notebook, relative to the home
    gateway_prefix: str | None  # "/services/dask-gateway" when the hub has a gateway


class Steps:
    def __init__(self, out: Say) -> None:
        self.out, self.start = out, time.monotonic()

    def done(self, what: str, since: float) -> None:
        self.out(f"smoke: {what:<58} {time.monotonic() - since:6.1f} s")


def run(
    target: Target, artifacts: Path, screenshot: Path | None, out: Say, memory: Callable[[], int] = lambda: 0
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
            step = "log in through the form"
            page.goto(f"{target.url}/hub/login")
            page.fill("input#username_input", USER)
            page.fill("input#password_input", target.password)
            page.click("#login_submit")
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

            token = None
            if target.gateway_prefix:
                t = time.monotonic()
                step = "the dask panel's +NEW makes a cluster"
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

            if target.notebook:
                t = time.monotonic()
                step = f"{target.notebook} runs to the end"
                _run_all(page, target.home / target.notebook)
                times["notebook run"] = time.monotonic() - t
                steps.done(step, t)

            times["memory with a server and a cluster (MiB)"] = memory() / 2**20
            news = page.get_by_role("button", name="No", exact=True)
            if news.count():
                news.first.click()  # JupyterLab's question about news, out of the picture
                news.first.wait_for(state="detached", timeout=10_000)
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot))

            if target.gateway_prefix:
                assert token is not None  # made with the cluster, above
                t = time.monotonic()
                step = "the limits refuse a too-large worker"
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
                step = "the dask panel's cluster shuts down"
                page.locator(".dask-ClusterListingItem-stop").first.click()
                deadline = time.monotonic() + 60
                while _gateway(page, target, token, "GET", "/api/v1/clusters/"):
                    if time.monotonic() > deadline:
                        raise PreviewError("clusters still running 60 s after SHUTDOWN")
                    time.sleep(1)
                steps.done(step, t)

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
    page.locator(".jp-NotebookPanel .jp-Notebook").first.click()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    cells = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt")
    deadline = time.monotonic() + RUN_TIMEOUT / 1000
    while True:
        prompts = [text.strip() for text in cells.all_inner_texts()]
        if prompts and all(p.startswith("[") and p[1:-2].isdigit() for p in prompts):
            break
        if time.monotonic() > deadline:
            raise PreviewError(f"the notebook did not finish in {RUN_TIMEOUT // 1000} s: {prompts}")
        time.sleep(1)
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while True:
        notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]  # unannotated in nbformat
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        if all(cell.execution_count for cell in code):
            break
        if time.monotonic() > deadline:
            raise PreviewError(f"{path} was not saved with its outputs")
        time.sleep(0.5)
    errors = [out for cell in code for out in cell.outputs if out.output_type == "error"]
    if errors:
        raise PreviewError(f"a cell raised {errors[0].ename}: {errors[0].evalue}"[:160])


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
