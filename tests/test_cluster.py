"""What a hub's users get on the cluster, rendered from the cluster answers
(copier.yml, "Cluster: machine sizes, node pools, identity"): sizes bound to
real machines that fit them, dask pods on their own pool, one service account
with the provider's cloud identity, culling, a shared folder, a per-hub
git-crypt key, and the cost ceiling the README states.

The matrix: each provider x dask backend, once with the defaults and once
with every optional answer on (a GPU size, a team-only size, a shared folder,
no spot). What cannot exist here is stood in for, listed in STAND_INS.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import dask.config
import pytest
import yaml
from conftest import BIN, chart_data, git, render

from hub_template import load_data
from hub_template.helm_values import Chart, ValuesFile, check_values

PROVIDERS = load_data("providers.yml")
DEFAULTS = "defaults"
EVERYTHING = "everything"

# What cannot exist here, and what stands in for it: a user logged in with
# GitHub teams (KubeSpawner's spawner.user), and a running hub (the extraConfig
# snippets run against a traitlets Config, as z2jh's jupyterhub_config.py runs them).
STAND_INS = {"spawner.user": "SimpleNamespace(admin, groups)", "hub": "traitlets Config"}

# A client id for Azure's identity, which has no default (made after the hub).
AZURE_CLIENT_ID = "0a1b2c3d-0000-4000-8000-00000000abcd"


def everything(provider: str) -> dict:
    """Every optional cluster answer on, for this provider."""
    cloud = PROVIDERS[provider]
    small, *_ = cloud["default_sizes"]
    big = max(cloud["machines"], key=lambda m: cloud["machines"][m]["memory"])
    return {
        "github_orgs": "pangeo-data, my-lab:hub-users",
        "user_sizes": [
            dict(small),
            {"name": "huge", "machine": big, "cpu": 2, "memory": 24, "teams": ["my-lab:big-data"]},
        ],
        "gpu_size": True,
        "gpu_teams": ["pangeo-data:gpu"],
        "shared_folder": True,
        "shared_folder_size": 50,
        "dask_spot": False,
        "max_users": 7,
        "cull_idle_minutes": 15,
        "cull_max_age_hours": 0,
        "cull_kernel_minutes": 0,
        **({"cloud_identity": AZURE_CLIENT_ID} if provider == "azure" else {}),
    }


CELLS = [(p, d, k) for p in PROVIDERS for d in ("gateway", "kubernetes") for k in (DEFAULTS, EVERYTHING)]


class ClusterHub(SimpleNamespace):
    def yaml(self, rel):
        return yaml.safe_load((self.path / rel).read_text())


@pytest.fixture(scope="module", params=CELLS, ids="-".join)
def hub(request, template_repo, tmp_path_factory) -> ClusterHub:
    provider, dask_backend, kind = request.param
    data = everything(provider) if kind == EVERYTHING else {}
    path = render(
        template_repo,
        tmp_path_factory.mktemp("-".join(request.param)) / "deployments" / "charlie",
        cloud_provider=provider,
        dask_backend=dask_backend,
        **data,
    )
    answers = yaml.safe_load((path / ".copier-answers.yml").read_text())
    return ClusterHub(path=path, answers=answers, cloud=PROVIDERS[provider], kind=kind)


def merged(hub: ClusterHub, env: str = "staging") -> tuple[dict, list]:
    chart = Chart(chart_data())
    files = [
        ValuesFile.load(hub.path / rel, rel)
        for rel in ("config/common.yaml", f"config/{env}.yaml", f"secrets/{env}.yaml")
    ]
    umbrella = hub.answers["helm_umbrella_key"]
    layers = (f.data[umbrella] if umbrella in f.data else {"jupyterhub": jupyterhub(f.data, umbrella)} for f in files)
    return chart.merged(layers), check_values(chart, files, umbrella)


def jupyterhub(values: dict, umbrella: str) -> dict:
    """A values file's jupyterhub chart values: under the umbrella key for
    gateway hubs; at the top for kubernetes hubs, which deploy the jupyterhub
    chart alone."""
    return (values[umbrella]["jupyterhub"] if umbrella in values else values.get("jupyterhub")) or {}


# The allocatable rule, written out again from GKE's published table, to
# check the template's one definition (hooks/hub_template/jinja/cluster.jinja).
def allocatable(cloud: dict, machine: str) -> tuple[float, float]:
    facts, system = cloud["machines"][machine], cloud["system_pods"]
    m, c = facts["memory"], facts["cpu"]
    tiers = [(4, 0.25), (4, 0.20), (8, 0.10), (112, 0.06), (math.inf, 0.02)]
    reserved, left = 0.0, m
    for size, rate in tiers:
        reserved += rate * min(left, size)
        left = max(left - size, 0)
    cpu_tiers = [(1, 0.06), (1, 0.01), (2, 0.005), (math.inf, 0.0025)]
    kube_cpu, left = 0.0, c
    for size, rate in cpu_tiers:
        kube_cpu += rate * min(left, size)
        left = max(left - size, 0)
    # Rounded down to 0.05 CPU and 0.1 GB, as the rule says.
    return (
        math.floor(round((c - kube_cpu - system["cpu"]) / 0.05, 6)) * 0.05,
        math.floor(round((m - reserved - 0.1 - system["memory"]) / 0.1, 6)) * 0.1,
    )


def gib(spec: str) -> float:
    assert spec.endswith("G"), spec  # KubeSpawner's G is 2**30 bytes
    return float(spec[:-1])


# --------------------------------------------------------------------------


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_values_pass_the_chart_schemas(hub, env):
    values, problems = merged(hub, env)
    assert [str(p) for p in problems] == []
    assert values["jupyterhub"]["hub"]["config"]["JupyterHub"]["active_server_limit"] == int(hub.answers["max_users"])


def test_each_size_names_its_machine_and_fits_it(hub):
    singleuser = merged(hub)[0]["jupyterhub"]["singleuser"]
    profiles = singleuser["profileList"]
    sizes = list(hub.answers["user_sizes"]) + ([hub.cloud["gpu_size"]] if hub.answers["gpu_size"] else [])
    assert [p["slug"] for p in profiles] == [s["name"] for s in sizes]
    assert [p["slug"] for p in profiles if p.get("default")] == [hub.answers["default_size"]]
    label = hub.cloud["instance_type_label"]
    for size, profile in zip(sizes, profiles, strict=True):
        override = profile["kubespawner_override"]
        assert override["node_selector"] == {label: size["machine"]}
        cpu, memory = allocatable(hub.cloud, size["machine"])
        share = size.get("share", 1)
        assert gib(override["mem_guarantee"]) * share <= memory
        assert override["cpu_guarantee"] * share <= cpu
        assert gib(override["mem_limit"]) == gib(override["mem_guarantee"])  # the stated rule
        assert override["cpu_guarantee"] <= override["cpu_limit"] <= cpu
        if "memory" in size:
            assert gib(override["mem_guarantee"]) == size["memory"] and override["cpu_guarantee"] == size["cpu"]
        else:  # the whole share: less than 0.1 GB and 0.05 CPU left unused
            assert memory - gib(override["mem_guarantee"]) * share < 0.1 * share + 1e-9
        gpus = size.get("gpus", 0)
        if gpus:
            assert hub.cloud["machines"][size["machine"]]["gpus"] >= gpus
            assert override["extra_resource_limits"] == {hub.cloud["gpu"]["resource"]: str(gpus)}
            assert tolerates(override["tolerations"], hub.cloud["gpu"]["taint"])
            assert tolerates(override["tolerations"], hub.cloud["node_pools"]["user"]["taint"])
        else:
            assert "extra_resource_limits" not in override and "tolerations" not in override


def tolerates(tolerations: list[dict], taint: dict) -> bool:
    """Kubernetes' rule: a toleration matches a taint's key, effect and value."""
    return any(
        t["key"] == taint["key"]
        and t.get("effect") in (None, taint["effect"])
        and (t.get("operator") == "Exists" or t.get("value") == taint["value"])
        for t in tolerations
    )


def test_users_are_placed_on_the_users_pool(hub):
    jh = merged(hub)[0]["jupyterhub"]
    assert jh["scheduling"]["userPods"]["nodeAffinity"]["matchNodePurpose"] == "require"
    # z2jh's own label and toleration for that pool, which providers.yml names.
    assert hub.cloud["node_pools"]["user"]["label"] == {"hub.jupyter.org/node-purpose": "user"}
    assert tolerates(jh["scheduling"]["userPods"]["tolerations"], hub.cloud["node_pools"]["user"]["taint"])


def dask_pods(hub: ClusterHub) -> dict[str, dict]:
    """The dask scheduler's and worker's pod settings where each backend reads them."""
    if hub.answers["dask_backend"] == "gateway":
        chart_values = yaml.safe_load((chart_data() / "charts" / "dask-gateway" / "values.yaml").read_text())
        backend = merged(hub)[0]["dask-gateway"]["gateway"]["backend"]
        for pod in ("scheduler", "worker"):  # keys the chart itself has, not new ones
            assert chart_values["gateway"]["backend"][pod]["extraPodConfig"] == {}
        return {pod: backend[pod]["extraPodConfig"] for pod in ("scheduler", "worker")}
    spec = kube_cluster_spec(hub)
    return {pod: spec["spec"][pod]["spec"] for pod in ("scheduler", "worker")}


def kube_cluster_spec(hub: ClusterHub) -> dict:
    """The DaskCluster the image's hub_dask.KubeCluster sends the operator, from the image's config."""
    module = importlib.util.spec_from_file_location(f"hub_dask_{hub.kind}", hub.path / "image" / "hub_dask.py")
    hub_dask = importlib.util.module_from_spec(module)
    module.loader.exec_module(hub_dask)  # imports dask_kubernetes, which adds its defaults
    config = dask.config.collect(paths=[str(hub.path / "image" / ".dask")], env={})
    with dask.config.set(dask.config.merge(*dask.config.defaults, config)):
        return hub_dask.cluster_spec()


def test_dask_pods_run_on_the_dask_pool_as_the_hub_account(hub):
    cloud, spot = hub.cloud, hub.answers["dask_spot"]
    for pod, spec in dask_pods(hub).items():
        selector = spec["nodeSelector"]
        assert selector[cloud["instance_type_label"]] == hub.answers["dask_machine"]
        assert cloud["node_pools"]["dask"]["label"].items() <= selector.items()
        assert (cloud["spot"]["label"].items() <= selector.items()) is spot
        taint = cloud["node_pools"]["dask"]["taint"]
        assert tolerates(spec["tolerations"], taint)
        assert tolerates(spec["tolerations"], {**taint, "key": taint["key"].replace("/", "_")})
        if cloud["spot"]["taint"]:
            assert tolerates(spec["tolerations"], cloud["spot"]["taint"]) is spot
        assert spec["serviceAccountName"] == service_account(hub), pod


def service_account(hub: ClusterHub) -> str:
    account = hub.yaml("config/common.yaml")["deployment"]["serviceAccount"]
    assert account["create"] is True
    return account["name"]


def test_the_service_account_carries_the_cloud_identity(hub):
    account = hub.yaml("config/common.yaml")["deployment"]["serviceAccount"]
    singleuser = merged(hub)[0]["jupyterhub"]["singleuser"]
    assert singleuser["serviceAccountName"] == account["name"]
    identity = hub.answers["cloud_identity"]
    if not identity:  # Azure's default: its client id exists only once made
        assert hub.answers["cloud_provider"] == "azure" and account["annotations"] == {}
        assert (
            "extraLabels"
            not in jupyterhub(hub.yaml("config/common.yaml"), hub.answers["helm_umbrella_key"])["singleuser"]
        )
        assert "has no cloud identity yet" in (hub.path / "README.md").read_text()
        return
    assert account["annotations"] == {hub.cloud["identity"]["annotation"]: identity}
    labels = hub.cloud["identity"]["pod_labels"]
    assert labels.items() <= (singleuser.get("extraLabels") or {}).items()
    if labels and hub.answers["dask_backend"] == "gateway":
        c = gateway_config(hub)
        assert c.KubeClusterConfig.scheduler_extra_pod_labels == labels
        assert c.KubeClusterConfig.worker_extra_pod_labels == labels
    elif hub.answers["dask_backend"] == "kubernetes":  # the operator labels the role's pods so
        spec = kube_cluster_spec(hub)["spec"]
        for pod in ("scheduler", "worker"):
            assert labels.items() <= (spec[pod].get("metadata") or {}).get("labels", {}).items(), pod


def gateway_config(hub: ClusterHub):
    from traitlets.config import Config

    c = Config()
    for name, code in merged(hub)[0]["dask-gateway"]["gateway"]["extraConfig"].items():
        exec(compile(code, f"extraConfig.{name}", "exec"), {"c": c})
    return c


def hub_config(hub: ClusterHub):
    """The hub's extraConfig run after the profile list, as z2jh runs them."""
    from traitlets.config import Config

    jh = merged(hub)[0]["jupyterhub"]
    c = Config()
    c.KubeSpawner.profile_list = jh["singleuser"]["profileList"]
    for name, code in sorted(jh["hub"].get("extraConfig", {}).items()):
        if name.startswith("hub-template"):
            exec(compile(code, f"extraConfig.{name}", "exec"), {"c": c})
    return c


