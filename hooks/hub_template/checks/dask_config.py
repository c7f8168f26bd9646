"""Dask: the configuration notebooks and workers read at run time (see
runtime.py), checked against the keys the packages themselves ship.

The known keys are the default YAML files dask, distributed, dask-gateway and
dask-labextension install beside their code. The `kubernetes` dask backend
uses the dask-kubernetes operator's KubeCluster (data/versions.yml:
dask_kubernetes); its keys come from that package's kubernetes.yaml, so they
are checked only where such a dask-kubernetes is installed (`pip install
'hub-template[kubernetes]'`), and are otherwise reported as not checked.
"""

from __future__ import annotations

import copy
import difflib
import functools
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..helm_values import Problem, ValuesFile
from .base import Dask, Skip, code, report
from .encryption import YamlLoader
from .hub import Hub
from .runtime import Export, runtime_config

DEFAULTS = (
    ("dask", "dask.yaml"),
    ("distributed", "distributed.yaml"),
    ("dask_gateway", "gateway.yaml"),
    ("dask_labextension", "labextension.yaml"),
)
DASK_KUBERNETES = ("dask_kubernetes", "kubernetes.yaml")
# What the dask panel must create for each dask backend of the template.
HUB_DASK_MODULE = "hub_dask"  # image/hub_dask.py, which postBuild installs
FACTORIES = {"gateway": ("dask_gateway", "GatewayCluster"), "kubernetes": (HUB_DASK_MODULE, "KubeCluster")}
# The keys of the image's own module, template/image/hub_dask.py (the
# operator's KubeCluster with pod placement), which no package ships.
HUB_DASK_DEFAULTS: dict[str, Any] = {"hub-dask": {"pod": {}, "labels": {}}}
# Where the charts put environment variables into pods that run dask.
ENV_PATHS = (
    ("jupyterhub", "singleuser", "extraEnv"),
    ("dask-gateway", "gateway", "backend", "scheduler", "extraContainerConfig", "env"),
    ("dask-gateway", "gateway", "backend", "worker", "extraContainerConfig", "env"),
)


@functools.cache
def _package_defaults(package: str, filename: str) -> dict[str, Any] | None:
    spec = importlib.util.find_spec(package)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / filename
    return yaml.load(path.read_text(), Loader=YamlLoader) if path.is_file() else None


@dataclass
class KnownKeys:
    tree: dict[str, Any] = field(default_factory=dict)
    unchecked: dict[str, str] = field(default_factory=dict)  # top-level key -> why its keys are not known


@functools.cache
def _known(wanted_range: str) -> KnownKeys:
    from importlib.metadata import PackageNotFoundError, version

    from packaging.specifiers import SpecifierSet

    known = KnownKeys()
    for package, filename in DEFAULTS:
        known.tree = _merge(known.tree, _package_defaults(package, filename) or {})
    known.tree = _merge(known.tree, HUB_DASK_DEFAULTS)
    try:
        installed = version("dask-kubernetes")
    except PackageNotFoundError:
        installed = None
    if installed and installed in SpecifierSet(wanted_range):
        known.tree = _merge(known.tree, _package_defaults(*DASK_KUBERNETES) or {})
    else:
        have = f"dask-kubernetes {installed} is installed" if installed else "dask-kubernetes is not installed"
        known.unchecked["kubernetes"] = (
            f"{have}; the KubeCluster's keys come from dask-kubernetes{wanted_range}: "
            "`pip install 'hub-template[kubernetes]'` to check them"
        )
    return known


