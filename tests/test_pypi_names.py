"""conda names for the preview's pip approximation of a conda environment
(hub_template.pypi_names): the maintained mapping, and the real installer
deciding what the package index lacks."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from hub_template import pypi_names
from hub_template.preview.userenv import install_command, uv_program


@pytest.mark.parametrize(
    "conda, pypi",
    [("python-graphviz", "graphviz"), ("dask-core", "dask"), ("matplotlib-base", "matplotlib"), ("xarray", "xarray")],
)
def test_conda_names_map_to_the_package_index_by_grayskulls_mapping(conda, pypi):
    assert pypi_names.pypi_name(conda) == pypi


def test_split_outputs():
    assert pypi_names.split_from("geoviews-core") == "geoviews"
    assert pypi_names.split_from("seaborn-base") == "seaborn"
    assert pypi_names.split_from("xarray") is None and pypi_names.split_from("-core") is None


@pytest.fixture(scope="module")
def resolve(tmp_path_factory):
    """The real installer, resolving only (uv's --dry-run): what the preview runs, without the download."""
    uv = uv_program()
    if uv is None:
        pytest.skip("uv is not installed (the preview extra brings it)")
    prefix = tmp_path_factory.mktemp("env") / "venv"
    venv.EnvBuilder(with_pip=False).create(prefix)

    def run(requirements: tuple[str, ...]) -> tuple[int, str]:
        command = install_command(prefix / "bin" / "python", requirements, uv)
        done = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, timeout=300)
        return done.returncode, done.stderr

    return run


def test_the_seeds_conda_only_names_leave_nothing_failing_whole(resolve):
    """issue 28: uv refused the whole environment for geoviews-core and
    python-graphviz; now each is installed under its index name or left out,
    and one line says which."""
    conda = [
        ("python-graphviz", ""),
        ("geoviews-core", ""),
        ("libgdal-core", ""),
        ("xarray", ""),
        ("_libgcc_mutex", "==0.1.*"),
    ]
    requirements, renamed = pypi_names.translate(conda)
    assert requirements[0] == "graphviz" and renamed == ["python-graphviz → graphviz"]
    installed, code, error = pypi_names.install(requirements, renamed, resolve, keep={"xarray"})
    assert code == 0, error
    assert installed.requirements == ("graphviz", "geoviews", "xarray")
    assert installed.line() == (
        "left out: _libgcc_mutex==0.1.* (not a package-index name), libgdal-core (not on the package index, nor libgdal); "
        "renamed for the package index: python-graphviz → graphviz, "
        "geoviews-core → geoviews (conda-forge's geoviews-core is split from it)"
    )


def test_a_pin_the_index_cannot_meet_is_dropped_and_named(resolve):
    installed, code, error = pypi_names.install(["xarray==1999.1.*"], [], resolve, keep=set())
    assert code == 0, error
    assert installed.requirements == ("xarray",)
    assert installed.unpinned == ["xarray==1999.1.* (no such version there)"]


def test_a_failure_over_the_base_is_returned_as_it_is(resolve):
    installed, code, error = pypi_names.install(["jupyterlab==1999.1"], [], resolve, keep={"jupyterlab"})
    assert code != 0 and "jupyterlab" in error and installed.requirements == ("jupyterlab==1999.1",)


def test_the_mapping_loads_without_the_network():
    """conda-pypi ships the mapping in its wheel: no download at run time."""
    code = "from hub_template import pypi_names; print(pypi_names.pypi_name('python-graphviz'))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={
            "PYTHONPATH": str(Path(pypi_names.__file__).parents[1]),
            "NO_PROXY": "*",
            "HTTPS_PROXY": "http://127.0.0.1:9",
        },
    )
    assert done.stdout == "graphviz\n", done.stderr
