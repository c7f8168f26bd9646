"""`hub-template adopt deployments/<hub>`: a hand-made hub comes under the template.

It infers the template's answers from the hub's files (hub_template.adopt_answers),
shows them, asks for what it cannot infer (or takes `--data NAME=VALUE`),
renders the federation's template at its newest release into a scratch folder
with copier's own API, and writes only that render's answers file into the
hub. Every other file stays byte for byte: from then on the hub's files are
its own edits over that render, which copier's next `update` replays (copier
diffs the hub against a fresh render of the recorded `_commit`). A file the
template renders and the hub lacks stays absent (copier's update does not
bring back a file a hub deleted) unless `--take` accepts it.

Like `update`, it runs only the federation's pinned template (its tasks run),
and every git command, copier's included, runs hardened.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from .adopt_answers import Inferred, infer, linked, missing, read_yaml, unwrap
from .copier_settings import ANSWERS_FILE
from .update.repository import copier_git, repo_top, status
from .update.sources import TemplateSource, pinned

# Files whose keys are compared with the render's, to name the settings the
# template does not express.
VALUES = ("config/common.yaml", "config/staging.yaml", "config/prod.yaml")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hub", type=Path, metavar="HUB_DIR", help="the hand-made hub's folder, deployments/<hub>")
    parser.add_argument(
        "--data",
        "-d",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an answer, over what the hub's files say (repeat for several)",
    )
    parser.add_argument(
        "--defaults",
        action="store_true",
        help="ask nothing: fail, naming each answer neither the files nor --data give",
    )
    parser.add_argument("--template", metavar="SRC", help="the federation's template (default: copier-settings.yml)")
    parser.add_argument("--vcs-ref", metavar="REF", help="adopt at this tag instead of the newest release")
    parser.add_argument(
        "--take",
        action="append",
        default=[],
        metavar="PATH",
        help="also add this file of the template's render that the hub lacks (repeat for several)",
    )


def refusal(hub: Path) -> str | None:
    """Why `hub` cannot be adopted, on one line, or None."""
    if hub.is_symlink() or not hub.is_dir():
        return f"{hub}: not a folder; give a hub's folder, like deployments/<hub>"
    if (hub / ANSWERS_FILE).exists() or (hub / ANSWERS_FILE).is_symlink():
        return f"{hub}: has {ANSWERS_FILE}, already under the template; run `hub-template update` instead"
    if not any((hub / name).is_file() for name in ("hubploy.yaml", "config/common.yaml")):
        return f"{hub}: not a hub (no hubploy.yaml, no config/common.yaml); give deployments/<hub>"
    top = repo_top(hub)
    if top is None:
        return f"{hub}: not in a git repository; commit the hub in its federation's repository first"
    changes = status(top, str(hub.resolve().relative_to(top)))
    if changes:
        shown = ", ".join(entry[3:] for entry in changes[:3]) + (", ..." if len(changes) > 3 else "")
        return f"{hub}: uncommitted changes ({shown}); commit or stash them, then adopt"
    return None


def parse_data(pairs: list[str]) -> tuple[dict[str, Any], str | None]:
    """--data NAME=VALUE pairs, each VALUE read as YAML (as copier reads it)."""
    from .safe_yaml import load_untrusted

    data: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            return {}, f"--data {pair!r}: write NAME=VALUE, like --data domain=ocean.pangeo.io"
        data[name] = load_untrusted(value) if value else ""
    return data, None


def ask(name: str, answers: dict[str, Any]) -> None:
    """Prompt for an answer on the terminal, read as YAML as copier reads it."""
    from .safe_yaml import load_untrusted

    while not (value := input(f"{name}? ").strip()):
        pass
    answers[name] = load_untrusted(value)


def render(source: TemplateSource, ref: str, answers: dict[str, Any], scratch: Path) -> Path:
    """The template at `ref` rendered with `answers` into scratch/<hub>."""
    from copier import run_copy

    dst = scratch / str(answers["hub_name"])
    with copier_git(source.rewrites()):
        run_copy(source.src, str(dst), data=answers, vcs_ref=ref, defaults=True, unsafe=True, quiet=True)
    return dst


def files(folder: Path) -> set[str]:
    """Every file and link under `folder` (outside .git), never entering a linked folder."""
    found = set()
    for root, dirs, names in os.walk(folder):  # os.walk does not follow links to folders
        dirs[:] = [d for d in dirs if d != ".git"]
        here = Path(root)
        found |= {str((here / n).relative_to(folder)) for n in names}
        found |= {str((here / d).relative_to(folder)) for d in dirs if (here / d).is_symlink()}
    return found


def _paths(tree: Any, prefix: str = "") -> set[str]:
    if not isinstance(tree, dict) or not tree:
        return {prefix} if prefix else set()
    return set().union(*(_paths(v, f"{prefix}.{k}" if prefix else str(k)) for k, v in tree.items()))


def unexpressed(hub: Path, rendered: Path, umbrella: str | None) -> list[str]:
    """The hub's helm settings the template's values do not hold: each key
    path, cut at the first key the render lacks."""
    found: set[str] = set()
    for relpath in VALUES:
        mine = unwrap(read_yaml(hub, relpath, []))[1]
        theirs = unwrap(read_yaml(rendered, relpath, []))[1]
        for path in _paths(mine):
            keys, tree, kept = path.split("."), theirs, []
            for key in keys:
                kept.append(key)
                if not isinstance(tree, dict) or key not in tree:
                    found.add(".".join(kept))
                    break
                tree = tree[key]
    return sorted(found)


def report(hub: Path, rendered: Path, inferred: Inferred, taken: list[str]) -> list[str]:
    lines = [f"  {note}" for note in inferred.notes]
    lines += [f"  helm setting kept as the hub's own: {key}" for key in unexpressed(hub, rendered, inferred.umbrella)]
    mine, theirs = files(hub), files(rendered) - {ANSWERS_FILE}
    for name in sorted(mine - theirs):
        lines.append(f"  {name}: the hub's own file, kept")
    for name in sorted(mine & theirs):
        if (hub / name).is_symlink():
            lines.append(f"  {name}: a link, kept as it is (never followed)")
        elif (hub / name).read_bytes() != (rendered / name).read_bytes():
            lines.append(f"  {name}: the hub's own edit over the template's, kept by updates")
    for name in sorted(theirs - mine - set(taken)):
        lines.append(f"  {name}: rendered by the template, absent here: stays absent (--take {name} adds it)")
    return lines


def run(args: argparse.Namespace) -> int:
    hub: Path = args.hub
    why = refusal(hub)
    if why:
        print(f"hub-template adopt: {why}", file=sys.stderr)
        return 2
    data, why = parse_data(args.data)
    src, error = pinned(hub.resolve().parent, args.template)
    why = why or error
    if why:
        print(f"hub-template adopt: {why}", file=sys.stderr)
        return 2
    assert src is not None
    inferred = infer(hub)
    answers = {**inferred.answers, **data}
    print(f"Answers for {hub}:")
    for name, value in sorted(answers.items()):
        print(f"  {name}: {value!r}  ({'--data' if name in data else inferred.origins[name]})")
    unanswered = missing(answers)
    if unanswered and (args.defaults or not sys.stdin.isatty()):
        for name in unanswered:
            print(f"hub-template adopt: {hub}: no answer for {name}; give it: --data={name}=VALUE", file=sys.stderr)
        return 2
    while unanswered := missing(answers):  # one at a time: a cloud's answer names its own questions
        ask(unanswered[0], answers)

    with tempfile.TemporaryDirectory(prefix="hub-template-adopt-") as scratch:
        source = TemplateSource(src)
        source.fetch(Path(scratch) / "mirror", args.vcs_ref)
        if source.error or source.newest is None:
            print(f"hub-template adopt: {source.error}", file=sys.stderr)
            return 2
        try:
            rendered = render(source, source.newest, answers, Path(scratch))
        except ValueError as refused:  # a copier validator: one line naming the answer
            print(f"hub-template adopt: {hub}: {str(refused).splitlines()[0]}", file=sys.stderr)
            return 2
        # Only a file of the render, written where no link leads out of the hub.
        offered = files(rendered) - files(hub) - {ANSWERS_FILE}
        taken = [name for name in args.take if name in offered and not linked(hub, name)]
        for name in set(args.take) - set(taken):
            print(
                f"hub-template adopt: --take {name}: not a file the template renders and the hub lacks", file=sys.stderr
            )
            return 2
        lines = report(hub, rendered, inferred, taken)
        # Write only now: the answers file, and the files the operator took.
        for name in [ANSWERS_FILE, *taken]:
            (hub / name).parent.mkdir(parents=True, exist_ok=True)
            (hub / name).write_bytes((rendered / name).read_bytes())
    print(f"{hub} is under hub-template {source.newest}: {ANSWERS_FILE} written, every other file kept.")
    print("What the template does not express (the hub's own, kept):")
    print("\n".join(lines) or "  nothing")
    print(f"Commit it: git add {hub} && git commit -m 'Adopt {hub.name} into hub-template'")
    return 0