def test_team_only_sizes_are_offered_to_their_teams_only(hub):
    c = hub_config(hub)
    profiles = c.KubeSpawner.profile_list
    slugs = [p["slug"] for p in merged(hub)[0]["jupyterhub"]["singleuser"]["profileList"]]
    if hub.kind == DEFAULTS:
        assert isinstance(profiles, list)  # no teams: every size for everyone
        return
    assert c.Authenticator.manage_groups is True and c.Authenticator.enable_auth_state is True
    teams = c.GitHubOAuthenticator.auth_state_groups_key(
        {"teams": [{"organization": {"login": "My-Lab"}, "slug": "big-data"}]}
    )
    assert teams == ["my-lab:big-data"]

    def offered(*groups):
        user = SimpleNamespace(admin=False, groups=[SimpleNamespace(name=g) for g in groups])
        return [p["slug"] for p in profiles(SimpleNamespace(user=user))]

    everyone = [s for s in slugs if s not in ("huge", "gpu")]
    assert offered() == everyone
    assert offered(*teams) == [s for s in slugs if s != "gpu"]
    assert offered("pangeo-data:gpu") == [s for s in slugs if s != "huge"]


def test_culling_follows_the_answers(hub):
    jh = merged(hub)[0]["jupyterhub"]
    assert jh["cull"]["enabled"] is True
    assert jh["cull"]["timeout"] == int(hub.answers["cull_idle_minutes"]) * 60
    assert jh["cull"]["maxAge"] == int(hub.answers["cull_max_age_hours"]) * 3600
    files = jh["singleuser"].get("extraFiles", {})
    if int(hub.answers["cull_kernel_minutes"]):
        kernels = files["hub-template-kernel-culling"]
        assert kernels["mountPath"] == "/etc/jupyter/jupyter_server_config.json"
        assert (
            kernels["data"]["MappingKernelManager"]["cull_idle_timeout"] == int(hub.answers["cull_kernel_minutes"]) * 60
        )
    else:
        assert "hub-template-kernel-culling" not in files
    if hub.answers["dask_backend"] == "gateway":  # the gateway's idle timeout stays
        assert gateway_config(hub).ClusterConfig.idle_timeout == int(hub.answers["idle_timeout_minutes"]) * 60


