"""The federation's chart as its CI builds it, with the real helm on the real
upstream: the rendered daskhub action clones dask/helm-chart at the pinned
commit (../shared/upstream/git/dask-helm-chart.git, e25bf51, whose
daskhub/Chart.yaml says `0.0.1-set.by.chartpress` as in git) and builds it,
then pull-request.yml's render step runs `helm dependency build chart` and
`helm template` of each release of a gateway hub and a kubernetes hub, with
the helm the workflows install (versions.yml `helm`) and helm 4.

Only the network is swapped, through the one boundary of the workflow tests
(tests/standins: git `insteadOf`, the chart repositories of
../shared/upstream served on loopback under their real hosts' names). A
step runs as GitHub runs it; this is its fast path, without act."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import git, render, skip_unless_required
from hub_cells import REAL_IDS
from standins import UPSTREAM, Boundary, helm_versions
from test_federation_repo import federation

from hub_template import load_data

# The helm the workflows install, and helm 4 (what a runner with a newer helm
# has); the second is a slow test (`pytest -m ''`, as .ci/run runs).
HELMS = [load_data("versions.yml")["helm"], pytest.param("v4.3.1", marks=pytest.mark.slow)]


@pytest.fixture(params=HELMS)
def upstream_network(request, tmp_path, template_repo):
    """The environment CI's commands run in here, with the real helm of the
    version asked on PATH. Yields (env, boundary)."""
    if not (UPSTREAM / "git" / "dask-helm-chart.git").is_dir():
        skip_unless_required(f"no upstream repositories in {UPSTREAM}: keep hub-template beside shared/", "CI")
    boundary = Boundary(tmp_path / "boundary", template_repo)
    env = boundary.env()
    env["PATH"] = f"{helm_versions() / request.param}{os.pathsep}{env['PATH']}"
    assert subprocess.run(["helm", "version", "--short"], env=env, capture_output=True, text=True).stdout.startswith(
        request.param
    )
    yield env, boundary
    boundary.close()


def evaluate(value: object, matrix: dict) -> str:
    """A workflow value once its `${{ matrix.X }}` expressions are evaluated."""
    text = re.sub(r"\$\{\{ matrix\.(\w+) \}\}", lambda m: str(matrix[m[1]]), str(value))
    assert "${{" not in text, text
    return text


def run_step(step: dict, cwd: Path, env: dict, matrix: dict | None = None) -> subprocess.CompletedProcess:
    """A `run:` step as GitHub runs it (bash -e, pipefail), with its env."""
    step_env = {key: evaluate(value, matrix or {}) for key, value in step.get("env", {}).items()}
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=cwd,
        env={**env, **step_env},
        capture_output=True,
        text=True,
    )


def test_the_chart_ci_builds_renders_every_release_of_each_dask_backend(
    template_repo, tmp_path_factory, tmp_path, upstream_network
):
    env, boundary = upstream_network
    fed = tmp_path / "pangeo-hubs"
    shutil.copytree(federation(template_repo, tmp_path_factory), fed)
    render(template_repo, fed / "deployments" / "charlie", dask_backend="gateway", **REAL_IDS)
    render(template_repo, fed / "deployments" / "delta", dask_backend="kubernetes", **REAL_IDS)
    git(fed, "init", "-q")
    git(fed, "add", "-A")
    git(fed, "commit", "-q", "-m", "two hubs")

    # The real plan of a pull request adding both.
    done = subprocess.run(
        [sys.executable, "-m", "hub_template.cli", "plan-deploy", "--before", "0" * 40, "--pull-request"],
        cwd=fed,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    plan = {entry["hub"]: entry for entry in yaml.safe_load(done.stdout)["hubs"]}
    workflow = yaml.safe_load((fed / ".github/workflows/pull-request.yml").read_text())
    job = workflow["jobs"]["check"]
    (render_step,) = [s for s in job["steps"] if s.get("name") == "Render each release with the federation's chart"]
    action = yaml.safe_load((fed / ".github/actions/daskhub/action.yml").read_text())
    objects = {}
    for hub, entry in plan.items():
        # Each hub's job: a fresh checkout, the daskhub action (a composite
        # action: its steps have no expressions), then the render step.
        checkout = tmp_path / f"job-{hub}"
        git(tmp_path, "clone", "-q", str(fed), checkout.name)
        for step in action["runs"]["steps"]:
            done = run_step(step, checkout, env)
            assert done.returncode == 0, done.stdout + done.stderr

        runner_temp = tmp_path / f"runner-{hub}"
        runner_temp.mkdir()
        job_env = {key: evaluate(value, entry) for key, value in job["env"].items()}
        done = run_step(render_step, checkout, {**env, **job_env, "RUNNER_TEMP": str(runner_temp)})
        assert done.returncode == 0, done.stdout + done.stderr
        # daskhub at the pinned commit, with the version the chart asks for.
        built = yaml.safe_load((checkout / ".daskhub/daskhub/Chart.yaml").read_text())
        wanted = yaml.safe_load((checkout / "chart/Chart.yaml").read_text())["dependencies"][0]
        assert built["version"] == wanted["version"] == "2024.1.2-dev.e25bf51"
        assert git(checkout / ".daskhub", "rev-parse", "HEAD").startswith("e25bf51")
        for release in ("staging", "prod"):
            text = (runner_temp / f"{hub}-{release}.yaml").read_text()
            sources = re.findall(r"^# Source: (\S+)", text, flags=re.M)
            objects[hub, release] = {source.split("/templates/")[0] for source in sources}
            # The users' image at the plan's tag, as CI sets it.
            assert f"{entry['image']}:{entry['tag']}" in text, (hub, release)
    # daskhub with its gateway for the gateway hub, the jupyterhub chart alone for the kubernetes hub.
    chart = yaml.safe_load((fed / "chart/Chart.yaml").read_text())
    name, umbrella = chart["name"], chart["dependencies"][0].get("alias", "daskhub")
    for release in ("staging", "prod"):
        assert objects["charlie", release] >= {
            f"{name}/charts/{umbrella}/charts/jupyterhub",
            f"{name}/charts/{umbrella}/charts/dask-gateway",
        }
        assert f"{name}/charts/jupyterhub" in objects["delta", release]
        assert not any("dask-gateway" in chart for chart in objects["delta", release])
    # What the network was asked for: the chart repositories, and nothing else.
    served = {f"https://{r['host']}{r['path']}" for r in boundary.requests() if r["status"] == 200}
    assert served == {
        "https://jupyterhub.github.io/helm-chart/index.yaml",
        "https://jupyterhub.github.io/helm-chart/jupyterhub-4.4.0.tgz",
        "https://helm.dask.org/index.yaml",
        "https://helm.dask.org/dask-gateway-2026.3.0.tgz",
        "https://hub.jupyter.org/helm-chart/index.yaml",
    }
    assert all(r["status"] == 200 for r in boundary.requests())
