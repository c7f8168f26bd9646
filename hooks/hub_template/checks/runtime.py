"""The dask configuration the image reads at run time, found by running the
image's own scripts, not by reading the template.

In the image, dask reads ``$DASK_ROOT_CONFIG`` (default /etc/dask, empty),
``{sys.prefix}/etc/dask`` (sys.prefix is ``$NB_PYTHON_PREFIX``), ``~/.config/dask``
(hidden by the users' home volume) and ``$DASK_CONFIG``. So postBuild runs in
a scratch copy of image/ with ``NB_PYTHON_PREFIX``, ``HOME`` and ``REPO_DIR``
in a temporary folder, then start runs (with a command that prints its
environment) to see whether it exports ``DASK_CONFIG``. Package managers and
JupyterLab's tools are no-ops there: the point is where files land, offline.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..helm_values import ValuesFile
from .hub import Hub
from .image import CONDA_BUILDPACK, plan

NO_OPS = ("pip", "pip3", "conda", "mamba", "micromamba", "jupyter", "jlpm", "npm", "yarn",
          "apt-get", "sudo", "curl", "wget", "git")
BIG_FILE = 1 << 20  # larger files are linked into the scratch copy, not copied
TIMEOUT = 60


@dataclass
class RuntimeConfig:
    files: list[ValuesFile] = field(default_factory=list)  # what dask reads, labelled by their source
    config: dict = field(default_factory=dict)  # dask.config.collect() of those files
    hidden: list[str] = field(default_factory=list)  # dask files postBuild put under the home volume
    error: str | None = None  # why the scripts could not run


def runtime_config(hub: Hub) -> RuntimeConfig:
    return hub.memo("runtime-config", _runtime_config)


def _runtime_config(hub: Hub) -> RuntimeConfig:
    import dask.config

    base = plan(hub)
    if base.error or base.buildpack != CONDA_BUILDPACK:
        # A Dockerfile decides for itself where files go: nothing to run here.
        return RuntimeConfig(error=f"repo2docker does not build image/ with its conda buildpack (IM001)")
    image = hub.path / "image"
    with tempfile.TemporaryDirectory(prefix="hub-template-check-") as tmp:
        tmp = Path(tmp)
        repo, prefix, home, bin_dir = tmp / "srv" / "repo", tmp / "srv" / "conda" / "envs" / "notebook", tmp / "home", tmp / "no-ops"
        for folder in (prefix, home, bin_dir, tmp / "tmp"):
            folder.mkdir(parents=True)
        shutil.copytree(image, repo, symlinks=True, copy_function=_copy_or_link)
        for name in NO_OPS:
            shim = bin_dir / name
            shim.write_text("#!/bin/sh\nexit 0\n")
            shim.chmod(0o755)
        env = {
            "PATH": os.pathsep.join([str(bin_dir), "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": str(home), "USER": "jovyan", "NB_USER": "jovyan", "NB_UID": "1000",
            "NB_PYTHON_PREFIX": str(prefix), "KERNEL_PYTHON_PREFIX": str(prefix),
            "CONDA_DIR": str(prefix.parents[1]), "REPO_DIR": str(repo), "TMPDIR": str(tmp / "tmp"),
            "LANG": "C.UTF-8", "PIP_NO_INDEX": "1",
        }
        result = RuntimeConfig()
        for script in base.post_build:  # repo2docker runs them from ${REPO_DIR}
            error = _run([str(_executable(repo / script))], repo, env, f"image/{script}")
            if error:
                result.error = error
                return result
        paths = [prefix / "etc" / "dask"]
        if base.start:
            try:
                out = subprocess.run([str(_executable(repo / base.start)), "env", "-0"], cwd=repo, env=env,
                                     capture_output=True, timeout=TIMEOUT)
            except (OSError, subprocess.TimeoutExpired):
                out = subprocess.CompletedProcess([], 1, b"", b"")  # IM007/IM008 say why
            started = dict(item.split("=", 1) for item in out.stdout.decode(errors="replace").split("\0") if "=" in item)
            for name in ("DASK_ROOT_CONFIG", "DASK_CONFIG"):
                if started.get(name):
                    paths.append(Path(started[name]))
        result.hidden = [str(p.relative_to(home)) for p in (home / ".config" / "dask").rglob("*") if p.is_file()] \
            if (home / ".config" / "dask").is_dir() else []
        sources = {hub.raw(rel): rel for rel in hub.files
                   if rel.startswith("image/") and rel.endswith((".yaml", ".yml"))}
        for path in paths:
            for file in sorted(path.rglob("*")) if path.is_dir() else [path] if path.is_file() else []:
                if file.suffix in (".yaml", ".yml", ".json") and file.is_file():
                    label = sources.get(file.read_bytes()) or _label(file, prefix, repo)
                    source = hub.path / label if label in sources.values() else file
                    result.files.append(ValuesFile.load(source, label))
        result.config = dask.config.collect(paths=[str(p) for p in paths], env={})
        return result


def _copy_or_link(src: str, dst: str) -> str:
    if os.path.getsize(src) > BIG_FILE:
        os.symlink(src, dst)
        return dst
    return shutil.copy2(src, dst)


def _executable(path: Path) -> Path:
    path.chmod(path.stat().st_mode | stat.S_IXUSR)  # repo2docker chmods them too
    return path


def _run(command: list[str], cwd: Path, env: dict, label: str) -> str | None:
    try:
        result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"{label} did not finish within {TIMEOUT} s in the scratch copy"
    except OSError as error:
        return f"{label} could not run: {error}"
    if result.returncode:
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-3:]
        return f"{label} failed in the scratch copy (exit {result.returncode}): {' / '.join(tail)}"
    return None


def _label(file: Path, prefix: Path, repo: Path) -> str:
    if file.is_relative_to(prefix):
        return "${NB_PYTHON_PREFIX}/" + file.relative_to(prefix).as_posix() + " (written by postBuild)"
    if file.is_relative_to(repo):
        return "image/" + file.relative_to(repo).as_posix()
    return str(file)
