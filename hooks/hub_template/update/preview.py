"""`hub-template update --check --diff`: what an update would change in each
hub that is behind, as a unified diff, computed by updating the hub in a
scratch worktree of HEAD (its ignored files copied in, as for a parallel
update) and diffing there. The federation's checkout, the hub included, is
never written; every git command goes through the hardened runner."""

from __future__ import annotations

import shutil
from pathlib import Path

from .hubs import BEHIND, CONFLICTS, UPDATED, FederationHub, Result
from .one_hub import update_hub
from .repository import ParkedEntries, copier_git, git_in, untracked
from .worktrees import add_worktrees, remove_worktrees


def update_diffs(
    hubs: list[FederationHub],
    results: list[Result],
    vcs_ref: str | None,
    scratch: Path,
    rewrites: list[tuple[str, str]],
    data: dict[str, str] | None = None,
) -> dict[str, str]:
    """Hub name -> the diff its update would make (paths from the hub's
    folder), for each hub `--check` found behind; a hub whose update fails
    gets its failure's notes instead."""
    behind = [hub for hub, result in zip(hubs, results, strict=True) if result.status == BEHIND and hub.top]
    if not behind:
        return {}
    trees: dict[int, dict[Path, Path]] = {}
    found = {}
    try:
        add_worktrees(sorted({hub.top for hub in behind if hub.top is not None}), 1, scratch, trees)
        with copier_git(rewrites):
            for hub in behind:
                assert hub.top is not None
                found[hub.name] = _diff_in(trees[0][hub.top], hub, vcs_ref, scratch / "copier.log", data)
    finally:
        remove_worktrees(trees)
    return found


def _diff_in(tree: Path, hub: FederationHub, vcs_ref: str | None, log: Path, data: dict[str, str] | None) -> str:
    assert hub.top is not None
    rel = str(hub.path.relative_to(hub.top))
    for name in untracked(hub.top, hub.path):  # the decrypted secrets an update may read
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(hub.top / name, tree / name, follow_symlinks=False)
    parked = ParkedEntries()
    try:
        result = update_hub(hub, tree / rel, tree, vcs_ref, log, parked, data)
        parked.restore_all()
        if result.status not in (UPDATED, CONFLICTS):
            return "\n".join(["the update would fail:", *result.notes]) + "\n"
        git_in(tree, "add", "-A", "--", rel)
        return git_in(
            tree, "diff", "--cached", "--no-color", "--no-ext-diff", "--no-textconv", f"--relative={rel}", "HEAD"
        )
    finally:
        git_in(tree, "read-tree", "--reset", "-u", "HEAD")
        git_in(tree, "clean", "-q", "-f", "-f", "-d", "-x", "--", rel)
