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


def sent_daskcluster(hub: Path, image_spec: str, tmp_path: Path, monkeypatch) -> tuple[dict, str, str]:
    """(the DaskCluster, its namespace, the cluster's name) KubeCluster sends
    from the hub's image config, in a pod whose image is ``image_spec``."""
    from dask_kubernetes.operator.kubecluster import kubecluster
    from distributed.core import Status

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
    return spec, namespace, name


def test_the_image_config_makes_kubecluster_send_a_valid_daskcluster(
    template_repo, tmp_path_factory, tmp_path, monkeypatch
):
    import jsonschema

    hub = rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", "kubernetes")
    answers = yaml.safe_load((hub / ".copier-answers.yml").read_text())
    image_spec = f"{answers['image_name']}:0123abcd"
    account = yaml.safe_load((hub / "config" / "common.yaml").read_text())["deployment"]["serviceAccount"]["name"]
    spec, namespace, name = sent_daskcluster(hub, image_spec, tmp_path, monkeypatch)
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
    # Chart.yaml and values.yaml as a federation renders them (federation/ is a copier template).
    for name in ("Chart.yaml", "values.yaml"):
        source = (DEPLOYMENT_CHART / f"{name}.jinja").read_text()
        (chart / name).write_text(
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
    policies = {f"charlie-{env}-{kind}" for kind in DASK_KINDS}
    assert set(own) == {
        ("ServiceAccount", account),
        ("Role", f"{account}-dask-kubernetes"),
        ("RoleBinding", f"{account}-dask-kubernetes"),
        *(("ValidatingAdmissionPolicy", name) for name in policies),
        *(("ValidatingAdmissionPolicyBinding", name) for name in policies),
    }
    namespace = f"charlie-{env}"
    namespaced = [o for o in own.values() if not o["kind"].startswith("ValidatingAdmissionPolicy")]
    assert {o["metadata"]["namespace"] for o in namespaced} == {namespace}
    # Each policy guards only this release's namespace, and denies.
    for name in policies:
        binding = own[("ValidatingAdmissionPolicyBinding", name)]["spec"]
        assert binding["policyName"] == name and binding["validationActions"] == ["Deny"]
        assert binding["matchResources"]["namespaceSelector"] == {
            "matchLabels": {"kubernetes.io/metadata.name": namespace}
        }
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
    assert done.stdout.count("passed") == 9, done.stdout
    # The hub namespaces enforce Pod Security baseline, which refuses z2jh's
    # privileged metadata-blocking init container: the chart turns it off
    # for both charts a hub may deploy (the users' NetworkPolicy blocks it).
    defaults = yaml.safe_load((chart / "values.yaml").read_text())
    for jh in (defaults["daskhub"]["jupyterhub"], defaults["jupyterhub"]):
        assert jh["singleuser"]["cloudMetadata"] == {"blockWithIptables": False}


# --- the admission policy's CEL, evaluated against real and hostile specs -----------------

# The kinds whose pod specs the users' Role lets them send (dask-kubernetes' CRDs).
DASK_KINDS = {"daskclusters": "DaskCluster", "daskworkergroups": "DaskWorkerGroup", "daskjobs": "DaskJob"}


def admitted(policy: dict, obj: dict) -> list[str]:
    """The messages of the policy's validations that deny ``obj``, each
    expression evaluated by cel-python as the API server's CEL would (an
    evaluation error denies too: the policy's failurePolicy is Fail). One
    difference errs on the safe side: cel-python does not absorb an error
    into `false && error`, so it may deny where the API server says false,
    which denies as well; an admitted spec must evaluate true in both."""
    import celpy

    assert policy["spec"]["failurePolicy"] == "Fail"
    env = celpy.Environment()
    activation = {"object": celpy.json_to_cel(obj)}
    denied = []
    for rule in policy["spec"]["validations"]:
        try:
            result = env.program(env.compile(rule["expression"])).evaluate(activation)
        except celpy.CELEvalError:
            result = None
        if result is not True and result != celpy.celtypes.BoolType(True):
            denied.append(rule["message"])
    return denied


def hostile(pod: dict, hub_image: str) -> dict[str, dict]:
    """A user's ways to escape through a pod spec, each a changed copy of ``pod``."""

    def changed(edit):
        out = copy.deepcopy(pod)
        edit(out)
        return out

    def container(**fields):
        return lambda p: p["containers"][0].update(fields)

    return {
        "another image": changed(container(image="docker.io/attacker/miner:latest")),
        "a look-alike image": changed(container(image=f"{hub_image}-evil:latest")),
        "no image": changed(lambda p: p["containers"][0].pop("image")),
        "another account": changed(lambda p: p.update(serviceAccountName="default")),
        "the deprecated account field": changed(lambda p: p.update(serviceAccount="hub")),
        "the hub's Secret mounted": changed(
            lambda p: p.update(volumes=[{"name": "s", "secret": {"secretName": "hub"}}])
        ),
        "a hostPath": changed(lambda p: p.update(volumes=[{"name": "h", "hostPath": {"path": "/"}}])),
        "the host's network": changed(lambda p: p.update(hostNetwork=True)),
        "the host's processes": changed(lambda p: p.update(hostPID=True)),
        "a chosen node": changed(lambda p: p.update(nodeName="system-node-1")),
        "privileged": changed(container(securityContext={"privileged": True})),
        "privilege escalation": changed(container(securityContext={"allowPrivilegeEscalation": True})),
        "added capabilities": changed(container(securityContext={"capabilities": {"add": ["SYS_ADMIN"]}})),
        "a host port": changed(container(ports=[{"containerPort": 80, "hostPort": 80}])),
        "a Secret in env": changed(
            container(env=[{"name": "T", "valueFrom": {"secretKeyRef": {"name": "hub", "key": "values.yaml"}}}])
        ),
        "a Secret as env": changed(container(envFrom=[{"secretRef": {"name": "hub"}}])),
        "an init container of another image": changed(
            lambda p: p.update(initContainers=[{"name": "i", "image": "busybox:latest"}])
        ),
        "an ephemeral container": changed(
            lambda p: p.update(ephemeralContainers=[{"name": "e", "image": "busybox:latest"}])
        ),
    }


def test_the_policy_admits_kubeclusters_own_specs_and_denies_every_escape(
    template_repo, tmp_path_factory, tmp_path, monkeypatch
):
    chart = deployment_chart(tmp_path / "chart", chart_data())
    hub = rendered_hub(template_repo, tmp_path_factory, "aws", "sops", "kubernetes")
    objects = helm_template(chart, hub, "staging")
    policies = {
        o["spec"]["matchConstraints"]["resourceRules"][0]["resources"][0]: o
        for _, o in objects
        if o["kind"] == "ValidatingAdmissionPolicy"
    }
    assert set(policies) == set(DASK_KINDS)
    values = yaml.safe_load((hub / "config" / "common.yaml").read_text())
    image = values["jupyterhub"]["singleuser"]["image"]["name"]
    # What the hub itself sends: KubeCluster's DaskCluster, from the notebook's image.
    cluster, _, name = sent_daskcluster(hub, f"{image}:0123abcd", tmp_path, monkeypatch)
    pods = cluster["spec"]
    group = {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskWorkerGroup", "metadata": {"name": f"{name}-more"}}
    group["spec"] = {"cluster": name, "worker": copy.deepcopy(pods["worker"])}
    job_pod = copy.deepcopy(pods["scheduler"]["spec"])
    job_pod["containers"][0]["image"] = f"{image}@sha256:{'0' * 64}"
    job = {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskJob", "metadata": {"name": "job"}}
    job["spec"] = {"job": {"spec": job_pod}, "cluster": {"spec": copy.deepcopy(pods)}}
    own = {"daskclusters": cluster, "daskworkergroups": group, "daskjobs": job}
    # Where each kind holds its pod specs.
    paths = {
        "daskclusters": [("spec", "scheduler", "spec"), ("spec", "worker", "spec")],
        "daskworkergroups": [("spec", "worker", "spec")],
        "daskjobs": [("spec", "job", "spec"), ("spec", "cluster", "spec", "worker", "spec")],
    }
    for kind, obj in own.items():
        assert admitted(policies[kind], obj) == [], kind
        # The scheduler's Service, published or hijacking addresses.
        if kind != "daskworkergroups":
            for escape in ({"type": "LoadBalancer"}, {"type": "NodePort"}, {"externalIPs": ["10.0.0.1"]}):
                bad = copy.deepcopy(obj)
                scheduler = (
                    bad["spec"]["scheduler"] if kind == "daskclusters" else bad["spec"]["cluster"]["spec"]["scheduler"]
                )
                scheduler["service"].update(escape)
                assert admitted(policies[kind], bad), f"{kind}: a scheduler Service {escape} was admitted"
        for path in paths[kind]:
            pod = obj
            for key in path:
                pod = pod[key]
            for escape, bad_pod in hostile(pod, image).items():
                bad = copy.deepcopy(obj)
                target = bad
                for key in path[:-1]:
                    target = target[key]
                target[path[-1]] = bad_pod
                assert admitted(policies[kind], bad), f"{kind} {'.'.join(path)}: {escape} was admitted"


def test_a_gateway_hub_gets_no_dask_kubernetes_objects(template_repo, tmp_path_factory, tmp_path):
    chart = deployment_chart(tmp_path, chart_data())
    hub = rendered_hub(template_repo, tmp_path_factory, "aws", "sops", "gateway")
    objects = helm_template(chart, hub, "staging")
    # Only the users' account (its cloud identity, docs/cluster.md): no Role to make DaskClusters.
    account = yaml.safe_load((hub / "config" / "common.yaml").read_text())["deployment"]["serviceAccount"]["name"]
    own = [(o["kind"], o["metadata"]["name"]) for s, o in objects if s.startswith("deployment/templates/")]
    assert own == [("ServiceAccount", account)]


def test_the_whole_chart_deploys_dask_gateway_only_for_gateway_hubs(template_repo, tmp_path_factory, tmp_path):
    """The whole chart, with daskhub's and jupyterhub's templates: the
    federation's own, built as its CI builds it (kube_tools.federation_chart)."""
    federation = kube_tools.federation_chart(tmp_path_factory.mktemp("federation-chart"))
    daskhub = federation / ".daskhub" / "daskhub"
    chart = federation / "chart"
    name = yaml.safe_load((chart / "Chart.yaml").read_text())["name"]
    gateway_source = f"{name}/charts/daskhub/charts/dask-gateway/"

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
    assert not any(s.startswith(f"{name}/charts/daskhub/") for s, _ in kubernetes_objects)
    assert any(s.startswith(f"{name}/charts/jupyterhub/") for s, _ in kubernetes_objects)


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
        # 1.2.0 asks the workload identity provider CI logs in with (1.1.0 had no such question).
        [
            str(BIN / "copier"),
            "update",
            "--trust",
            "--defaults",
            "--vcs-ref",
            "v1.2.0",
            "--data",
            f"gcp_workload_identity_provider={REAL_IDS['gcp_workload_identity_provider']}",
        ],
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
    # What is left is the hub's own: its starter notebook (never rewritten by an
    # update) still calls the classic KubeCluster, which the checker names.
    left = failed(hub, chart)
    assert set(left) == {"IM013"}, left
    assert "`image/welcome.ipynb`: cell 2 calls `from dask_kubernetes import KubeCluster`" in left["IM013"]
    assert "hub_dask.KubeCluster" in left["IM013"]


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
