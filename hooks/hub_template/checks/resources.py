"""Resources and images the pods of a hub ask for, read without running anything.

- HV005: every CPU and memory guarantee or limit in the helm values (the
  users' servers, each size of profileList, dask-gateway's pods, and the
  cluster options and limits in the gateway's extraConfig snippets) is a
  number that is finite and not negative, and limits are above zero.
  `.nan`, `.inf`, `nanG` or `-1` reach Kubernetes or dask-gateway otherwise
  (`max=inf` is a NameError when the gateway starts).
- HV006: a gateway hub's workers run the users' image: the snippet's
  HUB_IMAGE, a literal image option, and the DASK_GATEWAY image variable
  name the image of `singleuser.image.name`; the images the option handler
  lets workers run besides it (OFFERED_IMAGES) are exactly the images
  profileList offers at login (its kubespawner_override images, and its
  profile_options choices'), read from the rendered values: one list.
- DK005: the same rule for the image's dask config (the kubernetes backend's
  pod resources, the gateway's cluster options).

The snippets are parsed with `ast`, never executed.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Iterator
from typing import Any

from ..helm_values import Problem, ValuesFile, coalesce
from .base import Dask, Helm, code, get_path, report
from .hub import Hub

# A Kubernetes quantity (a plain number, or with a suffix: 500m, 4G, 4Gi), and
# dask-gateway's memory strings ("4 G").
QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(Ki|Mi|Gi|Ti|Pi|Ei|[numkKMGTPE])?")
NON_FINITE = re.compile(r"\s*[+-]?(nan|inf).*", re.I)  # nanG, infG, -inf
EXAMPLE = {"cpu": "2", "memory": "4G"}

# (path under the chart, cpu or memory, whether zero is wrong): zero as a
# guarantee asks for nothing, zero as a limit (or a worker size) for no room.
SINGLEUSER = tuple(
    (("jupyterhub", "singleuser", kind, bound), kind, bound == "limit")
    for kind in ("cpu", "memory")
    for bound in ("guarantee", "limit")
)
OVERRIDES = (
    ("cpu_guarantee", "cpu", False),
    ("cpu_limit", "cpu", True),
    ("mem_guarantee", "memory", False),
    ("mem_limit", "memory", True),
)
GATEWAY_PODS = tuple(
    (("dask-gateway", "gateway", "backend", pod, size, bound), kind, True)
    for pod in ("scheduler", "worker")
    for size, kind in (("cores", "cpu"), ("memory", "memory"))
    for bound in ("request", "limit")
)
SNIPPETS = ("dask-gateway", "gateway", "extraConfig")
# dask-gateway-server traits of sizes (c.<Config>.<name> = ...), and its options.
GATEWAY_TRAITS = {
    f"{pod}_{kind}{limit}": "cpu" if kind == "cores" else "memory"
    for pod in ("worker", "scheduler")
    for kind in ("cores", "memory")
    for limit in ("", "_limit")
} | {"cluster_max_cores": "cpu", "cluster_max_memory": "memory", "cluster_max_workers": "cpu"}
OPTION_CALLS = {"Float", "Integer"}
OPTION_KINDS = {
    "worker_cores": "cpu",
    "worker_memory": "memory",
    "scheduler_cores": "cpu",
    "scheduler_memory": "memory",
}
IMAGE_ENV = "DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE"
NOTEBOOK_IMAGE = ("{JUPYTER_IMAGE_SPEC}", "$(JUPYTER_IMAGE_SPEC)")
DASK_CONFIG = "image/.dask/config.yaml"


def verdict(value: object, positive: bool) -> str | None:
    """What is wrong with a resource amount, or None (None itself: unset)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return "is not a number"
    if isinstance(value, str):
        if NON_FINITE.fullmatch(value):
            return "is NaN" if "nan" in value.lower() else "is infinite"
        match = QUANTITY.fullmatch(value.strip())
        if not match:
            return "is not a Kubernetes quantity"
        value = float(match[1])
    if math.isnan(value):
        return "is NaN"
    if math.isinf(value):
        return "is infinite"
    if value < 0:
        return "is negative"
    if value == 0 and positive:
        return "is zero"
    return None


