"""The `hub-template` command as an operator meets it: its version, each verb's
help with examples, and the light install `update` needs (no checker tools)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, VERSION, render

from hub_template.cli import EXAMPLES, VERBS

ENTRY = [sys.executable, "-m", "hub_template.cli"]


def test_version():
    run = subprocess.run([*ENTRY, "--version"], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == f"hub-template {VERSION}"


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_each_verb_has_help_with_examples(verb):
    run = subprocess.run([*ENTRY, verb, "--help"], capture_output=True, text=True, check=True)
    assert "examples:" in run.stdout
    examples = [line.split("#")[0].split() for line in EXAMPLES[verb].splitlines()[1:]]
    assert examples and all(words[:2] == ["hub-template", verb] for words in examples)
    # Every option an example uses is one the verb has.
    for words in examples:
        for option in (w for w in words if w.startswith("--")):
            assert option in run.stdout, f"{verb}'s example uses {option}, which --help does not list"


@pytest.fixture(scope="module")
def base_install(tmp_path_factory) -> Path:
    """hub-template installed from a copy of the clone, without extras, in a
    venv of its own (pip reads the package index, as a user's would)."""
    root = tmp_path_factory.mktemp("base")
    clone = root / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    # The clone gets the working tree's files as they are now (uncommitted included).
    for part in ("pyproject.toml", "README.md", "copier.yml", "template", "hooks"):
        source, target = ROOT / part, clone / part
        if source.is_dir():
            shutil.rmtree(target)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(clone)], capture_output=True, text=True, timeout=900
    )
    if install.returncode != 0:
        pytest.fail(f"pip install of the clone failed:\n{install.stderr[-3000:]}")
    return venv / "bin" / "hub-template"


def test_update_works_without_the_checker_tools(base_install, tmp_path):
    # The base install brings none of the checker's heavy tools...
    pip = base_install.parent / "pip"
    installed = subprocess.run(
        [str(pip), "list", "--format=freeze"], capture_output=True, text=True, check=True
    ).stdout.lower()
    assert "jupyter-repo2docker" not in installed and "dask-gateway" not in installed
    # ...and update runs: on a folder without hubs it says so (exit 2).
    (tmp_path / "deployments").mkdir()
    run = subprocess.run(
        [str(base_install), "update", str(tmp_path / "deployments"), "--check"], capture_output=True, text=True
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr


def test_check_without_its_extra_says_how_to_install_it(base_install, template_repo, tmp_path):
    hub = render(template_repo, tmp_path / "deployments" / "charlie")
    run = subprocess.run([str(base_install), "check", str(hub)], capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    first, *_rest = run.stderr.splitlines()
    assert "install the [check] extra" in first and len(first) <= 80
    assert "pip install 'hub-template[check] @ git+https://github.com/pangeo/hub-template'" in run.stderr
