"""How many hubs the operators' tools work on at once: the one `--jobs` option
`hub-template check` and `hub-template update` share."""

from __future__ import annotations

import argparse
import contextlib
import os


def cpus() -> int:
    """The CPUs this process may use: os.process_cpu_count (Python 3.13), else
    its affinity where the system has one, else every CPU."""
    if hasattr(os, "process_cpu_count"):
        return os.process_cpu_count() or 1
    with contextlib.suppress(AttributeError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def add_jobs_option(parser: argparse.ArgumentParser, what: str) -> None:
    """`--jobs N` / `-j N`: ``what`` says what runs N at a time."""
    parser.add_argument(
        "--jobs", "-j", type=int, default=cpus(), metavar="N", help=f"{what} (default: the CPUs available, {cpus()})"
    )
