"""`hub-template update DEPLOYMENTS_DIR`: every hub of a federation, to the newest template.

Every folder of DEPLOYMENTS_DIR with a `.copier-answers.yml` is a hub. With
`--check` nothing changes: each hub is reported as `update` would find it
(refused, conflicts, skipped dirty, behind or current, against the newest
release of its template), and the exit status is 1 when any hub is behind,
conflicted, refused or failing; `--diff` adds, per hub behind, the diff its
update would make, computed in a scratch worktree (update/preview.py). Otherwise each hub is updated with `copier update`, one at a time:

- a hub with uncommitted changes is skipped (copier would refuse it);
- a hub already at the newest release is left alone;
- a hub whose update fails is restored exactly as it was: its tracked files
  from HEAD, and the files the update created removed. Ignored files (the
  decrypted secrets) are never touched, and no other hub is.

The exit status is 1 when any hub has conflicts or failed.

Why it is faster than a shell loop of `copier update`: all updates run in this
one process through copier's Python API (no interpreter and import start-up
per hub), and the template is fetched once. Each distinct template source is
mirrored into a temporary bare repository, and git is told, through
`url.<mirror>.insteadOf` in GIT_CONFIG_* environment variables, to read the
mirror wherever copier asks for the source. copier still sees the original
URL, so the `_src_path` it records in each hub's answers file never changes.

Hubs update on every CPU at once (`--jobs`). copier reads and writes the
whole repository's index and scans its whole tree (`git status`, `.rej`
files), so two updates in one checkout would see each other: each worker
updates in its own git worktree of HEAD, with the hub's ignored files copied
in, and hands back the hub's files and index entries, which this process
writes into the federation's checkout one hub at a time. A hub that fails
never touches the checkout at all. `--jobs 1` updates in place, as copier
alone would; both leave the same bytes and the same index.

An update runs the template's tasks and migrations (copier's `--trust`), so
only the federation's own template is trusted: the one `--template` names, or
else the first of copier-settings.yml's `trust:` list at the federation's
root, never one a hub's answers name. A hub whose answers file names another
is refused before anything runs, unless `--allow-template` names that one
too; so is a hub holding a folder laid out as a git directory (copier's git
would take it for the repository). Every git command runs hardened, copier's
included (hub_template.git_runner).

The parts, one concern each, are in hub_template/update/.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

from .copier_settings import ANSWERS_FILE
from .parallel import add_jobs_option
from .update.hubs import BEHIND, CONFLICTS, FAILED, REFUSED, FederationHub, Result, find_hubs, git_dir_refusal
from .update.one_hub import check_hub, plan_hub, update_hub
from .update.preview import update_diffs
from .update.release_notes import annotate
from .update.repository import ParkedEntries, copier_git, statuses
from .update.signals import sigterm_as_interrupt, uninterrupted
from .update.sources import TemplateSource, pinned, refusal
from .update.summary import STYLES, summary
from .update.worktrees import Worker, add_worktrees, remove_worktrees, update_in_worktree, write_back


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "deployments",
        type=Path,
        metavar="DEPLOYMENTS_DIR",
        help="the federation's deployments/ folder, one hub per subfolder",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="change nothing: report what update would do with each hub; exit 1 when any is behind or conflicted",
    )
    parser.add_argument(
        "--vcs-ref",
        metavar="REF",
        help="update to this tag, branch or commit of the template instead of its newest release",
    )
    parser.add_argument(
        "--template",
        metavar="SRC",
        help="the federation's template (default: the first of copier-settings.yml's trust: list); "
        "hubs recording another are refused",
    )
    parser.add_argument(
        "--allow-template",
        action="append",
        default=[],
        metavar="SRC",
        help="also update hubs recording this other template, running its tasks (repeat for several)",
    )
    parser.add_argument(
        "--diff",
        action="store_true",
        help="with --check: print, for each hub that is behind, the diff its update would make "
        "(computed in a scratch worktree; the hub is not touched)",
    )
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="answer NAME with VALUE in every hub (as copier's --data; repeat for several): "
        "a changed federation answer reaches every hub, each hub's update refused if its release refuses it",
    )
    add_jobs_option(parser, "hubs updated at once, each in its own git worktree")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console()
    deployments: Path = args.deployments
    if not deployments.is_dir():
        Console(stderr=True).print(
            f"[red]{deployments} is not a folder.[/] Give the federation's "
            "deployments/ folder, which holds one folder per hub."
        )
        return 2
    if args.jobs < 1:
        Console(stderr=True).print(f"[red]--jobs {args.jobs}:[/] give 1 or more hubs at once.")
        return 2
    if args.diff and not args.check:
        Console(stderr=True).print("[red]--diff goes with --check:[/] it shows what an update would change.")
        return 2
    data: dict[str, str] = {}
    for pair in args.data:
        name, equals, value = pair.partition("=")
        if not equals or not name.strip():
            Console(stderr=True).print(
                f"[red]--data {pair!r}:[/] give NAME=VALUE, e.g. --data gcp_region=us-central1", soft_wrap=True
            )
            return 2
        data[name.strip()] = value
    hubs = find_hubs(deployments)
    if not hubs:
        Console(stderr=True).print(
            f"[red]No hub in {deployments}:[/] no subfolder has a "
            f"{ANSWERS_FILE}. Hubs made with `copier copy` from hub-template have one."
        )
        return 2
    federation_template, unpinned = pinned(deployments, args.template)
    if unpinned:
        Console(stderr=True).print(f"[red]Nothing updated:[/] {unpinned}")
        return 2
    refused = {hub.path: refusal(hub, federation_template, args.allow_template) or git_dir_refusal(hub) for hub in hubs}

    with tempfile.TemporaryDirectory(prefix="hub-template-update.") as scratch:
        sources: dict[str | None, TemplateSource] = {}  # by hub.src; a hub without one finds None
        for hub in hubs:
            if hub.src and hub.src not in sources and not refused[hub.path]:
                sources[hub.src] = TemplateSource(hub.src)
                sources[hub.src].fetch(Path(scratch) / f"template-{len(sources)}.git", args.vcs_ref)
        dirty = statuses(hubs)
        diffs: dict[str, str] = {}
        if args.check:
            results = [check_hub(hub, sources.get(hub.src), refused[hub.path], dirty[hub.path], data) for hub in hubs]
            if args.diff:
                rewrites = [pair for source in sources.values() for pair in source.rewrites()]
                with sigterm_as_interrupt():
                    diffs = update_diffs(hubs, results, args.vcs_ref, Path(scratch), rewrites, data)
        else:
            planned = {
                hub.path: plan_hub(hub, sources.get(hub.src), args.vcs_ref, dirty[hub.path], refused[hub.path], data)
                for hub in hubs
            }
            rewrites = [pair for source in sources.values() for pair in source.rewrites()]
            try:
                if all(planned.values()):  # nothing for copier: neither it nor the display is loaded
                    results = [result for result in planned.values() if result is not None]
                else:
                    with sigterm_as_interrupt(), copier_git(rewrites):
                        results = _update_all(hubs, planned, args.vcs_ref, Path(scratch), args.jobs, data)
            except KeyboardInterrupt:
                Console(stderr=True).print(
                    "[red]Interrupted.[/] The hub being updated is restored as it was; "
                    "hubs updated before it keep their update."
                )
                return 130
        for hub, result in zip(hubs, results, strict=True):  # the mirrors are still here
            annotate(result, hub, sources.get(hub.src))

    summary(console, results, args.check, federation_template)
    for name, diff in diffs.items():
        console.print(f"diff of {name}: what `hub-template update` would change", style="bold", soft_wrap=True)
        console.print(diff, markup=False, highlight=False, soft_wrap=True, end="")
    bad = {BEHIND, CONFLICTS, FAILED, REFUSED} if args.check else {CONFLICTS, FAILED, REFUSED}
    return 1 if any(r.status in bad for r in results) else 0


def _update_all(
    hubs: list[FederationHub],
    planned: dict[Path, Result | None],
    vcs_ref: str | None,
    scratch: Path,
    jobs: int,
    data: dict[str, str],
) -> list[Result]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    todo = [hub for hub in hubs if planned[hub.path] is None]
    results = {path: result for path, result in planned.items() if result is not None}
    # The display writes to a copy of stderr, which copier's output never reaches.
    display = os.fdopen(os.dup(2), "w", buffering=1)
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(file=display),
            transient=True,
        ) as progress:
            task = progress.add_task("updating", total=len(todo))

            def done(hub: FederationHub, result: Result) -> None:
                results[hub.path] = result
                progress.console.print(f"{hub.name}: [{STYLES[result.status]}]{result.status}[/]")
                progress.advance(task)

            in_worktrees = jobs > 1 and len(todo) > 1
            if not (in_worktrees and _in_worktrees(todo, vcs_ref, data, scratch, min(jobs, len(todo)), done)):
                _in_place(todo, vcs_ref, data, scratch, progress, task, done)
    finally:
        display.close()
    return [results[hub.path] for hub in hubs]


# Records a hub's result as soon as it is known.
Done = Callable[["FederationHub", "Result"], None]


def _in_place(
    todo: list[FederationHub],
    vcs_ref: str | None,
    data: dict[str, str],
    scratch: Path,
    progress: Progress,
    task: TaskID,
    done: Done,
) -> None:
    """One hub after the other, in the federation's checkout."""
    parked = ParkedEntries()
    try:
        for hub in todo:
            assert hub.top is not None
            progress.update(task, description=f"updating [bold]{hub.name}[/]")
            done(hub, update_hub(hub, hub.path, hub.top, vcs_ref, scratch / "copier.log", parked, data))
    finally:
        parked.restore_all()


