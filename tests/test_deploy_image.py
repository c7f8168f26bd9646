"""deploy.yml's image step, run as GitHub runs it for the real plan's entries:
a tag is built and pushed once, and only ever promoted after that. Prod
deploys the image staging pushed for the same tag, never a second build.

pip and repo2docker run for real; only the registry and the Docker daemon
are stood in for, by the workflow tests' one boundary (tests/standins:
bin/docker records builds and pushes, and `manifest inspect` answers from
what was pushed, as a registry does). This is the step's fast path, without
act; tests/test_act.py runs the whole workflow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import BIN, git, hub_template, render
from hub_cells import REAL_IDS
from standins import Boundary
from test_federation_repo import federation


@pytest.fixture(scope="module")
def hubs(template_repo, tmp_path_factory):
    """A federation with one hub, its image changed in a second commit, and
    the real plans of that push to staging and then to prod."""
    fed = tmp_path_factory.mktemp("image") / "pangeo-hubs"
    shutil.copytree(federation(template_repo, tmp_path_factory), fed)
    render(template_repo, fed / "deployments" / "charlie", **REAL_IDS)
    git(fed, "init", "-q")
    git(fed, "add", "-A")
    git(fed, "commit", "-q", "-m", "charlie")
    first = git(fed, "rev-parse", "HEAD")
    env_file = fed / "deployments/charlie/image/binder/environment.yml"
    env_file.write_text(env_file.read_text().rstrip("\n") + "\n  - xesmf\n")
    git(fed, "commit", "-q", "-am", "charlie: xesmf")
    plans = {}
    for branch in ("staging", "prod"):
        done = hub_template("plan-deploy", "--before", first, "--branch", branch, cwd=fed)
        assert done.returncode == 0, done.stderr
        (plans[branch],) = json.loads(done.stdout)["hubs"]
    return fed, plans


def image_step(fed: Path) -> dict:
    steps = yaml.safe_load((fed / ".github/workflows/deploy.yml").read_text())["jobs"]["deploy"]["steps"]
    (step,) = [s for s in steps if s.get("if") == "matrix.build || matrix.promote"]
    return step


def run_image_step(fed: Path, entry: dict, pushed: dict[str, str] | None, tmp_path: Path, template_repo: Path):
    """The step as GitHub runs it when its `if` holds: the job's env from the
    matrix entry, the step's env, bash -e, with ``pushed`` (image:tag ->
    digest) in the registry (None: a registry store that cannot be read).
    Returns (result, docker calls, the registry's store after)."""
    step = image_step(fed)
    assert entry["build"] or entry["promote"]
    assert step["env"] == {"PROMOTE": "${{ matrix.promote }}"}
    boundary = Boundary(tmp_path / "boundary", template_repo)
    try:
        env = boundary.env()
        Path(env["HUB_TEMPLATE_STANDIN_REGISTRY"]).write_text("not JSON" if pushed is None else json.dumps(pushed))
        workflow = yaml.safe_load((fed / ".github/workflows/deploy.yml").read_text())
        env |= {
            # The job's Python (setup-python), after the runner's stood-in tools.
            "PATH": env["PATH"].replace(os.pathsep, f"{os.pathsep}{BIN}{os.pathsep}", 1),
            "REPO2DOCKER": workflow["env"]["REPO2DOCKER"],
            # The deploy job's env, from the matrix entry.
            "HUB": entry["hub"],
            "IMAGE": entry["image"],
            "TAG": entry["tag"],
            "REGISTRY": entry["registry"],
            "PROMOTE": str(entry["promote"]).lower(),  # ${{ matrix.promote }}
        }
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=fed,
            env=env,
            capture_output=True,
            text=True,
        )
        calls = [call for call in boundary.calls_made() if call["tool"].startswith("docker")]
        store = Path(env["HUB_TEMPLATE_STANDIN_REGISTRY"]).read_text()
        return done, calls, None if pushed is None else json.loads(store)
    finally:
        boundary.close()


def test_staging_builds_a_new_tag_and_prod_promotes_it(hubs, tmp_path, template_repo):
    fed, plans = hubs
    staging, prod = plans["staging"], plans["prod"]
    image = f"{staging['image']}:{staging['tag']}"
    assert image == f"{prod['image']}:{prod['tag']}"

    done, calls, registry = run_image_step(fed, staging, {}, tmp_path / "staging", template_repo)
    assert done.returncode == 0, done.stdout + done.stderr
    assert calls[0]["args"] == ["manifest", "inspect", image]
    (build,) = [call["build"] for call in calls if call["tool"] == "docker-build"]
    assert build["tag"] == image and build["push"] and "FROM " in build["dockerfile"]  # repo2docker's own
    assert registry == {image: build["digest"]}

    # Prod, once staging pushed the tag: nothing is built or pushed; the digest stays staging's.
    done, calls, after = run_image_step(fed, prod, registry, tmp_path / "prod", template_repo)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [call["args"] for call in calls] == [["manifest", "inspect", image]]
    assert after == registry
    assert "not building it again" in done.stdout


def test_a_tag_already_pushed_is_never_built_again(hubs, tmp_path, template_repo):
    """A staging run again (re-run, force push) keeps the image it pushed."""
    fed, plans = hubs
    image = f"{plans['staging']['image']}:{plans['staging']['tag']}"
    done, calls, after = run_image_step(fed, plans["staging"], {image: "sha256:staging"}, tmp_path, template_repo)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [call["args"] for call in calls] == [["manifest", "inspect", image]]
    assert after == {image: "sha256:staging"}


def test_prod_builds_only_a_tag_nothing_was_built_for_and_says_so(hubs, tmp_path, template_repo):
    fed, plans = hubs
    done, _, after = run_image_step(fed, plans["prod"], {}, tmp_path, template_repo)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "::warning::nothing was built for" in done.stdout
    assert list(after) == [f"{plans['prod']['image']}:{plans['prod']['tag']}"]


def test_a_registry_answer_other_than_not_found_fails_and_builds_nothing(hubs, tmp_path, template_repo):
    """Only "no such manifest" means build: any other failure to ask the
    registry (here, a registry stand-in whose store cannot be read) fails the
    deploy, rather than risk pushing over a tag."""
    fed, plans = hubs
    done, calls, _ = run_image_step(fed, plans["prod"], None, tmp_path, template_repo)
    assert done.returncode == 1
    assert "::error::cannot tell whether" in done.stdout
    assert [call["tool"] for call in calls] == ["docker"]
