"""Render every cell of provider x secrets backend x dask backend once, then use
each hub the way its tools will: hubploy reads hubploy.yaml, helm merges and
validates the values, repo2docker plans the image, the image's postBuild and
start run, dask loads the installed config, JupyterLab imports the workspace,
git and sops decide what gets encrypted.

The real tools (repo2docker, the image's start script with JupyterLab) give the
same result for the same bytes, so they run once per distinct image/ folder
(six for the twelve cells); everything else runs for every cell.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dask.config
import nbformat
import pytest
import rattler
import yaml
from conftest import BIN, REPO2DOCKER_OPTIONS, chart_data, git, render
from hub_cells import CELLS, run_postbuild  # provider x secrets backend x dask backend, from the template's own data

from hub_template import load_data
from hub_template.checks.secrets import nearest_sops_config, sops_creation_rule
from hub_template.helm_values import Chart, ValuesFile, check_values

PROVIDERS = load_data("providers.yml")
VERSIONS = load_data("versions.yml")


# Answers beyond the matrix, in both forms a list answer takes (a YAML list as
# through --data-file, a comma or blank separated string as at the prompt), and
# a cluster memory cap tighter than the cores cap, so the worker bound must
# respect both.
ANSWERS = {
    "github_orgs": "pangeo-data, my-lab:hub-users",
    "admin_users": ["octocat"],
    "conda_packages": ["xarray", "zarr>=2.18", "netcdf4"],
    "pip_packages": "pystac-client, odc-stac>=0.3",
    "apt_packages": "nco cdo",
    "cluster_max_memory": "64GB",  # recorded as typed, read as 64
}

# The one form of a secret placeholder (hooks/hub_template/jinja/secrets.jinja).
PLACEHOLDER = re.compile(r"<hub-template placeholder: [a-z0-9-]+>")

# What today's hubploy passes as keyword arguments to its cluster login, per
# provider (hubploy/auth.py at 237ac7d): cluster_auth_gcloud(project, cluster,
# zone), cluster_auth_aws(deployment, cluster, region, role_arn=...); Azure
# hubs use the kubeconfig CI writes after its OIDC login. A missing or extra
# key is a TypeError at deploy time.
HUBPLOY_CLUSTER = {
    "gcp": lambda a: {"project": a["gcp_project"], "cluster": a["gcp_cluster"], "zone": a["gcp_zone"]},
    "aws": lambda a: {"cluster": a["aws_cluster"], "region": a["aws_region"], "role_arn": a["aws_deploy_role"]},
    "azure": lambda a: {"filename": "kubeconfig.yaml", "context": a["azure_cluster"]},
}


@dataclass(frozen=True)
class RenderedHub:
    root: Path  # the federation repository
    path: Path  # root/deployments/<hub>
    answers: dict  # .copier-answers.yml, as recorded

    @property
    def cloud(self) -> dict:
        return PROVIDERS[self.answers["cloud_provider"]]

    @property
    def image(self) -> Path:
        return self.path / "image"

    def yaml(self, relpath: str):
        return yaml.safe_load((self.path / relpath).read_text())

    def files(self) -> set[str]:
        return {p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()}


@pytest.fixture(scope="module", params=CELLS, ids="-".join)
def hub(request, template_repo, tmp_path_factory) -> RenderedHub:
    provider, secrets, dask_backend = request.param
    root = tmp_path_factory.mktemp("-".join(request.param))
    path = render(
        template_repo,
        root / "deployments" / "charlie",
        cloud_provider=provider,
        secrets_backend=secrets,
        dask_backend=dask_backend,
        **ANSWERS,
    )
    return RenderedHub(root, path, yaml.safe_load((path / ".copier-answers.yml").read_text()))


@pytest.fixture(scope="module")
def chart() -> Chart:
    return Chart(chart_data())


def expected_files(answers: dict) -> set[str]:
    """The hub folder the issue specifies, for these answers."""
    files = {
        ".copier-answers.yml",
        "README.md",
        "hubploy.yaml",
        "config/common.yaml",
        "config/staging.yaml",
        "config/prod.yaml",
        "secrets/staging.yaml",
        "secrets/prod.yaml",
        ".gitattributes" if answers["secrets_backend"] == "git-crypt" else ".sops.yaml",
        "image/README.md",
        "image/.gitignore",
        "image/.dask/config.yaml",
        *(
            f"image/binder/{name}"
            for name in ("environment.yml", "apt.txt", "postBuild", "start", "jupyterlab-workspace.json")
        ),
    }
    if not answers.get("source_repo"):
        files.add("image/welcome.ipynb")
    if answers["dask_backend"] == "kubernetes":
        files.add("image/hub_dask.py")  # the operator's KubeCluster, placed on the dask pool
    return files


# --------------------------------------------------------------------------
# The folder itself
# --------------------------------------------------------------------------


def test_renders_exactly_the_hub_files(hub):
    assert hub.files() == expected_files(hub.answers)
    for name, value in ANSWERS.items():
        assert hub.answers[name] == value, f"{name} is not recorded as given"


def test_every_structured_file_parses(hub):
    for relpath in sorted(hub.files()):
        text = (hub.path / relpath).read_text()
        if relpath.endswith((".yaml", ".yml")):
            yaml.safe_load(text)
        elif relpath.endswith(".json"):
            json.loads(text)
        elif relpath.endswith(".ipynb"):
            nbformat.validate(nbformat.reads(text, as_version=4))


def test_notebook_markdown_shows_all_its_text(hub):
    """JupyterLab renders markdown as CommonMark with HTML allowed: a bare
    `<your user name>` is an HTML tag there, and shows nothing."""
    from markdown_it import MarkdownIt

    if hub.answers.get("source_repo"):
        pytest.skip("a notebook repository's hub has no welcome notebook")
    notebook = nbformat.read(hub.image / "welcome.ipynb", as_version=4)
    parser = MarkdownIt("commonmark")
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            tokens = [t for block in parser.parse(cell.source) for t in [block, *(block.children or [])]]
            html = [t.content for t in tokens if t.type in ("html_inline", "html_block")]
            assert html == [], f"cell {cell.id}: shown as nothing: {html}"


def test_the_welcome_notebook_opens_unmodified(hub, tmp_path):
    """JupyterLab marks a notebook modified when the kernel it starts reports
    a kernelspec or language_info that differs from the file's (its notebook
    panel sets both), and jupyter-server writes what nbformat writes: the file
    is already that, with ipykernel's own metadata (all but the Python patch
    version, which only the image knows: start adds it to the user's copy)."""
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager

    if hub.answers.get("source_repo"):
        pytest.skip("a notebook repository's hub has no welcome notebook")
    text = (hub.image / "welcome.ipynb").read_text()
    notebook = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    nbformat.validate(notebook)
    assert (notebook.nbformat, notebook.nbformat_minor) == (nbformat.current_nbformat, nbformat.current_nbformat_minor)
    written = tmp_path / "written.ipynb"
    nbformat.write(notebook, written)
    assert written.read_text() == text
    spec = KernelSpecManager().get_kernel_spec("python3")
    kernelspec = {"name": "python3", "display_name": spec.display_name, "language": spec.language}
    assert notebook.metadata.kernelspec == kernelspec
    language_info = {k: v for k, v in IPythonKernel.language_info.items() if k != "version"}
    assert notebook.metadata.language_info == language_info