def test_the_shared_folder_is_read_only_for_users_and_writable_for_admins(hub):
    singleuser = merged(hub)[0]["jupyterhub"]["singleuser"]
    values = hub.yaml("config/common.yaml")
    if not hub.answers["shared_folder"]:
        assert not singleuser["storage"].get("extraVolumes")
        assert "sharedFolder" not in values["deployment"]
        return
    # The claim the federation chart makes (tests/test_home_storage.py renders it with helm).
    assert values["deployment"]["sharedFolder"] == {
        "enabled": True,
        "claimName": "charlie-shared",
        "storageClass": hub.cloud["shared_storage"]["storage_class"],
        "size": f"{hub.answers['shared_folder_size']}Gi",
    }
    [volume] = singleuser["storage"]["extraVolumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == "charlie-shared"
    [mount] = singleuser["storage"]["extraVolumeMounts"]
    assert mount == {"name": volume["name"], "mountPath": "/srv/shared", "readOnly": True}
    hook = hub_config(hub).KubeSpawner.pre_spawn_hook
    for admin in (False, True):
        spawner = SimpleNamespace(user=SimpleNamespace(admin=admin), volume_mounts=[mount])
        hook(spawner)
        writable = [m for m in spawner.volume_mounts if not m.get("readOnly")]
        assert [m["name"] for m in writable] == ([volume["name"]] if admin else [])


def test_secrets_use_the_hubs_own_git_crypt_key(hub, tmp_path):
    if hub.answers["secrets_backend"] != "git-crypt":
        pytest.skip("sops hubs have no git-crypt key")
    key = hub.answers["git_crypt_key"]
    assert key == "charlie"
    fed = tmp_path / "fed"
    shutil.copytree(hub.path, fed / "deployments" / "charlie")
    git(fed, "init", "-q")
    out = git(
        fed,
        "check-attr",
        "filter",
        "--",
        "deployments/charlie/secrets/staging.yaml",
        "deployments/charlie/config/common.yaml",
    )
    assert out.splitlines() == [
        "deployments/charlie/secrets/staging.yaml: filter: git-crypt-charlie",
        "deployments/charlie/config/common.yaml: filter: unspecified",
    ]
    readme = (hub.path / "README.md").read_text()
    assert "git-crypt init -k charlie" in readme and "GIT_CRYPT_KEY_CHARLIE" in readme


def test_the_readme_states_the_cost_ceiling(hub):
    readme = (hub.path / "README.md").read_text()
    users = int(hub.answers["max_users"])
    sizes = merged(hub)[0]["jupyterhub"]["singleuser"]["profileList"]
    for profile in sizes:
        machine = profile["kubespawner_override"]["node_selector"][hub.cloud["instance_type_label"]]
        cpu, memory = allocatable(hub.cloud, machine)
        o = profile["kubespawner_override"]
        per_node = min(int(cpu / o["cpu_guarantee"] + 1e-9), int(memory / gib(o["mem_guarantee"]) + 1e-9))
        assert f"{math.ceil(users / per_node)} × {machine} if all choose `{profile['slug']}`" in readme
    if hub.answers["dask_backend"] == "gateway":
        clusters = users * int(hub.answers["dask_clusters_per_user"])
        cpu, memory = allocatable(hub.cloud, hub.answers["dask_machine"])
        nodes = max(
            math.ceil(clusters * float(hub.answers["cluster_max_cores"]) / cpu - 1e-9),
            math.ceil(clusters * float(hub.answers["cluster_max_memory"]) / memory - 1e-9),
        )
        assert f"or {nodes} × {hub.answers['dask_machine']}." in readme


# What the users' identity may do on the scratch bucket, as the README makes
# it: objects only (never the bucket's policy, ACL or deletion), and on Azure
# the hub's own container, not the storage account every hub shares.
SCRATCH_OBJECT_ACTIONS = {
    "s3:ListBucket",
    "s3:GetBucketLocation",
    "s3:ListBucketMultipartUploads",
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
}


def test_the_users_identity_is_scoped_to_the_scratch_objects(hub):
    readme = (hub.path / "README.md").read_text()
    bucket = hub.answers["scratch_bucket"]
    if hub.cloud["hubploy"] == "aws":
        document = re.search(r"--policy-name scratch-bucket --policy-document \\\n  '(\{.*\})'", readme)
        assert document, "the README grants the users' role no scratch policy"
        statements = json.loads(document.group(1))["Statement"]
        actions = {a for s in statements for a in s["Action"]}
        assert actions == SCRATCH_OBJECT_ACTIONS
        assert {s["Resource"] for s in statements} == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}
    elif hub.cloud["hubploy"] == "kubeconfig":
        scope = re.search(r'--role "Storage Blob Data Contributor" .*\n  --scope "([^"]+)"', readme)
        assert scope, "the README gives the users' identity no blob role"
        assert scope.group(1).endswith(f"/blobServices/default/containers/{bucket}"), scope.group(1)
    else:
        binding = f"gcloud storage buckets add-iam-policy-binding gs://{bucket} "
        line = next(line for line in readme.splitlines() if line.startswith(binding))
        assert line.endswith("--role roles/storage.objectAdmin"), line


