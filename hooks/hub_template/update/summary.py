"""The summary `hub-template update` prints at the end: a line per hub (from,
to, status), then its notes, each wrapped to the console's width under the
hub (80 columns off a terminal, as rich reads it), then the counts.

Plain lines, not a table: off a terminal a table squeezes its notes column
to a few characters."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from .hubs import BEHIND, CONFLICTS, CURRENT, DIRTY, FAILED, REFUSED, UPDATED, Result
from .sources import same_template

if TYPE_CHECKING:
    from rich.console import Console

STYLES = {
    CURRENT: "green",
    UPDATED: "green",
    BEHIND: "yellow",
    DIRTY: "yellow",
    CONFLICTS: "red",
    FAILED: "red",
    REFUSED: "red",
}


def summary(console: Console, results: list[Result], check: bool, federation_template: str | None) -> None:
    from rich.text import Text

    width = max(40, console.width)
    title = "hub-template update --check: each hub against the newest release" if check else "hub-template update"
    for line in _wrapped(title, width, ""):
        console.print(Text(line, style="bold"), soft_wrap=True)
    if federation_template:
        for line in _wrapped(f"the federation's template: {federation_template}", width, ""):
            console.print(Text(line), soft_wrap=True)
    name_width = max(len(r.hub) for r in results) if results else 0
    for r in results:
        head = Text(f"{r.hub:<{name_width}}  {r.before} -> {r.after}  ")
        head.append(r.status, style=STYLES[r.status])
        console.print(head, soft_wrap=True)
        notes = [*r.notes]
        if r.src and federation_template and not same_template(r.src, federation_template):
            notes.append(f"template: {r.src}")
        for note in notes:
            for line in _wrapped(note, width, "  "):
                console.print(Text(line), soft_wrap=True)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    console.print(", ".join(f"{n} {status}" for status, n in counts.items()), soft_wrap=True)


def _wrapped(text: str, width: int, indent: str) -> list[str]:
    """`text` in lines of at most `width` (a word longer than that, a URL,
    stays whole on its own line), continued two columns further in."""
    return textwrap.wrap(
        text,
        width,
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_long_words=False,
        break_on_hyphens=False,
    ) or [indent]
