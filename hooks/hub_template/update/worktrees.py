"""Hubs in parallel: each worker process updates in its own git worktree of
HEAD and hands back the hub's files and index entries, which the parent
writes into the federation's checkout one hub at a time."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from .hubs import CONFLICTS, FAILED, UPDATED, FederationHub, Result
from .one_hub import error_message, update_hub
from .repository import ParkedEntries, git_in, repository, untracked

if TYPE_CHECKING:
    from multiprocessing.queues import SimpleQueue


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
            git_in(top, "worktree", "add", "--quiet", "--detach", str(tree), "HEAD")  # no hook runs (git_runner)
            trees.setdefault(slot, {})[top] = tree


def remove_worktrees(trees: dict[int, dict[Path, Path]]) -> None:
    for by_top in trees.values():
        for top, tree in by_top.items():
            removed = repository(top).run("worktree", "remove", "--force", "--force", str(tree))
            if removed.returncode and tree.exists():  # a worker stopped inside a git command
                shutil.rmtree(tree, ignore_errors=True)
                repository(top).run("worktree", "prune")


def update_in_worktree(task: tuple[FederationHub, str | None, dict[str, str]]) -> Outcome:
    hub, vcs_ref, data = task
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
        result = update_hub(hub, path, tree, vcs_ref, Worker.log, parked, data)
        parked.restore_all()  # the conflict's stages are part of what goes back
        outcome = Outcome(result)
        if result.status in (UPDATED, CONFLICTS):
            outcome.files = read_tree(path)
            outcome.index = [e for e in git_in(tree, "ls-files", "-s", "-z", "--", str(rel)).split("\0") if e]
        return outcome
    except (OSError, subprocess.CalledProcessError) as error:  # the worktree, not the hub: nothing written back
        result = Result(hub.name, hub.commit or "?", hub.commit or "?", FAILED, src=hub.src or "")
        result.notes += [f"the update's worktree failed: {error_message(error, Worker.log)}", "the hub is as it was"]
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
