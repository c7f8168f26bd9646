"""ST006: answers still holding a stand-in for an id that has no honest
default (a cloud project, an account id): recorded by `copier copy
--defaults`, or typed by someone who took it for an example.

copier.yml asks for those with no default at the prompt, and gives a stand-in
only when there is no prompt (`--defaults`), so that a first render needs no
cloud account; the stand-in must never reach a deploy unnoticed. The stand-ins
are read from copier.yml itself: `'<stand-in>' if _copier_conf.defaults else UNSET`.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ..copier_settings import ANSWERS_FILE, settings, template_root
from ..helm_values import Problem
from .base import Skip, Structure, code, report
from .hub import Hub

STAND_IN = re.compile(r"""^\{\{\s*'([^']*)'\s+if\s+_copier_conf\.defaults\s+else\s+UNSET\s*\}\}$""")


@lru_cache(maxsize=1)
def stand_ins() -> dict[str, str]:
    """Question name -> the stand-in its default records under --defaults."""
    if template_root() is None:
        return {}
    config = settings()
    found = {}
    for name, spec in config.items():
        match = STAND_IN.match(str(spec.get("default", ""))) if isinstance(spec, dict) else None
        if match:
            found[name] = match.group(1)
    return found


class ST006(Structure):
    "No answer is a stand-in for a cloud id (like `my-pangeo-project`)"

    def run(self, hub: Hub) -> str | Skip:
        if not hub.answers:
            return self.skip(f"no {ANSWERS_FILE}: the answers are unknown")
        return report(
            Problem(
                ANSWERS_FILE,
                None,
                f"{code(name)} is the stand-in {code(value)}, not a real id; set the real one: "
                f"`copier update --trust --defaults --data {name}=...`",
            )
            for name, value in stand_ins().items()
            if str(hub.answers.get(name)) == value
        )


CHECKS = (ST006,)
