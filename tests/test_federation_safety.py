"""`hub-template update` on a federation, the hard cases: hubs updated in
parallel leave exactly what one at a time leaves; a SIGTERM stops it as
Ctrl-C does; a hub naming another template is refused; an untagged template
updates, and `--check` agrees with `update` on every hub."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import git
from template_versions import (
    bare_remote,
    clash_with_v1_2_0,
    commit,
    edit_like_a_user,
    edit_without_committing,
    federation,
    make_hub,
    publish_fork,
    snapshot,
)
from test_federation import HUB_TEMPLATE, hub_template_rows


def git_state(fed: Path) -> tuple[str, str, str]:
    """The index (stages included), the status and how many worktrees."""
    return (
        git(fed, "ls-files", "-s"),
        git(fed, "status", "--porcelain", "--ignored"),
        str(git(fed, "worktree", "list").count("\n") + 1),
    )


@pytest.fixture
def mixed_federation(evolving_template, tmp_path, monkeypatch):
    """Hubs that update, one that conflicts, a dirty one, and one whose
    template's migration fails, with a decrypted secret git ignores."""
    monkeypatch.setenv("COPIER_CACHE_DIR", str(tmp_path / "copier-cache"))
    url = bare_remote(evolving_template, tmp_path / "remote.git")
    fork = publish_fork(evolving_template, tmp_path / "fork", tmp_path / "fork-sources")
    fed = federation(tmp_path / "federation", url)
    (fed / ".gitignore").write_text("*.dec.yaml\n")
    hubs = {
        name: make_hub(url, fed, name, tag)
        for name, tag in [
            ("alpha", "v1.1.0"),
            ("bravo", "v1.1.0"),
            ("charlie", "v1.1.0"),
            ("delta", "v1.1.0"),
            ("foxtrot", "v1.0.0"),
            ("golf", "v1.2.0"),
        ]
    }
    hubs["echo"] = make_hub(str(fork), fed, "echo", "v1.1.0")
    edit_like_a_user(hubs["alpha"])
    edit_like_a_user(hubs["echo"])
    clash_with_v1_2_0(hubs["charlie"])
    commit(fed, "the hubs' own edits")
    for hub in hubs.values():
        (hub / "secrets" / "staging.dec.yaml").write_text("client_secret: decrypted\n")
    edit_without_committing(hubs["delta"])
    return fed, hubs, ["--allow-template", str(fork)]


