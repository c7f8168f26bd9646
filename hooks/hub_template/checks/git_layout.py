"""ST008: no folder of the hub, nor deployments/ above it, is laid out as a
git directory. git takes such a folder for a repository when it searches
upwards from inside (`git status` in the hub, `copier update`), and runs the
command its config names (`core.fsmonitor`). hub-template's own git never
searches (git_runner); this check tells the operators before theirs does."""

from __future__ import annotations

from ..git_runner import git_dir_layouts, looks_like_git_dir
from ..helm_values import Problem
from .base import Structure, report
from .hub import Hub


class ST008(Structure):
    "No folder of the hub is laid out as a git directory"

    def run(self, hub: Hub) -> str:
        top = hub.git.top if hub.git else hub.folder.parent
        found = git_dir_layouts(hub.folder)
        # The folders between the hub and its repository, which git's search passes too.
        found += [folder for folder in hub.folder.parents if top in folder.parents and looks_like_git_dir(folder)]
        return report(
            Problem(
                f"{folder.relative_to(top)}/",
                None,
                "holds HEAD, objects/ and refs/ (or a commondir): git takes the folder for a repository "
                "and runs what its config says; remove them with `git rm -r`.",
            )
            for folder in sorted(found)
        )


CHECKS = (ST008,)
