"""What every hub check shares: its family, its link, how it skips with a
reason, and how its problems become one message.

A check is a small class in the repo-review style: its docstring is the
one-line description, ``family`` groups it, ``requires`` names the checks that
must pass before it runs, and ``run(...)`` receives the fixtures it names
(``hub``, ``chart``) and returns "" (pass), a Markdown message (fail) or
``self.skip(reason)``. Its ``check(...)``, made from ``run``, is what
repo-review calls: a skip becomes ``None``, as repo-review 1.3 knows skips
(it has no way for a check to say why; runner.py keeps the reason). A check
holds no state of a run: the same instance may check several hubs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from ..helm_values import Problem

# Each check is explained under its own anchor, its ID in lower case (#se001).
DOCS = "https://github.com/pangeo/hub-template/blob/main/docs/checks.md"


@dataclass(frozen=True)
class Skip:
    """What `run` returns for a check that does not apply, and why."""

    reason: str


class HubCheck:
    family: ClassVar[str]
    url: ClassVar[str] = DOCS
    requires: ClassVar[frozenset[str]] = frozenset()
    run: Callable[..., str | Skip]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__name__[:2].isupper() and cls.__name__[2:].isdigit():  # a check, not a family
            cls.url = f"{DOCS}#{cls.__name__.lower()}"
        if "run" in cls.__dict__:
            cls.check = _as_check(cls.__dict__["run"])  # type: ignore[attr-defined]

    @staticmethod
    def skip(reason: str) -> Skip:
        """Skip this check, saying why."""
        return Skip(reason)


def _as_check(run: Callable[..., str | Skip]) -> Callable[..., str | None]:
    """repo-review's `check` for a `run`: the same fixtures (repo-review reads
    them from the signature), None for a skip."""

    @functools.wraps(run)
    def check(self: HubCheck, **fixtures: Any) -> str | None:
        outcome = run(self, **fixtures)
        return None if isinstance(outcome, Skip) else outcome

    check.__signature__ = inspect.signature(run)  # type: ignore[attr-defined]
    return check


class Structure(HubCheck):
    family = "structure"


class Helm(HubCheck):
    family = "helm"


class Image(HubCheck):
    family = "image"


class Dask(HubCheck):
    family = "dask"


class Secrets(HubCheck):
    family = "secrets"


FAMILIES = {
    "structure": {
        "name": "Structure",
        "order": 0,
        "description": "The folder the template renders, parsed the way hubploy reads it.",
    },
    "helm": {
        "name": "Helm values",
        "order": 1,
        "description": "config/ and secrets/ merged for each environment the way helm merges them.",
    },
    "image": {"name": "Image", "order": 2, "description": "image/ as repo2docker builds it."},
    "dask": {
        "name": "Dask",
        "order": 3,
        "description": "The dask configuration notebooks and workers read at run time.",
    },
    "secrets": {"name": "Secrets", "order": 4, "description": "Nothing secret reaches git in clear."},
}


def report(problems: Iterable[Problem]) -> str:
    """One Markdown bullet per problem, file and line first; "" when there is none."""
    lines = []
    for p in dict.fromkeys(problems):  # the same problem from two environments is one
        where = f"{p.file}:{p.line}" if p.line else p.file
        lines.append(f"- `{where}`: {p.message}")
    return "\n".join(lines)


def code(text: object) -> str:
    """Inline Markdown code, safe for any text (keys with __ or *, placeholders with <>)."""
    text = str(text)
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}"


def get_path(data: object, keys: Iterable[str]) -> object:
    """The value at ``keys`` in nested mappings, or None where the path breaks."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data
