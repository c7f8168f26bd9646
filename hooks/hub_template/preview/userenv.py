"""The users' environment of a preview, made from image/binder/environment.yml.

No conda channel is reachable from every machine, so this is a virtual
environment with environment.yml's package names pip-installed: APPROXIMATE
(this Python, PyPI's builds, conda-only packages missing), never the image.
It is cached by the content of environment.yml (and what repo2docker's base
adds), so a second preview of the same environment reuses it.

uv installs it where it is present (the preview extra brings it): the default
hub's environment is about 150 packages, which pip takes minutes to install
and uv seconds. pip is the fallback, so a bare venv still works.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

from hub_template import pypi_names, user_cache
from hub_template.environment import CondaSpec, read_environment
from hub_template.preview import Say, program_failed

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
    return translated(environment_yml, jupyterhub)[0]


def translated(environment_yml: Path, jupyterhub: str) -> tuple[tuple[str, ...], list[str]]:
    """The pip requirements, conda names given their package-index names
    (pypi_names), and what was renamed."""
    env = read_environment(environment_yml.read_text(), str(environment_yml))
    conda = [
        (spec.name, pip_requirement(spec).removeprefix(spec.name)) for spec in env.conda if spec.key not in NOT_ON_PYPI
    ]
    named, renamed = pypi_names.translate(conda)
    return (*BASE, f"jupyterhub=={jupyterhub}", *named, *(spec.text for spec in env.pip)), renamed


def cache_dir() -> Path:
    return user_cache() / "preview-envs"


def uv_program() -> str | None:
    """uv, from its Python package (the preview extra) or PATH; None if absent."""
    try:
        from uv import find_uv_bin
    except ImportError:
        return shutil.which("uv")
    return str(find_uv_bin())


def install_command(python: Path, reqs: tuple[str, ...], uv: str | None) -> list[str]:
    if uv is not None:
        return [uv, "pip", "install", "--quiet", "--python", str(python), *reqs]
    return [str(python), "-m", "pip", "install", "--quiet", *reqs]


def ensure(environment_yml: Path, jupyterhub: str, log: Say) -> UserEnv:
    """The cached environment for these requirements, made if absent."""
    reqs, renamed = translated(environment_yml, jupyterhub)
    key = hashlib.sha256("\n".join((sys.version, *reqs)).encode()).hexdigest()[:16]
    prefix = cache_dir() / key
    done = prefix / ".hub-template-complete"
    env = UserEnv(prefix, reqs)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    # Two previews of the same environment at once: the second waits for the
    # first instead of clearing the folder under it.
    with open(prefix.parent / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            log(f"users' environment: reused {prefix} ({LABEL})")
            recorded = done.read_text().splitlines()
            for differs in (line[2:] for line in recorded if line.startswith("# ")):
                log(f"users' environment: {differs}")
            return UserEnv(prefix, tuple(line for line in recorded if line and not line.startswith("# ")))
        uv = uv_program()
        tool = "uv" if uv else "pip"
        log(f"users' environment: making {prefix} with {tool} ({LABEL}); this is done once")
        venv.EnvBuilder(with_pip=uv is None, clear=True).create(prefix)

        def attempt(wanted: tuple[str, ...]) -> tuple[int, str]:
            run = subprocess.run(install_command(env.bin / "python", wanted, uv), capture_output=True, text=True)
            return run.returncode, run.stderr

        keep = {Requirement(r).name for r in (*BASE, "jupyterhub")}  # the image's own: never dropped
        installed, code, stderr = pypi_names.install(list(reqs), renamed, attempt, keep)
        if code != 0:
            raise program_failed(
                f"{tool} could not install environment.yml's packages", stderr, prefix.parent / f"{key}.log"
            )
        if differs := installed.line():
            log(f"users' environment: {differs}")
        env = UserEnv(prefix, installed.requirements)
        done.write_text("\n".join(installed.requirements) + (f"\n# {differs}\n" if differs else "\n"))
    return env
