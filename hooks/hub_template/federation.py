"""`hub-template update DEPLOYMENTS_DIR`: every hub of a federation, to the newest template.

Every folder of DEPLOYMENTS_DIR with a `.copier-answers.yml` is a hub. With
`--check` nothing changes: each hub's template version is reported against
the newest release of its template, and the exit status is 1 when any hub is
behind. Otherwise each hub is updated with `copier update`, one at a time:

- a hub with uncommitted changes is skipped (copier would refuse it);
- a hub already at the newest release is left alone;
- a hub whose update fails is restored exactly as it was: its tracked files
  from HEAD, and the files the update created removed. Ignored files (the
  decrypted secrets) are never touched, and no other hub is.

The exit status is 1 when any hub has conflicts or failed.

Why it is faster than a shell loop of `copier update`: all updates run in this
one process through copier's Python API (no interpreter and import start-up
per hub), and the template is fetched once. Each distinct template source is
mirrored into a temporary bare repository, and git is told, through
`url.<mirror>.insteadOf` in GIT_CONFIG_* environment variables, to read the
mirror wherever copier asks for the source. copier still sees the original
URL, so the `_src_path` it records in each hub's answers file never changes.

Hubs update on every CPU at once (`--jobs`). copier reads and writes the
whole repository's index and scans its whole tree (`git status`, `.rej`
files), so two updates in one checkout would see each other: each worker
updates in its own git worktree of HEAD, with the hub's ignored files copied
in, and hands back the hub's files and index entries, which this process
writes into the federation's checkout one hub at a time. A hub that fails
never touches the checkout at all. `--jobs 1` updates in place, as copier
alone would; both leave the same bytes and the same index.

An update runs the template's tasks and migrations (copier's `--trust`), so
only the federation's own template is trusted: the one `--template` names, or
else the one most hubs record. A hub whose answers file names another is
refused unless `--allow-template` names that one too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, NoReturn

import yaml
from packaging.version import InvalidVersion, Version

if TYPE_CHECKING:
    from multiprocessing.queues import SimpleQueue
    from types import FrameType

    from plumbum.machines.local import LocalEnv
    from rich.console import Console
    from rich.progress import Progress, TaskID

from .copier_settings import ANSWERS_FILE
from .parallel import add_jobs_option

CURRENT, BEHIND, UPDATED, CONFLICTS, FAILED, DIRTY, REFUSED = (
    "current",
    "behind",
    "updated",
    "conflicts",
    "failed",
    "skipped dirty",
    "refused",
)
STYLES = {
    CURRENT: "green",
    UPDATED: "green",
    BEHIND: "yellow",
    DIRTY: "yellow",
    CONFLICTS: "red",
    FAILED: "red",
    REFUSED: "red",
}
# copier's shortcuts for hosted repositories (copier's docs, "Templates").
SHORTCUTS = {"gh:": "https://github.com/", "gl:": "https://gitlab.com/"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "deployments",
        type=Path,
        metavar="DEPLOYMENTS_DIR",
        help="the federation's deployments/ folder, one hub per subfolder",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="change nothing: report each hub's version against the newest; exit 1 when any hub is behind",
    )
    parser.add_argument(
        "--vcs-ref",
        metavar="REF",
        help="update to this tag, branch or commit of the template instead of its newest release",
    )
    parser.add_argument(
        "--template",
        metavar="SRC",
        help="the federation's template (default: the one most hubs record); hubs recording another are refused",
    )
    parser.add_argument(
        "--allow-template",
        action="append",
        default=[],
        metavar="SRC",
        help="also update hubs recording this other template, running its tasks (repeat for several)",
    )
    add_jobs_option(parser, "hubs updated at once, each in its own git worktree")


# --- what the federation holds --------------------------------------------------


@dataclass
class FederationHub:
    name: str
    path: Path
    src: str | None  # `_src_path`, as copier recorded it
    commit: str | None  # `_commit`: the template version it was last rendered from
    problem: str | None = None
    top: Path | None = None  # the git repository holding it


@dataclass
class Result:
    hub: str
    before: str
    after: str
    status: str
    notes: list[str] = field(default_factory=list)
    src: str = ""


def find_hubs(deployments: Path) -> list[FederationHub]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 60 hubs add up
    top = repo_top(deployments)
    hubs = []
    for answers_file in sorted(deployments.glob(f"*/{ANSWERS_FILE}")):
        path = answers_file.parent.resolve()
        # A hub is in the repository of deployments/, unless it is one of its own.
        hub = FederationHub(
            answers_file.parent.name, path, None, None, top=repo_top(path) if (path / ".git").exists() else top
        )
        try:
            answers = yaml.load(answers_file.read_text(), Loader=loader)
        except (OSError, yaml.YAMLError) as error:
            answers, hub.problem = None, f"{ANSWERS_FILE} is not readable YAML: {error}"
        if isinstance(answers, dict):
            hub.src, hub.commit = (str(answers[k]) if answers.get(k) else None for k in ("_src_path", "_commit"))
            if not (hub.src and hub.commit):
                hub.problem = (
                    f"{ANSWERS_FILE} has no _src_path or _commit: the hub was not "
                    "rendered by copier from a git template, so it cannot be updated"
                )
        elif not hub.problem:
            hub.problem = f"{ANSWERS_FILE} is not a mapping of answers"
        hubs.append(hub)
    return hubs


def commit_version(commit: str | None) -> Version | None:
    """The PEP 440 version copier gives a `_commit`: a tag like `v1.2.0`, or
    `v1.2.0-3-gabc1234` for a commit after it (copier's own reading)."""
    if not commit:
        return None
    if re.fullmatch(r"[0-9a-f]{7,40}", commit):
        return None  # a bare commit (`git describe --always`), even one of digits only, as 4104802 may be
    with contextlib.suppress(InvalidVersion):
        return Version(commit)
    match = re.fullmatch(r"(.+)-(\d+)-g([0-9a-f]+)", commit)
    if match:
        with contextlib.suppress(InvalidVersion):
            return Version(f"{match[1]}.post{match[2]}+g{match[3]}")
    return None


# --- which templates are trusted ------------------------------------------------


def same_template(a: str, b: str) -> bool:
    return git_url(a) == git_url(b)


def trusted(hubs: list[FederationHub], named: str | None, allowed: list[str]) -> tuple[str | None, str | None]:
    """The federation's template: the one named, else the one most hubs
    record; and an error when no single one stands out."""
    if named:
        return named, None
    counts = Counter(git_url(hub.src) for hub in hubs if hub.src and not hub.problem)
    ranked = counts.most_common(2)
    if not ranked:
        return None, None
    if (
        len(ranked) == 2
        and ranked[0][1] == ranked[1][1]
        and not any(same_template(src, ranked[0][0]) or same_template(src, ranked[1][0]) for src in allowed)
    ):
        return None, (
            f"hubs record {ranked[0][0]} and {ranked[1][0]} equally often: "
            "name the federation's template with --template"
        )
    first = next(hub.src for hub in hubs if hub.src and git_url(hub.src) == ranked[0][0])
    return first, None


def refusal(hub: FederationHub, federation_template: str | None, allowed: list[str]) -> str | None:
    if hub.problem or not hub.src or federation_template is None:
        return None
    if same_template(hub.src, federation_template) or any(same_template(hub.src, a) for a in allowed):
        return None
    return (
        f"its template {hub.src} is not the federation's ({federation_template}); "
        f"--allow-template {hub.src} runs its tasks"
    )


# --- template sources: one mirror each ---------------------------------------------


def git_url(src: str) -> str:
    """The URL git is given for `src`, expanded as copier expands it."""
    for short, base in SHORTCUTS.items():
        if src.startswith(short):
            src = base + src[len(short) :].lstrip("/")
            return src if src.endswith(".git") else src + ".git"
    if src.startswith("git+"):
        return src[4:]
    if src.startswith(tuple(SHORTCUTS.values())) and not src.endswith(".git"):
        return src + ".git"
    if Path(src).expanduser().exists():
        return str(Path(src).expanduser().resolve())
    return src


def is_local(src: str) -> bool:
    return Path(src).expanduser().exists()


@dataclass
class TemplateSource:
    """A template source, fetched once into a bare mirror."""

    src: str
    mirror: Path | None = None
    error: str | None = None
    newest: str | None = None  # the tag (or commit, or --vcs-ref's description) hubs go to
    # commit_of's answers: a federation's hubs mostly name the same few commits.
    _commits: dict[str, str | None] = field(default_factory=dict, repr=False)

    def fetch(self, into: Path, vcs_ref: str | None) -> None:
        done = subprocess.run(
            ["git", "clone", "--mirror", "--quiet", "--", git_url(self.src), str(into)], capture_output=True, text=True
        )
        if done.returncode:
            lines = done.stderr.strip().splitlines() or ["git clone failed"]
            reason = next((line for line in lines if line.startswith("fatal:")), lines[-1])
            self.error = f"cannot read the template {self.src}: {reason}"
            return
        self.mirror = into
        # With no release tag copier takes the default branch's last commit.
        self.newest = describe(into, vcs_ref or "HEAD") if vcs_ref else newest_tag(into) or describe(into, "HEAD")
        if self.newest is None:
            self.error = (
                f"the template {self.src} has no commit"
                if not vcs_ref
                else f"the template {self.src} has no {vcs_ref!r}"
            )

    def rewrites(self) -> list[tuple[str, str]]:
        """`url.<mirror>.insteadOf` pairs sending git to the mirror for this
        source. Local sources are read in place (git rewrites URLs, not paths
        it can open)."""
        if self.mirror is None or is_local(self.src):
            return []
        urls = {self.src, git_url(self.src)}
        return [(f"url.{self.mirror.as_uri()}.insteadOf", url) for url in sorted(urls)]

    def commit_of(self, version: str) -> str | None:
        """The commit a `_commit` names: a tag, a hash, or `tag-N-gHASH`."""
        if version not in self._commits:
            self._commits[version] = self._rev_parse(version)
        return self._commits[version]

    def _rev_parse(self, version: str) -> str | None:
        match = re.fullmatch(r".+-\d+-g([0-9a-f]+)", version)
        ref = match[1] if match else version
        done = subprocess.run(
            [
                "git",
                f"--git-dir={self.mirror}",
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                f"{ref}^{{commit}}",
            ],
            capture_output=True,
            text=True,
        )
        return done.stdout.strip() if done.returncode == 0 else None

    def is_behind(self, commit: str) -> bool | None:
        """Whether a hub at `commit` is behind `newest`; None when that
        cannot be told. Release versions compare as versions; anything else
        (an untagged template, a hash) as commits: a hub is behind unless it
        is at `newest` or after it."""
        before, newest = commit_version(commit), commit_version(self.newest)
        if before is not None and newest is not None:
            return before < newest
        if self.mirror is None or self.newest is None:
            return None
        mine, theirs = self.commit_of(commit), self.commit_of(self.newest)
        if mine is None or theirs is None:
            return None
        if mine == theirs:
            return False
        ancestor = subprocess.run(
            ["git", f"--git-dir={self.mirror}", "merge-base", "--is-ancestor", theirs, mine], capture_output=True
        )
        return ancestor.returncode != 0


def newest_tag(mirror: Path) -> str | None:
    """The highest PEP 440 release tag, as copier picks it (no pre-releases)."""
    tags = subprocess.run(
        ["git", f"--git-dir={mirror}", "tag", "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    versions = {}
    for tag in tags:
        with contextlib.suppress(InvalidVersion):
            version = Version(tag)
            if not version.is_prerelease:
                versions[version] = tag
    return versions[max(versions)] if versions else None


def describe(mirror: Path, ref: str) -> str | None:
    done = subprocess.run(
        ["git", f"--git-dir={mirror}", "describe", "--tags", "--always", "--end-of-options", ref],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() if done.returncode == 0 else None


@contextlib.contextmanager
def git_config(pairs: list[tuple[str, str]]) -> Iterator[None]:
    """Add git configuration for every git copier starts (os.environ, and
    plumbum's copy of it, which copier's git commands use), after any
    GIT_CONFIG_* entries already set."""
    from plumbum import local

    def extended(env: Mapping[str, str] | LocalEnv) -> dict[str, str]:
        start = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
        added = {"GIT_CONFIG_COUNT": str(start + len(pairs))}
        for i, (key, value) in enumerate(pairs, start):
            added[f"GIT_CONFIG_KEY_{i}"], added[f"GIT_CONFIG_VALUE_{i}"] = key, value
        return added

    saved = dict(os.environ)
    os.environ.update(extended(os.environ))
    try:
        with local.env(**extended(local.env)):
            yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# --- git ---------------------------------------------------------------------------


def repo_top(path: Path) -> Path | None:
    done = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    return Path(done.stdout.strip()).resolve() if done.returncode == 0 else None


def git_in(top: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        ["git", "-C", str(top), *args], check=True, capture_output=True, text=True, input=stdin
    ).stdout


def untracked(top: Path, hub: Path) -> set[str]:
    """Files under the hub git does not track, ignored ones included."""
    out = git_in(top, "ls-files", "--others", "-z", "--", str(hub.relative_to(top)))
    return {p for p in out.split("\0") if p}


def status(top: Path, *paths: str) -> list[str]:
    """`git status --porcelain` entries ("XY path") for these paths."""
    out = git_in(top, "status", "--porcelain", "-z", "--no-renames", "--", *paths)
    return [entry for entry in out.split("\0") if entry]


def statuses(hubs: list[FederationHub]) -> dict[Path, list[str]]:
    """Each hub's uncommitted changes, with one `git status` per repository."""
    found: dict[Path, list[str]] = {hub.path: [] for hub in hubs}
    by_top: dict[Path, list[FederationHub]] = {}
    for hub in hubs:
        if hub.top is not None:
            by_top.setdefault(hub.top, []).append(hub)
    for top, members in by_top.items():
        owners = {str(hub.path.relative_to(top)) + "/": hub.path for hub in members}
        for entry in status(top, *owners):
            path = entry[3:]
            owner = next((p for prefix, p in owners.items() if path.startswith(prefix)), None)
            if owner is not None:
                found[owner].append(entry)
    return found


def conflicts(top: Path, hub: Path) -> list[str]:
    """Files left with conflicts: unmerged in the index, or a .rej beside them."""
    rel = str(hub.relative_to(top))
    unmerged = git_in(top, "diff", "--name-only", "--diff-filter=U", "--", rel).splitlines()
    rejects = [p for p in untracked(top, hub) if p.endswith(".rej")]
    return sorted(set(unmerged) | set(rejects))


def restore(top: Path, hub: Path, untracked_before: set[str]) -> None:
    """Put the hub back as it was before a failed update: it was clean, so
    its tracked files (and index entries) come from HEAD, and what the update
    created is removed. Ignored files that were there stay untouched."""
    rel = str(hub.relative_to(top))
    git_in(top, "restore", "--source=HEAD", "--staged", "--worktree", "--", rel)
    for created in sorted(untracked(top, hub) - untracked_before, reverse=True):
        path = top / created
        path.unlink(missing_ok=True)
        parent = path.parent
        while parent != hub and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent


class ParkedEntries:
    """Index entries set aside while other hubs update, put back at the end.

    copier diffs its render against `git write-tree` of the whole index and
    applies that diff with `git apply` at the repository's top, so every
    update reaches beyond its hub:

    - a conflict is recorded as unmerged index entries (so `git status` says
      "both modified"), and the next update anywhere in the repository fails
      on them (`git write-tree`);
    - a file deleted but still in the index (a file an earlier update
      removed, or a user's uncommitted deletion in a skipped hub) is written
      back from the index by the next update, whichever hub it updates.

    So before each update both are parked: unmerged entries go back to HEAD
    (the files keep their markers) and missing files leave the index; each
    update then sees only its own hub, as a `copier update` of that hub alone
    would, whatever the order. `restore_all` puts every entry back exactly.
    """

    def __init__(self) -> None:
        self.entries: dict[Path, list[str]] = {}

    def park(self, top: Path, *paths: str) -> None:
        found = [e for e in git_in(top, "ls-files", "-u", "-z", "--", *paths).split("\0") if e]
        if found:
            self.entries.setdefault(top, []).extend(found)
            git_in(top, "restore", "--staged", "--", *sorted({e.split("\t", 1)[1] for e in found}))

    def park_deletions(self, top: Path, hub: str) -> None:
        """Take out of the index the files missing from the work tree outside `hub`."""
        inside = "" if hub in ("", ".") else hub.rstrip("/") + "/"
        missing = {p for p in git_in(top, "ls-files", "--deleted", "-z").split("\0") if p and inside}
        outside = {p for p in missing if not p.startswith(inside)}
        staged = git_in(top, "ls-files", "--stage", "-z").split("\0") if outside else []
        found = [e for e in staged if e and e.split("\t", 1)[1] in outside]
        if found:
            self.entries.setdefault(top, []).extend(found)
            paths = "".join(e.split("\t", 1)[1] + "\0" for e in found)
            git_in(top, "update-index", "-z", "--force-remove", "--stdin", stdin=paths)

    def restore_all(self) -> None:
        for top, entries in self.entries.items():
            null = "0" * len(entries[0].split()[1])
            # First drop the entry `park` took from HEAD, then copier's stages.
            records = [f"0 {null}\t{path}" for path in sorted({e.split("\t", 1)[1] for e in entries})]
            records.extend(entries)
            git_in(top, "update-index", "-z", "--index-info", stdin="\0".join(records) + "\0")
        self.entries.clear()


@contextlib.contextmanager
def captured_output(log: Path) -> Iterator[None]:
    """Send what copier and its migrations print (fd 1 and 2, and Python's
    streams) to `log`, so the progress display stays readable."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("a") as stream:
        os.dup2(stream.fileno(), 1)
        os.dup2(stream.fileno(), 2)
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield
        finally:
            stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a CI job cancelled, `kill`) stops an update as Ctrl-C does,
    so the hub being updated is restored and parked conflicts recorded."""

    def interrupt(signum: int, frame: FrameType | None) -> NoReturn:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while a hub's result is written into the
    checkout: an interruption lands before or after it, never inside."""
    held = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


# --- one hub: decide, then update -------------------------------------------------


def _usable_source(
    result: Result, hub: FederationHub, source: TemplateSource | None, refused: str | None
) -> TemplateSource | None:
    """The template source `hub` is checked or updated from, or None, said in
    `result`, when the hub is refused, has a problem of its own or has no
    source that could be read."""
    if refused:
        result.status = REFUSED
        result.notes.append(refused)
    elif hub.problem or source is None:
        result.notes.append(hub.problem or "no template source")
    elif source.error:
        result.notes.append(source.error)
    else:
        return source
    return None


def plan_hub(
    hub: FederationHub, source: TemplateSource | None, vcs_ref: str | None, dirty: list[str], refused: str | None
) -> Result | None:
    """The result of a hub that needs no copier at all, or None when it must
    be updated."""
    result = Result(hub.name, hub.commit or "?", hub.commit or "?", FAILED, src=hub.src or "")
    if (source := _usable_source(result, hub, source, refused)) is None:
        return result
    if hub.top is None:
        result.notes.append("not in a git repository: copier updates only hubs tracked by git")
    elif dirty:
        result.status = DIRTY
        inside = hub.path.relative_to(hub.top)
        shown = ", ".join(str(Path(line[3:]).relative_to(inside)) for line in dirty[:3])
        shown += ", ..." if len(dirty) > 3 else ""
        result.notes.append(f"uncommitted changes ({shown}): commit or stash them, then update again")
    elif not vcs_ref and source.is_behind(hub.commit or "") is False:
        result.status = CURRENT
    else:
        return None
    return result


def update_hub(
    hub: FederationHub, path: Path, top: Path, vcs_ref: str | None, log: Path, parked: ParkedEntries
) -> Result:
    """`copier update` of the hub at `path` (in the checkout `top`), restored
    as it was when it fails."""
    from copier import run_update

    result = Result(hub.name, hub.commit or "?", hub.commit or "?", FAILED, src=hub.src or "")
    parked.park(top)  # conflicts left anywhere in the repository
    parked.park_deletions(top, str(path.relative_to(top)))
    untracked_before = untracked(top, path)
    log.write_text("")
    try:
        with captured_output(log):
            run_update(str(path), vcs_ref=vcs_ref, defaults=True, overwrite=True, unsafe=True, quiet=True)
    except KeyboardInterrupt:
        restore(top, path, untracked_before)
        raise
    except Exception as error:
        restore(top, path, untracked_before)
        left = status(top, str(path.relative_to(top)))
        result.notes.append(_error_message(error, log))
        result.notes.append(
            f"could not restore everything, check: {', '.join(left)}" if left else "the hub is restored as it was"
        )
        return result

    result.after = _read_commit(path) or "?"
    result.notes.extend(line for line in log.read_text().splitlines() if line.startswith("migration "))
    clashes = conflicts(top, path)
    if clashes:
        result.status = CONFLICTS
        parked.park(top, str(path.relative_to(top)))
        result.notes.append(
            "resolve the conflict markers in: "
            + ", ".join(str(Path(p).relative_to(path.relative_to(top))) for p in clashes)
        )
    else:
        result.status = UPDATED if status(top, str(path.relative_to(top))) else CURRENT
    return result


def _read_commit(hub: Path) -> str | None:
    with contextlib.suppress(OSError, yaml.YAMLError, AttributeError):
        commit: str | None = yaml.safe_load((hub / ANSWERS_FILE).read_text()).get("_commit")
        return commit
    return None


def _error_message(error: Exception, log: Path) -> str:
    """What went wrong, in one line: a failed migration or task says why in
    its last line of output (a Python exception's last line)."""
    lines = [line.strip() for line in log.read_text().splitlines() if line.strip()]
    if isinstance(error, subprocess.CalledProcessError):
        cmd = error.cmd if isinstance(error.cmd, str) else " ".join(map(str, error.cmd))
        what = "a migration" if cmd.endswith(" migrate") else "a template task"
        return f"{what} failed (exit {error.returncode}): " + (lines[-1] if lines else cmd)
    return f"{type(error).__name__}: {str(error).strip()}"


def check_hub(hub: FederationHub, source: TemplateSource | None, refused: str | None) -> Result:
    result = Result(hub.name, hub.commit or "?", "?", FAILED, src=hub.src or "")
    if (source := _usable_source(result, hub, source, refused)) is None:
        return result
    result.after = source.newest or "?"
    behind = source.is_behind(hub.commit or "")
    if behind is None:
        result.notes.append(f"{hub.commit!r} is no release or commit of the template")
    else:
        result.status = BEHIND if behind else CURRENT
    return result


# --- hubs in parallel: one worktree per worker --------------------------------------


@dataclass
class Outcome:
    """What a worker hands back: the hub's result, and when the update
    changed it, its files (path: (mode, bytes), or link target) and its
    index entries (`git ls-files -s` records, conflict stages included)."""

    result: Result
    files: dict[str, tuple[int, bytes]] | None = None
    index: list[str] = field(default_factory=list)


class Worker:
    """The worktrees (one per federation repository) of this worker process."""

    # Per process, set once by start(): state of the worker, not of an instance.
    trees: ClassVar[dict[Path, Path]] = {}
    log: ClassVar[Path] = Path()

    @classmethod
    def start(cls, slots: SimpleQueue[int], trees: dict[int, dict[Path, Path]], scratch: Path) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interruption does
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        slot = slots.get()
        cls.trees, cls.log = trees[slot], scratch / f"copier-{slot}.log"
        # copier keeps one mirror per template in its cache and refreshes it
        # (`git remote update --prune`) on every clone: two processes sharing
        # it race with each other's worktrees of it ("bad object
        # worktrees/copier._vcs.clone.*/HEAD"). Each worker gets its own.
        os.environ["COPIER_CACHE_DIR"] = str(scratch / f"copier-cache-{slot}")


def add_worktrees(tops: list[Path], jobs: int, scratch: Path, trees: dict[int, dict[Path, Path]]) -> None:
    """A worktree of HEAD per worker and repository, into `trees`, made here
    one at a time (git locks the repository's worktree list)."""
    for slot in range(jobs):
        for index, top in enumerate(tops):
            tree = scratch / "worktrees" / f"{slot}-{index}"
            git_in(
                top, "-c", f"core.hooksPath={os.devnull}", "worktree", "add", "--quiet", "--detach", str(tree), "HEAD"
            )
            trees.setdefault(slot, {})[top] = tree


def remove_worktrees(trees: dict[int, dict[Path, Path]]) -> None:
    for by_top in trees.values():
        for top, tree in by_top.items():
            removed = subprocess.run(
                ["git", "-C", str(top), "worktree", "remove", "--force", "--force", str(tree)], capture_output=True
            )
            if removed.returncode and tree.exists():  # a worker stopped inside a git command
                shutil.rmtree(tree, ignore_errors=True)
                subprocess.run(["git", "-C", str(top), "worktree", "prune"], capture_output=True)


def update_in_worktree(task: tuple[FederationHub, str | None]) -> Outcome:
    hub, vcs_ref = task
    assert hub.top is not None
    tree = Worker.trees[hub.top]
    rel = hub.path.relative_to(hub.top)
    path = tree / rel
    parked = ParkedEntries()
    try:
        # The checkout's hub is clean: HEAD's files are already here; add its
        # ignored ones (decrypted secrets), which an update may read.
        for name in untracked(hub.top, hub.path):
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(hub.top / name, tree / name, follow_symlinks=False)
        result = update_hub(hub, path, tree, vcs_ref, Worker.log, parked)
        parked.restore_all()  # the conflict's stages are part of what goes back
        outcome = Outcome(result)
        if result.status in (UPDATED, CONFLICTS):
            outcome.files = read_tree(path)
            outcome.index = [e for e in git_in(tree, "ls-files", "-s", "-z", "--", str(rel)).split("\0") if e]
        return outcome
    except (OSError, subprocess.CalledProcessError) as error:  # the worktree, not the hub: nothing written back
        result = Result(hub.name, hub.commit or "?", hub.commit or "?", FAILED, src=hub.src or "")
        result.notes += [f"the update's worktree failed: {_error_message(error, Worker.log)}", "the hub is as it was"]
        return Outcome(result)
    finally:  # the next hub finds this worktree at HEAD again
        git_in(tree, "read-tree", "--reset", "-u", "HEAD")
        git_in(tree, "clean", "-q", "-f", "-f", "-d", "-x", "--", str(rel))


def read_tree(folder: Path) -> dict[str, tuple[int, bytes]]:
    files = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            files[str(path.relative_to(folder))] = (info.st_mode, os.readlink(path).encode())
        elif stat.S_ISREG(info.st_mode):
            files[str(path.relative_to(folder))] = (info.st_mode, path.read_bytes())
    return files


def write_back(hub: FederationHub, outcome: Outcome) -> None:
    """Make the checkout's hub what the worker left: the same files, bytes,
    modes and index entries."""
    assert hub.top is not None and outcome.files is not None
    now = read_tree(hub.path)
    for name in sorted(set(now) - set(outcome.files), reverse=True):
        (hub.path / name).unlink()
    for name, (mode, data) in outcome.files.items():
        if now.get(name) == (mode, data):
            continue
        target = hub.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if name in now:
            target.unlink()
        if stat.S_ISLNK(mode):
            os.symlink(data.decode(), target)
        else:
            target.write_bytes(data)
            os.chmod(target, stat.S_IMODE(mode))
    for folder in sorted((p for p in hub.path.rglob("*") if p.is_dir() and not p.is_symlink()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    rel = str(hub.path.relative_to(hub.top))
    git_in(hub.top, "rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", rel)
    git_in(hub.top, "update-index", "-z", "--index-info", stdin="".join(e + "\0" for e in outcome.index))


# --- the command -----------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console()
    deployments: Path = args.deployments
    if not deployments.is_dir():
        Console(stderr=True).print(
            f"[red]{deployments} is not a folder.[/] Give the federation's "
            "deployments/ folder, which holds one folder per hub."
        )
        return 2
    if args.jobs < 1:
        Console(stderr=True).print(f"[red]--jobs {args.jobs}:[/] give 1 or more hubs at once.")
        return 2
    hubs = find_hubs(deployments)
    if not hubs:
        Console(stderr=True).print(
            f"[red]No hub in {deployments}:[/] no subfolder has a "
            f"{ANSWERS_FILE}. Hubs made with `copier copy` from hub-template have one."
        )
        return 2
    federation_template, ambiguous = trusted(hubs, args.template, args.allow_template)
    if ambiguous:
        Console(stderr=True).print(f"[red]{ambiguous}[/]")
        return 2
    refused = {hub.path: refusal(hub, federation_template, args.allow_template) for hub in hubs}

    with tempfile.TemporaryDirectory(prefix="hub-template-update.") as scratch:
        sources: dict[str | None, TemplateSource] = {}  # by hub.src; a hub without one finds None
        for hub in hubs:
            if hub.src and hub.src not in sources and not refused[hub.path]:
                sources[hub.src] = TemplateSource(hub.src)
                sources[hub.src].fetch(Path(scratch) / f"template-{len(sources)}.git", args.vcs_ref)
        if args.check:
            results = [check_hub(hub, sources.get(hub.src), refused[hub.path]) for hub in hubs]
        else:
            dirty = statuses(hubs)
            planned = {
                hub.path: plan_hub(hub, sources.get(hub.src), args.vcs_ref, dirty[hub.path], refused[hub.path])
                for hub in hubs
            }
            rewrites = [pair for source in sources.values() for pair in source.rewrites()]
            try:
                if all(planned.values()):  # nothing for copier: neither it nor the display is loaded
                    results = [result for result in planned.values() if result is not None]
                else:
                    with sigterm_as_interrupt(), git_config(rewrites):
                        results = _update_all(hubs, planned, args.vcs_ref, Path(scratch), args.jobs)
            except KeyboardInterrupt:
                Console(stderr=True).print(
                    "[red]Interrupted.[/] The hub being updated is restored as it was; "
                    "hubs updated before it keep their update."
                )
                return 130

    _summary(console, results, args.check, federation_template)
    bad = {BEHIND, FAILED, REFUSED} if args.check else {CONFLICTS, FAILED, REFUSED}
    return 1 if any(r.status in bad for r in results) else 0


def _update_all(
    hubs: list[FederationHub], planned: dict[Path, Result | None], vcs_ref: str | None, scratch: Path, jobs: int
) -> list[Result]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    todo = [hub for hub in hubs if planned[hub.path] is None]
    results = {path: result for path, result in planned.items() if result is not None}
    # The display writes to a copy of stderr, which copier's output never reaches.
    display = os.fdopen(os.dup(2), "w", buffering=1)
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(file=display),
            transient=True,
        ) as progress:
            task = progress.add_task("updating", total=len(todo))

            def done(hub: FederationHub, result: Result) -> None:
                results[hub.path] = result
                progress.console.print(f"{hub.name}: [{STYLES[result.status]}]{result.status}[/]")
                progress.advance(task)

            if jobs == 1 or len(todo) <= 1 or not _in_worktrees(todo, vcs_ref, scratch, min(jobs, len(todo)), done):
                _in_place(todo, vcs_ref, scratch, progress, task, done)
    finally:
        display.close()
    return [results[hub.path] for hub in hubs]


# Records a hub's result as soon as it is known.
Done = Callable[["FederationHub", "Result"], None]


def _in_place(
    todo: list[FederationHub], vcs_ref: str | None, scratch: Path, progress: Progress, task: TaskID, done: Done
) -> None:
    """One hub after the other, in the federation's checkout."""
    parked = ParkedEntries()
    try:
        for hub in todo:
            assert hub.top is not None
            progress.update(task, description=f"updating [bold]{hub.name}[/]")
            done(hub, update_hub(hub, hub.path, hub.top, vcs_ref, scratch / "copier.log", parked))
    finally:
        parked.restore_all()


def _in_worktrees(todo: list[FederationHub], vcs_ref: str | None, scratch: Path, jobs: int, done: Done) -> bool:
    """`jobs` processes, forked from this one (copier already imported), each
    updating in its own worktrees; each result is written back here."""
    import multiprocessing

    import copier  # noqa: F401 - imported once, before the fork

    context = multiprocessing.get_context("fork")
    slots = context.SimpleQueue()
    for slot in range(jobs):
        slots.put(slot)
    by_name = {hub.name: hub for hub in todo}  # folders of one deployments/: unique
    trees: dict[int, dict[Path, Path]] = {}
    pool = None
    try:
        try:
            add_worktrees(sorted({hub.top for hub in todo if hub.top is not None}), jobs, scratch, trees)
        except subprocess.CalledProcessError:
            return False  # no worktree (an old git, a full disk): one hub at a time, in place
        pool = context.Pool(jobs, initializer=Worker.start, initargs=(slots, trees, scratch))
        for outcome in pool.imap_unordered(update_in_worktree, [(hub, vcs_ref) for hub in todo]):
            hub = by_name[outcome.result.hub]
            with uninterrupted():
                if outcome.files is not None:
                    write_back(hub, outcome)
                done(hub, outcome.result)
        pool.close()
        return True
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        remove_worktrees(trees)


def _summary(console: Console, results: list[Result], check: bool, federation_template: str | None) -> None:
    from rich.table import Table

    title = "hub-template update --check: each hub against the newest release" if check else "hub-template update"
    table = Table(
        title=title, caption=f"the federation's template: {federation_template}" if federation_template else None
    )
    table.add_column("hub", no_wrap=True)
    table.add_column("from", no_wrap=True)
    table.add_column("newest" if check else "to", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("notes", overflow="fold")
    table.add_column("template", overflow="fold")
    for r in results:
        table.add_row(r.hub, r.before, r.after, f"[{STYLES[r.status]}]{r.status}[/]", "\n".join(r.notes), r.src)
    console.print(table)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    console.print(", ".join(f"{n} {status}" for status, n in counts.items()))