# --------------------------------------------------------------------------
# Bad answers, through the real CLI
# --------------------------------------------------------------------------

GCP_4, GCP_2 = (allocatable(PROVIDERS["gcp"], m) for m in ("n2-highmem-4", "n2-highmem-2"))


def _size(**kw):
    return {"name": "big", "machine": "n2-highmem-4", **kw}


BAD = [
    (
        "size-larger-than-machine",
        {"user_sizes": [_size(memory=40, cpu=1)]},
        f"'big': 40 GB is more than n2-highmem-4 can give ({GCP_4[1]:g})",
    ),
    (
        "size-more-cpus",
        {"user_sizes": [_size(memory=4, cpu=8)]},
        f"'big': 8 CPUs is more than n2-highmem-4 can give ({GCP_4[0]:g})",
    ),
    ("gpu-on-cpu-machine", {"user_sizes": [_size(gpus=1)]}, "'big': n2-highmem-4 has no GPU; use a GPU machine"),
    (
        "team-not-allowed",
        {"user_sizes": [{"name": "a", "machine": "n2-highmem-4"}, _size(teams=["evil-org:admins"])]},
        "'evil-org:admins': its organization is not in github_orgs",
    ),
    (
        "gpu-team-not-allowed",
        {"gpu_size": True, "gpu_teams": "evil-org:gpu"},
        "'evil-org:gpu': its organization is not in github_orgs",
    ),
    ("zero-share", {"user_sizes": [_size(share=0)]}, "'big': share 0 must be a whole number above 0"),
    ("negative-memory", {"user_sizes": [_size(memory=-2, cpu=1)]}, "'big': memory -2 must be a number above 0"),
    (
        "unknown-machine",
        {"user_sizes": [_size(machine="n9-giant")]},
        "'n9-giant': not a gcp machine of providers.yml, like n2-highmem-4",
    ),
    ("no-max-users", {"max_users": 0}, "'0': 1 to 100000 users, like 50"),
    ("no-clusters", {"dask_clusters_per_user": -1}, "'-1': 1-1000, like 2"),
    (
        "dask-machine-too-small",
        {"dask_machine": "n2-highmem-2"},
        f"'n2-highmem-2': gives {GCP_2[0]:g} CPUs, {GCP_2[1]:g} GB; a worker may need 4, 16",
    ),
    (
        "worker-cores-beyond-every-machine",
        {"worker_cores": 64, "dask_backend": "kubernetes"},
        "'64': more cores than a gcp machine gives (15.55 at most)",
    ),
    (
        "worker-beyond-every-machine",
        {"worker_memory_max": 200},
        "'200': no gcp machine holds 4 cores and 200 GB (at most 15.55, 117.9)",
    ),
    ("default-size-unknown", {"default_size": "tiny"}, "'tiny': not one of the sizes (small, medium, large)"),
    ("bad-identity", {"cloud_identity": "me@example.org"}, "'me@example.org': NAME@PROJECT.iam.gserviceaccount.com"),
]


