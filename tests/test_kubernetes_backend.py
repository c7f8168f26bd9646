"""The `kubernetes` dask backend: the dask-kubernetes operator's KubeCluster,
the jupyterhub chart alone (no dask-gateway), the users' service account and
Role from the federation's deployment chart (docs/kubernetes-backend.md).

What cannot exist here, and only that, is replaced (asserted in
test_the_overrides_are_only_what_cannot_exist_here):
- Kubernetes: KubeCluster's DaskCluster client, which would send the spec;
- chart repositories: the daskhub and jupyterhub charts' templates (their
  Chart.yaml, values and schemas are the real ones; GitHub Actions renders
  the whole chart, test_the_whole_chart_deploys_dask_gateway_only_for_gateway_hubs).
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dask.config
import kube_tools
import pytest
import yaml
from conftest import BIN, ROOT, chart_data, git, publish_template, render
from hub_cells import REAL_IDS, rendered_hub, run_postbuild
from template_versions import v1_1_0_source

from hub_template import load_data
from hub_template.checks.runner import run_checks

DEPLOYMENT_CHART = ROOT / "federation" / "chart"
OVERRIDES = {
    "dask_kubernetes.operator.kubecluster.kubecluster.DaskCluster": "the Kubernetes API client",
    "charts/*/templates": "the subcharts' templates (no chart repository here)",
}


def test_the_overrides_are_only_what_cannot_exist_here():
    assert sorted(OVERRIDES) == ["charts/*/templates", "dask_kubernetes.operator.kubecluster.kubecluster.DaskCluster"]


# --- the image's dask config makes the real DaskCluster spec ------------------------


class NoKubernetes(Exception):
    """Raised where KubeCluster would send its DaskCluster to Kubernetes."""


def pod_environment(hub: Path, image_spec: str) -> dict[str, str]:
    """The DASK_* variables of a user's pod: the hub's singleuser.extraEnv,
    with $(NAME) expanded as Kubernetes does from what KubeSpawner sets."""
    values = yaml.safe_load((hub / "config" / "common.yaml").read_text())
    spawner = {"JUPYTER_IMAGE_SPEC": image_spec, "JUPYTERHUB_USER": "alice"}
    extra = values["jupyterhub"]["singleuser"]["extraEnv"]
    expanded = {
        name: re.sub(r"\$\((\w+)\)", lambda m: spawner[m.group(1)], str(value)) for name, value in extra.items()
    }
    return {name: value for name, value in expanded.items() if name.startswith("DASK_")}


def strict(schema):
    """The CRD's structural schema as the API server's strict field
    validation applies it: an unknown field is an error, not pruned."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def daskcluster_schema() -> dict:
    """The DaskCluster CRD the operator's helm chart installs, from the
    installed dask-kubernetes."""
    import dask_kubernetes

    crd = (
        Path(dask_kubernetes.__file__).parent
        / "operator"
        / "deployment"
        / "helm"
        / "dask-kubernetes-operator"
        / "crds"
        / "daskcluster.yaml"
    )
    doc = yaml.safe_load(crd.read_text())
    assert doc["spec"]["names"]["kind"] == "DaskCluster"
    (v1,) = [v for v in doc["spec"]["versions"] if v["name"] == "v1"]
    schema = strict(v1["schema"]["openAPIV3Schema"])
    # The fields every object has, which a CRD's schema leaves implicit.
    group = doc["spec"]["group"]
    schema["properties"].update(
        apiVersion={"const": f"{group}/v1"},
        kind={"const": "DaskCluster"},
        metadata={"type": "object", "required": ["name"]},
    )
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    return schema