def test_files_are_clean_text_with_no_template_syntax_left(hub):
    for relpath in sorted(hub.files()):
        assert not re.search(r"\{\{|\{%|\{#", relpath), relpath
        text = (hub.path / relpath).read_text()
        assert text.endswith("\n") and not text.endswith("\n\n"), f"{relpath} must end with one newline"
        for number, line in enumerate(text.splitlines(), 1):
            assert not re.search(r"\{\{|\{%", line), f"{relpath}:{number}: {line}"
            assert line == line.rstrip(), f"{relpath}:{number}: trailing whitespace"


def test_hubploy_yaml_is_what_hubploy_reads(hub):
    answers, cloud = hub.answers, hub.cloud
    provider = cloud["hubploy"]
    assert hub.yaml("hubploy.yaml") == {
        "cluster": {"provider": provider, provider: HUBPLOY_CLUSTER[answers["cloud_provider"]](answers)},
    }
    # No cloud key in the hub: CI logs in with GitHub's OIDC token.
    assert sorted(p.name for p in (hub.path / "secrets").iterdir()) == ["prod.yaml", "staging.yaml"]
    # CI sets the tag under the image the values name, the helm path it passes.
    node = hub.yaml("config/common.yaml")
    # A kubernetes hub deploys the jupyterhub chart alone (no daskhub, no gateway).
    jupyterhub = (
        "jupyterhub" if answers["dask_backend"] == "kubernetes" else f"{answers['helm_umbrella_key']}.jupyterhub"
    )
    for part in f"{jupyterhub}.singleuser.image".split("."):
        node = node[part]
    assert node["name"] == answers["image_name"]
    assert not re.search(r"[:@][^/]*$", answers["image_name"])


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_helm_values_pass_the_chart_schemas(hub, chart, env):
    umbrella = hub.answers["helm_umbrella_key"]
    files = [
        ValuesFile.load(hub.path / rel, rel)
        for rel in ("config/common.yaml", f"config/{env}.yaml", f"secrets/{env}.yaml")
    ]
    assert [str(p) for p in check_values(chart, files, umbrella)] == []

    # What helm will deploy, as hubploy layers the files: daskhub, or for a
    # kubernetes hub the jupyterhub chart alone (the deployment chart's own
    # dependency), with no daskhub values at all.
    kubernetes = hub.answers["dask_backend"] == "kubernetes"
    if kubernetes:
        assert not any(umbrella in f.data for f in files)
        jh = chart.direct("jupyterhub", [f.data["jupyterhub"] for f in files])
    else:
        merged = chart.merged(f.data[umbrella] for f in files)
        jh = merged["jupyterhub"]
    host = hub.answers["domain"] if env == "prod" else hub.answers["staging_domain"]
    assert jh["proxy"]["https"]["hosts"] == [host]
    assert jh["proxy"]["https"]["letsencrypt"]["contactEmail"] == hub.answers["contact_email"]
    github = jh["hub"]["config"]["GitHubOAuthenticator"]
    assert github["oauth_callback_url"] == f"https://{host}/hub/oauth_callback"
    assert github["allowed_organizations"] == ["pangeo-data", "my-lab:hub-users"]
    assert PLACEHOLDER.fullmatch(github["client_secret"])
    assert jh["hub"]["config"]["Authenticator"]["admin_users"] == ["octocat"]
    assert "auth" not in jh  # z2jh 4.x: the pre-1.0 auth: block is gone
    singleuser = jh["singleuser"]
    assert singleuser["image"]["name"] == hub.answers["image_name"]
    assert singleuser["storage"]["dynamic"]["storageClass"] == hub.cloud["storage_class"]
    scratch = singleuser["extraEnv"]["SCRATCH_BUCKET"]
    assert scratch.startswith(hub.cloud["bucket_scheme"] + hub.answers["scratch_bucket"] + "/")
    if not kubernetes:
        gateway = merged["dask-gateway"]
        assert singleuser["extraEnv"]["DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE"] == "{JUPYTER_IMAGE_SPEC}"
        assert gateway["enabled"] is True
        assert "00-add-dask-gateway-values" in jh["hub"]["extraConfig"]
        extra = "\n".join(gateway["gateway"]["extraConfig"].values())
        assert f'HUB_IMAGE = "{hub.answers["image_name"]}"' in extra
        assert f"c.ClusterConfig.idle_timeout = {int(hub.answers['idle_timeout_minutes']) * 60}" in extra
    else:
        # Nothing of daskhub's gateway reaches the hub: no service, no snippet.
        assert "dask-gateway" not in jh["hub"].get("services", {})
        assert "00-add-dask-gateway-values" not in jh["hub"].get("extraConfig", {})
        deployment = files[0].data["deployment"]
        assert deployment["daskGateway"] == {"enabled": False}
        assert deployment["daskKubernetes"] == {"enabled": True}
        assert singleuser["serviceAccountName"] == deployment["serviceAccount"]["name"]
        assert deployment["serviceAccount"]["create"] is True