def _finding(label: str, line: int | None, name: str, value: object, what: str, kind: str, positive: bool) -> Problem:
    rule = "a finite number above 0" if positive else "a finite number, 0 or more"
    return Problem(label, line, f"{code(name)} {what} ({value!r}): write {rule}, e.g. {code(EXAMPLE[kind])}.")


def _all_files(hub: Hub) -> list[ValuesFile]:
    seen: dict[str, ValuesFile] = {}
    for env in hub.environments:
        for f in hub.values_layers(env):
            seen.setdefault(f.label, f)
    return list(seen.values())


# --- the helm values ------------------------------------------------------------


def _values_resources(hub: Hub, f: ValuesFile) -> Iterator[Problem]:
    paths = [*SINGLEUSER, *GATEWAY_PODS]
    for root, path in hub.chart_paths([p for p, _, _ in paths]):
        kind, positive = next((k, pos) for p, k, pos in paths if p == path)
        keys = [*root, *path]
        value = get_path(f.data, keys)
        what = verdict(value, positive)
        if what:
            yield _finding(f.label, f.line_of(keys), ".".join(path[1:]), value, what, kind, positive)
    for root, path in hub.chart_paths([("jupyterhub", "singleuser", "profileList")]):
        profiles = get_path(f.data, [*root, *path])
        for index, profile in enumerate(profiles if isinstance(profiles, list) else []):
            override = profile.get("kubespawner_override") if isinstance(profile, dict) else None
            for key, kind, positive in OVERRIDES:
                value = override.get(key) if isinstance(override, dict) else None
                what = verdict(value, positive)
                if what:
                    keys = [*root, *path, str(index), "kubespawner_override", key]
                    name = f"profileList[{index}].kubespawner_override.{key}"
                    yield _finding(f.label, f.line_of(keys), name, value, what, kind, positive)


def _snippets(hub: Hub, f: ValuesFile) -> Iterator[tuple[int, ast.Module]]:
    """(line before its first line, parsed snippet) of each gateway snippet of `f`."""
    for root, path in hub.chart_paths([SNIPPETS]):
        keys = [*root, *path]
        snippets = get_path(f.data, keys)
        if isinstance(snippets, str):
            snippets = {None: snippets}
        for name, source in snippets.items() if isinstance(snippets, dict) else ():
            if not isinstance(source, str):
                continue
            try:
                tree = ast.parse(source)
            except SyntaxError:
                continue  # HV004's finding
            yield f.line_of([*keys, name] if name else keys) or 0, tree


def _literal(node: ast.expr) -> object:
    """A snippet's value as written: a literal, `inf`/`nan` by name, or
    float("nan"); anything else (an expression of its own) is not judged."""
    if isinstance(node, ast.Name) and node.id.lower() in ("inf", "nan", "infinity"):
        return node.id
    if isinstance(node, ast.Attribute) and node.attr in ("inf", "nan"):  # math.inf
        return node.attr
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "float" and node.args:
        node = node.args[0]
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None


def _snippet_resources(hub: Hub, f: ValuesFile) -> Iterator[Problem]:
    for start, tree in _snippets(hub, f):
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.targets[-1], ast.Attribute):
                trait = node.targets[-1].attr
                if trait in GATEWAY_TRAITS:
                    value = _literal(node.value)
                    what = verdict(value, True)
                    if what:
                        yield _finding(f.label, start + node.lineno, trait, value, what, GATEWAY_TRAITS[trait], True)
            elif isinstance(node, ast.Call) and _called(node) in OPTION_CALLS and node.args:
                option = _literal(node.args[0])
                kind = OPTION_KINDS.get(option, "cpu") if isinstance(option, str) else "cpu"
                for keyword in node.keywords:
                    if keyword.arg in ("default", "min", "max"):
                        value = _literal(keyword.value)
                        positive = keyword.arg != "min"
                        what = verdict(value, positive)
                        if what:
                            name = f"{_called(node)}({option!r}, {keyword.arg}=...)"
                            yield _finding(f.label, start + keyword.value.lineno, name, value, what, kind, positive)


