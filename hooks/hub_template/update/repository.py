"""Each hub's state in the federation's git repository (uncommitted
changes, conflicts, what an update created), put back as it was when an
update fails; and the git configuration every git copier starts sees."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .. import git_runner

if TYPE_CHECKING:
    from .hubs import FederationHub


@contextlib.contextmanager
def copier_git(rewrites: list[tuple[str, str]]) -> Iterator[None]:
    """Every git copier starts (through os.environ, and plumbum's copy of it,
    which copier's git commands use) runs hardened (git_runner.HARDENED: a
    folder of a hub laid out as a git directory is never read) and reads
    each template source from its mirror (`rewrites`)."""
    from plumbum import local

    pairs = [*git_runner.HARDENED, *rewrites]
    saved = dict(os.environ)
    os.environ.update(git_runner.config_entries(os.environ, pairs))
    try:
        with local.env(**git_runner.config_entries(local.env.getdict(), pairs)):
            yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def repository(top: Path) -> git_runner.Repository:
    """The checkout (or worktree) whose work tree is `top`, named to git."""
    return git_runner.Repository(top / ".git", top)


def repo_top(path: Path) -> Path | None:
    """The work tree of the repository holding `path`, found by its .git."""
    found = git_runner.repository_of(path)
    return found.top if found is not None else None


def git_in(top: Path, *args: str, stdin: str | None = None) -> str:
    """The output of a git command in the checkout `top`; CalledProcessError when it fails."""
    return repository(top).out(*args, input=stdin)


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
