"""`hub-template lock HUB`: solve the image's environment.yml for linux-64 and
write image/binder/environment.lock.yml beside it.

The lock is what the image will hold: repo2docker installs its own locked base
environment (environment.py-<python>-linux-64.lock, shipped in its package)
and then applies environment.yml on top with `mamba env update`. So the base
is read here as the installed packages (the solver keeps them unless a spec
forces a change, as mamba does) and the result is the base plus the hub's
packages, every one with version, build, URL and hash.

The lock is itself a conda environment file whose every conda dependency is
`channel::name==version=build`: copied over environment.yml in the build's
checkout, repo2docker's conda buildpack builds it unchanged, and mamba has
exactly one candidate for each package (no solve to win or lose). environment.yml
stays the file people edit; docs/image-lock.md says why this layout.

environment.yml's pip packages are resolved against the package index for the
locked Python and conda packages (pip_lock.py) and written pinned and hashed
under the lock's `pip:`, where the build's pip installs them without a resolve.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .environment import Environment, read_environment
from .pip_lock import DEFAULT_INDEX, PipLocked, PipLockError, resolve

PLATFORM: Final = "linux-64"
ENVIRONMENT = Path("image/binder/environment.yml")
LOCK = Path("image/binder/environment.lock.yml")
# The virtual packages of the image's build machine: repo2docker's base image
# is Ubuntu 24.04 (glibc 2.39), x86_64.
VIRTUAL = {"__glibc": "2.39", "__unix": "0", "__linux": "6.0", "__archspec": "1"}
REQUESTED = "# requested: "
REQUESTED_PIP = "# requested pip: "
SOURCE_HASH = "# environment.yml sha256: "
# Written when environment.yml has pip packages: a lock without it (older) has them unresolved.
PIP_RESOLVED = "# pip packages resolved for the locked Python and conda packages, hashed"


class LockError(Exception):
    """A lock that cannot be made; the message says why and what to do."""


@dataclass(frozen=True)
class Locked:
    name: str
    version: str
    build: str
    channel: str  # the name the environment used (conda-forge), or a URL
    url: str
    hash: str  # "sha256:HEX" or "md5:HEX"
    base: bool  # from repo2docker's base environment, unchanged

    @property
    def spec(self) -> str:
        # repo2docker reads the image's Python from a line that starts with
        # `python=` (its PYTHON_REGEX): a channel prefix there would silently
        # build on its default Python instead.
        channel = "" if self.name == "python" else f"{self.channel}::"
        return f"{channel}{self.name}=={self.version}={self.build}"


# --- repo2docker's base --------------------------------------------------------


def base_lock_path(python: str) -> Path:
    """repo2docker's frozen base environment for this Python on linux-64."""
    from importlib.util import find_spec

    # Located, not imported: importing repo2docker starts its whole app.
    spec = find_spec("repo2docker")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("repo2docker is not installed", name="repo2docker")
    folder = Path(next(iter(spec.submodule_search_locations))) / "buildpacks" / "conda"
    path = folder / f"environment.py-{python}-{PLATFORM}.lock"
    if not path.is_file():
        raise LockError(f"repo2docker has no base environment for Python {python} on {PLATFORM} ({path.name})")
    return path


_FILE = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+)-(?P<build>[^-]+)\.(?:conda|tar\.bz2)$")


def read_base(text: str) -> list[Locked]:
    """The packages of an @EXPLICIT lock (URL#md5 per line)."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line == "@EXPLICIT":
            continue
        url, _, md5 = line.partition("#")
        match = _FILE.match(url.rsplit("/", 1)[-1])
        if match is None:
            raise LockError(f"repo2docker's base lock has a line that names no package: {line[:80]}")
        channel = url.split("/")[-3]
        found.append(Locked(match["name"], match["version"], match["build"], channel, url, f"md5:{md5}", True))
    return found


# --- the solve ---------------------------------------------------------------------


def python_minor(env: Environment) -> str:
    """The image's Python, as repo2docker reads it (python=X.Y)."""
    for spec in env.conda:
        if spec.name == "python":
            match = re.match(r"^=?=?(\d+\.\d+)", spec.constraint)
            if match:
                return match[1]
    raise LockError(
        f"{env.origin} pins no Python (python=X.Y); repo2docker's base and the lock both need it, like python=3.12"
    )