def _called(node: ast.Call) -> str | None:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


class HV005(Helm):
    "CPU and memory guarantees and limits are finite, not negative, and limits above zero"

    def run(self, hub: Hub) -> str:
        problems = []
        for f in _all_files(hub):
            problems += [*_values_resources(hub, f), *_snippet_resources(hub, f)]
        return report(problems)


# --- the image the gateway's workers run ------------------------------------------


def _image_name(image: object) -> str | None:
    """The name of an image reference (no tag), or None for the notebook's own."""
    if not isinstance(image, str) or any(spec in image for spec in NOTEBOOK_IMAGE):
        return None
    name, colon, tag = image.rpartition(":")
    return name if colon and "/" not in tag else image


def _extra_env(env: object) -> dict[str, object]:
    if isinstance(env, dict):
        return env
    if isinstance(env, list):
        return {e["name"]: e.get("value") for e in env if isinstance(e, dict) and "name" in e}
    return {}


def _image_settings(hub: Hub, f: ValuesFile) -> Iterator[tuple[int | None, str, str]]:
    """(line, what, image name) of each image a gateway's worker may be given in `f`."""
    for root, path in hub.chart_paths([("jupyterhub", "singleuser", "extraEnv")]):
        keys = [*root, *path]
        value = _extra_env(get_path(f.data, keys)).get(IMAGE_ENV)
        if isinstance(value, str) and _image_name(value):
            yield f.line_of([*keys, IMAGE_ENV]) or f.line_of(keys), IMAGE_ENV, value
    for start, tree in _snippets(hub, f):
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "HUB_IMAGE" for t in node.targets
            ):
                value = _literal(node.value)
                if isinstance(value, str):
                    yield start + node.lineno, "HUB_IMAGE", value
            elif (
                isinstance(node, ast.Call)
                and _called(node) == "String"
                and node.args
                and _literal(node.args[0]) == "image"
            ):
                for keyword in node.keywords:
                    value = _literal(keyword.value) if keyword.arg == "default" else None
                    if isinstance(value, str) and _image_name(value):
                        yield start + keyword.value.lineno, "String('image', default=...)", value


def _singleuser_image(hub: Hub, env: str) -> str | None:
    merged: dict[str, Any] = {}
    for f in hub.values_layers(env):
        merged = coalesce(merged, f.data)
    for root, path in hub.chart_paths([("jupyterhub", "singleuser", "image", "name")]):
        name = get_path(merged, [*root, *path])
        if isinstance(name, str) and name:
            return name
    return None


def _offered_at_login(profiles: object) -> set[str]:
    """The images profileList lets users choose besides singleuser.image:
    each profile's kubespawner_override image and each profile_options choice's."""
    overrides: list[object] = []
    for profile in profiles if isinstance(profiles, list) else []:
        if not isinstance(profile, dict):
            continue
        overrides.append(profile.get("kubespawner_override"))
        options = profile.get("profile_options")
        for option in options.values() if isinstance(options, dict) else ():
            choices = option.get("choices") if isinstance(option, dict) else None
            for choice in choices.values() if isinstance(choices, dict) else ():
                overrides.append(choice.get("kubespawner_override") if isinstance(choice, dict) else None)
    return {o["image"] for o in overrides if isinstance(o, dict) and isinstance(o.get("image"), str)}


def _worker_lists(hub: Hub, f: ValuesFile) -> Iterator[tuple[int | None, object]]:
    """(line, value) of each OFFERED_IMAGES the gateway's snippets of `f` assign."""
    for start, tree in _snippets(hub, f):
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "OFFERED_IMAGES" for t in node.targets
            ):
                try:
                    value = ast.literal_eval(node.value)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    value = None
                yield start + node.lineno, value


