"""A federation repository rendered by the same template (`kind: federation`):
its files, its workflows (actionlint with shellcheck, GitHub's schema), its
chart (the real helm, kubernetes-validate --strict), the hub defaults it
offers, and `copier update` at its root."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import BIN, ROOT, chart_data, git, render
from copier import run_copy, run_update
from hub_cells import PROVIDERS, SECRETS

from hub_template import load_data

FEDERATION_FILES = {
    ".copier-answers.yml",
    "README.md",
    ".gitignore",
    ".pre-commit-config.yaml",
    "copier-settings.yml",
    ".github/workflows/deploy.yml",
    ".github/workflows/pull-request.yml",
    ".github/workflows/lock-refresh.yml",
    ".github/actions/daskhub/action.yml",
    "chart/Chart.yaml",
    "chart/values.yaml",
    "chart/values.schema.json",
    "chart/.helmignore",
    "chart/templates/_helpers.tpl",
    "chart/templates/service-account.yaml",
    "chart/templates/dask-kubernetes-rbac.yaml",
    "chart/templates/dask-pod-policy.yaml",
    "chart/templates/home-storage.yaml",
    "deployments/README.md",
}
_rendered: dict[tuple, Path] = {}


def federation(template_repo, tmp_path_factory, provider="gcp", secrets="git-crypt", **data) -> Path:
    """A federation rendered for this cell (shared: copy it before changing it)."""
    key = (provider, secrets, tuple(sorted(data.items())))
    if key not in _rendered:
        dst = tmp_path_factory.mktemp(f"fed-{provider}-{secrets}") / "pangeo-hubs"
        run_copy(
            str(template_repo),
            str(dst),
            defaults=True,
            unsafe=True,
            quiet=True,
            data={"kind": "federation", "cloud_provider": provider, "secrets_backend": secrets, **data},
        )
        _rendered[key] = dst
    return _rendered[key]


def files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


CELLS = list(itertools.product(PROVIDERS, SECRETS))


@pytest.mark.parametrize(("provider", "secrets"), CELLS)
def test_a_federation_is_its_repository_and_no_hub(template_repo, tmp_path_factory, provider, secrets):
    fed = federation(template_repo, tmp_path_factory, provider, secrets)
    # The cluster's own setup: a script, and eksctl's ClusterConfig on AWS.
    assert files(fed) == FEDERATION_FILES | {"cluster/setup.sh"} | (
        {"cluster/eksctl.yaml"} if provider == "aws" else set()
    )
    answers = yaml.safe_load((fed / ".copier-answers.yml").read_text())
    assert answers["kind"] == "federation" and answers["cloud_provider"] == provider
    assert "hub_name" not in answers and "dask_backend" not in answers  # hub questions are not asked
    chart = yaml.safe_load((fed / "chart/Chart.yaml").read_text())
    # daskhub for gateway hubs, the jupyterhub chart alone for kubernetes hubs.
    assert chart["dependencies"] == [
        {
            "name": "daskhub",
            "version": "2024.1.2-dev.e25bf51",
            "repository": "file://../.daskhub/daskhub",
            "condition": "deployment.daskGateway.enabled",
        },
        {
            "name": "jupyterhub",
            "version": "4.4.0",
            "repository": "https://hub.jupyter.org/helm-chart/",
            "condition": "deployment.daskKubernetes.enabled",
        },
    ]


@pytest.mark.parametrize(("provider", "secrets"), CELLS)
def test_every_workflow_passes_actionlint_with_shellcheck_and_the_github_schema(
    template_repo, tmp_path_factory, provider, secrets
):
    fed = federation(template_repo, tmp_path_factory, provider, secrets)
    workflows = sorted(str(p) for p in (fed / ".github/workflows").glob("*.yml"))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [str(BIN / "actionlint"), "-shellcheck", str(BIN / "shellcheck"), *workflows],
        cwd=fed,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for schema, paths in (
        ("vendor.github-workflows", workflows),
        ("vendor.github-actions", [str(fed / ".github/actions/daskhub/action.yml")]),
    ):
        done = subprocess.run(
            [str(BIN / "check-jsonschema"), "--builtin-schema", schema, *paths], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr


def zizmor(*paths) -> subprocess.CompletedProcess:
    """zizmor at its default persona, offline (no GitHub API here or in CI)."""
    return subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--no-progress", "--format", "plain", *map(str, paths)],
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize(("provider", "secrets"), CELLS)
def test_zizmor_finds_nothing_in_the_federations_ci(template_repo, tmp_path_factory, provider, secrets):
    """Every action pinned by commit, no checkout leaving its token behind,
    no expression injected into a script: the whole repository, as rendered."""
    fed = federation(template_repo, tmp_path_factory, provider, secrets)
    done = zizmor(fed)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings to report" in done.stdout + done.stderr


def test_zizmor_really_audits_the_workflows(template_repo, tmp_path_factory, tmp_path):
    """The audit above can fail: a tag instead of a commit, or a checkout that
    keeps its credentials, is caught."""
    fed = tmp_path / "fed"
    shutil.copytree(federation(template_repo, tmp_path_factory), fed)
    deploy = fed / ".github/workflows/deploy.yml"
    text = deploy.read_text()
    pinned = re.search(r"uses: (actions/checkout@[0-9a-f]{40} # v\S+)", text)[1]
    assert "persist-credentials: false" in text
    deploy.write_text(text.replace(pinned, "actions/checkout@v5").replace("persist-credentials: false", "clean: true"))
    done = zizmor(deploy)
    assert done.returncode != 0
    assert "unpinned-uses" in done.stdout and "artipacked" in done.stdout


def test_every_action_is_pinned_to_the_commit_versions_yml_names(template_repo, tmp_path_factory):
    """One place holds the actions' commits (data/versions.yml `actions`): each
    `uses:` of the rendered CI is one of them with its tag in a comment, and
    each one there is used."""
    pins = load_data("versions.yml")["actions"]
    used = set()
    for provider, secrets in CELLS:
        fed = federation(template_repo, tmp_path_factory, provider, secrets)
        for path in (*(fed / ".github/workflows").glob("*.yml"), fed / ".github/actions/daskhub/action.yml"):
            for action, ref, comment in re.findall(r"uses: ([^@\s]+)@?(\S*)(.*)", path.read_text()):
                if action.startswith("./"):  # the federation's own composite action
                    continue
                assert ref == pins[action]["commit"] and comment == f" # {pins[action]['tag']}", (path.name, action)
                used.add(action)
            checkouts = re.findall(r"uses: actions/checkout@.*\n((?:\s+\w.*\n)+)", path.read_text())
            assert all("persist-credentials: false" in block for block in checkouts), path.name
    assert used == set(pins)
    assert all(re.fullmatch(r"[0-9a-f]{40}", pin["commit"]) for pin in pins.values())


def test_hub_template_check_is_installed_with_its_extra_wherever_it_runs(template_repo, tmp_path_factory):
    """`hub-template check` refuses to run without the [check] extra (cli.py):
    every job and pre-commit hook that runs it installs hub-template with it."""
    from packaging.requirements import Requirement

    fed = federation(template_repo, tmp_path_factory)
    workflow = yaml.safe_load((fed / ".github/workflows/pull-request.yml").read_text())
    runs_check = 0
    for job in workflow["jobs"].values():
        runs = [step["run"] for step in job["steps"] if "run" in step]
        if not any("hub-template check" in run for run in runs):
            continue
        runs_check += 1
        installed = [
            Requirement(workflow["env"][var])
            for run in runs
            for var in re.findall(r"pip install \"\$(\w+)\"", run)
            if workflow["env"][var].startswith("hub-template")
        ]
        assert installed and all("check" in req.extras for req in installed), installed
    hooks = [
        hook
        for repo in yaml.safe_load((fed / ".pre-commit-config.yaml").read_text())["repos"]
        for hook in repo["hooks"]
        if hook.get("entry", "").startswith("hub-template check")
    ]
    for hook in hooks:
        (requirement,) = map(Requirement, hook["additional_dependencies"])
        assert requirement.name == "hub-template" and "check" in requirement.extras
    # The hook hub-template itself publishes installs it from its own clone.
    (published,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert published["additional_dependencies"] == [".[check]"]
    assert runs_check == 1 and len(hooks) == 1


def test_actionlint_really_runs_shellcheck_on_run_steps(template_repo, tmp_path_factory, tmp_path):
    """The lint above can fail: an unquoted variable in a run: step is caught."""
    fed = tmp_path / "fed"
    shutil.copytree(federation(template_repo, tmp_path_factory), fed)
    deploy = fed / ".github/workflows/deploy.yml"
    text = deploy.read_text()
    assert 'git-crypt unlock "$key"' in text
    deploy.write_text(text.replace('git-crypt unlock "$key"', "git-crypt unlock $key"))
    done = subprocess.run(
        [str(BIN / "actionlint"), "-shellcheck", str(BIN / "shellcheck"), str(deploy)],
        cwd=fed,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "SC2086" in done.stdout


def test_the_deploy_workflow_logs_in_keylessly_and_runs_the_plans_command(template_repo, tmp_path_factory):
    fed = federation(template_repo, tmp_path_factory)
    workflow = yaml.safe_load((fed / ".github/workflows/deploy.yml").read_text())
    deploy = workflow["jobs"]["deploy"]
    assert deploy["permissions"] == {"contents": "read", "id-token": "write"}
    uses = {step["uses"].split("@")[0]: step for step in deploy["steps"] if "uses" in step}
    assert {"google-github-actions/auth", "aws-actions/configure-aws-credentials", "azure/login"} <= set(uses)
    # No cloud key from a secret: the only secret is the hub's git-crypt key, for the helm values.
    text = (fed / ".github/workflows/deploy.yml").read_text()
    assert [line.split("#")[0].strip() for line in text.splitlines() if "secrets" in line and "${{" in line] == [
        "GIT_CRYPT_KEY: ${{ secrets[matrix.git_crypt_secret] }}"
    ]
    steps = [step.get("name", step.get("uses")) for step in deploy["steps"]]
    assert steps.index("Unlock git-crypt with the hub's key (${{ matrix.git_crypt_secret }})") < steps.index(
        "hubploy deploy ${{ matrix.hub }} chart ${{ matrix.environment }}"
    )
    # hubploy from GitHub at the pinned commit, and the plan's exact command line run as is.
    assert workflow["env"]["HUBPLOY"] == (
        "hubploy @ git+https://github.com/berkeley-dsep-infra/hubploy@237ac7daca9fb8043d4b4bd9e9a86499ec868353"
    )
    hubploy = deploy["steps"][steps.index("hubploy deploy ${{ matrix.hub }} chart ${{ matrix.environment }}")]
    assert hubploy["env"] == {"DEPLOY": "${{ toJSON(matrix.deploy) }}"}
    assert hubploy["run"].splitlines()[-1] == '"${deploy[@]}"'
    # Then, last, the health check: the hub's notebooks on the plan's URL, the token from its secrets.
    health = deploy["steps"][-1]
    assert steps.index(health["name"]) > steps.index(hubploy["name"])
    assert health["env"] == {"URL": "${{ matrix.url }}", "ENVIRONMENT": "${{ matrix.environment }}"}
    assert 'hub-template run-notebooks "$URL" --secrets "deployments/$HUB/secrets/$ENVIRONMENT.yaml"' in health["run"]


def test_a_hub_made_inside_starts_from_the_federations_answers(template_repo, tmp_path_factory, tmp_path):
    fed = tmp_path / "pangeo-hubs"
    shutil.copytree(
        federation(
            template_repo,
            tmp_path_factory,
            "aws",
            "sops",
            aws_account_id="210987654321",
            aws_region="eu-central-1",
            aws_cluster="hubs",
        ),
        fed,
    )
    env = {**os.environ, "COPIER_SETTINGS_PATH": "copier-settings.yml"}
    done = subprocess.run(
        [str(BIN / "copier"), "copy", "--trust", "--defaults", str(template_repo), "deployments/charlie"],
        cwd=fed,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    hub = yaml.safe_load((fed / "deployments/charlie/.copier-answers.yml").read_text())
    assert {
        k: hub[k]
        for k in (
            "kind",
            "cloud_provider",
            "aws_account_id",
            "aws_region",
            "aws_cluster",
            "secrets_backend",
            "aws_deploy_role",
            "image_name",
        )
    } == {
        "kind": "hub",
        "cloud_provider": "aws",
        "aws_account_id": "210987654321",
        "aws_region": "eu-central-1",
        "aws_cluster": "hubs",
        "secrets_backend": "sops",
        # Named after the federation (derived.jinja cloud_names).
        "aws_deploy_role": "arn:aws:iam::210987654321:role/pangeo-hubs-deployer",
        "image_name": "210987654321.dkr.ecr.eu-central-1.amazonaws.com/pangeo-hubs/charlie",
    }
    assert (fed / "deployments/charlie/hubploy.yaml").is_file()
    assert files(fed) >= FEDERATION_FILES  # the federation's own files are untouched


def test_copier_update_works_on_the_federation_root(template_repo, tmp_path_factory, tmp_path):
    fed = tmp_path / "pangeo-hubs"
    run_copy(str(template_repo), str(fed), defaults=True, unsafe=True, quiet=True, data={"kind": "federation"})
    readme = fed / "README.md"
    readme.write_text(readme.read_text() + "\nOur own notes.\n")
    git(fed, "init", "-q")
    git(fed, "add", "-A")
    git(fed, "commit", "-q", "-m", "federation")
    run_update(str(fed), data={"helm_umbrella_key": "hubs"}, defaults=True, overwrite=True, unsafe=True, quiet=True)
    chart = yaml.safe_load((fed / "chart/Chart.yaml").read_text())
    assert chart["dependencies"][0]["alias"] == "hubs"
    assert "Our own notes." in readme.read_text()
    assert yaml.safe_load((fed / "copier-settings.yml").read_text())["defaults"]["helm_umbrella_key"] == "hubs"


# --- the deployment chart, with the real helm ---------------------------------------


def helm(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "helm"), *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture
def built_chart(template_repo, tmp_path_factory, tmp_path) -> Path:
    """The federation's chart, its daskhub dependency the chart data (values and
    schemas, no templates: GitHub Actions renders daskhub's own, see hubs.yml)."""
    if not (BIN / "helm").is_file():
        pytest.skip(f"no helm in {BIN}: run .ci/install-tools")
    fed = tmp_path / "pangeo-hubs"
    shutil.copytree(federation(template_repo, tmp_path_factory), fed)
    shutil.copytree(chart_data(), fed / ".daskhub" / "daskhub")
    # The chart's dependencies put where `helm dependency build` would: daskhub
    # from the chart data, and the jupyterhub chart it bundles (kubernetes hubs
    # depend on it directly; its repository is unreachable here).
    charts = fed / "chart" / "charts"
    charts.mkdir(exist_ok=True)
    shutil.copytree(chart_data(), charts / "daskhub")
    shutil.copytree(chart_data() / "charts" / "jupyterhub", charts / "jupyterhub")
    return fed