def _channels(env: Environment, channel_alias: str | None) -> list[Any]:
    from rattler import Channel, ChannelConfig

    config = ChannelConfig(channel_alias=channel_alias) if channel_alias else ChannelConfig()
    return [Channel(name, config) for name in env.channels or ["conda-forge"]]


def solve(
    env: Environment,
    base: list[Locked],
    channel_alias: str | None = None,
    builds: dict[str, tuple[str, str]] | None = None,
) -> list[Locked]:
    """environment.yml's conda specs solved for linux-64 on top of `base`;
    `builds` (name -> version, build) pins those packages to that very build."""
    from rattler import (
        BuildString,
        GenericVirtualPackage,
        PackageName,
        PackageRecord,
        RepoDataRecord,
        Version,
    )
    from rattler import solve as rattler_solve
    from rattler.exceptions import SolverError

    builds = builds or {}
    channels = _channels(env, channel_alias)
    # The base as installed packages: the solver keeps them unless a spec needs
    # otherwise. Their records carry no dependencies (an @EXPLICIT file has none);
    # where a channel serves the same file, the solver uses the channel's record.
    installed = [
        RepoDataRecord(
            PackageRecord(p.name, p.version, BuildString(p.build), 0, p.url.split("/")[-2]),
            p.url.rsplit("/", 1)[-1],
            p.url,
            p.url.rsplit("/", 2)[0] + "/",
        )
        for p in base
    ]
    virtual = [GenericVirtualPackage(PackageName(n), Version(v), BuildString("0")) for n, v in VIRTUAL.items()]
    # Every base package stays in the image (mamba env update removes none).
    asked = {spec.key for spec in env.conda}
    specs = [
        f"{spec.name} =={builds[spec.key][0]} {builds[spec.key][1]}" if spec.key in builds else str(spec)
        for spec in env.conda
    ] + [p.name for p in base if p.name not in asked]
    try:
        records = asyncio.run(
            rattler_solve(
                channels,
                specs,
                platforms=[PLATFORM, "noarch"],
                locked_packages=installed,
                virtual_packages=virtual,
            )
        )
    except SolverError as error:
        raise LockError(f"{env.origin} cannot be solved for {PLATFORM}:\n{error}") from None
    by_file = {p.url.rsplit("/", 1)[-1]: p for p in base}
    names = {c.base_url.rstrip("/"): c.name or c.base_url for c in channels}
    result = []
    for record in records:
        kept = by_file.get(record.file_name)
        if kept is not None:
            result.append(kept)
            continue
        digest = f"sha256:{record.sha256.hex()}" if record.sha256 else f"md5:{(record.md5 or b'').hex()}"
        channel = names.get((record.channel or "").rstrip("/"), record.channel or record.url.rsplit("/", 2)[0])
        result.append(
            Locked(record.name.normalized, str(record.version), str(record.build), channel, record.url, digest, False)
        )
    return sorted(result, key=lambda p: p.name)


# --- an export's builds ----------------------------------------------------------


def read_export(path: Path) -> Environment:
    """A `conda env export` (YAML) or `conda list --export`, with its build strings."""
    from .environment import SpecError, is_conda_list, read_conda_list

    if not path.is_file() or path.is_symlink():
        raise LockError(f"--export {path}: no such file (a `conda env export` or `conda list --export`)")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        return read_conda_list(text, str(path)) if is_conda_list(text) else read_environment(text, str(path))
    except SpecError as error:
        raise LockError(str(error)) from None


def export_builds(env: Environment, export: Environment) -> dict[str, tuple[str, str]]:
    """The export's build of each package environment.yml pins to the export's
    version (the import wrote it so); a version the hub changed is solved."""
    return {
        spec.key: export.builds[spec.key]
        for spec in env.conda
        if spec.key in export.builds and spec.constraint.lstrip("=") == export.builds[spec.key][0]
    }


def missing_builds(env: Environment, builds: dict[str, tuple[str, str]], channel_alias: str | None) -> list[str]:
    """`name=version=build` of each of `builds` the channels lack for linux-64 and noarch."""
    from rattler import Gateway

    if not builds:
        return []
    specs = [f"{name} =={version} {build}" for name, (version, build) in builds.items()]
    found = asyncio.run(Gateway().query(_channels(env, channel_alias), [PLATFORM, "noarch"], specs, recursive=False))
    there = {(r.name.normalized, str(r.version), str(r.build)) for records in found for r in records}
    return [f"{n}={v}={b}" for n, (v, b) in sorted(builds.items()) if (n, v, b) not in there]


