"""`hub-template check HUB... [--chart DIR] [--format rich|json|html] [--select/--ignore IDS]`

Exit status: 0 when every check passed or skipped, 1 when one failed, 2 when
the command was used wrongly (a path that is no hub, a folder that is no chart,
a --select that matches no check).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FORMATS = ("rich", "json", "html")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hubs", nargs="+", type=Path, metavar="HUB",
                        help="a hub's folder (deployments/<hub>), or a file in it; several are checked in turn")
    parser.add_argument("--chart", type=Path, metavar="DIR",
                        help="a daskhub chart folder (from `helm pull dask/daskhub --untar` or "
                             "`helm dependency build`), to check the helm values against its schemas")
    parser.add_argument("--format", choices=FORMATS, default="rich", help="output format (default: rich)")
    parser.add_argument("--select", default="", metavar="IDS",
                        help="run only these checks: IDs or families' prefixes, comma separated (e.g. SE,IM006)")
    parser.add_argument("--ignore", default="", metavar="IDS", help="skip these checks, comma separated")
    parser.add_argument("--show", choices=("all", "err", "errskip"), default="all",
                        help="show every check (default), only failures, or failures and skips")


def _ids(value: str) -> frozenset[str]:
    return frozenset(x.strip() for x in value.split(",") if x.strip())


def run(args: argparse.Namespace) -> int:
    from ..helm_values import Chart
    from .hub import Hub

    hubs = []
    for given in args.hubs:
        hub = Hub.containing(given) if given.exists() else None
        if hub is None and given.is_file():
            # As a pre-commit hook it gets every changed file; those of no hub are not its business.
            print(f"hub-template check: {given} is in no hub; skipped.", file=sys.stderr)
            continue
        if hub is None:
            print(f"hub-template check: {given} is not a hub: give a hub's folder (deployments/<hub>, "
                  "holding .copier-answers.yml or hubploy.yaml) or a file inside one.", file=sys.stderr)
            return 2
        if hub.path not in hubs:
            hubs.append(hub.path)
    if not hubs:
        return 0
    if args.chart is not None:
        try:
            Chart(args.chart)
        except (OSError, ValueError, KeyError) as error:
            print(f"hub-template check: --chart {args.chart}: {error}", file=sys.stderr)
            return 2
    return check(hubs, chart=args.chart, output=args.format, select=_ids(args.select),
                 ignore=_ids(args.ignore), show=args.show)


def check(hubs: list[Path], chart: Path | None, output: str = "rich", select=frozenset(),
          ignore=frozenset(), show: str = "all") -> int:
    """Check each hub and print the results as repo-review does."""
    # repo-review's own printers: rich tree, JSON, HTML (not in its __all__, pinned <2).
    from repo_review.__main__ import display_output

    from .runner import run_checks

    several = len(hubs) > 1
    if several and output == "json":
        print("{")
    status_code = 0
    for n, path in enumerate(hubs):
        families, results = run_checks(path, chart, select=select, ignore=ignore)
        status = _status(results)
        status_code = max(status_code, {"errors": 1, "empty": 2}.get(status, 0))
        if show != "all":
            results = [r for r in results if r.result is False or (show == "errskip" and r.result is None)]
        families = {k: v for k, v in families.items() if any(r.family == k for r in results)}
        display_output(families, results, format_opt=output, stderr=False, color=True,
                       status=status, header=_label(path) if several else "")
        if several and output == "json":
            print("," if n < len(hubs) - 1 else "")
    if several and output == "json":
        print("}")
    return status_code


def _label(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _status(results) -> str:
    if any(r.result is False for r in results):
        return "errors"
    if not results:
        return "empty"
    return "skips" if any(r.result is None for r in results) else "passed"
