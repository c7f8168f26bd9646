"""One hub: decide whether copier is needed at all, then `copier update`
it, restored exactly as it was when the update fails."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

from ..copier_settings import ANSWERS_FILE
from .hubs import BEHIND, CONFLICTS, CURRENT, DIRTY, FAILED, REFUSED, UPDATED, FederationHub, Result
from .repository import ParkedEntries, conflicts, restore, status, untracked
from .sources import TemplateSource


@contextlib.contextmanager
def captured_output(log: Path) -> Iterator[None]:
    """Send what copier and its migrations print (fd 1 and 2, and Python's
    streams) to `log`, so the progress display stays readable."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("a") as stream:
        os.dup2(stream.fileno(), 1)
        os.dup2(stream.fileno(), 2)
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield
        finally:
            stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _usable_source(
    result: Result, hub: FederationHub, source: TemplateSource | None, refused: str | None
) -> TemplateSource | None:
    """The template source `hub` is checked or updated from, or None, said in
    `result`, when the hub is refused, has a problem of its own or has no
    source that could be read."""
    if refused:
        result.status = REFUSED
        result.notes.append(refused)
    elif hub.problem or source is None:
        result.notes.append(hub.problem or "no template source")
    elif source.error:
        result.notes.append(source.error)
    else:
        return source
    return None


# `git status --porcelain` states of a path with unresolved conflicts.
UNMERGED = {"DD", "AU", "UD", "UA", "DU", "AA", "UU"}


def _blocked(result: Result, hub: FederationHub, changes: list[str]) -> bool:
    """Whether the hub's uncommitted changes stop its update, said in
    `result`: unresolved conflicts (an earlier update's), or other changes.
    `--check` and `update` decide it here alike."""
    if not changes or hub.top is None:
        return False
    inside = hub.path.relative_to(hub.top)
    unmerged = [line[3:] for line in changes if line[:2] in UNMERGED]

    def shown(paths: list[str]) -> str:
        return ", ".join(str(Path(p).relative_to(inside)) for p in paths[:3]) + (", ..." if len(paths) > 3 else "")

    if unmerged:
        result.status = CONFLICTS
        result.notes.append(
            f"resolve the conflict markers in: {shown(unmerged)}; then `git add` them and commit, and update again"
        )
    else:
        result.status = DIRTY
        result.notes.append(
            f"uncommitted changes ({shown([line[3:] for line in changes])}): commit or stash them, then update again"
        )
    return True


def plan_hub(
    hub: FederationHub,
    source: TemplateSource | None,
    vcs_ref: str | None,
    dirty: list[str],
    refused: str | None,
    data: dict[str, str] | None = None,
) -> Result | None:
    """The result of a hub that needs no copier at all, or None when it must
    be updated."""
    result = Result(hub.name, hub.commit or "?", hub.commit or "?", FAILED, src=hub.src or "")
    if (source := _usable_source(result, hub, source, refused)) is None:
        return result
    if hub.top is None:
        result.notes.append("not in a git repository: copier updates only hubs tracked by git")
    elif _blocked(result, hub, dirty):
        pass
    elif not vcs_ref and source.is_behind(hub.commit or "") is False and not changed_answers(hub, data):
        result.status = CURRENT
    else:
        return None
    return result


def changed_answers(hub: FederationHub, data: dict[str, str] | None) -> list[str]:
    """The names of `--data` answers the hub records otherwise (or not at
    all: copier decides whether its question applies to the hub)."""
    recorded = _read_answers(hub.path)
    return [name for name, value in (data or {}).items() if not _same_answer(recorded.get(name), value)]


def _same_answer(recorded: object, given: str) -> bool:
    """Whether `--data NAME=given` (text, as copier's --data takes it) is
    what the hub recorded (text, or a value its YAML reads as)."""
    if isinstance(recorded, str) or recorded is None:
        return recorded == given
    try:
        return bool(yaml.safe_load(given) == recorded)
    except yaml.YAMLError:
        return False


def update_hub(
    hub: FederationHub,
    path: Path,
    top: Path,
    vcs_ref: str | None,
    log: Path,
    parked: ParkedEntries,
    data: dict[str, str] | None = None,
) -> Result:
    """`copier update` of the hub at `path` (in the checkout `top`), restored
    as it was when it fails."""
    from copier import run_update

    result = Result(hub.name, hub.commit or "?", hub.commit or "?", FAILED, src=hub.src or "")
    parked.park(top)  # conflicts left anywhere in the repository
    parked.park_deletions(top, str(path.relative_to(top)))
    untracked_before = untracked(top, path)
    answers_before = _read_answers(path)
    log.write_text("")
    try:
        with captured_output(log):
            run_update(
                str(path),
                data=dict(data or {}),
                vcs_ref=vcs_ref,
                defaults=True,
                overwrite=True,
                unsafe=True,
                quiet=True,
            )
    except KeyboardInterrupt:
        restore(top, path, untracked_before)
        raise
    except Exception as error:
        restore(top, path, untracked_before)
        left = status(top, str(path.relative_to(top)))
        result.notes.append(error_message(error, log))
        result.notes.append(
            f"could not restore everything, check: {', '.join(left)}" if left else "the hub is restored as it was"
        )
        return result

    answers_after = _read_answers(path)
    lost = lost_answers(answers_before, answers_after)
    if lost:
        after = _read_commit(path) or "the new release"
        restore(top, path, untracked_before)
        for name, value in lost.items():
            result.notes += _refused_answer(hub, path, top, vcs_ref, after, name, value, log)
            restore(top, path, untracked_before)
        result.notes.append("nothing changed: the update would have dropped it; the hub is as it was")
        return result
    result.after = _read_commit(path) or "?"
    result.added = added_answers(answers_before, answers_after)
    result.notes.extend(line for line in log.read_text().splitlines() if line.startswith("migration "))
    clashes = conflicts(top, path)
    if clashes:
        result.status = CONFLICTS
        parked.park(top, str(path.relative_to(top)))
        result.notes.append(
            "resolve the conflict markers in: "
            + ", ".join(str(Path(p).relative_to(path.relative_to(top))) for p in clashes)
        )
    else:
        result.status = UPDATED if status(top, str(path.relative_to(top))) else CURRENT
    return result


