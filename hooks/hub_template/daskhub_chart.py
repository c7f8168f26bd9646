"""The daskhub chart hubs deploy, built on this machine as the federation's CI
builds it, and kept in the user's cache.

How it is built has one definition: the federation's daskhub action
(federation/.github/actions/daskhub/action.yml.jinja: dask/helm-chart at the
pinned commit, its version stamped, `helm dependency build` against the chart
repositories its Chart.yaml names). This renders that action with
versions.yml and runs its one step as GitHub runs a composite `run:` step, in
a scratch folder beside the cache, with helm's repositories and cache of its
own (the user's helm configuration is not touched). The built daskhub/ is
moved into place in one rename, so a failed or interrupted build leaves no
half chart; the cache is keyed by the pinned versions and the action itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from hub_template import load_data, user_cache
from hub_template.copier_settings import installed_template_root

ACTION = Path("federation/.github/actions/daskhub/action.yml.jinja")
OFFLINE = "offline, pass --chart DIR or set HUB_TEMPLATE_CHART_DATA to a daskhub chart folder"


class ChartBuildError(RuntimeError):
    """Why the chart could not be built, in one line: what was tried, what failed, the offline options."""


def action_step() -> dict[str, Any]:
    """The daskhub action's one step, rendered with versions.yml as copier renders it."""
    import jinja2

    text = (installed_template_root() / ACTION).read_text()
    rendered = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(text)
    action = yaml.safe_load(rendered.render(versions=load_data("versions.yml")))
    (step,) = action["runs"]["steps"]
    return dict(step)


def cached_path(step: dict[str, Any]) -> Path:
    """Where the chart this step builds is kept: one folder per pinned version and recipe."""
    digest = hashlib.sha256(yaml.safe_dump(step, sort_keys=True).encode()).hexdigest()[:12]
    return user_cache() / "daskhub" / f"{step['env']['DASKHUB_VERSION']}-{digest}"


def ensure(say: Any) -> Path:
    """The daskhub chart folder, built once and then read from the cache."""
    step = action_step()
    final = cached_path(step)
    final.parent.mkdir(parents=True, exist_ok=True)
    # Two previews at once: the second waits for the first's build and reuses it.
    with open(final.parent / f"{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "Chart.yaml").is_file():
            say(f"daskhub chart: reused {final}")
            return final
        if shutil.which("helm") is None:
            raise ChartBuildError(
                "no helm to build the daskhub chart with (https://helm.sh/docs/intro/install/); " + OFFLINE
            )
        say(f"daskhub chart: building {step['env']['DASKHUB_VERSION']} as the federation's CI does, once: {final}")
        scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=final.parent))
        try:
            built = _build(step, scratch)
            built.rename(final)  # one step: the cache holds a whole chart or none
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return final


def _build(step: dict[str, Any], scratch: Path) -> Path:
    env = {
        **os.environ,
        **{name: str(value) for name, value in step.get("env", {}).items()},
        # helm's repositories and downloads of this build only.
        **{f"HELM_{kind}_HOME": str(scratch / "helm" / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")},
        "GIT_TERMINAL_PROMPT": "0",  # no network is no password prompt
    }
    code, output = _run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], scratch, env)
    built = scratch / ".daskhub" / "daskhub"
    if code != 0:
        last = next((line.strip() for line in reversed(output.splitlines()) if line.strip()), "no output")
        last = last if len(last) <= 240 else last[:239] + "…"
        raise ChartBuildError(f"cannot build the daskhub chart (tried {_tried(step, built)}): {last}; {OFFLINE}")
    return built


def _tried(step: dict[str, Any], built: Path) -> str:
    """What the step asked the network for, as far as it got."""
    clone = re.search(r"git clone .*?(https://\S+)", step["run"])
    tried = [f"git clone {clone[1] if clone else 'dask/helm-chart'} at {step['env'].get('DASKHUB_REF')}"]
    with contextlib.suppress(OSError, yaml.YAMLError, AttributeError, TypeError):
        repositories = [d["repository"] for d in yaml.safe_load((built / "Chart.yaml").read_text())["dependencies"]]
        tried.append("helm dependency build from " + " and ".join(repositories))
    return ", then ".join(tried)


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """argv's exit code and output; on any interruption (Ctrl-C, SIGTERM), its
    whole process group (git, helm) is killed before the exception goes on."""
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = proc.communicate(timeout=900)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return proc.returncode, output
