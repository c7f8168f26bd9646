"""Run the hub checks on one hub with repo-review's engine.

Only hub-template's own checks run (other repo-review plugins installed beside
it are not asked), the chart comes from --chart, and a check that skips says
why.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

from repo_review.checks import is_allowed
from repo_review.fixtures import apply_fixtures, compute_fixtures, list_all, pyproject
from repo_review.processor import CollectionReturn, ProcessReturn, Result, process

from . import repo_review_checks, repo_review_families
from .base import HubCheck, Skip
from .fixtures import hub
from .hub import ChartSource


def _skip_slow_format_checkers() -> None:
    """jsonschema imports rfc3987_syntax for its "iri" format checker when it is
    installed (jupyter-events brings it); that import builds a grammar and costs
    about a second. The checker never checks formats, so a check run that
    imports jsonschema first leaves that module out."""
    if "jsonschema" not in sys.modules:
        # None in sys.modules makes the import fail: deliberate, typeshed allows modules only.
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


# Checks a hub's own pyproject.toml cannot switch off: those that keep secrets
# out of git in clear and the machine's files out of the tools' reach. A hub's
# `[tool.repo-review] ignore = ["SE"]` would otherwise make the pre-commit hook
# pass whatever is committed.
UNIGNORABLE = ("SE", "ST007", "ST008")


def unignorable(name: str) -> bool:
    return name in UNIGNORABLE or name.rstrip("0123456789") in UNIGNORABLE


def hub_pyproject(package: Any, names: AbstractSet[str]) -> dict[str, Any]:
    """repo-review's pyproject fixture, less the hub's ignores of UNIGNORABLE
    checks (a family ignore such as "ST" becomes its other checks)."""
    data: dict[str, Any] = pyproject(package)
    config = data.get("tool", {}).get("repo-review", {})
    ignore = config.get("ignore")
    if not ignore:
        return data
    kept: dict[str, str] = {}
    reasons = ignore if isinstance(ignore, dict) else dict.fromkeys(ignore, "")
    for entry, reason in reasons.items():
        covered = [n for n in sorted(names) if n == entry or n.rstrip("0123456789") == entry]
        if not any(unignorable(n) for n in covered):
            kept[entry] = reason
        else:
            kept.update(dict.fromkeys((n for n in covered if not unignorable(n)), reason))
    config["ignore"] = kept if isinstance(ignore, dict) else list(kept)
    return data


@functools.cache
def chart_source(directory: Path | None) -> ChartSource:
    """One per chart folder and process: the chart and its schemas are read
    once for every hub checked (and before the workers fork, by the command)."""
    return ChartSource(directory)


def _hub_pyproject_fixture(package: Any) -> dict[str, Any]:
    """The pyproject fixture (repo-review passes fixtures by parameter name)."""
    from . import CHECK_CLASSES

    return hub_pyproject(package, frozenset(cls.__name__ for cls in CHECK_CLASSES))


def run_checks(
    path: Path, chart: Path | None = None, select: frozenset[str] = frozenset(), ignore: frozenset[str] = frozenset()
) -> ProcessReturn:
    _skip_slow_format_checkers()
    root = Path(path).resolve()
    fixtures = compute_fixtures(
        root,
        root,
        {
            "list_all": list_all,
            # a hub's own pyproject.toml may set [tool.repo-review] select/ignore, but not ignore UNIGNORABLE
            "pyproject": _hub_pyproject_fixture,
            "hub": hub,
            "chart": lambda: chart_source(Path(chart).resolve() if chart else None),
        },
    )
    checks: dict[str, HubCheck] = selected(apply_fixtures(fixtures, repo_review_checks), select)
    families = apply_fixtures(fixtures, repo_review_families)
    reasons: dict[str, str] = {}  # this run's, by check: the checks themselves keep none
    telling = {name: _Telling(name, check, reasons) for name, check in checks.items()}
    families, results = process(
        root, select=select, ignore=ignore, collected=CollectionReturn(fixtures, dict(telling), families)
    )
    return ProcessReturn(families, [_with_skip_reason(r, checks, reasons) for r in results])


class _Telling:
    """A check as repo-review sees it for one run, which notes in that run's
    `reasons` why the check skipped: repo-review 1.3 takes a skip (None) but no
    reason from a check, only from a pyproject.toml's ignore table."""

    def __init__(self, name: str, check: HubCheck, reasons: dict[str, str]) -> None:
        self.__doc__ = check.__doc__
        self.family: str = check.family
        self.requires: AbstractSet[str] = check.requires
        self.url: str = check.url

        def telling(**fixtures: Any) -> str | None:
            outcome = check.run(**fixtures)
            if isinstance(outcome, Skip):
                reasons[name] = outcome.reason
                return None
            return outcome

        telling.__signature__ = inspect.signature(check.run)  # type: ignore[attr-defined]  # the fixtures it takes
        self.check: Callable[..., str | None] = telling


def selected(checks: dict[str, HubCheck], select: frozenset[str]) -> dict[str, HubCheck]:
    """The checks `select` names and those they require. repo-review runs every
    check it is given and filters the report afterwards, so `--select SE001`
    (the pre-commit hook) would pay for all of them. Only --select prunes: a
    check ignored by a hub's pyproject.toml is still reported, skipped with its
    reason."""
    if not select:
        return checks
    keep = {name for name in checks if is_allowed(select, frozenset(), name)}
    todo = list(keep)
    while todo:
        for needed in checks[todo.pop()].requires:
            if needed in checks and needed not in keep:
                keep.add(needed)
                todo.append(needed)
    return {name: check for name, check in checks.items() if name in keep}


def _with_skip_reason(result: Result, checks: dict[str, HubCheck], reasons: dict[str, str]) -> Result:
    if result.result is not None or result.skip_reason:
        return result
    reason = reasons.get(result.name, "")
    requires = checks[result.name].requires
    if not reason and requires:
        reason = f"needs {', '.join(sorted(requires))} to pass first"
    return dataclasses.replace(result, skip_reason=reason)
