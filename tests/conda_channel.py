"""A local conda channel made in the test: real package archives (.tar.bz2
holding info/index.json and info/paths.json) indexed by py-rattler, standing
in for conda-forge, which these machines cannot reach. `hub-template lock
--channel-alias` points channel names at it, as conda's channel_alias would."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from pathlib import Path

# A timestamp for every package: the solver requires one.
TIMESTAMP = 1_760_000_000_000


def package(
    channel: Path, name: str, version: str, build: str = "0", depends: tuple[str, ...] = (), subdir: str = "noarch"
) -> Path:
    """One package archive with real dependency metadata."""
    folder = channel / subdir
    folder.mkdir(parents=True, exist_ok=True)
    index = {
        "name": name,
        "version": version,
        "build": build,
        "build_number": 0,
        "depends": list(depends),
        "subdir": subdir,
        "timestamp": TIMESTAMP,
    }
    if subdir == "noarch":
        index["noarch"] = "generic"
    path = folder / f"{name}-{version}-{build}.tar.bz2"
    with tarfile.open(path, "w:bz2") as tar:
        for member, content in (("info/index.json", index), ("info/paths.json", {"paths": [], "paths_version": 1})):
            data = json.dumps(content).encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def index(channel: Path) -> None:
    """repodata.json for each subdir, as a channel serves it."""
    from rattler.index import index_fs

    (channel / "noarch").mkdir(parents=True, exist_ok=True)
    asyncio.run(index_fs(channel, write_zst=False, write_shards=False, force=True))