# --- the lock file -----------------------------------------------------------------


def render(env_text: str, env: Environment, python: str, packages: list[Locked], pip: list[PipLocked]) -> str:
    from importlib.metadata import version

    lines = [
        f"# environment.yml solved for {PLATFORM} by `hub-template lock`, on repo2docker",
        f"# {version('jupyter-repo2docker')}'s base for Python {python}. Do not edit: edit",
        "# environment.yml, then run `hub-template lock` (docs/image-lock.md).",
        "# The image is built from this file, copied over environment.yml.",
        f"{SOURCE_HASH}{hashlib.sha256(env_text.encode()).hexdigest()}",
        f"{REQUESTED}{' | '.join(str(s) for s in env.conda)}",
        f"{REQUESTED_PIP}{' | '.join(s.text for s in env.pip)}",
        *([PIP_RESOLVED] if env.pip else []),
        "channels:",
        *[f"  - {c}" for c in env.channels or ["conda-forge"]],
        "dependencies:",
    ]
    for p in sorted(packages, key=lambda p: p.name != "python"):  # python first, as people write it
        lines.append(f"  - {p.spec}  # {p.url} {p.hash}{' (base)' if p.base else ''}")
    if pip:  # none when conda installs every one
        # Hashed, so pip installs exactly these (hash-checking mode) and nothing else.
        lines.append("  - pip:")
        lines += [f"      - {p.line}" for p in pip]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class LockInfo:
    requested: dict[str, str]  # conda name -> spec
    pip: dict[str, str]
    versions: dict[str, str]  # name -> version, every locked package ("name (pip)" for pip's)
    pip_resolved: bool  # the pip section is pinned and hashed (not as environment.yml names it)


def read_lock(text: str) -> LockInfo:
    requested: dict[str, str] = {}
    pip: dict[str, str] = {}
    versions: dict[str, str] = {}
    pip_resolved = False
    for line in text.splitlines():
        if line.startswith(REQUESTED):
            requested = {_conda_name(s): s for s in _split(line[len(REQUESTED) :])}
        elif line.startswith(REQUESTED_PIP):
            pip = {_pip_name(s): s for s in _split(line[len(REQUESTED_PIP) :])}
        match = re.match(r"^  - (?:[^:\s]+::)?(?P<name>[^=\s]+)==(?P<version>[^=\s]+)=", line)
        if match:
            versions[match["name"]] = match["version"]
        pinned = re.match(r"^      - (?P<name>[^=\s]+)==(?P<version>\S+) --hash=", line)
        if pinned:
            versions[f"{pinned['name']} (pip)"] = pinned["version"]
        pip_resolved = pip_resolved or line == PIP_RESOLVED
    return LockInfo(requested, pip, versions, pip_resolved)


def _split(text: str) -> list[str]:
    return [s.strip() for s in text.split(" | ") if s.strip()]


def _conda_name(spec: str) -> str:
    return re.split(r"[=<>!~ \[]", spec.split("::")[-1], maxsplit=1)[0].lower()


