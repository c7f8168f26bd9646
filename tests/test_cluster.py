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
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import dask.config
import pytest
import yaml
from conftest import chart_data, git, render

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


def test_the_shared_folder_is_read_only_for_users_and_writable_for_admins(hub, tmp_path):
    singleuser = merged(hub)[0]["jupyterhub"]["singleuser"]
    if not hub.answers["shared_folder"]:
        assert not singleuser["storage"].get("extraVolumes")
        return
    # The claim the README tells the operators to make, in each namespace.
    readme = (hub.path / "README.md").read_text()
    manifest = readme[readme.index("apiVersion: v1\nkind: PersistentVolumeClaim") : readme.index("EOF\ndone")]
    claim = yaml.safe_load(manifest)
    (tmp_path / "claim.yaml").write_text(manifest)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", str(tmp_path / "claim.yaml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "storageClassName": hub.cloud["shared_storage"]["storage_class"],
        "resources": {"requests": {"storage": f"{hub.answers['shared_folder_size']}Gi"}},
    }
    [volume] = singleuser["storage"]["extraVolumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"] == "charlie-shared"
    [mount] = singleuser["storage"]["extraVolumeMounts"]
    assert mount == {"name": volume["name"], "mountPath": "/home/jovyan/shared", "readOnly": True}
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
    after = answers(hub)
    assert after["git_crypt_key"] == "default"
    assert (hub / ".gitattributes").read_text().strip().endswith("secrets/** filter=git-crypt diff=git-crypt")
    for name, text in kept.items():
        assert text in (hub / name).read_text(), name
    common = yaml.safe_load((hub / "config" / "common.yaml").read_text())
    names = [p["slug"] for p in common["daskhub"]["jupyterhub"]["singleuser"]["profileList"]]
    assert names == [s["name"] for s in PROVIDERS["gcp"]["default_sizes"]]
    assert common["deployment"]["serviceAccount"]["annotations"]
