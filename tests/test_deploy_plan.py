"""The deploy planner against a real git federation: three hubs rendered by
copier, then a series of real commits, each planned as CI plans a push."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import git, render
from hub_cells import REAL_IDS

from hub_template.deploy_plan import plan

HUBS = {"alpha": "gcp", "bravo": "aws", "charlie": "azure"}


def commit(fed, message):
    git(fed, "add", "-A")
    git(fed, "commit", "-q", "-m", message)
    return git(fed, "rev-parse", "HEAD")


def by_hub(result):
    return {entry["hub"]: entry for entry in result["hubs"]}


def deploy_command(hub, environment, tag):
    """The hubploy command the plan gives a gateway hub deployed with image ``tag``."""
    return [
        "hubploy",
        "deploy",
        hub,
        "chart",
        environment,
        "--set-string",
        f"daskhub.jupyterhub.singleuser.image.tag={tag}",
        "--cleanup-on-fail",
    ]


def plan_deploy(repo, before, after, branch, check=False):
    """`python -m hub_template.cli plan-deploy` as CI runs it, capturing its output."""
    args = ["--repo", str(repo), "--before", before, "--after", after, "--branch", branch]
    return subprocess.run(
        [sys.executable, "-m", "hub_template.cli", "plan-deploy", *args], capture_output=True, text=True, check=check
    )


@pytest.fixture(scope="module")
def fed(template_repo, tmp_path_factory):
    fed = tmp_path_factory.mktemp("plan") / "pangeo-hubs"
    (fed / "chart" / "templates").mkdir(parents=True)
    (fed / "chart" / "Chart.yaml").write_text("apiVersion: v2\nname: hubs\nversion: 0.1.0\n")
    git(fed.parent, "init", "-q", fed.name)
    for hub, provider in HUBS.items():
        render(template_repo, fed / "deployments" / hub, cloud_provider=provider, **REAL_IDS)
    first = commit(fed, "three hubs")
    return fed, first


def test_the_first_push_of_a_branch_builds_and_deploys_every_hub(fed):
    repo, first = fed
    result = plan(repo, "0" * 40, first, "staging")
    assert result["environment"] == "staging" and result["count"] == 3
    assert all(entry["build"] for entry in result["hubs"])
    assert {entry["tag"] for entry in result["hubs"]} == {first[:12]}


def test_a_series_of_commits(fed):
    repo, first = fed
    # A config change of one hub deploys only it, with its image's old tag.
    common = repo / "deployments/alpha/config/common.yaml"
    common.write_text(common.read_text().replace("capacity: 10Gi", "capacity: 20Gi"))
    config = commit(repo, "alpha: bigger homes")
    result = plan(repo, first, config, "staging")
    assert list(by_hub(result)) == ["alpha"]
    alpha = by_hub(result)["alpha"]
    assert alpha["build"] is False and alpha["tag"] == first[:12]
    assert alpha["deploy"] == deploy_command("alpha", "staging", first[:12])
    assert alpha["image"] == "us-central1-docker.pkg.dev/ocean-lab-1/pangeo-hubs/alpha"
    assert alpha["registry"] == "us-central1-docker.pkg.dev"
    assert alpha["login"] == {
        "gcp_workload_identity_provider": REAL_IDS["gcp_workload_identity_provider"],
        "gcp_deployer": "pangeo-hubs-deployer@ocean-lab-1.iam.gserviceaccount.com",
    }

    # An image change builds and deploys that hub with the new commit's tag.
    env = repo / "deployments/bravo/image/binder/environment.yml"
    env.write_text(env.read_text().rstrip("\n") + "\n  - cartopy\n")
    image = commit(repo, "bravo: cartopy")
    result = plan(repo, config, image, "staging")
    bravo = by_hub(result)["bravo"]
    assert list(by_hub(result)) == ["bravo"] and result["environment"] == "staging"
    assert bravo["build"] is True and bravo["promote"] is False and bravo["tag"] == image[:12]
    assert bravo["deploy"] == deploy_command("bravo", "staging", image[:12])
    assert bravo["login"] == {
        "aws_deploy_role": "arn:aws:iam::210987654321:role/pangeo-hubs-deployer",
        "aws_region": "us-west-2",
    }

    # A chart change deploys every hub, building none; each keeps its image's tag.
    (repo / "chart/templates/service-account.yaml").write_text("# per-hub objects\n")
    chart = commit(repo, "chart: a template")
    result = plan(repo, image, chart, "staging")
    assert sorted(by_hub(result)) == sorted(HUBS)
    assert not any(entry["build"] for entry in result["hubs"])
    assert {hub: entry["tag"] for hub, entry in by_hub(result).items()} == {
        "alpha": first[:12],
        "bravo": image[:12],
        "charlie": first[:12],
    }
    assert by_hub(result)["charlie"]["login"]["azure_cluster"] == "pangeo-hubs"

    # A hub added in one commit, with no other file touched, is built and deployed.
    shutil.copytree(repo / "deployments/charlie", repo / "deployments/delta")
    added = commit(repo, "Add hub delta")
    touched = git(repo, "diff", "--name-only", f"{chart}..{added}").split()
    assert touched and all(path.startswith("deployments/delta/") for path in touched)
    result = plan(repo, chart, added, "staging")
    assert list(by_hub(result)) == ["delta"]
    assert by_hub(result)["delta"]["build"] is True and by_hub(result)["delta"]["tag"] == added[:12]

    # A pull request checks the changed hubs and deploys nothing.
    result = plan(repo, first, added, None, pull_request=True)
    assert result["environment"] is None
    assert sorted(by_hub(result)) == ["alpha", "bravo", "charlie", "delta"]  # the chart changed too
    assert all(entry["deploy"] is None for entry in result["hubs"])
    assert not any(entry["promote"] for entry in result["hubs"])


def test_prod_promotes_the_image_staging_built_and_never_builds(fed):
    """Merging staging into prod deploys the very image staging ran: the same
    tag, promoted, never a second build (which would push a new image over
    staging's tag). The workflow builds only a tag the registry lacks."""
    repo, first = fed
    clone = repo.parent / "promote"
    git(repo.parent, "clone", "-q", str(repo), clone.name)
    env = clone / "deployments/alpha/image/binder/environment.yml"
    env.write_text(env.read_text().rstrip("\n") + "\n  - xesmf\n")
    image = commit(clone, "alpha: xesmf")
    staging = by_hub(plan(clone, first, image, "staging"))["alpha"]
    prod = by_hub(plan(clone, first, image, "prod"))["alpha"]
    assert (staging["build"], staging["promote"]) == (True, False)
    assert (prod["build"], prod["promote"]) == (False, True)
    assert prod["tag"] == staging["tag"] == image[:12] and prod["image"] == staging["image"]
    assert prod["deploy"] == deploy_command("alpha", "prod", image[:12])
    # Where CI runs the hub's notebooks after the deploy: each environment's own host (config/<env>.yaml).
    assert (staging["url"], prod["url"]) == ("https://staging.alpha.pangeo.io", "https://alpha.pangeo.io")
    assert plan(clone, first, image, None, pull_request=True)["hubs"][0]["url"] is None
    # A first push to prod (git knows no `before`) promotes every hub too.
    assert all(e["promote"] and not e["build"] for e in plan(clone, None, image, "prod")["hubs"])


def test_each_git_crypt_hub_names_the_secret_of_its_own_key(template_repo, tmp_path):
    """The plan names the secret holding each hub's own git-crypt key (the
    one its README tells operators to add), the shared key's for a hub that
    keeps `default`, and none for sops."""
    fed = tmp_path / "pangeo-hubs"
    git(tmp_path, "init", "-q", fed.name)
    render(template_repo, fed / "deployments" / "ocean-lab", secrets_backend="git-crypt", **REAL_IDS)
    render(
        template_repo, fed / "deployments" / "shared", secrets_backend="git-crypt", git_crypt_key="default", **REAL_IDS
    )
    render(template_repo, fed / "deployments" / "kms", secrets_backend="sops", **REAL_IDS)
    head = commit(fed, "three hubs")
    secrets = {hub: entry["git_crypt_secret"] for hub, entry in by_hub(plan(fed, None, head, "staging")).items()}
    assert secrets == {"ocean-lab": "GIT_CRYPT_KEY_OCEAN_LAB", "shared": "GIT_CRYPT_KEY", "kms": None}


def test_other_branches_and_untrusted_values_are_refused_in_one_line(fed, tmp_path):
    repo, first = fed
    done = plan_deploy(repo, "0" * 40, first, "main")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == "plan-deploy: branch 'main' deploys nothing: only staging and prod do\n"

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), "clone")
    answers = clone / "deployments/bravo/.copier-answers.yml"
    answers.write_text(answers.read_text().replace("aws_region: us-west-2", "aws_region: us-west-2; curl evil"))
    bad = commit(clone, "a hostile answer")
    done = plan_deploy(clone, first, bad, "staging")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("plan-deploy: deployments/bravo: aws_region 'us-west-2; curl evil' does not match")
    assert len(done.stderr.splitlines()) == 1


