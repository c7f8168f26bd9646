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
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import yaml
from packaging.version import InvalidVersion, Version

ANSWERS_FILE = ".copier-answers.yml"

CURRENT, BEHIND, UPDATED, CONFLICTS, FAILED, DIRTY = (
    "current", "behind", "updated", "conflicts", "failed", "skipped dirty",
)
STYLES = {CURRENT: "green", UPDATED: "green", BEHIND: "yellow", DIRTY: "yellow",
          CONFLICTS: "red", FAILED: "red"}
# copier's shortcuts for hosted repositories (copier's docs, "Templates").
SHORTCUTS = {"gh:": "https://github.com/", "gl:": "https://gitlab.com/"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("deployments", type=Path, metavar="DEPLOYMENTS_DIR",
                        help="the federation's deployments/ folder, one hub per subfolder")
    parser.add_argument("--check", action="store_true",
                        help="change nothing: report each hub's version against the newest; "
                             "exit 1 when any hub is behind")
    parser.add_argument("--vcs-ref", metavar="REF",
                        help="update to this tag, branch or commit of the template instead of "
                             "its newest release")


# --- what the federation holds --------------------------------------------------


@dataclass
class Hub:
    name: str
    path: Path
    src: str | None  # `_src_path`, as copier recorded it
    commit: str | None  # `_commit`: the template version it was last rendered from
    problem: str | None = None


@dataclass
class Result:
    hub: str
    before: str
    after: str
    status: str
    notes: list[str] = field(default_factory=list)


def find_hubs(deployments: Path) -> list[Hub]:
    hubs = []
    for answers_file in sorted(deployments.glob(f"*/{ANSWERS_FILE}")):
        hub = Hub(answers_file.parent.name, answers_file.parent.resolve(), None, None)
        try:
            answers = yaml.safe_load(answers_file.read_text())
        except (OSError, yaml.YAMLError) as error:
            answers, hub.problem = None, f"{ANSWERS_FILE} is not readable YAML: {error}"
        if isinstance(answers, dict):
            hub.src, hub.commit = (str(answers[k]) if answers.get(k) else None for k in ("_src_path", "_commit"))
            if not (hub.src and hub.commit):
                hub.problem = (f"{ANSWERS_FILE} has no _src_path or _commit: the hub was not "
                               "rendered by copier from a git template, so it cannot be updated")
        elif not hub.problem:
            hub.problem = f"{ANSWERS_FILE} is not a mapping of answers"
        hubs.append(hub)
    return hubs


def commit_version(commit: str | None) -> Version | None:
    """The PEP 440 version copier gives a `_commit`: a tag like `v1.2.0`, or
    `v1.2.0-3-gabc1234` for a commit after it (copier's own reading)."""
    if not commit:
        return None
    with contextlib.suppress(InvalidVersion):
        return Version(commit)
    match = re.fullmatch(r"(.+)-(\d+)-g([0-9a-f]+)", commit)
    if match:
        with contextlib.suppress(InvalidVersion):
            return Version(f"{match[1]}.post{match[2]}+g{match[3]}")
    return None


# --- template sources: one mirror each ---------------------------------------------


def git_url(src: str) -> str:
    """The URL git is given for `src`, expanded as copier expands it."""
    for short, base in SHORTCUTS.items():
        if src.startswith(short):
            src = base + src[len(short):].lstrip("/")
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
class Source:
    """A template source, fetched once into a bare mirror."""

    src: str
    mirror: Path | None = None
    error: str | None = None
    newest: str | None = None  # the tag (or --vcs-ref's description) hubs go to

    def fetch(self, into: Path, vcs_ref: str | None) -> None:
        done = subprocess.run(["git", "clone", "--mirror", "--quiet", "--", git_url(self.src), str(into)],
                              capture_output=True, text=True)
        if done.returncode:
            lines = done.stderr.strip().splitlines() or ["git clone failed"]
            reason = next((line for line in lines if line.startswith("fatal:")), lines[-1])
            self.error = f"cannot read the template {self.src}: {reason}"
            return
        self.mirror = into
        self.newest = describe(into, vcs_ref) if vcs_ref else newest_tag(into)
        if self.newest is None:
            self.error = (f"the template {self.src} has no release tag" if not vcs_ref
                          else f"the template {self.src} has no {vcs_ref!r}")

    def rewrites(self) -> list[tuple[str, str]]:
        """`url.<mirror>.insteadOf` pairs sending git to the mirror for this
        source. Local sources are read in place (git rewrites URLs, not paths
        it can open)."""
        if self.mirror is None or is_local(self.src):
            return []
        urls = {self.src, git_url(self.src)}
        return [(f"url.{self.mirror.as_uri()}.insteadOf", url) for url in sorted(urls)]


def newest_tag(mirror: Path) -> str | None:
    """The highest PEP 440 release tag, as copier picks it (no pre-releases)."""
    tags = subprocess.run(["git", f"--git-dir={mirror}", "tag", "--list"],
                          check=True, capture_output=True, text=True).stdout.split()
    versions = {}
    for tag in tags:
        with contextlib.suppress(InvalidVersion):
            version = Version(tag)
            if not version.is_prerelease:
                versions[version] = tag
    return versions[max(versions)] if versions else None


def describe(mirror: Path, ref: str) -> str | None:
    done = subprocess.run(["git", f"--git-dir={mirror}", "describe", "--tags", "--always", "--end-of-options", ref],
                          capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


@contextlib.contextmanager
def git_config(pairs: list[tuple[str, str]]) -> Iterator[None]:
    """Add git configuration for every git copier starts (os.environ, and
    plumbum's copy of it, which copier's git commands use), after any
    GIT_CONFIG_* entries already set."""
    from plumbum import local

    def extended(env) -> dict[str, str]:
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


# --- one hub ---------------------------------------------------------------------


def repo_top(hub: Path) -> Path | None:
    done = subprocess.run(["git", "-C", str(hub), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    return Path(done.stdout.strip()) if done.returncode == 0 else None


def git_in(top: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(top), *args], check=True, capture_output=True, text=True).stdout


def untracked(top: Path, hub: Path) -> set[str]:
    """Files under the hub git does not track, ignored ones included."""
    out = git_in(top, "ls-files", "--others", "-z", "--", str(hub.relative_to(top)))
    return {p for p in out.split("\0") if p}


def status(top: Path, hub: Path) -> list[str]:
    """`git status --porcelain` entries ("XY path") for the hub's files."""
    out = git_in(top, "status", "--porcelain", "-z", "--no-renames", "--", str(hub.relative_to(top)))
    return [entry for entry in out.split("\0") if entry]


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


class ParkedConflicts:
    """Unmerged index entries, set aside while other hubs update.

    copier records a conflict as unmerged index entries (so `git status` says
    "both modified"), and its next update anywhere in the repository fails on
    them (`git write-tree`). So conflicts, whether left by an earlier update or
    by this run, are parked: their index entries go back to HEAD while the
    other hubs update (the files keep their markers), and `restore_all` puts
    them back exactly as copier left them.
    """

    def __init__(self) -> None:
        self.entries: dict[Path, list[str]] = {}

    def park(self, top: Path, *paths: str) -> None:
        found = [e for e in git_in(top, "ls-files", "-u", "-z", "--", *paths).split("\0") if e]
        if found:
            self.entries.setdefault(top, []).extend(found)
            git_in(top, "restore", "--staged", "--", *sorted({e.split("\t", 1)[1] for e in found}))

    def restore_all(self) -> None:
        for top, entries in self.entries.items():
            null = "0" * len(entries[0].split()[1])
            # First drop the entry `park` took from HEAD, then copier's stages.
            records = [f"0 {null}\t{path}" for path in sorted({e.split("\t", 1)[1] for e in entries})]
            records.extend(entries)
            subprocess.run(["git", "-C", str(top), "update-index", "-z", "--index-info"],
                           input="\0".join(records) + "\0", check=True, capture_output=True, text=True)
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


def update_hub(hub: Hub, source: Source | None, vcs_ref: str | None, log: Path,
               parked: ParkedConflicts) -> Result:
    from copier import run_update

    result = Result(hub.name, hub.commit or "?", hub.commit or "?", FAILED)
    if hub.problem or source is None:
        result.notes.append(hub.problem or "no template source")
        return result
    if source.error:
        result.notes.append(source.error)
        return result
    top = repo_top(hub.path)
    if top is None:
        result.notes.append("not in a git repository: copier updates only hubs tracked by git")
        return result
    parked.park(top)  # conflicts left anywhere in the repository
    dirty = status(top, hub.path)
    if dirty:
        result.status = DIRTY
        inside = hub.path.relative_to(top)
        shown = ", ".join(str(Path(line[3:]).relative_to(inside)) for line in dirty[:3])
        shown += ", ..." if len(dirty) > 3 else ""
        result.notes.append(f"uncommitted changes ({shown}): commit or stash them, then update again")
        return result
    before, newest = commit_version(hub.commit), commit_version(source.newest)
    if not vcs_ref and before is not None and newest is not None and before >= newest:
        result.status = CURRENT
        return result

    untracked_before = untracked(top, hub.path)
    log.write_text("")
    try:
        with captured_output(log):
            run_update(str(hub.path), vcs_ref=vcs_ref, defaults=True, overwrite=True,
                       unsafe=True, quiet=True)
    except KeyboardInterrupt:
        restore(top, hub.path, untracked_before)
        raise
    except Exception as error:  # noqa: BLE001 - any failure fails this hub only
        restore(top, hub.path, untracked_before)
        left = status(top, hub.path)
        result.notes.append(_error_message(error, log))
        result.notes.append(f"could not restore everything, check: {', '.join(left)}" if left
                            else "the hub is restored as it was")
        return result

    result.after = _read_commit(hub.path) or "?"
    result.notes.extend(line for line in log.read_text().splitlines() if line.startswith("migration "))
    clashes = conflicts(top, hub.path)
    if clashes:
        result.status = CONFLICTS
        parked.park(top, str(hub.path.relative_to(top)))
        result.notes.append("resolve the conflict markers in: " + ", ".join(
            str(Path(p).relative_to(hub.path.relative_to(top))) for p in clashes))
    else:
        result.status = UPDATED if status(top, hub.path) else CURRENT
    return result


def _read_commit(hub: Path) -> str | None:
    with contextlib.suppress(OSError, yaml.YAMLError, AttributeError):
        return yaml.safe_load((hub / ANSWERS_FILE).read_text()).get("_commit")
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


def check_hub(hub: Hub, source: Source | None) -> Result:
    result = Result(hub.name, hub.commit or "?", "?", FAILED)
    if hub.problem or source is None:
        result.notes.append(hub.problem or "no template source")
    elif source.error:
        result.notes.append(source.error)
    else:
        result.after = source.newest or "?"
        before, newest = commit_version(hub.commit), commit_version(source.newest)
        if before is None or newest is None:
            result.notes.append(f"cannot compare {hub.commit!r} with {source.newest!r} as versions")
        else:
            result.status = CURRENT if before >= newest else BEHIND
    return result


# --- the command -----------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console()
    deployments: Path = args.deployments
    if not deployments.is_dir():
        Console(stderr=True).print(f"[red]{deployments} is not a folder.[/] Give the federation's "
                                   "deployments/ folder, which holds one folder per hub.")
        return 2
    hubs = find_hubs(deployments)
    if not hubs:
        Console(stderr=True).print(f"[red]No hub in {deployments}:[/] no subfolder has a "
                                   f"{ANSWERS_FILE}. Hubs made with `copier copy` from hub-template have one.")
        return 2

    with tempfile.TemporaryDirectory(prefix="hub-template-update.") as scratch:
        sources: dict[str, Source] = {}
        for hub in hubs:
            if hub.src and hub.src not in sources:
                sources[hub.src] = Source(hub.src)
                sources[hub.src].fetch(Path(scratch) / f"template-{len(sources)}.git", args.vcs_ref)
        if args.check:
            results = [check_hub(hub, sources.get(hub.src)) for hub in hubs]
        else:
            rewrites = [pair for source in sources.values() for pair in source.rewrites()]
            try:
                with git_config(rewrites):
                    results = _update_all(hubs, sources, args.vcs_ref, Path(scratch) / "copier.log")
            except KeyboardInterrupt:
                Console(stderr=True).print("[red]Interrupted.[/] The hub being updated is restored as it was; "
                                           "hubs updated before it keep their update.")
                return 130

    _summary(console, results, args.check)
    bad = {BEHIND, FAILED} if args.check else {CONFLICTS, FAILED}
    return 1 if any(r.status in bad for r in results) else 0


def _update_all(hubs: list[Hub], sources: dict[str, Source], vcs_ref: str | None, log: Path) -> list[Result]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    # The display writes to a copy of stderr, which copier's output never reaches.
    display = os.fdopen(os.dup(2), "w", buffering=1)
    parked = ParkedConflicts()
    results = []
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(),
                      console=Console(file=display), transient=True) as progress:
            task = progress.add_task("updating", total=len(hubs))
            for hub in hubs:
                progress.update(task, description=f"updating [bold]{hub.name}[/]")
                result = update_hub(hub, sources.get(hub.src), vcs_ref, log, parked)
                results.append(result)
                progress.console.print(f"{hub.name}: [{STYLES[result.status]}]{result.status}[/]")
                progress.advance(task)
    finally:
        parked.restore_all()
        display.close()
    return results


def _summary(console, results: list[Result], check: bool) -> None:
    from rich.table import Table

    table = Table(title="hub-template " + ("check" if check else "update"))
    table.add_column("hub", no_wrap=True)
    table.add_column("from", no_wrap=True)
    table.add_column("newest" if check else "to", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("notes", overflow="fold")
    for r in results:
        table.add_row(r.hub, r.before, r.after, f"[{STYLES[r.status]}]{r.status}[/]", "\n".join(r.notes))
    console.print(table)
    counts = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    console.print(", ".join(f"{n} {status}" for status, n in counts.items()))
