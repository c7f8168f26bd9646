"""The table `hub-template update` prints at the end: one row per hub."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .hubs import BEHIND, CONFLICTS, CURRENT, DIRTY, FAILED, REFUSED, UPDATED, Result

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
    from rich.table import Table

    title = "hub-template update --check: each hub against the newest release" if check else "hub-template update"
    table = Table(
        title=title, caption=f"the federation's template: {federation_template}" if federation_template else None
    )
    table.add_column("hub", no_wrap=True)
    table.add_column("from", no_wrap=True)
    table.add_column("newest" if check else "to", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("notes", overflow="fold")
    table.add_column("template", overflow="fold")
    for r in results:
        table.add_row(r.hub, r.before, r.after, f"[{STYLES[r.status]}]{r.status}[/]", "\n".join(r.notes), r.src)
    console.print(table)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    console.print(", ".join(f"{n} {status}" for status, n in counts.items()))
