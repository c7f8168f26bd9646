"""The checks' repo-review fixtures (entry points in pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

from .hub import ChartSource, Hub


def hub(root) -> Hub:
    """The hub folder under review (repo-review's ``root``; a remote one is no hub)."""
    return Hub(Path(root)) if isinstance(root, Path) else Hub(None)


def chart() -> ChartSource:
    """The daskhub chart: the `repo-review` command cannot give one (`hub-template
    check --chart` can), so the checks that need it skip there."""
    return ChartSource(None)
