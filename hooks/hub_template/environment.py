"""conda environments: read one (an environment.yml, a `conda env export`, a
requirements.txt), clean it, and fold it into a hub's rendered
`image/binder/environment.yml`.

The rendered file lists first what the hub needs (python, the dask-gateway
client pinned to the hub's server, dask, the dask JupyterLab extension, the
provider's fsspec package), then the hub's own packages
(template/image/binder/environment.yml.jinja). The file is edited round trip
(yaml_edit), so every line the template wrote stays as written and a later
`copier update` meets it unchanged. An imported package the file does not
list goes after its last conda package. One it lists keeps its entry (and
comment), measured against what the template rendered:

- python: the hub's `python_version` answer follows the imported pin when it
  allows a supported Python (the caller records the new answer, so copier
  renders the same line on update); otherwise the hub's stays, with a warning.
- a pinned package (dask-gateway, dask-labextension, or a pin of the
  conda_packages answer): the imported pin replaces it when it lies within
  the rendered one; otherwise the rendered pin stays and a warning names
  both. A dask-gateway client that differs from the server does not work, so
  overriding is the only useful outcome; failing the copy would only send the
  user to edit the source.
- a package the file leaves unpinned (dask, distributed, gcsfs, xarray):
  the imported pin replaces it.

Runs in copier's interpreter: standard library, pyyaml, packaging and ruamel.yaml
(yaml_edit).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from hub_template import rules, url_credentials, yaml_edit
from hub_template.safe_yaml import Unreadable, compose_untrusted, read_untrusted

# The text of a file named by `-r name`, or None if the source has no such file.
Include = Callable[[str], str | None]


class SpecError(ValueError):
    """An environment that cannot be imported; the message says where and why."""


# --- conda package specs -------------------------------------------------------


# The hub's grammar of a spec is rules.yml's (conda_spec and its parts),
# which copier's conda_packages validator reads too. The import reads two
# more forms, on purpose, which the prompt refuses ("no build strings"): the
# build strings of `conda env export` and `conda list`, which it strips.
def _rule(name: str) -> str:
    return f"(?:{rules.pattern(name).pattern})"


_NAME = _rule("conda_name")
_CHANNEL = _rule("conda_channel")
_VERSION = _rule("conda_version")
_OP = _rule("conda_operator")
_BUILD = r"[A-Za-z0-9_.+*]+"

_SPEC = re.compile(rf"^(?:(?P<channel>{_CHANNEL})::)?(?P<name>{_NAME})(?P<rest>.*)$")
# name=1.2.3=py312h1234_0, the form `conda env export` writes
_EXPORTED = re.compile(rf"^(?P<op>==?)(?P<version>{_VERSION})(?:=(?P<build>{_BUILD}))?$")
# name 1.2.3 py312h1234_0, the form `conda list` prints
_SPACED = re.compile(rf"^[ \t]+(?P<version>{_VERSION})(?:[ \t]+(?P<build>{_BUILD}))?$")
_OPERATORS = re.compile(rf"^(?P<constraint>{_rule('conda_constraint')})$")


@dataclass(frozen=True)
class CondaSpec:
    """One conda dependency, as written to environment.yml (no build string)."""

    name: str
    constraint: str = ""  # "", "=1.26", ">=1,<2", "==1.26.4"
    channel: str = ""

    @property
    def key(self) -> str:
        return self.name.lower()

    def __str__(self) -> str:
        return f"{self.channel + '::' if self.channel else ''}{self.name}{self.constraint}"


def parse_conda_spec(text: str) -> tuple[CondaSpec, str]:
    """A conda spec and the build string it had ("" if none); raises
    SpecError (without location: the caller adds it)."""
    text = text.strip()
    match = _SPEC.match(text)
    if not match:
        raise SpecError(f"'{text}' is not a conda package spec")
    rest = match["rest"]
    if rest.startswith("["):
        raise SpecError(f"'{text}' uses the bracket form; write the version after the name, like `numpy>=1.26`")
    build = ""
    if not rest.strip():
        constraint = ""
    elif exported := _EXPORTED.match(rest):
        constraint, build = f"{exported['op']}{exported['version']}", exported["build"] or ""
    elif spaced := _SPACED.match(rest):
        version, build = spaced["version"], spaced["build"] or ""
        # conda reads a bare version as exact, and `1.2*` as a prefix.
        constraint = f"={version.rstrip('*').rstrip('.')}" if version.endswith("*") else f"=={version}"
    elif operators := _OPERATORS.match(rest):
        constraint = re.sub(r"\s+", "", operators["constraint"])
        if constraint[0] not in "<>=!~":
            constraint = "==" + constraint  # `name 1.2,>=1` never happens; keep it explicit
    else:
        raise SpecError(
            f"'{text}' is not a conda package spec: write a name and an optional version, "
            "like `xarray`, `numpy>=1.26` or `zarr=2.18`"
        )
    if constraint.lstrip("=") in ("", "*"):
        constraint = ""  # `numpy *` or `numpy=*`: any version
    if "*" in build:
        build = ""  # `numpy=1.26=*` is a wildcard, not a build pin
    return CondaSpec(match["name"], constraint, match["channel"] or ""), build


# --- conda version constraints (enough of conda's rules for the hub's pins) ------
#
# A constraint stands for a set of packaging Versions, held as a union of
# intervals in packaging's order, so that `admits`, `within` and
# `supported_minors` read one definition and decide exactly, with no sample
# versions. Where pre-, post- and dev-releases fall:
# - `<2`, `>=2` are packaging's comparisons: 2.0rc1 and 2.0.dev0 sort below 2,
#   so `<2` allows them and `>=2` does not (conda's order too).
# - a prefix `=1.2` (`1.2.*`, `==1.2.*`) is [1.2, 1.3.dev0): 1.2 and what
#   follows it (1.2.post1, 1.2.1rc1, 1.2.7), nothing of 1.3 (1.3.dev0 is the
#   least version of 1.3). Not 1.2rc1, which sorts below 1.2: else a pin
#   `=7.0.0` would not lie within `>=7`. Likewise `~=1.2.3` is [1.2.3, 1.3.dev0).
# - packaging holds 1.2 == 1.2.0, so `=1.2.0` allows 1.2.
# A term whose version packaging cannot read (conda's `1.2.3_1`) allows every
# version: it may fit, and an import should not fail on it.
# Why not py-rattler's VersionSpec, conda's own: this runs in copier's
# interpreter, where a compiled wheel of that size is one more install for
# every user; the checker (checks/image.py), which has it, reads specs with it.


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


@dataclass(frozen=True)
class _Interval:
    """The versions from `low` up to `high` (None: no end), each end included or not."""

    low: Version
    low_in: bool
    high: Version | None
    high_in: bool


# A union of intervals in one form for each set of versions (sorted, none empty,
# none touching the next), so that two sets are equal when their tuples are.
_Span = tuple[_Interval, ...]

# The least Version: every interval has a low end, so `<1` and `>=0.dev0,<1` are one.
_FLOOR = Version("0.dev0")
_ALL: _Span = (_Interval(_FLOOR, True, None, False),)


def _start(interval: _Interval) -> tuple[Version, bool]:
    return interval.low, not interval.low_in  # an excluded low starts later


def _end(interval: _Interval) -> tuple[bool, Version, bool]:
    return interval.high is None, interval.high or _FLOOR, interval.high_in  # an included high ends later


def _empty(interval: _Interval) -> bool:
    low, high = interval.low, interval.high
    return high is not None and (low > high or (low == high and not (interval.low_in and interval.high_in)))


def _joins(last: _Interval, later: _Interval) -> bool:
    # Versions are dense (1.2 < 1.2+0a < 1.2+a < 1.2.post0): between two
    # intervals that neither overlap nor share an included end lies a version.
    if last.high is None or later.low < last.high:
        return True
    return later.low == last.high and (last.high_in or later.low_in)


def _normal(intervals: list[_Interval]) -> _Span:
    joined: list[_Interval] = []
    for interval in sorted((i for i in intervals if not _empty(i)), key=_start):
        if joined and _joins(joined[-1], interval):
            last, end = joined[-1], max(joined[-1], interval, key=_end)
            joined[-1] = _Interval(last.low, last.low_in, end.high, end.high_in)
        else:
            joined.append(interval)
    return tuple(joined)


def _meet(a: _Interval, b: _Interval) -> _Interval:
    start, end = max(a, b, key=_start), min(a, b, key=_end)
    return _Interval(start.low, start.low_in, end.high, end.high_in)


def _intersect(a: _Span, b: _Span) -> _Span:
    return _normal([_meet(x, y) for x in a for y in b])


def _complement(span: _Span) -> _Span:
    gaps, low, low_in = [], _FLOOR, True
    for interval in span:
        gaps.append(_Interval(low, low_in, interval.low, not interval.low_in))
        if interval.high is None:
            return _normal(gaps)
        low, low_in = interval.high, not interval.high_in
    return _normal([*gaps, _Interval(low, low_in, None, False)])


def _series(start: Version, release: tuple[int, ...]) -> _Span:
    """From `start` up to the first version of the release after `release`
    (`=1.2` is [1.2, 1.3.dev0)); with no release, no end (`~=1` is `>=1`)."""
    if not release:
        return (_Interval(start, True, None, False),)
    after = ".".join(map(str, [*release[:-1], release[-1] + 1]))
    return (_Interval(start, True, Version(f"{start.epoch}!{after}.dev0"), False),)


def _term_versions(term: str) -> _Span:
    match = re.match(rf"^({_OP})?(.*)$", term)
    assert match is not None  # (.*) matches any term
    op, value = match.groups()
    prefix = value.endswith("*") or op == "="
    bound = _version(value.rstrip("*").rstrip("."))
    if bound is None:
        return _ALL  # a version conda knows and packaging does not: assume it fits
    if prefix and op in (None, "=", "=="):
        return _series(bound, bound.release)
    if prefix and op == "!=":
        return _complement(_series(bound, bound.release))
    point = (_Interval(bound, True, bound, True),)
    return {
        None: point,
        "==": point,
        "!=": _complement(point),
        ">=": (_Interval(bound, True, None, False),),
        ">": (_Interval(bound, False, None, False),),
        "<=": (_Interval(_FLOOR, True, bound, True),),
        "<": _normal([_Interval(_FLOOR, True, bound, False)]),  # `<0.dev0` allows nothing
        "~=": _series(bound, bound.release[:-1]),
    }[op]


def _versions(constraint: str) -> _Span:
    """The versions a conda constraint allows: `,` intersects terms, `|` joins alternatives."""
    if not constraint:
        return _ALL
    alternatives = [
        functools.reduce(_intersect, map(_term_versions, alternative.split(",")), _ALL)
        for alternative in constraint.split("|")
    ]
    return _normal([interval for span in alternatives for interval in span])


def admits(constraint: str, version: str) -> bool:
    """Whether a conda version constraint ("=1.2", ">=1,<2", "1.2|1.4") allows `version`
    (a version packaging cannot read: yes)."""
    candidate = _version(version)
    if candidate is None:
        return True
    return bool(_intersect(_versions(constraint), (_Interval(candidate, True, candidate, True),)))


def within(inner: str, outer: str) -> bool:
    """Whether every version `inner` allows is one `outer` allows. An `inner`
    that allows no version (`>2,<1`) is not within a pin: it would replace the
    hub's pin with one nothing meets."""
    if not outer:
        return True
    allowed = _versions(inner)
    return bool(allowed) and _intersect(allowed, _versions(outer)) == allowed


