"""Each rule of hooks/hub_template/data/rules.yml is applied by several parts
of hub-template; one table of good and bad values goes through every part
that applies it, and they must agree:

- copier's validator: a real `copier copy --defaults --data ...` (pretend, so
  nothing is written) of the `template_repo` fixture;
- the source import: the template's task entry point (`hooks/run.py
  import-source`) in a rendered hub whose answers name a real local git
  source repository holding the value;
- the checker: `run_checks` on a rendered hub edited to hold the value;
- the deploy planner: `plan_hub` on a real federation repository.

A bad value must be refused by each part for the rule's reason (its message
names the rule), not by accident further on.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, git, render
from copier import run_copy

from hub_template.checks.runner import run_checks
from hub_template.deploy_plan import PlanError, plan_hub
from hub_template.source_import import _nice_yaml

HOOKS = ROOT / "hooks" / "run.py"

# rule -> [(value, good)]. Each bad value is one a part once let through, or
# one the rule exists to stop.
APT_PACKAGE = [
    ("nco", True),
    ("libgl1", True),
    ("g++", True),
    ("cdo=2.1.1-1", True),
    ("libnetcdf-dev=1:4.9.0~rc", True),
    ("Nco", False),
    ("a", False),
    ("nco cdo", False),
    ("nco;touch", False),
    ("-nco", False),
    ("nco=1 2", False),
]
FINAL_EXEC = [
    ('exec "$@"', True),
    ('exec "${@}"', True),
    ('exec  "$@"', True),
    ('exec "$@"  # the notebook server', True),
    ("exec $@", False),  # splits each argument on blanks
    ("exec ${@}", False),
    ('exec "$*"', False),  # one argument
    ("exec $*", False),
    ('"$@"', False),  # runs the command, then start ends: the pod dies with it
    ('exec jupyter lab "$@"', False),
]
GIT_REF = [
    ("main", True),
    ("release/2024.1", True),
    ("v1.2.3", True),
    ("feature_x-2", True),
    ("main/", False),
    ("main.", False),
    ("release/.hidden", False),
    ("release//2024", False),
    ("main.lock", False),
    ("a..b", False),
    ("-main", False),
    ("main branch", False),
    ("main@{1}", False),
]
HUB_NAME = [
    ("charlie", True),
    ("ocean-hub2", True),
    ("a" * 45, True),
    ("Charlie", False),
    ("ocean_hub", False),
    ("-x", False),
    ("x-", False),
    ("2hub", False),
    ("a" * 46, False),
]
IMAGE_NAME = [
    ("us-central1-docker.pkg.dev/my-project/pangeo-hubs/charlie", True),
    ("ghcr.io/pangeo/ocean__hub", True),
    ("localhost:5000/ocean--hub", True),
    ("registry.example.org/a.b_c", True),
    ("Ghcr.io/pangeo/charlie", False),
    ("ghcr.io", False),
    ("ghcr.io/pangeo/", False),
    ("ghcr.io/-charlie", False),
    ("ghcr.io/ocean___hub", False),
    ("ghcr.io/pangeo/charlie:latest", False),
]
GCP_SERVICE_ACCOUNT = [
    ("hub-deployer@my-pangeo-project.iam.gserviceaccount.com", True),
    ("ci-bot1@proj-123.iam.gserviceaccount.com", True),
    ("ci@my-pangeo-project.iam.gserviceaccount.com", False),  # names are 6 to 30 characters
    ("Hub-deployer@my-pangeo-project.iam.gserviceaccount.com", False),
    ("hub-deployer@my-pangeo-project.iam.gserviceaccount.com\n", False),
    ("hub-deployer@my-pangeo-project.gserviceaccount.com", False),
]


# An IAM role by ARN: a path and name of up to 512 characters (IAM's limit),
# for the role CI assumes and the role the users' pods get.
AWS_ROLE_ARN = [
    ("arn:aws:iam::210987654321:role/pangeo-hub-deployer", True),
    ("arn:aws-us-gov:iam::210987654321:role/teams/ocean/hub-user", True),
    ("arn:aws:iam::210987654321:role/" + "p" * 100, True),  # over the 64 a name alone may have: a path
    ("arn:aws:iam::21098765432:role/hub-user", False),  # an account id has 12 digits
    ("arn:aws:iam::210987654321:user/hub-user", False),
    ("arn:aws:iam::210987654321:role/hub-user\n", False),
]


def _ids(table):
    return [f"{'good' if good else 'bad'}-{value!r}" for value, good in table]


# --- copier's validators -----------------------------------------------------------


def copier_refuses(template: Path, dst: Path, **data) -> str | None:
    """The message copier's validators give for `data`, or None when they
    accept it (a pretend copy: nothing is written, no task runs)."""
    try:
        run_copy(str(template), str(dst), data=data, defaults=True, unsafe=True, quiet=True, pretend=True)
    except ValueError as error:
        return str(error)
    assert not dst.exists()
    return None


SOURCE = object()  # stands for the source_repo fixture's path
# (the --data naming the value, the value, good, what copier's refusal says);
# a list answer's one item is one package, even with blanks in it.
COPIER = [
    *(({"apt_packages": [v]}, v, g, ["not a Debian package"]) for v, g in APT_PACKAGE),
    *(({"source_repo": SOURCE, "source_ref": v}, v, g, ["not a branch, tag or commit"]) for v, g in GIT_REF),
    *(({"hub_name": v}, v, g, ["lowercase a-z, 0-9 and -", "characters, over 45"]) for v, g in HUB_NAME),
    *(({"image_name": v}, v, g, ["not an image name", "leave out the tag"]) for v, g in IMAGE_NAME),
    *(
        ({"cloud_provider": "gcp", question: v}, v, g, ["NAME@PROJECT.iam.gserviceaccount.com"])
        for question in ("gcp_deployer", "cloud_identity")
        for v, g in GCP_SERVICE_ACCOUNT
    ),
    *(
        ({"cloud_provider": "aws", question: v}, v, g, ["arn:aws:iam::ACCOUNT:role/NAME"])
        for question in ("aws_deploy_role", "cloud_identity")
        for v, g in AWS_ROLE_ARN
    ),
]


@pytest.mark.parametrize(
    "data, value, good, refusals",
    COPIER,
    ids=[f"{list(d)[-1]}-{'good' if g else 'bad'}-{v!r}" for d, v, g, _ in COPIER],
)
def test_copier(template_repo, source_repo, tmp_path, data, value, good, refusals):
    data = {name: str(source_repo) if answer is SOURCE else answer for name, answer in data.items()}
    message = copier_refuses(template_repo, tmp_path / "charlie", **data)
    if good:
        assert message is None
    else:
        assert any(refusal in message for refusal in refusals), message


# --- the source import -------------------------------------------------------------


@pytest.fixture(scope="module")
def plain_hub(template_repo, tmp_path_factory) -> Path:
    """A rendered hub without a source: each import works on a copy of it."""
    return render(template_repo, tmp_path_factory.mktemp("plain") / "deployments" / "plain")


@pytest.fixture(scope="module")
def source_repo(tmp_path_factory) -> Path:
    """A notebook repository with a branch for every good git ref."""
    repo = tmp_path_factory.mktemp("source") / "notebooks"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "analysis.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "notebooks")
    for value, good in GIT_REF:
        if good and value != "main":
            git(repo, "branch", value)
    return repo


def import_source(plain_hub: Path, work: Path, files: dict[str, str] | None = None, ref: str = "") -> str | None:
    """Run the template's import task in a copy of `plain_hub` whose answers
    name a new source repository holding `files` (or the one given as
    `ref`'s repository). None when it succeeds, else its error."""
    hub = shutil.copytree(plain_hub, work / "deployments" / "plain")
    source = work / "source"
    source.mkdir()
    git(source, "init", "-q")
    for name, text in (files or {"analysis.ipynb": "{}"}).items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
        if name.endswith("start"):
            (source / name).chmod(0o755)
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", "source")
    return _run_import(hub, str(source), ref)


def _run_import(hub: Path, url: str, ref: str) -> str | None:
    answers_file = hub / ".copier-answers.yml"
    lines = answers_file.read_text().splitlines(keepends=True)
    head = "".join(line for line in lines if line.startswith("#"))  # copier's comment
    answers = yaml.safe_load(answers_file.read_text())
    answers.update(source_repo=url, source_ref=ref)
    answers_file.write_text(head + _nice_yaml(answers))  # as copier writes it
    result = subprocess.run([sys.executable, str(HOOKS), "import-source"], cwd=hub, capture_output=True, text=True)
    if result.returncode == 0:
        return None
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


@pytest.mark.parametrize("value, good", APT_PACKAGE, ids=_ids(APT_PACKAGE))
def test_apt_package_by_the_source_import(plain_hub, tmp_path, value, good):
    error = import_source(plain_hub, tmp_path, {"binder/apt.txt": f"{value}\n"})
    if good:
        assert error is None
        assert value in (tmp_path / "deployments/plain/image/binder/apt.txt").read_text().splitlines()
    else:
        assert "is not a Debian package name" in error


@pytest.mark.parametrize("value, good", FINAL_EXEC, ids=_ids(FINAL_EXEC))
def test_final_exec_by_the_source_import(plain_hub, tmp_path, value, good):
    start = f"#!/bin/bash\nexport FROM_SOURCE=yes\n{value}\n"
    error = import_source(plain_hub, tmp_path, {"binder/start": start, "analysis.ipynb": "{}"})
    if good:
        assert error is None
        merged = (tmp_path / "deployments/plain/image/binder/start").read_text().splitlines()
        # The source's exec gives way to the hub's own, which ends start.
        assert "export FROM_SOURCE=yes" in merged
        assert [line for line in merged if line.lstrip().startswith("exec")] == ['exec "$@"']
    else:
        assert "final exec" in error


@pytest.mark.parametrize("value, good", GIT_REF, ids=_ids(GIT_REF))
def test_git_ref_by_the_source_import(plain_hub, source_repo, tmp_path, value, good):
    hub = shutil.copytree(plain_hub, tmp_path / "deployments" / "plain")
    error = _run_import(hub, str(source_repo), value)
    assert error is None if good else "is not a branch, tag or commit name" in error


# --- the checker -------------------------------------------------------------------


def check(hub: Path, name: str) -> bool:
    (result,) = [r for r in run_checks(hub, select=frozenset({name})).results if r.name == name]
    assert result.result is not None, result.skip_reason
    return result.result


@pytest.mark.parametrize("value, good", APT_PACKAGE, ids=_ids(APT_PACKAGE))
def test_apt_package_by_the_checker(plain_hub, tmp_path, value, good):
    hub = shutil.copytree(plain_hub, tmp_path / "plain")
    with open(hub / "image/binder/apt.txt", "a") as apt:
        apt.write(f"{value}\n")
    assert check(hub, "IM006") is good


@pytest.mark.parametrize("value, good", FINAL_EXEC, ids=_ids(FINAL_EXEC))
def test_final_exec_by_the_checker(plain_hub, tmp_path, value, good):
    hub = shutil.copytree(plain_hub, tmp_path / "plain")
    start = hub / "image/binder/start"
    lines = start.read_text().splitlines()
    assert lines[-1] == 'exec "$@"'
    start.write_text("\n".join([*lines[:-1], value]) + "\n")
    assert check(hub, "IM008") is good


# --- the deploy planner ------------------------------------------------------------


@pytest.fixture(scope="module")
def federation(plain_hub, tmp_path_factory) -> tuple[Path, str]:
    """A federation repository holding the rendered hub under every good hub
    name, as hub image-<n> with the n-th image name of IMAGE_NAME, and as
    account-<n> deploying as the n-th service account of GCP_SERVICE_ACCOUNT."""
    repo = tmp_path_factory.mktemp("federation") / "hubs"
    for value, good in HUB_NAME:
        if good:
            shutil.copytree(plain_hub, repo / "deployments" / value)
    answers = yaml.safe_load((plain_hub / ".copier-answers.yml").read_text())
    assert answers["cloud_provider"] == "gcp"
    for n, (value, _) in enumerate(GCP_SERVICE_ACCOUNT):
        hub = shutil.copytree(plain_hub, repo / "deployments" / f"account-{n}")
        (hub / ".copier-answers.yml").write_text(yaml.safe_dump({**answers, "gcp_deployer": value}))
    image = answers["image_name"]
    for n, (value, _) in enumerate(IMAGE_NAME):
        hub = shutil.copytree(plain_hub, repo / "deployments" / f"image-{n}")
        values = hub / "config/common.yaml"
        text = values.read_text()
        assert text.count(f"name: {image}\n") == 1
        values.write_text(text.replace(f"name: {image}\n", f"name: {json.dumps(value)}\n"))
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "hubs")
    return repo, git(repo, "rev-parse", "HEAD")


# (the value's field, the hub folder holding it, the value, good)
PLANNED = [
    *(("hub", value, value, good) for value, good in HUB_NAME),
    *(("image", f"image-{n}", value, good) for n, (value, good) in enumerate(IMAGE_NAME)),
    *(("gcp_deployer", f"account-{n}", value, good) for n, (value, good) in enumerate(GCP_SERVICE_ACCOUNT)),
]


@pytest.mark.parametrize(
    "field, hub, value, good", PLANNED, ids=[f"{f}-{'good' if g else 'bad'}-{v!r}" for f, _, v, g in PLANNED]
)
def test_the_deploy_planner(federation, field, hub, value, good):
    repo, commit = federation
    if good:
        plan = plan_hub(repo, commit, hub, "staging", build=False)
        assert {"hub": plan.hub, "image": plan.image, **plan.login}[field] == value
    else:
        with pytest.raises(PlanError, match=rf"{field} '.*' (does not match|has [0-9]+ characters, over)"):
            plan_hub(repo, commit, hub, "staging", build=False)
