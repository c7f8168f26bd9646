"""Code that copier runs during `copier copy` and `copier update` needs only
what copier's own interpreter has: the standard library and copier's
dependencies pyyaml, jinja2, packaging and pydantic (hooks/run.py).

Proved with a venv that holds copier and nothing else: each module
hooks/run.py dispatches to is imported there and may load nothing beyond
those; then that venv's own `copier copy --trust` imports a notebook
repository and `copier update` crosses a migration, so the task and the
migration really run under `_copier_python`.
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
    "hub_template",
}


def copier_requirement() -> str:
    """copier as pyproject.toml pins it: one definition of the range."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(d for d in deps if d.startswith("copier"))


def dispatched_modules() -> list[str]:
    """The modules hooks/run.py's COMMANDS table names."""
    tree = ast.parse((ROOT / "hooks" / "run.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "COMMANDS" for t in node.targets):
            return list(ast.literal_eval(node.value).values())
    raise AssertionError("hooks/run.py has no COMMANDS table")


@pytest.fixture(scope="module")
def copier_only(tmp_path_factory) -> Path:
    """A venv with copier and its dependencies only; its bin folder. uv (the
    test extra has it) installs them in a second where pip takes twenty."""
    from uv import find_uv_bin

    venv = tmp_path_factory.mktemp("copier-only") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [find_uv_bin(), "pip", "install", "--quiet", "--python", str(python), copier_requirement()],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        pytest.fail(f"uv could not install {copier_requirement()}: {done.stderr[-500:]}")
    return venv / "bin"


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
    source = tmp_path / "notebooks"
    source.mkdir()
    git(source, "init", "-q")
    (source / "analysis.ipynb").write_text(
        json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    )
    (source / "environment.yml").write_text("dependencies:\n  - xarray\n  - pip:\n    - pystac\n")
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", "notebooks")

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
