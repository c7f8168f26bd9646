"""copier.yml's own settings that Python needs too (the answers file's name),
read from copier.yml itself so that the two cannot drift.

Runs in copier's interpreter (the migrations): standard library and pyyaml.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from . import load_trusted_yaml


def template_root() -> Path | None:
    """The folder holding copier.yml and template/: in a source checkout and
    in copier's clone the repository root, in an installed wheel
    hub_template/_template (see pyproject.toml, ``force-include``)."""
    package = Path(__file__).resolve().parent
    for root in (package / "_template", package.parents[1]):
        if (root / "copier.yml").is_file() and (root / "template").is_dir():
            return root
    return None


def installed_template_root() -> Path:
    """template_root(), for code that cannot go on without copier.yml and
    template/ (FileNotFoundError when they are not installed beside it)."""
    root = template_root()
    if root is None:
        raise FileNotFoundError("hub-template's copier.yml is not installed beside its code")
    return root


@cache
def settings() -> dict[str, Any]:
    """copier.yml, parsed."""
    parsed: dict[str, Any] = load_trusted_yaml(installed_template_root() / "copier.yml")
    return parsed


# Where copier records a hub's answers, in the hub's folder (`_answers_file`).
ANSWERS_FILE: str = settings()["_answers_file"]
