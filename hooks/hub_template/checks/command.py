"""`hub-template check HUB... [--chart DIR] [--format rich|json|html] [--select/--ignore IDS]`

Exit status: 0 when every check passed or skipped, 1 when one failed, 2 when
the command was used wrongly (a path that is no hub, a folder that is no chart,
a --select that matches no check).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..parallel import add_jobs_option

if TYPE_CHECKING:
    from repo_review.__main__ import Status
    from repo_review.families import Family
    from repo_review.processor import ProcessReturn, Result

    # One hub's report: its label, families, results and status.
    Report = tuple[str, dict[str, Family], list[Result], Status]

FORMATS = ("rich", "json", "html")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "hubs",
        nargs="+",
        type=Path,
        metavar="HUB",
        help="a hub's folder (deployments/<hub>), or a file in it; several are checked in turn",
    )
    parser.add_argument(
        "--chart",
        type=Path,
        metavar="DIR",
        help="a daskhub chart folder (from `helm pull dask/daskhub --untar` or "
        "`helm dependency build`), to check the helm values against its schemas",
    )
    parser.add_argument("--format", choices=FORMATS, default="rich", help="output format (default: rich)")
    parser.add_argument(
        "--select",
        default="",
        metavar="IDS",
        help="run only these checks: IDs or families' prefixes, comma separated (e.g. SE,IM006)",
    )
    parser.add_argument("--ignore", default="", metavar="IDS", help="skip these checks, comma separated")
    parser.add_argument(
        "--show",
        choices=("all", "err", "errskip"),
        default="all",
        help="show every check (default), only failures, or failures and skips",
    )
    add_jobs_option(parser, "hubs checked at once")


def _ids(value: str) -> frozenset[str]:
    return frozenset(x.strip() for x in value.split(",") if x.strip())


def unknown_ids(ids: frozenset[str]) -> list[str]:
    """The IDs that name no check (ST001) and no family prefix (ST)."""
    from . import CHECK_CLASSES

    names = {cls.__name__ for cls in CHECK_CLASSES}
    known = names | {name.rstrip("0123456789") for name in names}
    return sorted(i for i in ids if i not in known)


def run(args: argparse.Namespace) -> int:
    from .hub import Hub
    from .runner import chart_source

    for option in ("select", "ignore"):
        bad = unknown_ids(_ids(getattr(args, option)))
        if bad:
            print(
                f"hub-template check: --{option} {','.join(bad)}: no check has this ID or prefix; "
                "give IDs like SE001 or families like SE.",
                file=sys.stderr,
            )
            return 2

    hubs: list[Path] = []
    for given in args.hubs:
        hub = Hub.containing(given) if given.exists() else None
        if hub is None and given.is_file():
            # As a pre-commit hook it gets every changed file; those of no hub are not its business.
            print(f"hub-template check: {given} is in no hub; skipped.", file=sys.stderr)
            continue
        if hub is None:
            print(
                f"hub-template check: {given} is not a hub: give a hub's folder (deployments/<hub>, "
                "holding .copier-answers.yml or hubploy.yaml) or a file inside one.",
                file=sys.stderr,
            )
            return 2
        if hub.folder not in hubs:
            hubs.append(hub.folder)
    if not hubs:
        return 0
    if args.chart is not None:
        try:
            _ = chart_source(args.chart.resolve()).chart  # read once, here, for every hub
        except (OSError, ValueError, KeyError) as error:
            print(f"hub-template check: --chart {args.chart}: {error}", file=sys.stderr)
            return 2
    return check(
        hubs,
        chart=args.chart,
        output=args.format,
        select=_ids(args.select),
        ignore=_ids(args.ignore),
        show=args.show,
        jobs=max(1, args.jobs),
    )


def check(
    hubs: list[Path],
    chart: Path | None,
    output: str = "rich",
    select: frozenset[str] = frozenset(),
    ignore: frozenset[str] = frozenset(),
    show: str = "all",
    jobs: int = 1,
) -> int:
    """Check each hub and print the results as repo-review does: its rich
    tree per hub, one JSON document (hub -> repo-review's document, for one
    hub as for several), or one HTML page."""
    reports: list[Report] = []
    for path, (families, results) in zip(hubs, _run_all(hubs, chart, select, ignore, jobs), strict=True):
        status = _status(results)
        if show != "all":
            results = [r for r in results if r.result is False or (show == "errskip" and r.result is None)]
        families = {k: v for k, v in families.items() if any(r.family == k for r in results)}
        reports.append((_label(path), families, results, status))
    several = len(hubs) > 1
    if output == "json":
        # One shape for one hub or many: each hub's label -> repo-review's document for it.
        documents = {label: _as_json(families, results, status) for label, families, results, status in reports}
        print(json.dumps(documents, indent=2))
    elif output == "html":
        print(_as_page(reports))
    else:
        # repo-review's own rich printer (not in its __all__, pinned <2).
        import dataclasses
        from functools import partial

        import rich.console
        import rich.syntax
        from repo_review.__main__ import CODE_THEME, display_output
        from rich.markup import escape

        from .hint import hint, printed_without_repo_reviews_hint

        console = rich.console.Console()
        for label, families, results, status in reports:
            report = partial(
                display_output,
                families,
                # it reads skip reasons as rich markup: `hub-template[kubernetes]` is text
                [dataclasses.replace(r, skip_reason=escape(r.skip_reason)) for r in results],
                format_opt="rich",
                stderr=False,
                color=True,
                status=status,
                header=label if several else "",
            )
            # repo-review's hint names a pyproject.toml a hub does not have: the hub's own instead.
            sys.stdout.write(printed_without_repo_reviews_hint(report, sys.stdout))
            failed = [r.name for r in results if r.result is False]
            if failed:
                sentence, toml = hint(label, failed)
                console.print(sentence, style="dim", markup=False, highlight=False)
                if toml:
                    console.print(
                        rich.syntax.Syntax(
                            toml, lexer="toml", theme=CODE_THEME, word_wrap=True, background_color="default"
                        )
                    )
                console.print()
    return max({"errors": 1, "empty": 2}.get(status, 0) for *_, status in reports)


def _run_all(
    hubs: list[Path], chart: Path | None, select: frozenset[str], ignore: frozenset[str], jobs: int
) -> list[ProcessReturn]:
    """Each hub's (families, results), in order: one process per CPU for
    several hubs, forked once the checks are imported; each hub is checked
    alone, so the findings are those of one hub at a time."""
    from functools import partial

    from .runner import run_checks

    one = partial(run_checks, chart=chart, select=select, ignore=ignore)
    jobs = min(jobs, len(hubs))
    if jobs <= 1:
        return [one(path) for path in hubs]
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        return pool.map(one, hubs, chunksize=1)


def _as_json(families: dict[str, Family], results: list[Result], status: Status) -> dict[str, Any]:
    """The document repo-review's own `--format json` prints for one repository."""
    from repo_review.families import sort_family_keys
    from repo_review.processor import as_simple_dict

    return {
        "status": status,
        "families": {k: families[k] for k in sort_family_keys(families)},
        "checks": as_simple_dict(results),
    }


def _as_page(reports: list[Report]) -> str:
    """A whole HTML page: repo-review's report of each hub under its name."""
    from html import escape

    from repo_review.html import to_html

    sections = []
    for label, families, results, status in reports:
        failed = sum(r.result is False for r in results)
        sections.append(
            f'<section id="{escape(label)}">\n<h2>{escape(label)}: '
            f"{f'{failed} failed' if failed else status}</h2>\n"
            f"{to_html(families, results, status)}\n</section>"
        )
    title = "hub-template check: " + ", ".join(label for label, *_ in reports)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n</head>\n<body>\n<h1>{escape(title)}</h1>\n"
        + "\n".join(sections)
        + "\n</body>\n</html>"
    )


def _label(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _status(results: list[Result]) -> Status:
    if any(r.result is False for r in results):
        return "errors"
    if not results:
        return "empty"
    return "skips" if any(r.result is None for r in results) else "passed"
