"""The name rules of data/rules.yml (shared with copier.yml's validators), as
Python applies them: each pattern must match the whole value.

Runs in copier's interpreter (the source import): standard library and pyyaml.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from . import load_data

# (?&name): the earlier rule `name` (rules.yml's header says why).
REFERENCE = re.compile(r"\(\?&(\w+)\)")


@cache
def _rules() -> dict[str, Any]:
    rules: dict[str, Any] = {}
    for name, rule in load_data("rules.yml").items():
        rules[name] = _expanded(rules, name, rule) if isinstance(rule, str) else rule
    return rules


def _expanded(earlier: dict[str, Any], name: str, rule: str) -> str:
    """`rule` with each (?&used) replaced by (?:the pattern of `used`), which
    must be a rule above `name` (so already expanded)."""

    def pattern_of(used: re.Match[str]) -> str:
        if not isinstance(earlier.get(used[1]), str):
            raise ValueError(f"rules.yml: {name} uses {used[0]}, which is no pattern above it")
        return f"(?:{earlier[used[1]]})"

    return REFERENCE.sub(pattern_of, rule)


@cache
def pattern(name: str) -> re.Pattern[str]:
    """The rule `name`, compiled."""
    return re.compile(_rules()[name])


def matches(name: str, value: object) -> bool:
    """Whether `value` is a string the rule `name` accepts as a whole."""
    return isinstance(value, str) and pattern(name).fullmatch(value) is not None


def limit(name: str) -> int:
    """A number of rules.yml, like hub_name_max."""
    return int(_rules()[name])
