"""CI's own files: the GitHub workflows validate offline against the schema
GitHub uses, their matrix is the template's, and every shell step and CI
script passes bash -n and shellcheck. The image check CI runs inside each
built image runs here against a rendered hub's installed dask config."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys

import pytest
import yaml
from conftest import BIN, ROOT
from hub_cells import CELLS, rendered_hub, run_postbuild

from hub_template.checks.hub import Hub
from hub_template.checks.runtime import runtime_config

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CI_SCRIPTS = [ROOT / ".ci" / name for name in ("run", "federation-chart", "helm-template")]


def test_there_are_workflows_for_the_suite_and_the_hubs():
    assert {p.name for p in WORKFLOWS} >= {"tests.yml", "hubs.yml"}


@pytest.mark.parametrize("schema", ["vendor.github-workflows", "custom.github-workflows-require-timeout"])
def test_workflows_validate_against_the_github_schema(schema):
    done = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", schema, *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_hub_matrix_is_every_cell_of_the_template():
    matrix = yaml.safe_load((ROOT / ".github/workflows/hubs.yml").read_text())["jobs"]["hub"]["strategy"]["matrix"]
    cells = set(itertools.product(matrix["provider"], matrix["secrets"], matrix["dask"]))
    assert cells == set(CELLS)


def _run_steps():
    for workflow in WORKFLOWS:
        for job_name, job in yaml.safe_load(workflow.read_text())["jobs"].items():
            for n, step in enumerate(job["steps"]):
                if "run" in step:
                    yield f"{workflow.name}-{job_name}-{n}", step["run"]


def test_every_shell_step_and_ci_script_passes_bash_and_shellcheck(tmp_path):
    scripts = list(CI_SCRIPTS)
    for name, run in _run_steps():
        # GitHub runs a step with `bash -e {0}` after substituting its ${{ }} expressions.
        script = tmp_path / f"{name}.sh"
        script.write_text("#!/usr/bin/env bash\nset -e\n" + re.sub(r"\$\{\{.*?\}\}", "expression", run))
        scripts.append(script)
    for script in scripts:
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, f"{script.name}: {done.stderr}"
    done = subprocess.run([str(BIN / "shellcheck"), "--shell=bash", *map(str, scripts)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(os.access(script, os.X_OK) for script in CI_SCRIPTS)


@pytest.mark.parametrize("backend", ["gateway", "kubernetes"])
def test_the_image_check_resolves_the_factory_the_hub_installs(template_repo, tmp_path_factory, backend):
    """.ci/image-check.py, which CI runs inside each built image, here against
    the dask config the hub's postBuild installs (the checker's sandbox)."""
    hub = rendered_hub(template_repo, tmp_path_factory, "gcp", "sops", backend)
    installed = [f.label for f in runtime_config(Hub(hub)).files]
    assert installed == ["image/.dask/config.yaml"]
    # What else postBuild puts into the image's Python (hub_dask for kubernetes hubs).
    site_packages = run_postbuild(hub / "image", tmp_path_factory.mktemp("prefix"))
    env = {
        **os.environ,
        "DASK_BACKEND": backend,
        "DASK_CONFIG": str(hub / installed[0]),
        "PYTHONPATH": str(site_packages),
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "image-check.py")], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    expected = {"gateway": "dask_gateway.GatewayCluster", "kubernetes": "hub_dask.KubeCluster"}[backend]
    assert f"labextension.factory: {expected} -> <" in done.stdout
