"""What needs Docker or the real daskhub chart: run where they exist (CI's
test job has both), skip elsewhere saying why.

- repo2docker builds a rendered hub's image for real, and the image imports
  its dask stack and resolves the dask panel's factory (.ci/image-check.py).
- helm renders every release of a rendered hub with the chart the federation
  really renders and builds (.ci/federation-chart, its network stood in for by
  tests/standins; .ci/helm-template), and the checker passes against the
  daskhub chart it built.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid

import kube_tools
import pytest
from conftest import BIN, REPO2DOCKER_OPTIONS, ROOT, check_report
from hub_cells import rendered_hub

from hub_template import load_data


def docker_unavailable() -> str | None:
    if shutil.which("docker") is None:
        return "docker is not installed"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if info.returncode:
        last = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker daemon answers `docker info` ({last})"
    return None


def test_the_image_builds_and_imports_its_dask_stack(template_repo, tmp_path_factory):
    reason = docker_unavailable()
    if reason:
        pytest.skip(reason)
    hub = rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", "gateway")
    image = f"hub-template-test/charlie:{uuid.uuid4().hex[:12]}"
    subprocess.run(
        [
            str(BIN / "jupyter-repo2docker"),
            "--no-run",
            *REPO2DOCKER_OPTIONS,
            "--image-name",
            image,
            str(hub / "image"),
        ],
        check=True,
        timeout=3600,
    )
    try:
        with (ROOT / ".ci" / "image-check.py").open() as script:
            done = subprocess.run(
                ["docker", "run", "--rm", "-i", "--env", "DASK_BACKEND=gateway", image, "python", "-"],
                stdin=script,
                capture_output=True,
                text=True,
                timeout=600,
            )
        assert done.returncode == 0, done.stderr
        assert "labextension.factory: dask_gateway.GatewayCluster -> <class '" in done.stdout
        assert f"dask_gateway {load_data('versions.yml')['dask_gateway']}," in done.stdout
    finally:
        subprocess.run(["docker", "image", "rm", "--force", image], capture_output=True)


@pytest.mark.parametrize("backend", ["gateway", "kubernetes"])
def test_helm_renders_every_release_with_the_real_chart(template_repo, tmp_path_factory, backend):
    federation = kube_tools.federation_chart(tmp_path_factory.mktemp("federation-chart"))
    chart = federation / ".daskhub" / "daskhub"
    hub = rendered_hub(template_repo, tmp_path_factory, "aws", "sops", backend)
    path = f"{kube_tools.helm().parent}{os.pathsep}{os.environ['PATH']}"  # .ci/helm-template runs `helm`
    done = subprocess.run(
        [str(ROOT / ".ci" / "helm-template"), str(hub), str(federation)],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "charlie-staging:" in done.stdout and "charlie-prod:" in done.stdout
    # daskhub has no condition on dask-gateway: only a kubernetes hub, which
    # deploys the jupyterhub chart alone, renders none of it.
    gateway_objects = [int(n) for n in re.findall(r"(\d+) of dask-gateway", done.stdout)]
    assert len(gateway_objects) == 2
    assert all(n == 0 for n in gateway_objects) if backend == "kubernetes" else all(n >= 19 for n in gateway_objects)
    check = subprocess.run(
        [str(BIN / "hub-template"), "check", str(hub), "--chart", str(chart), "--format", "json"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check_report(check.stdout)["checks"]["HV003"]["result"] is True
