"""The boundary of the act runs (tests/standins) is exactly what the rendered
workflows reach for: every third-party action they use has a stand-in and no
stand-in is left unused, every URL they fetch is stood in for, and the
stand-ins themselves behave as the tools they replace."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import kube_tools
import pytest
import standins
import yaml
from hub_cells import PROVIDERS, SECRETS
from standins import STAND_INS, Boundary, action_stand_ins, workflow_actions
from test_federation_repo import federation

CELLS = list(itertools.product(PROVIDERS, SECRETS))
# act copies the repository into the job's workspace itself (its documented
# handling of actions/checkout); every other action needs a stand-in.
ACT_HANDLES = {"actions/checkout"}
URL = re.compile(r"https://[A-Za-z0-9.-]+(?:/[^\s\"'`)$]*)?")


def _fetched_urls(fed: Path) -> set[str]:
    """The URLs the federation's CI fetches: in run steps and env values of
    its workflows and actions, and the chart's dependency repositories (not
    comments, which only document)."""
    texts: list[str] = []
    for path in [*(fed / ".github/workflows").glob("*.yml"), *(fed / ".github/actions").glob("*/action.yml")]:
        doc = yaml.safe_load(path.read_text())
        texts += [str(v) for v in doc.get("env", {}).values()]
        jobs = doc.get("jobs", {}).values() if "jobs" in doc else [{"steps": doc["runs"]["steps"]}]
        for job in jobs:
            texts += [str(v) for v in job.get("env", {}).values()]
            for step in job.get("steps", []):
                texts += [step.get("run", ""), *map(str, step.get("env", {}).values())]
    chart = yaml.safe_load((fed / "chart/Chart.yaml").read_text())
    texts += [d["repository"] for d in chart["dependencies"]]
    return {url.split("@")[0] for text in texts for url in URL.findall(text)}


def _covered(url: str) -> bool:
    return any(url.startswith(s.replaces) for s in STAND_INS if s.kind in ("git", "https"))


@pytest.mark.parametrize(("provider", "secrets"), CELLS)
def test_every_action_the_workflows_use_has_a_stand_in(template_repo, tmp_path_factory, provider, secrets):
    fed = federation(template_repo, tmp_path_factory, provider, secrets)
    used = {uses.split("@")[0] for uses in workflow_actions(fed)}
    assert used - ACT_HANDLES <= set(action_stand_ins()), used - ACT_HANDLES - set(action_stand_ins())


def test_no_action_stand_in_is_left_unused(template_repo, tmp_path_factory):
    used = set().union(
        *(
            {u.split("@")[0] for u in workflow_actions(federation(template_repo, tmp_path_factory, p, s))}
            for p, s in CELLS
        )
    )
    assert set(action_stand_ins()) <= used
    assert all((path / "action.yml").is_file() for path in action_stand_ins().values())


# Every URL the workflows fetch has its stand-in: none is left out.
NOT_STOOD_IN: set[str] = set()


@pytest.mark.parametrize(("provider", "secrets"), CELLS)
def test_every_url_the_workflows_fetch_is_stood_in(template_repo, tmp_path_factory, provider, secrets):
    fed = federation(template_repo, tmp_path_factory, provider, secrets)
    urls = _fetched_urls(fed)
    assert any("hubploy" in u for u in urls) and any("dask/helm-chart" in u for u in urls)
    missing = {u for u in urls if not _covered(u) and not any(u.startswith(n) for n in NOT_STOOD_IN)}
    assert missing == set(), f"fetched by the workflows but not stood in (tests/standins STAND_INS): {missing}"


def test_the_list_names_each_stand_in_once_with_its_reason():
    assert len({(s.kind, s.replaces) for s in STAND_INS}) == len(STAND_INS)
    assert all(s.why and s.by for s in STAND_INS)
    bin_names = {p.name for p in standins.BIN.iterdir() if p.is_symlink()}
    listed = {s.by.split()[0].removeprefix("bin/") for s in STAND_INS if s.kind == "command"}
    assert bin_names == listed


@pytest.fixture
def boundary(tmp_path):
    made = Boundary(tmp_path / "boundary", tmp_path)
    yield made
    made.close()


def _fetch(boundary: Boundary, url: str) -> tuple[int, bytes]:
    env = boundary.env()
    handler = urllib.request.ProxyHandler({"https": env["HTTPS_PROXY"]})
    import ssl

    context = ssl.create_default_context(cafile=env["SSL_CERT_FILE"])
    opener = urllib.request.build_opener(handler, urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(url, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, b""
    except urllib.error.URLError as error:  # the proxy refused the CONNECT
        return 403 if "403" in str(error.reason) else 0, b""


def test_the_proxy_serves_the_chart_repositories_under_their_real_names(boundary):
    status, body = _fetch(boundary, "https://hub.jupyter.org/helm-chart/index.yaml")
    assert status == 200 and b"jupyterhub-4.4.0.tgz" in body
    status, body = _fetch(boundary, "https://helm.dask.org/dask-gateway-2026.3.0.tgz")
    assert status == 200 and body[:2] == b"\x1f\x8b"  # the packaged chart


def test_the_proxy_refuses_a_host_it_does_not_list(boundary):
    status, _ = _fetch(boundary, "https://example.com/")
    assert status == 403
    assert [(r["host"], r["status"]) for r in boundary.requests()] == [("example.com", 403)]


def test_git_clones_the_upstream_copy_through_insteadof(boundary, tmp_path):
    done = subprocess.run(
        ["git", "clone", "-q", "https://github.com/dask/helm-chart", str(tmp_path / "clone")],
        env=boundary.env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "clone/daskhub/Chart.yaml").is_file()


def test_helm_upgrade_install_is_rendered_and_validated_instead(boundary, tmp_path):
    """bin/helm-no-cluster: the same arguments through `helm template`, then
    kubernetes-validate --strict, which fails an invalid object."""
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    (chart / "templates/cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  k: {{ .Values.v | quote }}\n{{- if .Values.bad }}\nbogus: 1\n{{- end }}\n"
    )
    env = boundary.env()
    env["PATH"] = f"{kube_tools.helm().parent}{os.pathsep}{env['PATH']}"  # the real helm it runs
    upgrade = [
        env["HELM_EXECUTABLE"],
        "upgrade",
        "--wait",
        "--install",
        "--namespace",
        "h-staging",
        "h-staging",
        str(chart),
    ]
    done = subprocess.run(
        [*upgrade, "--set-string", "v=1", "--cleanup-on-fail"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    release = next(c for c in boundary.calls_made() if c["tool"] == "helm-release")
    assert release["args"] == ["--namespace", "h-staging", "h-staging", str(chart), "--set-string", "v=1"]
    assert 'k: "1"' in Path(release["manifest"]).read_text()
    done = subprocess.run([*upgrade, "--set", "bad=true"], env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "bogus" in done.stdout + done.stderr


def test_docker_records_a_push_and_answers_manifest_inspect_from_it(boundary, tmp_path):
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n")
    env = boundary.env()
    image = "registry.example/hubs/charlie:0123456789ab"
    inspect = ["docker", "manifest", "inspect", image]
    assert subprocess.run(inspect, env=env, capture_output=True).returncode == 1
    build = ["docker", "buildx", "build", "--progress", "plain", "--push", "--tag", image, str(context)]
    assert subprocess.run(build, env=env, capture_output=True).returncode == 0
    assert subprocess.run(inspect, env=env, capture_output=True).returncode == 0
    assert list(json.loads(boundary.registry.read_text())) == [image]
    assert subprocess.run(["docker", "run", image], env=env, capture_output=True).returncode == 2  # not stood in


@pytest.mark.slow
def test_hubploy_deploys_a_gcp_hub_through_the_cloud_stand_ins(template_repo, tmp_path_factory, tmp_path):
    """hubploy at the pinned commit, for real, against the stand-ins of
    Google's APIs and the cluster: ADC (the external-account file the auth
    stand-in writes) -> STS -> impersonation -> GKE -> a kubeconfig of the
    loopback cluster -> the namespace made -> `helm dep up` (the real helm)
    -> `helm upgrade --install` rendered and validated. It is installed from a
    plain clone of ../shared/upstream's hubploy.git (test_act.py installs it
    as deploy.yml does, through the boundary)."""
    from conftest import render
    from hub_cells import REAL_IDS

    federation = tmp_path / "pangeo-hubs"
    shutil.copytree(kube_tools.federation_chart(tmp_path_factory.mktemp("federation-chart")), federation, symlinks=True)
    render(template_repo, federation / "deployments" / "charlie", **REAL_IDS)
    source = tmp_path / "hubploy"
    subprocess.run(["git", "clone", "-q", str(standins.UPSTREAM / "git" / "hubploy.git"), str(source)], check=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "virtualenv", "-q", str(venv)], check=True)
    done = subprocess.run([str(venv / "bin/pip"), "install", "-q", str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    boundary = Boundary(tmp_path / "boundary", tmp_path)
    try:
        env = boundary.env()
        env["PATH"] = f"{standins.helm_versions()}/v3.17.2{os.pathsep}{venv / 'bin'}{os.pathsep}{env['PATH']}"
        auth = yaml.safe_load((standins.ACTIONS / "google-auth/action.yml").read_text())["runs"]["steps"][0]
        outputs, github_env = tmp_path / "outputs", tmp_path / "github-env"
        step_env = {
            **env,
            "PROVIDER": "projects/1/locations/global/workloadIdentityPools/github/providers/github",
            "SERVICE_ACCOUNT": "hub-deployer@my-pangeo-project.iam.gserviceaccount.com",
            "GITHUB_WORKSPACE": str(tmp_path),
            "GITHUB_ENV": str(github_env),
            "GITHUB_OUTPUT": str(outputs),
        }
        done = subprocess.run(["bash", "-e", "-c", auth["run"]], env=step_env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        env.update(line.split("=", 1) for line in github_env.read_text().splitlines())
        deploy = ["hubploy", "deploy", "charlie", "chart", "staging", "--cleanup-on-fail"]
        tag = "daskhub.jupyterhub.singleuser.image.tag=0123456789ab"
        done = subprocess.run([*deploy, "--set-string", tag], cwd=federation, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        asked = [
            (r["host"], r["path"].split("?")[0], r["status"]) for r in boundary.requests() if r["host"] != "127.0.0.1"
        ]
        gcloud = yaml.safe_load((federation / "deployments/charlie/hubploy.yaml").read_text())["cluster"]["gcloud"]
        assert (
            "container.googleapis.com",
            f"/v1/projects/{gcloud['project']}/locations/{gcloud['zone']}/clusters/{gcloud['cluster']}",
            200,
        ) in asked
        assert [(r["method"], r["path"], r["status"]) for r in boundary.requests() if r["host"] == "127.0.0.1"] == [
            ("GET", "/api/v1/namespaces/charlie-staging", 404),
            ("POST", "/api/v1/namespaces", 201),
        ]
        release = next(c for c in boundary.calls_made() if c["tool"] == "helm-release")
        assert release["args"][:4] == ["--namespace", "charlie-staging", "charlie-staging", "chart"]
        assert "0123456789ab" in Path(release["manifest"]).read_text()
        assert "valid: no cluster here" in done.stdout
    finally:
        boundary.close()
