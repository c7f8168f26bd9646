"""`copier update` of a hub inside a federation repository, across real tags,
run the way an operator runs it: the copier command, from deployments/<hub>."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import yaml
from conftest import BIN, ROOT, check_report, git, hub_template
from plumbum import local
from template_versions import (
    CULL_BLOCK,
    answers,
    clash_with_v1_2_0,
    commit,
    edit_like_a_user,
    edit_without_committing,
    federation,
    make_hub,
    snapshot,
)

from hub_template.stand_ins import stand_ins


def copier_update(hub, *args):
    """`copier update --trust --defaults ARGS` from the hub's folder."""
    return subprocess.run(
        [sys.executable, "-m", "copier", "update", "--trust", "--defaults", *args],
        cwd=hub,
        capture_output=True,
        text=True,
    )


def changed_paths(fed) -> set[str]:
    out = subprocess.run(
        ["git", "status", "--porcelain", "-z", "--untracked-files=all"],
        cwd=fed,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {entry[3:] for entry in out.split("\0") if entry}


def test_update_keeps_the_hubs_edits_and_brings_the_new_release(evolving_template, tmp_path):
    fed = federation(tmp_path / "federation")
    neighbour = make_hub(evolving_template, fed, "alpha", "v1.1.0")
    hub = make_hub(evolving_template, fed, "charlie", "v1.1.0")
    kept = edit_like_a_user(hub)
    commit(fed, "charlie: bigger homes, cartopy, our notebooks, real secrets")
    owned = {
        name: (hub / name).read_bytes()
        for name in ("image/welcome.ipynb", "image/analysis.ipynb", "secrets/staging.yaml", "secrets/prod.yaml")
    }
    neighbour_before = snapshot(neighbour)

    done = copier_update(hub)

    assert done.returncode == 0, done.stderr
    assert done.stderr.count("/hooks/run.py migrate") == 2  # before and after rendering
    # The hub's own edits are still there...
    for name, text in kept.items():
        assert text in (hub / name).read_text(), name
    # ...files the hub owns are untouched, though v1.2.0 changed the starter notebook...
    for name, content in owned.items():
        assert (hub / name).read_bytes() == content, name
    # ...and v1.2.0's changes are in.
    common = (hub / "config" / "common.yaml").read_text()
    assert CULL_BLOCK in common
    assert yaml.safe_load(common)["daskhub"]["jupyterhub"]["cull"]["every"] == 300
    assert "  - dask-labextension>=7,<8\n" in (hub / "image" / "binder" / "environment.yml").read_text()
    recorded = answers(hub)
    assert recorded["_commit"] == "v1.2.0"
    assert recorded["_src_path"] == str(evolving_template)
    assert "hub-template v1.2.0" in (hub / "README.md").read_text()
    # Nothing outside the hub changed, the neighbour hub included; no conflicts.
    changed = changed_paths(fed)
    assert changed and all(path.startswith("deployments/charlie/") for path in changed), changed
    assert snapshot(neighbour) == neighbour_before
    assert not re.search(r"(?m)^<<<<<<<", "".join(p.read_text() for p in hub.rglob("*") if p.is_file()))


def test_a_clashing_edit_ends_in_conflict_markers(evolving_template, tmp_path):
    fed = federation(tmp_path / "federation")
    hub = make_hub(evolving_template, fed, "charlie", "v1.1.0")
    clash_with_v1_2_0(hub)
    commit(fed, "charlie: newer dask-labextension")

    done = copier_update(hub)

    assert done.returncode == 0, done.stderr
    env = (hub / "image" / "binder" / "environment.yml").read_text()
    assert (
        "<<<<<<< before updating\n"
        "  - dask-labextension>=7.2\n"
        "=======\n"
        "  - dask-labextension>=7,<8\n"
        ">>>>>>> after updating\n"
    ) in env
    # git reports it as a conflict to resolve, like a merge does.
    assert git(fed, "diff", "--name-only", "--diff-filter=U") == "deployments/charlie/image/binder/environment.yml"
    assert "both modified:   deployments/charlie/image/binder/environment.yml" in git(fed, "status")
    # The rest of the update went through.
    assert CULL_BLOCK in (hub / "config" / "common.yaml").read_text()
    assert answers(hub)["_commit"] == "v1.2.0"
    # copier said nothing of it; the commands the hub's README gives find it.
    assert "conflict" not in done.stdout.lower()
    readme = (hub / "README.md").read_text()
    block = re.search(r"```\n(git diff --name-only --diff-filter=U[^`]*)```", readme)
    assert block, "the hub's README shows no command that finds conflicts"
    shown = {}
    for line in block[1].splitlines():
        command = line.split("  #")[0].strip()
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "200"}
        shown[command] = subprocess.run(command, shell=True, cwd=hub, capture_output=True, text=True, env=env).stdout
    git_files, check = shown.values()
    assert git_files == "image/binder/environment.yml\n"
    assert "ST003" in check and "image/binder/environment.yml" in check and "conflict markers" in check, check


