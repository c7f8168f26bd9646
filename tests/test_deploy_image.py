"""deploy.yml's image step, run as GitHub runs it for the real plan's entries:
a tag is built and pushed once, and only ever promoted after that. Prod
deploys the image staging pushed for the same tag, never a second build.

What cannot run here is stood in for on PATH, each logging its arguments:
`docker` (the registry: `manifest inspect` answers from a set of pushed
tags, as a registry does), and `python`/`jupyter-repo2docker` (the build
needs a Docker daemon and conda channels)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import git, hub_template, render
from test_federation_repo import federation

STAND_INS = {
    # The registry: a tag is there when its name is a line of $REGISTRY_TAGS.
    "docker": """#!/usr/bin/env bash
echo "docker $*" >> "$STAND_IN_LOG"
[ "$1 $2" = "manifest inspect" ] || exit 2
if [ -n "$REGISTRY_DOWN" ]; then echo "Get \\"https://$3\\": dial tcp: i/o timeout" >&2; exit 1; fi
if grep -qxF "$3" "$REGISTRY_TAGS"; then echo '{"schemaVersion": 2}'; else echo "no such manifest: $3" >&2; exit 1; fi
""",
    "python": '#!/usr/bin/env bash\necho "python $*" >> "$STAND_IN_LOG"\n',
    "jupyter-repo2docker": '#!/usr/bin/env bash\necho "jupyter-repo2docker $*" >> "$STAND_IN_LOG"\n',
}


@pytest.fixture(scope="module")
def hubs(template_repo, tmp_path_factory):
    """A federation with one hub, its image changed in a second commit, and
    the real plans of that push to staging and then to prod."""
    fed = tmp_path_factory.mktemp("image") / "pangeo-hubs"
    shutil.copytree(federation(template_repo, tmp_path_factory), fed)
    render(template_repo, fed / "deployments" / "charlie")
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


def run_image_step(fed: Path, entry: dict, pushed: set[str], tmp_path: Path, **extra: str):
    """The step as GitHub runs it when its `if` holds: the job's env from the
    matrix entry, the step's env, bash -e; returns (result, stand-ins' log)."""
    step = image_step(fed)
    assert entry["build"] or entry["promote"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, script in STAND_INS.items():
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "tags").write_text("".join(f"{tag}\n" for tag in pushed))
    log = tmp_path / "log"
    log.write_text("")
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "STAND_IN_LOG": str(log),
        "REGISTRY_TAGS": str(tmp_path / "tags"),
        "REPO2DOCKER": "jupyter-repo2docker==2026.4.0",
        # The deploy job's env, from the matrix entry.
        "HUB": entry["hub"],
        "IMAGE": entry["image"],
        "TAG": entry["tag"],
        "REGISTRY": entry["registry"],
        "PROMOTE": str(entry["promote"]).lower(),  # ${{ matrix.promote }}
        **extra,
    }
    assert step["env"] == {"PROMOTE": "${{ matrix.promote }}"}
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=fed,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    return done, log.read_text().splitlines()


def test_staging_builds_a_new_tag_and_prod_promotes_it(hubs, tmp_path):
    fed, plans = hubs
    staging, prod = plans["staging"], plans["prod"]
    image = f"{staging['image']}:{staging['tag']}"
    assert image == f"{prod['image']}:{prod['tag']}"

    done, log = run_image_step(fed, staging, set(), tmp_path / "staging")
    assert done.returncode == 0, done.stdout + done.stderr
    assert log[0] == f"docker manifest inspect {image}"
    assert log[1] == "python -m pip install jupyter-repo2docker==2026.4.0"
    assert log[2].startswith("jupyter-repo2docker --no-run --push ") and f"--image-name {image} " in log[2]

    # Prod, once staging pushed the tag: nothing is built or pushed.
    done, log = run_image_step(fed, prod, {image}, tmp_path / "prod")
    assert done.returncode == 0, done.stdout + done.stderr
    assert log == [f"docker manifest inspect {image}"]
    assert "not building it again" in done.stdout


def test_a_tag_already_pushed_is_never_built_again(hubs, tmp_path):
    """A staging run again (re-run, force push) keeps the image it pushed."""
    fed, plans = hubs
    image = f"{plans['staging']['image']}:{plans['staging']['tag']}"
    done, log = run_image_step(fed, plans["staging"], {image}, tmp_path)
    assert done.returncode == 0 and log == [f"docker manifest inspect {image}"]


def test_prod_builds_only_a_tag_nothing_was_built_for_and_says_so(hubs, tmp_path):
    fed, plans = hubs
    done, log = run_image_step(fed, plans["prod"], set(), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "::warning::nothing was built for" in done.stdout
    assert log[-1].startswith("jupyter-repo2docker --no-run --push ")


def test_a_registry_that_does_not_answer_fails_the_deploy_and_builds_nothing(hubs, tmp_path):
    fed, plans = hubs
    done, log = run_image_step(fed, plans["prod"], set(), tmp_path, REGISTRY_DOWN="1")
    assert done.returncode == 1
    assert "::error::cannot tell whether" in done.stdout and "i/o timeout" in done.stdout
    assert len(log) == 1