def test_the_command_prints_the_plan_as_one_line_of_json(fed):
    repo, first = fed
    done = plan_deploy(repo, "0" * 40, first, "prod", check=True)
    assert len(done.stdout.splitlines()) == 1
    assert json.loads(done.stdout) == plan(repo, None, first, "prod")


@pytest.mark.parametrize("backend", ["gateway", "kubernetes"])
def test_the_tag_ci_sets_is_the_users_image_of_each_backend(template_repo, tmp_path, backend):
    """The value CI sets to the tag names the very image the hub's values
    give users: under daskhub's jupyterhub for a gateway hub, the jupyterhub
    chart's own (at the top) for a kubernetes hub."""
    import yaml

    fed = tmp_path / "pangeo-hubs"
    git(tmp_path, "init", "-q", fed.name)
    hub = render(template_repo, fed / "deployments" / "delta", dask_backend=backend, **REAL_IDS)
    head = commit(fed, "delta")
    (entry,) = plan(fed, "0" * 40, head, "staging")["hubs"]
    *where, last = entry["tag_value"].split(".")
    image = yaml.safe_load((hub / "config" / "common.yaml").read_text())
    for key in where:
        image = image[key]
    assert last == "tag" and image["name"] == entry["image"]
    assert entry["deploy"][-2] == f"{entry['tag_value']}={head[:12]}"


