"""The images users choose at login (copier.yml's user_images, other_image),
rendered for each setting x cloud and run through what a deploy runs: the
checker, the federation's real chart under `helm template` (daskhub's and
jupyterhub's own templates, the image puller included) and
`kubernetes-validate --strict`; the hub's extraConfig against a traitlets
Config (admins alone get the "Other image" box); the dask-kubernetes
admission policy's CEL against what KubeCluster sends from an offered image
and from another. The gateway side runs for real in tests/test_gateway.py.
"""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import kube_tools
import pytest
import yaml
from conftest import BIN, render
from hub_cells import REAL_IDS
from test_kubernetes_backend import admitted, helm_template, sent_daskcluster

from hub_template import load_data

PANGEO = load_data("versions.yml")["pangeo_images"]
NOTEBOOK = f"{PANGEO['names']['pangeo-notebook']}:{PANGEO['tag']}"
ML = f"{PANGEO['names']['ml-notebook']}:{PANGEO['tag']}"
R_IMAGE = "rocker/binder:4.4.1"

# Each setting: its answers, and the images each size offers then (None: the hub's own).
SETTINGS = {
    "default": ({}, {"*": ["hub", "pangeo-notebook"]}),
    "hub-only": ({"user_images": ["hub"]}, {"*": None}),
    "everything": (
        {
            "github_orgs": "pangeo-data",
            "gpu_size": True,
            "gpu_teams": ["pangeo-data:gpu"],
            "other_image": True,
            "user_images": [
                "hub",
                "pangeo-notebook",
                {"name": "ml-notebook", "sizes": ["gpu"]},
                {"name": "r", "image": R_IMAGE, "sizes": ["small"]},
            ],
        },
        {
            "small": ["hub", "pangeo-notebook", "r"],
            "gpu": ["hub", "pangeo-notebook", "ml-notebook"],
            "*": ["hub", "pangeo-notebook"],
        },
    ),
}
# Every cloud with the default and every option on; the hub-only setting (the
# render of before) and the kubernetes backend once each: the CI budget.
# The default and an everyday choice on every cloud are cells of
# test_render_matrix.py; these are the settings only this file renders.
CELLS = [
    ("gcp", "everything", "gateway"),
    ("azure", "everything", "gateway"),
    ("gcp", "hub-only", "gateway"),
    ("aws", "everything", "kubernetes"),
]
_rendered: dict[tuple, Path] = {}


def rendered(template_repo: Path, tmp_path_factory, provider: str, setting: str, backend: str) -> Path:
    key = (provider, setting, backend)
    if key not in _rendered:
        dst = tmp_path_factory.mktemp("-".join(key)) / "deployments" / "charlie"
        data = dict(REAL_IDS)
        if provider == "azure":
            data["cloud_identity"] = "0a1b2c3d-0000-4000-8000-00000000abcd"
        _rendered[key] = render(
            template_repo, dst, cloud_provider=provider, dask_backend=backend, **data, **SETTINGS[setting][0]
        )
    return _rendered[key]


def jupyterhub_values(hub: Path) -> dict:
    values = yaml.safe_load((hub / "config" / "common.yaml").read_text())
    return values["daskhub"]["jupyterhub"] if "daskhub" in values else values["jupyterhub"]


@pytest.fixture(scope="module")
def federation(tmp_path_factory) -> Path:
    return kube_tools.federation_chart(tmp_path_factory.mktemp("federation-chart"))


