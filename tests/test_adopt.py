"""`hub-template adopt`: hand-made hubs (tests/handmade_hubs.py) come under
the template with no file changed but the answers file, and a later release
reaches them through copier's own update, keeping every setting of theirs."""

from __future__ import annotations

import pytest
from conftest import BIN, git, hub_template, publish_template, render
from handmade_hubs import LAYOUTS
from template_versions import answers, commit, federation, snapshot, v1_2_0_source

ANSWERS = ".copier-answers.yml"
# v1.3.0 of the test's template: a maintainer adds a page to every hub.
NEW_PAGE = "template/docs/culling.md.jinja"
NEW_PAGE_TEXT = "# How {{ hub_name }} at {{ domain }} stops idle servers\n"


@pytest.fixture
def template(evolving_template, tmp_path):
    """A clone of the evolving template (v1.0.0 to v1.2.0) this test may
    release v1.3.0 into."""
    clone = tmp_path / "hub-template"
    git(tmp_path, "clone", "-q", str(evolving_template), clone.name)  # tags included
    return clone


def release_v1_3_0(template, scratch):
    source = v1_2_0_source(scratch / "v1.3.0")
    (source / NEW_PAGE).parent.mkdir(parents=True, exist_ok=True)
    (source / NEW_PAGE).write_text(NEW_PAGE_TEXT)
    publish_template(template, "v1.3.0", source=source)


def adopt(hub, *args):
    return hub_template("adopt", str(hub), "--defaults", *args)


# What the operator accepts besides the answers file, per layout: the ocean
# hub takes the template's README (it has none), which names the release.
TAKEN = {"ocean": ["README.md"]}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_adoption_round_trips(template, tmp_path, layout):
    fed = federation(tmp_path / "federation", template)
    hub, data = LAYOUTS[layout](fed)
    before = snapshot(hub)
    taken = TAKEN.get(layout, [])

    done = adopt(hub, *(f"--data={name}={value}" for name, value in data.items()), *(f"--take={t}" for t in taken))

    assert done.returncode == 0, done.stdout + done.stderr
    # Nothing changed but the answers file (and what was taken), at the
    # newest release, of the federation's template.
    after = snapshot(hub)
    assert {name: after[name] for name in before} == before
    assert set(after) - set(before) == {ANSWERS, *taken}
    recorded = answers(hub)
    assert recorded["_commit"] == "v1.2.0" and recorded["_src_path"] == str(template)
    assert recorded["hub_name"] == layout
    if layout == "ocean":  # homes on NFS, its PersistentVolume in shared-nfs-prod.yaml beside the values
        assert (recorded["home_storage"], recorded["nfs_server"], recorded["nfs_path"]) == ("nfs", "10.0.0.2", "/homes")
        assert "homes on NFS at subPath 'home/{username}', kept as the hub's own" in done.stdout
    else:
        assert recorded["home_storage"] == "volume"
    assert "kept as the hub's own" in done.stdout
    commit(fed, f"Adopt {layout}")

    release_v1_3_0(template, tmp_path)
    update = hub_template("update", str(fed / "deployments"), "--jobs", "1")

    assert update.returncode == 0, update.stdout + update.stderr
    assert "1 updated" in update.stdout
    # The release's change arrived, rendered with the hub's inferred answers...
    page = (hub / "docs" / "culling.md").read_text()
    assert page == f"# How {layout} at {recorded['domain']} stops idle servers\n"
    assert answers(hub)["_commit"] == "v1.3.0"
    for name in taken:
        assert "hub-template v1.3.0" in (hub / name).read_text()
    # ...and every file of the hub is as it was: its settings intact, no conflict.
    now = snapshot(hub)
    assert {name: now[name] for name in before} == before
    assert set(now) - set(before) == {ANSWERS, "docs/culling.md", *taken}


def test_adopt_refuses_in_one_line_and_changes_nothing(template, tmp_path):
    fed = federation(tmp_path / "federation", template)
    atmos, _ = LAYOUTS["atmos"](fed)
    ocean, _ = LAYOUTS["ocean"](fed)
    ice, _ = LAYOUTS["ice"](fed)
    (ice / ANSWERS).write_text("_commit: v1.2.0\n_src_path: gh:pangeo/hub-template\n")
    (fed / "deployments" / "notes").mkdir()
    (fed / "deployments" / "notes" / "README.md").write_text("# notes\n")
    # The hub's hubploy.yaml is a link out of the repository: never read.
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text("cluster:\n  provider: gcloud\n  gcloud: {project: not-ours}\n")
    (ocean / "hubploy.yaml").unlink()
    (ocean / "hubploy.yaml").symlink_to(outside)
    commit(fed, "an adopted hub, a folder of notes, a linked hubploy.yaml")
    before = snapshot(fed)
    (atmos / "config" / "prod.yaml").write_text("# half-done\n")  # atmos is dirty now

    cases = {
        ice: "already under the template; run `hub-template update` instead",
        fed / "deployments" / "notes": "not a hub (no hubploy.yaml, no config/common.yaml)",
        atmos: "uncommitted changes (deployments/atmos/config/prod.yaml); commit or stash them",
    }
    for folder, reason in cases.items():
        done = adopt(folder)
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1 and reason in done.stderr, done.stderr
    # Non-interactive, what the files do not say is listed, one line each.
    done = adopt(ocean)
    assert done.returncode == 2
    missing = [line.rsplit(" ", 1)[-1] for line in done.stderr.splitlines()]
    assert missing == [f"--data={name}=VALUE" for name in ("cloud_provider", "image_name")], done.stderr
    assert "not-ours" not in done.stdout
    git(fed, "checkout", "--", "deployments/atmos")
    assert snapshot(fed) == before


