"""What a release tells each hub it reaches, read from the template itself
at that release (its mirror): the answers the update added that are still
stand-ins (copier.yml, hub_template.stand_ins), and the behaviour changes
CHANGELOG.md marks for each release crossed.

The marker, the one this module reads: under a release's `## <version>`
heading, a `### Behaviour changes` heading whose bullets are the changes a
hub's behaviour sees on update (what it deploys, what its answers still
do). Each bullet is printed whole in the update's summary.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import yaml
from packaging.version import InvalidVersion, Version

from ..stand_ins import read_stand_ins
from .hubs import BEHIND, CONFLICTS, UPDATED, FederationHub, Result
from .sources import TemplateSource, commit_version

if TYPE_CHECKING:
    from pathlib import Path

CHANGELOG = "CHANGELOG.md"
BEHAVIOUR_HEADING = "### Behaviour changes"


def behaviour_changes(changelog: str, before: Version, after: Version) -> list[tuple[str, str]]:
    """(release, change) for each bullet under `### Behaviour changes` of the
    releases after `before` up to `after`, oldest release first."""
    found: list[tuple[Version, str, str]] = []
    release: Version | None = None
    marked = False
    for line in changelog.splitlines():
        if line.startswith("## "):
            try:
                release = Version(line[3:].strip())
            except InvalidVersion:
                release = None
            marked = False
        elif line.startswith("### "):
            marked = line.strip() == BEHAVIOUR_HEADING
        elif marked and release is not None and before < release <= after:
            if line.startswith("- "):
                found.append((release, str(release), line[2:].strip()))
            elif line.startswith("  ") and line.strip() and found and found[-1][0] == release:
                version, name, text = found[-1]
                found[-1] = (version, name, f"{text} {line.strip()}")
    return [(name, text) for _, name, text in sorted(found, key=lambda item: item[0])]


def annotate(result: Result, hub: FederationHub, source: TemplateSource | None) -> None:
    """Add to an updated (or, with --check, behind) hub's notes the answers
    the update added, those still a stand-in, and the behaviour changes of
    the releases crossed."""
    if source is None or source.mirror is None or result.status not in (UPDATED, CONFLICTS, BEHIND):
        return
    if result.added:
        result.notes.append("answers added: " + ", ".join(sorted(result.added)))
    stand_ins = _stand_ins(source.show(result.after, "copier.yml") or "") if result.added else {}
    folder = _folder(hub)
    for name, value in sorted(result.added.items()):
        if name in stand_ins and str(value) == stand_ins[name]:
            result.notes.append(
                f"added with a stand-in: {name}, not a real id; check (ST006) and plan-deploy refuse the "
                f"hub until it is answered: cd {folder} && copier update --trust --defaults --data {name}=..."
            )
    before, after = commit_version(result.before), commit_version(result.after)
    changelog = source.show(result.after, CHANGELOG)
    if before is None or after is None or not changelog:
        return
    for release, change in behaviour_changes(changelog, before, after):
        result.notes.append(f"behaviour change {release}: {change}")


@cache
def _stand_ins(copier_yml: str) -> dict[str, str]:
    """A release's stand-ins, parsed once per release however many hubs it reaches."""
    questions = yaml.safe_load(copier_yml) or {}
    return read_stand_ins(questions) if isinstance(questions, dict) else {}


def _folder(hub: FederationHub) -> Path | str:
    return hub.path.relative_to(hub.top) if hub.top else hub.path
