"""A rendered hub folder as the checks see it, read lazily and once.

`Hub` and `ChartSource` are the checks' repo-review fixtures. repo-review
deep-copies fixtures and compares them after every check, so both compare by
their path only and load their contents on first use (a check that is not
selected costs nothing).
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .. import git_runner, load_data
from ..copier_settings import ANSWERS_FILE
from ..helm_values import Chart, Problem, ValuesFile
from ..safe_yaml import error_line, error_problem, load_all_bounded, load_bounded
from .encryption import clear_bytes, encryption_of

T = TypeVar("T")

# The environments hubploy's command takes (0.4 and today's).
HUBPLOY_ENVIRONMENTS = ("develop", "staging", "prod")

# The most the checker reads of one file: a hub's text files are far smaller;
# a larger one is reported (SE003), never read whole into memory.
MAX_READ = 10 * 2**20
_NO_FOLLOW = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def read_no_follow(root: Path, rel: str, limit: int = MAX_READ) -> tuple[bytes, int] | None:
    """The bytes of ``root/rel`` (only its first kB when it is over ``limit``)
    and its size, opened one
    component at a time with O_NOFOLLOW from ``root``'s descriptor: None when
    any component is a symlink, or the file is not a regular file. A link
    swapped in after the hub was listed is refused by the kernel, not
    followed."""
    fd = os.open(root, _NO_FOLLOW | os.O_DIRECTORY)
    try:
        *folders, name = rel.split("/")
        for folder in folders:
            inner = os.open(folder, _NO_FOLLOW | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        file_fd = os.open(name, _NO_FOLLOW | getattr(os, "O_NONBLOCK", 0), dir_fd=fd)
    except OSError:  # ELOOP for a link, ENOTDIR, ENOENT
        return None
    finally:
        os.close(fd)
    with os.fdopen(file_fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        return file.read(info.st_size if info.st_size <= limit else 1024), info.st_size


@dataclass(frozen=True)
class Parsed:
    """A YAML file: its data, or the problem that stopped the parser."""

    data: object = None
    problem: Problem | None = None


def _parse(rel: str, text: str, load: Callable[[str], Any]) -> Parsed:
    """``load(text)``, or the problem that stopped the parser, on one line."""
    try:
        return Parsed(load(text))
    except RecursionError:
        return Parsed(problem=Problem(rel, None, "is not valid YAML: nested too deeply."))
    except yaml.YAMLError as error:
        what = error_problem(error)
        context, since = getattr(error, "context", None), getattr(error, "context_mark", None)
        if context and since:  # e.g. "while parsing a flow sequence" opened on an earlier line
            what = f"{context} (from line {since.line + 1}), {what}"
        return Parsed(problem=Problem(rel, error_line(error), f"is not valid YAML: {what}."))


@dataclass(frozen=True)
class Hub:
    path: Path | None  # None when repo-review looks at something that is not a local folder

    @classmethod
    def containing(cls, path: Path) -> Hub | None:
        """The hub folder ``path`` is, or is in (a file such as secrets/prod.yaml)."""
        path = Path(path).resolve()
        for folder in (path, *path.parents) if path.is_dir() else path.parents:
            if (folder / ANSWERS_FILE).is_file() or (folder / "hubploy.yaml").is_file():
                return cls(folder)
        return None

    @property
    def folder(self) -> Path:
        """The hub's folder: only a local folder (see `is_hub`) is read."""
        assert self.path is not None, "not a local folder"
        return self.path

    @cached_property
    def is_hub(self) -> bool:
        return self.path is not None and (
            (self.path / ANSWERS_FILE).is_file() or (self.path / "hubploy.yaml").is_file()
        )

    # --- what the template knows -------------------------------------------

    @cached_property
    def answers(self) -> dict[str, Any]:
        parsed = self.yaml(ANSWERS_FILE)
        return parsed.data if isinstance(parsed.data, dict) else {}

    @cached_property
    def versions(self) -> dict[str, Any]:
        return load_data("versions.yml")

    @cached_property
    def cloud(self) -> dict[str, Any] | None:
        """The hub's provider entry of data/providers.yml."""
        provider = self.answers.get("cloud_provider")
        cloud: dict[str, Any] | None = load_data("providers.yml").get(provider) if isinstance(provider, str) else None
        return cloud

    @property
    def umbrella(self) -> str:
        """The answers' umbrella key; for a hand-made hub, the key its
        federation chart gives daskhub (or the 2019 `pangeo` chart)."""
        if self.answers.get("helm_umbrella_key"):
            return str(self.answers["helm_umbrella_key"])
        chart = self.federation_chart
        return chart.umbrella if chart and chart.umbrella else "daskhub"

    @cached_property
    def _federation_chart_folder(self) -> tuple[Path, str, bytes] | None:
        """(repository root, folder, its Chart.yaml) of the federation's chart."""
        if self.path is None or self.git is None:
            return None
        top = self.git.top.resolve()
        folders = ["chart", *sorted(p.name for p in top.iterdir() if p.name != "chart" and not p.is_symlink())]
        for folder in folders:
            read = read_no_follow(top, f"{folder}/Chart.yaml")
            if read is not None:
                return top, folder, read[0]
        return None

    @cached_property
    def federation_chart(self) -> FederationChart | None:
        """The chart the federation deploys every hub with: `chart/` at the
        repository's root (this template's), else the one folder there with a
        Chart.yaml (pangeo-cloud-federation's `pangeo-deploy/`)."""
        found = self._federation_chart_folder
        if found is None:
            return None
        top, folder, chart_yaml = found
        values = read_no_follow(top, f"{folder}/values.yaml")
        return FederationChart.parse(chart_yaml, values[0] if values else b"")

    @cached_property
    def federation_chart_templates(self) -> str:
        """The text of the federation chart's own templates (never followed
        through a link): what a hand-made chart makes is only written there."""
        found = self._federation_chart_folder
        if found is None:
            return ""
        top, folder, _ = found
        templates = top / folder / "templates"
        if templates.is_symlink() or not templates.is_dir():
            return ""
        texts = (read_no_follow(top, f"{folder}/templates/{p.name}") for p in sorted(templates.iterdir()))
        return "\n".join(t[0].decode("utf-8", errors="replace") for t in texts if t is not None)

    @property
    def jupyterhub_path(self) -> str:
        """Where the hub's jupyterhub chart values are (see jinja/values.jinja)."""
        return "jupyterhub" if self.dask_backend == "kubernetes" else f"{self.umbrella}.jupyterhub"

    def chart_paths(self, paths: Sequence[Sequence[str]]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """(root, path) for each chart-relative key path (first key: the chart):
        under the umbrella key for daskhub's charts, and at the top for the
        jupyterhub chart the deployment chart depends on directly."""
        from ..helm_values import DIRECT_JUPYTERHUB

        found: list[tuple[tuple[str, ...], tuple[str, ...]]] = [((self.umbrella,), tuple(p)) for p in paths]
        return found + [((), tuple(p)) for p in paths if p[0] == DIRECT_JUPYTERHUB]

    @property
    def dask_backend(self) -> str:
        return self.answers.get("dask_backend") or "gateway"

    @property
    def secrets_backend(self) -> str | None:
        """The answers' backend; else, for a hand-made hub, the nearest
        .sops.yaml or .gitattributes in its folder or above, up to its git
        repository's root (a federation's root .gitattributes covers all hubs)."""
        if self.answers.get("secrets_backend"):
            backend: str = self.answers["secrets_backend"]
            return backend
        top = self.git.top.resolve() if self.git else self.folder
        for folder in (self.folder, *self.folder.parents):
            if (folder / ".sops.yaml").is_file():
                return "sops"
            if (folder / ".gitattributes").is_file():
                return "git-crypt"
            if folder == top:
                break
        return None

    # --- files ---------------------------------------------------------------

    @cached_property
    def _walk(self) -> tuple[list[str], dict[str, str]]:
        """The hub's regular files and its symlinks (never followed), relative."""
        skip = {".git", ".ipynb_checkpoints", "__pycache__"}
        files: list[str] = []
        links: dict[str, str] = {}
        for folder, dirs, names in os.walk(self.folder):
            base = Path(folder).relative_to(self.folder)
            for name in [*dirs]:
                if name in skip:
                    dirs.remove(name)
                elif (Path(folder) / name).is_symlink():
                    dirs.remove(name)
                    links[(base / name).as_posix()] = os.readlink(Path(folder) / name)
            for name in names:
                path, rel = Path(folder) / name, (base / name).as_posix()
                if path.is_symlink():
                    links[rel] = os.readlink(path)
                elif path.is_file():
                    files.append(rel)
        return sorted(files), dict(sorted(links.items()))

    @property
    def files(self) -> list[str]:
        """Every regular file of the hub, relative, in POSIX form (no .git, no
        editor leftovers, nothing reached through a symlink)."""
        return self._walk[0]

    @property
    def links(self) -> dict[str, str]:
        """The hub's symlinks: relative path -> target. The checker reads none."""
        return self._walk[1]

    @cached_property
    def _bytes(self) -> dict[str, bytes | None]:
        return {}

    @cached_property
    def too_large(self) -> dict[str, int]:
        """Files over MAX_READ, by size, whose start is text: read no further."""
        return {}

    def raw(self, rel: str) -> bytes | None:
        """The file's bytes: only a regular file of the hub, reached through no
        link (read_no_follow); None for a file over MAX_READ."""
        if rel not in self._bytes:
            read = read_no_follow(self.folder, rel) if rel in self.files else None
            if read is not None and read[1] > MAX_READ:
                if b"\0" not in read[0][:1024]:
                    self.too_large[rel] = read[1]
                read = None
            self._bytes[rel] = read[0] if read is not None else None
        return self._bytes[rel]

    def conflict_markers(self, rel: str) -> tuple[int, int] | None:
        """The first and last line of the first conflict an update left in
        the file, or None (also for a binary or encrypted file)."""
        text = self.text(rel)
        return _conflict_markers(text) if text is not None else None

    def text(self, rel: str) -> str | None:
        """The file's text; None if it is missing, binary or encrypted by git-crypt
        (a file that only starts with git-crypt's header is read after it)."""
        data = self.raw(rel)
        data = clear_bytes(data) if data is not None else None
        if data is None or b"\0" in data[:1024]:
            return None
        return data.decode("utf-8", errors="replace")

    def encryption(self, rel: str) -> str | None:
        data = self.raw(rel)
        return encryption_of(data) if data is not None else None

    @cached_property
    def _parsed(self) -> dict[str, Parsed]:
        return {}

    def yaml(self, rel: str) -> Parsed:
        if rel not in self._parsed:
            text = self.text(rel)
            markers = _conflict_markers(text) if text is not None else None
            if text is None:
                self._parsed[rel] = Parsed()
            elif markers:
                self._parsed[rel] = Parsed(problem=conflict_problem(rel, markers))
            else:
                self._parsed[rel] = _parse(rel, text, load_bounded)
        return self._parsed[rel]

    @cached_property
    def _values_files(self) -> dict[str, ValuesFile | None]:
        return {}

    def values_file(self, rel: str) -> ValuesFile | None:
        """A helm values file with the line of each key; None if it is missing,
        encrypted, or does not parse (the structure checks report that)."""
        if rel not in self._values_files:
            parsed = self.yaml(rel)
            usable = not parsed.problem and isinstance(parsed.data, dict) and not self.encryption(rel)
            text = self.text(rel) if usable else None
            self._values_files[rel] = ValuesFile.parse(text, self.folder / rel, rel) if text is not None else None
        return self._values_files[rel]

    @cached_property
    def _memo(self) -> dict[str, Any]:
        return {}

    def memo(self, key: str, compute: Callable[[Hub], T]) -> T:
        """``compute(self)`` once per hub: what several checks share (repo2docker's
        plan, the image's runtime dask config)."""
        if key not in self._memo:
            self._memo[key] = compute(self)
        value: T = self._memo[key]
        return value

    # --- helm ------------------------------------------------------------------

    @cached_property
    def environments(self) -> list[str]:
        """The releases hubploy deploys: each environment its command takes
        (develop, staging, prod) that has a config/<env>.yaml. Other YAML in
        config/ (a hand-made hub's manifests, shared-nfs-prod.yaml) is no
        environment."""
        envs = [env for env in HUBPLOY_ENVIRONMENTS if f"config/{env}.yaml" in self.files]
        return envs or ["staging", "prod"]

    def single_document(self, rel: str) -> bool:
        """Whether a tool reads ``rel`` as one YAML document: hubploy.yaml, the
        answers, helm values of an environment, the image's files. Others (a
        hub's extra Kubernetes manifests) may be multi-document streams."""
        layers = {f"{folder}/{env}.yaml" for folder in ("config", "secrets") for env in ("common", *self.environments)}
        return rel in {"hubploy.yaml", ANSWERS_FILE, *layers} or rel.startswith("image/")

    def yaml_stream(self, rel: str) -> Parsed:
        """A YAML file parsed as a stream of documents (a list of them)."""
        text = self.text(rel)
        return Parsed() if text is None else _parse(rel, text, load_all_bounded)

    def values_layers(self, env: str) -> list[ValuesFile]:
        """What hubploy gives helm for ``env``, in order: common, env, secrets.
        A secrets file that is encrypted cannot be read and is left out."""
        rels = ("config/common.yaml", f"config/{env}.yaml", f"secrets/{env}.yaml")
        return [f for f in map(self.values_file, rels) if f is not None]

    # --- git -------------------------------------------------------------------

    @cached_property
    def git(self) -> GitRepo | None:
        """The git repository holding the hub (the federation), if any:
        found by its `.git`, never by git's own search, which would take a
        git directory laid out in the hub's files for it (git_runner)."""
        repo = git_runner.repository_of(self.path) if self.path is not None else None
        return GitRepo(repo) if repo is not None else None


@dataclass(frozen=True)
class FederationChart:
    """What the federation's own chart takes at the top of a hub's values:
    its dependencies (by alias or name) and its own values' keys."""

    keys: frozenset[str]
    umbrella: str | None  # the key daskhub (or the 2019 pangeo chart) is under

    @classmethod
    def parse(cls, chart_yaml: bytes, values_yaml: bytes) -> FederationChart:
        try:
            meta = load_bounded(chart_yaml.decode("utf-8", errors="replace"))
            values = load_bounded(values_yaml.decode("utf-8", errors="replace"))
        except (yaml.YAMLError, RecursionError):
            return cls(frozenset(), None)
        deps = (
            [d for d in (meta or {}).get("dependencies") or [] if isinstance(d, dict)] if isinstance(meta, dict) else []
        )
        named = {str(d.get("name")): str(d.get("alias") or d.get("name")) for d in deps}
        umbrella = named.get("daskhub") or named.get("pangeo")
        keys = set(named.values()) | ({str(k) for k in values} if isinstance(values, dict) else set())
        return cls(frozenset(keys), umbrella)


@dataclass(frozen=True)
class GitRepo:
    repo: git_runner.Repository

    @property
    def top(self) -> Path:
        return self.repo.top

    def _git(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return self.repo.run(*args, input=stdin)

    def check_attr(self, attr: str, paths: list[Path]) -> dict[Path, str]:
        """`git check-attr` for each path: 'unspecified', 'set', 'unset' or the value."""
        rels = [str(p.resolve().relative_to(self.top.resolve())) for p in paths]
        out = self._git("check-attr", "-z", attr, "--", *rels).stdout.decode().split("\0")
        values = {out[i]: out[i + 2] for i in range(0, len(out) - 2, 3)}
        return {p: values.get(rel, "unspecified") for p, rel in zip(paths, rels, strict=True)}

    def config(self, key: str) -> str | None:
        result = self._git("config", "--get", key)
        return result.stdout.decode().strip() if result.returncode == 0 else None

    def staged(self, paths: list[Path]) -> dict[Path, bytes]:
        """The blob git's index holds for each tracked path: what the next
        commit stores (after the clean filter, so encrypted under git-crypt)."""
        rels = {str(p.resolve().relative_to(self.top.resolve())): p for p in paths}
        listing = self._git("ls-files", "-s", "-z", "--", *rels).stdout.decode().split("\0")
        shas = {}
        for entry in filter(None, listing):
            meta, _, rel = entry.partition("\t")
            shas[rel] = meta.split()[1]
        if not shas:
            return {}
        out = self._git("cat-file", "--batch", stdin="".join(f"{s}\n" for s in shas.values()).encode()).stdout
        blobs, pos = {}, 0
        for rel in shas:
            header_end = out.index(b"\n", pos)
            size = int(out[pos:header_end].split()[2])
            blobs[rels[rel]] = out[header_end + 1 : header_end + 1 + size]
            pos = header_end + 1 + size + 1
        return blobs


@dataclass(frozen=True)
class ChartSource:
    """The daskhub chart given with --chart, loaded on first use."""

    directory: Path | None

    @cached_property
    def chart(self) -> Chart | None:
        return Chart(self.directory) if self.directory else None

    def __deepcopy__(self, memo: dict[int, object]) -> ChartSource:
        # repo-review deep-copies every fixture for each hub it checks; the
        # chart is read once per process and only read from (runner.chart_source),
        # so each hub's copy would be the same data, built again.
        return self


def conflict_problem(rel: str, markers: tuple[int, int]) -> Problem:
    """The one finding for a file holding an update's conflict markers (ST003)."""
    return Problem(
        rel,
        markers[0],
        f"holds the conflict markers an update left (lines {markers[0]}-{markers[1]}): keep what "
        "is right, delete the markers, `git add` the file and commit.",
    )


def _conflict_markers(text: str) -> tuple[int, int] | None:
    """The first and last line of the first conflict copier or git left
    (`<<<<<<<` ... `=======` ... `>>>>>>>`), or None: told apart from a YAML
    error so that the hub's checks name it once, as what it is."""
    start = middle = None
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("<<<<<<<") and start is None:
            start = number
        elif line.rstrip() == "=======" and start is not None:
            middle = number
        elif line.startswith(">>>>>>>") and middle is not None and start is not None:
            return start, number
    return None
