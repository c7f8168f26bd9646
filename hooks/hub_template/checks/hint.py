"""The hint under a hub's failed checks: how a hub ignores a check.

repo-review's printer ends every report with a failure by suggesting an
ignore in "pyproject.toml", meaning the repository's own, which a hub does not
have. A hub ignores a check in a pyproject.toml of its own folder (which
`hub-template check` and repo-review read; runner.hub_pyproject), or for one
run with `--ignore`; the SE checks, ST007 and ST008 cannot be ignored at all.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

from .runner import UNIGNORABLE, unignorable

REPO_REVIEW_HINT = "Hint: to ignore the failed checks, add this to pyproject.toml:"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _Terminal(io.StringIO):
    """Collects what is printed, while telling rich it writes to the real
    stdout (its colours and width)."""

    def __init__(self, real: Any) -> None:
        super().__init__()
        self.real = real

    def isatty(self) -> bool:
        return bool(self.real.isatty())

    def fileno(self) -> int:
        return int(self.real.fileno())

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.real, "encoding", "utf-8"))


def printed_without_repo_reviews_hint(print_report: Callable[[], None], real: Any) -> str:
    """What ``print_report`` prints, less repo-review's pyproject.toml hint."""
    captured = _Terminal(real)
    with redirect_stdout(captured):
        print_report()
    return without_hint(captured.getvalue())


def without_hint(text: str) -> str:
    """``text`` less the hint block: its line, the TOML under it, the blank line after."""
    lines = text.splitlines(keepends=True)
    plain = [_ANSI.sub("", line).strip() for line in lines]
    if REPO_REVIEW_HINT not in plain:
        return text
    start = plain.index(REPO_REVIEW_HINT)
    toml = plain.index("[tool.repo-review]", start)
    end = next((i for i in range(toml, len(plain)) if not plain[i]), len(plain))
    return "".join(lines[:start] + lines[end + 1 :])


def hint(hub: Path | str, failed: Iterable[str]) -> tuple[str, str | None]:
    """The hint's sentence, and the TOML to add (None when no failed check can be ignored)."""
    failed = list(failed)
    ignorable = [name for name in failed if not unignorable(name)]
    never = [name for name in failed if unignorable(name)]
    parts = []
    if never:
        checks = ", ".join(f"{u}*" if u.isalpha() else u for u in UNIGNORABLE)
        parts.append(f"{', '.join(never)} cannot be ignored (no hub can switch off {checks}): fix what they name.")
    if not ignorable:
        return " ".join(parts), None
    parts.append(
        f"Hint: to skip {', '.join(ignorable)} once, pass --ignore {','.join(ignorable)}; "
        f"to ignore {'it' if len(ignorable) == 1 else 'them'} in this hub for good, add this "
        f"to {Path(hub) / 'pyproject.toml'} (the hub's own; hub-template check reads it):"
    )
    toml = "[tool.repo-review.ignore]\n" + "\n".join(f'{name} = "why this hub skips it"' for name in ignorable)
    return " ".join(parts), toml