def test_the_image_config_makes_kubecluster_send_a_valid_daskcluster(
    template_repo, tmp_path_factory, tmp_path, monkeypatch
):
    import jsonschema
    from dask_kubernetes.operator.kubecluster import kubecluster
    from distributed.core import Status

    hub = rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", "kubernetes")
    answers = yaml.safe_load((hub / ".copier-answers.yml").read_text())
    image_spec = f"{answers['image_name']}:0123abcd"
    account = yaml.safe_load((hub / "config" / "common.yaml").read_text())["deployment"]["serviceAccount"]["name"]
    prefix = tmp_path / "srv-conda-envs-notebook"
    # The notebook's Python imports what postBuild put in its site-packages.
    monkeypatch.syspath_prepend(str(run_postbuild(hub / "image", prefix)))
    folder = prefix / "etc" / "dask"
    monkeypatch.delitem(sys.modules, "hub_dask", raising=False)
    env = pod_environment(hub, image_spec)
    assert set(env) == {"DASK_KUBERNETES__IMAGE"}
    # What dask reads in the image: {sys.prefix}/etc/dask, then the pod's DASK_* variables.
    config = dask.config.collect(paths=[str(folder)], env=env)

    sent = []

    def no_kubernetes(data, namespace=None):
        sent.append((copy.deepcopy(data), namespace))
        raise NoKubernetes

    monkeypatch.setattr(kubecluster, "DaskCluster", no_kubernetes)
    with dask.config.set(dask.config.merge(*dask.config.defaults, config)):
        factory = config["labextension"]["factory"]
        # dask-labextension resolves its factory this way.
        cls = getattr(importlib.import_module(factory["module"]), factory["class"])
        assert importlib.import_module("hub_dask").__file__.startswith(str(prefix))

        async def create():
            from tornado.ioloop import IOLoop

            # Made on the running loop, KubeCluster leaves its start to the caller.
            cluster = cls(
                *factory["args"],
                asynchronous=True,
                loop=IOLoop.current(),
                namespace="charlie-staging",
                **factory["kwargs"],
            )
            try:
                with pytest.raises(NoKubernetes):
                    await cluster._create_cluster()  # what KubeCluster._start sends first
            finally:
                cluster.status = Status.closed  # nothing was created, nothing to close
                kubecluster.KubeCluster._instances.discard(cluster)
            return cluster.name

        name = asyncio.run(create())

    ((spec, namespace),) = sent
    assert namespace == "charlie-staging"
    jsonschema.Draft7Validator(daskcluster_schema()).validate(spec)
    assert spec["metadata"]["name"] == name and name.startswith("dask-")
    (worker,) = spec["spec"]["worker"]["spec"]["containers"]
    (scheduler,) = spec["spec"]["scheduler"]["spec"]["containers"]
    assert worker["image"] == scheduler["image"] == image_spec  # the user's own image and tag
    cores = max(1, int(-(-float(answers["worker_cores"]) // 1)))
    assert worker["args"][:6] == [
        "dask",
        "worker",
        "--nthreads",
        str(cores),
        "--memory-limit",
        f"{float(answers['worker_memory']):g}GB",
    ]
    memory = f"{float(answers['worker_memory']):g}G"
    assert worker["resources"]["limits"] == {"cpu": str(float(answers["worker_cores"])), "memory": memory}
    assert spec["spec"]["worker"]["replicas"] == 1
    assert spec["spec"]["idleTimeout"] == int(answers["idle_timeout_minutes"]) * 60
    # Both pods on the dask node pool, as the hub's account (test_cluster.py checks the values).
    for pod in ("scheduler", "worker"):
        placed = spec["spec"][pod]["spec"]
        assert placed["serviceAccountName"] == account
        assert placed["nodeSelector"] and placed["tolerations"], pod


def test_the_image_keeps_the_scheduler_command_dask_kubernetes_runs(template_repo, tmp_path_factory):
    """dask-kubernetes starts every scheduler with `dask-scheduler`, which
    distributed 2026.6 removed; the image pins distributed below that."""
    from importlib.metadata import entry_points, version

    from dask_kubernetes.operator import make_cluster_spec
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    spec = make_cluster_spec(name="dask-x")
    assert spec["spec"]["scheduler"]["spec"]["containers"][0]["args"][0] == "dask-scheduler"
    pin = load_data("versions.yml")["dask_kubernetes_distributed"]
    if Version(version("distributed")) >= Version("2026.6"):  # the newest distributed here
        assert not entry_points(group="console_scripts", name="dask-scheduler")
    assert Version("2026.6.0") not in SpecifierSet(pin) and Version("2026.3.0") in SpecifierSet(pin)
    hub = rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", "kubernetes")
    assert f"  - distributed{pin}" in (hub / "image" / "binder" / "environment.yml").read_text()


# --- the deployment chart's objects, with the real helm -------------------------------


def helm() -> str:
    return str(kube_tools.helm())


def deployment_chart(tmp_path: Path, daskhub: Path) -> Path:
    """The federation's deployment chart with its two dependencies in charts/:
    daskhub as given, and the jupyterhub chart daskhub bundles (the version
    the deployment chart asks for)."""
    import jinja2

    chart = tmp_path / "deployment"
    shutil.copytree(DEPLOYMENT_CHART, chart, ignore=shutil.ignore_patterns("*.jinja"))
    # Chart.yaml as a federation renders it (federation/ is a copier template).
    source = (DEPLOYMENT_CHART / "Chart.yaml.jinja").read_text()
    (chart / "Chart.yaml").write_text(
        jinja2.Template(source, undefined=jinja2.StrictUndefined).render(
            federation_name="deployment", helm_umbrella_key="daskhub", versions=load_data("versions.yml")
        )
    )
    (chart / "charts").mkdir()
    shutil.copytree(daskhub, chart / "charts" / "daskhub", symlinks=False)
    bundled = daskhub / "charts"
    folder = bundled / "jupyterhub"
    if folder.is_dir():
        shutil.copytree(folder, chart / "charts" / "jupyterhub")
    else:
        (packed,) = bundled.glob("jupyterhub-*.tgz")
        shutil.copy2(packed, chart / "charts" / packed.name)
    return chart


def helm_template(chart: Path, hub: Path, env: str) -> list[tuple[str, dict]]:
    """(source template, object) for each object helm renders, with the hub's
    values layered as hubploy layers them."""
    files = [hub / "config" / "common.yaml", hub / "config" / f"{env}.yaml", hub / "secrets" / f"{env}.yaml"]
    release = f"{hub.name}-{env}"
    done = subprocess.run(
        [
            str(helm()),
            "template",
            release,
            str(chart),
            "--namespace",
            release,
            *(a for f in files for a in ("--values", str(f))),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    objects = []
    for doc in done.stdout.split("\n---\n"):
        source = next(
            (line.removeprefix("# Source: ") for line in doc.splitlines() if line.startswith("# Source: ")), ""
        )
        obj = yaml.safe_load(doc)
        if obj:
            objects.append((source, obj))
    return objects


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_the_deployment_chart_makes_the_users_account_and_role(template_repo, tmp_path_factory, tmp_path, env):
    chart = deployment_chart(tmp_path, chart_data())
    hub = rendered_hub(template_repo, tmp_path_factory, "aws", "sops", "kubernetes")
    objects = helm_template(chart, hub, env)
    own = {(o["kind"], o["metadata"]["name"]): o for s, o in objects if s.startswith("deployment/templates/")}
    account = yaml.safe_load((hub / "config" / "common.yaml").read_text())["jupyterhub"]["singleuser"][
        "serviceAccountName"
    ]
    assert set(own) == {
        ("ServiceAccount", account),
        ("Role", f"{account}-dask-kubernetes"),
        ("RoleBinding", f"{account}-dask-kubernetes"),
    }
    namespace = f"charlie-{env}"
    assert {o["metadata"]["namespace"] for o in own.values()} == {namespace}
    binding = own[("RoleBinding", f"{account}-dask-kubernetes")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    assert binding["roleRef"]["name"] == f"{account}-dask-kubernetes"
    rules = own[("Role", f"{account}-dask-kubernetes")]["rules"]
    dask_rule = next(r for r in rules if r["apiGroups"] == ["kubernetes.dask.org"])
    assert {"daskclusters", "daskworkergroups"} <= set(dask_rule["resources"])
    assert {"create", "delete", "get", "list", "watch", "patch"} <= set(dask_rule["verbs"])

    manifest = tmp_path / "objects.yaml"
    manifest.write_text(yaml.safe_dump_all(list(own.values())))
    done = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", str(manifest)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed") == 3, done.stdout


def test_a_gateway_hub_gets_no_dask_kubernetes_objects(template_repo, tmp_path_factory, tmp_path):
    chart = deployment_chart(tmp_path, chart_data())
    hub = rendered_hub(template_repo, tmp_path_factory, "aws", "sops", "gateway")
    objects = helm_template(chart, hub, "staging")
    # Only the users' account (its cloud identity, docs/cluster.md): no Role to make DaskClusters.
    account = yaml.safe_load((hub / "config" / "common.yaml").read_text())["deployment"]["serviceAccount"]["name"]
    own = [(o["kind"], o["metadata"]["name"]) for s, o in objects if s.startswith("deployment/templates/")]
    assert own == [("ServiceAccount", account)]


def test_the_whole_chart_deploys_dask_gateway_only_for_gateway_hubs(template_repo, tmp_path_factory, tmp_path):
    """GitHub Actions only: the whole chart, with daskhub's and jupyterhub's
    templates (.ci/daskhub-chart builds daskhub from GitHub)."""
    built = os.environ.get("HUB_TEMPLATE_DASKHUB_CHART")
    if not built:
        pytest.skip(
            "needs the built daskhub chart (GitHub, chart repositories): "
            "set HUB_TEMPLATE_DASKHUB_CHART from .ci/daskhub-chart, as GitHub Actions does"
        )
    daskhub = Path(built)
    chart = deployment_chart(tmp_path / "deployment", daskhub)
    gateway_source = "deployment/charts/daskhub/charts/dask-gateway/"

    def gateway_objects(objects):
        return sorted((o["kind"], o["metadata"]["name"]) for s, o in objects if s.startswith(gateway_source))

    gateway_hub = rendered_hub(template_repo, tmp_path_factory, "aws", "sops", "gateway")
    kubernetes_hub = rendered_hub(template_repo, tmp_path_factory, "aws", "sops", "kubernetes")
    # Every object daskhub alone renders for its gateway, for the same values.
    alone = tmp_path / "alone"
    alone.mkdir()
    umbrella = yaml.safe_load((gateway_hub / ".copier-answers.yml").read_text())["helm_umbrella_key"]
    layers = []
    for rel in ("config/common.yaml", "config/staging.yaml", "secrets/staging.yaml"):
        layer = alone / rel.replace("/", "-")
        layer.write_text(yaml.safe_dump(yaml.safe_load((gateway_hub / rel).read_text())[umbrella]))
        layers += ["--values", str(layer)]
    done = subprocess.run(
        [str(helm()), "template", "charlie-staging", str(daskhub), "--namespace", "charlie-staging", *layers],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    expected = sorted(
        (o["kind"], o["metadata"]["name"])
        for doc in done.stdout.split("\n---\n")
        if "charts/dask-gateway/" in doc
        for o in [yaml.safe_load(doc)]
        if o
    )
    assert len(expected) >= 19
    assert gateway_objects(helm_template(chart, gateway_hub, "staging")) == expected
    kubernetes_objects = helm_template(chart, kubernetes_hub, "staging")
    assert gateway_objects(kubernetes_objects) == []
    assert not any(s.startswith("deployment/charts/daskhub/") for s, _ in kubernetes_objects)
    assert any(s.startswith("deployment/charts/jupyterhub/") for s, _ in kubernetes_objects)


# --- the checker models helm; a 1.1.0 kubernetes hub updates and passes -------------------


def failed(hub: Path, chart: Path) -> dict[str, str]:
    return {r.name: r.err_msg for r in run_checks(hub, chart).results if r.result is False}


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    """A template repository tagged v1.1.0 (as released) and v1.2.0 (the current one)."""
    base = tmp_path_factory.mktemp("released")
    repo = base / "hub-template"
    publish_template(repo, "v1.1.0", source=v1_1_0_source(base / "v1.1.0"))
    return publish_template(repo, "v1.2.0", source=ROOT)


def test_the_checker_fails_a_1_1_0_kubernetes_hub_and_passes_it_updated(released, tmp_path):
    from copier import run_copy

    chart = chart_data()
    fed = tmp_path / "federation"
    fed.mkdir()
    git(fed, "init", "-q")
    hub = fed / "deployments" / "charlie"
    run_copy(
        str(released),
        str(hub),
        data={"dask_backend": "kubernetes", **REAL_IDS},
        vcs_ref="v1.1.0",
        defaults=True,
        unsafe=True,
        quiet=True,
    )
    git(fed, "add", "-A")
    git(fed, "commit", "-q", "-m", "charlie at 1.1.0")

    problems = failed(hub, chart)
    # What helm does with 1.1.0's values: nil over daskhub's own values, a key
    # nobody reads, a gateway deployed anyway, the classic KubeCluster.
    assert {"HV001", "HV002", "HV003", "IM005", "DK003"} <= set(problems), problems
    assert "daskhub.dask-kubernetes" in problems["HV002"]
    assert "hub.services.dask-gateway: null" in problems["HV003"]
    assert "00-add-dask-gateway-values: null" in problems["HV003"]
    assert "helm keeps it as nil" in problems["HV003"]
    assert "deploys daskhub, whose dask-gateway has no condition" in problems["HV001"]

    done = subprocess.run(
        [str(BIN / "copier"), "update", "--trust", "--defaults", "--vcs-ref", "v1.2.0"],
        cwd=hub,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "migration 1.2.0 (dask_kubernetes_operator): the kubernetes dask backend now uses" in done.stderr
    assert "helm install --repo https://helm.dask.org" in done.stderr
    # copier never rewrites secrets/: the migration moved their values up.
    assert "moved secrets/staging.yaml's daskhub.jupyterhub to jupyterhub" in done.stderr
    assert not list(hub.rglob("*.rej"))
    common = yaml.safe_load((hub / "config" / "common.yaml").read_text())
    assert "daskhub" not in common and common["deployment"]["daskGateway"] == {"enabled": False}
    assert failed(hub, chart) == {}


def test_the_1_1_0_migration_names_the_files_it_cannot_move(tmp_path):
    """A sops-encrypted secrets file would lose its MAC: the migration names it."""
    from hub_template.migrations import dask_kubernetes_operator

    (tmp_path / ".copier-answers.yml").write_text("_commit: v1.1.0\ndask_backend: kubernetes\n")
    (tmp_path / "secrets").mkdir()
    sealed = "daskhub:\n  jupyterhub:\n    hub:\n      config: ENC[AES256_GCM,data:x]\nsops:\n  mac: ENC[x]\n"
    (tmp_path / "secrets" / "prod.yaml").write_text(sealed)
    (tmp_path / "secrets" / "staging.yaml").write_text("daskhub:\n  jupyterhub:\n    hub: {}\n")
    said = dask_kubernetes_operator(tmp_path)
    assert "moved secrets/staging.yaml's daskhub.jupyterhub to jupyterhub" in said
    assert "by hand in secrets/prod.yaml (sops-encrypted: edit it with `sops`)" in said
    assert (tmp_path / "secrets" / "prod.yaml").read_text() == sealed
    assert yaml.safe_load((tmp_path / "secrets" / "staging.yaml").read_text()) == {"jupyterhub": {"hub": {}}}


def test_the_1_1_0_migration_leaves_gateway_hubs_alone(tmp_path):
    from hub_template.migrations import dask_kubernetes_operator

    (tmp_path / ".copier-answers.yml").write_text("_commit: v1.1.0\ndask_backend: gateway\n")
    assert dask_kubernetes_operator(tmp_path) is None


def test_a_new_kubernetes_hub_passes_the_checker(template_repo, tmp_path):
    fed = tmp_path / "federation"
    hub = render(template_repo, fed / "deployments" / "charlie", dask_backend="kubernetes", **REAL_IDS)
    git(fed, "init", "-q")
    git(fed, "add", "-A")
    git(fed, "commit", "-q", "-m", "charlie")
    assert failed(hub, chart_data()) == {}
    # HV001 judges exactly the switch: a hub that turns the gateway back on fails.
    common = hub / "config" / "common.yaml"
    common.write_text(common.read_text().replace("  daskGateway:\n    enabled: false\n", ""))
    git(fed, "commit", "-q", "-am", "gateway back on")
    problems = failed(hub, chart_data())
    assert set(problems) == {"HV001"}, problems
    assert "`deployment.daskGateway.enabled` is not `false` in `staging`" in problems["HV001"]