def test_changing_an_answer_rerenders_what_depends_on_it(evolving_template, tmp_path):
    fed = federation(tmp_path / "federation")
    hub = make_hub(evolving_template, fed, "charlie", "v1.2.0")
    kept = edit_like_a_user(hub)
    commit(fed, "charlie: our edits")
    secrets = (hub / "secrets" / "prod.yaml").read_bytes()

    done = copier_update(hub, "--data", "max_users=80", "--data", "domain=ocean.example.org")

    assert done.returncode == 0, done.stderr
    assert "migrate" not in done.stderr  # within one version there is nothing to migrate
    recorded = answers(hub)
    assert (recorded["_commit"], recorded["max_users"], recorded["domain"]) == (
        "v1.2.0",
        "80",
        "ocean.example.org",
    )
    common = yaml.safe_load((hub / "config" / "common.yaml").read_text())
    assert common["daskhub"]["jupyterhub"]["hub"]["config"]["JupyterHub"]["active_server_limit"] == 80
    prod = yaml.safe_load((hub / "config" / "prod.yaml").read_text())["daskhub"]["jupyterhub"]
    assert prod["proxy"]["https"]["hosts"] == ["ocean.example.org"]
    assert prod["hub"]["config"]["GitHubOAuthenticator"]["oauth_callback_url"] == (
        "https://ocean.example.org/hub/oauth_callback"
    )
    # Defaults derived from the old domain were answers already: they stay.
    assert recorded["staging_domain"] == "staging.charlie.pangeo.io"
    assert "https://ocean.example.org |" in (hub / "README.md").read_text()
    for name, text in kept.items():
        assert text in (hub / name).read_text(), name
    assert (hub / "secrets" / "prod.yaml").read_bytes() == secrets  # the hub's own, even if stale


def test_a_dirty_hub_is_refused_and_nothing_changes(evolving_template, tmp_path):
    fed = federation(tmp_path / "federation")
    hub = make_hub(evolving_template, fed, "charlie", "v1.1.0")
    edit_without_committing(hub)
    before, status = snapshot(fed), git(fed, "status", "--porcelain")

    done = copier_update(hub)

    assert done.returncode != 0
    assert "Destination repository is dirty; cannot continue" in done.stderr
    assert "commit or stash your local changes" in done.stderr
    assert snapshot(fed) == before
    assert git(fed, "status", "--porcelain") == status