@pytest.mark.parametrize("hub", [cell for cell in CELLS if cell[2] == "gateway"], indirect=True, ids="-".join)
def test_gateway_options_compile_and_bound_workers(hub):
    """The extraConfig snippets are Python that dask-gateway-server executes."""
    from traitlets.config import Config

    extra = hub.yaml("config/common.yaml")[hub.answers["helm_umbrella_key"]]["dask-gateway"]["gateway"]["extraConfig"]
    c = Config()
    for name, code in extra.items():
        exec(compile(code, f"extraConfig.{name}", "exec"), {"c": c})
    options = c.Backend.cluster_options
    image = hub.answers["image_name"]
    assert [field["field"] for field in options.get_specification()] == ["worker_cores", "worker_memory", "image"]

    def configure(request: dict) -> dict:
        """What dask-gateway-server does with a user's request for a cluster."""
        return options.get_configuration(options.parse_options(request), None)

    user = {"worker_cores": 2, "worker_memory": 8, "image": f"{image}:abc123"}
    assert configure(user) == {"worker_cores": 2, "worker_memory": 8 * 2**30, "image": f"{image}:abc123"}
    with pytest.raises(ValueError, match="this hub's image"):
        configure({**user, "image": "docker.io/evil/miner:latest"})
    with pytest.raises(ValueError, match="this hub's image"):
        configure({**user, "image": image})  # no tag: not what the notebook runs
    with pytest.raises(ValueError):
        configure({**user, "worker_cores": float(hub.answers["worker_cores_max"]) + 1})
    with pytest.raises(ValueError):
        configure({**user, "worker_memory": float(hub.answers["worker_memory_max"]) + 1})
    assert c.ClusterConfig.cluster_max_cores == float(hub.answers["cluster_max_cores"])
    assert c.ClusterConfig.idle_timeout == int(hub.answers["idle_timeout_minutes"]) * 60