def meets(one: str, other: str) -> bool:
    """Whether some version is allowed by both constraints."""
    return bool(_intersect(_versions(one), _versions(other)))


# --- pip requirements ----------------------------------------------------------


@dataclass(frozen=True)
class PipSpec:
    text: str
    name: str  # canonical
    url: str = ""  # `name @ URL`: installed from there, not the package index

    @property
    def key(self) -> str:
        return self.name


def parse_pip_spec(text: str) -> PipSpec:
    """A pip requirement, as packaging (pip's own parser) reads it: the import
    takes URLs and markers, which the pip_packages prompt refuses (its regex
    is a deliberate subset; answers.jinja's check_pip_specs says why it is
    not a shared rule)."""
    text = text.strip()
    shown = url_credentials.strip(text)
    if shown != text:
        raise SpecError(
            f"'{shown}' has credentials in its URL (not shown): they would land in git and the image; "
            "give pip its index credentials at build time instead"
        )
    if text.startswith("-"):
        raise SpecError(
            f"'{text}' is a pip option; only package requirements are imported "
            "(add options by hand to image/binder/environment.yml after the copy)"
        )
    try:
        requirement = Requirement(text)
    except InvalidRequirement as error:
        raise SpecError(
            f"'{text}' is not a pip requirement ({error}); write a name with optional "
            "versions, like `odc-stac>=0.3`, or `name @ https://...` for a URL"
        ) from None
    return PipSpec(str(requirement), canonicalize_name(requirement.name), requirement.url or "")