def _offered_problems(hub: Hub, env: str) -> Iterator[Problem]:
    """The handler's OFFERED_IMAGES against profileList's images, in one release."""
    merged: dict[str, Any] = {}
    for f in hub.values_layers(env):
        merged = coalesce(merged, f.data)
    offered: set[str] = set()
    for root, path in hub.chart_paths([("jupyterhub", "singleuser", "profileList")]):
        offered |= _offered_at_login(get_path(merged, [*root, *path]))
    lists = [(f, line, value) for f in hub.values_layers(env) for line, value in _worker_lists(hub, f)]
    if not lists:
        if offered:
            f = hub.values_layers(env)[0]
            line = next((f.line_of([*r, *p]) for r, p in hub.chart_paths([("jupyterhub", "singleuser", "profileList")])
                         if f.line_of([*r, *p])), None)  # fmt: skip
            yield Problem(
                f.label,
                line,
                f"profileList offers {sorted(offered)!r} but the gateway's handler lists no OFFERED_IMAGES: "
                f"write {code('OFFERED_IMAGES = ' + json.dumps(sorted(offered)))}, or their workers are refused.",
            )
        return
    f, line, value = lists[-1]  # the last layer's is the one the gateway runs
    listed = set(value) if isinstance(value, list) and all(isinstance(v, str) for v in value) else None
    if listed != offered:
        yield Problem(
            f.label,
            line,
            f"{code('OFFERED_IMAGES')} is {value!r}, not the images profileList offers at login: write "
            f"{code(json.dumps(sorted(offered)))}, or workers run images no notebook runs, or are refused theirs.",
        )


def _wrong_image(label: str, line: int | None, what: str, value: str, wanted: str) -> Problem:
    return Problem(
        label,
        line,
        f"{code(what)} is {value!r}, not the users' image {wanted}: write {code(wanted)} "
        f"(a tag after it), or workers run other code than notebooks.",
    )


class HV006(Helm):
    "A gateway hub's workers run the singleuser image"

    def run(self, hub: Hub) -> str:
        if hub.dask_backend != "gateway":
            return ""  # the kubernetes backend's workers get the notebook's image (DASK_KUBERNETES__IMAGE)
        problems = []
        for env in hub.environments:
            wanted = _singleuser_image(hub, env)
            if wanted is None:
                continue  # no image: HV003 and ST checks say so
            for f in hub.values_layers(env):
                for line, what, value in _image_settings(hub, f):
                    if _image_name(value) != wanted:
                        problems.append(_wrong_image(f.label, line, what, value, wanted))
            config = hub.values_file(DASK_CONFIG)
            option = get_path(config.data, ["gateway", "cluster", "options", "image"]) if config else None
            if config and isinstance(option, str) and _image_name(option) and _image_name(option) != wanted:
                line = config.line_of(["gateway", "cluster", "options", "image"])
                problems.append(_wrong_image(DASK_CONFIG, line, "gateway.cluster.options.image", option, wanted))
            problems += [p for p in _offered_problems(hub, env) if p not in problems]
        return report(problems)


# --- the image's dask config ------------------------------------------------------

DASK_RESOURCES = tuple(
    (("kubernetes", "resources", bound, kind), kind, bound == "limits")
    for bound in ("requests", "limits")
    for kind in ("cpu", "memory")
) + tuple((("gateway", "cluster", "options", option), kind, True) for option, kind in OPTION_KINDS.items())


class DK005(Dask):
    "The image's dask config asks for finite, positive worker resources"

    def run(self, hub: Hub) -> str:
        config = hub.values_file(DASK_CONFIG)
        if config is None:
            return ""  # missing or unparsable: DK001 and ST003 say so
        problems = []
        for keys, kind, positive in DASK_RESOURCES:
            value = get_path(config.data, keys)
            what = verdict(value, positive)
            if what:
                problems.append(
                    _finding(DASK_CONFIG, config.line_of(list(keys)), ".".join(keys), value, what, kind, positive)
                )
        return report(problems)


HELM_CHECKS = (HV005, HV006)
DASK_CHECKS = (DK005,)