def test_the_workflows_read_only_what_the_plan_gives(template_repo, tmp_path):
    """Each `matrix.<field>` the federation's workflows use is a field of the
    plan, and none spells the image tag's helm value itself (the plan's
    tag_value knows where each backend keeps it)."""
    import dataclasses
    import re

    from hub_template.deploy_plan import HubPlan

    fed = render(template_repo, tmp_path / "pangeo-hubs", kind="federation")
    fields = {f.name for f in dataclasses.fields(HubPlan)}
    used = set()
    for workflow in (fed / ".github" / "workflows").glob("*.yml"):
        text = workflow.read_text()
        used |= set(re.findall(r"\bmatrix\.(\w+)", text))
        assert "singleuser.image.tag" not in text, workflow.name
    assert used and used <= fields, used - fields
    assert "tag_value" in used


@pytest.mark.parametrize("provider", ["gcp", "aws", "azure"])
def test_a_hub_still_holding_a_stand_in_is_refused(template_repo, tmp_path, provider):
    """`--defaults` records stand-ins for the ids with no honest default (and
    an update adding such a question does too): planning that hub fails in
    one line naming each, and no login id reaches the workflow."""
    from hub_template.stand_ins import stand_ins

    fed = tmp_path / "pangeo-hubs"
    git(tmp_path, "init", "-q", fed.name)
    render(template_repo, fed / "deployments" / "charlie", cloud_provider=provider)
    head = commit(fed, "a hub rendered with --defaults")

    done = plan_deploy(fed, "0" * 40, head, "staging")

    assert done.returncode == 1 and done.stdout == "", done.stdout
    assert len(done.stderr.splitlines()) == 1
    recorded = yaml.safe_load((fed / "deployments/charlie/.copier-answers.yml").read_text())
    named = [name for name, value in stand_ins().items() if str(recorded.get(name)) == value]
    assert named, recorded  # each provider has some
    for name in named:
        assert f"{name} {stand_ins()[name]!r}" in done.stderr, done.stderr
    assert "(ST006)" in done.stderr and f"--data {named[0]}=..." in done.stderr
