"""conda package names as the Python package index knows them, for
`hub-template preview`, which pip-installs an approximation of the image's
conda environment (no conda channel is reachable everywhere).

The names come from grayskull's PyPI <-> conda-forge mapping (regro's
cf-graph, as conda-pypi ships it: `conda_pypi.name_mapping`), never from a
list of our own: `python-graphviz` is `graphviz` there, `dask-core` is
`dask`. A name the mapping does not know is tried as it is. What the index
then does not have, the installer says (uv or pip), and `install` leaves
it out and tries again, so that one conda-only package (`esmf`, `gdal`'s
libraries) costs the preview that package, named, not the whole
environment. One rule only is ours, and says so where it is used:
conda-forge's `-core`/`-base` outputs are a PyPI package without its
optional dependencies (the mapping holds dask-core, matplotlib-base and
seaborn-base so); when the index has no such name (`geoviews-core`), the
preview installs the package it was split from (`geoviews`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

# conda-forge's reduced outputs of a PyPI package
SPLIT_SUFFIXES = ("-core", "-base")

# What uv and pip say when the package index lacks a name or a version.
_NOT_FOUND = (
    re.compile(r"Because (\S+) was not found in the package registry"),  # uv
    re.compile(r"No matching distribution found for ([A-Za-z0-9][A-Za-z0-9._-]*)"),  # pip
)
_NO_VERSION = (
    re.compile(
        r"Because (?:there is no version of|there are no versions of|only the following versions of|only) "
        r"([A-Za-z0-9][A-Za-z0-9._-]*)"
    ),  # uv
    re.compile(r"Could not find a version that satisfies the requirement ([A-Za-z0-9][A-Za-z0-9._-]*)"),  # pip
)


@functools.cache
def _conda_to_pypi() -> dict[str, str]:
    """conda-forge name -> PyPI name, from the mapping; where several PyPI
    packages build one conda package (opencv), the mapping's own (static)
    choice, else the first."""
    from conda_pypi.name_mapping import grayskull_pypi_mapping

    found: dict[str, str] = {}
    for entry in sorted(grayskull_pypi_mapping.values(), key=lambda e: e.get("mapping_source") != "static"):
        found.setdefault(entry["conda_name"], entry["pypi_name"])
    return found


def pypi_name(conda_name: str) -> str:
    """The package index's name for a conda package: the mapping's, else its own."""
    return _conda_to_pypi().get(conda_name.lower(), conda_name)


def split_from(name: str) -> str | None:
    """The PyPI package a conda-forge `-core`/`-base` output was split from."""
    return next((name[: -len(s)] for s in SPLIT_SUFFIXES if name.endswith(s) and len(name) > len(s)), None)


@dataclass
class Installed:
    """What the preview installed for a conda environment, and what it could not."""

    requirements: tuple[str, ...]
    renamed: list[str] = field(default_factory=list)  # "python-graphviz → graphviz"
    left_out: list[str] = field(default_factory=list)  # "esmpy (not on the package index)"
    unpinned: list[str] = field(default_factory=list)  # "numpy=1.26.4 (no such version there)"

    def line(self) -> str:
        """One screen line saying how this environment differs from the image's conda one."""
        parts = [
            f"{label}: {', '.join(items)}"
            for label, items in (
                ("left out", self.left_out),
                ("renamed for the package index", self.renamed),
                ("installed unpinned", self.unpinned),
            )
            if items
        ]
        return "; ".join(parts)


def _name(requirement: str) -> str:
    try:
        return canonicalize_name(Requirement(requirement).name)
    except InvalidRequirement:
        return canonicalize_name(re.split(r"[<>=!~ @\[;]", requirement, maxsplit=1)[0])


def translate(conda: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """(conda name, pip constraint) pairs as pip requirements, with a note for
    each renamed one. A conda name pip cannot even read (`_libgcc_mutex`) is
    left to `install`, which names it."""
    requirements, renamed = [], []
    for name, constraint in conda:
        pypi = pypi_name(name)
        if canonicalize_name(pypi) != canonicalize_name(name):
            renamed.append(f"{name} → {pypi}")
        requirements.append(f"{pypi}{constraint}")
    return requirements, renamed


def install(
    requirements: list[str], renamed: list[str], run: Callable[[tuple[str, ...]], tuple[int, str]], keep: set[str]
) -> tuple[Installed, int, str]:
    """Run the installer (`run(requirements)` -> (return code, its error
    output)) until it succeeds or fails for another reason than a package or
    version the index lacks; each such package is left out (or, a `-core`/
    `-base` output, installed as the package it was split from), each such
    pin dropped, and named. `keep`: names that must stay as they are (the
    base); the installer's failure over one of those is returned as it is.
    Returns (what was installed, the last return code, the last error output)."""
    keep = {canonicalize_name(name) for name in keep}
    done = Installed(tuple(requirements), list(renamed))
    current = [r for r in requirements if not _unreadable(r)]
    done.left_out += [f"{r} (not a package-index name)" for r in requirements if _unreadable(r)]
    done.requirements = tuple(current)
    code, error = 0, ""
    stems: dict[str, str] = {}  # a stem tried -> the -core/-base name it stands for
    for _ in range(len(requirements) + 1):
        code, error = run(tuple(current))
        if code == 0:
            break
        by_name = {_name(r): i for i, r in enumerate(current)}
        missing = [canonicalize_name(m) for p in _NOT_FOUND for m in p.findall(error)]
        versions = [canonicalize_name(m) for p in _NO_VERSION for m in p.findall(error)]
        target = next((n for n in [*missing, *versions] if n in by_name and n not in keep), None)
        if target is None:
            return done, code, error
        at = by_name[target]
        requirement = current[at]
        if target in missing:
            stem = split_from(target)
            if stem and stem not in by_name:
                current[at] = f"{stem}{Requirement(requirement).specifier}"
                stems[stem] = target
                done.renamed.append(f"{target} → {stem} (conda-forge's {target} is split from it)")
            elif target in stems:
                del current[at]
                original = stems[target]
                done.renamed.remove(f"{original} → {target} (conda-forge's {original} is split from it)")
                done.left_out.append(f"{original} (not on the package index, nor {target})")
            else:
                del current[at]
                done.left_out.append(f"{target} (not on the package index)")
        else:
            bare = _bare(requirement)
            if bare == requirement:
                del current[at]
                done.left_out.append(f"{target} (no version for this Python there)")
            else:
                current[at] = bare
                done.unpinned.append(f"{requirement} (no such version there)")
        done.requirements = tuple(current)
    return done, code, error


def _unreadable(requirement: str) -> bool:
    try:
        Requirement(requirement)
    except InvalidRequirement:
        return True
    return False


def _bare(requirement: str) -> str:
    try:
        parsed = Requirement(requirement)
    except InvalidRequirement:
        return requirement
    return parsed.name if parsed.specifier and not parsed.url else requirement
