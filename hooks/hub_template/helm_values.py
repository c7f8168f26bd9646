"""Merge a hub's helm values the way helm does, and validate them against the
daskhub chart's subchart schemas.

A chart directory has the layout ``helm pull dask/daskhub --untar`` or
``helm dependency build daskhub`` gives: ``daskhub/{Chart.yaml,values.yaml}``
and, under ``daskhub/charts/``, each subchart as a folder or as the ``.tgz``
helm packed it in, holding its ``values.yaml`` and ``values.schema.json``.

For each subchart S, helm computes
``coalesce(S/values.yaml, daskhub/values.yaml[S], file_1[S], ..., file_n[S])``
where a ``null`` deletes the key, lists are replaced whole, and the parent's
``global`` is passed down; the result must pass ``S/values.schema.json``.
Keys of the parent that neither it nor a subchart uses are ignored by helm
without a word, so they are reported here.
"""

from __future__ import annotations

import copy
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

# libyaml's parser when pyyaml has it: the charts' values.yaml are large.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Keys the daskhub parent chart reads itself, besides its subcharts' names.
PARENT_KEYS = frozenset({"global", "rbac", "dask-kubernetes"})
# Top-level keys the federation's own chart reads (federation/chart): its
# per-hub objects (the users' service account, the shared folder).
FEDERATION_KEYS = frozenset({"deployment"})


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
    data: dict
    lines: dict[tuple[str, ...], int]

    @classmethod
    def load(cls, path: Path, label: str | None = None) -> "ValuesFile":
        text = Path(path).read_text()
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
                path = prefix + (str(key.value),)
                lines[path] = key.start_mark.line + 1
                walk(value, path)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, prefix + (str(index),))

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
            top, _, name = member.name.partition("/")
            if name in _SUBCHART_FILES and member.isfile():
                found[name] = archive.extractfile(member).read().decode()
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
        self.subcharts: dict[str, tuple[dict, dict]] = {}
        self.subchart_meta: dict[str, dict] = {}
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

    def merged(self, layers: Iterable[dict]) -> dict[str, dict]:
        """Each subchart's final values for the given user layers (already unwrapped)."""
        parent = self.values
        for layer in layers:
            parent = coalesce(parent, layer)
        result = {}
        for name, (defaults, _) in self.subcharts.items():
            values = coalesce(defaults, parent.get(name) or {})
            values["global"] = coalesce(values.get("global") or {}, parent.get("global") or {})
            result[name] = values
        return result


def check_values(chart: Chart, files: Sequence[ValuesFile], umbrella: str) -> list[Problem]:
    """Problems helm would reject, or silently ignore, in these layered files."""
    return [*misplaced_keys(files, umbrella), *unused_keys(chart, files, umbrella),
            *schema_problems(chart, files, umbrella)]


def misplaced_keys(files: Sequence[ValuesFile], umbrella: str) -> list[Problem]:
    """Top-level keys of the files other than ``umbrella``: the federation's
    chart passes only that key on to daskhub, so helm ignores the rest."""
    problems = []
    for f in files:
        for key in f.data:
            if key != umbrella and key not in FEDERATION_KEYS:
                problems.append(Problem(f.label, f.line_of([key]),
                    f"top-level key '{key}' is not '{umbrella}:'; the federation chart passes "
                    f"only '{umbrella}' to daskhub, so helm ignores it. Move it under '{umbrella}:'."))
        if not isinstance(f.data.get(umbrella) or {}, dict):
            problems.append(Problem(f.label, f.line_of([umbrella]), f"'{umbrella}' must be a mapping"))
    return problems


def unused_keys(chart: Chart, files: Sequence[ValuesFile], umbrella: str) -> list[Problem]:
    """Keys under ``umbrella`` that neither daskhub nor any of its subcharts reads."""
    problems = []
    known = PARENT_KEYS | set(chart.subcharts)
    for f in files:
        for key in _inner(f, umbrella):
            if key not in known:
                problems.append(Problem(f.label, f.line_of([umbrella, key]),
                    f"'{umbrella}.{key}' is not a key daskhub or its charts use "
                    f"({', '.join(sorted(known))}); helm ignores it without a word. Check its spelling."))
    return problems


def schema_problems(chart: Chart, files: Sequence[ValuesFile], umbrella: str) -> list[Problem]:
    """Each enabled subchart's merged values checked against its values.schema.json."""
    import jsonschema  # the checker's dependency, not copier's

    problems: list[Problem] = []
    for name, values in chart.merged([_inner(f, umbrella) for f in files]).items():
        if values.get("enabled") is False:
            continue  # a disabled subchart renders nothing
        _, schema = chart.subcharts[name]
        validator = jsonschema.Draft7Validator(schema)
        for error in sorted(validator.iter_errors(values), key=lambda e: list(e.absolute_path)):
            path = [str(p) for p in error.absolute_path]
            keys = [umbrella, name, *path]
            if error.validator == "additionalProperties":
                extra = _unexpected_keys(error)
                keys_for_line = [*keys, extra[0]] if extra else keys
                message = (f"'{'.'.join(keys[1:] + extra[:1])}' is not a setting of the {name} chart "
                           f"{chart.subchart_version(name) or ''}".rstrip()
                           + "; check its spelling against the chart's values.yaml.")
            else:
                keys_for_line = keys
                message = f"'{'.'.join(keys[1:])}': {error.message}"
            file, line = _where(files, keys_for_line)
            problems.append(Problem(file, line, message))
    return problems


def _inner(f: ValuesFile, umbrella: str) -> dict:
    inner = f.data.get(umbrella) or {}
    return inner if isinstance(inner, dict) else {}


def _unexpected_keys(error) -> list[str]:
    allowed = set(error.schema.get("properties", {}))
    patterns = error.schema.get("patternProperties", {})
    return [k for k in error.instance
            if k not in allowed and not any(re.search(p, k) for p in patterns)]


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
