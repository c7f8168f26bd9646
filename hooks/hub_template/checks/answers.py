"""ST006: answers still holding a stand-in for an id that has no honest
default (a cloud project, an account id, a login's ids): recorded by
`copier copy --defaults` or by an update that added the question, or typed
by someone who took it for an example.

copier.yml asks for those with no default at the prompt, and gives a stand-in
only when there is no prompt (`--defaults`), so that a first render needs no
cloud account; the stand-in must never reach a deploy unnoticed. The stand-ins
are copier.yml's own (hub_template.stand_ins, their one definition).
"""

from __future__ import annotations

from ..copier_settings import ANSWERS_FILE
from ..helm_values import Problem
from ..stand_ins import stand_in_answers
from .base import Skip, Structure, code, report
from .hub import Hub


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
            for name, value in stand_in_answers(hub.answers).items()
        )


CHECKS = (ST006,)
