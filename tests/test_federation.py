"""`hub-template update DEPLOYMENTS_DIR`: a federation's hubs at different
versions, each case at once, through the installed command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import check_report, git, hub_template
from packaging.version import Version
from template_versions import (
    CULL_BLOCK,
    answers,
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
from test_migrations import RENAME_LOG, helm_problems

from hub_template.update import sources

HUB_TEMPLATE = [str(Path(sys.executable).with_name("hub-template"))]


def hub_template_rows(*args: str, trace: Path | None = None, **env: str) -> tuple[int, dict[str, list[str]], str]:
    """Run `hub-template ARGS`; return its exit status, its summary as
    {hub: [from, to, status, notes, template]} (the notes joined by spaces,
    the template the hub's own or else the federation's), and everything it
    printed."""
    env = {**os.environ, "COLUMNS": "250", **env}
    if trace:
        env["GIT_TRACE2_EVENT"] = str(trace)
    done = subprocess.run([*HUB_TEMPLATE, *args], capture_output=True, text=True, env=env)
    return done.returncode, summary_rows(done.stdout), done.stdout + done.stderr


def summary_rows(stdout: str) -> dict[str, list[str]]:
    """The summary's hubs: a line `HUB  FROM -> TO  STATUS`, then its notes,
    each on lines indented by two, continued by four."""
    rows: dict[str, list[str]] = {}
    header: list[str] = []
    last = None
    for line in stdout.splitlines():
        if line.startswith("diff of "):  # --diff's diffs follow the summary
            break
        head = re.fullmatch(r"(\S+)\s+(\S+) -> (\S+)  (\S.*)", line)
        if head:
            last = head[1]
            rows[last] = [head[2], head[3], head[4], "", ""]
        elif last is None:
            header.append(line.strip())
        elif line.startswith("  "):
            note = line.strip()
            if line.startswith("    "):  # a note continued
                rows[last][3] += " " + note
            elif note.startswith("template: "):
                rows[last][4] = note.removeprefix("template: ")
            else:
                rows[last][3] = f"{rows[last][3]} {note}".strip()
    federation_template = " ".join(header).partition("the federation's template: ")[2]
    for row in rows.values():
        row[4] = row[4] or federation_template
    return rows


def hub_snapshot(hub: Path) -> dict[str, bytes]:
    return snapshot(hub)


@pytest.fixture(scope="module")
def fed_run(evolving_template, tmp_path_factory):
    """Six hubs, every case the command must tell apart; then `--check`, then
    the update. Its template is served as a remote (file://…/hub-template.git),
    so copier goes through git's transport as it would for GitHub."""
    base = tmp_path_factory.mktemp("federation-run")
    remote = base / "remote" / "hub-template.git"
    url = bare_remote(evolving_template, remote)
    fork = publish_fork(evolving_template, base / "fork", base / "fork-sources")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COPIER_CACHE_DIR", str(base / "copier-cache"))
        fed = federation(base / "federation", url)
        (fed / ".gitignore").write_text("# decrypted secrets never go to git\n*.dec.yaml\n")
        hubs = {
            "alpha": make_hub(url, fed, "alpha", "v1.2.0"),  # current
            "bravo": make_hub(url, fed, "bravo", "v1.0.0", provider="aws"),  # updatable, crosses 1.1.0
            "charlie": make_hub(url, fed, "charlie", "v1.1.0"),  # conflicts
            "delta": make_hub(url, fed, "delta", "v1.1.0"),  # dirty
            "echo": make_hub(str(fork), fed, "echo", "v1.1.0"),  # its fork's 1.2.1 migration fails
            "foxtrot": make_hub(url, fed, "foxtrot", "v1.1.0"),  # its template is gone
        }
        kept = edit_like_a_user(hubs["bravo"])
        edit_like_a_user(hubs["echo"])
        clash_with_v1_2_0(hubs["charlie"])
        foxtrot_answers = hubs["foxtrot"] / ".copier-answers.yml"
        foxtrot_answers.write_text(foxtrot_answers.read_text().replace(url, (base / "moved.git").as_uri()))
        commit(fed, "The hubs' own edits")
        (hubs["echo"] / "secrets" / "staging.dec.yaml").write_text("client_secret: decrypted\n")
        edit_without_committing(hubs["delta"])

        before = {name: hub_snapshot(hub) for name, hub in hubs.items()}
        status_before = git(fed, "status", "--porcelain", "--ignored")
        deployments = str(fed / "deployments")
        # echo's fork and foxtrot's moved template are trusted by name.
        trust = ["--allow-template", str(fork), "--allow-template", (base / "moved.git").as_uri()]
        check = hub_template_rows("update", deployments, "--check", "--diff", *trust)
        after_check = snapshot(fed), git(fed, "status", "--porcelain", "--ignored"), git(fed, "worktree", "list")
        trace = base / "trace.json"
        update = hub_template_rows("update", deployments, *trust, trace=trace)

    return {
        "fed": fed,
        "hubs": hubs,
        "url": url,
        "remote": remote,
        "kept": kept,
        "before": before,
        "fed_before": (status_before,),
        "check": check,
        "after_check": after_check,
        "update": update,
        "trace": trace,
        "fork": fork,
    }


def test_check_reports_every_hub_and_changes_nothing(fed_run):
    code, rows, output = fed_run["check"]
    assert code == 1, output  # hubs are behind
    assert {hub: row[:3] for hub, row in rows.items()} == {
        "alpha": ["v1.2.0", "v1.2.0", "current"],
        "bravo": ["v1.0.0", "v1.2.0", "behind"],
        "charlie": ["v1.1.0", "v1.2.0", "behind"],
        "delta": ["v1.1.0", "v1.2.0", "skipped dirty"],  # as update skips it
        "echo": ["v1.1.0", "v1.2.1", "behind"],  # its own template's newest
        "foxtrot": ["v1.1.0", "?", "failed"],
    }
    assert "cannot read the template file://" in rows["foxtrot"][3]
    assert "config/prod.yaml" in rows["delta"][3] and "commit or stash" in rows["delta"][3]
    files, status, worktrees = fed_run["after_check"]
    assert status == fed_run["fed_before"][0]
    assert len(worktrees.splitlines()) == 1, worktrees  # --diff's scratch worktree is gone
    assert {
        name: {p: c for p, c in files.items() if p.startswith(f"deployments/{name}/")} for name in fed_run["hubs"]
    } == {name: {f"deployments/{name}/{p}": c for p, c in hub.items()} for name, hub in fed_run["before"].items()}


def diffs(output: str) -> dict[str, str]:
    """--diff's diffs, by hub: each follows a line `diff of HUB: ...`."""
    found: dict[str, str] = {}
    hub = None
    for line in output.splitlines(keepends=True):
        if line.startswith("diff of "):
            hub = line.split()[2].rstrip(":")
            found[hub] = ""
        elif hub:
            found[hub] += line
    return found


def test_check_diff_shows_what_each_update_would_change(fed_run):
    """--check --diff: a unified diff per hub behind, of what its update
    would write (the release's lines, migrations' and copier's conflicts
    included), with paths from the hub's folder; nothing for the others.
    The hubs stay byte for byte (test_check_reports_every_hub_and_changes_nothing)."""
    shown = diffs(fed_run["check"][2])
    assert set(shown) == {"bravo", "charlie", "echo"}, shown.keys()
    bravo = shown["bravo"]
    assert "diff --git a/config/common.yaml b/config/common.yaml" in bravo
    assert "+" + CULL_BLOCK.splitlines()[1] + "\n" in bravo  # the release's culler line
    assert "+  - dask-labextension>=7,<8\n" in bravo
    assert "-_commit: v1.0.0\n+_commit: v1.2.0\n" in bravo
    changed = [line for line in bravo.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert not [line for line in changed if "capacity: " in line]  # the hub's own edit is kept: no change
    charlie = shown["charlie"]
    assert (
        "+<<<<<<< before updating\n" in charlie and "+  - dask-labextension>=7,<8\n+>>>>>>> after updating\n" in charlie
    )
    assert "the update would fail:" in shown["echo"] and "cull.yaml" in shown["echo"]


def test_update_summarizes_each_hub_and_fails_for_conflicts_and_failures(fed_run):
    code, rows, output = fed_run["update"]
    assert code == 1, output
    assert {hub: row[:3] for hub, row in rows.items()} == {
        "alpha": ["v1.2.0", "v1.2.0", "current"],
        "bravo": ["v1.0.0", "v1.2.0", "updated"],
        "charlie": ["v1.1.0", "v1.2.0", "conflicts"],
        "delta": ["v1.1.0", "v1.1.0", "skipped dirty"],
        "echo": ["v1.1.0", "v1.1.0", "failed"],
        "foxtrot": ["v1.1.0", "v1.1.0", "failed"],
    }
    # 1.0.0's key stub was never filled: copier removes it, nothing is left unused.
    # Gateway hubs: the kubernetes backend's migration has nothing to do.
    keep_key = "migration 1.2.0 (keep_the_shared_git_crypt_key): nothing to change"
    hubploy = " migration 1.2.0 (hubploy_yaml_for_todays_hubploy): nothing to change"
    gateway = " migration 1.2.0 (dask_kubernetes_operator): nothing to change"
    # The four user CPU/memory answers 1.0.0 and 1.1.0 recorded are named as they are retired.
    sizes = (
        " migration 1.2.0 (sizes_hold_users_cpu_and_memory): answers user_cpu_guarantee 0.5, user_cpu_limit 2.0,"
        " user_memory_guarantee 2.0, user_memory_limit 8.0 retired: every size overrode them; users' CPU and"
        " memory are the sizes' (answer user_sizes, docs/cluster.md)"
    )
    # Then what the releases crossed bring: the answers added (a rename is
    # none), those still a stand-in, and the behaviour changes CHANGELOG.md marks.
    rename = "behaviour change 1.1.0: The answer `provider` is now `cloud_provider`"
    sizes_change = "behaviour change 1.2.0: Users' CPU and memory come from the sizes offered at login"
    bravo = rows["bravo"][3]
    assert bravo.startswith(RENAME_LOG + f" {keep_key}" + sizes + hubploy + gateway + " behaviour change"), bravo
    assert "answers added" not in bravo and bravo.index(rename) < bravo.index(sizes_change)
    charlie = rows["charlie"][3]
    assert charlie.startswith(
        keep_key + sizes + hubploy + gateway + " resolve the conflict markers in: image/binder/environment.yml"
        " answers added: gcp_workload_identity_provider added with a stand-in: gcp_workload_identity_provider,"
    ), charlie
    assert sizes_change in charlie and rename not in charlie  # 1.1.0 to 1.2.0 crosses 1.2.0 only
    assert "config/prod.yaml" in rows["delta"][3] and "commit or stash" in rows["delta"][3]
    assert "cull.yaml" in rows["echo"][3]  # the failing migration's error
    assert "1 current, 1 updated, 1 conflicts, 1 skipped dirty, 2 failed" in output


def test_check_after_the_update_says_what_the_next_update_would_do(fed_run):
    """The conflict the update left (unmerged in the index) is "conflicts"
    to --check and to update alike, never "current"; the dirty hub is
    "skipped dirty", never "behind"."""
    deployments = str(fed_run["fed"] / "deployments")
    trust = ["--allow-template", str(fed_run["fork"])]
    status = git(fed_run["fed"], "status", "--porcelain", "--ignored")
    code, checked, output = hub_template_rows("update", deployments, "--check", *trust)
    assert code == 1, output
    assert {hub: row[2] for hub, row in checked.items() if hub in ("charlie", "delta")} == {
        "charlie": "conflicts",
        "delta": "skipped dirty",
    }, output
    assert "resolve the conflict markers in: image/binder/environment.yml" in checked["charlie"][3]
    assert git(fed_run["fed"], "status", "--porcelain", "--ignored") == status


def test_the_updated_hub_keeps_its_edits_and_its_source(fed_run):
    hub = fed_run["hubs"]["bravo"]
    recorded = answers(hub)
    assert recorded["_commit"] == "v1.2.0"
    assert recorded["_src_path"] == fed_run["url"]  # the mirror never shows
    assert recorded["cloud_provider"] == "aws" and "provider" not in recorded
    for name, text in fed_run["kept"].items():
        assert text in (hub / name).read_text(), name
    assert CULL_BLOCK in (hub / "config" / "common.yaml").read_text()
    assert helm_problems(hub) == []


def test_the_conflicting_hub_is_left_to_resolve_as_copier_leaves_it(fed_run):
    fed, hub = fed_run["fed"], fed_run["hubs"]["charlie"]
    assert "<<<<<<< before updating" in (hub / "image" / "binder" / "environment.yml").read_text()
    # Recorded as a conflict in git, though later hubs were updated after it.
    assert git(fed, "diff", "--name-only", "--diff-filter=U") == "deployments/charlie/image/binder/environment.yml"
    assert answers(hub)["_commit"] == "v1.2.0"


@pytest.mark.parametrize("name", ["alpha", "delta", "echo", "foxtrot"])
def test_hubs_not_updated_are_byte_identical(fed_run, name):
    hub = fed_run["hubs"][name]
    assert hub_snapshot(hub) == fed_run["before"][name]
    if name != "delta":  # delta keeps its own uncommitted edit
        assert git(fed_run["fed"], "status", "--porcelain", "--", f"deployments/{name}") == ""


def test_a_failed_update_is_undone_but_ignored_files_stay(fed_run):
    fed, hub = fed_run["fed"], fed_run["hubs"]["echo"]
    assert not (hub / "docs").exists()  # what the failed update created is gone
    assert (hub / "secrets" / "staging.dec.yaml").read_text() == "client_secret: decrypted\n"
    assert git(fed, "status", "--porcelain", "--ignored", "--", "deployments/echo") == (
        "!! deployments/echo/secrets/staging.dec.yaml"
    )


def test_the_template_is_fetched_once(fed_run):
    """git's own trace: only one upload-pack ever served the template's real
    repository (the mirror's clone); copier's clones were served by the mirror."""
    served = []
    for line in fed_run["trace"].read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "start" and event["argv"][0] == "git-upload-pack":
            served.append(event["argv"][-1])
    assert served.count(str(fed_run["remote"])) == 1, served
    mirrored = [repo for repo in served if repo.endswith("template-1.git")]
    assert len(mirrored) >= 3, served  # at least one per clone of the updated hubs


def test_a_federation_updates_step_by_step(evolving_template, tmp_path):
    fed = federation(tmp_path / "federation", evolving_template)
    old = make_hub(evolving_template, fed, "alpha", "v1.0.0", provider="azure")
    make_hub(evolving_template, fed, "bravo", "v1.1.0")
    deployments = str(fed / "deployments")

    code, rows, output = hub_template_rows("update", deployments, "--vcs-ref", "v1.1.0")
    assert code == 0, output
    assert {hub: row[:3] for hub, row in rows.items()} == {
        "alpha": ["v1.0.0", "v1.1.0", "updated"],
        "bravo": ["v1.1.0", "v1.1.0", "current"],
    }
    assert answers(old)["cloud_provider"] == "azure"
    commit(fed, "hub-template 1.1.0")

    code, rows, output = hub_template_rows("update", deployments)
    assert code == 0, output
    assert [row[2] for row in rows.values()] == ["updated", "updated"]
    commit(fed, "hub-template 1.2.0")

    code, rows, output = hub_template_rows("update", deployments, "--check")
    assert code == 0, output
    assert {hub: row[:3] for hub, row in rows.items()} == {
        "alpha": ["v1.2.0", "v1.2.0", "current"],
        "bravo": ["v1.2.0", "v1.2.0", "current"],
    }

    # Updating a federation that is current changes nothing and never loads
    # copier (nor plumbum, the display): it is decided from the answers files.
    status = git(fed, "status", "--porcelain", "--ignored")
    script = (
        "import sys; from hub_template.cli import main; code = main(sys.argv[1:]); "
        "print('loaded:', sorted({'copier', 'plumbum', 'rich.progress'} & set(sys.modules))); sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", script, "update", deployments], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 current" in done.stdout and "loaded: []" in done.stdout, done.stdout
    assert git(fed, "status", "--porcelain", "--ignored") == status


def test_a_folder_without_hubs_is_explained(tmp_path):
    code, _, output = hub_template_rows("update", str(tmp_path / "nowhere"))
    assert code == 2 and "is not a folder" in output and "deployments/ folder" in output
    (tmp_path / "deployments" / "notes").mkdir(parents=True)
    code, _, output = hub_template_rows("update", str(tmp_path / "deployments"))
    assert code == 2 and "No hub in" in output and ".copier-answers.yml" in output


@pytest.mark.parametrize(
    "src",
    [
        "gh:pangeo/hub-template",
        "gh:/pangeo/hub-template.git",
        "gl:pangeo/hub-template",
        "https://github.com/pangeo/hub-template",
        "https://gitlab.com/pangeo/hub-template.git",
        "git+https://example.org/pangeo/hub-template",
        "git@github.com:pangeo/hub-template.git",
        "file:///srv/git/hub-template.git",
    ],
)
def test_the_mirror_answers_the_url_copier_gives_git(src):
    """The insteadOf rules match only the very URL copier passes to git."""
    from copier._vcs import get_repo  # copier's own expansion, to keep ours in step

    assert sources.git_url(src) == get_repo(src)
    assert sources.git_url(src) in [url for _, url in sources.TemplateSource(src, mirror=Path("/m.git")).rewrites()]


@pytest.mark.parametrize(
    ("commit", "version"),
    [
        ("v1.2.0", "1.2.0"),
        ("1.2.0", "1.2.0"),
        ("v1.2.0-3-gabc1234", "1.2.0.post3+gabc1234"),
        ("abc1234", None),
        ("4104802", None),  # a bare commit of digits only is still a commit, not version 4104802
        (None, None),
    ],
)
def test_a_hubs_commit_reads_as_copier_reads_it(commit, version):
    assert sources.commit_version(commit) == (Version(version) if version else None)


def test_a_hub_committed_after_a_release_is_not_behind_it():
    assert sources.commit_version("v1.2.0-3-gabc1234") > sources.commit_version("v1.2.0")


def test_check_names_the_conflict_markers_an_update_left_once(fed_run):
    """charlie's conflict: ST003 says what it is (not "not valid YAML"), and
    no other check fails on the same file (IM001's repo2docker skips)."""
    done = hub_template("check", str(fed_run["hubs"]["charlie"]), "--format", "json")
    checks = check_report(done.stdout)["checks"]
    failed = {name: check["err_msg"] for name, check in checks.items() if check["result"] is False}
    assert "`image/binder/environment.yml:" in failed["ST003"], failed
    assert "holds the conflict markers an update left" in failed["ST003"] and "not valid YAML" not in failed["ST003"]
    assert [name for name, message in failed.items() if "environment.yml" in message] == ["ST003"], failed
    assert checks["IM001"]["skip_reason"] == "image/binder/environment.yml holds conflict markers (ST003)"


def test_a_changed_federation_answer_reaches_every_hub_with_one_data(evolving_template, tmp_path):
    """`hub-template update --data NAME=VALUE` answers NAME in every hub, at
    the release it is at; a value the release refuses leaves every hub as it was."""
    fed = federation(tmp_path / "federation", evolving_template)
    hubs = [make_hub(evolving_template, fed, name, "v1.2.0") for name in ("alpha", "bravo")]
    deployments = str(fed / "deployments")
    before = {hub.name: hub_snapshot(hub) for hub in hubs}

    code, rows, output = hub_template_rows("update", deployments, "--data", "contact_email=not-an-email")
    assert code == 1, output
    for name in ("alpha", "bravo"):
        assert rows[name][2] == "failed", output
        assert "not an email" in rows[name][3] and "the hub is restored as it was" in rows[name][3], output
    assert {hub.name: hub_snapshot(hub) for hub in hubs} == before

    code, rows, output = hub_template_rows("update", deployments, "--check", "--data", "contact_email=ops@uni.edu")
    assert code == 1, output
    assert {hub: (row[2], row[3]) for hub, row in rows.items()} == {
        "alpha": ("behind", "--data changes contact_email"),
        "bravo": ("behind", "--data changes contact_email"),
    }
    assert {hub.name: hub_snapshot(hub) for hub in hubs} == before

    code, rows, output = hub_template_rows("update", deployments, "--data", "contact_email=ops@uni.edu")
    assert code == 0, output
    assert [row[2] for row in rows.values()] == ["updated", "updated"], output
    for hub in hubs:
        assert answers(hub)["contact_email"] == "ops@uni.edu"
        assert "contactEmail: ops@uni.edu" in (hub / "config" / "prod.yaml").read_text()
    commit(fed, "The operators' address")

    code, rows, output = hub_template_rows("update", deployments, "--data", "contact_email=ops@uni.edu")
    assert code == 0 and [row[2] for row in rows.values()] == ["current", "current"], output

    done = subprocess.run(
        [*HUB_TEMPLATE, "update", deployments, "--data", "contact_email"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "--data 'contact_email': give NAME=VALUE, e.g. --data gcp_region=us-central1"
