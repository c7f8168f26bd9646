"""Home storage (issue 31, part 2): homes on one NFS filesystem per hub, on
each cloud, and a shared folder admins write.

Each NFS cell is rendered, checked (`hub-template check`), and deployed with
the real helm through the federation's real chart (daskhub built as its CI
builds it, kube_tools.federation_chart); its own objects and the users' pod
pass kubernetes-validate --strict. What cannot exist here is stood in for,
listed in STAND_INS.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import kube_tools
import pytest
import yaml
from conftest import BIN, chart_data, check_report, git, render
from hub_cells import REAL_IDS
from test_kubernetes_backend import helm_template

from hub_template import load_data

PROVIDERS = load_data("providers.yml")
# What cannot exist here, and what stands in for it: the server the cluster
# setup makes (GCP and AWS addresses exist once made), and KubeSpawner
# (not installed: the users' pod is built from the values as z2jh 4.4's
# jupyterhub_config.py and KubeSpawner 7 build it, in user_pod below).
STAND_INS = {
    "nfs_server": {"gcp": "10.0.0.2", "aws": "fs-0123456789abcdef0.efs.us-west-2.amazonaws.com"},
    "KubeSpawner": "user_pod()",
}
# Pod Security "baseline" (the hub namespaces enforce it, cluster/setup.sh):
# the capabilities a container may add, from the standard's table.
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip


def nfs_answers(provider: str) -> dict:
    server = STAND_INS["nfs_server"].get(provider)
    return {"home_storage": "nfs", "shared_folder": True, **({"nfs_server": server} if server else {})}


@pytest.fixture(scope="module")
def federation(tmp_path_factory) -> Path:
    return kube_tools.federation_chart(tmp_path_factory.mktemp("federation-chart"))


def nfs_hub(template_repo: Path, base: Path, provider: str, **data) -> Path:
    """A hub with NFS homes and a shared folder in a committed federation repository."""
    hub = render(
        template_repo,
        base / "deployments" / "charlie",
        cloud_provider=provider,
        **REAL_IDS,
        **{**nfs_answers(provider), **data},
    )
    git(base, "init", "-q")
    git(base, "add", "-A")
    git(base, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "hub")
    return hub


def check(hub: Path, *args: str) -> dict:
    done = subprocess.run(
        [str(BIN / "hub-template"), "check", str(hub), "--format", "json", *args], capture_output=True, text=True
    )
    assert "Traceback" not in done.stderr, done.stderr
    return check_report(done.stdout)["checks"]


def validate(tmp_path: Path, objects: list[dict]) -> str:
    manifest = tmp_path / "objects.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    done = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", str(manifest)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def singleuser(hub: Path) -> dict:
    values = yaml.safe_load((hub / "config" / "common.yaml").read_text())
    umbrella = yaml.safe_load((hub / ".copier-answers.yml").read_text())["helm_umbrella_key"]
    return (values[umbrella]["jupyterhub"] if umbrella in values else values["jupyterhub"])["singleuser"]


def user_pod(su: dict, namespace: str, user: str) -> dict:
    """The users' pod's storage as z2jh 4.4 configures KubeSpawner (static:
    the volume `home` on the claim, subPath static.subPath; extraVolumes and
    extraVolumeMounts appended; initContainers as given) and KubeSpawner 7
    expands it ({hubnamespace}, {username})."""
    storage = su["storage"]

    def expand(obj):
        if isinstance(obj, str):
            return obj.format(hubnamespace=namespace, username=user)
        if isinstance(obj, list):
            return [expand(o) for o in obj]
        return {k: expand(v) for k, v in obj.items()} if isinstance(obj, dict) else obj

    volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": storage["static"]["pvcName"]}}]
    mounts = [{"name": "home", "mountPath": "/home/jovyan", "subPath": storage["static"]["subPath"]}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"jupyter-{user}", "namespace": namespace},
        "spec": expand(
            {
                "securityContext": {"fsGroup": 100},
                "initContainers": su["initContainers"],
                "containers": [
                    {
                        "name": "notebook",
                        "image": "example/image:tag",
                        "securityContext": {"runAsUser": 1000, "allowPrivilegeEscalation": False},
                        "volumeMounts": [*mounts, *storage.get("extraVolumeMounts", [])],
                    }
                ],
                "volumes": [*volumes, *storage.get("extraVolumes", [])],
            }
        ),
    }


# --------------------------------------------------------------------------


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_nfs_homes_render_check_and_deploy_with_the_real_charts(template_repo, federation, tmp_path, provider):
    hub = nfs_hub(template_repo, tmp_path / "fed", provider)
    answers = yaml.safe_load((hub / ".copier-answers.yml").read_text())
    # The helm values' and the files' checks (the image's are the image's, not the homes').
    results = check(hub, "--select", "HV,ST", "--chart", str(federation / ".daskhub" / "daskhub"))
    assert {k: v for k, v in results.items() if v["result"] is False} == {}
    assert results["HV007"]["result"] is True

    su = singleuser(hub)
    assert su["storage"]["type"] == "static"
    assert su["storage"]["static"] == {"pvcName": "home-nfs", "subPath": "{hubnamespace}/{username}"}
    name = yaml.safe_load((federation / "chart" / "Chart.yaml").read_text())["name"]
    to_validate: list[dict] = []
    for env in ("staging", "prod"):
        namespace = f"charlie-{env}"
        objects = helm_template(federation / "chart", hub, env)
        own = {(o["kind"], o["metadata"]["name"]): o for s, o in objects if s.startswith(f"{name}/templates/")}
        volume, claim = own[("PersistentVolume", f"{namespace}-home-nfs")], own[("PersistentVolumeClaim", "home-nfs")]
        assert volume["spec"]["nfs"] == {"server": answers["nfs_server"], "path": answers["nfs_path"]}
        assert volume["spec"]["claimRef"] == {"namespace": namespace, "name": "home-nfs"}
        assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
        assert volume["spec"]["mountOptions"] == PROVIDERS[provider]["home_nfs"]["mount_options"]
        assert claim["metadata"]["namespace"] == namespace and claim["spec"]["volumeName"] == volume["metadata"]["name"]
        assert claim["spec"]["accessModes"] == volume["spec"]["accessModes"] == ["ReadWriteMany"]
        assert claim["spec"]["storageClassName"] == volume["spec"]["storageClassName"] == ""
        assert claim["spec"]["resources"]["requests"]["storage"] == volume["spec"]["capacity"]["storage"]
        assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        pod = user_pod(su, namespace, "ada")
        to_validate += [*own.values(), pod]

        # The home and the shared folder, in the environment's own folder.
        spec = pod["spec"]
        (init,) = spec["initContainers"]
        mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
        assert mounts["/home/jovyan"]["subPath"] == f"{namespace}/ada"
        assert mounts["/srv/shared"] == {
            "name": "shared",
            "mountPath": "/srv/shared",
            "subPath": f"{namespace}/_shared",
            "readOnly": True,
        }
        assert {m["mountPath"]: m["subPath"] for m in init["volumeMounts"]} == {
            "/home/jovyan": f"{namespace}/ada",
            "/srv/shared": f"{namespace}/_shared",
        }
        assert init["command"] == ["chown", "1000:1000", "/home/jovyan", "/srv/shared"]
        # Root for the chown alone, as Pod Security baseline admits.
        context = init["securityContext"]
        assert context["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
        assert set(context["capabilities"]["add"]) <= BASELINE_CAPABILITIES
        assert context["allowPrivilegeEscalation"] is False and not context.get("privileged")
        assert not any("hostPath" in v for v in spec["volumes"])
    out = validate(tmp_path, to_validate)  # one run: kubernetes-validate is slow to start
    assert out.count("passed") == len(to_validate), out


def test_an_nfs_hub_with_no_server_yet_is_refused_saying_what_to_run(template_repo, federation, tmp_path):
    hub = nfs_hub(template_repo, tmp_path / "fed", "gcp", nfs_server="")
    found = check(hub, "--select", "HV007")["HV007"]
    assert found["result"] is False
    assert "`deployment.homeNfs.server` is empty" in found["err_msg"] and "cluster/setup.sh" in found["err_msg"]
    done = subprocess.run(
        [
            str(kube_tools.helm()),
            "template",
            "charlie-staging",
            str(federation / "chart"),
            "--values",
            str(hub / "config" / "common.yaml"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "the hub's nfs_server answer is empty; run the federation's cluster/setup.sh" in done.stderr


def test_a_static_home_whose_claim_nothing_makes_is_found(template_repo, tmp_path):
    hub = nfs_hub(template_repo, tmp_path / "fed", "aws")
    common = hub / "config" / "common.yaml"
    values = common.read_text()
    common.write_text(values.replace("  homeNfs:\n    enabled: true\n", "  homeNfs:\n    enabled: false\n"))
    found = check(hub, "--select", "HV007")["HV007"]
    assert found["result"] is False
    assert "`jupyterhub.singleuser.storage.static.pvcName` is 'home-nfs', a claim nothing makes" in found["err_msg"]
    # A manifest beside the values that makes the claim is enough (hand-made hubs).
    (hub / "shared-nfs-prod.yaml").write_text(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: x}\n---\n"
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: home-nfs}\n"
    )
    assert check(hub, "--select", "HV007")["HV007"]["result"] is True


def test_a_disk_per_user_hubs_shared_folder_is_a_claim_the_chart_makes(template_repo, federation, tmp_path):
    hub = nfs_hub(template_repo, tmp_path / "fed", "gcp", home_storage="volume", shared_folder_size="50")
    su = singleuser(hub)
    assert su["storage"]["dynamic"] == {"storageClass": PROVIDERS["gcp"]["storage_class"]}
    assert su["storage"]["extraVolumes"] == [
        {"name": "shared", "persistentVolumeClaim": {"claimName": "charlie-shared"}}
    ]
    assert su["storage"]["extraVolumeMounts"] == [{"name": "shared", "mountPath": "/srv/shared", "readOnly": True}]
    (init,) = su["initContainers"]
    assert init["command"] == ["chown", "1000:1000", "/srv/shared"]
    assert check(hub, "--select", "HV007")["HV007"]["result"] is True
    name = yaml.safe_load((federation / "chart" / "Chart.yaml").read_text())["name"]
    objects = helm_template(federation / "chart", hub, "prod")
    own = {(o["kind"], o["metadata"]["name"]): o for s, o in objects if s.startswith(f"{name}/templates/")}
    claim = own[("PersistentVolumeClaim", "charlie-shared")]
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "storageClassName": PROVIDERS["gcp"]["shared_storage"]["storage_class"],
        "resources": {"requests": {"storage": "50Gi"}},
    }
    assert not any(kind == "PersistentVolume" for kind, _ in own)
    validate(tmp_path, list(own.values()))


@pytest.mark.parametrize("shape", ["dict", "list"])
def test_the_shared_folder_is_writable_for_admins_only(template_repo, tmp_path, shape):
    """The hub's extraConfig run as z2jh runs it (a traitlets Config), on the
    volume mounts as z2jh 4.4 hands them to KubeSpawner 7 (a dict keyed
    `home`, `<index>-<name>`) or as a list; an earlier pre_spawn_hook still runs."""
    from traitlets.config import Config

    hub = nfs_hub(template_repo, tmp_path / "fed", "azure")
    values = yaml.safe_load((hub / "config" / "common.yaml").read_text())
    umbrella = yaml.safe_load((hub / ".copier-answers.yml").read_text())["helm_umbrella_key"]
    jh = values[umbrella]["jupyterhub"]
    earlier = []
    c = Config()
    c.KubeSpawner.pre_spawn_hook = earlier.append
    for key, code in sorted(jh["hub"]["extraConfig"].items()):
        exec(compile(code, key, "exec"), {"c": c})
    hook = c.KubeSpawner.pre_spawn_hook
    home = {"name": "home", "mountPath": "/home/jovyan", "subPath": "{hubnamespace}/{username}"}
    (shared,) = jh["singleuser"]["storage"]["extraVolumeMounts"]
    for admin in (True, False, True):
        mounts = {"home": home, "0-shared": shared} if shape == "dict" else [home, shared]
        spawner = SimpleNamespace(user=SimpleNamespace(admin=admin), volume_mounts=mounts)
        hook(spawner)
        after = spawner.volume_mounts.values() if shape == "dict" else spawner.volume_mounts
        by_path = {m["mountPath"]: m for m in after}
        assert by_path["/srv/shared"]["readOnly"] is (not admin)
        assert by_path["/home/jovyan"] == home
    assert len(earlier) == 3


def test_the_handmade_nfs_layout_passes_hv007(template_repo, tmp_path):
    """A pangeo-cloud-federation hub: static homes on `home-nfs`, made by its
    multi-document manifest beside the values; or by its own chart's templates."""
    from test_check_handmade import NFS_MANIFESTS

    fed = tmp_path / "fed"
    hub = nfs_hub(template_repo, fed, "gcp", home_storage="volume", shared_folder=False)
    (hub / ".copier-answers.yml").unlink()
    common = hub / "config" / "common.yaml"
    values = yaml.safe_load(common.read_text())
    values["daskhub"]["jupyterhub"]["singleuser"]["storage"] = {
        "type": "static",
        "static": {"pvcName": "home-nfs", "subPath": "home/{username}"},
    }
    common.write_text(yaml.safe_dump(values))
    assert check(hub, "--select", "HV007")["HV007"]["result"] is False
    (hub / "config" / "shared-nfs-prod.yaml").write_text(NFS_MANIFESTS)
    assert check(hub, "--select", "HV007")["HV007"]["result"] is True
    (hub / "config" / "shared-nfs-prod.yaml").unlink()
    chart = fed / "pangeo-deploy"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: pangeo-deploy\nversion: 0.1.0\n")
    (chart / "templates" / "nfs.yaml").write_text("kind: PersistentVolumeClaim\nmetadata:\n  name: home-nfs\n")
    git(fed, "add", "-A")
    git(fed, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "chart")
    assert check(hub, "--select", "HV007")["HV007"]["result"] is True


