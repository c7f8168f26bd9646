"""The pip part of the image lock: environment.yml's `pip:` requirements
resolved by uv for the image (linux x86_64, glibc 2.39, the locked Python) to
exact versions with every file's hash.

pip runs after the conda packages are installed, in the same environment, so
the resolution must agree with them: each locked conda package is handed to
uv as a constraint under its package-index name (grayskull's mapping,
pypi_names.py), and what conda already installs is left out of the pip list.
What remains is written `name==version --hash=...`: any hash puts pip in
hash-checking mode, in which every package it installs must be listed, pinned
and hashed, so the build's `pip install -r` installs exactly these files and
resolves nothing new (a dependency missing from the list fails the build).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

if TYPE_CHECKING:
    from .lock import Locked

# repo2docker's Ubuntu 24.04 (glibc 2.39) on x86_64, as lock.VIRTUAL says.
PYTHON_PLATFORM: Final = "x86_64-manylinux_2_39"
DEFAULT_INDEX: Final = "https://pypi.org/simple"


class PipLockError(Exception):
    """pip requirements that cannot be locked; the message says why."""


@dataclass(frozen=True)
class PipLocked:
    name: str  # canonical
    version: str
    hashes: tuple[str, ...]  # "sha256:HEX", every file of that version

    @property
    def line(self) -> str:
        return " ".join([f"{self.name}=={self.version}", *(f"--hash={h}" for h in self.hashes)])


def conda_constraints(conda: list[Locked]) -> dict[str, str]:
    """package-index name -> version of each locked conda package pip could see
    as installed (its name and version are ones the index can spell)."""
    from .pypi_names import pypi_name

    found: dict[str, str] = {}
    for p in conda:
        if p.name == "python":
            continue
        try:
            Version(p.version)
        except InvalidVersion:
            continue  # openssl 1.1.1w: no Python distribution has it
        name = pypi_name(p.name)
        if re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", name):  # not conda's _libgcc_mutex
            found[canonicalize_name(name)] = p.version
    return found


def resolve(requirements: list[str], python: str, conda: list[Locked], index_url: str) -> list[PipLocked]:
    """`requirements` resolved for the image, without what conda installs."""
    from uv import find_uv_bin

    installed = conda_constraints(conda)
    with tempfile.TemporaryDirectory(prefix="hub-template-pip-") as tmp:
        wanted, constraints = Path(tmp, "requirements.in"), Path(tmp, "constraints.txt")
        wanted.write_text("".join(f"{r}\n" for r in requirements))
        constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(installed.items())))
        done = subprocess.run(
            [
                find_uv_bin(),
                "pip",
                "compile",
                str(wanted),
                "--constraints",
                str(constraints),
                "--python-version",
                python,
                "--python-platform",
                PYTHON_PLATFORM,
                "--index-url",
                index_url,
                "--generate-hashes",
                # No interpreter fetched to build an sdist's metadata: the running one will do.
                "--no-python-downloads",
                "--no-header",
                "--no-annotate",
                "--quiet",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    if done.returncode != 0:
        raise PipLockError(
            f"the pip packages cannot be resolved for Python {python} on linux x86_64 with the conda "
            f"packages the lock installs (from {index_url}):\n{done.stderr.strip()}"
        )
    return [p for p in read_compiled(done.stdout) if p.name not in installed]


def read_compiled(text: str) -> list[PipLocked]:
    """uv's `--generate-hashes` requirements (continued lines joined)."""
    found = []
    for entry in re.sub(r"\\\n\s*", " ", text).splitlines():
        entry = entry.split("#", 1)[0].strip()
        if not entry:
            continue
        spec, *options = entry.split(" --hash=")
        try:
            requirement = Requirement(spec.strip())
        except InvalidRequirement:
            raise PipLockError(f"uv resolved a line that is no requirement: {entry[:80]}") from None
        pinned = [s.version for s in requirement.specifier if s.operator == "=="]
        if requirement.url or not pinned or not options:
            raise PipLockError(
                f"`{spec.strip()}` is not a package on the index (a URL or a local path): the lock pins and "
                "hashes index packages only; publish it to an index, or install it in postBuild"
            )
        hashes = tuple(h.strip() for h in options)
        found.append(PipLocked(canonicalize_name(requirement.name), pinned[0], hashes))
    return found