# --- a whole environment -------------------------------------------------------

_CHANNEL_NAME = re.compile(rf"^({_CHANNEL}|https://[^\s]+)$")
# Packages only Anaconda's `defaults` channel and conda itself provide; mixing
# `defaults` with conda-forge breaks solves, and repo2docker uses conda-forge.
_DROPPED_CHANNELS = {"defaults"}


@dataclass
class Environment:
    """What one imported file asks for, cleaned."""

    origin: str  # says where, in messages: "binder/environment.yml of URL"
    channels: list[str] = field(default_factory=list)
    conda: list[CondaSpec] = field(default_factory=list)
    pip: list[PipSpec] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The build strings stripped (an export's): name -> (version, build), which
    # `hub-template lock --export` keeps where the channel has them for linux-64.
    builds: dict[str, tuple[str, str]] = field(default_factory=dict)

    def add_build(self, spec: CondaSpec, build: str) -> None:
        if spec.constraint.startswith("=") and not spec.channel:
            self.builds[spec.key] = (spec.constraint.lstrip("="), build)

    def add_conda(self, spec: CondaSpec) -> None:
        self.conda = [s for s in self.conda if s.key != spec.key] + [spec]

    def add_pip(self, spec: PipSpec) -> None:
        self.pip = [s for s in self.pip if s.key != spec.key] + [spec]


def _located(origin: str, line: int, error: SpecError) -> SpecError:
    return SpecError(f"{origin}, line {line}: {error}")


def read_requirements(text: str, origin: str, include: Include | None = None) -> Environment:
    """A requirements.txt as the pip part of an environment. `include(name)`
    returns the text of a file named by `-r name`, or None if unknown."""
    env = Environment(origin)
    for number, line in logical_lines(text):
        requirement = re.sub(r"(^|\s)#.*$", "", line).strip()
        if not requirement:
            continue
        _add_requirement(env, requirement, origin, number, include)
    return env


def is_conda_list(text: str) -> bool:
    """Whether a .txt is conda's own spec file (`conda list --export` or
    `--explicit`), not a requirements.txt: conda writes a `# platform:` line."""
    return any(line.startswith(("# platform:", "@EXPLICIT")) for line in text.splitlines()[:10])


def read_conda_list(text: str, origin: str) -> Environment:
    """`conda list --export` output (`name=version=build` a line): the names
    and versions, build strings stripped as in an environment.yml. An
    `--explicit` file names one platform's builds by URL and is refused."""
    env = Environment(origin)
    for number, line in enumerate(text.splitlines(), 1):
        spec_text = line.partition("#")[0].strip()
        if spec_text == "@EXPLICIT":
            raise SpecError(
                f"{origin}, line {number}: `conda list --explicit` names one platform's builds by URL; "
                "give `conda env export --from-history` or `conda list --export` instead"
            )
        if not spec_text:
            continue
        try:
            spec, build = parse_conda_spec(spec_text)
        except SpecError as error:
            raise _located(origin, number, error) from None
        if build:
            env.notes.append(f"{origin}, line {number}: build string '{build}' stripped from {spec}")
            env.add_build(spec, build)
        env.add_conda(spec)
    _summarise_builds(env, origin)
    return env


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, line) with backslash continuations joined."""
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield start, pending + line
        pending = ""
    if pending:
        yield start, pending


def read_environment(text: str, origin: str, include: Include | None = None) -> Environment:
    """An environment.yml, or the output of `conda env export` (with or without
    --from-history): `name:` and `prefix:` dropped, build strings stripped,
    `pip:` kept. Raises SpecError naming the offending line."""
    try:
        root = read_untrusted(text, origin, "an environment file", compose_untrusted)
    except Unreadable as error:
        raise SpecError(str(error)) from None
    env = Environment(origin)
    if root is None:
        return env
    if not isinstance(root, yaml.MappingNode):
        raise SpecError(f"{origin}: an environment file is a mapping with `channels:` and `dependencies:`")
    for key_node, value in root.value:
        key, line = key_node.value, key_node.start_mark.line + 1
        if key in ("name", "prefix"):
            continue  # the exporter's own environment name and path
        if key == "channels":
            for item in _sequence(value, origin, "channels"):
                _add_channel(env, item)
        elif key == "dependencies":
            for item in _sequence(value, origin, "dependencies", mappings=True):
                _add_dependency(env, item, include)
        elif key == "variables":
            env.notes.append(
                f"{origin}, line {line}: `variables:` are not imported; export them in image/binder/start instead"
            )
        else:
            raise SpecError(
                f"{origin}, line {line}: '{key}' is not an environment.yml key "
                "(name, channels, dependencies, prefix, variables)"
            )
    _summarise_builds(env, origin)
    return env


def _summarise_builds(env: Environment, origin: str) -> None:
    """One note for many stripped build strings: a full export, not a list of choices."""
    builds = [n for n in env.notes if "build string" in n]
    if len(builds) > 3:
        kept = [n for n in env.notes if "build string" not in n]
        env.notes = [
            *kept,
            f"{origin}: stripped {len(builds)} build strings (platform-specific, they break the solve). "
            "It looks like a full `conda env export`: `conda env export --from-history` "
            "lists only the packages you asked for, which solves faster and ages better",
        ]


def _sequence(node: yaml.Node, origin: str, key: str, mappings: bool = False) -> list[yaml.Node]:
    if isinstance(node, yaml.ScalarNode) and node.value in ("", "null", "~"):
        return []
    if not isinstance(node, yaml.SequenceNode):
        raise SpecError(f"{origin}, line {node.start_mark.line + 1}: `{key}:` must be a list")
    for item in node.value:
        if isinstance(item, yaml.ScalarNode) or (mappings and isinstance(item, yaml.MappingNode)):
            continue
        raise SpecError(f"{origin}, line {item.start_mark.line + 1}: each entry of `{key}:` is one text line")
    items: list[yaml.Node] = node.value
    return items


def _add_channel(env: Environment, node: yaml.Node) -> None:
    channel, line = str(node.value).strip(), node.start_mark.line + 1
    if url_credentials.has_credentials(channel):
        raise SpecError(
            f"{env.origin}, line {line}: channel '{url_credentials.strip(channel)}' has credentials in its URL "
            "(not shown): they would land in git and the image"
        )
    if not _CHANNEL_NAME.match(channel):
        raise SpecError(f"{env.origin}, line {line}: '{channel}' is not a conda channel name")
    if channel in _DROPPED_CHANNELS:
        env.notes.append(
            f"{env.origin}, line {line}: channel '{channel}' left out: the image installs from "
            "conda-forge, and mixing in Anaconda's defaults channel breaks solves"
        )
    elif channel not in env.channels:
        env.channels.append(channel)


def _add_dependency(env: Environment, node: yaml.Node, include: Include | None) -> None:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value in node.value:
            if key_node.value != "pip":
                raise SpecError(f"{env.origin}, line {line}: only a `pip:` list may sit among the dependencies")
            for item in _sequence(value, env.origin, "pip"):
                _add_pip_line(env, item, include)
        return
    try:
        spec, build = parse_conda_spec(str(node.value))
    except SpecError as error:
        raise _located(env.origin, line, error) from None
    if build:
        env.notes.append(f"{env.origin}, line {line}: build string '{build}' stripped from {spec}")
        env.add_build(spec, build)
    env.add_conda(spec)


def _add_pip_line(env: Environment, node: yaml.Node, include: Include | None) -> None:
    _add_requirement(env, str(node.value).strip(), env.origin, node.start_mark.line + 1, include)


def _add_requirement(env: Environment, text: str, origin: str, line: int, include: Include | None) -> None:
    """One pip requirement (of requirements.txt or a `pip:` section); `-r FILE`
    brings in FILE's requirements through `include`."""
    included = re.match(r"^(?:-r|--requirement)(?:\s+|=)(\S+)$", text)
    if included and include is not None:
        nested = include(included[1])
        if nested is None:
            raise SpecError(f"{origin}, line {line}: '{text}' names a file the source does not have")
        for spec in read_requirements(nested, f"{included[1]} (from {origin})").pip:
            env.add_pip(spec)
        return
    try:
        env.add_pip(parse_pip_spec(text))
    except SpecError as error:
        raise _located(origin, line, error) from None