def test_the_copy_only_source_import_never_runs_on_update(evolving_template, tmp_path, monkeypatch):
    """The source import (a `_tasks` entry) runs when the hub is made, and
    never again: not in the update, nor in the old and new versions copier
    renders in temporary folders. git's trace of every process (the tasks'
    included) must not mention the source repository during the update."""
    source = tmp_path / "notebooks"
    source.mkdir()
    git(source, "init", "-q")
    (source / "first.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n')
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", "first notebook")
    made_from = git(source, "rev-parse", "HEAD")

    def traced_commands(trace):
        events = [json.loads(line) for line in trace.read_text().splitlines()]
        return [event["argv"] for event in events if event.get("event") == "start"]

    def mention_source(commands):
        return [argv for argv in commands if any(str(source) in arg for arg in argv)]

    fed = federation(tmp_path / "federation")
    with local.env(GIT_TRACE2_EVENT=str(tmp_path / "copy.json")):  # copier starts tasks with plumbum's environment
        hub = make_hub(evolving_template, fed, "charlie", "v1.1.0", source_repo=str(source))
    assert (hub / "image" / "first.ipynb").is_file()  # the import ran on copy...
    assert answers(hub)["source_commit"] == made_from
    assert mention_source(traced_commands(tmp_path / "copy.json"))  # ...and the trace shows it
    # The source moves on; an import run again would bring this notebook in.
    (source / "second.ipynb").write_text((source / "first.ipynb").read_text())
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", "second notebook")

    monkeypatch.setenv("GIT_TRACE2_EVENT", str(tmp_path / "update.json"))
    done = copier_update(hub)

    assert done.returncode == 0, done.stderr
    assert answers(hub)["_commit"] == "v1.2.0"
    assert not (hub / "image" / "second.ipynb").exists()
    assert answers(hub)["source_commit"] == made_from
    commands = traced_commands(tmp_path / "update.json")
    assert any("write-tree" in argv for argv in commands)  # the trace saw copier's update
    assert not mention_source(commands)


def test_an_update_adding_a_stand_in_says_so_and_the_hub_is_refused_until_answered(evolving_template, tmp_path):
    """1.2.0 added the workload identity provider, whose default is a
    stand-in. `hub-template update` (piped, as in CI: 80 columns) names it
    under the hub with the answers added and the behaviour changes
    CHANGELOG.md marks for 1.2.0; check (ST006) and plan-deploy refuse the
    hub until it is answered, and plan-deploy never emits the stand-in."""
    from hub_cells import REAL_IDS

    from hub_template.update.release_notes import behaviour_changes
    from hub_template.update.sources import commit_version

    fed = federation(tmp_path / "federation", evolving_template)
    hub = make_hub(evolving_template, fed, "charlie", "v1.1.0", gcp_project=REAL_IDS["gcp_project"])
    assert "gcp_workload_identity_provider" not in answers(hub)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}

    done = subprocess.run(
        [str(BIN / "hub-template"), "update", str(fed / "deployments")], capture_output=True, text=True, env=env
    )

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), done.stdout
    assert re.search(r"(?m)^charlie  v1\.1\.0 -> v1\.2\.0  updated$", done.stdout), done.stdout
    text = " ".join(line.strip() for line in lines)
    stand_in = answers(hub)["gcp_workload_identity_provider"]
    assert stand_in == stand_ins()["gcp_workload_identity_provider"]
    assert "answers added: " in text and "gcp_workload_identity_provider" in text.split("answers added: ")[1]
    assert (
        "added with a stand-in: gcp_workload_identity_provider, not a real id; check (ST006) and plan-deploy "
        "refuse the hub until it is answered: cd deployments/charlie && copier update --trust --defaults "
        "--data gcp_workload_identity_provider=..."
    ) in text
    marked = behaviour_changes((ROOT / "CHANGELOG.md").read_text(), commit_version("v1.1.0"), commit_version("v1.2.0"))
    assert marked and all(release == "1.2.0" for release, _ in marked)
    for release, change in marked:
        assert f"behaviour change {release}: {change}" in text
    assert "Users' CPU and memory come from the sizes offered at login" in text
    commit(fed, "hub-template 1.2.0")

    check = hub_template("check", str(hub), "--select", "ST006", "--format", "json")
    assert (
        "`gcp_workload_identity_provider` is the stand-in" in check_report(check.stdout)["checks"]["ST006"]["err_msg"]
    )
    plan = hub_template("plan-deploy", "--before", "0" * 40, "--branch", "staging", cwd=fed)
    assert plan.returncode == 1 and plan.stdout == "", plan.stdout
    assert "gcp_workload_identity_provider" in plan.stderr and "(ST006)" in plan.stderr

    real = REAL_IDS["gcp_workload_identity_provider"]
    answered = copier_update(hub, "--data", f"gcp_workload_identity_provider={real}")
    assert answered.returncode == 0, answered.stderr
    commit(fed, "charlie: the real workload identity provider")
    assert check_report(hub_template("check", str(hub), "--select", "ST006", "--format", "json").stdout)["checks"][
        "ST006"
    ]["result"]
    plan = hub_template("plan-deploy", "--before", "0" * 40, "--branch", "staging", cwd=fed)
    assert plan.returncode == 0, plan.stderr
    (entry,) = json.loads(plan.stdout)["hubs"]
    assert entry["login"]["gcp_workload_identity_provider"] == real
