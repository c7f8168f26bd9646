"""Migrations: the registry picks what an update crosses, and real updates
across real tags run each migration exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jinja2
import jsonschema
import pytest
import yaml
from conftest import ROOT, chart_data
from copier import run_copy, run_update
from packaging.version import Version
from template_versions import ANSWERS, answers, commit, edit_like_a_user, federation, make_hub

from hub_template import migrations
from hub_template.copier_settings import settings
from hub_template.helm_values import Chart, ValuesFile, check_values

RENAME_LOG = "migration 1.1.0 (rename_provider_to_cloud_provider): answer 'provider' is now 'cloud_provider'"


# --- the registry --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version_from", "version_to", "expected"),
    [
        ("1.0.0", "1.1.0", ["rename_provider_to_cloud_provider"]),
        (
            "1.0.0",
            "1.2.0",
            ["rename_provider_to_cloud_provider", "keep_the_shared_git_crypt_key", "sizes_hold_users_cpu_and_memory"],
        ),
        ("1.0.0", "1.0.0.post3+gabc1234", []),  # a commit after v1.0.0 is still 1.0.0's answers
        ("1.1.0", "1.2.0", ["keep_the_shared_git_crypt_key", "sizes_hold_users_cpu_and_memory"]),
        ("1.1.0", "1.1.0", []),  # `copier update --data` at the same version
    ],
)
def test_an_update_runs_the_migrations_it_crosses(version_from, version_to, expected):
    pending = migrations.pending(Version(version_from), Version(version_to), "before")
    assert [m.name for m in pending] == expected
    after = migrations.pending(Version(version_from), Version(version_to), "after")
    crosses_1_2_0 = Version(version_from) < Version("1.2.0") <= Version(version_to)
    assert [m.name for m in after] == (
        ["hubploy_yaml_for_todays_hubploy", "dask_kubernetes_operator"] if crosses_1_2_0 else []
    )


def test_migrations_run_in_version_order_and_once_each(monkeypatch, tmp_path):
    ran = []
    registry: list[migrations.Migration] = []
    monkeypatch.setattr(migrations, "MIGRATIONS", registry)

    # Registered out of order, as modules grow.
    @migrations.migration("2.0.0")
    def second(hub):
        ran.append("2.0.0")
        return "moved"

    @migrations.migration("1.5.0")
    def first(hub):
        ran.append("1.5.0")

    @migrations.migration("1.5.0", stage="after")
    def after(hub):
        ran.append("1.5.0 after")

    assert migrations.run(tmp_path, Version("1.0.0"), Version("2.0.0"), "before") == [
        "migration 1.5.0 (first): nothing to change",
        "migration 2.0.0 (second): moved",
    ]
    assert ran == ["1.5.0", "2.0.0"]
    assert migrations.run(tmp_path, Version("1.5.0"), Version("2.0.0"), "after") == []
    assert migrations.run(tmp_path, Version("1.4.0"), Version("1.5.0"), "after") == [
        "migration 1.5.0 (after): nothing to change"
    ]


ANSWERS_V1_0_0 = """\
# Answers hub-template was rendered with.
_commit: v1.0.0
_src_path: gh:pangeo/hub-template
aws_region: us-west-2
hub_name: bravo
provider: aws
scratch_bucket: bravo-scratch
"""


def test_rename_answer_changes_only_that_answer(tmp_path):
    answers_file = tmp_path / migrations.ANSWERS_FILE
    answers_file.write_text(ANSWERS_V1_0_0)
    assert migrations.rename_answer(tmp_path, "provider", "cloud_provider") == (
        "answer 'provider' is now 'cloud_provider'"
    )
    assert answers_file.read_text() == ANSWERS_V1_0_0.replace("\nprovider: aws", "\ncloud_provider: aws")
    # Run again (or on a hub already migrated): nothing to do, nothing changes.
    assert migrations.rename_answer(tmp_path, "provider", "cloud_provider") is None
    assert yaml.safe_load(answers_file.read_text())["cloud_provider"] == "aws"


def test_rename_answer_leaves_a_hub_without_that_answer(tmp_path):
    answers_file = tmp_path / migrations.ANSWERS_FILE
    text = ANSWERS_V1_0_0.replace("provider: aws\n", "")
    answers_file.write_text(text)
    assert migrations.rename_answer(tmp_path, "provider", "cloud_provider") is None
    assert answers_file.read_text() == text


def run_migrate(cwd, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STAGE", "VERSION_"))}
    return subprocess.run(
        [sys.executable, str(ROOT / "hooks" / "run.py"), "migrate"],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
    )


def test_migrate_outside_copier_says_how_to_run_it(tmp_path):
    (tmp_path / migrations.ANSWERS_FILE).write_text(ANSWERS_V1_0_0)
    done = run_migrate(tmp_path, STAGE="before")
    assert done.returncode == 2
    assert "run it through `copier update`" in done.stderr
    done = run_migrate(tmp_path, STAGE="during", VERSION_PEP440_FROM="1.0.0", VERSION_PEP440_TO="1.1.0")
    assert done.returncode == 2
    assert "unknown stage 'during'" in done.stderr
    versions = {"VERSION_PEP440_FROM": "1.0.0", "VERSION_PEP440_TO": "1.1.0", "VERSION_PEP440_CURRENT": "1.1.0"}
    done = run_migrate(tmp_path, STAGE="after", **versions)  # 1.1.0 has "before" migrations only
    assert done.returncode == 2
    assert "copier.yml lists 'after' migrations for 1.1.0, which migrations.py does not register" in done.stderr
    assert (tmp_path / migrations.ANSWERS_FILE).read_text() == ANSWERS_V1_0_0


def test_copier_yml_lists_each_version_and_stage_that_has_migrations():
    """copier starts `migrate` only for the (version, stage) pairs of copier.yml's
    _migrations, in their order: they must be those migrations.py registers."""
    entries = settings()["_migrations"]
    listed = {
        (Version(entry["version"]), stage)
        for entry in entries
        for stage in ("before", "after")
        if jinja2.Template(entry["when"]).render(_stage=stage) == "True"
    }
    assert listed == migrations.registered()
    versions = [Version(entry["version"]) for entry in entries]
    assert versions == sorted(set(versions))


# --- real updates across real tags -----------------------------------------------------


def helm_problems(hub) -> list:
    """What helm would reject in the hub's values, for staging and prod."""
    chart = Chart(chart_data())
    umbrella = answers(hub)["helm_umbrella_key"]
    problems = []
    for env in ("staging", "prod"):
        layers = [
            ValuesFile.load(hub / "config" / "common.yaml", "config/common.yaml"),
            ValuesFile.load(hub / "config" / f"{env}.yaml", f"config/{env}.yaml"),
            ValuesFile.load(hub / "secrets" / f"{env}.yaml", f"secrets/{env}.yaml"),
        ]
        problems += check_values(chart, layers, umbrella)
    return problems