# --- the rendered image/binder/environment.yml -------------------------------


@dataclass
class Merged:
    text: str
    python_version: str  # the hub's python_version answer after the merge
    notes: list[str]


class RenderedEnvironment:
    """The hub's rendered environment.yml, parsed round trip (yaml_edit): an
    edit changes its entry and nothing else of the file. `rendered` holds
    the specs as the template wrote them, which imports are measured against."""

    def __init__(self, text: str, origin: str = "image/binder/environment.yml"):
        self.document = yaml_edit.load(text, origin)
        not_rendered = SpecError(
            f"{origin} is not the file hub-template renders (a `channels:` list and a "
            "`dependencies:` list of conda specs, python among them)"
        )
        document = self.document if isinstance(self.document, dict) else {}
        channels, dependencies = document.get("channels"), document.get("dependencies")
        if not isinstance(channels, list) or not isinstance(dependencies, list):
            raise not_rendered
        self.channels, self.dependencies = channels, dependencies
        try:
            self.rendered = {spec.key: spec for _, spec in self._conda()}
        except SpecError:
            raise not_rendered from None
        if "python" not in self.rendered:
            raise not_rendered

    def _conda(self) -> Iterator[tuple[int, CondaSpec]]:
        for index, item in enumerate(self.dependencies):
            if isinstance(item, str):
                yield index, parse_conda_spec(item)[0]

    def conda_index(self, key: str) -> int | None:
        return next((index for index, spec in self._conda() if spec.key == key), None)

    def _pip_list(self) -> Any:
        return next((item["pip"] for item in self.dependencies if isinstance(item, dict) and "pip" in item), None)

    # edits
    def add_channel(self, channel: str) -> None:
        if channel not in self.channels:
            yaml_edit.append(self.channels, channel)

    def set_conda(self, spec: CondaSpec) -> None:
        """Replace the entry of spec's package (its comment stays), or add
        it after the last conda package: before pip and its section."""
        index = self.conda_index(spec.key)
        if index is not None:
            yaml_edit.replace(self.dependencies, index, str(spec))
            return
        pip_at = self.conda_index("pip") if self._pip_list() is not None else None
        ends = [i for i, item in enumerate(self.dependencies) if not isinstance(item, str)]
        at = pip_at if pip_at is not None else ends[0] if ends else len(self.dependencies)
        if at == len(self.dependencies):
            yaml_edit.append(self.dependencies, str(spec))
        else:
            self.dependencies.insert(at, str(spec))

    def set_pip(self, spec: PipSpec) -> None:
        found = self._pip_list()
        if found is None:
            if self.conda_index("pip") is None:
                self.set_conda(CondaSpec("pip"))
            yaml_edit.append(self.dependencies, {"pip": [spec.text]})
            return
        index = next((i for i, text in enumerate(found) if _pip_key(str(text)) == spec.key), None)
        if index is None:
            yaml_edit.append(found, spec.text)
        else:
            yaml_edit.replace(found, index, spec.text)

    def text(self) -> str:
        return yaml_edit.dump(self.document)


