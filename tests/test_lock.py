"""`hub-template lock`: a real hub's environment.yml solved by py-rattler
against a local channel made here (conda-forge cannot be reached), on top of
repo2docker's own base lock; the staleness check (IM011); and repo2docker
building the locked hub's Dockerfile from pinned specs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from conda_channel import index, package
from conftest import render
from hub_cells import REAL_IDS
from pip_index import serve, sha256, wheel

from hub_template import lock
from hub_template.checks.runner import run_checks

# repo2docker's base python for 3.12 on linux-64, the file its lock names.
BASE_PYTHON = ("3.12.12", "hfe2f287_0_cpython")


def _channel(root: Path) -> Path:
    """conda-forge as the hub's environment.yml needs it, with real dependencies:
    zarr 3 needs numcodecs >=0.14, and two versions of xarray to choose from."""
    forge = root / "conda-forge"
    package(forge, "python", *BASE_PYTHON, depends=("__glibc >=2.17",), subdir="linux-64")
    for name, version, depends in [
        ("dask-gateway", "2026.3.0", ("python >=3.10", "dask >=2024")),
        ("dask", "2025.1.0", ("python >=3.10",)),
        ("dask", "2026.1.0", ("python >=3.10", "toolz >=1")),
        ("toolz", "1.0.0", ("python >=3.9",)),
        ("distributed", "2026.1.0", ("python >=3.10", "dask ==2026.1.0")),
        ("dask-labextension", "7.0.0", ("python >=3.9",)),
        ("gcsfs", "2025.9.0", ("python >=3.9",)),
        ("xarray", "2025.1.0", ("python >=3.10", "numpy >=1.24")),
        ("xarray", "2026.2.0", ("python >=3.11", "numpy >=2")),
        ("numpy", "1.26.4", ()),
        ("numpy", "1.26.4", ()),
        ("numpy", "2.3.0", ()),
        ("zarr", "3.1.0", ("python >=3.11", "numcodecs >=0.14")),
        ("numcodecs", "0.13.1", ()),
        ("numcodecs", "0.15.0", ()),
    ]:
        package(forge, name, version, depends=depends)
    # The builds a linux-64 `conda env export` names: an older xarray, and a
    # second numpy build beside build 0.
    package(forge, "xarray", "2025.1.0", "pyhd8ed1ab_0", ("python >=3.10", "numpy >=1.24"))
    package(forge, "numpy", "1.26.4", "py312heda63a1_0", ("python >=3.12,<3.13",), subdir="linux-64")
    package(forge, "_libgcc_mutex", "0.1", "conda_forge", subdir="linux-64")
    index(forge)
    return root


@pytest.fixture(scope="module")
def channel_alias(tmp_path_factory) -> str:
    return _channel(tmp_path_factory.mktemp("channel")).as_uri() + "/"


def _pip_index(root: Path) -> Path:
    """PyPI as the hub's pip packages need it: odc-stac 0.3.11 needs pystac
    >=1.10 and numpy >=2; the index has a numpy newer than the channel's, which
    pip must not take (conda installs numpy, and repo2docker's base
    python-dateutil 2.9.0.post0)."""
    for name, version, requires in [
        ("odc-stac", "0.3.10", ("pystac>=1.9", "numpy>=1.24")),
        ("odc-stac", "0.3.11", ("pystac>=1.10", "numpy>=2")),
        ("pystac", "1.9.0", ("python-dateutil>=2.7",)),
        ("pystac", "1.10.0", ("python-dateutil>=2.7",)),
        ("python-dateutil", "2.9.0", ()),
        ("python-dateutil", "2.9.0.post0", ()),
        ("numpy", "1.26.4", ()),
        ("numpy", "2.3.0", ()),
        ("numpy", "2.4.0", ()),
    ]:
        wheel(root, name, version, requires)
    return root


@pytest.fixture(scope="module")
def pip_index_root(tmp_path_factory) -> Path:
    return _pip_index(tmp_path_factory.mktemp("pypi"))


@pytest.fixture(scope="module", autouse=True)
def pip_index(pip_index_root):
    """PIP_INDEX_URL (pip's own variable, which `hub-template lock` reads) at the local index."""
    with serve(pip_index_root) as url, pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIP_INDEX_URL", url)
        yield url


@pytest.fixture
def hub(template_repo, tmp_path) -> Path:
    return render(
        template_repo,
        tmp_path / "charlie",
        hub_name="charlie",
        conda_packages=["xarray", "zarr>=3"],
        pip_packages=["odc-stac>=0.3"],
    )


def _hub_template(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub_template.cli", *args], capture_output=True, text=True, timeout=120
    )


def _dependencies(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("  - ") and "==" in line]


def test_lock_pins_every_package_of_the_base_and_the_hub(hub, channel_alias, pip_index_root):
    done = _hub_template("lock", str(hub), "--channel-alias", channel_alias)
    assert done.returncode == 0, done.stdout + done.stderr
    text = (hub / lock.LOCK).read_text()
    deps = _dependencies(text)
    # Every package: channel::name==version=build, its URL and its hash.
    for line in deps:
        assert re.match(
            r"^  - (conda-forge::)?\S+==\S+=\S+  # \S+\.(conda|tar\.bz2) (sha256|md5):[0-9a-f]{32,64}", line
        ), line
    versions = lock.read_lock(text).versions
    # The hub's packages, newest where the dependencies allow.
    assert versions["xarray"] == "2026.2.0" and versions["numpy"] == "2.3.0"
    assert versions["zarr"] == "3.1.0" and versions["numcodecs"] == "0.15.0"
    assert versions["dask"] == "2026.1.0" and versions["distributed"] == "2026.1.0"
    assert versions["dask-gateway"] == "2026.3.0" and versions["toolz"] == "1.0.0"
    # repo2docker's base, unchanged (its own URL and md5): what the image holds.
    base = lock.read_base(lock.base_lock_path("3.12").read_text())
    for kept in base:
        assert versions[kept.name] == kept.version, kept.name
    # python first and without a channel: repo2docker reads the image's Python there.
    assert deps[0].startswith(f"  - python=={BASE_PYTHON[0]}={BASE_PYTHON[1]}  # ")
    assert len(deps) == len(base) + 10  # ten packages from the channel on top of the base
    # pip packages resolved for the locked Python next to conda's numpy 2.3.0
    # (not the index's 2.4.0) and the base's python-dateutil, which conda
    # installs and pip leaves alone; each pinned with its hash.
    assert lock.PIP_RESOLVED in text.splitlines()
    pip_lines = text.split("  - pip:\n", 1)[1].splitlines()
    files = {p.name.split("-")[0]: p for p in (pip_index_root / "simple").glob("*/*.whl")}
    assert pip_lines == [
        f"      - odc-stac==0.3.11 --hash={sha256(pip_index_root / 'simple/odc-stac/odc_stac-0.3.11-py3-none-any.whl')}",
        f"      - pystac==1.10.0 --hash={sha256(pip_index_root / 'simple/pystac/pystac-1.10.0-py3-none-any.whl')}",
    ], files
    assert versions["odc-stac (pip)"] == "0.3.11"
    # A second run changes nothing.
    assert _hub_template("lock", str(hub), "--channel-alias", channel_alias, "--check").returncode == 0


def test_pip_installs_the_locked_packages_and_nothing_it_would_resolve(hub, channel_alias, pip_index, tmp_path):
    """The build's pip step as mamba runs it (`pip install -U -r` of the lock's
    pip section, in the environment conda filled): exactly the locked files; a
    dependency missing from the list fails instead of being resolved."""
    import yaml

    assert _hub_template("lock", str(hub), "--channel-alias", channel_alias).returncode == 0
    deps = yaml.safe_load((hub / lock.LOCK).read_text())["dependencies"]
    (pip,) = [d["pip"] for d in deps if isinstance(d, dict)]
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = str(env / "bin/python")
    # Only the local index: not this machine's pip configuration (its extra indexes and wheels).
    isolated = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": os.devnull}

    def install(lines: list[str]) -> subprocess.CompletedProcess[str]:
        requirements = tmp_path / "requirements.txt"
        requirements.write_text("\n".join(lines) + "\n")
        return subprocess.run(
            [
                *(sys.executable, "-m", "pip", "--python", python, "install", "-U", "-r", str(requirements)),
                *("--no-input", "--index-url", pip_index, "--disable-pip-version-check", "--no-cache-dir"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=isolated,
        )

    # What conda installed before pip runs: numpy 2.3.0 and the base's python-dateutil.
    assert install(["numpy==2.3.0", "python-dateutil==2.9.0.post0"]).returncode == 0
    missing = install([line for line in pip if not line.startswith("pystac==")])
    assert missing.returncode != 0 and "pystac" in missing.stderr and "hash" in missing.stderr.lower()
    done = install(pip)
    assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "list", "--format", "json"], capture_output=True, text=True
    )
    installed = {p["name"].lower(): p["version"] for p in json.loads(listed.stdout)}
    assert installed == {"numpy": "2.3.0", "python-dateutil": "2.9.0.post0", "odc-stac": "0.3.11", "pystac": "1.10.0"}


def test_pip_packages_conda_installs_leave_no_pip_section(hub, channel_alias):
    import yaml

    env = hub / lock.ENVIRONMENT
    env.write_text(env.read_text().replace("      - odc-stac>=0.3\n", "      - numpy\n"))
    assert _hub_template("lock", str(hub), "--channel-alias", channel_alias).returncode == 0
    text = (hub / lock.LOCK).read_text()
    deps = yaml.safe_load(text)["dependencies"]
    assert all(isinstance(d, str) for d in deps) and "  - conda-forge::numpy==2.3.0=0  # " in text
    assert lock.PIP_RESOLVED in text.splitlines() and _im011(hub).result is True


def test_a_pip_conflict_is_refused_with_the_resolvers_explanation(hub, channel_alias):
    env = hub / lock.ENVIRONMENT
    env.write_text(
        env.read_text().replace("      - odc-stac>=0.3\n", "      - odc-stac>=0.3.11\n      - pystac<1.10\n")
    )
    done = _hub_template("lock", str(hub), "--channel-alias", channel_alias)
    assert done.returncode == 2, done.stdout
    assert "the pip packages cannot be resolved for Python 3.12.12 on linux x86_64" in done.stdout
    assert "pystac" in done.stdout and "unsatisfiable" in done.stdout
    assert not (hub / lock.LOCK).exists()
    # A conda package pip would have to replace: conda's numpy 1.26.4 against odc-stac's numpy>=2.
    env.write_text(
        env.read_text().replace("      - pystac<1.10\n", "").replace("  - xarray\n", "  - xarray\n  - numpy<2\n")
    )
    done = _hub_template("lock", str(hub), "--channel-alias", channel_alias)
    assert done.returncode == 2, done.stdout
    assert "with the conda packages the lock installs" in done.stdout and "numpy==1.26.4" in done.stdout


def test_a_conflict_is_refused_naming_the_packages(hub, channel_alias):
    env = hub / lock.ENVIRONMENT
    env.write_text(env.read_text().replace("  - zarr>=3\n", "  - zarr>=3\n  - numcodecs<0.14\n"))
    done = _hub_template("lock", str(hub), "--channel-alias", channel_alias)
    assert done.returncode == 2
    assert "cannot be solved for linux-64" in done.stdout
    assert "zarr" in done.stdout and "numcodecs" in done.stdout
    assert not (hub / lock.LOCK).exists()


def _im011(hub: Path):
    return next(r for r in run_checks(hub, select=frozenset({"IM011"})).results if r.name == "IM011")


def test_check_fails_a_stale_lock_naming_what_changed(hub, channel_alias):
    assert not (hub / lock.LOCK).exists() and _im011(hub).result is True  # no lock: nothing stale
    assert _hub_template("lock", str(hub), "--channel-alias", channel_alias).returncode == 0
    assert _im011(hub).result is True
    env = hub / lock.ENVIRONMENT
    env.write_text(env.read_text().replace("  - xarray\n", "  - xarray<2026\n  - toolz\n").replace("  - zarr>=3\n", ""))
    stale = _im011(hub)
    assert stale.result is False
    assert "`xarray` is now `xarray<2026`" in stale.err_msg
    assert "`toolz` added" in stale.err_msg and "`zarr>=3` removed" in stale.err_msg
    assert "`hub-template lock deployments/charlie`" in stale.err_msg
    assert "pip" not in stale.err_msg
    # The refresh: the lock follows, and --diff prints the table a pull request carries.
    done = _hub_template("lock", str(hub), "--channel-alias", channel_alias, "--diff")
    assert done.returncode == 0, done.stdout
    assert "| xarray | 2026.2.0 | 2025.1.0 |" in done.stdout
    assert "| zarr | 3.1.0 | (removed) |" in done.stdout
    assert _im011(hub).result is True


def test_check_fails_a_lock_whose_pip_packages_are_stale_or_unresolved(hub, channel_alias):
    assert _hub_template("lock", str(hub), "--channel-alias", channel_alias).returncode == 0
    env = hub / lock.ENVIRONMENT
    env.write_text(env.read_text().replace("      - odc-stac>=0.3\n", "      - odc-stac<0.3.11\n      - pystac\n"))
    stale = _im011(hub)
    assert stale.result is False
    assert "pip `odc-stac>=0.3` is now `odc-stac<0.3.11`" in stale.err_msg and "pip `pystac` added" in stale.err_msg
    done = _hub_template("lock", str(hub), "--channel-alias", channel_alias, "--diff")
    assert done.returncode == 0, done.stdout
    assert "| odc-stac (pip) | 0.3.11 | 0.3.10 |" in done.stdout
    assert _im011(hub).result is True
    # A lock written before pip packages were resolved: named as such.
    text = (hub / lock.LOCK).read_text()
    head, _ = text.replace(f"{lock.PIP_RESOLVED}\n", "").split("  - pip:\n")
    (hub / lock.LOCK).write_text(
        head + "  - pip:  # as environment.yml names them, not resolved\n      - odc-stac<0.3.11\n      - pystac\n"
    )
    stale = _im011(hub)
    assert stale.result is False and "pip packages are as environment.yml names them" in stale.err_msg


def test_repo2docker_builds_the_locked_hub_from_pinned_specs(hub, channel_alias, tmp_path, monkeypatch):
    assert _hub_template("lock", str(hub), "--channel-alias", channel_alias).returncode == 0
    # What the image build does in its checkout: the lock over environment.yml.
    image = shutil.copytree(hub / "image", tmp_path / "image")
    shutil.copy(image / "binder/environment.lock.yml", image / "binder/environment.yml")
    done = subprocess.run(
        [
            Path(sys.executable).parent / "repo2docker",
            "--no-build",
            "--debug",
            "--user-id",
            "1000",
            "--user-name",
            "jovyan",
            str(image),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'env update -p ${NB_PYTHON_PREFIX} --file "binder/environment.yml"' in done.stdout
    # The base repo2docker installs is the one the lock was solved on.
    assert "Building conda environment for python=3.12" in done.stderr
    assert "Python version unspecified" not in done.stderr
    # What the conda buildpack hands to `mamba env update`, read by the buildpack itself.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # repo2docker imports a moved pythonjsonlogger name
        from repo2docker.buildpacks.conda import CondaBuildPack

    buildpack = CondaBuildPack(base_image="docker.io/library/buildpack-deps:noble")
    monkeypatch.chdir(image)  # the buildpack reads binder/ where it runs
    deps = buildpack.environment_yaml["dependencies"]
    assert buildpack.python_version == "3.12"
    conda = [d for d in deps if isinstance(d, str)]
    assert conda and all(re.fullmatch(r"(conda-forge::)?[^=\s]+==[^=\s]+=[^=\s]+", d) for d in conda)
    (pip,) = [d["pip"] for d in deps if isinstance(d, dict)]
    assert [line.split(" ")[0] for line in pip] == ["odc-stac==0.3.11", "pystac==1.10.0"]


def test_the_federations_image_step_builds_a_locked_hub_from_its_lock(template_repo, tmp_path_factory, channel_alias):
    """deploy.yml's real image step (real pip and repo2docker, the registry and
    Docker daemon stood in for): the context repo2docker hands to docker holds
    the lock as binder/environment.yml; a hub with no lock builds as before."""
    from conftest import git, hub_template
    from test_deploy_image import run_image_step
    from test_federation_repo import federation

    fed = tmp_path_factory.mktemp("locked") / "pangeo-hubs"
    shutil.copytree(federation(template_repo, tmp_path_factory), fed)
    git(fed, "init", "-q")
    git(fed, "add", "-A")
    git(fed, "commit", "-q", "-m", "the federation")
    first = git(fed, "rev-parse", "HEAD")
    for name in ("charlie", "delta"):
        render(
            template_repo, fed / "deployments" / name, hub_name=name, conda_packages=["xarray", "zarr>=3"], **REAL_IDS
        )
    assert _hub_template("lock", str(fed / "deployments/charlie"), "--channel-alias", channel_alias).returncode == 0
    git(fed, "add", "-A")
    git(fed, "commit", "-q", "-m", "charlie and delta")
    done = hub_template("plan-deploy", "--before", first, "--branch", "staging", cwd=fed)
    assert done.returncode == 0, done.stderr
    plans = {entry["hub"]: entry for entry in json.loads(done.stdout)["hubs"]}
    for name, locked in (("charlie", True), ("delta", False)):
        ran, calls, _ = run_image_step(fed, plans[name], {}, tmp_path_factory.mktemp(name), template_repo)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        (build,) = [call["build"] for call in calls if call["tool"] == "docker-build"]
        (built,) = [text for rel, text in build["environments"].items() if rel.endswith("binder/environment.yml")]
        source = fed / "deployments" / name / "image/binder"
        assert built == (source / ("environment.lock.yml" if locked else "environment.yml")).read_text()
        assert ("building from" in ran.stdout) is locked


def test_the_weekly_refresh_opens_a_pull_request_with_the_version_table(template_repo, tmp_path_factory, tmp_path):
    """lock-refresh.yml's steps as GitHub runs them, for a hub locked last week
    whose channel has a newer zarr today: the lock is re-solved, pushed to
    lock-refresh/charlie and a pull request to staging carries the table. The
    channel (CONDA_CHANNEL_ALIAS, conda's own variable), GitHub (git insteadOf,
    bin/gh) and nothing else are stood in for."""
    import yaml
    from conftest import BIN, git
    from standins import Boundary
    from test_federation_repo import federation

    channel = _channel(tmp_path / "channel")
    alias = channel.as_uri() + "/"
    fed = tmp_path / "pangeo-hubs"
    shutil.copytree(federation(template_repo, tmp_path_factory), fed)
    render(template_repo, fed / "deployments/charlie", hub_name="charlie", conda_packages=["xarray", "zarr>=3"])
    assert _hub_template("lock", str(fed / "deployments/charlie"), "--channel-alias", alias).returncode == 0
    git(fed, "init", "-q", "--initial-branch", "staging")
    git(fed, "add", "-A")
    git(fed, "commit", "-q", "-m", "charlie, locked")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(fed, "push", "-q", str(origin), "staging")
    # A week later, conda-forge has a new zarr.
    package(channel / "conda-forge", "zarr", "3.2.0", depends=("python >=3.11", "numcodecs >=0.14"))
    index(channel / "conda-forge")

    steps = yaml.safe_load((fed / ".github/workflows/lock-refresh.yml").read_text())["jobs"]["refresh"]["steps"]
    lock_step = next(s for s in steps if s.get("id") == "lock")
    pr_step = next(s for s in steps if s.get("name") == "Open or update the pull request")
    boundary = Boundary(tmp_path / "boundary", template_repo)
    try:
        token = "stand-in-token"
        boundary.github_repository("pangeo/pangeo-hubs", token, origin)
        env = boundary.env()
        output = tmp_path / "github_output"
        env |= {
            "PATH": env["PATH"].replace(os.pathsep, f"{os.pathsep}{BIN}{os.pathsep}", 1),
            "HUB": "charlie",
            "BRANCH": "lock-refresh/charlie",
            "RUNNER_TEMP": str(tmp_path),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_REPOSITORY": "pangeo/pangeo-hubs",
            "GH_TOKEN": token,
            "CONDA_CHANNEL_ALIAS": alias,
        }
        for step in (lock_step, pr_step):
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                cwd=fed,
                env=env,
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0, step["run"] + done.stdout + done.stderr
        assert "changed=true" in output.read_text()
        pulls = json.loads((tmp_path / "boundary/pulls.json").read_text())
    finally:
        boundary.close()
    (pull,) = pulls
    assert pull["head"] == "lock-refresh/charlie" and pull["base"] == "staging"
    assert pull["title"] == "charlie: refresh the image lock"
    assert "| package | old | new |" in pull["body"] and "| zarr | 3.1.0 | 3.2.0 |" in pull["body"]
    assert sum(line.startswith("|") for line in pull["body"].splitlines()) == 3  # header, rule, zarr
    pushed = git(origin, "show", "lock-refresh/charlie:deployments/charlie/image/binder/environment.lock.yml")
    assert lock.read_lock(pushed).versions["zarr"] == "3.2.0"
    assert git(origin, "log", "-1", "--format=%s", "lock-refresh/charlie") == "charlie: refresh the image lock"


EXPORT = """name: analysis
channels:
  - conda-forge
dependencies:
  - _libgcc_mutex=0.1=conda_forge
  - python=3.12.12=hfe2f287_0_cpython
  - numpy=1.26.4=py312heda63a1_0
  - xarray=2025.1.0=pyhd8ed1ab_0
  - numcodecs=0.15.0=py312h7a2b9c0_0
  - pip:
      - odc-stac==0.3.10
prefix: /home/me/miniforge3/envs/analysis
"""


def test_an_imported_conda_env_export_locks_its_own_builds(template_repo, tmp_path, channel_alias, capfd, monkeypatch):
    """A hub imported from `conda env export`: environment.yml keeps names and
    versions, and `hub-template lock --export` keeps the exported linux-64
    builds the channel has, naming the one it lacks, which is solved instead."""
    export = tmp_path / "exported.yml"
    export.write_text(EXPORT)
    monkeypatch.chdir(tmp_path)  # where copier runs: the federation's root
    capfd.readouterr()
    hub = render(
        template_repo,
        tmp_path / "deployments/charlie",
        hub_name="charlie",
        conda_packages=["zarr>=3"],
        environment_file="exported.yml",
    )
    printed = " ".join(capfd.readouterr().err.split())
    assert "`hub-template lock deployments/charlie --export exported.yml` locks the exported builds" in printed
    human = (hub / lock.ENVIRONMENT).read_text()
    assert "numpy=1.26.4\n" in human and "xarray=2025.1.0\n" in human and "py312heda63a1_0" not in human
    done = _hub_template("lock", str(hub), "--channel-alias", channel_alias, "--export", str(export))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        f"note: the channels have no linux-64 or noarch build numcodecs=0.15.0=py312h7a2b9c0_0 of {export}"
        in done.stdout
    )
    assert f"note: kept the build of 3 packages of {export} (_libgcc_mutex, numpy, xarray)" in done.stdout
    text = (hub / lock.LOCK).read_text()
    assert "  - conda-forge::numpy==1.26.4=py312heda63a1_0  # " in text
    assert "  - conda-forge::xarray==2025.1.0=pyhd8ed1ab_0  # " in text
    assert "  - conda-forge::numcodecs==0.15.0=0  # " in text  # solved by version
    assert "      - odc-stac==0.3.10 --hash=sha256:" in text
    assert _im011(hub).result is True


def test_bad_input_is_refused_naming_the_file_and_the_rule(hub, tmp_path, channel_alias):
    done = _hub_template("lock", str(tmp_path / "nowhere"), "--channel-alias", channel_alias)
    assert done.returncode == 2 and "no image/binder/environment.yml (a regular file) to lock" in done.stdout
    done = _hub_template("lock", str(hub), "--channel-alias", channel_alias, "--export", str(tmp_path / "none.yml"))
    assert done.returncode == 2 and f"--export {tmp_path / 'none.yml'}: no such file" in done.stdout
    env = hub / lock.ENVIRONMENT
    env.write_text(env.read_text().replace("  - python=3.12\n", "  - python\n"))
    done = _hub_template("lock", str(hub), "--channel-alias", channel_alias)
    assert done.returncode == 2
    assert "pins no Python (python=X.Y)" in done.stdout and "like python=3.12" in done.stdout
    assert not (hub / lock.LOCK).exists()