def _in_worktrees(
    todo: list[FederationHub], vcs_ref: str | None, data: dict[str, str], scratch: Path, jobs: int, done: Done
) -> bool:
    """`jobs` processes, forked from this one (copier already imported), each
    updating in its own worktrees; each result is written back here."""
    import multiprocessing

    import copier  # noqa: F401 - imported once, before the fork

    context = multiprocessing.get_context("fork")
    slots = context.SimpleQueue()
    for slot in range(jobs):
        slots.put(slot)
    by_name = {hub.name: hub for hub in todo}  # folders of one deployments/: unique
    trees: dict[int, dict[Path, Path]] = {}
    pool = None
    try:
        try:
            add_worktrees(sorted({hub.top for hub in todo if hub.top is not None}), jobs, scratch, trees)
        except subprocess.CalledProcessError:
            return False  # no worktree (an old git, a full disk): one hub at a time, in place
        pool = context.Pool(jobs, initializer=Worker.start, initargs=(slots, trees, scratch))
        for outcome in pool.imap_unordered(update_in_worktree, [(hub, vcs_ref, data) for hub in todo]):
            hub = by_name[outcome.result.hub]
            with uninterrupted():
                if outcome.files is not None:
                    write_back(hub, outcome)
                done(hub, outcome.result)
        pool.close()
        return True
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        remove_worktrees(trees)
