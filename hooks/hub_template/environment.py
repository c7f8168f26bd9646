"""conda environments: read one (an environment.yml, a `conda env export`, a
requirements.txt), clean it, and fold it into a hub's rendered
`image/binder/environment.yml`.

The rendered file has two blocks of dependencies (template/image/binder/
environment.yml.jinja): first "What the hub needs" (python, the dask-gateway
client pinned to the hub's server, dask, the dask JupyterLab extension, the
provider's fsspec package), then "The hub's own packages". Imported packages
go to the second block, so that a later template change to the first block
never meets them in `copier update`. A package of the first block keeps its
line there:

- python: the hub's `python_version` answer follows the imported pin when it
  allows a supported Python (the caller records the new answer, so copier
  renders the same line on update); otherwise the hub's stays, with a warning.
- a package the hub constrains (dask-gateway, dask-labextension): the
  imported pin replaces it when it lies within the hub's constraint; otherwise
  the hub's pin stays and a warning names both. A dask-gateway client that
  differs from the server does not work, so overriding is the only useful
  outcome; failing the copy would only send the user to edit the source.
- a package the hub leaves unpinned (dask, distributed, gcsfs): the imported
  pin replaces it.

Runs in copier's interpreter: standard library, pyyaml and packaging only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from hub_template import rules, url_credentials
from hub_template.safe_yaml import compose_untrusted, error_location, error_problem

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


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _term_admits(term: str, version: Version) -> bool:
    match = re.match(rf"^({_OP})?(.*)$", term)
    assert match is not None  # (.*) matches any term
    op, value = match.groups()
    prefix = value.endswith("*") or op == "="
    value = value.rstrip("*").rstrip(".")
    bound = _version(value)
    if bound is None:
        return True  # a version conda knows and packaging does not: assume it fits
    if prefix and op in (None, "=", "=="):
        return version.release[: len(bound.release)] == bound.release
    if prefix and op == "!=":
        return version.release[: len(bound.release)] != bound.release
    return {
        None: version == bound,
        "==": version == bound,
        "!=": version != bound,
        ">=": version >= bound,
        "<=": version <= bound,
        ">": version > bound,
        "<": version < bound,
        "~=": version >= bound and version.release[: len(bound.release) - 1] == bound.release[:-1],
    }[op]


def admits(constraint: str, version: str) -> bool:
    """Whether a conda version constraint ("=1.2", ">=1,<2", "1.2|1.4") allows `version`."""
    if not constraint:
        return True
    candidate = _version(version)
    if candidate is None:
        return True
    return any(
        all(_term_admits(term, candidate) for term in alternative.split(",")) for alternative in constraint.split("|")
    )


def _samples(*constraints: str) -> list[str]:
    """Versions around every bound the constraints name: enough to compare the
    simple constraints a hub uses (`=2026.3.0`, `>=7`, `>=2024.1,<2024.5`)."""
    found = {"0"}
    for constraint in constraints:
        for literal in re.findall(r"[0-9][0-9A-Za-z_.+!]*", constraint):
            literal = literal.rstrip(".")
            bound = _version(literal)
            if bound is None:
                continue
            release = list(bound.release)
            found.update({literal, literal + ".99999"})
            found.add(".".join(map(str, [*release[:-1], release[-1] + 1])))
            if release[-1] > 0:
                found.add(".".join(map(str, [*release[:-1], release[-1] - 1, 99999])))
    return sorted(found, key=Version)


def within(inner: str, outer: str) -> bool:
    """Whether every version `inner` allows is one `outer` allows (sampled)."""
    if not outer:
        return True
    allowed = [v for v in _samples(inner, outer) if admits(inner, v)]
    return bool(allowed) and all(admits(outer, v) for v in allowed)


# --- pip requirements ----------------------------------------------------------


@dataclass(frozen=True)
class PipSpec:
    text: str
    name: str  # canonical

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
    return PipSpec(str(requirement), canonicalize_name(requirement.name))


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
        root = compose_untrusted(text)
    except yaml.YAMLError as error:
        raise SpecError(f"{error_location(origin, error)}: not valid YAML ({error_problem(error)})") from None
    except RecursionError:
        raise SpecError(f"{origin}: nested too deeply to be an environment file") from None
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
    builds = [n for n in env.notes if "build string" in n]
    if len(builds) > 3:
        kept = [n for n in env.notes if "build string" not in n]
        env.notes = [
            *kept,
            f"{origin}: stripped {len(builds)} build strings (platform-specific, they break the solve). "
            "It looks like a full `conda env export`: `conda env export --from-history` "
            "lists only the packages you asked for, which solves faster and ages better",
        ]
    return env


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

HUB_BLOCK = "  # What the hub needs"
OWN_BLOCK = "  # The hub's own packages."
_ITEM = re.compile(r"^  - (?P<spec>[^#\s][^#]*?)(?P<comment>\s+#.*)?$")
_PIP_ITEM = re.compile(r"^      - (?P<spec>.+)$")


@dataclass
class Merged:
    text: str
    python_version: str  # the hub's python_version answer after the merge
    notes: list[str]


class RenderedEnvironment:
    """The lines of a freshly rendered environment.yml, edited in place so
    everything the template wrote stays where it was."""

    def __init__(self, text: str, origin: str = "image/binder/environment.yml"):
        self.lines = text.splitlines()
        try:
            self.channels_end = self._end_of_list(self.lines.index("channels:"))
            self.hub_start = next(i for i, line in enumerate(self.lines) if line.startswith(HUB_BLOCK))
            self.own_start = self.lines.index(OWN_BLOCK)
        except (ValueError, StopIteration):
            raise SpecError(
                f"{origin} is not the file hub-template renders (its `channels:`, "
                f"'{HUB_BLOCK.strip()}' or '{OWN_BLOCK.strip()}' lines are missing)"
            ) from None

    def _end_of_list(self, start: int) -> int:
        end = start + 1
        while end < len(self.lines) and self.lines[end].startswith("  - "):
            end += 1
        return end

    # the lines of each part
    def _items(self, start: int, stop: int) -> Iterator[tuple[int, CondaSpec, str]]:
        for index in range(start, stop):
            match = _ITEM.match(self.lines[index])
            if match and not match["spec"].endswith(":"):
                yield index, parse_conda_spec(match["spec"])[0], match["comment"] or ""

    def _pip_header(self) -> int | None:
        return next((i for i, line in enumerate(self.lines) if line.rstrip() == "  - pip:"), None)

    def _own_end(self) -> int:
        end = self.own_start + 1
        while end < len(self.lines) and (_ITEM.match(self.lines[end]) or self.lines[end].startswith("      - ")):
            end += 1
        return end

    def hub_specs(self) -> dict[str, tuple[int, CondaSpec, str]]:
        return {s.key: (i, s, c) for i, s, c in self._items(self.hub_start + 1, self.own_start)}

    def own_specs(self) -> dict[str, tuple[int, CondaSpec, str]]:
        end = self._pip_header() or self._own_end()
        return {s.key: (i, s, c) for i, s, c in self._items(self.own_start + 1, end)}

    # edits
    def add_channel(self, channel: str) -> None:
        present = [line[4:].strip() for line in self.lines[self.lines.index("channels:") + 1 : self.channels_end]]
        if channel not in present:
            self._insert(self.channels_end, f"  - {channel}")
            self.channels_end += 1

    def replace(self, index: int, spec: CondaSpec, comment: str = "") -> None:
        indent = "      - " if self.lines[index].startswith("      - ") else "  - "
        self.lines[index] = f"{indent}{spec}{comment}"

    def add_own(self, spec: CondaSpec) -> None:
        found = self.own_specs().get(spec.key)
        if found:
            self.replace(found[0], spec, found[2])
            return
        pip_entry = next((i for i, s, _ in self._items(self.own_start + 1, self._own_end()) if s.key == "pip"), None)
        at = pip_entry if pip_entry is not None and self._pip_header() else self._pip_header()
        self._insert(at if at is not None else self._own_end(), f"  - {spec}")

    def add_pip(self, spec: PipSpec) -> None:
        header = self._pip_header()
        if header is None:
            end = self._own_end()
            if "pip" not in self.own_specs():
                self._insert(end, "  - pip")
                end += 1
            self._insert(end, "  - pip:")
            header = end
        end = header + 1
        while end < len(self.lines) and self.lines[end].startswith("      - "):
            match = _PIP_ITEM.match(self.lines[end])
            if match and _pip_key(match["spec"]) == spec.key:
                self.lines[end] = f"      - {spec.text}"
                return
            end += 1
        self._insert(end, f"      - {spec.text}")

    def _insert(self, index: int, line: str) -> None:
        self.lines.insert(index, line)
        if index <= self.hub_start:
            self.hub_start += 1
        if index <= self.own_start:
            self.own_start += 1

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _pip_key(text: str) -> str:
    try:
        return canonicalize_name(Requirement(text).name)
    except InvalidRequirement:
        return text.strip().lower()


def supported_minors(constraint: str, supported: list[str]) -> list[str]:
    """The supported Python minor versions a python constraint allows."""
    return [
        minor
        for minor in supported
        if any(admits(constraint, f"{minor}.{patch}") for patch in range(0, 40)) or admits(constraint, minor)
    ]


def merge(rendered: str, imports: list[Environment], python_supported: list[str]) -> Merged:
    """Fold `imports` (in order: a later one wins) into the rendered text."""
    env = RenderedEnvironment(rendered)
    hub = {key: spec for key, (_, spec, _) in env.hub_specs().items()}  # what the template wrote
    notes: list[str] = []
    python_version = hub["python"].constraint.lstrip("=")
    for imported in imports:
        notes.extend(imported.notes)
        for channel in imported.channels:
            env.add_channel(channel)
        for spec in imported.conda:
            if spec.key == "python":
                python_version = _choose_python(spec, python_version, python_supported, imported.origin, notes)
            elif spec.key in hub:
                needed = hub[spec.key]
                if spec.constraint == needed.constraint and spec.channel == needed.channel:
                    continue
                if within(spec.constraint, needed.constraint):
                    index, _, comment = env.hub_specs()[spec.key]
                    env.replace(index, spec, comment)
                else:
                    notes.append(
                        f"warning: {imported.origin} pins {spec}, but the hub needs {needed}"
                        f"{_why(needed)}; the hub's pin is kept"
                    )
            else:
                env.add_own(spec)
        for pip_spec in imported.pip:
            if pip_spec.key in hub and hub[pip_spec.key].constraint:
                needed = hub[pip_spec.key]
                notes.append(
                    f"warning: {imported.origin} installs {pip_spec.text} with pip; the hub installs "
                    f"{needed} from conda-forge{_why(needed)}, so the pip line is left out"
                )
            else:
                env.add_pip(pip_spec)
    index, _, comment = env.hub_specs()["python"]
    env.replace(index, CondaSpec("python", f"={python_version}"), comment)
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
