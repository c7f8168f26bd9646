"""Merge a hub's helm values the way helm does, and validate them against the
daskhub chart's subchart schemas.

A chart directory has the layout ``helm pull dask/daskhub --untar`` or
``helm dependency build daskhub`` gives: ``daskhub/{Chart.yaml,values.yaml}``
and, under ``daskhub/charts/``, each subchart as a folder or as the ``.tgz``
helm packed it in, holding its ``values.yaml`` and ``values.schema.json``.

For each subchart S, helm computes
``coalesce(S/values.yaml, daskhub/values.yaml[S], file_1[S], ..., file_n[S])``
where a ``null`` deletes a key of ``S/values.yaml`` only: over a value that
the parent's ``values.yaml`` sets for S, helm keeps the ``null`` (a nil the
subchart's templates then meet), so such a ``null`` is reported here. Lists
are replaced whole, the parent's ``global`` is passed down, and the result
must pass ``S/values.schema.json``. Keys of the parent that neither it nor a
subchart uses are ignored by helm without a word, so they are reported here.

The federation's deployment chart (federation/chart/) sits above: it passes
``<umbrella>:`` to daskhub, ``jupyterhub:`` to the jupyterhub chart it
depends on directly (hubs whose users start dask-kubernetes clusters deploy
no dask-gateway), and reads ``deployment:`` itself.
"""

from __future__ import annotations

import copy
import json
import re
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from jsonschema import ValidationError

# libyaml's parser when pyyaml has it: the charts' values.yaml are large.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Keys the daskhub parent chart reads itself, besides its subcharts' names:
# `rbac` is imported from the jupyterhub chart (import-values). daskhub's own
# `dask-kubernetes:` default is read by no template.
PARENT_KEYS = frozenset({"global", "rbac"})
# The deployment chart's own values, and the chart it depends on directly.
DEPLOYMENT_KEY = "deployment"
DIRECT_JUPYTERHUB = "jupyterhub"
# helm's behaviour that a null over a parent chart's value meets.
NIL_OVER_PARENT = (
    "helm keeps it as nil, which the chart's templates then meet (a null "
    "deletes only keys of the subchart's own values.yaml)"
)


@dataclass(frozen=True)
class Problem:
    """One finding, named by file (and line when known)."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class ValuesFile:
    """A YAML file of helm values, with the line of every key path."""

    path: Path
    label: str  # how messages name it, e.g. "config/common.yaml"
    data: dict[str, Any]
    lines: dict[tuple[str, ...], int]

    @classmethod
    def load(cls, path: Path, label: str | None = None) -> ValuesFile:
        return cls.parse(Path(path).read_text(), path, label)

    @classmethod
    def parse(cls, text: str, path: Path, label: str | None = None) -> ValuesFile:
        """The values of ``text``, read from ``path`` by the caller (the checker reads no link)."""
        data = yaml.load(text, Loader=_Loader) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{label or path}: helm values must be a mapping")
        return cls(Path(path), label or str(path), data, _key_lines(text))

    def line_of(self, keys: Sequence[str]) -> int | None:
        """Line of the longest prefix of ``keys`` this file defines."""
        for end in range(len(keys), 0, -1):
            line = self.lines.get(tuple(keys[:end]))
            if line:
                return line
        return None


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each mapping key path of a YAML document to its 1-based line."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, prefix: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                path = (*prefix, str(key.value))
                lines[path] = key.start_mark.line + 1
                walk(value, path)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*prefix, str(index)))

    root = yaml.compose(text, Loader=_Loader)
    if root is not None:
        walk(root, ())
    return lines


def coalesce(base: Any, override: Any) -> Any:
    """Helm's merge of two values trees: maps merge, ``null`` deletes, the rest replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = coalesce(merged[key], value)
            else:
                merged[key] = _drop_nulls(value)
        return merged
    return _drop_nulls(override)


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    return copy.deepcopy(value)


_SUBCHART_FILES = ("Chart.yaml", "values.yaml", "values.schema.json")