@pytest.mark.parametrize("data, message", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_answers_are_refused_naming_the_value_and_the_rule(template_repo, tmp_path, data, message):
    args = []
    for key, value in data.items():
        args += ["--data", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    dst = tmp_path / "deployments" / "charlie"
    done = subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", *args, str(template_repo), str(dst)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert message in last, done.stderr[-2000:]
    assert len(message) <= 80
    assert not dst.exists()


def test_the_dask_machine_follows_the_worker_it_must_hold(template_repo, tmp_path):
    """The default dask machine is the provider's, or the smallest that holds a worker."""

    def machine(**data):
        dst = render(template_repo, tmp_path / str(len(list(tmp_path.iterdir()))) / "charlie", **data)
        return yaml.safe_load((dst / ".copier-answers.yml").read_text())["dask_machine"]

    assert machine() == PROVIDERS["gcp"]["dask_machine"]
    # 60 GB is more than n2-highmem-8 allocates; n2-highmem-16 is the smallest that holds it.
    assert machine(dask_backend="kubernetes", worker_memory=60) == "n2-highmem-16"
    assert machine(cloud_provider="aws", worker_cores_max=12) == "r5.4xlarge"


# --------------------------------------------------------------------------
# A hub made before the cluster questions updates and gets their defaults
# --------------------------------------------------------------------------

NEW_ANSWERS = (
    "user_sizes",
    "default_size",
    "gpu_size",
    "max_users",
    "dask_machine",
    "dask_spot",
    "dask_clusters_per_user",
    "cloud_identity",
    "cull_idle_minutes",
    "cull_max_age_hours",
    "cull_kernel_minutes",
    "shared_folder",
    "git_crypt_key",
)


def test_a_hub_from_before_updates_keeping_its_key_and_edits(evolving_template, tmp_path):
    from template_versions import answers, commit, edit_like_a_user, federation, make_hub

    fed = federation(tmp_path / "fed")
    hub = make_hub(evolving_template, fed, "delta", "v1.1.0")
    # The answers a hub made before these questions recorded: none of them.
    path = hub / ".copier-answers.yml"
    recorded = yaml.safe_load(path.read_text())
    assert set(NEW_ANSWERS) <= set(recorded)
    path.write_text(yaml.safe_dump({k: v for k, v in recorded.items() if k not in NEW_ANSWERS}))
    (hub / ".gitattributes").write_text("secrets/** filter=git-crypt diff=git-crypt\n")
    kept = edit_like_a_user(hub)
    commit(fed, "a hub from before, edited")

    done = subprocess.run(
        [sys.executable, "-m", "copier", "update", "--trust", "--defaults", "--vcs-ref", "v1.2.0"],
        cwd=hub,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "keep_the_shared_git_crypt_key" in done.stderr
    # What copier prints of each migration it runs is the command as a shell
    # line (copier's interpreter, run.py, the verb), not a Python list.
    ran = [line.split(": ", 1)[1] for line in done.stderr.splitlines() if " > Running task " in line]
    for line in ran or ["(none)"]:
        python, script, *verb = shlex.split(line)
        assert (python, Path(script).parts[-2:], verb) == (sys.executable, ("hooks", "run.py"), ["migrate"]), line
    after = answers(hub)
    assert after["git_crypt_key"] == "default"
    assert (hub / ".gitattributes").read_text().strip().endswith("secrets/** filter=git-crypt diff=git-crypt")
    for name, text in kept.items():
        assert text in (hub / name).read_text(), name
    common = yaml.safe_load((hub / "config" / "common.yaml").read_text())
    names = [p["slug"] for p in common["daskhub"]["jupyterhub"]["singleuser"]["profileList"]]
    assert names == [s["name"] for s in PROVIDERS["gcp"]["default_sizes"]]
    assert common["deployment"]["serviceAccount"]["annotations"]


# --------------------------------------------------------------------------
# The cluster itself: the federation's cluster/setup.sh, run with the cloud
# CLIs as stand-ins, against the hubs rendered in it
# --------------------------------------------------------------------------

# What cannot exist here: the clouds and GitHub. Each CLI is a stand-in on
# PATH that logs its argv (one JSON list a line; what it reads on stdin, for
# `kubectl apply --filename -`, as a last "STDIN:" item) and answers as a
# cloud with nothing made yet would: an existence check (describe, show, get,
# describe-*, get-role, head-bucket...) fails, a list is empty, any other --query/--format/--jq
# value is a placeholder; with STANDIN_EXISTS set, as one where everything
# exists.
CLUSTER_STAND_INS = {
    "gcp": {"gcloud": "Google Cloud"},
    "aws": {"aws": "AWS", "eksctl": "AWS (EKS)", "helm": "the cluster (the autoscaler's chart)"},
    "azure": {"az": "Azure"},
}
COMMON_STAND_INS = {"gh": "GitHub", "kubectl": "the cluster's API server"}
STAND_IN = """#!{python}
import json, os, sys
args = sys.argv[1:]
exists = bool(os.environ.get("STANDIN_EXISTS"))
entry = [os.path.basename(sys.argv[0]), *args]
if "apply" in args and "-" in args:
    entry.append("STDIN:" + sys.stdin.read())
with open(os.environ["STANDIN_LOG"], "a") as log:
    log.write(json.dumps(entry) + "\\n")
CHECKS = {{"describe", "show", "get", "get-role", "get-open-id-connect-provider", "head-bucket"}}
query = any(a in args for a in ("--format", "--query", "--jq"))
if "list" in args and query:
    print("STANDIN" if exists else "")
elif query:
    print("STANDIN")
elif any(a in CHECKS or a.startswith("describe-") for a in args):
    sys.exit(0 if exists else 1)
"""
REPO = "my-org/pangeo-hubs"
ENVS = ("staging", "prod")


def cluster_federation(template_repo: Path, base: Path, provider: str, hubs: dict[str, dict]) -> Path:
    """A federation of ``provider`` with its hubs (name: answers), each made in
    it as its README says (COPIER_SETTINGS_PATH=copier-settings.yml)."""
    fed = render(template_repo, base / "pangeo-hubs", kind="federation", cloud_provider=provider)
    for name, data in hubs.items():
        args = [a for key, value in data.items() for a in ("--data", f"{key}={value}")]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "copier",
                "copy",
                "--trust",
                "--defaults",
                "--quiet",
                *args,
                str(template_repo),
                f"deployments/{name}",
            ],
            cwd=fed,
            capture_output=True,
            text=True,
            env={**os.environ, "COPIER_SETTINGS_PATH": "copier-settings.yml"},
        )
        assert done.returncode == 0, done.stderr
    return fed


def run_setup(
    fed: Path, bin_dir: Path, provider: str, exists: bool = False
) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    """cluster/setup.sh, run as its comment says, with the stand-ins first on PATH."""
    bin_dir.mkdir(exist_ok=True)
    for tool in {**CLUSTER_STAND_INS[provider], **COMMON_STAND_INS}:
        (bin_dir / tool).write_text(STAND_IN.format(python=sys.executable))
        (bin_dir / tool).chmod(0o755)
    log = bin_dir / "calls.jsonl"
    log.write_text("")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "STANDIN_LOG": str(log), **({"STANDIN_EXISTS": "1"} if exists else {})}
    done = subprocess.run(["cluster/setup.sh", REPO], cwd=fed, capture_output=True, text=True, env=env)
    return done, [json.loads(line) for line in log.read_text().splitlines()]


def flag(call: list[str], name: str) -> str:
    return call[call.index(name) + 1]


def flag_values(call: list[str], name: str) -> list[str]:
    """The words after ``name`` up to the next option."""
    rest = call[call.index(name) + 1 :]
    return list(itertools.takewhile(lambda a: not a.startswith("--"), rest))


