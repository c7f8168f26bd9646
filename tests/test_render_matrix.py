"""The render matrix of what real hubs configure (issue 31): login x home
storage x image choice x cloud, each cell rendered by copier, checked by
`hub-template check` against the daskhub chart the federation builds, rendered
by the real helm through the federation's own chart for staging and prod as
hubploy deploys it, and every distinct object passed through
kubernetes-validate --strict.

The cells are a pairwise cover (every pair of values of any two axes meets in
at least one cell: the test asserts it), nine cells instead of the 36 of the
full product; each axis's own tests (test_login, test_home_storage,
test_images) go deeper into its values.
"""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
from typing import Any

import kube_tools
import pytest
import yaml
from conftest import BIN, render
from hub_cells import PROVIDERS, REAL_IDS
from test_check import failures
from test_home_storage import nfs_answers
from test_kubernetes_backend import helm_template
from test_login import CILOGON, OIDC_GROUPS

from hub_template import load_data

PANGEO = load_data("versions.yml")["pangeo_images"]
LOGINS: dict[str, dict[str, Any]] = {"github": {}, "cilogon": CILOGON, "oidc": OIDC_GROUPS}
HOMES = ("volume", "nfs")
IMAGES: dict[str, dict[str, Any]] = {
    "default": {},
    "choices": {"user_images": ["hub", "pangeo-notebook", "ml-notebook"], "other_image": True},
}
AXES = {"login": list(LOGINS), "cloud": list(PROVIDERS), "homes": list(HOMES), "images": list(IMAGES)}
# (login, cloud, homes, images)
CELLS = [
    ("github", "gcp", "volume", "default"),
    ("github", "aws", "nfs", "choices"),
    ("github", "azure", "volume", "choices"),
    ("cilogon", "gcp", "nfs", "choices"),
    ("cilogon", "aws", "volume", "default"),
    ("cilogon", "azure", "nfs", "default"),
    ("oidc", "gcp", "nfs", "default"),
    ("oidc", "aws", "volume", "choices"),
    ("oidc", "azure", "volume", "default"),
]


def test_the_cells_meet_every_pair_of_values():
    assert set(AXES["cloud"]) == {"gcp", "aws", "azure"}  # providers.yml's clouds, each a cell's
    for (a, first), (b, second) in itertools.combinations(enumerate(AXES.values()), 2):
        met = {(cell[a], cell[b]) for cell in CELLS}
        assert met == set(itertools.product(first, second)), (list(AXES)[a], list(AXES)[b])


def hub_secret_values(objects: list[tuple[str, dict]]) -> dict[str, Any]:
    """The values the chart hands JupyterHub (the hub Secret's values.yaml)."""
    (secret,) = [o for _, o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == "hub"]
    return yaml.safe_load(base64.b64decode(secret["data"]["values.yaml"]))


def offered(profiles: list[dict]) -> set[str]:
    """Each image profileList offers (a choice with no image override is the hub's own)."""
    images = set()
    for profile in profiles:
        for option in (profile.get("profile_options") or {}).values():
            for choice in (option.get("choices") or {}).values():
                images.add(choice.get("kubespawner_override", {}).get("image", "hub"))
    return images


@pytest.mark.slow
def test_every_cell_renders_checks_and_deploys_with_the_real_charts(template_repo, tmp_path_factory, tmp_path):
    federation = kube_tools.federation_chart(tmp_path_factory.mktemp("federation-chart"))
    chart, daskhub = federation / "chart", federation / ".daskhub" / "daskhub"
    own_templates = f"{yaml.safe_load((chart / 'Chart.yaml').read_text())['name']}/templates/"
    distinct: dict[str, dict] = {}
    for login, cloud, homes, images in CELLS:
        cell = (login, cloud, homes, images)
        data = {**REAL_IDS, "cloud_provider": cloud, "customise": True, **LOGINS[login], **IMAGES[images]}
        if homes == "nfs":
            data.update(nfs_answers(cloud))
        hub = render(template_repo, tmp_path / "-".join(cell) / "deployments" / "charlie", **data)
        assert failures(hub, daskhub) == {}, cell
        common = yaml.safe_load((hub / "config" / "common.yaml").read_text())["daskhub"]["jupyterhub"]
        for env in ("staging", "prod"):
            objects = helm_template(chart, hub, env)
            given = hub_secret_values(objects)
            # The login, as the chart hands it to JupyterHub.
            for cls, traits in common["hub"]["config"].items():
                assert {t: given["hub"]["config"][cls].get(t) for t in traits} == traits, (cell, cls)
            # Homes: NFS hubs get their volume and claim from the federation's chart.
            own = {(o["kind"], o["metadata"]["name"]) for s, o in objects if s.startswith(own_templates)}
            assert (("PersistentVolumeClaim", "home-nfs") in own) == (homes == "nfs"), (cell, own)
            assert given["singleuser"]["storage"]["type"] == ("static" if homes == "nfs" else "dynamic"), cell
            # Images: each size offers the hub's image and the chosen others; admins may type one.
            profiles = given["singleuser"]["profileList"]
            names = {"hub"} | {f"{PANGEO['names'][n]}:{PANGEO['tag']}" for n in ("pangeo-notebook",)}
            if images == "choices":
                names.add(f"{PANGEO['names']['ml-notebook']}:{PANGEO['tag']}")
            assert offered(profiles) == names, cell
            typed = any(
                (option.get("unlisted_choice") or {}).get("enabled")
                for profile in profiles
                for option in (profile.get("profile_options") or {}).values()
            )
            assert typed == (images == "choices"), cell
            for _, obj in objects:
                distinct.setdefault(json.dumps(obj, sort_keys=True), obj)
    manifest = tmp_path / "objects.yaml"
    manifest.write_text(yaml.safe_dump_all(distinct.values()))
    valid = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", str(manifest)], capture_output=True, text=True
    )
    assert valid.returncode == 0, valid.stdout + valid.stderr
