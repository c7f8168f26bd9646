"""HV005, HV006 and DK005: a rendered hub edited to ask for NaN, infinite,
negative or zero resources, or to give the gateway's workers another image
than the users', fails exactly that check, naming the file and line."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from hub_cells import copy_hub, rendered_hub
from test_check import edit, failures, line_of

from hub_template.checks.resources import verdict

GATEWAY = ("gcp", "git-crypt", "gateway")
KUBERNETES = ("gcp", "git-crypt", "kubernetes")
COMMON = "config/common.yaml"
DASK_CONFIG = "image/.dask/config.yaml"
OTHER_IMAGE = "docker.io/someone/else"


@dataclass(frozen=True)
class Wrong:
    name: str
    check: str
    file: str
    pattern: str  # a regex of the rendered file, and what replaces it
    replacement: str
    marker: str  # the text of the line the finding must name
    says: str  # what the finding must say
    cell: tuple[str, str, str] = GATEWAY


WRONGS = [
    # Users' CPU and memory live in the sizes (profileList) alone since 1.2.0.
    Wrong(
        "profile memory limit nanG",
        "HV005",
        COMMON,
        r"^(            mem_limit: ).*$",
        r"\1nanG",
        "mem_limit: nanG",
        "`profileList[0].kubespawner_override.mem_limit` is NaN ('nanG'): write a finite number above 0",
    ),
    Wrong(
        "profile cpu guarantee negative",
        "HV005",
        COMMON,
        r"^(            cpu_guarantee: ).*$",
        r"\1-1",
        "cpu_guarantee: -1",
        "`profileList[0].kubespawner_override.cpu_guarantee` is negative (-1): write a finite number, 0 or more",
    ),
    Wrong(
        "profile cpu limit .inf",
        "HV005",
        COMMON,
        r"^(            cpu_limit: ).*$",
        r"\1.inf",
        "cpu_limit: .inf",
        "`profileList[0].kubespawner_override.cpu_limit` is infinite (inf)",
    ),
    Wrong(
        "profile memory guarantee 1e309G",
        "HV005",
        COMMON,
        r"^(            mem_guarantee: ).*$",
        r"\g<1>1e309G",
        "mem_guarantee: 1e309G",
        "`profileList[0].kubespawner_override.mem_guarantee` is infinite ('1e309G')",
    ),
    Wrong(
        "gateway worker cores limit zero",
        "HV005",
        COMMON,
        r"^(        worker:\n)",
        r"\1          cores:\n            limit: 0  # none\n",
        "limit: 0  # none",
        "`gateway.backend.worker.cores.limit` is zero (0): write a finite number above 0",
    ),
    Wrong(
        "gateway option max=inf",
        "HV005",
        COMMON,
        r'(Float\("worker_memory", .*max=)[^,]+,',
        r"\1inf,",
        "max=inf",
        "`Float('worker_memory', max=...)` is infinite ('inf')",
    ),
    Wrong(
        "gateway cluster_max_cores negative",
        "HV005",
        COMMON,
        r"(c\.ClusterConfig\.cluster_max_cores = ).*$",
        r"\1-4",
        "cluster_max_cores = -4",
        "`cluster_max_cores` is negative (-4)",
    ),
    Wrong(
        "HUB_IMAGE another image",
        "HV006",
        COMMON,
        r'^(\s+HUB_IMAGE = )".*"$',
        rf'\1"{OTHER_IMAGE}"',
        "HUB_IMAGE = ",
        f"`HUB_IMAGE` is '{OTHER_IMAGE}', not the users' image",
    ),
    Wrong(
        "DASK_GATEWAY image variable another image",
        "HV006",
        COMMON,
        r'(DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE: )"\{JUPYTER_IMAGE_SPEC\}"',
        rf'\1"{OTHER_IMAGE}:latest"',
        "DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE:",
        f"`DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE` is '{OTHER_IMAGE}:latest', not the users' image",
    ),
    Wrong(
        "gateway workers on an image not offered at login",
        "HV006",
        COMMON,
        r"^(\s+OFFERED_IMAGES = ).*$",
        rf'\1["{OTHER_IMAGE}:1"]',
        "OFFERED_IMAGES = ",
        f"`OFFERED_IMAGES` is ['{OTHER_IMAGE}:1'], not the images profileList offers at login",
    ),
    Wrong(
        "an image offered at login the gateway refuses",
        "HV006",
        COMMON,
        r"^(\s+image: )pangeo/pangeo-notebook:(.*)$",
        rf"\1{OTHER_IMAGE}:1",
        "OFFERED_IMAGES = ",
        # The first size's choice changed: the list must hold both.
        f'write `["{OTHER_IMAGE}:1", "pangeo/pangeo-notebook:',
    ),
    Wrong(
        "dask config gateway image another image",
        "HV006",
        DASK_CONFIG,
        r'^(      image: )"\{JUPYTER_IMAGE_SPEC\}"',
        rf'\1"{OTHER_IMAGE}:1"',
        f'image: "{OTHER_IMAGE}:1"',
        "`gateway.cluster.options.image` is",
    ),
    Wrong(
        "kubernetes worker memory limit infG",
        "DK005",
        DASK_CONFIG,
        r"^(    limits:\n      cpu: .*\n      memory: ).*$",
        r"\1infG",
        "memory: infG",
        "`kubernetes.resources.limits.memory` is infinite ('infG'): write a finite number above 0",
        cell=KUBERNETES,
    ),
    Wrong(
        "kubernetes worker cpu request negative",
        "DK005",
        DASK_CONFIG,
        r'^(    requests:\n      cpu: )".*"$',
        r'\1"-2"',
        'cpu: "-2"',
        "`kubernetes.resources.requests.cpu` is negative ('-2')",
        cell=KUBERNETES,
    ),
]


@pytest.mark.parametrize("wrong", WRONGS, ids=lambda w: w.name)
def test_each_wrong_resource_or_image_fails_its_check_at_its_line(template_repo, tmp_path_factory, tmp_path, wrong):
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, *wrong.cell), tmp_path)
    edit(hub / wrong.file, wrong.pattern, wrong.replacement)

    failed = failures(hub)

    assert failed.keys() == {wrong.check}, failed
    message = failed[wrong.check]
    assert f"`{wrong.file}:{line_of(hub / wrong.file, wrong.marker)}`" in message, message
    assert wrong.says in message, message
    assert len(message.splitlines()) == 1, message  # one finding, on one line
    if wrong.check == "HV006" and "OFFERED_IMAGES" not in wrong.marker:
        image = next(line for line in (hub / COMMON).read_text().splitlines() if line.startswith("        name: "))
        assert f"write `{image.split(': ', 1)[1]}`" in message, message


def test_hubs_as_rendered_pass_the_three_checks(template_repo, tmp_path_factory):
    gateway = failures(rendered_hub(template_repo, tmp_path_factory, *GATEWAY))
    assert not {"HV005", "HV006", "DK005"} & gateway.keys(), gateway
    kubernetes = failures(rendered_hub(template_repo, tmp_path_factory, *KUBERNETES))
    assert not {"HV005", "HV006", "DK005"} & kubernetes.keys(), kubernetes


@pytest.mark.parametrize(
    ("value", "positive", "wrong"),
    [
        ("500m", True, None),
        (2, True, None),
        ("4G", True, None),
        ("4Gi", True, None),
        ("4 G", True, None),
        (0, False, None),
        (None, True, None),
        (0, True, "is zero"),
        ("0G", True, "is zero"),
        (-1, False, "is negative"),
        ("-1G", False, "is negative"),
        (math.nan, False, "is NaN"),
        ("nanG", False, "is NaN"),
        (math.inf, False, "is infinite"),
        ("infG", False, "is infinite"),
        ("-inf", False, "is infinite"),
        ("1e309", False, "is infinite"),
        ("lots", False, "is not a Kubernetes quantity"),
        (True, False, "is not a number"),
        ([1], False, "is not a number"),
    ],
)
def test_what_counts_as_a_resource_amount(value, positive, wrong):
    assert verdict(value, positive) == wrong
