"""Image: the hub's own notebooks read against its environment, offline and
without running a cell (notebook_scan, which the source import also uses):
the modules they import that no package of the image provides (IM012), and
the APIs they call that the image's versions removed (IM013)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import notebook_scan
from ..environment import SpecError, meets, read_environment
from ..helm_values import Problem
from ..lock import LOCK, read_lock
from .base import Image, Skip, code, report
from .hub import Hub
from .image import environment

DEFAULT_NOTEBOOKS = "no notebook in image/"


@dataclass(frozen=True)
class Packages:
    """What the image installs, as far as its files say."""

    names: list[str]  # every package named: the image's base, environment.yml, the lock
    constraints: dict[str, str]  # conda name (lower case) -> what bounds its version
    source: str  # says where the names come from, in messages
    problem: str = ""  # why they cannot be read


def notebooks(hub: Hub) -> dict[str, str]:
    """image/'s notebooks (hub-relative path -> text); never a link, never too large."""
    found = {rel: hub.text(rel) for rel in hub.files if rel.startswith("image/") and rel.endswith(".ipynb")}
    return {rel: text for rel, text in found.items() if text is not None}


def packages(hub: Hub) -> Packages:
    return hub.memo("notebook_packages", _packages)


def _packages(hub: Hub) -> Packages:
    rel = environment(hub).rel
    base = [str(name) for name in hub.versions.get("image_base", {})]
    text = hub.text(rel)
    if text is None:
        return Packages([], {}, rel, f"{rel} is missing (ST001)")
    try:
        env = read_environment(text, rel)
    except SpecError:
        return Packages([], {}, rel, f"{rel} has specs that do not parse (IM002)")
    names = [*base, *(spec.name for spec in env.conda), *(spec.name for spec in env.pip)]
    constraints = {spec.key: spec.constraint for spec in env.conda}
    lock_text = hub.text(str(LOCK))
    if lock_text is None:
        return Packages(names, constraints, f"{rel} (or the image's base)")
    # The lock names every package the image holds, and the version of each.
    locked = read_lock(lock_text).versions
    constraints.update({name.lower(): f"=={version}" for name, version in locked.items()})
    return Packages([*names, *locked], constraints, f"{LOCK} (what the image holds)")


class IM012(Image):
    "The notebooks import only modules the image's packages provide"

    requires = frozenset({"IM010"})

    def run(self, hub: Hub) -> str | Skip:
        found = notebooks(hub)
        if not found:
            return self.skip(DEFAULT_NOTEBOOKS)
        image = packages(hub)
        if image.problem:
            return self.skip(image.problem)
        local = notebook_scan.local_modules(rel.removeprefix("image/") for rel in hub.files if rel.startswith("image/"))
        unnamed = notebook_scan.unnamed_imports(found, image.names, local)
        return report(
            Problem(
                f.notebook,
                None,
                f"cell {f.cell} imports {code(f.what)}, which no package of {image.source} is named after: "
                f"the cell fails with `No module named {f.what!r}` unless another package brings it. "
                f"Add the package that provides it to {environment(hub).rel}, or remove the import.",
            )
            for f in unnamed
        )


class IM013(Image):
    "The notebooks call no API the image's versions removed"

    requires = frozenset({"IM010"})

    def run(self, hub: Hub) -> str | Skip:
        found = notebooks(hub)
        if not found:
            return self.skip(DEFAULT_NOTEBOOKS)
        image = packages(hub)
        problems = [
            Problem(finding.notebook, None, f"cell {finding.cell} calls {code(api.shows)}: {api.why}.")
            for finding, api in notebook_scan.removed_apis(found)
            # Gone unless the image's pin (or lock) holds the package below the removal.
            if meets(image.constraints.get(api.package, ""), f">={api.removed_in}")
        ]
        return report(problems)


CHECKS = (IM012, IM013)