@pytest.mark.slow
@pytest.mark.parametrize("cell", CELLS, ids="-".join)
def test_each_setting_renders_checks_and_deploys_with_the_real_chart(template_repo, tmp_path_factory, federation, cell):
    hub = rendered(template_repo, tmp_path_factory, *cell)
    _, setting, backend = cell
    expected = SETTINGS[setting][1]
    jupyterhub = jupyterhub_values(hub)
    offered = {}
    for profile in jupyterhub["singleuser"]["profileList"]:
        option = (profile.get("profile_options") or {}).get("image")
        offered[profile["slug"]] = list(option["choices"]) if option else None
        if option:
            first = next(iter(option["choices"].values()))
            assert first.get("default") is True  # the first image is the size's default
            assert ("unlisted_choice" in option) == (setting == "everything")
    for slug, choices in offered.items():
        assert choices == expected.get(slug, expected["*"]), slug

    check = subprocess.run(
        [str(BIN / "hub-template"), "check", str(hub), "--chart", str(federation / ".daskhub" / "daskhub")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr

    objects = [o for _, o in helm_template(federation / "chart", hub, "staging")]
    # z2jh's image puller pulls each offered image on every user node.
    pulled = {c["image"] for o in objects if o["kind"] == "DaemonSet"
              for c in o["spec"]["template"]["spec"].get("initContainers", [])}  # fmt: skip
    wanted = {NOTEBOOK} if setting != "hub-only" else set()
    if setting == "everything":
        wanted |= {ML, R_IMAGE}
    assert wanted <= pulled, pulled
    # Every object Kubernetes would be sent, validated against its schema (the
    # API's own kinds: custom resources have no schema in kubernetes-validate).
    builtin = [o for o in objects if "." not in o["apiVersion"].split("/")[0] or o["apiVersion"].startswith(
        ("apps/", "rbac.authorization.k8s.io/", "networking.k8s.io/", "policy/", "admissionregistration.k8s.io/",
         "scheduling.k8s.io/"))]  # fmt: skip
    manifest = tmp_path_factory.mktemp("manifest") / "objects.yaml"
    manifest.write_text(yaml.safe_dump_all(builtin))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", str(manifest)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert done.stdout.count("passed") == len(builtin), done.stdout[-2000:]
    if backend == "gateway":
        snippet = jupyterhub_gateway_snippet(hub)
        assert f"OFFERED_IMAGES = {json.dumps(sorted(wanted, key=order_of(hub)))}" in snippet


def order_of(hub: Path):
    """The order images are listed in the answers (the snippet keeps it)."""
    answers = yaml.safe_load((hub / ".copier-answers.yml").read_text())
    names = [e if isinstance(e, str) else e["name"] for e in answers["user_images"]]
    by_image = {NOTEBOOK: "pangeo-notebook", ML: "ml-notebook", R_IMAGE: "r"}
    return lambda image: names.index(by_image[image])


def jupyterhub_gateway_snippet(hub: Path) -> str:
    values = yaml.safe_load((hub / "config" / "common.yaml").read_text())
    return values["daskhub"]["dask-gateway"]["gateway"]["extraConfig"]["hub-template-cluster-options"]


def test_only_admins_get_the_other_image_box(template_repo, tmp_path_factory):
    """The hub's extraConfig, run as z2jh's jupyterhub_config.py runs it (in
    key order, after it set profile_list), against a traitlets Config; the
    logged-in user stood in by SimpleNamespace(admin, groups)."""
    from traitlets.config import Config

    hub = rendered(template_repo, tmp_path_factory, "gcp", "everything", "gateway")
    jupyterhub = jupyterhub_values(hub)
    c = Config()
    c.KubeSpawner.profile_list = copy.deepcopy(jupyterhub["singleuser"]["profileList"])
    for name, source in sorted(jupyterhub["hub"]["extraConfig"].items()):
        exec(compile(source, f"extraConfig.{name}", "exec"), {"c": c})

    def offered(admin: bool, *groups: str) -> dict[str, bool]:
        user = SimpleNamespace(admin=admin, groups=[SimpleNamespace(name=g) for g in groups])
        profiles = asyncio.run(c.KubeSpawner.profile_list(SimpleNamespace(user=user)))
        return {p["slug"]: "unlisted_choice" in p["profile_options"]["image"] for p in profiles}

    assert offered(False) == {"small": False, "medium": False, "large": False}  # gpu: its team only
    assert offered(False, "pangeo-data:gpu") == {"small": False, "medium": False, "large": False, "gpu": False}
    assert offered(True) == {"small": True, "medium": True, "large": True}
    # The rendered list itself is left whole for the next spawn.
    assert "unlisted_choice" in jupyterhub["singleuser"]["profileList"][0]["profile_options"]["image"]


def test_the_policy_admits_dask_pods_on_offered_images_only(template_repo, tmp_path_factory, federation, tmp_path,
                                                            monkeypatch):  # fmt: skip
    """A kubernetes hub: what KubeCluster sends from a notebook on the
    pangeo-notebook choice is admitted; the same from an image the hub does
    not offer (or another tag of it) is denied by the admission policy."""
    hub = rendered(template_repo, tmp_path_factory, "aws", "everything", "kubernetes")
    objects = [o for _, o in helm_template(federation / "chart", hub, "staging")]
    (policy,) = [
        o
        for o in objects
        if o["kind"] == "ValidatingAdmissionPolicy"
        and o["spec"]["matchConstraints"]["resourceRules"][0]["resources"] == ["daskclusters"]
    ]
    cluster, _, _ = sent_daskcluster(hub, NOTEBOOK, tmp_path, monkeypatch)
    containers = [cluster["spec"][pod]["spec"]["containers"][0]["image"] for pod in ("scheduler", "worker")]
    assert containers == [NOTEBOOK, NOTEBOOK]  # the notebook's image, through $(JUPYTER_IMAGE_SPEC)
    assert admitted(policy, cluster) == []
    for image in (R_IMAGE, ML, f"{PANGEO['names']['pangeo-notebook']}:2020.01.01", "docker.io/someone/else:1"):
        other = copy.deepcopy(cluster)
        for pod in ("scheduler", "worker"):
            other["spec"][pod]["spec"]["containers"][0]["image"] = image
        assert admitted(policy, other) if image not in (R_IMAGE, ML) else admitted(policy, other) == [], image


BAD = [
    ("not-a-list", {"user_images": "hub"}, "'hub': a list of images like [hub, pangeo-notebook]"),
    ("unknown", {"user_images": ["hub", "rstudio"]}, "'rstudio': not hub, pangeo-notebook, ml-notebook; add image:"),
    ("no-tag", {"user_images": ["hub", {"name": "r", "image": "rocker/binder"}]}, "'rocker/binder': an image with"),
    ("latest", {"user_images": [{"name": "r", "image": "rocker/binder:latest"}]}, "latest moves; name a version tag"),
    ("hub-image", {"user_images": [{"name": "hub", "image": "a/b:1"}]}, "'hub': the hub's own image takes no image"),
    ("twice", {"user_images": ["hub", "hub"]}, "'hub': two images have this name"),
    ("bad-size", {"user_images": ["hub", {"name": "ml-notebook", "sizes": ["gpu"]}]}, "'gpu': not a size (small"),
    ("size-left-out", {"user_images": [{"name": "hub", "sizes": ["small"]}]}, "'large': this size offers no image"),
]


@pytest.mark.parametrize("data, message", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_image_answers_are_refused_naming_the_value_and_the_rule(template_repo, tmp_path, data, message):
    args = [a for key, value in data.items() for a in ("--data", f"{key}={json.dumps(value)}")]
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
