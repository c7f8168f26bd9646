"""Shared fixtures: a real git repository of the template, and real renders."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import NoReturn

import pytest

# Commits need an author on a fresh CI machine, and the tests must not depend
# on the developer's git config. Set before copier is imported: plumbum, which
# runs copier's own git commands, copies the environment at import.
os.environ.update(
    {
        "GIT_AUTHOR_NAME": "hub-template tests",
        "GIT_AUTHOR_EMAIL": "tests@hub-template.invalid",
        "GIT_COMMITTER_NAME": "hub-template tests",
        "GIT_COMMITTER_EMAIL": "tests@hub-template.invalid",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "init.defaultBranch",
        "GIT_CONFIG_VALUE_0": "main",
    }
)

# copier's clone cache is the user's unless told otherwise: one per test
# process, so that pytest-xdist's workers never share it.
if "COPIER_CACHE_DIR" not in os.environ:
    _worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    os.environ["COPIER_CACHE_DIR"] = tempfile.mkdtemp(prefix=f"copier-cache-{_worker}-")
    atexit.register(shutil.rmtree, os.environ["COPIER_CACHE_DIR"], ignore_errors=True)

from copier import run_copy

from hub_template import load_data

ROOT = Path(__file__).resolve().parents[1]
# The test venv's own tools (jupyter, shellcheck, repo2docker, actionlint...).
BIN = Path(sys.executable).parent
# The daskhub chart data beside the project (see ../shared/charts/README.md),
# or any daskhub chart folder (.ci/federation-chart builds one: its .daskhub/daskhub).
CHART = Path(os.environ.get("HUB_TEMPLATE_CHART_DATA", ROOT.parent / "shared" / "charts" / "daskhub"))
TEMPLATE_PARTS = ("copier.yml", "template", "federation", "hooks", "CHANGELOG.md")


def hub_template(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed `hub-template` command, run for real."""
    return subprocess.run([str(BIN / "hub-template"), *args], capture_output=True, text=True, cwd=cwd)


def check_report(stdout: str) -> dict:
    """The one hub's report in `hub-template check --format json` (hub -> report, one shape for any count)."""
    (report,) = json.loads(stdout).values()
    return report


VERSION = version("hub-template")
# repo2docker's options for the image's user and folder, as CI builds it.
_BUILD = load_data("image_build.yml")
REPO2DOCKER_OPTIONS = [
    *("--user-id", str(_BUILD["user_id"]), "--user-name", _BUILD["user_name"]),
    *("--target-repo-dir", _BUILD["target_repo_dir"]),
]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def chart_data() -> Path:
    """The daskhub chart data, or skip the test saying how to get it.
    `.ci/run` sets HUB_TEMPLATE_REQUIRE_CHART: in CI a missing chart fails."""
    if (CHART / "Chart.yaml").is_file():
        return CHART
    skip_unless_required(
        f"no daskhub chart data at {CHART}: keep hub-template beside shared/ (as CI does), "
        "or set HUB_TEMPLATE_CHART_DATA to a daskhub chart folder (`.ci/federation-chart DIR` builds one: its .daskhub/daskhub)",
        "HUB_TEMPLATE_REQUIRE_CHART",
    )


def skip_unless_required(message: str, required_by: str) -> NoReturn:
    """Skip, saying why; fail instead where `.ci/run` sets `required_by`
    (there the chart and helm must be present, so their tests may not skip)."""
    if os.environ.get(required_by):
        pytest.fail(message)
    pytest.skip(message)


def publish_template(repo: Path, tag: str, source: Path = ROOT) -> Path:
    """Copy the template's parts from ``source`` into the git repository
    ``repo`` (created if needed), commit them and tag the commit ``tag``."""
    repo.mkdir(parents=True, exist_ok=True)
    if not (repo / ".git").exists():
        git(repo, "init", "-q")
    for part in TEMPLATE_PARTS:
        target = repo / part
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        src = source / part
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, target)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", f"template {tag}")
    git(repo, "tag", tag)
    return repo


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory) -> Path:
    """The current template as a real git repository, tagged with its version."""
    return publish_template(tmp_path_factory.mktemp("template") / "hub-template", f"v{VERSION}")


@pytest.fixture(scope="session")
def evolving_template(tmp_path_factory) -> Path:
    """The template released three times, tagged v1.0.0, v1.1.0 and v1.2.0
    (see tests/template_versions.py)."""
    from template_versions import publish_versions

    base = tmp_path_factory.mktemp("evolving")
    return publish_versions(base / "hub-template", base / "sources")


def render(template: Path, dst: Path, **data) -> Path:
    """``copier copy --trust --defaults --data ...`` into ``dst``."""
    run_copy(str(template), str(dst), data=data, defaults=True, unsafe=True, quiet=True)
    return dst


# A test run writes nothing into the checkout (besides what .gitignore names):
# a tool that writes where it runs shows up here.
def _checkout_status() -> set[str]:
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True, text=True
    )
    return set(done.stdout.splitlines()) if done.returncode == 0 else set()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow real-path tests first, then the browser's, so that
    pytest-xdist hands them out while there are short tests left to fill the
    other worker's time: the run ends on short tests, not on an act story
    started last."""

    def weight(item: pytest.Item) -> int:
        if item.get_closest_marker("slow") is not None:
            return 0
        return 1 if "needs_browser" in getattr(item, "fixturenames", ()) else 2

    items.sort(key=weight)


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # the controller, once
        session.config.stash[_CHECKOUT] = _checkout_status()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_CHECKOUT, None)
    if before is None:
        return
    changed = sorted(_checkout_status() - before)
    if changed:
        session.config.get_terminal_writer().line(f"the tests wrote into the checkout: {changed}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_CHECKOUT = pytest.StashKey[set[str]]()
