"""A federation as an operator runs it, driven through the federation's own
workflows under act: rendered once per cell, hubs added on branches as their
README says, each push or pull request run by act on a fresh clone (as
GitHub's checkout makes one), with only tests/standins between it and the
internet and the cloud."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import yaml
from conftest import BIN, ROOT, VERSION, git
from hub_cells import REAL_IDS
from standins import Boundary

ACT = BIN / "act"
# The federation's repository on GitHub: the origin of each run's clone, as
# GitHub's checkout makes it, from which act takes github.repository.
REPOSITORY = "pangeo/pangeo-hubs"
# A tracked file of the working tree the template is published from (copier and pip read it).
_UNTRACKED = ("--others", "--exclude-standard")


def publish_working_tree(repo: Path, tag: str) -> Path:
    """A git repository of this working tree as it is (tracked and new files),
    tagged ``tag``: what `pip install git+https://github.com/pangeo/hub-template@<tag>`
    and `copier copy` fetch through the boundary."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", *_UNTRACKED], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    repo.mkdir(parents=True)
    for name in filter(None, (f.decode() for f in files)):
        src = ROOT / name
        if src.is_file() or src.is_symlink():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / name, follow_symlinks=False)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"hub-template {tag}")
    git(repo, "tag", tag)
    return repo


def tree_digest(folder: Path, paths: list[str]) -> str:
    """sha256 over the files under ``paths`` (the product files a test must never edit)."""
    digest = hashlib.sha256()
    for top in paths:
        for path in sorted(p for p in (folder / top).rglob("*") if p.is_file()):
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


# What the federation renders that the workflows run: no test may edit them.
PRODUCT = [".github", "chart"]