@pytest.mark.parametrize(
    ("made_at", "update_to", "renames"),
    [("v1.0.0", "v1.1.0", 1), ("v1.1.0", "v1.2.0", 0), ("v1.0.0", "v1.2.0", 1)],
)
def test_an_aws_hub_stays_aws_across_updates(evolving_template, tmp_path, capfd, made_at, update_to, renames):
    fed = federation(tmp_path / "federation")
    answer = "provider" if made_at == "v1.0.0" else "cloud_provider"
    hub = make_hub(evolving_template, fed, "bravo", made_at, **{answer: "aws", "aws_account_id": "210987654321"})
    assert answers(hub)[answer] == "aws"
    capfd.readouterr()

    run_update(str(hub), vcs_ref=update_to, defaults=True, overwrite=True, unsafe=True, quiet=True)

    log = capfd.readouterr().err
    assert log.count("migration 1.1.0 (") == renames, log
    if renames:
        assert RENAME_LOG in log
    recorded = answers(hub)
    assert recorded["_commit"] == update_to
    assert recorded["cloud_provider"] == "aws"
    assert "provider" not in recorded
    hubploy = yaml.safe_load((hub / "hubploy.yaml").read_text())
    assert hubploy["cluster"]["provider"] == "aws"
    if update_to == "v1.1.0":
        assert hubploy["images"]["registry"]["aws"]["account_id"] == "210987654321"
        assert (hub / "secrets" / "aws-config.txt").is_file()
    else:  # today's hubploy: the deploy role in the same account, no key file
        # Named after the federation (derived.jinja cloud_names), in the same account.
        assert hubploy["cluster"]["aws"]["role_arn"] == "arn:aws:iam::210987654321:role/pangeo-hubs-deployer"
        assert log.count("migration 1.2.0 (hubploy_yaml_for_todays_hubploy)") == 1, log
    assert not (hub / "secrets" / "gcloud-service-key.json").exists()
    assert helm_problems(hub) == []


