"""The hub's README gets a researcher from answers to a running hub: it answers
the seed's questions (what GitHub, conda-forge/Anaconda, Binder/repo2docker
and the CI do; what repo2docker reads; who calls hubploy; how to make
environment.yml from an environment; what .dask/config.yaml does and why it is
installed where it is), for this hub's own choices, and the commands it shows
work: its `copier update` lines really run on a hub in a git repository, and
its checker install line is the one the checker itself prints."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest
import yaml
from conftest import git, render
from template_versions import commit, federation

from hub_template.cli import EXTRAS

# Per seed question: what the README must say (each string, case-insensitive).
SEED_ANSWERS = {
    "what GitHub does": ["**GitHub** keeps the federation repository", "GitHub OAuth apps", "runs the CI"],
    "what conda-forge and Anaconda do": [
        "**conda-forge** is the community channel",
        "**Anaconda** is the company",
        "`defaults`",
    ],
    "what Binder and repo2docker do": [
        "**repo2docker** turns `image/` into the users' image",
        "**Binder**",
        "mybinder.org",
    ],
    "what the CI does": ["**The CI service** (GitHub Actions", "builds the image when `image/` changed"],
    "what repo2docker reads in binder/": [
        "`binder/environment.yml`",
        "`binder/apt.txt`",
        "`binder/postBuild`",
        "`binder/start`",
        "only\nthere",
    ],
    "who calls hubploy": ["calls hubploy from the repository's root", "`.github/workflows/`"],
    "environment.yml from an environment": [
        "conda env export --from-history > analysis.yml",
        "--data environment_file=analysis.yml",
        "IM002",
    ],
    "what .dask/config.yaml does and why there": [
        "**`.dask/config.yaml`** tells dask how this hub makes clusters",
        "${NB_PYTHON_PREFIX}/etc/dask/",
        "hides anything the image put there",
    ],
    "tools to install": [
        "## Tools to install",
        "pip install 'copier>=9.19,<10' 'ruamel.yaml>=0.18.6,<0.20'",
        "kubectl, helm",
        "hubploy",
    ],
    "who makes the cluster and registry": [
        "## The cluster, the registry and the scratch bucket",
        "made once, by whoever runs it",
    ],
    "the scratch bucket's lifecycle rule": ["lifecycle", "7 days"],
    "DNS before Let's Encrypt": [
        "## DNS and HTTPS, in order",
        "get service proxy-public",
        "Let's Encrypt can issue a certificate only once the name resolves",
    ],
    "a diagram for a terminal": ["The same flow, for a terminal:", "CI: repo2docker builds", "CI: hubploy deploy"],
}

# What differs per choice: the commands and names for this hub.
CELLS = {
    "gcp-git-crypt-gateway": (
        {"cloud_provider": "gcp", "gcp_project": "ocean-lab-1"},
        [
            "gcloud container clusters create pangeo-hubs --project ocean-lab-1",
            "gcloud artifacts repositories create pangeo-hubs --repository-format docker",
            "gcloud storage buckets create gs://charlie-scratch",
            "--lifecycle-file lifecycle.json",
            "git-crypt",
            "GatewayCluster()",
        ],
    ),
    "aws-sops-kubernetes": (
        {
            "cloud_provider": "aws",
            "aws_account_id": "210987654321",
            "secrets_backend": "sops",
            "dask_backend": "kubernetes",
        },
        [
            "eksctl create cluster --name pangeo-hubs --region us-west-2",
            "aws ecr create-repository --repository-name pangeo-hubs/charlie",
            "aws s3api put-bucket-lifecycle-configuration --bucket charlie-scratch",
            "getsops/sops",
            "KubeCluster()",
            "`hub_dask.KubeCluster`",
            "dask-kubernetes operator",
        ],
    ),
    "azure": (
        {"cloud_provider": "azure"},
        [
            "az aks create --resource-group pangeo-hubs --name pangeo-hubs",
            "az acr create --resource-group pangeo-hubs --name pangeohubs",
            "az storage account management-policy create",
            "daysAfterModificationGreaterThan",
        ],
    ),
}


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_the_readme_answers_the_seed_questions(template_repo, tmp_path, cell):
    data, specific = CELLS[cell]
    hub = render(template_repo, tmp_path / "deployments" / "charlie", **data)
    readme = (hub / "README.md").read_text()
    for question, says in SEED_ANSWERS.items():
        for words in says:
            assert words.lower() in readme.lower(), f"{question}: {words!r} missing"
    for words in specific:
        assert words in readme, f"{cell}: {words!r} missing"
    assert "{{" not in readme and "{%" not in readme


def _readme_commands(readme: str, program: str) -> list[list[str]]:
    """The command lines of the README's code blocks that start with `program`."""
    commands, fenced = [], False
    for line in readme.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced and line.startswith(program + " "):
            commands.append(shlex.split(line.split("#")[0]))
    return commands


def test_every_update_command_keeps_the_answers_and_works(template_repo, tmp_path):
    fed = federation(tmp_path / "federation")
    hub = render(template_repo, fed / "deployments" / "charlie")
    commit(fed, "Add hub charlie")
    readme = (hub / "README.md").read_text()
    updates = _readme_commands(readme, "copier update")
    assert len(updates) == 2
    for command in updates:
        # Without --defaults copier would ask every question again.
        assert command[:4] == ["copier", "update", "--trust", "--defaults"], command
        run = subprocess.run(
            [sys.executable, "-m", *command],
            cwd=hub,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr
        if git(fed, "status", "--porcelain"):
            commit(fed, " ".join(command))
    recorded = yaml.safe_load((hub / ".copier-answers.yml").read_text())
    assert recorded["max_users"] == "80"
    assert recorded["hub_name"] == "charlie"


def test_the_checker_install_line_is_the_one_the_checker_prints(template_repo, tmp_path):
    hub = render(template_repo, tmp_path / "deployments" / "charlie")
    readme = (hub / "README.md").read_text()
    wanted = EXTRAS["check"].splitlines()[0]  # tests/test_cli.py installs that extra from a clone
    lines = [line for line in readme.splitlines() if "pip install 'hub-template" in line]
    assert lines and all(wanted in line for line in lines), lines
