"""The users' environment of a preview, made from image/binder/environment.yml.

No conda channel is reachable from every machine, so this is a virtual
environment with environment.yml's package names pip-installed: APPROXIMATE
(this Python, PyPI's builds, conda-only packages missing), never the image.
It is cached by the content of environment.yml (and what repo2docker's base
adds), so a second preview of the same environment reuses it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

from hub_template.environment import CondaSpec, read_environment
from hub_template.preview import PreviewError, Say

LABEL = "APPROXIMATE: environment.yml's names pip-installed, not the image's conda solve"

# What repo2docker's own base environment gives every image (field notes):
# JupyterLab 4, notebook 7, jupyterhub-singleuser (the chart's JupyterHub).
BASE = ("jupyterlab>=4,<5", "notebook>=7,<8", "ipykernel")
# conda packages that are no pip package: the interpreter, and pip itself.
NOT_ON_PYPI = {"python", "pip"}


@dataclass(frozen=True)
class UserEnv:
    prefix: Path
    requirements: tuple[str, ...]
    label: str = LABEL

    @property
    def bin(self) -> Path:
        return self.prefix / "bin"


def pip_requirement(spec: CondaSpec) -> str:
    """A conda spec as pip reads it: conda's `=1.2` is a prefix, pip's `==1.2.*`."""
    constraint = spec.constraint
    if constraint.startswith("=") and not constraint.startswith("=="):
        constraint = f"=={constraint[1:]}.*"
    return f"{spec.name}{constraint}"


def requirements(environment_yml: Path, jupyterhub: str) -> tuple[str, ...]:
    env = read_environment(environment_yml.read_text(), str(environment_yml))
    conda = [pip_requirement(spec) for spec in env.conda if spec.key not in NOT_ON_PYPI]
    return (*BASE, f"jupyterhub=={jupyterhub}", *conda, *(spec.text for spec in env.pip))


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hub-template" / "preview-envs"


def ensure(environment_yml: Path, jupyterhub: str, log: Say) -> UserEnv:
    """The cached environment for these requirements, made if absent."""
    reqs = requirements(environment_yml, jupyterhub)
    key = hashlib.sha256("\n".join((sys.version, *reqs)).encode()).hexdigest()[:16]
    prefix = cache_dir() / key
    done = prefix / ".hub-template-complete"
    env = UserEnv(prefix, reqs)
    if done.exists():
        log(f"users' environment: reused {prefix} ({LABEL})")
        return env
    log(f"users' environment: making {prefix} ({LABEL}); this takes minutes once")
    venv.EnvBuilder(with_pip=True, clear=True).create(prefix)
    run = subprocess.run(
        [str(env.bin / "python"), "-m", "pip", "install", "--quiet", *reqs], capture_output=True, text=True
    )
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise PreviewError(f"pip could not install environment.yml's packages: {last}"[:200])
    done.write_text("\n".join(reqs) + "\n")
    return env