def test_a_release_changing_a_file_the_hub_wrote_is_a_reported_conflict(template, tmp_path):
    """v1.2.0 adds lines to config/common.yaml, which the hand-made hub wrote
    whole: copier's replay cannot place them, so the update stops at conflict
    markers (as for any clashing edit), says so, and keeps the hub's lines."""
    fed = federation(tmp_path / "federation", template)
    hub, _ = LAYOUTS["ice"](fed)
    mine = (hub / "config" / "common.yaml").read_text()
    assert adopt(hub, "--vcs-ref", "v1.1.0").returncode == 0
    commit(fed, "Adopt ice at v1.1.0")

    update = hub_template("update", str(fed / "deployments"), "--jobs", "1")

    assert update.returncode == 1, update.stdout + update.stderr
    assert "1 conflicts" in update.stdout and "config/common.yaml" in update.stdout
    merged = (hub / "config" / "common.yaml").read_text()
    ours = merged.split("<<<<<<< before updating\n", 1)[1].split("=======\n", 1)[0]
    assert all(line in merged for line in mine.splitlines())
    assert "networkPolicy" in ours


def test_adopt_asks_on_a_terminal_for_what_the_files_do_not_say(template, tmp_path):
    import pexpect

    fed = federation(tmp_path / "federation", template)
    hub, _ = LAYOUTS["atmos"](fed)  # an Auth0 hub that let in anyone: no groups or domains in its files
    session = pexpect.spawn(str(BIN / "hub-template"), ["adopt", str(hub)], encoding="utf-8", timeout=120)
    session.expect_exact("oidc_allowed_domains? ")
    session.sendline("atmos-lab.org")
    session.expect(pexpect.EOF)
    session.close()

    assert session.exitstatus == 0, session.before
    # Its Auth0 login, as the login questions take it (the issuer from its token URL).
    recorded = answers(hub)
    assert recorded["login"] == "oidc"
    assert recorded["oidc_issuer"] == "https://atmos.auth0.com"
    assert recorded["oidc_token_url"] == "https://atmos.auth0.com/oauth/token"
    assert recorded["oidc_userdata_url"] == "https://atmos.auth0.com/userinfo"
    assert recorded["oidc_authorize_url"] == "https://atmos.auth0.com/authorize"  # the issuer's convention
    assert recorded["oidc_username_claim"] == "email"
    assert recorded["oidc_allowed_domains"] == "atmos-lab.org"
    assert "github_orgs" not in recorded or recorded["github_orgs"] == ["pangeo-data"]
    assert answers(hub)["aws_cluster"] == "pangeo-atmos"


def test_a_hubs_image_profiles_become_its_image_answers(template_repo, tmp_path):
    """Both ways hand-made hubs offered images at login (a profile per image,
    a profile's image choices with a typed one) map onto user_images and
    other_image; adopted with this checkout's template, whose render then
    offers the same images (less the untagged one, which adopt names)."""
    import yaml
    from handmade_hubs import glacier

    fed = federation(tmp_path / "federation", template_repo)
    hub, _ = glacier(fed)
    done = adopt(hub)

    assert done.returncode == 0, done.stdout + done.stderr
    recorded = answers(hub)
    assert recorded["user_images"] == [
        "hub",
        {"name": "ml", "image": "pangeo/ml-notebook:2021.05.04"},
        "pangeo-notebook",
    ]
    assert recorded["other_image"] is True
    assert "config/common.yaml: profileList offers rocker/binder:latest with no version tag" in done.stdout
    rendered = render(
        template_repo,
        tmp_path / "rendered" / "glacier",
        **{k: v for k, v in recorded.items() if not k.startswith("_")},
    )
    profiles = yaml.safe_load((rendered / "config" / "common.yaml").read_text())["daskhub"]["jupyterhub"]["singleuser"][
        "profileList"
    ]
    offered = {
        choice["kubespawner_override"].get("image")
        for profile in profiles
        for choice in profile["profile_options"]["image"]["choices"].values()
    }
    assert offered == {None, "pangeo/ml-notebook:2021.05.04", "pangeo/pangeo-notebook:2026.04.29"}
    assert all(p["profile_options"]["image"]["unlisted_choice"]["enabled"] for p in profiles)