class Federation:
    """One cell's federation repository, its hubs, and the act runs on it."""

    def __init__(self, work: Path, template: Path, provider: str, secrets: str) -> None:
        self.work, self.template, self.provider, self.secrets = work, template, provider, secrets
        self.repo = work / "pangeo-hubs"
        self.boundary = Boundary(work / "boundary", template)
        self.runs = 0
        self.durations: list[tuple[str, float]] = []
        self.ci_secrets: dict[str, str] = {}
        self._copier(
            "copy", "--trust", "--defaults", *self._data(kind="federation"), str(template), str(self.repo), cwd=work
        )
        self.git("init", "-q", "-b", "staging")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "the federation, rendered by hub-template")
        self.git("branch", "prod")
        self.product_digest = tree_digest(self.repo, PRODUCT)

    def _data(self, **data: str) -> list[str]:
        data = {"cloud_provider": self.provider, "secrets_backend": self.secrets, **data}
        return [arg for k, v in data.items() for arg in ("--data", f"{k}={v}")]

    def _copier(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        done = subprocess.run(
            [str(BIN / "copier"), *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr

    def git(self, *args: str) -> str:
        return git(self.repo, *args)

    def add_hub(self, hub: str, branch: str) -> Path:
        """What the hub's README says, on a branch from staging: render it
        inside the federation, fill its secrets, encrypt them, commit."""
        self.git("checkout", "-q", "-b", branch, "staging")
        self._copier(
            "copy", "--trust", "--defaults", *(f"--data={name}={value}" for name, value in REAL_IDS.items()),
            str(self.template), f"deployments/{hub}", cwd=self.repo, env={"COPIER_SETTINGS_PATH": "copier-settings.yml"},
        )  # fmt: skip
        folder = self.repo / "deployments" / hub
        for secrets in (folder / "secrets").glob("*.yaml"):
            secrets.write_text(
                re.sub(r"<hub-template placeholder: ([a-z-]+)>", rf"{hub}-\1-value", secrets.read_text())
            )
        readme = (folder / "README.md").read_text()
        if self.secrets == "git-crypt":
            key = re.search(r"`git-crypt init -k ([a-z0-9-]+)`", readme)
            assert key, "the hub's README names no git-crypt key"
            subprocess.run(["git-crypt", "init", "-k", key[1]], cwd=self.repo, check=True, capture_output=True)
            exported = self.work / f"{key[1]}.key"
            subprocess.run(["git-crypt", "export-key", "-k", key[1], str(exported)], cwd=self.repo, check=True)
            # The repository secret the hub's README names for CI.
            secret = re.search(r"secret\s+`(GIT_CRYPT_KEY[A-Z0-9_]*)`", readme)
            assert secret, "the hub's README names no git-crypt secret for CI"
            self.ci_secrets[secret[1]] = base64.b64encode(exported.read_bytes()).decode()
        if self.secrets == "sops":
            # The README's way, from the hub's folder (its .sops.yaml names the cloud's key),
            # with the operator's own cloud login.
            env = {**self.boundary.env(), "AWS_ACCESS_KEY_ID": "AKIAOPERATOR", "AWS_SECRET_ACCESS_KEY": "operator"}
            for secrets in sorted((folder / "secrets").glob("*.yaml")):
                done = subprocess.run(
                    [str(BIN / "sops"), "--encrypt", "--in-place", f"secrets/{secrets.name}"],
                    cwd=folder,
                    env=env,
                    capture_output=True,
                    text=True,
                )
                assert done.returncode == 0, done.stderr
        self.git("add", "-A")
        self.git("commit", "-q", "-m", f"Add the {hub} hub")
        if self.secrets == "git-crypt":
            blob = subprocess.run(
                ["git", "show", f"HEAD:deployments/{hub}/secrets/staging.yaml"], cwd=self.repo, capture_output=True
            ).stdout
            assert blob.startswith(b"\0GITCRYPT\0"), "the hub's secrets were committed in clear"
        return folder

    def merge(self, branch: str, into: str) -> tuple[str, str]:
        """Merge ``branch`` into ``into`` (a merged pull request); (before, after)."""
        before = self.git("rev-parse", into)
        self.git("checkout", "-q", into)
        self.git("merge", "-q", "--no-ff", "-m", f"Merge {branch} into {into}", branch)
        return before, self.git("rev-parse", into)

    # --- act ----------------------------------------------------------------------

    def act(self, event: str, workflow: str, payload: dict, ref: str) -> subprocess.CompletedProcess:
        """Run ``workflow`` for ``event`` on a fresh clone at ``ref``, as GitHub would."""
        self.runs += 1
        run = self.work / f"run-{self.runs}"
        clone = run / "pangeo-hubs"
        subprocess.run(["git", "clone", "-q", "--no-local", str(self.repo), str(clone)], check=True)
        git(clone, "-c", "advice.detachedHead=false", "checkout", "-q", ref)
        git(clone, "remote", "set-url", "origin", f"https://github.com/{REPOSITORY}.git")
        event_file = run / "event.json"
        event_file.write_text(json.dumps(payload))
        secrets = [arg for name, value in self.ci_secrets.items() for arg in ("-s", f"{name}={value}")]
        args = [
            str(ACT), event,
            "--workflows", f".github/workflows/{workflow}",
            "--eventpath", str(event_file),
            "-P", "ubuntu-24.04=-self-hosted",
            "--action-offline-mode",
            "--action-cache-path", str(run / "act-cache"),
            *self.boundary.act_args(clone),
            *secrets,
        ]  # fmt: skip
        start = time.monotonic()
        # act's own notices check would be a request to the internet (the proxy refuses it).
        env = {**self.boundary.env(), "ACT_DISABLE_VERSION_CHECK": "1"}
        done = subprocess.run(args, cwd=clone, env=env, capture_output=True, text=True, timeout=1800)
        self.durations.append((f"{workflow} {event} {ref}", time.monotonic() - start))
        (run / "act.log").write_text(done.stdout + done.stderr)
        return done

    def pull_request(self, branch: str, base: str = "staging") -> subprocess.CompletedProcess:
        payload = {
            "action": "opened",
            "number": self.runs + 1,
            "pull_request": {
                "number": self.runs + 1,
                "base": {"ref": base, "sha": self.git("rev-parse", base)},
                "head": {"ref": branch, "sha": self.git("rev-parse", branch)},
            },
        }
        return self.act("pull_request", "pull-request.yml", payload, branch)

    def push(self, branch: str, before: str, after: str) -> subprocess.CompletedProcess:
        payload = {"ref": f"refs/heads/{branch}", "before": before, "after": after}
        return self.act("push", "deploy.yml", payload, after)

    def schedule(self, workflow: str, cron: str, branch: str) -> subprocess.CompletedProcess:
        """A scheduled run: GitHub starts it on the default branch's workflow."""
        return self.act("schedule", workflow, {"schedule": cron}, self.git("rev-parse", branch))

    def product_unchanged(self) -> bool:
        return tree_digest(self.repo, PRODUCT) == self.product_digest

    def close(self) -> None:
        self.boundary.close()


def act_output(done: subprocess.CompletedProcess) -> str:
    """act's log, for an assertion message: its last 150 lines."""
    return "\n".join((done.stdout + done.stderr).splitlines()[-150:])


def template_clone(tmp: Path) -> Path:
    return publish_working_tree(tmp / "hub-template", f"v{VERSION}")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())