def kubernetes_validate(manifest: Path) -> None:
    done = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", str(manifest)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_chart_renders_its_users_service_account_when_a_hub_asks(built_chart, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "deployment": {
                    "serviceAccount": {
                        "create": True,
                        "name": "charlie-user",
                        "annotations": {
                            "iam.gke.io/gcp-service-account": "charlie@my-pangeo-project.iam.gserviceaccount.com"
                        },
                    }
                }
            }
        )
    )
    done = helm(
        "template", "charlie-staging", "chart", "--namespace", "charlie-staging", "-f", str(values), cwd=built_chart
    )
    assert done.returncode == 0, done.stderr
    objects = [o for o in yaml.safe_load_all(done.stdout) if o]
    assert [(o["kind"], o["metadata"]["name"], o["metadata"]["namespace"]) for o in objects] == [
        ("ServiceAccount", "charlie-user", "charlie-staging")
    ]
    assert objects[0]["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": "charlie@my-pangeo-project.iam.gserviceaccount.com"
    }
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(done.stdout)
    kubernetes_validate(manifest)
    # Off by default: a hub that asks for nothing gets no object of the chart's own.
    done = helm("template", "charlie-staging", "chart", cwd=built_chart)
    assert done.returncode == 0 and not [o for o in yaml.safe_load_all(done.stdout) if o]