def pairs(items: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


def taints(text: str) -> list[dict]:
    return [dict(zip(("key", "value", "effect"), re.split("[=:]", t), strict=True)) for t in text.split(",")]


def calls_of(calls: list[list[str]], *words: str) -> list[list[str]]:
    return [c for c in calls if c[1 : 1 + len(words)] == list(words)]


def made_pools(fed: Path, provider: str, calls: list[list[str]]) -> dict[str, list[dict]]:
    """The node pools the script makes, by machine type: the labels their
    nodes carry (with what the cloud adds to spot nodes), their taints (with
    the cloud's spot taint), and whether they autoscale from zero."""
    cloud = PROVIDERS[provider]
    pools: list[dict] = []
    if provider == "gcp":
        for c in calls_of(calls, "container", "node-pools", "create"):
            spot = "--spot" in c
            pools.append(
                {
                    "machine": flag(c, "--machine-type"),
                    "labels": {
                        **pairs(flag(c, "--node-labels").split(",")),
                        **(cloud["spot"]["label"] if spot else {}),
                    },
                    "taints": taints(flag(c, "--node-taints")),
                    "autoscaled": "--enable-autoscaling" in c and flag(c, "--min-nodes") == "0",
                }
            )
    elif provider == "aws":
        assert ["eksctl", "create", "cluster", "--config-file", "cluster/eksctl.yaml"] in calls
        config = yaml.safe_load((fed / "cluster/eksctl.yaml").read_text())
        assert config["apiVersion"] == "eksctl.io/v1alpha5" and config["kind"] == "ClusterConfig"
        autoscaler = calls_of(calls, "upgrade", "--install", "cluster-autoscaler")
        for group in config["managedNodeGroups"]:
            if group["name"] == "core":
                continue
            (machine,) = group["instanceTypes"]
            spot = group.get("spot", False)
            pools.append(
                {
                    "machine": machine,
                    "labels": {**group["labels"], **(cloud["spot"]["label"] if spot else {})},
                    "taints": group["taints"],
                    "autoscaled": group["minSize"] == 0 and group["propagateASGTags"] and bool(autoscaler),
                }
            )
    else:
        for c in calls_of(calls, "aks", "nodepool", "add"):
            spot = "--priority" in c and flag(c, "--priority") == "Spot"
            pools.append(
                {
                    "machine": flag(c, "--node-vm-size"),
                    "labels": {**pairs(flag_values(c, "--labels")), **(cloud["spot"]["label"] if spot else {})},
                    "taints": taints(flag(c, "--node-taints")) + ([cloud["spot"]["taint"]] if spot else []),
                    "autoscaled": "--enable-cluster-autoscaler" in c and flag(c, "--min-count") == "0",
                }
            )
    by_machine: dict[str, list[dict]] = {}
    for pool in pools:
        by_machine.setdefault(pool["machine"], []).append(pool)
    return by_machine


def hub_values(hub: Path) -> tuple[dict, dict, list[dict]]:
    """(answers, jupyterhub values, the dask pods' specs) of a hub in a federation."""
    answers = yaml.safe_load((hub / ".copier-answers.yml").read_text())
    umbrella = answers["helm_umbrella_key"]
    values = yaml.safe_load((hub / "config/common.yaml").read_text())
    if umbrella in values:
        backend = values[umbrella]["dask-gateway"]["gateway"]["backend"]
        dask = [backend[pod]["extraPodConfig"] for pod in ("scheduler", "worker")]
    else:
        dask = [yaml.safe_load((hub / "image/.dask/config.yaml").read_text())["hub-dask"]["pod"]]
    return answers, values, dask


def check_users_identity(
    provider: str, fed: Path, calls: list[list[str]], hub: str, answers: dict, values: dict, out: str
):
    """The hub's users' identity and bucket, made as its values name them."""
    cloud = PROVIDERS[provider]
    jh = jupyterhub(values, answers["helm_umbrella_key"])
    account = jh["singleuser"]["serviceAccountName"]
    assert values["deployment"]["serviceAccount"]["name"] == account
    identity = answers["cloud_identity"]
    assert values["deployment"]["serviceAccount"]["annotations"] == {cloud["identity"]["annotation"]: identity}
    bucket = answers["scratch_bucket"]
    assert jh["singleuser"]["extraEnv"]["SCRATCH_BUCKET"] == f"{cloud['bucket_scheme']}{bucket}/$(JUPYTERHUB_USER)"
    subjects = {f"system:serviceaccount:{hub}-{env}:{account}" for env in ENVS}
    if provider == "gcp":
        project = answers["gcp_project"]
        assert ["gcloud", "iam", "service-accounts", "create", identity.split("@")[0], "--project", project] in calls
        assert calls_of(calls, "storage", "buckets", "create", f"gs://{bucket}")
        assert any("--lifecycle-file" in c for c in calls_of(calls, "storage", "buckets", "update", f"gs://{bucket}"))
        grant = calls_of(calls, "storage", "buckets", "add-iam-policy-binding", f"gs://{bucket}")
        assert [(flag(c, "--member"), flag(c, "--role")) for c in grant] == [
            (f"serviceAccount:{identity}", "roles/storage.objectAdmin")
        ]
        members = {
            flag(c, "--member") for c in calls_of(calls, "iam", "service-accounts", "add-iam-policy-binding", identity)
        }
        assert members == {f"serviceAccount:{project}.svc.id.goog[{s.split(':')[2]}/{account}]" for s in subjects}
    elif provider == "aws":
        role = identity.rsplit("/", 1)[1]
        assert calls_of(calls, "s3api", "create-bucket", "--bucket", bucket)
        assert calls_of(calls, "s3api", "put-bucket-lifecycle-configuration", "--bucket", bucket)
        (create,) = [c for c in calls_of(calls, "iam", "create-role") if flag(c, "--role-name") == role]
        (trust,) = json.loads(flag(create, "--assume-role-policy-document"))["Statement"]
        assert trust["Principal"]["Federated"].endswith(":oidc-provider/STANDIN")
        assert set(trust["Condition"]["StringEquals"]["STANDIN:sub"]) == subjects
        (policy,) = [c for c in calls_of(calls, "iam", "put-role-policy") if flag(c, "--role-name") == role]
        statements = json.loads(flag(policy, "--policy-document"))["Statement"]
        assert {a for st in statements for a in st["Action"]} == SCRATCH_OBJECT_ACTIONS
        assert {st["Resource"] for st in statements} == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}
    else:
        assert calls_of(calls, "storage", "container", "create", "--name", bucket)
        assert calls_of(calls, "identity", "create", "--name", f"{hub}-users")
        creds = [
            c
            for c in calls_of(calls, "identity", "federated-credential", "create")
            if flag(c, "--identity-name") == f"{hub}-users"
        ]
        assert {flag(c, "--subject") for c in creds} == subjects
        scopes = [
            flag(c, "--scope")
            for c in calls_of(calls, "role", "assignment", "create")
            if "Storage Blob Data Contributor" in c
        ]
        assert f"STANDIN/blobServices/default/containers/{bucket}" in scopes
        (policy,) = calls_of(calls, "storage", "account", "management-policy", "create")
        rules = {r["name"]: r for r in json.loads(flag(policy, "--policy"))["rules"]}
        assert rules[bucket]["definition"]["filters"]["prefixMatch"] == [f"{bucket}/"]
        # The identity's client id exists only once it is made: the script says to answer it.
        assert (
            f"deployments/{hub}: set its cloud identity: copier update --trust --defaults --data cloud_identity=STANDIN"
            in out
        )


def check_nfs_homes(provider: str, calls: list[list[str]], hub: str, answers: dict, out: str):
    """The hub's NFS filesystem, made as its answers name it; the server it
    must answer, printed where it exists only once made."""
    if provider == "gcp":
        (create,) = calls_of(calls, "filestore", "instances", "create")
        assert create[4] == f"{hub}-homes" and flag(create, "--tier") == "BASIC_HDD"
        assert flag(create, "--file-share") == f"name={answers['nfs_path'].lstrip('/')},capacity=1TB"
        made = "STANDIN"  # the instance's IP, which the stand-in answers
    elif provider == "aws":
        # The stand-in answers every --query with one word, so the file system
        # "exists" and the subnets' "zone subnet" lines are empty: its creation
        # and mount targets are not reached here, only the look-ups that lead to them.
        assert calls_of(calls, "efs", "describe-file-systems", "--creation-token", f"{hub}-homes")
        assert calls_of(calls, "efs", "describe-mount-targets", "--file-system-id", "STANDIN")
        (subnets,) = calls_of(calls, "ec2", "describe-subnets")
        assert flag(subnets, "--subnet-ids") == "STANDIN"  # the cluster's, from describe-cluster
        made = "STANDIN.efs.us-west-2.amazonaws.com"
    else:
        account = answers["nfs_server"].split(".")[0]
        (create,) = calls_of(calls, "storage", "account", "create", "--name", account)
        assert flag(create, "--kind") == "FileStorage" and flag(create, "--https-only") == "false"
        (share,) = calls_of(calls, "storage", "share-rm", "create")
        assert flag(share, "--name") == answers["nfs_path"].split("/")[-1] == f"{hub}-homes"
        assert flag(share, "--enabled-protocols") == "NFS" and flag(share, "--root-squash") == "NoRootSquash"
        made = answers["nfs_server"]  # derived before it exists: nothing to answer
    message = f"deployments/{hub}: set its NFS server: copier update --trust --defaults --data nfs_server={made}"
    assert (message in out) is (provider != "azure"), out


