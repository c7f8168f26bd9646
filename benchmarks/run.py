"""How long hub-template takes, against what it is compared with.

    .venv/bin/python benchmarks/run.py [--runs 5] [--hubs 20] [--federation-runs 3]

(from a checkout with `pip install -e '.[test]'`: it reuses the tests' template
releases, tests/template_versions.py.)

Everything happens in a temporary folder: the template is published as real
tagged releases (tests/template_versions.py: v1.1.0 is the current template,
v1.2.0 a maintainer's next change), served as a remote (a file://…/*.git
URL, so copier takes the same path as for GitHub: its clone cache and git's
transport), and hubs are rendered into a federation repository. Each figure is
the median of several runs:

- `copier copy --trust --defaults` of hub-template, and of a minimal
  one-question template (the floor every copier template pays: interpreter,
  copier's imports, the clone). Goal: at most 1.25x the floor. Also of a
  template with hub-template's shape but none of its logic (as many plain
  questions, the same files and folders, each file one line): what copier
  itself costs per question and per file, whatever the template says.
- `copier update --trust --defaults` of one hub, from v1.1.0 to v1.2.0.
- `hub-template update deployments/` over N hubs, against a shell loop of
  `copier update` over the same hubs (fresh clones of one federation
  repository each). Goal: ratio below 1. Then both again once the hubs are
  current (the release is committed), as a federation's CI would run them.
- `hub-template check` of one hub, in this process (no interpreter start-up).
- `hub-template preview --smoke` of one hub (where Chromium and
  configurable-http-proxy are installed): hub ready, the user's server ready,
  the dask panel's first cluster, the welcome notebook's dask results, and the
  memory of the whole stack, idle and with a server and a cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
BIN = Path(sys.executable).parent
COPIER = [str(BIN / "copier")]
HUB_TEMPLATE = [str(BIN / "hub-template")]

MINIMAL = {
    "copier.yml": "_subdirectory: template\nname:\n  type: str\n  help: Your name\n  default: world\n",
    "template/{{_copier_conf.answers_file}}.jinja": "{{ _copier_answers | to_nice_yaml }}",
    "template/hello.txt.jinja": "Hello {{ name }}\n",
}


def sh(*cmd: str, cwd: Path | None = None) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)


def timed(cmd: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return elapsed


def as_remote(repo: Path, into: Path) -> str:
    sh("git", "clone", "-q", "--bare", str(repo), str(into))
    return into.as_uri()


def minimal_template(path: Path) -> Path:
    for name, text in MINIMAL.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return _commit_and_tag(path, 1)


def same_shape_template(path: Path) -> Path:
    """hub-template's questions and files without their logic: one plain
    question per question, one line per file, the same folders."""
    import re

    import yaml

    questions = [q for q in yaml.safe_load((ROOT / "copier.yml").read_text()) if not q.startswith("_")]
    lines = ["_subdirectory: template"]
    for i, _ in enumerate(questions):
        lines += [f"q{i}:", "  type: str", f"  default: answer{i}"]
    (path / "template").mkdir(parents=True)
    (path / "copier.yml").write_text("\n".join(lines) + "\n")
    for i, file in enumerate(p for p in sorted((ROOT / "template").rglob("*")) if p.is_file()):
        rel = file.relative_to(ROOT / "template")
        if "answers_file" in rel.name:
            target, text = path / "template" / rel, "{{ _copier_answers | to_nice_yaml }}"
        else:
            target, text = path / "template" / Path(*(re.sub(r"{.*}", f"f{i}", part) for part in rel.parts)), "{{ q0 }}\n"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return _commit_and_tag(path, len(questions))


def _commit_and_tag(path: Path, questions: int) -> Path:
    sh("git", "init", "-q", cwd=path)
    sh("git", "add", "-A", cwd=path)
    sh("git", "commit", "-q", "-m", f"{questions} questions", cwd=path)
    sh("git", "tag", "v1.0.0", cwd=path)
    return path


def bench_copy(url: str, work: Path, runs: int) -> list[float]:
    times = []
    for i in range(runs):
        fed = work / f"copy-{i}"
        fed.mkdir(parents=True)
        sh("git", "init", "-q", cwd=fed)
        times.append(timed([*COPIER, "copy", "--trust", "--defaults", "--quiet", url, str(fed / "deployments" / "charlie")]))
    return times


def build_federation(url: str, path: Path, hubs: int) -> Path:
    """N hubs at v1.1.0, each edited the way operators do, committed."""
    from template_versions import commit, edit_like_a_user, federation, make_hub

    fed = federation(path)
    for i in range(hubs):
        hub = make_hub(url, fed, f"hub{i:02d}", "v1.1.0")
        edit_like_a_user(hub)
    commit(fed, "the hubs' own edits")
    return fed


def fresh_clone(fed: Path, into: Path) -> Path:
    sh("git", "clone", "-q", str(fed), str(into))
    return into


def check_command():
    try:
        from hub_template.checks import command
    except ImportError as error:
        return None, f"not available yet ({error})"
    return command, ""


def bench_check(hub: Path, runs: int) -> tuple[list[float], str]:
    command, why = check_command()
    if command is None:
        return [], why
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args([str(hub), "--chart", str(ROOT.parent / "shared" / "charts" / "daskhub")])
    times = []
    for _ in range(runs + 1):  # the first run imports the checks' modules: not counted
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            start = time.perf_counter()
            code = command.run(args)
            times.append(time.perf_counter() - start)
    return times[1:], f"exit {code}; first run, with imports, {times[0]:.2f} s"


def bench_preview(hub: Path, runs: int) -> tuple[dict[str, list[float]], str]:
    """Figures `hub-template preview --smoke` prints, over `runs` runs."""
    import re
    import shutil

    if runs < 1 or not Path("/usr/bin/chromium").exists() or not shutil.which("configurable-http-proxy"):
        return {}, "needs /usr/bin/chromium and configurable-http-proxy"
    figures: dict[str, list[float]] = {}
    for _ in range(runs):
        chart = os.environ.get("HUB_TEMPLATE_CHART_DATA") or Path(__file__).resolve().parents[2] / "shared/charts/daskhub"
        done = subprocess.run([*HUB_TEMPLATE, "preview", str(hub), "--smoke", "--chart", str(chart),
                               "--artifacts", str(hub.parent / "art")],
                              capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            return {}, f"preview --smoke failed: {(done.stderr.strip().splitlines() or ['?'])[-1][:80]}"
        out = done.stdout
        figures.setdefault("hub ready (s)", []).append(float(re.search(r"hub ready in ([\d.]+) s", out)[1]))
        figures.setdefault("idle stack memory (MiB)", []).append(float(re.search(r"idle stack memory: (\d+)", out)[1]))
        summary = re.search(r"^smoke: passed; (.*)$", out, re.M)[1]
        for part in summary.split(", "):
            name, _, value = part.rpartition(": ")
            figures.setdefault(name, []).append(float(value))
    return figures, ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each single measurement")
    parser.add_argument("--hubs", type=int, default=20, help="hubs in the federation")
    parser.add_argument("--federation-runs", type=int, default=3, help="runs of each federation-wide update")
    parser.add_argument("--preview-runs", type=int, default=1, help="runs of hub-template preview --smoke (0: none)")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=140)  # a readable table in a log or a file
    with tempfile.TemporaryDirectory(prefix="hub-template-bench.") as tmp:
        work = Path(tmp)
        os.environ.update({
            "COPIER_CACHE_DIR": str(work / "copier-cache"),  # never the user's cache
            "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@hub-template.invalid",
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@hub-template.invalid",
        })
        from template_versions import publish_versions

        console.print("publishing the template's releases ...")
        url = as_remote(publish_versions(work / "hub-template", work / "sources"), work / "remote" / "hub-template.git")
        floor_url = as_remote(minimal_template(work / "minimal"), work / "remote" / "minimal.git")
        shape_url = as_remote(same_shape_template(work / "shape"), work / "remote" / "shape.git")
        copies = {"hub": url, "floor": floor_url, "shape": shape_url}
        for name, source in copies.items():  # warm copier's clone cache and the OS file cache
            bench_copy(source, work / f"warm-{name}", 1)

        console.print(f"copier copy, {args.runs} runs each ...")
        copy_times: dict[str, list[float]] = {name: [] for name in copies}
        for i in range(args.runs):  # interleaved, so all see the same machine
            for name, source in copies.items():
                copy_times[name] += bench_copy(source, work / f"{name}-{i}", 1)
        hub_copy, floor_copy, shape_copy = copy_times["hub"], copy_times["floor"], copy_times["shape"]

        console.print(f"a federation of {args.hubs} hubs at v1.1.0 ...")
        base = build_federation(url, work / "federation", args.hubs)

        console.print(f"copier update of one hub, {args.runs} runs ...")
        single = []
        for i in range(args.runs):
            fed = fresh_clone(base, work / f"single-{i}")
            hub = fed / "deployments" / f"hub{i % args.hubs:02d}"
            single.append(timed([*COPIER, "update", "--trust", "--defaults", "--quiet"], cwd=hub))

        console.print(f"{args.hubs} hubs: hub-template update vs a shell loop, {args.federation_runs} runs each ...")
        loop_script = 'for hub in deployments/*/; do (cd "$hub" && "$@" update --trust --defaults --quiet); done'
        federation, loop, federation_current, loop_current = [], [], [], []
        for i in range(args.federation_runs):
            fed = fresh_clone(base, work / f"fed-{i}")
            federation.append(timed([*HUB_TEMPLATE, "update", "deployments"], cwd=fed))
            _expect_all_updated(fed, args.hubs)
            looped = fresh_clone(base, work / f"loop-{i}")
            loop.append(timed(["bash", "-c", loop_script, "loop", *COPIER], cwd=looped))
            _expect_all_updated(looped, args.hubs)
        for repo in (fed, looped):  # the release is reviewed and committed
            sh("git", "commit", "-q", "-a", "-m", "hub-template v1.2.0", cwd=repo)
        federation_current.append(timed([*HUB_TEMPLATE, "update", "deployments"], cwd=fed))
        loop_current.append(timed(["bash", "-c", loop_script, "loop", *COPIER], cwd=looped))

        console.print(f"hub-template check of one hub, {args.runs} runs ...")
        check, check_note = bench_check(work / "hub-0" / "copy-0" / "deployments" / "charlie", args.runs)  # as rendered

        console.print(f"hub-template preview --smoke of one hub, {args.preview_runs} runs ...")
        preview, preview_note = bench_preview(work / "hub-0" / "copy-0" / "deployments" / "charlie", args.preview_runs)

    med = statistics.median
    table = Table(title=f"hub-template benchmarks (median seconds; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    for column in ("measurement", "median s", "runs", "compared with", "ratio", "goal"):
        table.add_column(column, justify="right" if column in ("median s", "runs", "ratio") else "left")
    render_ratio = med(hub_copy) / med(floor_copy)
    fed_ratio = med(federation) / med(loop)
    table.add_row("copier copy --defaults, hub-template", f"{med(hub_copy):.2f}", str(len(hub_copy)),
                  f"minimal template {med(floor_copy):.2f} s", f"{render_ratio:.2f}", _goal(render_ratio <= 1.25, "<= 1.25"))
    table.add_row("", "", "", f"same shape, no logic {med(shape_copy):.2f} s",
                  f"{med(hub_copy) / med(shape_copy):.2f}", "")
    table.add_row("copier update, one hub", f"{med(single):.2f}", str(len(single)), "", "", "")
    table.add_row(f"hub-template update, {args.hubs} hubs", f"{med(federation):.2f}", str(len(federation)),
                  f"shell loop of copier update {med(loop):.2f} s", f"{fed_ratio:.2f}", _goal(fed_ratio < 1, "< 1"))
    table.add_row(f"hub-template update, {args.hubs} hubs already current", f"{med(federation_current):.2f}",
                  str(len(federation_current)), f"shell loop {med(loop_current):.2f} s",
                  f"{med(federation_current) / med(loop_current):.2f}", "")
    if check:
        table.add_row("hub-template check, one hub (in-process)", f"{med(check):.2f}", str(len(check)), check_note, "", "")
    else:
        table.add_row("hub-template check, one hub", "-", "0", check_note, "", "")
    for name, values in preview.items():
        table.add_row(f"hub-template preview: {name}", f"{med(values):.1f}", str(len(values)), "", "", "")
    if not preview:
        table.add_row("hub-template preview --smoke", "-", "0", preview_note, "", "")
    console.print(table)
    return 0


def _goal(met: bool, goal: str) -> str:
    return f"[green]{goal} met[/]" if met else f"[red]{goal} missed[/]"


def _expect_all_updated(fed: Path, hubs: int) -> None:
    """A timing only counts if every hub really reached v1.2.0."""
    done = sum("_commit: v1.2.0" in p.read_text() for p in (fed / "deployments").glob("*/.copier-answers.yml"))
    if done != hubs:
        raise SystemExit(f"only {done} of {hubs} hubs in {fed} reached v1.2.0")


if __name__ == "__main__":
    sys.exit(main())