def _read_answers(hub: Path) -> dict[str, object]:
    with contextlib.suppress(OSError, yaml.YAMLError):
        answers = yaml.safe_load((hub / ANSWERS_FILE).read_text())
        if isinstance(answers, dict):
            return answers
    return {}


def _empty(value: object) -> bool:
    return value is None or value in ("", [], {})


def lost_answers(before: dict[str, object], after: dict[str, object]) -> dict[str, object]:
    """The answers an update emptied: recorded with a value before, still a
    question after (a migration's rename or a question dropped removes the
    key instead), and empty now. copier drops a recorded answer the new
    release's validator refuses and, with --defaults, records the default."""
    return {
        name: value
        for name, value in before.items()
        if not name.startswith("_") and not _empty(value) and name in after and _empty(after[name])
    }


def added_answers(before: dict[str, object], after: dict[str, object]) -> dict[str, object]:
    """The answers an update recorded that the hub had not: a release's new
    questions, with their defaults. An answer a migration renamed carries its
    value over from a name the update removed: that is no new answer."""
    carried = [value for name, value in before.items() if not name.startswith("_") and name not in after]
    return {
        name: value
        for name, value in after.items()
        if not name.startswith("_") and name not in before and value not in carried
    }


def _refused_answer(
    hub: FederationHub, path: Path, top: Path, vcs_ref: str | None, release: str, name: str, value: object, log: Path
) -> list[str]:
    """The notes for an answer the new release refuses: the answer, the
    release's rule (its question's own message: copier given the answer with
    --data, in a pretend run the caller restores after) and the command that
    updates the hub with an answer the release takes."""
    import shlex

    from copier import run_update

    shown = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
    rule = "its question's validator refuses it"
    try:
        with captured_output(log):
            run_update(
                str(path),
                data={name: value},
                vcs_ref=vcs_ref,
                defaults=True,
                overwrite=True,
                pretend=True,
                unsafe=True,
                quiet=True,
            )
    except ValueError as error:
        rule = " ".join(str(error).split()) or rule
    except Exception:  # the rule is a courtesy: the refusal stands without it
        pass
    folder = hub.path.relative_to(hub.top) if hub.top else hub.path
    return [
        f"answer {name}: {shown!r} is refused by {release}: {rule}",
        f"fix: cd {folder} && copier update --trust --defaults --data {shlex.quote(f'{name}=NEW ANSWER')}",
    ]


def _read_commit(hub: Path) -> str | None:
    with contextlib.suppress(OSError, yaml.YAMLError, AttributeError):
        commit: str | None = yaml.safe_load((hub / ANSWERS_FILE).read_text()).get("_commit")
        return commit
    return None


def error_message(error: Exception, log: Path) -> str:
    """What went wrong, in one line: a failed migration or task says why in
    its last line of output (a Python exception's last line)."""
    lines = [line.strip() for line in log.read_text().splitlines() if line.strip()]
    if isinstance(error, subprocess.CalledProcessError):
        cmd = error.cmd if isinstance(error.cmd, str) else " ".join(map(str, error.cmd))
        what = "a migration" if cmd.endswith(" migrate") else "a template task"
        return f"{what} failed (exit {error.returncode}): " + (lines[-1] if lines else cmd)
    return f"{type(error).__name__}: {str(error).strip()}"


def check_hub(
    hub: FederationHub,
    source: TemplateSource | None,
    refused: str | None,
    dirty: list[str],
    data: dict[str, str] | None = None,
) -> Result:
    """What `update` would do with the hub, without doing it: refused,
    failed, conflicts, skipped dirty, behind or current."""
    result = Result(hub.name, hub.commit or "?", "?", FAILED, src=hub.src or "")
    if (source := _usable_source(result, hub, source, refused)) is None:
        return result
    result.after = source.newest or "?"
    if _blocked(result, hub, dirty):
        return result
    behind = source.is_behind(hub.commit or "")
    if behind is None:
        result.notes.append(f"{hub.commit!r} is no release or commit of the template")
    else:
        changed = changed_answers(hub, data)
        result.status = BEHIND if behind or changed else CURRENT
        if changed:
            result.notes.append(f"--data changes {', '.join(changed)}")
    return result