def _merge(base: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """Deep merge that keeps null defaults: a null default is a key too."""
    merged = dict(base)
    for key, value in more.items():
        both = isinstance(merged.get(key), dict) and isinstance(value, dict)
        merged[key] = _merge(merged[key], value) if both else value
    return merged


def known_keys(hub: Hub) -> KnownKeys:
    return _known(str(hub.versions["dask_kubernetes"]))


def _norm(key: object) -> str:
    return str(key).replace("_", "-")  # dask treats a_b and a-b as one key


def unknown_keys(
    data: dict[str, Any], known: KnownKeys, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], str]]:
    """(key path, what to say) for each key of ``data`` no package ships."""
    import dask.config

    tree = known.tree
    for key in prefix:
        tree = {_norm(k): v for k, v in tree.items()}.get(_norm(key), {})
    options = {_norm(k): v for k, v in tree.items()} if isinstance(tree, dict) else {}
    for key, value in data.items():
        path = (*prefix, str(key))
        dotted = ".".join(map(_norm, path))
        if dotted in dask.config.deprecations:
            yield path, f"is deprecated: dask reads it as {code(dask.config.deprecations[dotted])}; rename it."
            continue
        if not prefix and _norm(key) in known.unchecked:
            continue
        if _norm(key) not in options:
            close = difflib.get_close_matches(_norm(key), options, n=1)
            hint = f"; did you mean {code('.'.join([*prefix, close[0]]))}?" if close else "; check its spelling."
            owner = (
                "dask-kubernetes"
                if _norm(path[0]) == "kubernetes"
                else "dask, distributed, dask-gateway or dask-labextension"
            )
            yield path, f"is not a setting {owner} knows{hint}"
            continue
        default = options[_norm(key)]
        # A default of {} or null is a free-form mapping (factory kwargs, cluster options, pod templates).
        if isinstance(value, dict) and isinstance(default, dict) and default:
            yield from unknown_keys(value, known, path)


def _unchecked_used(data: dict[str, Any], known: KnownKeys) -> list[str]:
    return [known.unchecked[_norm(k)] for k in data if _norm(k) in known.unchecked]


# --- DASK_* variables in the helm values ---------------------------------------------


@dataclass(frozen=True)
class DaskVariable:
    name: str
    value: object
    file: ValuesFile
    keys: tuple[str, ...]  # where it is set, for the line


def dask_variables(hub: Hub) -> list[DaskVariable]:
    found = {}
    for env in hub.environments:
        for f in hub.values_layers(env):
            for root, path in hub.chart_paths(ENV_PATHS):
                block: Any = f.data
                for key in (*root, *path):
                    block = block.get(key) if isinstance(block, dict) else None
                entries = (
                    block.items()
                    if isinstance(block, dict)
                    else ((e.get("name"), e.get("value")) for e in block if isinstance(e, dict))
                    if isinstance(block, list)
                    else ()
                )
                for name, value in entries:
                    if isinstance(name, str) and name.startswith("DASK_"):
                        keys = (*root, *path, name) if isinstance(block, dict) else (*root, *path)
                        found[(f.label, name)] = DaskVariable(name, value, f, keys)
    return list(found.values())


def _variable_config(variables: list[DaskVariable]) -> dict[str, Any]:
    import dask.config

    return dask.config.collect_env({v.name: str(v.value) for v in variables})


# --- the checks ------------------------------------------------------------------------


class DK001(Dask):
    "The image installs its dask config where dask reads it at run time"

    def run(self, hub: Hub) -> str | Skip:
        runtime = runtime_config(hub)
        if runtime.error:
            return self.skip(f"the image's scripts cannot be read here: {runtime.error}")
        sources = [rel for rel in hub.files if rel.startswith("image/.dask/") and rel.endswith((".yaml", ".yml"))]
        if not sources:
            return report(
                [
                    Problem(
                        "image/.dask/config.yaml",
                        None,
                        "is missing: without it the JupyterLab dask panel makes a LocalCluster inside the user's pod "
                        "(PCF #622). Restore it with `copier update --trust`.",
                    )
                ]
            )
        installed = {f.label for f in runtime.files}
        hidden = (
            f" (postBuild put {', '.join(map(code, runtime.hidden))} under ~/.config/dask, which the users' home volume hides)"
            if runtime.hidden
            else ""
        )
        return report(
            Problem(
                rel,
                None,
                f"is not where dask reads it in the image{hidden}: dask never reads ~/.dask. Have postBuild run "
                '`mkdir -p "${NB_PYTHON_PREFIX}/etc/dask" && cp .dask/config.yaml "${NB_PYTHON_PREFIX}/etc/dask/"`.',
            )
            for rel in sources
            if rel not in installed
        )


class DK002(Dask):
    "Every dask config key is one dask, distributed, dask-gateway or dask-labextension knows"

    def run(self, hub: Hub) -> str | Skip:
        known = known_keys(hub)
        runtime = runtime_config(hub)
        files = {f.label: f for f in runtime.files}
        for rel in hub.files:  # the hub's own config, even where postBuild does not install it
            if rel.startswith("image/.dask/") and rel.endswith((".yaml", ".yml")) and rel not in files:
                f = hub.values_file(rel)
                if f is not None:
                    files[rel] = f
        problems, unchecked = [], []
        for f in files.values():
            for path, what in unknown_keys(f.data, known):
                problems.append(Problem(f.label, f.line_of(list(path)), f"{code('.'.join(path))} {what}"))
            unchecked += _unchecked_used(f.data, known)
        if not problems and unchecked:
            return self.skip(unchecked[0])
        return report(problems) + (f"\n\nNot checked: {unchecked[0]}." if problems and unchecked else "")