def _subchart_files(sub: Path) -> dict[str, str]:
    """Chart.yaml, values.yaml and values.schema.json of one subchart, from its
    folder or from the ``<name>-<version>.tgz`` helm packs (top folder ``<name>/``)."""
    if sub.is_dir():
        return {n: (sub / n).read_text() for n in _SUBCHART_FILES if (sub / n).is_file()}
    if not sub.name.endswith(".tgz"):
        return {}
    found = {}
    with tarfile.open(sub, "r:gz") as archive:
        for member in archive.getmembers():
            _top, _, name = member.name.partition("/")
            if name in _SUBCHART_FILES and member.isfile():
                content = archive.extractfile(member)
                assert content is not None  # a regular file has content
                found[name] = content.read().decode()
    return found


class Chart:
    """The daskhub chart's defaults and its subcharts' defaults and schemas."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        chart_file = self.directory / "Chart.yaml"
        if not chart_file.is_file():
            raise FileNotFoundError(
                f"{self.directory} is not a helm chart (no Chart.yaml). Get daskhub with "
                "`helm pull dask/daskhub --untar` and pass the daskhub/ folder."
            )
        self.meta = yaml.load(chart_file.read_text(), Loader=_Loader)
        self.values = yaml.load((self.directory / "values.yaml").read_text(), Loader=_Loader) or {}
        self.subcharts: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self.subchart_meta: dict[str, dict[str, Any]] = {}
        charts = self.directory / "charts"
        for sub in sorted(charts.iterdir()) if charts.is_dir() else ():
            files = _subchart_files(sub)
            if "values.schema.json" not in files:
                continue
            meta = yaml.load(files["Chart.yaml"], Loader=_Loader)
            defaults = yaml.load(files.get("values.yaml", ""), Loader=_Loader) or {}
            self.subcharts[meta["name"]] = (defaults, json.loads(files["values.schema.json"]))
            self.subchart_meta[meta["name"]] = meta

    def subchart_version(self, name: str) -> str | None:
        """The version of subchart ``name`` this chart bundles (its Chart.yaml),
        else the version its dependencies ask for."""
        if name in self.subchart_meta:
            return str(self.subchart_meta[name].get("version"))
        for dep in self.meta.get("dependencies", []):
            if dep.get("name") == name:
                return str(dep.get("version"))
        return None

    def merged(self, layers: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Each subchart's final values for the given user layers (already unwrapped)."""
        layers = list(layers)
        parent = self.values
        for layer in layers:
            parent = coalesce(parent, layer)
        result = {}
        for name, (defaults, _) in self.subcharts.items():
            values = coalesce(defaults, parent.get(name) or {})
            values["global"] = coalesce(values.get("global") or {}, parent.get("global") or {})
            for path in self.nulls_over_parent(layers, name):
                _set_path(values, path, None)  # what helm gives the subchart's templates
            result[name] = values
        return result

    def nulls_over_parent(self, layers: Iterable[dict[str, Any]], name: str) -> list[tuple[str, ...]]:
        """Paths under subchart ``name`` where a layer's null meets a value the
        parent's values.yaml sets and the subchart's own values.yaml does not."""
        defaults = self.subcharts[name][0]
        found = []
        for layer in layers:
            for path in _null_paths(layer.get(name) or {}):
                if _has_path(self.values.get(name) or {}, path) and not _has_path(defaults, path):
                    found.append(path)
        return found

    def direct(self, name: str, layers: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """Subchart ``name``'s values when a chart depends on it directly:
        its own defaults and the layers, without daskhub's values."""
        values = self.subcharts[name][0]
        for layer in layers:
            values = coalesce(values, layer)
        return values


def _null_paths(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for key, value in tree.items():
        if value is None:
            paths.append((*prefix, str(key)))
        elif isinstance(value, dict):
            paths += _null_paths(value, (*prefix, str(key)))
    return paths


def _has_path(tree: Any, path: Sequence[str]) -> bool:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return False
        tree = tree[key]
    return True


def _set_path(tree: dict[str, Any], path: Sequence[str], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def check_values(chart: Chart, files: Sequence[ValuesFile], umbrella: str) -> list[Problem]:
    """Problems helm would reject, or silently ignore, in these layered files."""
    return [
        *misplaced_keys(files, umbrella),
        *unused_keys(chart, files, umbrella),
        *nulls_over_parent(chart, files, umbrella),
        *schema_problems(chart, files, umbrella),
    ]


def deployment_schema() -> dict[str, Any]:
    """The values schema of the federation's deployment chart: beside this
    package in a wheel, in federation/chart/ of a source checkout."""
    here = Path(__file__).resolve().parent
    for path in (
        here / "_federation_chart" / "values.schema.json",
        here.parents[1] / "federation" / "chart" / "values.schema.json",
    ):
        if path.is_file():
            schema: dict[str, Any] = json.loads(path.read_text())
            return schema
    raise FileNotFoundError("the deployment chart's values.schema.json is not installed")


def deployment_keys() -> frozenset[str]:
    """The keys under ``deployment:`` the deployment chart's templates read."""
    own = deployment_schema().get("properties", {}).get(DEPLOYMENT_KEY, {})
    return frozenset(own.get("properties", {}))


def misplaced_keys(files: Sequence[ValuesFile], umbrella: str, own: Iterable[str] = ()) -> list[Problem]:
    """Top-level keys of the files that the deployment chart neither passes to
    a chart (``umbrella`` to daskhub, ``jupyterhub``) nor reads (``deployment``,
    and ``own``: the keys of a federation's own chart)."""
    problems = []
    top = (
        umbrella,
        DIRECT_JUPYTERHUB,
        DEPLOYMENT_KEY,
        *sorted(set(own) - {umbrella, DIRECT_JUPYTERHUB, DEPLOYMENT_KEY}),
    )
    switches: dict[str, Any] = {}
    for f in files:
        switches = coalesce(switches, f.data.get(DEPLOYMENT_KEY) or {})
    # The deployment chart's conditions (federation/chart/Chart.yaml) and their defaults.
    off = {
        umbrella: (switches.get("daskGateway") or {}).get("enabled", True) is False,
        DIRECT_JUPYTERHUB: (switches.get("daskKubernetes") or {}).get("enabled", False) is not True,
    }
    switch = {umbrella: "deployment.daskGateway.enabled", DIRECT_JUPYTERHUB: "deployment.daskKubernetes.enabled"}
    for f in files:
        for key in f.data:
            if key not in top:
                problems.append(
                    Problem(
                        f.label,
                        f.line_of([key]),
                        f"top-level key '{key}' is none of {', '.join(top)}; the federation chart passes "
                        f"only those on, so helm ignores it. Move it under '{umbrella}:'.",
                    )
                )
            elif off.get(key):
                problems.append(
                    Problem(
                        f.label,
                        f.line_of([key]),
                        f"top-level key '{key}' goes to a chart that {switch[key]} turns off here, "
                        f"so helm ignores it. Move it under '{DIRECT_JUPYTERHUB if key == umbrella else umbrella}:'.",
                    )
                )
        for key in top:
            if not isinstance(f.data.get(key) or {}, dict):
                problems.append(Problem(f.label, f.line_of([key]), f"'{key}' must be a mapping"))
    return problems


def unused_keys(chart: Chart, files: Sequence[ValuesFile], umbrella: str) -> list[Problem]:
    """Keys under ``umbrella`` that neither daskhub nor any of its subcharts
    reads, and keys under ``deployment`` the deployment chart does not read."""
    # Each parent key: the keys read under it, who reads them, and a hint.
    readers = (
        (umbrella, PARENT_KEYS | set(chart.subcharts), "daskhub or its charts use", " Check its spelling."),
        (DEPLOYMENT_KEY, deployment_keys(), "the deployment chart reads", ""),
    )
    return [
        Problem(
            f.label,
            f.line_of([parent, key]),
            f"'{parent}.{key}' is not a key {reader} ({', '.join(sorted(known))}); "
            f"helm ignores it without a word.{hint}",
        )
        for f in files
        for parent, known, reader, hint in readers
        for key in _inner(f, parent)
        if key not in known
    ]


def nulls_over_parent(chart: Chart, files: Sequence[ValuesFile], umbrella: str) -> list[Problem]:
    """Each ``null`` under ``umbrella`` that meets a value daskhub's values.yaml
    sets for a subchart: helm does not delete it (field notes, "helm itself")."""
    problems = []
    for f in files:
        for name in chart.subcharts:
            for path in chart.nulls_over_parent([_inner(f, umbrella)], name):
                keys = [umbrella, name, *path]
                problems.append(
                    Problem(
                        f.label,
                        f.line_of(keys),
                        f"'{'.'.join(keys)}: null' does not remove what daskhub's values.yaml sets: "
                        f"{NIL_OVER_PARENT}. Override the value instead.",
                    )
                )
    return problems


def schema_problems(chart: Chart, files: Sequence[ValuesFile], umbrella: str) -> list[Problem]:
    """Each enabled subchart's merged values checked against its values.schema.json;
    with ``jupyterhub:`` at the top, the jupyterhub chart's own values too."""
    import jsonschema  # the checker's dependency, not copier's

    # (the umbrella chart's key or None at the top, subchart, its merged values)
    merged: list[tuple[str | None, str, dict[str, Any]]] = [
        (umbrella, name, values) for name, values in chart.merged([_inner(f, umbrella) for f in files]).items()
    ]
    if DIRECT_JUPYTERHUB in chart.subcharts and any(DIRECT_JUPYTERHUB in f.data for f in files):
        merged.append(
            (None, DIRECT_JUPYTERHUB, chart.direct(DIRECT_JUPYTERHUB, [_inner(f, DIRECT_JUPYTERHUB) for f in files]))
        )
    problems: list[Problem] = []
    for top, name, values in merged:
        if top is not None and not any(top in f.data for f in files):
            continue  # a hub that does not deploy daskhub
        if values.get("enabled") is False:
            continue  # a disabled subchart renders nothing
        _, schema = chart.subcharts[name]
        validator = jsonschema.Draft7Validator(schema)
        # nulls_over_parent reports these nils in helm's words.
        nils = set(chart.nulls_over_parent([_inner(f, top) for f in files], name)) if top else set()
        for error in sorted(validator.iter_errors(values), key=lambda e: list(e.absolute_path)):
            path = [str(p) for p in error.absolute_path]
            if error.instance is None and tuple(path) in nils:
                continue
            keys = [*([top] if top else []), name, *path]
            shown = keys[1:] if top else keys
            if error.validator == "additionalProperties":
                extra = _unexpected_keys(error)
                keys_for_line = [*keys, extra[0]] if extra else keys
                message = (
                    f"'{'.'.join(shown + extra[:1])}' is not a setting of the {name} chart "
                    f"{chart.subchart_version(name) or ''}".rstrip()
                    + "; check its spelling against the chart's values.yaml."
                )
            else:
                keys_for_line = keys
                message = f"'{'.'.join(shown)}': {error.message}"
            file, line = _where(files, keys_for_line)
            problems.append(Problem(file, line, message))
    return problems


def _inner(f: ValuesFile, umbrella: str) -> dict[str, Any]:
    inner = f.data.get(umbrella) or {}
    return inner if isinstance(inner, dict) else {}


def _unexpected_keys(error: ValidationError) -> list[str]:
    schema, instance = error.schema, error.instance
    # additionalProperties is checked on objects only, under an object's schema
    assert isinstance(schema, Mapping) and isinstance(instance, Mapping), error
    allowed = set(schema.get("properties", {}))
    patterns = schema.get("patternProperties", {})
    return [k for k in instance if k not in allowed and not any(re.search(p, k) for p in patterns)]


def _where(files: Sequence[ValuesFile], keys: Sequence[str]) -> tuple[str, int | None]:
    """The last file (helm's winner) that sets the deepest part of ``keys``."""
    best: tuple[int, str, int | None] = (0, files[-1].label if files else "?", None)
    for f in files:
        for end in range(len(keys), 0, -1):
            line = f.lines.get(tuple(keys[:end]))
            if line:
                if end >= best[0]:
                    best = (end, f.label, line)
                break
    return best[1], best[2]
