"""What an existing hub needs when `copier update` takes it across a version.

copier runs `hooks/run.py migrate` before and after every update (see
`_migrations` in copier.yml), in the hub's folder, with $STAGE and the
versions on each side. Each function below is registered, with `@migration`,
for the template version that introduced the change; it runs once, when an
update crosses that version, in version order.

- "before" migrations run before the new version renders: rename or convert
  answers in the answers file, so the new questions find them.
- "after" migrations run once the new version is rendered: move values the
  hub added by hand in files whose layout changed (e.g. helm values after a
  chart upgrade).

Runs in copier's interpreter: standard library, pyyaml, packaging only.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from packaging.version import Version

Stage = Literal["before", "after"]
ANSWERS_FILE = ".copier-answers.yml"


@dataclass(frozen=True)
class Migration:
    version: Version
    stage: Stage
    run: Callable[[Path], str | None]  # returns what it did, or None if nothing

    @property
    def name(self) -> str:
        return self.run.__name__


MIGRATIONS: list[Migration] = []


def migration(version: str, stage: Stage = "before"):
    """Register a migration for hubs updating from before `version`."""

    def register(func: Callable[[Path], str | None]) -> Callable[[Path], str | None]:
        MIGRATIONS.append(Migration(Version(version), stage, func))
        return func

    return register


def pending(version_from: Version, version_to: Version, stage: Stage) -> list[Migration]:
    """Migrations an update from `version_from` to `version_to` crosses, in order."""
    return sorted(
        (m for m in MIGRATIONS if m.stage == stage and version_from < m.version <= version_to),
        key=lambda m: m.version,
    )


def run(hub: Path, version_from: Version, version_to: Version, stage: Stage) -> list[str]:
    done = []
    for m in pending(version_from, version_to, stage):
        what = m.run(hub)
        done.append(f"migration {m.version} ({m.name}): {what or 'nothing to change'}")
    return done


# --- helpers for writing migrations ------------------------------------------


def rename_answer(hub: Path, old: str, new: str) -> str | None:
    """Rename a top-level answer in the answers file, keeping everything else."""
    path = hub / ANSWERS_FILE
    text = path.read_text()
    if re.search(rf"^{re.escape(new)}:", text, flags=re.M):
        return None
    renamed, count = re.subn(rf"^{re.escape(old)}:", f"{new}:", text, flags=re.M)
    if not count:
        return None
    path.write_text(renamed)
    return f"answer '{old}' is now '{new}'"


# --- the migrations ------------------------------------------------------------


@migration("1.1.0")
def rename_provider_to_cloud_provider(hub: Path) -> str | None:
    """1.1.0 renamed the `provider` answer `cloud_provider`: `provider` was
    easily confused with hubploy's own `provider` values (gcloud, aws, azure).
    Without this, an update would fall back to the default provider."""
    return rename_answer(hub, "provider", "cloud_provider")


# --- entry point -----------------------------------------------------------------


def main(argv: list[str]) -> int:
    stage = os.environ.get("STAGE")
    try:
        version_from = Version(os.environ["VERSION_PEP440_FROM"])
        version_to = Version(os.environ["VERSION_PEP440_TO"])
    except KeyError as missing:
        print(f"migrate: copier did not set {missing}; run it through `copier update`.", file=sys.stderr)
        return 2
    if stage not in ("before", "after"):
        print(f"migrate: unknown stage {stage!r}", file=sys.stderr)
        return 2
    for line in run(Path.cwd(), version_from, version_to, stage):
        print(line, file=sys.stderr)
    return 0
