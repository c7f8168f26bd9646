"""Stand-in answers: what copier.yml records for an id that has no honest
default (a cloud project, an account id, a login's ids) when there is no
prompt to ask for it (`--defaults`: a first render, an update adding the
question). The one definition, read from copier.yml itself, where such a
question's default is `'<stand-in>' if _copier_conf.defaults else UNSET`.

`hub-template check` (ST006) and `plan-deploy` refuse a hub still holding
one; `hub-template update` names each one an update recorded, reading the
stand-ins of the release it updated to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

STAND_IN = re.compile(r"""^\{\{\s*'([^']*)'\s+if\s+_copier_conf\.defaults\s+else\s+UNSET\s*\}\}$""")


def read_stand_ins(questions: Mapping[str, Any]) -> dict[str, str]:
    """Question name -> its stand-in, from a parsed copier.yml."""
    found = {}
    for name, spec in questions.items():
        match = STAND_IN.match(str(spec.get("default", ""))) if isinstance(spec, dict) else None
        if match:
            found[name] = match.group(1)
    return found


@cache
def stand_ins() -> dict[str, str]:
    """The stand-ins of the installed template's copier.yml."""
    from .copier_settings import settings, template_root

    return read_stand_ins(settings()) if template_root() is not None else {}


def stand_in_answers(answers: Mapping[str, Any], known: Mapping[str, str] | None = None) -> dict[str, str]:
    """The answers (name -> value) that are still their question's stand-in."""
    known = stand_ins() if known is None else known
    return {name: value for name, value in known.items() if name in answers and str(answers[name]) == value}