def test_parallel_and_sequential_updates_leave_the_same_bytes_and_git_state(mixed_federation, tmp_path):
    fed, hubs, trust = mixed_federation
    # bravo's operators filled their 1.1.0 cloud key; the others kept the stub.
    key = "secrets/gcloud-service-key.json"
    (hubs["bravo"] / key).write_text('{"type": "service_account", "private_key": "a real one"}\n')
    git(fed, "commit", "-q", "-m", "bravo's real key", "--", f"deployments/bravo/{key}")
    (hubs["delta"] / "image" / "welcome.ipynb").unlink()  # a deletion the dirty hub has not committed
    before = snapshot(fed / "deployments")
    runs = {}
    for jobs in ("1", "2"):
        copy = tmp_path / f"jobs-{jobs}"
        shutil.copytree(fed, copy, symlinks=True)
        code, rows, _output = hub_template_rows("update", str(copy / "deployments"), "--jobs", jobs, *trust)
        runs[jobs] = code, {hub: row[:3] for hub, row in rows.items()}, snapshot(copy / "deployments"), git_state(copy)
    sequential, parallel = runs["1"], runs["2"]
    assert sequential[1] == {
        "alpha": ["v1.1.0", "v1.2.0", "updated"],
        "bravo": ["v1.1.0", "v1.2.0", "updated"],
        "charlie": ["v1.1.0", "v1.2.0", "conflicts"],
        "delta": ["v1.1.0", "v1.1.0", "skipped dirty"],
        "echo": ["v1.1.0", "v1.1.0", "failed"],
        "foxtrot": ["v1.0.0", "v1.2.0", "updated"],
        "golf": ["v1.2.0", "v1.2.0", "current"],
    }
    assert parallel[:2] == sequential[:2]
    assert parallel[2] == sequential[2]  # every byte of every hub, ignored files and conflict markers included
    assert parallel[3] == sequential[3]  # the index with the conflict's stages, the status, no worktree left
    assert "UU deployments/charlie/image/binder/environment.yml" in parallel[3][1].splitlines()
    # As `copier update` of each hub alone: the 1.2.0 migration keeps the real
    # key for its owners to revoke, the stubs go (deleted, not staged), and no
    # hub's update brings back what an earlier one removed, or what a user
    # deleted in a skipped hub.
    assert parallel[2][f"bravo/{key}"] == before[f"bravo/{key}"]
    deleted = {line[3:] for line in parallel[3][1].splitlines() if line.startswith(" D ")}
    assert deleted == {f"deployments/{name}/{key}" for name in ("alpha", "charlie", "foxtrot")} | {
        "deployments/delta/image/welcome.ipynb"
    }
    # The failing hub is as it was, byte for byte; so are the dirty and the current one.
    for name in ("delta", "echo", "golf"):
        prefix = f"{name}/"
        assert {p: c for p, c in parallel[2].items() if p.startswith(prefix)} == {
            p: c for p, c in before.items() if p.startswith(prefix)
        }


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigterm_stops_the_update_as_ctrl_c_does(evolving_template, tmp_path, monkeypatch, jobs):
    """The conflict left by the first hub stays recorded (UU); the hub being
    updated is restored; no worktree is left behind."""
    monkeypatch.setenv("COPIER_CACHE_DIR", str(tmp_path / "copier-cache"))
    fed = federation(tmp_path / "federation", evolving_template)
    hubs = {name: make_hub(evolving_template, fed, name, "v1.1.0") for name in ("alpha", "bravo", "charlie", "delta")}
    clash_with_v1_2_0(hubs["alpha"])
    commit(fed, "alpha's own pin")
    before = {name: snapshot(hub) for name, hub in hubs.items()}

    process = subprocess.Popen(
        [*HUB_TEMPLATE, "update", str(fed / "deployments"), "--jobs", jobs],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.startswith("alpha: conflicts"):
            process.send_signal(signal.SIGTERM)
            break
    _out, err = process.communicate(timeout=300)
    assert process.returncode == 130, "".join(seen) + err
    assert "Interrupted." in err and "Traceback" not in err
    assert (
        "UU deployments/alpha/image/binder/environment.yml"
        in git(fed, "status", "--porcelain", "--", "deployments/alpha").splitlines()
    )
    assert git(fed, "worktree", "list").count("\n") == 0  # only the checkout itself
    for name in ("bravo", "charlie", "delta"):
        path = f"deployments/{name}"
        if jobs == "1" or snapshot(hubs[name]) == before[name]:
            assert snapshot(hubs[name]) == before[name], name  # restored, or never started
            assert git(fed, "status", "--porcelain", "--", path) == ""
        else:  # finished before the signal: kept, whole
            assert "_commit: v1.2.0" in (hubs[name] / ".copier-answers.yml").read_text()


def test_a_hub_naming_another_template_is_refused(evolving_template, tmp_path, monkeypatch):
    """Its template's tasks would run with --trust: never unless named. The
    federation pins its template (copier-settings.yml's `trust:`, or
    --template); what most hubs record counts for nothing, so a federation
    of one hostile hub, or of hostile hubs only, runs no task either."""
    monkeypatch.setenv("COPIER_CACHE_DIR", str(tmp_path / "copier-cache"))
    hostile = publish_fork(evolving_template, tmp_path / "hostile", tmp_path / "hostile-sources")
    canary = tmp_path / "canary"
    # A template whose update task would touch a file outside the hub.
    tasks = hostile / "copier.yml"
    tasks.write_text(tasks.read_text() + f'\n_migrations:\n  - command: ["touch", "{canary}"]\n')
    commit(hostile, "hostile task")
    git(hostile, "tag", "v9.0.0")

    def mallory_in(fed: Path) -> Path:
        mallory = make_hub(evolving_template, fed, "mallory", "v1.1.0")
        answers = mallory / ".copier-answers.yml"
        answers.write_text(answers.read_text().replace(str(evolving_template), str(hostile)))
        commit(fed, "mallory points at another template")
        return mallory

    fed = federation(tmp_path / "federation", evolving_template)
    for name in ("alpha", "bravo"):
        make_hub(evolving_template, fed, name, "v1.2.0")
    mallory = mallory_in(fed)
    before = snapshot(mallory)
    for check in ([], ["--check"]):
        code, rows, output = hub_template_rows("update", str(fed / "deployments"), *check)
        assert code == 1, output
        assert rows["mallory"][2] == "refused", output
        assert f"its template {hostile} is not the federation's ({evolving_template})" in rows["mallory"][3]
        assert rows["mallory"][4] == str(hostile) and rows["alpha"][4] == str(evolving_template)
        assert not canary.exists() and snapshot(mallory) == before

    # A federation of mallory alone: the template most hubs record is hers.
    alone = federation(tmp_path / "alone", evolving_template)
    before = snapshot(mallory_in(alone))
    code, rows, output = hub_template_rows("update", str(alone / "deployments"))
    assert code == 1 and rows["mallory"][2] == "refused", output
    assert not canary.exists() and snapshot(alone / "deployments" / "mallory") == before
    # Unpinned, nothing runs: the command says how to pin.
    (alone / "copier-settings.yml").unlink()
    code, rows, output = hub_template_rows("update", str(alone / "deployments"))
    assert code == 2 and not rows and "the federation pins no template" in output and "--template" in output
    assert not canary.exists() and snapshot(alone / "deployments" / "mallory") == before

    code, rows, output = hub_template_rows("update", str(fed / "deployments"), "--template", str(hostile))
    assert code == 1 and rows["alpha"][2] == "refused" and rows["mallory"][2] != "refused", output
    assert canary.exists()  # named, so trusted: its task ran
    code, rows, output = hub_template_rows(
        "update",
        str(fed / "deployments"),
        "--check",
        "--allow-template",
        str(tmp_path / "elsewhere"),
        "--template",
        str(evolving_template),
    )
    assert rows["mallory"][2] == "refused", output


def agree(check_rows: dict, update_rows: dict) -> dict[str, tuple[str, str]]:
    return {hub: (check_rows[hub][2], update_rows[hub][2]) for hub in check_rows}


def test_an_untagged_template_updates_and_check_agrees_with_update(evolving_template, tmp_path, monkeypatch):
    monkeypatch.setenv("COPIER_CACHE_DIR", str(tmp_path / "copier-cache"))
    untagged = tmp_path / "untagged"
    git(tmp_path, "clone", "-q", str(evolving_template), str(untagged))
    for tag in git(untagged, "tag").split():
        git(untagged, "tag", "-d", tag)
    v1_1, v1_2 = git(untagged, "rev-list", "--reverse", "HEAD").split()[1:]
    fed = federation(tmp_path / "federation", untagged)
    make_hub(untagged, fed, "mid", v1_1)
    make_hub(untagged, fed, "new", v1_2)
    deployments = str(fed / "deployments")

    _, checked, output = hub_template_rows("update", deployments, "--check")
    assert "hub-template update --check" in output  # its own title
    assert {hub: row[:3] for hub, row in checked.items()} == {
        "mid": [v1_1[:7], v1_2[:7], "behind"],
        "new": [v1_2[:7], v1_2[:7], "current"],
    }, output
    code, updated, output = hub_template_rows("update", deployments)
    assert code == 0, output
    assert agree(checked, updated) == {"mid": ("behind", "updated"), "new": ("current", "current")}
    commit(fed, "hub-template at its last commit")
    code, checked, output = hub_template_rows("update", deployments, "--check")
    assert code == 0 and [row[2] for row in checked.values()] == ["current", "current"], output

    # The template is tagged later: hubs recorded at a bare commit still compare.
    git(untagged, "tag", "v1.2.0", v1_2)
    make_hub(untagged, fed, "old", v1_1)
    _, checked, output = hub_template_rows("update", deployments, "--check")
    assert {hub: row[2] for hub, row in checked.items()} == {"mid": "current", "new": "current", "old": "behind"}, (
        output
    )
    code, updated, output = hub_template_rows("update", deployments)
    assert code == 0, output
    assert agree(checked, updated) == {
        "mid": ("current", "current"),
        "new": ("current", "current"),
        "old": ("behind", "updated"),
    }


def test_a_rendered_federation_pins_the_template_it_was_made_from(evolving_template, tmp_path, monkeypatch):
    """copier-settings.yml names the federation's template in copier's own
    `trust:` list, so `hub-template update` needs no --template there."""
    import yaml
    from copier import run_copy

    monkeypatch.setenv("COPIER_CACHE_DIR", str(tmp_path / "copier-cache"))
    fed = tmp_path / "pangeo-hubs"
    run_copy(
        str(evolving_template),
        str(fed),
        data={"kind": "federation"},
        vcs_ref="v1.2.0",
        defaults=True,
        unsafe=True,
        quiet=True,
    )
    assert yaml.safe_load((fed / "copier-settings.yml").read_text())["trust"] == [str(evolving_template)]
    git(fed, "init", "-q")
    commit(fed, "federation")
    make_hub(evolving_template, fed, "alpha", "v1.1.0")
    code, rows, output = hub_template_rows("update", str(fed / "deployments"))
    assert code == 0 and rows["alpha"][:3] == ["v1.1.0", "v1.2.0", "updated"], output
    assert f"the federation's template: {evolving_template}" in " ".join(output.split())


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_an_answer_the_new_release_refuses_stops_the_update_of_its_hub(evolving_template, tmp_path, monkeypatch, jobs):
    """1.1.0 took `pip_packages: s3fs~=2024, pystac-client`; 1.2.0's grammar
    refuses it and copier, with --defaults, recorded null and dropped the
    `- pip:` block. The update stops for that hub: the answer, the rule and
    the --data command that fixes it; the hub untouched; the others update."""
    monkeypatch.setenv("COPIER_CACHE_DIR", str(tmp_path / "copier-cache"))
    fed = federation(tmp_path / "federation", evolving_template)
    kept = make_hub(evolving_template, fed, "alpha", "v1.1.0", pip_packages="s3fs~=2024, pystac-client")
    assert "s3fs~=2024" in (kept / "image" / "binder" / "environment.yml").read_text()
    other = make_hub(evolving_template, fed, "bravo", "v1.1.0")
    before = snapshot(kept)
    code, rows, output = hub_template_rows("update", str(fed / "deployments"), "--jobs", jobs)
    assert code == 1, output
    assert rows["alpha"][2] == "failed" and rows["bravo"][2] == "updated", output
    notes = rows["alpha"][3]
    assert "answer pip_packages: 's3fs~=2024, pystac-client' is refused by v1.2.0:" in notes, notes
    rule = notes.split("refused by v1.2.0:", 1)[1]
    assert "'s3fs~=" in rule and "not a pip requirement" in rule, notes  # the release's own validator message
    assert "cd deployments/alpha && copier update --trust --defaults --data 'pip_packages=NEW ANSWER'" in notes
    assert snapshot(kept) == before and git(fed, "status", "--porcelain", "--", "deployments/alpha") == ""
    assert "_commit: v1.2.0" in (other / ".copier-answers.yml").read_text()