# --------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------


def test_secret_stubs_hold_only_placeholders(hub):
    for env in ("staging", "prod"):
        leaves = list(_leaves(hub.yaml(f"secrets/{env}.yaml")))
        assert leaves, f"secrets/{env}.yaml holds no values"
        for value in leaves:
            assert isinstance(value, str) and PLACEHOLDER.fullmatch(value), value
    # Anything that looks like a placeholder has the one form the checker knows.
    for relpath in sorted(f for f in hub.files() if f.startswith("secrets/")):
        for marker in re.findall(r"<[^<>\n]*>", (hub.path / relpath).read_text()):
            assert PLACEHOLDER.fullmatch(marker), f"{relpath}: {marker}"


def _leaves(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _leaves(value)
    elif isinstance(node, list):
        for value in node:
            yield from _leaves(value)
    else:
        yield node


def test_encryption_rule_covers_secrets_from_the_start(hub):
    secrets = sorted(f for f in hub.files() if f.startswith("secrets/"))
    plain = ["hubploy.yaml", "config/common.yaml", "image/binder/environment.yml"]
    if hub.answers["secrets_backend"] == "git-crypt":
        if not (hub.root / ".git").exists():
            git(hub.root, "init", "-q")
        base = hub.path.relative_to(hub.root).as_posix()
        out = git(hub.root, "check-attr", "filter", "diff", "--", *(f"{base}/{f}" for f in secrets + plain))
        attrs = {}
        for line in out.splitlines():
            path, attr, value = line.split(": ")
            attrs[path.removeprefix(base + "/"), attr] = value
        key = f"git-crypt-{hub.answers['git_crypt_key']}"  # the hub's own key
        for f in secrets:
            assert attrs[f, "filter"] == key and attrs[f, "diff"] == key, f
        for f in plain:
            assert attrs[f, "filter"] == "unspecified", f
    else:
        key_field = hub.cloud["sops_key_field"]
        for f in secrets:
            for cwd in (hub.path, hub.path / "secrets"):
                rule = sops_rule(cwd, hub.path / f)
                assert rule is not None, f"sops run in {cwd} finds no rule for {f}"
                assert rule[key_field] == hub.answers["sops_key"]
            # The path untrimmed too (sops keeps it absolute when the config
            # directory is not its prefix, e.g. through a symlink).
            assert _first_rule(hub.path / ".sops.yaml", str(hub.path / f)) is not None
        for f in plain:
            assert sops_rule(hub.path, hub.path / f) is None, f


def sops_rule(cwd: Path, file: Path) -> dict | None:
    """The creation rule sops applies to ``file`` when run in ``cwd``, as the
    checker finds it: the file's absolute path with the config's directory
    trimmed (untrimmed when the directory is not its prefix)."""
    config = nearest_sops_config(cwd)
    if config is None:
        return None
    absolute = str(file.absolute())
    return _first_rule(config, absolute.removeprefix(str(config.parent.absolute()) + os.sep))


def _first_rule(config: Path, path: str) -> dict | None:
    return sops_creation_rule(yaml.safe_load(config.read_text())["creation_rules"], path)


def test_readme_explains_this_hub(hub):
    """The hub's README names every file it has, draws how they flow into a
    running hub, and gives secrets commands that work as written."""
    readme = (hub.path / "README.md").read_text()
    explained = set()
    for row in readme.splitlines():
        if row.startswith("| `"):
            names = re.findall(r"`([^`]+)`", row.split("|")[1])
            folder = names[0].rpartition("/")[0]
            explained |= {name if "/" in name or not folder else f"{folder}/{name}" for name in names}
    assert hub.files() <= explained, f"files the README's table does not explain: {hub.files() - explained}"

    flow = re.search(r"```mermaid\n(.*?)```", readme, re.S).group(1)
    for step in (
        ".copier-answers.yml",
        "deployments/charlie/",
        "CI: repo2docker --push",
        "CI: hubploy deploy",
        "helm upgrade charlie-",
        "chart/",
        "JupyterHub",
        hub.answers["domain"],
    ):
        assert step in flow, step
    # The real path: a pull request to staging, what CI checks, what it deploys, where to look.
    deploying = readme[readme.index("## Deploying") : readme.index("## Secrets checklist")]
    # The command CI runs (deploy_plan.py), with the helm value where this backend keeps the users' image.
    from hub_template.deploy_plan import deploy_command

    kubernetes = hub.answers["dask_backend"] == "kubernetes"
    tag_value = "jupyterhub" if kubernetes else f"{hub.answers['helm_umbrella_key']}.jupyterhub"
    deploy = " ".join(deploy_command("charlie", "staging", f"{tag_value}.singleuser.image.tag", "<tag>"))
    for words in (
        "open a pull request to `staging`",
        "hub-template check deployments/charlie",
        deploy,
        "Merge `staging` into `prod`",
        "Actions tab",
        "kubectl -n charlie-staging get pods",
    ):
        assert words in deploying, words
    assert "hubploy build" not in readme  # today's hubploy has no build
    assert ("Dask Gateway" if hub.answers["dask_backend"] == "gateway" else "dask worker pods") in flow
    for section in ("## Before the first deploy", "## Deploying", "## Secrets checklist", "## Updating"):
        assert section in readme

    if hub.answers["secrets_backend"] == "sops":
        # sops finds .sops.yaml from its working directory, so from the
        # repository's root it finds no rule for the hub: every command cds first.
        assert sops_rule(hub.root, hub.path / "secrets" / "prod.yaml") is None
        spans = [
            span
            for line in readme.splitlines()
            if not line.startswith("```")
            for span in re.findall(r"`([^`]+)`", line)
        ]
        commands = [span for span in spans if re.search(r"(^|&& )sops ", span)]
        assert commands and all(c.startswith("cd deployments/charlie && sops ") for c in commands), commands
    else:
        assert "git-crypt status -e deployments/charlie" in readme


# --------------------------------------------------------------------------
# The image
# --------------------------------------------------------------------------


def test_environment_yml_solves_anywhere(hub):
    env = hub.yaml("image/binder/environment.yml")
    assert "prefix" not in env and env["channels"] == ["conda-forge"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    specs = {}
    for line in conda:
        spec = rattler.MatchSpec(line)  # raises on anything conda would not parse
        assert spec.build is None, f"{line}: build strings only solve where they were exported"
        specs[spec.name.normalized] = spec
    python = specs["python"].version
    answer = rattler.Version(str(hub.answers["python_version"]))
    assert python is not None and _matches(python, answer)
    assert not _matches(python, answer.bump_minor())
    for name in ("dask", "distributed", "dask-labextension", hub.cloud["fsspec_package"], "xarray", "netcdf4"):
        assert name in specs, name
    assert str(specs["zarr"].version) == ">=2.18"
    if hub.answers["dask_backend"] == "gateway":
        pinned = specs["dask-gateway"].version
        chart = rattler.Version(VERSIONS["dask_gateway"])
        assert _matches(pinned, chart), "the image's dask-gateway must be the chart's"
        assert not _matches(pinned, chart.bump_patch()) and not _matches(pinned, chart.bump_minor())
        assert "dask-kubernetes" not in specs
    else:
        operator = specs["dask-kubernetes"].version
        assert _matches(operator, rattler.Version("2026.3.0"))  # the operator's KubeCluster
        assert not _matches(operator, rattler.Version("2024.4.2"))  # the last classic one
        # dask-kubernetes starts schedulers with `dask-scheduler`, gone in distributed 2026.6.
        assert not _matches(specs["distributed"].version, rattler.Version("2026.6.0"))
        assert "dask-gateway" not in specs
    assert "pip" in specs and pip == [["pystac-client", "odc-stac>=0.3"]]


def _matches(version_spec, version) -> bool:
    return rattler.VersionSpec(str(version_spec)).matches(version)


def test_apt_txt_lists_the_packages(hub):
    lines = (hub.image / "binder" / "apt.txt").read_text().splitlines()
    assert [line for line in lines if line and not line.startswith("#")] == ["nco", "cdo"]


def test_repo2docker_builds_with_conda_postbuild_and_start(hub, tmp_path):
    result = once_per_image(
        hub,
        "repo2docker",
        lambda: subprocess.run(
            [
                sys.executable,
                "-m",
                "repo2docker",
                "--no-build",
                "--debug",
                *REPO2DOCKER_OPTIONS,
                str(hub.image),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        ),
    )
    assert result.returncode == 0, result.stderr
    log, dockerfile = result.stderr, result.stdout
    assert "Python version unspecified" not in log + dockerfile
    assert f"Building conda environment for python={hub.answers['python_version']}" in log
    assert '--file "binder/environment.yml"' in dockerfile  # the conda buildpack, on binder/
    assert "RUN ./binder/postBuild" in dockerfile
    assert 'ENV R2D_ENTRYPOINT="${REPO_DIR}/binder/start"' in dockerfile
    assert re.search(r"apt-get install --yes --no-install-recommends cdo nco\b", dockerfile)


def test_shell_scripts_parse_and_pass_shellcheck(hub):
    for name in ("postBuild", "start"):
        script = hub.image / "binder" / name
        assert script.read_text().startswith("#!/bin/bash\n")
        run = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        run = subprocess.run([str(BIN / "shellcheck"), str(script)], capture_output=True, text=True)
        assert run.returncode == 0, run.stdout
    lines = [line.strip() for line in (hub.image / "binder" / "start").read_text().splitlines()]
    assert [line for line in lines if line][-1] == 'exec "$@"'


def test_dask_config_as_the_image_loads_it(hub, tmp_path, monkeypatch):
    prefix = tmp_path / "srv-conda-envs-notebook"
    monkeypatch.syspath_prepend(str(run_postbuild(hub.image, prefix)))
    monkeypatch.delitem(sys.modules, "hub_dask", raising=False)
    # What dask reads in the image: {sys.prefix}/etc/dask, sys.prefix being NB_PYTHON_PREFIX.
    config = dask.config.collect(paths=[str(prefix / "etc" / "dask")], env={})
    factory = config["labextension"]["factory"]
    answers = hub.answers
    default = config["labextension"]["default"]
    if answers["dask_backend"] == "gateway":
        # GatewayCluster.adapt() is a coroutine in the panel's async mode: +NEW
        # with `adapt` fails (tests/test_gateway.py drives the panel's manager).
        assert default == {"workers": 1}
    else:
        assert default["workers"] == 1 and default.get("adapt") is None

    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
    monkeypatch.setenv("JUPYTER_IMAGE_SPEC", f"{answers['image_name']}:abc123")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "not-a-real-token")
    # On top of the defaults the packages register, as at runtime.
    with dask.config.set(dask.config.merge(*dask.config.defaults, config)):
        from distributed.utils import format_dashboard_link

        assert format_dashboard_link("10.0.0.7", 8787) == "/user/alice/proxy/8787/status"
        if answers["dask_backend"] == "gateway":
            import dask_gateway

            # dask-labextension resolves its factory this way.
            cls = getattr(importlib.import_module(factory["module"]), factory["class"])
            assert cls is dask_gateway.GatewayCluster

            async def connect():
                # Asynchronous, as the dask panel's server extension uses it
                # (the synchronous client of 2026.3.0 raises when closed twice).
                gateway = dask_gateway.Gateway(asynchronous=True)
                try:
                    return gateway.address, gateway.auth, gateway._config_cluster_options()
                finally:
                    await gateway.close()

            address, auth, options = asyncio.run(connect())
            assert address == "http://proxy-public/services/dask-gateway"
            assert isinstance(auth, dask_gateway.JupyterHubAuth)
            assert options == {"image": f"{answers['image_name']}:abc123"}
        else:
            # The operator's KubeCluster (test_kubernetes_backend.py builds
            # the DaskCluster it sends from this same config).
            cls = getattr(importlib.import_module(factory["module"]), factory["class"])
            assert cls.__module__ == "hub_dask" and cls.__module__ in sys.modules
            assert sys.modules["hub_dask"].__file__.startswith(str(prefix))  # the one postBuild installed
            assert config["labextension"]["default"] == {"workers": 1, "adapt": None}
            kube = dask.config.get("kubernetes")
            assert kube["worker-command"].split()[:2] == ["dask", "worker"]
            memory = f"{float(answers['worker_memory']):g}G"
            assert kube["resources"]["limits"] == {"cpu": str(float(answers["worker_cores"])), "memory": memory}
            assert kube["idle-timeout"] == int(answers["idle_timeout_minutes"]) * 60


def test_workspace_imports_into_jupyterlab(hub, tmp_path):
    workspace = hub.image / "binder" / "jupyterlab-workspace.json"
    result = once_per_content(workspace.read_bytes(), "workspace", lambda: _import_workspace(workspace, tmp_path))
    assert result["returncode"] == 0, result["stderr"]
    saved = result["saved"]["data"]
    assert result["saved"]["metadata"]["id"] == "default"
    restorer = saved["layout-restorer:data"]
    assert "dask-dashboard-launcher" in restorer["left"]["widgets"]
    # The main area opens the welcome notebook: JupyterLab restores a widget the
    # layout names only from its own `notebook:<path>` entry (else a Launcher).
    main = restorer["main"]["dock"]["children"][0]
    assert main["widgets"] == ["notebook:hub-notebooks/welcome.ipynb"]
    assert saved["notebook:hub-notebooks/welcome.ipynb"] == {
        "data": {"path": "hub-notebooks/welcome.ipynb", "factory": "Notebook"}
    }
    # start copies image/welcome.ipynb there (test_start_runs_like_a_container_start).
    assert (hub.image / "welcome.ipynb").is_file()


def _import_workspace(workspace: Path, tmp_path: Path) -> dict:
    env = {**os.environ, "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    run = subprocess.run(
        [str(BIN / "jupyter"), "lab", "workspaces", "import", str(workspace)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    saved = sorted((tmp_path / "workspaces").glob("*.jupyterlab-workspace"))
    return {
        "returncode": run.returncode,
        "stderr": run.stderr,
        "saved": json.loads(saved[0].read_text()) if saved else None,
    }


def test_start_runs_like_a_container_start(hub, tmp_path):
    """A notebook server's start (copy notebooks, import the workspace with
    --name default, exec the command), then a dask worker's (exec only)."""
    result = once_per_image(hub, "start", lambda: _run_start(hub.image, tmp_path))
    server, worker = result["server"], result["worker"]
    assert server["returncode"] == 0, server["stderr"]
    assert server["argv"] == ["jupyterhub-singleuser", "--ip=0.0.0.0"]
    expected = sorted(
        p.relative_to(hub.image).as_posix()
        for p in hub.image.rglob("*")
        if p.is_file() and not any(part.startswith(".") or part == "binder" for part in p.relative_to(hub.image).parts)
    )
    # image/README.md is the maintainers' page about the image folder, not the users'.
    assert "README.md" in expected
    assert server["copied"] == [name for name in expected if name != "README.md"]
    assert server["workspace_id"] == "default"
    if server["welcome"] is not None:
        # The user's copy carries what the kernel reports, its version too
        # (the python on PATH here is the kernel's, as in the image).
        import platform

        from ipykernel.ipkernel import IPythonKernel

        copied = nbformat.reads(server["welcome"], as_version=nbformat.NO_CONVERT)
        assert copied.metadata.language_info == {**IPythonKernel.language_info, "version": platform.python_version()}
        assert copied.cells == nbformat.read(hub.image / "welcome.ipynb", as_version=nbformat.NO_CONVERT).cells
    assert worker["returncode"] == 0 and worker["argv"] == ["dask", "worker"]
    assert worker["copied"] == [] and worker["workspace_id"] is None


def _run_start(image: Path, tmp_path: Path) -> dict:
    # The container's command: records the arguments exec hands it.
    record = "import json, sys; json.dump(sys.argv[2:], open(sys.argv[1], 'w'))"
    results = {}
    for role, extra, argv in (
        ("server", {"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"}, ["jupyterhub-singleuser", "--ip=0.0.0.0"]),
        ("worker", {}, ["dask", "worker"]),
    ):
        home, workspaces = tmp_path / role / "home", tmp_path / role / "workspaces"
        home.mkdir(parents=True)
        argv_file = tmp_path / role / "argv.json"
        env = {
            "PATH": f"{BIN}:/usr/bin:/bin",
            "HOME": str(home),
            "REPO_DIR": str(image),
            "JUPYTERLAB_WORKSPACES_DIR": str(workspaces),
            **extra,
        }
        run = subprocess.run(
            ["bash", str(image / "binder" / "start"), sys.executable, "-c", record, str(argv_file), *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        saved = sorted(workspaces.glob("*.jupyterlab-workspace")) if workspaces.exists() else []
        notebooks = home / "hub-notebooks"
        welcome = notebooks / "welcome.ipynb"
        results[role] = {
            "welcome": welcome.read_text() if welcome.exists() else None,
            "returncode": run.returncode,
            "stderr": run.stderr,
            "argv": json.loads(argv_file.read_text()) if argv_file.exists() else None,
            "copied": sorted(p.relative_to(notebooks).as_posix() for p in notebooks.rglob("*") if p.is_file()),
            "workspace_id": json.loads(saved[0].read_text())["metadata"]["id"] if saved else None,
        }
    return results


def test_start_keeps_a_users_layout_until_the_hub_changes_its_workspace(template_repo, tmp_path):
    """start imports the hub's workspace at the first start, not at later ones
    (the user's own arrangement stays), and again once the image's workspace changes."""
    image = render(template_repo, tmp_path / "deployments" / "charlie", **ANSWERS) / "image"
    home, workspaces = tmp_path / "home", tmp_path / "workspaces"
    home.mkdir()
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(home),
        "REPO_DIR": str(image),
        "JUPYTERLAB_WORKSPACES_DIR": str(workspaces),
        "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/",
    }

    def start_server() -> dict:
        run = subprocess.run(
            ["bash", str(image / "binder" / "start"), "true"], env=env, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        [saved] = workspaces.glob("*.jupyterlab-workspace")
        return json.loads(saved.read_text())

    hub_left = start_server()["data"]["layout-restorer:data"]["left"]
    [saved] = workspaces.glob("*.jupyterlab-workspace")
    users = json.loads(saved.read_text())
    users["data"]["layout-restorer:data"]["left"]["collapsed"] = True  # the user hides the sidebar
    saved.write_text(json.dumps(users))
    assert start_server()["data"]["layout-restorer:data"]["left"]["collapsed"] is True

    workspace = image / "binder" / "jupyterlab-workspace.json"
    changed = json.loads(workspace.read_text())
    changed["data"]["layout-restorer:data"]["left"]["widgets"].append("extensionmanager.main-view")
    workspace.write_text(json.dumps(changed))  # a newer image with another workspace
    left = start_server()["data"]["layout-restorer:data"]["left"]
    assert left["collapsed"] is hub_left["collapsed"] is False
    assert left["widgets"] == hub_left["widgets"] + ["extensionmanager.main-view"]


# --------------------------------------------------------------------------
# Real-tool runs, once per distinct input
# --------------------------------------------------------------------------

_RUNS: dict = {}


def once_per_content(content: bytes, kind: str, run):
    key = (kind, hashlib.sha256(content).hexdigest())
    if key not in _RUNS:
        _RUNS[key] = run()
    return _RUNS[key]


def once_per_image(hub: RenderedHub, kind: str, run):
    digest = hashlib.sha256()
    for path in sorted(p for p in hub.image.rglob("*") if p.is_file()):
        digest.update(path.relative_to(hub.image).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return once_per_content(digest.digest(), kind, run)


# --------------------------------------------------------------------------
# The newcomer's command
# --------------------------------------------------------------------------


def test_defaults_render_offline_from_a_clone(template_repo, tmp_path, chart):
    clone = tmp_path / "hub-template"
    subprocess.run(["git", "clone", "-q", str(template_repo), str(clone)], check=True)
    federation = tmp_path / "federation"
    federation.mkdir()
    # No network: any attempt to reach a host fails fast.
    offline = {
        **os.environ,
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "ALL_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "",
        "GIT_ALLOW_PROTOCOL": "file",
    }
    run = subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", str(clone), "deployments/charlie"],
        cwd=federation,
        env=offline,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    path = federation / "deployments" / "charlie"
    answers = yaml.safe_load((path / ".copier-answers.yml").read_text())
    assert answers["hub_name"] == "charlie"
    assert answers["_commit"] == git(clone, "describe", "--tags")
    hub = RenderedHub(federation, path, answers)
    assert hub.files() == expected_files(answers)
    assert 'Your hub "charlie" is rendered' in run.stdout + run.stderr
    for env in ("staging", "prod"):
        files = [
            ValuesFile.load(path / rel, rel)
            for rel in ("config/common.yaml", f"config/{env}.yaml", f"secrets/{env}.yaml")
        ]
        assert [str(p) for p in check_values(chart, files, answers["helm_umbrella_key"])] == []
    apt = (path / "image" / "binder" / "apt.txt").read_text().splitlines()
    assert all(line.startswith("#") for line in apt if line)