def test_the_preview_keeps_nfs_homes_in_one_local_folder_and_the_shared_folder_admins(template_repo, tmp_path):
    """`hub-template preview`'s configuration of an NFS hub, loaded as
    JupyterHub loads it: each spawn's pre_spawn_hook (the hub's own, then the
    preview's) binds the user's home, a folder of the claim's one local folder
    at static.subPath, and /srv/shared read-only but for admins. The binds are
    run by the real bubblewrap; JupyterHub's spawner is stood in for by its
    `user` and `home_dir` (what the hook reads), the server by a shell."""
    from traitlets.config import PyFileConfigLoader

    from hub_template.preview import command, hub_config, sandbox

    hub = nfs_hub(template_repo, tmp_path / "fed", "gcp", admin_users="ada")
    values = command.read(hub, chart_data())["values"]
    work = tmp_path / "work"
    work.mkdir()
    volumes = hub_config.storage(values, work)
    assert volumes.homes_root == work / "volumes" / "home-nfs"
    script = 'id -u > "$HOME/uid"; touch /srv/shared/from-$NAME 2>/dev/null && echo wrote; ls "$OTHER" 2>&1'
    # The server's sandbox as command.py makes it, running a shell instead.
    cmd = sandbox.argv(["sh", "-c", script], read_only=[], writable=[], home=volumes.homes_root)
    plan = hub_config.plan(
        values,
        ports=hub_config.Ports(*range(40001, 40006)),
        work=work,
        password="pw",
        chp="configurable-http-proxy",
        cmd=cmd,
        user_env={},
        gateway_token="t",
        image_spec="img:preview",
    )
    config = hub_config.write(work, plan)
    hook = PyFileConfigLoader(config.name, str(config.parent)).load_config().Spawner.pre_spawn_hook
    home = {name: volumes.homes_root / hub_config.RELEASE / name for name in ("ada", "bob")}
    for name, admin in (("ada", True), ("bob", False)):
        spawner = SimpleNamespace(user=SimpleNamespace(name=name, admin=admin), home_dir=str(home[name]))
        hook(spawner)
        other = home["bob" if name == "ada" else "ada"]
        done = subprocess.run(
            spawner.cmd,
            capture_output=True,
            text=True,
            env={"HOME": str(home[name]), "NAME": name, "OTHER": str(other), "PATH": "/usr/bin:/bin"},
        )
        assert (home[name] / "uid").read_text() == "1000\n"  # the image's user owns its home
        assert ("wrote" in done.stdout) is admin, done.stdout + done.stderr
        assert "No such file" in done.stdout  # another user's home is not there
    shared = volumes.homes_root / hub_config.RELEASE / "_shared"
    assert [p.name for p in shared.iterdir()] == ["from-ada"]
