"""Code that copier runs during `copier copy` and `copier update` needs only
what copier's own interpreter has: the standard library, copier's
dependencies pyyaml, jinja2, packaging and pydantic (hooks/run.py), and
ruamel.yaml, which the README's install line adds beside copier for the
source import (hooks/hub_template/yaml_edit.py).

Proved with a venv that holds what the README installs and nothing else:
each module hooks/run.py dispatches to is imported there and may load
nothing beyond those; then that venv's own `copier copy --trust` imports a
notebook repository and `copier update` crosses a migration, so the task and
the migration really run under `_copier_python`. A second venv holds copier
alone: it renders a hub, and an import there fails before anything is
written, saying what to install.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml
from conftest import ROOT, git, publish_template

from hub_template.yaml_edit import INSTALL

# copier's dependencies that code it runs may use, by top-level module name
# (jinja2 brings markupsafe; pydantic brings its core and typing helpers;
# pyyaml's libyaml binding is compiled with Cython, whose runtime registers
# itself as modules).
ALLOWED = {
    "yaml",
    "_yaml",
    "cython_runtime",
    "jinja2",
    "markupsafe",
    "packaging",
    "pydantic",
    "pydantic_core",
    "typing_extensions",
    "annotated_types",
    "typing_inspection",
    "ruamel",
    "hub_template",
}


def requirement(name: str) -> str:
    """`name` as pyproject.toml pins it: one definition of the range."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(d for d in deps if d.startswith(name))


# What the README's install line puts in copier's environment.
COPIER_ENVIRONMENT = [requirement("copier"), requirement("ruamel.yaml")]
INSTALL_LINE = "pip install " + " ".join(f"'{r}'" for r in COPIER_ENVIRONMENT)


def dispatched_modules() -> list[str]:
    """The modules hooks/run.py's COMMANDS table names."""
    tree = ast.parse((ROOT / "hooks" / "run.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "COMMANDS" for t in node.targets):
            return list(ast.literal_eval(node.value).values())
    raise AssertionError("hooks/run.py has no COMMANDS table")


def venv_with(folder: Path, requirements: list[str]) -> Path:
    """A venv holding `requirements` and their dependencies only; its bin
    folder. uv (the test extra has it) installs in a second where pip takes twenty."""
    from uv import find_uv_bin

    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    done = subprocess.run(
        [find_uv_bin(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *requirements],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        pytest.fail(f"uv could not install {requirements}: {done.stderr[-500:]}")
    return venv / "bin"


@pytest.fixture(scope="module")
def copier_only(tmp_path_factory) -> Path:
    """copier's environment as the README installs it."""
    return venv_with(tmp_path_factory.mktemp("copier-env"), COPIER_ENVIRONMENT)


@pytest.fixture(scope="module")
def copier_alone(tmp_path_factory) -> Path:
    """copier without ruamel.yaml: what a user who skipped it has."""
    return venv_with(tmp_path_factory.mktemp("copier-alone"), [requirement("copier")])


@pytest.mark.parametrize(
    "readme",
    ["README.md", "template/README.md.jinja", "federation/README.md.jinja"],
)
def test_the_readmes_install_what_copier_needs(readme):
    assert INSTALL_LINE in (ROOT / readme).read_text()


@pytest.mark.parametrize("module", dispatched_modules())
def test_module_loads_only_what_copier_has(copier_only, module):
    probe = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); before = set(sys.modules)\n"
        "__import__(sys.argv[2])\n"
        "names = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "names = {n for n in names if not n.startswith('_cython_')}\n"
        "print(json.dumps(sorted(n for n in names if n not in sys.stdlib_module_names)))\n"
    )
    done = subprocess.run(
        [str(copier_only / "python"), "-c", probe, str(ROOT / "hooks"), module], capture_output=True, text=True
    )
    assert done.returncode == 0, f"{module} does not import with copier's interpreter:\n{done.stderr}"
    assert set(json.loads(done.stdout)) <= ALLOWED, f"{module} loads more than copier has"


def test_copy_and_update_run_under_copiers_interpreter(copier_only, tmp_path):
    source = notebook_repository(tmp_path / "notebooks")
    template = publish_template(tmp_path / "template", "v1.1.0")
    federation = tmp_path / "federation"
    federation.mkdir()
    git(federation, "init", "-q")
    hub = federation / "deployments" / "charlie"
    env = {**os.environ, "PATH": f"{copier_only}{os.pathsep}/usr/bin:/bin"}
    copy = subprocess.run(
        [
            str(copier_only / "copier"),
            "copy",
            "--trust",
            "--defaults",
            "--quiet",
            "--data",
            f"source_repo={source}",
            str(template),
            str(hub),
        ],
        cwd=federation,
        env=env,
        capture_output=True,
        text=True,
    )
    assert copy.returncode == 0, copy.stderr
    assert (hub / "image" / "analysis.ipynb").is_file()
    environment = yaml.safe_load((hub / "image" / "binder" / "environment.yml").read_text())
    assert "xarray" in environment["dependencies"]

    git(federation, "add", "-A")
    git(federation, "commit", "-q", "-m", "charlie")
    publish_template(template, "v99.0.0")  # a later release: the update crosses the migrations
    update = subprocess.run(
        [str(copier_only / "copier"), "update", "--trust", "--defaults", "--quiet", "--vcs-ref", "v99.0.0"],
        cwd=hub,
        env=env,
        capture_output=True,
        text=True,
    )
    assert update.returncode == 0, update.stderr
    answers = yaml.safe_load((hub / ".copier-answers.yml").read_text())
    assert answers["_commit"] == "v99.0.0"


def notebook_repository(folder: Path) -> Path:
    folder.mkdir()
    git(folder, "init", "-q")
    (folder / "analysis.ipynb").write_text(
        json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    )
    (folder / "environment.yml").write_text("dependencies:\n  - xarray\n  - pip:\n    - pystac\n")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "notebooks")
    return folder


def test_without_ruamel_a_hub_renders_and_an_import_says_what_to_install(copier_alone, tmp_path):
    template = publish_template(tmp_path / "template", "v1.1.0")
    env = {**os.environ, "PATH": f"{copier_alone}{os.pathsep}/usr/bin:/bin"}

    def copy(hub: Path, *data: str) -> subprocess.CompletedProcess[str]:
        command = [str(copier_alone / "copier"), "copy", "--trust", "--defaults", "--quiet"]
        command += [f"--data={item}" for item in data]
        return subprocess.run([*command, str(template), str(hub)], env=env, capture_output=True, text=True)

    plain = copy(tmp_path / "plain")
    assert plain.returncode == 0, plain.stderr
    assert (tmp_path / "plain" / "image" / "binder" / "environment.yml").is_file()

    imported = copy(tmp_path / "imported", f"source_repo={notebook_repository(tmp_path / 'notebooks')}")
    assert imported.returncode != 0
    assert f"hub-template could not build the image: {INSTALL}\n" in imported.stderr
    assert not (tmp_path / "imported").exists()  # copier removes the hub it made
