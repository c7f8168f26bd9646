"""The name rules of data/rules.yml (shared with copier.yml's validators), as
Python applies them: each pattern must match the whole value.

Runs in copier's interpreter (the source import): standard library and pyyaml.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from . import load_data


@cache
def _rules() -> dict[str, Any]:
    return load_data("rules.yml")


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
