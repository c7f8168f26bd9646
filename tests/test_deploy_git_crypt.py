"""Per-hub git-crypt keys, with the real git-crypt: a hub's secrets are
encrypted with its own key as its README says, the operator hands CI the
secret that README names, and the rendered deploy.yml's unlock step, run as
GitHub runs it for that hub's entry of the real plan, opens that hub's
secrets and no other hub's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import git, render
from hub_cells import REAL_IDS
from test_federation_repo import federation

pytestmark = pytest.mark.skipif(
    shutil.which("git-crypt") is None, reason="no git-crypt on PATH: .ci/run installs Debian's git-crypt"
)

HUBS = {"ocean-lab": "s3cret-of-ocean-lab", "bravo": "s3cret-of-bravo"}
ENCRYPTED = b"\0GITCRYPT\0"


def readme_says(readme: str, pattern: str) -> str:
    """The one command or name of the hub's README the pattern matches."""
    (found,) = set(re.findall(pattern, readme))
    return found


def sh(cwd, command: str) -> str:
    return subprocess.run(["bash", "-c", command], cwd=cwd, check=True, capture_output=True, text=True).stdout


def unlock_step(fed):
    """The deploy job's git-crypt step of the rendered deploy.yml."""
    steps = yaml.safe_load((fed / ".github/workflows/deploy.yml").read_text())["jobs"]["deploy"]["steps"]
    (step,) = [s for s in steps if s.get("if") == "matrix.secrets == 'git-crypt'"]
    return step


def run_step(step, entry, secrets, cwd, tmp_path):
    """The step as GitHub runs it for this matrix entry: its env's expressions
    evaluated (only `matrix.X` and `secrets[matrix.X]` appear), then its
    script with bash -e."""

    def evaluate(value: str) -> str:
        value = re.sub(r"\$\{\{ secrets\[matrix\.(\w+)\] \}\}", lambda m: secrets.get(entry[m[1]], ""), value)
        value = re.sub(r"\$\{\{ matrix\.(\w+) \}\}", lambda m: str(entry[m[1]]), value)
        assert "${{" not in value, value
        return value

    env = {key: evaluate(str(value)) for key, value in step["env"].items()}
    runner_temp = tmp_path / f"runner-{entry['hub']}"
    runner_temp.mkdir()
    env |= {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "RUNNER_TEMP": str(runner_temp), "HUB": entry["hub"]}
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )


def test_ci_unlocks_each_hub_with_the_secret_its_readme_names(template_repo, tmp_path_factory, tmp_path):
    fed = tmp_path / "pangeo-hubs"
    shutil.copytree(federation(template_repo, tmp_path_factory, "gcp", "git-crypt"), fed)
    git(fed, "init", "-q")
    secrets = {}
    for hub, value in HUBS.items():
        render(template_repo, fed / "deployments" / hub, secrets_backend="git-crypt", **REAL_IDS)
        readme = (fed / "deployments" / hub / "README.md").read_text()
        # The operator follows the README: the hub's own key, at the root...
        sh(fed, readme_says(readme, r"`(git-crypt init -k [\w-]+)`"))
        staging = fed / "deployments" / hub / "secrets/staging.yaml"
        staging.write_text(staging.read_text().replace("<hub-template placeholder: github-oauth-client-secret>", value))
        # ...then the secret it names, holding what its export command prints.
        name = readme_says(readme, r"the secret `(GIT_CRYPT_KEY\w*)`")
        secrets[name] = sh(fed, readme_says(readme, r"`(git-crypt export-key -k [\w-]+ - \| base64 -w0)`"))
    git(fed, "add", "-A")
    git(fed, "commit", "-q", "-m", "two hubs, each with its own key")
    for hub in HUBS:
        blob = subprocess.run(
            ["git", "cat-file", "blob", f"HEAD:deployments/{hub}/secrets/staging.yaml"],
            cwd=fed,
            check=True,
            capture_output=True,
        ).stdout
        assert blob.startswith(ENCRYPTED), hub

    # CI: a fresh checkout, locked; the real plan; the rendered unlock step.
    ci = tmp_path / "checkout"
    git(tmp_path, "clone", "-q", str(fed), ci.name)
    done = subprocess.run(
        [sys.executable, "-m", "hub_template.cli", "plan-deploy", "--before", "0" * 40, "--branch", "staging"],
        cwd=ci,
        check=True,
        capture_output=True,
        text=True,
    )
    entries = {entry["hub"]: entry for entry in yaml.safe_load(done.stdout)["hubs"]}
    assert {hub: entries[hub]["git_crypt_secret"] for hub in HUBS} == {
        "ocean-lab": "GIT_CRYPT_KEY_OCEAN_LAB",
        "bravo": "GIT_CRYPT_KEY_BRAVO",
    }
    assert set(secrets) == {"GIT_CRYPT_KEY_OCEAN_LAB", "GIT_CRYPT_KEY_BRAVO"}

    step = unlock_step(ci)
    done = run_step(step, entries["ocean-lab"], secrets, ci, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    opened = (ci / "deployments/ocean-lab/secrets/staging.yaml").read_bytes()
    assert b"s3cret-of-ocean-lab" in opened
    # One hub's key opens no other hub's secrets.
    assert (ci / "deployments/bravo/secrets/staging.yaml").read_bytes().startswith(ENCRYPTED)
    assert not list(tmp_path.glob("runner-*/*"))  # the key file is removed

    # A hub whose secret was never added fails, naming the secret to add.
    other = tmp_path / "checkout-2"
    git(tmp_path, "clone", "-q", str(fed), other.name)
    done = run_step(
        step, entries["bravo"], {"GIT_CRYPT_KEY_OCEAN_LAB": secrets["GIT_CRYPT_KEY_OCEAN_LAB"]}, other, tmp_path
    )
    assert done.returncode == 1
    assert "no repository secret GIT_CRYPT_KEY_BRAVO" in done.stdout
    assert (other / "deployments/bravo/secrets/staging.yaml").read_bytes().startswith(ENCRYPTED)
