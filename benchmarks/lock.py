"""How long `hub-template lock` solves, and what the lock saves the image build.

    .venv/bin/python benchmarks/lock.py [--runs 5] [--packages 400] [--versions 6]

conda-forge cannot be reached here, so the channel is made in a temporary
folder (tests/conda_channel.py: real package archives, indexed by
py-rattler): repo2docker's base Python, the packages a default hub's
environment.yml names, and --packages more that they depend on, each in
--versions versions whose dependencies are ranges over the others (newer
versions need newer dependencies, so the solver has choices to make). A
default hub (the tests' template, rendered) is solved against it:

- `lock`: `hub-template lock`'s solve (py-rattler, on repo2docker's base for
  Python 3.12): wall time (median), packages in the lock, and the candidates
  the solver chose among (every version of every package it could reach);
- `install, unlocked`: what the build's `mamba env update` faces without the
  lock: the same solve (environment.yml's specs over the whole channel);
- `install, locked`: what it faces with the lock: the lock's pinned
  `name==version=build` specs, one candidate each, solved by the same solver.

Each is one solver invocation; the figures compare the work inside it.

The pip side, the same way: a local package index (tests/pip_index.py, real
wheels served on loopback) of --pip-packages names in --versions versions,
and five pip requirements resolved by uv as `hub-template lock` does
(`pip, lock` = what the build's pip resolves without the lock), then the
lock's pinned requirements resolved again (`pip, locked`: one candidate each;
the build's pip, in hash-checking mode, chooses nothing).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "hooks"), str(ROOT / "tests")]

from conda_channel import index, package  # noqa: E402
from pip_index import serve, wheel  # noqa: E402

from hub_template import lock  # noqa: E402
from hub_template.environment import read_environment  # noqa: E402

HUB_PACKAGES = ["dask-gateway", "dask", "distributed", "dask-labextension", "gcsfs"]
HUB_PACKAGES += ["xarray", "zarr", "netcdf4", "matplotlib", "hvplot", "intake"]


def make_channel(root: Path, extra: int, versions: int, seed: int = 32) -> Path:
    rng = random.Random(seed)
    forge = root / "conda-forge"
    package(forge, "python", "3.12.12", "hfe2f287_0_cpython", ("__glibc >=2.17",), subdir="linux-64")
    libs = [f"lib{i:03d}" for i in range(extra)]
    for i, name in enumerate(libs):
        for v in range(1, versions + 1):
            deps = [f"{d} >={max(1, v - 2)}" for d in rng.sample(libs[i + 1 :], min(3, len(libs) - i - 1))]
            package(forge, name, f"{v}.0", depends=tuple(deps))
    for name in HUB_PACKAGES:
        for v in range(1, versions + 1):
            deps = ["python >=3.10", *(f"{d} >={v}" for d in rng.sample(libs, 4))]
            version = "2026.3.0" if name == "dask-gateway" else f"{v + 10}.0"
            package(forge, name, version, depends=tuple(deps))
            if name == "dask-gateway":
                break
    index(forge)
    return root


PIP_TOP = ["odc-stac", "pystac-client", "stackstac", "planetary-computer", "xbatcher"]


def make_index(root: Path, extra: int, versions: int, seed: int = 32) -> Path:
    rng = random.Random(seed)
    libs = [f"pylib{i:03d}" for i in range(extra)]
    for i, name in enumerate(libs):
        for v in range(1, versions + 1):
            deps = [f"{d}>={max(1, v - 2)}" for d in rng.sample(libs[i + 1 :], min(3, len(libs) - i - 1))]
            wheel(root, name, f"{v}.0", tuple(deps))
    for name in PIP_TOP:
        for v in range(1, versions + 1):
            wheel(root, name, f"{v}.0", tuple(f"{d}>={v}" for d in rng.sample(libs, 4)))
    return root


def candidates(channel: Path) -> dict[str, int]:
    import json

    counts: dict[str, int] = {}
    for repodata in channel.glob("conda-forge/*/repodata.json"):
        data = json.loads(repodata.read_text())
        for record in [*data.get("packages", {}).values(), *data.get("packages.conda", {}).values()]:
            counts[record["name"]] = counts.get(record["name"], 0) + 1
    return counts


def timed(runs: int, solve) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = solve()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--packages", type=int, default=400)
    parser.add_argument("--versions", type=int, default=6)
    parser.add_argument("--pip-packages", type=int, default=60)
    args = parser.parse_args()
    from conftest import VERSION, publish_template, render

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        channel = make_channel(work / "channel", args.packages, args.versions)
        alias = channel.as_uri() + "/"
        hub = render(publish_template(work / "tpl", f"v{VERSION}"), work / "charlie", hub_name="charlie")
        env_text = (hub / lock.ENVIRONMENT).read_text()
        env = read_environment(env_text, "environment.yml")
        base = lock.read_base(lock.base_lock_path(lock.python_minor(env)).read_text())
        seconds, packages = timed(args.runs, lambda: lock.solve(env, base, alias))
        assert isinstance(packages, list)
        counts = candidates(channel)
        reached = sum(counts.get(p.name, 0) for p in packages if not p.base)
        # The lock's pins (without `conda-forge::`, which names the real channel
        # rather than this folder's stand-in for it).
        pinned = read_environment(
            "dependencies:\n" + "".join(f"  - {p.name}=={p.version}={p.build}\n" for p in packages if not p.base),
            "lock",
        )
        locked_seconds, again = timed(args.runs, lambda: lock.solve(pinned, base, alias))
        assert isinstance(again, list) and {(p.name, p.version) for p in again} == {
            (p.name, p.version) for p in packages
        }
        total = sum(counts.values())
        print(f"# hub-template lock, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, median of {args.runs}")
        print(f"channel: {total} package files ({len(counts)} names, {args.versions} versions each)")
        print(f"lock: {len(packages)} packages ({len(base)} from repo2docker's base)")
        print("| solve | wall | candidates of the packages installed |")
        print("|---|---|---|")
        print(f"| lock (= install, unlocked) | {seconds * 1000:.0f} ms | {reached} |")
        print(f"| install, locked | {locked_seconds * 1000:.0f} ms | {len(packages) - len(base)} |")

        from hub_template.pip_lock import resolve

        pip_root = make_index(work / "pypi", args.pip_packages, args.versions)
        with serve(pip_root) as url:
            pip_seconds, pinned_pip = timed(args.runs, lambda: resolve(PIP_TOP, "3.12.12", packages, url))
            assert isinstance(pinned_pip, list)
            lines = [f"{p.name}=={p.version}" for p in pinned_pip]
            pip_locked_seconds, _ = timed(args.runs, lambda: resolve(lines, "3.12.12", packages, url))
        files = sum(1 for _ in pip_root.glob("simple/*/*.whl"))
        reached = sum(1 for p in pinned_pip for _ in pip_root.glob(f"simple/{p.name}/*.whl"))
        print(f"pip: {len(PIP_TOP)} requirements, {len(pinned_pip)} packages locked, index of {files} wheels")
        print(f"| pip, lock (= build's pip, unlocked) | {pip_seconds * 1000:.0f} ms | {reached} |")
        print(f"| pip, locked | {pip_locked_seconds * 1000:.0f} ms | {len(pinned_pip)} |")


if __name__ == "__main__":
    main()