@pytest.mark.parametrize("provider", ["gcp", "aws", "azure"])
def test_a_1_1_0_hub_gets_todays_hubploy_yaml_and_is_told_its_key_file_is_unused(
    evolving_template, tmp_path, capfd, provider
):
    fed = federation(tmp_path / "federation")
    hub = make_hub(evolving_template, fed, "bravo", "v1.1.0", cloud_provider=provider)
    old_key = {"gcp": "gcloud-service-key.json", "aws": "aws-config.txt", "azure": "azure-auth.yaml"}[provider]
    assert "images" in yaml.safe_load((hub / "hubploy.yaml").read_text())
    assert (hub / "secrets" / old_key).is_file()
    kept = edit_like_a_user(hub)
    # The operators put their real key where 1.1.0 asked (in clear here: no git-crypt key).
    (hub / "secrets" / old_key).write_text("a cloud key of this hub's operators\n")
    commit(fed, "Our hub")
    capfd.readouterr()

    run_update(str(hub), vcs_ref="v1.2.0", defaults=True, overwrite=True, unsafe=True, quiet=True)

    log = capfd.readouterr().err
    # Exactly what a hub rendered at 1.2.0 has: today's schema, the checker's schema.
    rendered = tmp_path / "fresh" / "bravo"
    run_copy(
        str(evolving_template),
        str(rendered),
        data={"cloud_provider": provider},
        vcs_ref="v1.2.0",
        defaults=True,
        unsafe=True,
        quiet=True,
    )
    assert (hub / "hubploy.yaml").read_text() == (rendered / "hubploy.yaml").read_text()
    schema = json.loads((ROOT / "hooks/hub_template/checks/hubploy.schema.json").read_text())
    jsonschema.validate(yaml.safe_load((hub / "hubploy.yaml").read_text()), schema)
    for rel, text in kept.items():
        assert text in (hub / rel).read_text(), rel
    line = next(
        line for line in log.splitlines() if line.startswith("migration 1.2.0 (hubploy_yaml_for_todays_hubploy)")
    )
    assert f"secrets/{old_key} is no longer used" in line
    assert f"`git rm secrets/{old_key}`" in line
    # The key stays until its owners revoke it; the hub's own secrets are kept.
    assert (hub / "secrets" / old_key).read_text() == "a cloud key of this hub's operators\n"
    assert not list(hub.rglob("*.rej")), "the update left a conflict"


def test_a_hand_edited_1_1_0_hubploy_yaml_is_rendered_again_for_todays_hubploy(evolving_template, tmp_path, capfd):
    """An edit in 0.4's layout cannot be replayed on today's: the migration
    renders the file again from the answers, rather than leave a conflict."""
    fed = federation(tmp_path / "federation")
    hub = make_hub(evolving_template, fed, "bravo", "v1.1.0")
    path = hub / "hubploy.yaml"
    path.write_text(path.read_text().replace("    zone: us-central1-b\n", "    zone: us-central1-c\n"))
    commit(fed, "Our cluster moved")
    capfd.readouterr()

    run_update(str(hub), vcs_ref="v1.2.0", defaults=True, overwrite=True, unsafe=True, quiet=True)

    line = next(
        line
        for line in capfd.readouterr().err.splitlines()
        if line.startswith("migration 1.2.0 (hubploy_yaml_for_todays_hubploy)")
    )
    assert "hubploy.yaml rendered again for today's hubploy" in line
    schema = json.loads((ROOT / "hooks/hub_template/checks/hubploy.schema.json").read_text())
    config = yaml.safe_load(path.read_text())
    jsonschema.validate(config, schema)
    assert config["cluster"]["gcloud"] == {
        "project": "my-pangeo-project",
        "cluster": "pangeo-hubs",
        "zone": "us-central1-b",
    }


def test_an_update_keeps_every_answer_a_hub_recorded_at_1_2_0(evolving_template, tmp_path, capfd):
    """Answers as 1.2.0 recorded them (amounts as numbers, no `customise`,
    the users' CPU and memory answers every size overrode): the customised
    answers stay, though `customise` is new and unasked, and the retired
    ones are named, not dropped in silence."""
    fed = federation(tmp_path / "federation")
    hub = make_hub(
        evolving_template, fed, "bravo", "v1.1.0", worker_memory=8, max_users=80, dask_spot=False, user_memory_limit=12
    )
    path = hub / ANSWERS
    text = path.read_text()
    assert "worker_memory: 8.0\n" in text and "user_memory_limit: 12.0\n" in text, text
    # The v1.1.0 fixture is today's copier.yml with 1.1.0's files: no `customise` then.
    path.write_text(text.replace("customise: false\n", ""))
    commit(fed, "bravo's answers as 1.2.0 wrote them")
    capfd.readouterr()

    run_update(str(hub), vcs_ref="v1.2.0", defaults=True, overwrite=True, unsafe=True, quiet=True)

    log = capfd.readouterr().err
    assert (
        "migration 1.2.0 (sizes_hold_users_cpu_and_memory): answers user_cpu_guarantee 0.5, user_cpu_limit 2.0, "
        "user_memory_guarantee 2.0, user_memory_limit 12.0 retired: every size overrode them" in log
    ), log
    recorded = answers(hub)
    assert recorded["customise"] is False
    assert (recorded["worker_memory"], recorded["max_users"], recorded["dask_spot"]) == (8.0, 80, False)
    assert not {"user_cpu_guarantee", "user_cpu_limit", "user_memory_guarantee", "user_memory_limit"} & set(recorded)
    common = (hub / "config" / "common.yaml").read_text()
    assert 'Float("worker_memory", default=8.0, min=0.5, max=16.0,' in common
    assert "active_server_limit: 80\n" in common