def check_deployers(provider: str, calls: list[list[str]]):
    """One deployer per environment, each trusting only its environment's
    GitHub subject, and handed to that environment's CI as a variable."""
    subject = {env: f"repo:{REPO}:environment:{env}" for env in ENVS}
    names = {env: f"pangeo-hubs-deploy-{env}" for env in ENVS}
    for env in ENVS:
        post = ["gh", "api", "--method", "POST", f"repos/{REPO}/environments/{env}/deployment-branch-policies"]
        assert [*post, "-f", f"name={env}", "-f", "type=branch"] in calls
    variables = {flag(c, "--env"): (c[3], flag(c, "--body")) for c in calls_of(calls, "variable", "set")}
    if provider == "gcp":
        (oidc,) = calls_of(calls, "iam", "workload-identity-pools", "providers", "create-oidc")
        condition = flag(oidc, "--attribute-condition")
        assert f"assertion.repository == '{REPO}'" in condition
        assert "assertion.ref == 'refs/heads/' + assertion.environment" in condition
        assert f"assertion.job_workflow_ref == '{REPO}/.github/workflows/deploy.yml@' + assertion.ref" in condition
        for env in ENVS:
            email = f"{names[env]}@my-pangeo-project.iam.gserviceaccount.com"
            binding = calls_of(calls, "iam", "service-accounts", "add-iam-policy-binding", email)
            assert [flag(c, "--member").split("/subject/")[1] for c in binding] == [subject[env]]
            assert variables[env] == ("GCP_DEPLOYER", email)
    elif provider == "aws":
        for env in ENVS:
            (create,) = [c for c in calls_of(calls, "iam", "create-role") if flag(c, "--role-name") == names[env]]
            (update,) = [
                c for c in calls_of(calls, "iam", "update-assume-role-policy") if flag(c, "--role-name") == names[env]
            ]
            # Made trusting GitHub alone (a role cannot name itself before it exists), then itself too.
            assert json.loads(flag(create, "--assume-role-policy-document"))["Statement"] == [
                json.loads(flag(update, "--policy-document"))["Statement"][0]
            ]
            web, itself = json.loads(flag(update, "--policy-document"))["Statement"]
            assert web["Principal"]["Federated"].endswith(":oidc-provider/token.actions.githubusercontent.com")
            assert web["Condition"] == {
                "StringEquals": {
                    "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                    "token.actions.githubusercontent.com:sub": subject[env],
                }
            }
            assert itself["Principal"] == {"AWS": f"arn:aws:iam::123456789012:role/{names[env]}"}
            assert variables[env] == ("AWS_DEPLOY_ROLE", f"arn:aws:iam::123456789012:role/{names[env]}")
    else:
        assert [flag(c, "--display-name") for c in calls_of(calls, "ad", "app", "create")] == [names[e] for e in ENVS]
        credentials = [
            json.loads(flag(c, "--parameters")) for c in calls_of(calls, "ad", "app", "federated-credential", "create")
        ]
        assert {c["name"]: c["subject"] for c in credentials} == subject
        assert {env: name for env, (name, _) in variables.items()} == dict.fromkeys(ENVS, "AZURE_CLIENT_ID")


