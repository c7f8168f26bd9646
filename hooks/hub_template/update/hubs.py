"""What the federation holds: a hub per folder of deployments/ with an
answers file, and the result of checking or updating each."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .. import git_runner
from ..copier_settings import ANSWERS_FILE
from .repository import repo_top

CURRENT, BEHIND, UPDATED, CONFLICTS, FAILED, DIRTY, REFUSED = (
    "current",
    "behind",
    "updated",
    "conflicts",
    "failed",
    "skipped dirty",
    "refused",
)


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
    added: dict[str, object] = field(default_factory=dict)  # answers the update recorded that the hub had not


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


def git_dir_refusal(hub: FederationHub) -> str | None:
    """Why a hub holding a folder laid out as a git directory (in it, or
    between it and its repository's top) is not updated: copier's own git
    searches upwards from the hub and would take that folder for the
    repository. hub-template's git never does (git_runner); ST008 says the same."""
    if hub.top is None:
        return None
    found = git_runner.git_dir_layouts(hub.path)
    found += [f for f in hub.path.parents if hub.top in f.parents and git_runner.looks_like_git_dir(f)]
    if not found:
        return None
    shown = ", ".join(f"{f.relative_to(hub.top)}/" for f in sorted(found))
    return (
        f"{shown} holds HEAD, objects/ and refs/: git would take it for a repository and run "
        "what its config says (ST008); remove them with `git rm -r`, then update"
    )