class DK003(Dask):
    "The dask panel's factory matches the hub's dask backend"

    def run(self, hub: Hub) -> str | Skip:
        import dask.config

        runtime = runtime_config(hub)
        if runtime.error:
            return self.skip(f"the image's scripts cannot be read here: {runtime.error}")
        # DASK_* variables of the pods override the YAML, and start's exports override both.
        exports = [e for e in runtime.exports if e.file.endswith("/start") and e.value is not None]
        config = dask.config.update(copy.deepcopy(runtime.config), _variable_config(dask_variables(hub)))
        config = dask.config.update(config, _export_config(exports))
        problems = [
            Problem(
                e.file,
                e.line,
                f"exports {code(e.name)}, which sets {code('.'.join(keys))}: the hub's own setting decides how "
                "clusters are made (its .dask/config.yaml and helm values); remove the export.",
            )
            for e in runtime.exports
            for keys in [_hub_keys(e.name)]
            if keys
        ]
        factory = (config.get("labextension") or {}).get("factory") or {}
        module, cls = FACTORIES[hub.dask_backend]
        got = (factory.get("module"), factory.get("class"))
        if got != (module, cls):
            where = next((f.label for f in runtime.files if "labextension" in f.data), "image/.dask/config.yaml")
            said = f"{code(f'{got[0]}.{got[1]}')}" if all(got) else "no factory (so dask-labextension's LocalCluster)"
            problems.insert(
                0,
                Problem(
                    where,
                    None,
                    f"the dask panel creates clusters with {said}, but the hub's dask backend is "
                    f"{code(hub.dask_backend)}: set {code('labextension.factory')} to module {code(module)}, "
                    f"class {code(cls)}, or users get clusters inside their own pod (PCF #622, dask/helm-chart#159).",
                ),
            )
        elif module == HUB_DASK_MODULE and not (hub.folder / "image" / f"{module}.py").is_file():
            problems.insert(
                0,
                Problem(
                    f"image/{module}.py",
                    None,
                    f"is missing, so the dask panel's {code(module + '.' + cls)} cannot be imported: "
                    "restore it with `copier update --trust --defaults`.",
                ),
            )
        return report(problems)


# The settings that decide how clusters are made: the hub's own (source_import.HUB_DASK_KEYS).
HUB_KEYS = (("labextension", "factory"), ("gateway",), ("kubernetes",), ("hub-dask",))
# What start may set among them: where the dashboard link points, which the
# hub's own start derives from the pod's gateway address (the dask panel
# shows a dashboard only through the server's proxy); it makes no cluster.
START_MAY_SET = (("gateway", "public-address"),)


def _hub_keys(name: str) -> tuple[str, ...] | None:
    """The dask key path a DASK_* variable sets, when it is one of HUB_KEYS."""
    keys = tuple(_norm(k).lower() for k in name[len("DASK_") :].split("__"))
    if any(keys[: len(k)] == k for k in START_MAY_SET):
        return None
    return keys if any(keys[: len(h)] == h for h in HUB_KEYS) else None


def _export_config(exports: list[Export]) -> dict[str, Any]:
    import dask.config

    return dask.config.collect_env({e.name: e.value for e in exports if e.value is not None})


class DK004(Dask):
    "DASK_* variables in the helm values name real dask keys"

    # (and those postBuild and start export: the README lists the check by the line above)

    def run(self, hub: Hub) -> str | Skip:
        known = known_keys(hub)
        problems, unchecked = [], []
        found = [
            (var.name, _variable_config([var]), var.file.label, var.file.line_of(list(var.keys)))
            for var in dask_variables(hub)
        ]
        runtime = runtime_config(hub)
        found += [
            (e.name, _export_config([Export(e.name, e.value or "x", e.file, e.line)]), e.file, e.line)
            for e in runtime.exports
        ]
        for name, data, label, line in found:
            unchecked += _unchecked_used(data, known)
            for path, what in unknown_keys(data, known):
                problems.append(Problem(label, line, f"{code(name)} sets {code('.'.join(path))}, which {what}"))
        if not problems and unchecked:
            return self.skip(unchecked[0])
        return report(problems)


CHECKS = (DK001, DK002, DK003, DK004)