def _pip_name(spec: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(re.split(r"[=<>!~ \[;@]", spec, maxsplit=1)[0])


def stale(env: Environment, lock_text: str) -> list[str]:
    """How environment.yml and its lock differ, one phrase per package; [] if current."""
    info = read_lock(lock_text)
    wanted = {s.key: str(s) for s in env.conda}
    wanted_pip = {s.key: s.text for s in env.pip}
    changes = []
    for kind, now, then in (("", wanted, info.requested), ("pip ", wanted_pip, info.pip)):
        for name in sorted(now.keys() | then.keys()):
            if name not in then:
                changes.append(f"{kind}`{now[name]}` added")
            elif name not in now:
                changes.append(f"{kind}`{then[name]}` removed")
            elif now[name] != then[name]:
                changes.append(f"{kind}`{then[name]}` is now `{now[name]}`")
    if wanted_pip and not info.pip_resolved:
        changes.append("its pip packages are as environment.yml names them, not resolved and hashed")
    return changes


def diff(old_text: str, new_text: str) -> list[tuple[str, str, str]]:
    """(name, old version, new version) of every package that changed; "" for absent."""
    old, new = read_lock(old_text).versions, read_lock(new_text).versions
    return [(n, old.get(n, ""), new.get(n, "")) for n in sorted(old.keys() | new.keys()) if old.get(n) != new.get(n)]


def table(changes: list[tuple[str, str, str]]) -> str:
    """The refresh pull request's table of version changes (Markdown)."""
    if not changes:
        return "No package changed.\n"
    rows = [f"| {n} | {o or '(new)'} | {v or '(removed)'} |" for n, o, v in changes]
    return "\n".join(["| package | old | new |", "|---|---|---|", *rows]) + "\n"


# --- the verb ----------------------------------------------------------------------


def lock_hub(
    hub: Path, channel_alias: str | None = None, pip_index_url: str = DEFAULT_INDEX, export: Path | None = None
) -> tuple[str, str | None, list[str]]:
    """(the new lock's text, the old one's or None, notes) for a hub folder;
    `export` (a `conda env export`) gives the builds to keep where the channel has them."""
    env_path = hub / ENVIRONMENT
    if not env_path.is_file() or env_path.is_symlink():
        raise LockError(f"{hub}: no {ENVIRONMENT} (a regular file) to lock; is this a hub folder?")
    env_text = env_path.read_text()
    env = read_environment(env_text, str(env_path))
    python = python_minor(env)
    base = read_base(base_lock_path(python).read_text())
    builds: dict[str, tuple[str, str]] = {}
    notes = []
    if export is not None:
        builds = export_builds(env, read_export(export))
        missing = missing_builds(env, builds, channel_alias)
        if missing:
            notes.append(
                f"the channels have no {PLATFORM} or noarch build {', '.join(missing)} of {export} "
                "(built for another platform?): those packages are solved by version instead"
            )
        builds = {n: b for n, b in builds.items() if f"{n}={b[0]}={b[1]}" not in missing}
    try:
        packages = solve(env, base, channel_alias, builds)
    except LockError as error:
        if not builds:
            raise
        notes.append(
            f"the builds of {export} do not solve with environment.yml, so it is solved without them:\n{error}"
        )
        builds, packages = {}, solve(env, base, channel_alias)
    if builds:
        notes.append(f"kept the build of {len(builds)} packages of {export} ({', '.join(sorted(builds))})")
    pip = []
    if env.pip:
        locked_python = next(p.version for p in packages if p.name == "python")
        try:
            pip = resolve([s.text for s in env.pip], locked_python, packages, pip_index_url)
        except PipLockError as error:
            raise LockError(f"{env.origin}: {error}") from None
    lock_path = hub / LOCK
    old = lock_path.read_text() if lock_path.is_file() and not lock_path.is_symlink() else None
    return render(env_text, env, python, packages, pip), old, notes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hubs", nargs="+", type=Path, metavar="HUB", help="a hub folder (deployments/<hub>)")
    parser.add_argument(
        "--channel-alias",
        metavar="URL",
        default=os.environ.get("CONDA_CHANNEL_ALIAS") or None,
        help="where channel names point (conda's channel_alias, also read from CONDA_CHANNEL_ALIAS as conda "
        "does; default https://conda.anaconda.org/)",
    )
    parser.add_argument(
        "--pip-index-url",
        metavar="URL",
        default=os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX,
        help="the package index the pip packages are resolved against (also read from PIP_INDEX_URL as pip "
        f"does; default {DEFAULT_INDEX})",
    )
    parser.add_argument(
        "--export",
        type=Path,
        metavar="FILE",
        help="a `conda env export` (or `conda list --export`) of the environment the hub was imported from: "
        "its build of each package environment.yml pins to the same version is kept where the channels have "
        "it for linux-64; the others are solved",
    )
    parser.add_argument(
        "--diff", action="store_true", help="print the table of version changes (Markdown) after writing the lock"
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a lock would change")


def run(args: argparse.Namespace) -> int:
    status = 0
    for hub in args.hubs:
        try:
            new, old, notes = lock_hub(hub, args.channel_alias, args.pip_index_url, args.export)
        except LockError as error:
            print(f"error: {error}")
            status = 2
            continue
        for note in notes:
            print(f"note: {note}")
        changes = diff(old or "", new)
        if args.check:
            if old != new:
                print(f"{hub / LOCK}: out of date ({len(changes)} packages change)")
                status = max(status, 1)
            continue
        (hub / LOCK).write_text(new)
        print(f"{hub / LOCK}: {len(read_lock(new).versions)} packages, {len(changes)} changed")
        if args.diff:
            print(table(changes), end="")
    return status