def test_the_charts_schema_refuses_a_misspelled_value(built_chart):
    done = helm("template", "x", "chart", "--set", "deployment.serviceAccount.creat=true", cwd=built_chart)
    assert done.returncode == 1
    assert "additional properties 'creat' not allowed" in done.stderr


def test_a_hubs_values_pass_the_chart_and_the_subcharts_schemas(built_chart, template_repo):
    hub = render(template_repo, built_chart / "deployments" / "charlie")
    for env in ("staging", "prod"):
        done = helm(
            "template",
            f"charlie-{env}",
            "chart",
            "--namespace",
            f"charlie-{env}",
            "-f",
            str(hub / "config/common.yaml"),
            "-f",
            str(hub / f"config/{env}.yaml"),
            "--set-string",
            "daskhub.jupyterhub.singleuser.image.tag=0123456789ab",
            cwd=built_chart,
        )
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("provider", "secrets"), CELLS)
def test_the_federation_readme_says_what_ci_reads(template_repo, tmp_path_factory, provider, secrets):
    """Where prod's reviewers go is the environment the deploy job names, and
    the git-crypt secrets the README tells operators to add are the ones the
    workflow reads (tests/test_deploy_git_crypt.py runs it with them)."""
    from hub_template.deploy_plan import ENVIRONMENTS, git_crypt_secret

    fed = federation(template_repo, tmp_path_factory, provider, secrets)
    readme = " ".join((fed / "README.md").read_text().split())  # as one line: wrapping aside
    deploy = yaml.safe_load((fed / ".github/workflows/deploy.yml").read_text())["jobs"]["deploy"]
    assert deploy["environment"] == "${{ matrix.environment }}" and "prod" in ENVIRONMENTS
    assert "required reviewers to the `prod` environment (Settings > Environments)" in readme
    text = (fed / ".github/workflows/deploy.yml").read_text()
    if secrets == "git-crypt":
        assert "`GIT_CRYPT_KEY_<KEY>` (upper case, `-` as `_`)" in readme and "`GIT_CRYPT_KEY`" in readme
        assert git_crypt_secret("ocean-lab") == "GIT_CRYPT_KEY_OCEAN_LAB" and git_crypt_secret("default") == (
            "GIT_CRYPT_KEY"
        )
        assert "secrets[matrix.git_crypt_secret]" in text
    else:
        assert "GIT_CRYPT_KEY" not in readme