# Creations a second run repeats, each harmless: eksctl skips the node groups
# that exist; az role assignment create returns an existing assignment; the
# storage account's management policy is one document, written whole;
# `kubectl create namespace --dry-run=client` only prints what apply makes.
REPEATED = {
    ("eksctl", "create", "nodegroup"),
    ("eksctl", "create", "iamserviceaccount"),
    ("az", "role", "assignment", "create"),
    ("az", "storage", "account", "management-policy", "create"),
    ("kubectl", "create", "namespace"),
}


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_the_cluster_script_makes_what_every_hub_selects(template_repo, tmp_path, provider):
    cloud = PROVIDERS[provider]
    identity = {"cloud_identity": AZURE_CLIENT_ID} if provider == "azure" else {}
    hubs = {
        "charlie": identity,
        "delta": {
            "dask_backend": "kubernetes",
            "dask_spot": False,
            "gpu_size": True,
            "home_storage": "nfs",
            **identity,
        },
    }
    fed = cluster_federation(template_repo, tmp_path, provider, hubs)
    subprocess.run(["shellcheck", "cluster/setup.sh"], cwd=fed, check=True, env={"PATH": f"{BIN}:/usr/bin:/bin"})
    done, calls = run_setup(fed, tmp_path / "bin", provider)
    assert done.returncode == 0, done.stderr
    assert {c[0] for c in calls} == {*CLUSTER_STAND_INS[provider], *COMMON_STAND_INS}

    # The cluster: the users' identities, NetworkPolicy enforced, the hubs' storage class.
    if provider == "gcp":
        (create,) = calls_of(calls, "container", "clusters", "create")
        assert flag(create, "--workload-pool") == "my-pangeo-project.svc.id.goog"
        assert "--enable-dataplane-v2" in create
        assert "GcePersistentDiskCsiDriver" in flag(create, "--addons")  # GKE's standard-rwo class
    elif provider == "aws":
        config = yaml.safe_load((fed / "cluster/eksctl.yaml").read_text())
        assert config["iam"]["withOIDC"] is True
        addons = {a["name"]: a for a in config["addons"]}
        assert json.loads(addons["vpc-cni"]["configurationValues"]) == {"enableNetworkPolicy": "true"}
        assert addons["aws-ebs-csi-driver"]["wellKnownPolicies"] == {"ebsCSIController": True}
        (apply,) = [c for c in calls if c[:2] == ["kubectl", "apply"] and "StorageClass" in c[-1]]
        storage = yaml.safe_load(apply[-1].removeprefix("STDIN:"))
        assert (storage["metadata"]["name"], storage["provisioner"]) == (cloud["storage_class"], "ebs.csi.aws.com")
        assert storage["parameters"]["type"] == "gp3"
    else:
        (create,) = calls_of(calls, "aks", "create")
        assert {"--enable-oidc-issuer", "--enable-workload-identity"} <= set(create)
        assert flag(create, "--network-policy") == "cilium"
        # managed-csi is AKS's own (Azure Disk's CSI driver is built in): nothing to make.
        assert cloud["storage_class"] == "managed-csi"

    pools = made_pools(fed, provider, calls)
    assert all(p["autoscaled"] for ps in pools.values() for p in ps)

    def placed(selector: dict, tolerations: list[dict], resources: dict | None = None) -> bool:
        """A pool has the selector's machine and labels, and the pod tolerates its taints."""
        wanted = {k: v for k, v in selector.items() if k != cloud["instance_type_label"]}
        return any(
            wanted.items() <= p["labels"].items() and all(tolerates(tolerations, t) for t in p["taints"])
            for p in pools.get(selector[cloud["instance_type_label"]], [])
        )

    for name in hubs:
        answers, values, dask = hub_values(fed / "deployments" / name)
        jh = jupyterhub(values, answers["helm_umbrella_key"])
        # Users: z2jh's user label (matchNodePurpose: require) and its tolerations.
        assert jh["scheduling"]["userPods"]["nodeAffinity"]["matchNodePurpose"] == "require"
        user_tolerations = [
            {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
            {"key": "hub.jupyter.org_dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
        ]
        for profile in jh["singleuser"]["profileList"]:
            override = profile["kubespawner_override"]
            selector = {**override["node_selector"], **cloud["node_pools"]["user"]["label"]}
            assert placed(selector, user_tolerations + override.get("tolerations", [])), (name, profile["slug"])
        for pod in dask:
            assert placed(pod["nodeSelector"], pod["tolerations"]), (name, pod["nodeSelector"])
        if answers.get("home_storage") == "nfs":
            check_nfs_homes(provider, calls, name, answers, done.stdout)
        else:
            assert jh["singleuser"]["storage"]["dynamic"]["storageClass"] == cloud["storage_class"]
            assert f"deployments/{name}: set its NFS server" not in done.stdout
            assert not [c for c in calls if f"{name}-homes" in " ".join(c)]
        check_users_identity(provider, fed, calls, name, answers, values, done.stdout)
        for env in ENVS:
            label = [
                c
                for c in calls
                if c[:4] == ["kubectl", "label", "--overwrite", "namespace"] and c[4] == f"{name}-{env}"
            ]
            assert label and "pod-security.kubernetes.io/enforce=baseline" in label[0], (name, env)
    check_deployers(provider, calls)

    # Run again where everything exists: nothing is made twice.
    done, again = run_setup(fed, tmp_path / "bin", provider, exists=True)
    assert done.returncode == 0, done.stderr
    made = [c for c in again if any(a.startswith("create") for a in c[1:4])]
    assert made, "no create in the second run: the stand-ins' existence checks are not reached"
    again_made = [c for c in made if not any(tuple(c[: len(r)]) == r for r in REPEATED)]
    assert not again_made, again_made


def test_the_cluster_script_refuses_a_hub_whose_machine_has_no_pool(template_repo, tmp_path):
    hubs = {"echo": {"user_sizes": json.dumps([{"name": "big", "machine": "n2-standard-8"}])}}
    fed = cluster_federation(template_repo, tmp_path, "gcp", hubs)
    done, calls = run_setup(fed, tmp_path / "bin", "gcp")
    assert done.returncode != 0
    assert "deployments/echo selects n2-standard-8, which no pool has" in done.stderr
    assert not [c for c in calls if c[1:4] == ["storage", "buckets", "create"]]  # nothing made for it


def test_the_federation_readme_trusts_each_environment_only(template_repo, tmp_path):
    """The README's trust setup, run as written with stand-ins for gh, gcloud,
    aws and az: one deployer per environment, each trusting only its
    environment's subject, and branch rules on both environments."""
    fed = render(template_repo, tmp_path / "pangeo-hubs", kind="federation", cloud_provider="aws")
    readme = (fed / "README.md").read_text()
    section = readme[readme.index("### The cloud: trust") : readme.index("## Adding a hub")]
    assert 'repo:ORG/REPO:*"' not in section and "assertion.repository == 'ORG/REPO'\"" not in section
    blocks = re.findall(r"```\n(.*?)```", section, re.S)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("gh", "gcloud", "aws", "az"):
        (bin_dir / tool).write_text(STAND_IN.format(python=sys.executable))
        (bin_dir / tool).chmod(0o755)
    log = bin_dir / "calls.jsonl"
    for block in blocks:
        script = block.replace("ORG/REPO", REPO)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            env={"PATH": f"{bin_dir}:/usr/bin:/bin", "STANDIN_LOG": str(log)},
        )
        assert done.returncode == 0, done.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    envs = ("staging", "prod")
    subject = {env: f"repo:{REPO}:environment:{env}" for env in envs}
    for env in envs:
        assert [
            "gh",
            "api",
            "--method",
            "POST",
            f"repos/{REPO}/environments/{env}/deployment-branch-policies",
            "-f",
            f"name={env}",
            "-f",
            "type=branch",
        ] in calls
    # Google Cloud: the provider's condition, and each account trusting its own subject.
    (provider,) = [c for c in calls if c[1:5] == ["iam", "workload-identity-pools", "providers", "create-oidc"]]
    condition = next(a for a in provider if a.startswith("--attribute-condition=")).split("=", 1)[1]
    assert "assertion.ref == 'refs/heads/' + assertion.environment" in condition
    assert f"assertion.job_workflow_ref == '{REPO}/.github/workflows/deploy.yml@' + assertion.ref" in condition
    members = {c[4].split("@")[0]: c for c in calls if c[1:4] == ["iam", "service-accounts", "add-iam-policy-binding"]}
    for env in envs:
        member = next(a for a in members[f"pangeo-hubs-deploy-{env}"] if a.startswith("--member="))
        assert member.endswith(f"/subject/{subject[env]}"), member
    # AWS: each role's trust, exactly its environment's subject.
    roles = {
        flag(c, "--role-name"): json.loads(flag(c, "--assume-role-policy-document"))
        for c in calls
        if c[1:3] == ["iam", "create-role"]
    }
    assert set(roles) == {f"pangeo-hubs-deploy-{env}" for env in envs}
    for env in envs:
        web = roles[f"pangeo-hubs-deploy-{env}"]["Statement"][0]
        assert web["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert web["Condition"] == {
            "StringEquals": {
                "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                "token.actions.githubusercontent.com:sub": subject[env],
            }
        }
    # Azure: each app's federated credential, on its environment's subject only.
    credentials = [
        json.loads(flag(c, "--parameters")) for c in calls if c[1:4] == ["ad", "app", "federated-credential"]
    ]
    assert sorted(c["subject"] for c in credentials) == sorted(subject.values())
    apps = [flag(c, "--display-name") for c in calls if c[1:3] == ["ad", "app"] and c[3] == "create"]
    assert apps == [f"pangeo-hubs-deploy-{env}" for env in envs]
