"""The checks' repo-review fixtures (entry points in pyproject.toml)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .hub import ChartSource, Hub

if TYPE_CHECKING:
    from importlib.abc import Traversable


def hub(root: Traversable) -> Hub:
    """The hub folder under review (repo-review's ``root``; a remote one is no hub)."""
    return Hub(Path(root)) if isinstance(root, Path) else Hub(None)


def chart() -> ChartSource:
    """The daskhub chart: the `repo-review` command cannot give one (`hub-template
    check --chart` can), so the checks that need it skip there."""
    return ChartSource(None)