def _pip_key(text: str) -> str:
    try:
        return canonicalize_name(Requirement(text).name)
    except InvalidRequirement:
        return text.strip().lower()


def supported_minors(constraint: str, supported: list[str]) -> list[str]:
    """The supported Python minor versions ("3.11") of which a python constraint
    allows some version: it meets the minor's `=3.11`, [3.11, 3.12.dev0)."""
    allowed = _versions(constraint)
    return [minor for minor in supported if _intersect(allowed, _term_versions(f"={minor}"))]


def merge(
    rendered: str, imports: list[Environment], python_supported: list[str], fixed: dict[str, str] | None = None
) -> Merged:
    """Fold `imports` (in order: a later one wins) into the rendered text.
    `fixed` holds what the image's base fixes (package -> conda constraint,
    data/versions.yml's image_base): a pin outside it cannot be met there and
    is left out, with a note."""
    env = RenderedEnvironment(rendered)
    notes: list[str] = []
    python_version = env.rendered["python"].constraint.lstrip("=")
    for imported in imports:
        notes.extend(imported.notes)
        for channel in imported.channels:
            if channel not in env.channels:
                notes.append(
                    f"warning: {imported.origin} adds the conda channel '{channel}': "
                    "any package of the image may now come from it"
                )
            env.add_channel(channel)
        for spec in imported.conda:
            needed = env.rendered.get(spec.key)
            if needed is not None and spec.channel != needed.channel:
                # `evil::dask-gateway=<the hub's version>` lies within the pin, from another builder
                notes.append(
                    f"warning: {imported.origin} asks for {spec}, but the hub installs {needed} from its own "
                    f"channels{_why(needed)}; the channel-qualified line is left out"
                )
                continue
            if spec.channel:
                notes.append(f"warning: {imported.origin} installs {spec.name} from the conda channel '{spec.channel}'")
            base = (fixed or {}).get(spec.key)
            if base is not None and not meets(spec.constraint, base):
                notes.append(
                    f"{imported.origin}: {spec} left out: the image's base has {spec.name}{base} "
                    "(repo2docker's JupyterLab 4 environment), which that pin excludes"
                )
                continue
            if spec.key == "python":
                python_version = _choose_python(spec, python_version, python_supported, imported.origin, notes)
            elif needed is not None and not spec.constraint:
                continue  # any version: the hub's line (and pin) is one
            elif needed is None or within(spec.constraint, needed.constraint):
                if needed is None or (spec.constraint, spec.channel) != (needed.constraint, needed.channel):
                    env.set_conda(spec)
            else:
                notes.append(
                    f"warning: {imported.origin} pins {spec}, but the hub needs {needed}"
                    f"{_why(needed)}; the hub's pin is kept"
                )
        for pip_spec in imported.pip:
            if pip_spec.url:
                notes.append(
                    f"warning: {imported.origin} installs {pip_spec.text} with pip from a URL, not the package "
                    "index: what it builds runs in the image build"
                )
            if (needed := env.rendered.get(pip_spec.key)) is not None and needed.constraint:
                notes.append(
                    f"warning: {imported.origin} installs {pip_spec.text} with pip; the hub installs "
                    f"{needed} from conda-forge{_why(needed)}, so the pip line is left out"
                )
            else:
                env.set_pip(pip_spec)
    env.set_conda(CondaSpec("python", f"={python_version}"))
    return Merged(env.text(), python_version, notes)


def _why(needed: CondaSpec) -> str:
    return {
        "dask-gateway": " (the client must equal the hub's dask-gateway server)",
        "dask-labextension": " (the version that speaks JupyterLab 4)",
    }.get(needed.key, "")


def _choose_python(spec: CondaSpec, current: str, supported: list[str], origin: str, notes: list[str]) -> str:
    allowed = supported_minors(spec.constraint, supported)
    if current in allowed:
        if spec.constraint not in ("", f"={current}"):
            notes.append(f"{origin} asks for {spec}: the image uses python={current}, which it allows")
        return current
    if allowed:
        chosen = allowed[-1]
        notes.append(f"{origin} asks for {spec}: the hub's python_version is now {chosen} (was {current})")
        return chosen
    notes.append(
        f"warning: {origin} asks for {spec}, but the hub supports Python {', '.join(supported)} "
        f"(repo2docker's Pythons that the dask-gateway client runs on); python={current} is kept"
    )
    return current
