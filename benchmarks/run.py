"""How long hub-template takes, against what it is compared with.

    .venv/bin/python benchmarks/run.py [--runs 5] [--sizes 1,20,60]

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
  itself costs per question and per file, whatever the template says. Both
  again with the copier changes of whatif_copier.py (compiled templates kept
  on disk, file-mode, libyaml): what of the template's share those changes
  would remove.
- `copier update --trust --defaults` of one hub, from v1.1.0 to v1.2.0.
- For federations of each size (--sizes): `hub-template update deployments/`
  in parallel (every CPU) and one hub at a time (`--jobs 1`), against a shell
  loop of `copier update` over the same hubs (fresh clones of one federation
  repository each); then, once the release is committed, the update of hubs
  already current; and `hub-template check` of every hub, as an operator runs
  them (a new process each). Each row gives the wall time, the time per hub,
  and CPU/wall (the CPU time of the command and everything it started, over
  the wall time: 2.0 means both of 2 CPUs were busy throughout).
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
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from whatif_copier import CHANGES, COPY_CHANGES  # noqa: E402 - benchmarks/ is this script's folder

BIN = Path(sys.executable).parent
COPIER = [str(BIN / "copier")]
# copier with the changes proposed upstream (benchmarks/whatif_copier.py).
COPIER_CHANGED = [sys.executable, str(ROOT / "benchmarks" / "whatif_copier.py"), "copier"]
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


def timed_cpu(cmd: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """Wall seconds, and CPU seconds of the command and all it started."""

    def children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    cpu = children()
    wall = timed(cmd, cwd)
    return wall, children() - cpu


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
            target, text = (
                path / "template" / Path(*(re.sub(r"{.*}", f"f{i}", part) for part in rel.parts)),
                "{{ q0 }}\n",
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return _commit_and_tag(path, len(questions))


def _commit_and_tag(path: Path, questions: int) -> Path:
    sh("git", "init", "-q", cwd=path)
    sh("git", "add", "-A", cwd=path)
    sh("git", "commit", "-q", "-m", f"{questions} questions", cwd=path)
    sh("git", "tag", "v1.0.0", cwd=path)
    return path


def bench_copy(url: str, work: Path, runs: int, copier: list[str] = COPIER) -> list[float]:
    times = []
    for i in range(runs):
        fed = work / f"copy-{i}"
        fed.mkdir(parents=True)
        sh("git", "init", "-q", cwd=fed)
        times.append(
            timed([*copier, "copy", "--trust", "--defaults", "--quiet", url, str(fed / "deployments" / "charlie")])
        )
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


def fresh_clone(fed: Path, into: Path, hubs: int | None = None) -> Path:
    """A clone of the federation, keeping only its first `hubs` hubs."""
    sh("git", "clone", "-q", str(fed), str(into))
    if hubs is not None:
        extra = sorted((into / "deployments").iterdir())[hubs:]
        if extra:
            sh("git", "rm", "-r", "-q", "--", *(str(p.relative_to(into)) for p in extra), cwd=into)
            sh("git", "commit", "-q", "-m", f"keep {hubs} hubs", cwd=into)
    return into


LOOP = 'for hub in deployments/*/; do (cd "$hub" && "$@" update --trust --defaults --quiet); done'


def _tree(fed: Path) -> tuple[dict[str, bytes], str, str]:
    from template_versions import snapshot

    return snapshot(fed / "deployments"), git_out(fed, "ls-files", "-s"), git_out(fed, "status", "--porcelain")


def git_out(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def bench_federation(
    base: Path, work: Path, size: int, what_ifs: list[tuple[str, ...]]
) -> dict[str, tuple[float, float]]:
    """(wall, CPU) of each federation-wide command over `size` hubs."""
    figures = {}
    parallel = fresh_clone(base, work / f"parallel-{size}", size)
    figures["update, parallel"] = timed_cpu([*HUB_TEMPLATE, "update", "deployments"], cwd=parallel)
    _expect_all_updated(parallel, size)
    sequential = fresh_clone(base, work / f"sequential-{size}", size)
    figures["update, one at a time"] = timed_cpu(
        [*HUB_TEMPLATE, "update", "deployments", "--jobs", "1"], cwd=sequential
    )
    _expect_all_updated(sequential, size)
    looped = fresh_clone(base, work / f"loop-{size}", size)
    figures["shell loop of copier update"] = timed_cpu(["bash", "-c", LOOP, "loop", *COPIER], cwd=looped)
    _expect_all_updated(looped, size)
    for changes in what_ifs:  # the changes to copier proposed upstream (whatif_copier.py)
        name = "what-if: copier changed, parallel" if changes == CHANGES else f"what-if: only {', '.join(changes)}"
        changed = fresh_clone(base, work / f"what-if-{size}-{'-'.join(changes)}", size)
        os.environ["HUB_TEMPLATE_WHAT_IF"] = ",".join(changes)
        try:
            figures[name] = timed_cpu(
                [sys.executable, str(ROOT / "benchmarks" / "whatif_copier.py"), "update", "deployments"], cwd=changed
            )
        finally:
            del os.environ["HUB_TEMPLATE_WHAT_IF"]
        _expect_all_updated(changed, size)
        if _tree(changed) != _tree(parallel):
            raise SystemExit(f"the what-if left other bytes or git state in {changed} than {parallel}")
    sh("git", "commit", "-q", "-a", "-m", "hub-template v1.2.0", cwd=parallel)  # reviewed and committed
    figures["update, already current"] = timed_cpu([*HUB_TEMPLATE, "update", "deployments"], cwd=parallel)
    hubs = [str(p) for p in sorted((parallel / "deployments").iterdir())]
    from conftest import CHART as chart  # the tests' chart data (HUB_TEMPLATE_CHART_DATA)

    check = [*HUB_TEMPLATE, "check", *hubs, *(["--chart", str(chart)] if chart.is_dir() else []), "--format", "json"]
    start = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(check, capture_output=True, text=True)  # exit 1 is fine: the template's placeholders fail
    end = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures["check, every hub"] = (
        time.perf_counter() - t0,
        end.ru_utime + end.ru_stime - start.ru_utime - start.ru_stime,
    )
    return figures


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
    from conftest import CHART  # the tests' chart data (HUB_TEMPLATE_CHART_DATA)

    args = parser.parse_args([str(hub), "--chart", str(CHART), "--jobs", "1"])
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
        chart = (
            os.environ.get("HUB_TEMPLATE_CHART_DATA") or Path(__file__).resolve().parents[2] / "shared/charts/daskhub"
        )
        done = subprocess.run(
            [
                *HUB_TEMPLATE,
                "preview",
                str(hub),
                "--smoke",
                "--chart",
                str(chart),
                "--artifacts",
                str(hub.parent / "art"),
            ],
            capture_output=True,
            text=True,
            timeout=1800,
        )
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
    parser.add_argument("--sizes", default="1,20,60", help="federation sizes, comma separated")
    parser.add_argument("--preview-runs", type=int, default=1, help="runs of hub-template preview --smoke (0: none)")
    args = parser.parse_args(argv)
    sizes = sorted({int(n) for n in args.sizes.split(",")})

    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=150)  # a readable table in a log or a file
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="hub-template-bench.") as tmp:
        work = Path(tmp)
        os.environ.update(
            {
                "COPIER_CACHE_DIR": str(work / "copier-cache"),  # never the user's cache
                "GIT_AUTHOR_NAME": "bench",
                "GIT_AUTHOR_EMAIL": "bench@hub-template.invalid",
                "GIT_COMMITTER_NAME": "bench",
                "GIT_COMMITTER_EMAIL": "bench@hub-template.invalid",
            }
        )
        from template_versions import publish_versions

        console.print("publishing the template's releases ...")
        url = as_remote(publish_versions(work / "hub-template", work / "sources"), work / "remote" / "hub-template.git")
        floor_url = as_remote(minimal_template(work / "minimal"), work / "remote" / "minimal.git")
        shape_url = as_remote(same_shape_template(work / "shape"), work / "remote" / "shape.git")
        copies = {
            "hub": (url, COPIER),
            "floor": (floor_url, COPIER),
            "shape": (shape_url, COPIER),
            "hub, copier changed": (url, COPIER_CHANGED),
            "shape, copier changed": (shape_url, COPIER_CHANGED),
        }
        os.environ["HUB_TEMPLATE_WHAT_IF"] = ",".join(COPY_CHANGES)
        for name, (source, copier) in copies.items():  # warm copier's clone cache and the OS file cache
            bench_copy(source, work / f"warm-{name}", 1, copier)

        console.print(f"copier copy, {args.runs} runs each ...")
        copy_times: dict[str, list[float]] = {name: [] for name in copies}
        for i in range(args.runs):  # interleaved, so all see the same machine
            for name, (source, copier) in copies.items():
                copy_times[name] += bench_copy(source, work / f"{name}-{i}", 1, copier)
        del os.environ["HUB_TEMPLATE_WHAT_IF"]
        hub_copy, floor_copy, shape_copy = copy_times["hub"], copy_times["floor"], copy_times["shape"]
        hub_changed, shape_changed = copy_times["hub, copier changed"], copy_times["shape, copier changed"]
        _expect_same_copy(work / "hub-0", work / "hub, copier changed-0")

        console.print(f"a federation of {max(sizes)} hubs at v1.1.0 ...")
        base = build_federation(url, work / "federation", max(sizes))

        console.print(f"copier update of one hub, {args.runs} runs ...")
        single = []
        for i in range(args.runs):
            fed = fresh_clone(base, work / f"single-{i}")
            hub = fed / "deployments" / f"hub{i % max(sizes):02d}"
            single.append(timed([*COPIER, "update", "--trust", "--defaults", "--quiet"], cwd=hub))

        federations = {}
        for size in sizes:
            console.print(f"{size} hubs: update in parallel, one at a time, a shell loop; current; check ...")
            what_ifs = [CHANGES] if size == max(sizes) else []
            if size == min((n for n in sizes if n > 1), default=None) and size != max(sizes):
                what_ifs = [(change,) for change in CHANGES]  # what each change buys alone
            federations[size] = bench_federation(base, work, size, what_ifs)

        console.print(f"hub-template check of one hub, {args.runs} runs ...")
        check, check_note = bench_check(work / "hub-0" / "copy-0" / "deployments" / "charlie", args.runs)  # as rendered

        console.print(f"hub-template preview --smoke of one hub, {args.preview_runs} runs ...")
        preview, preview_note = bench_preview(work / "hub-0" / "copy-0" / "deployments" / "charlie", args.preview_runs)
    load_after = os.getloadavg()

    med = statistics.median
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    table = Table(
        title=f"hub-template benchmarks, {when} (median seconds; Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, load average {load[0]:.1f} before, {load_after[0]:.1f} after)"
    )
    for column in ("measurement", "median s", "runs", "compared with", "ratio", "goal"):
        table.add_column(column, justify="right" if column in ("median s", "runs", "ratio") else "left")
    render_ratio = med(hub_copy) / med(floor_copy)
    logic_ratio = med(hub_copy) / med(shape_copy)
    table.add_row(
        "copier copy --defaults, hub-template",
        f"{med(hub_copy):.2f}",
        str(len(hub_copy)),
        f"minimal template {med(floor_copy):.2f} s",
        f"{render_ratio:.2f}",
        "",
    )
    table.add_row(
        "",
        "",
        "",
        f"same shape, no logic {med(shape_copy):.2f} s",
        f"{logic_ratio:.2f}",
        _goal(logic_ratio <= 1.10, "<= 1.10"),
    )
    table.add_row(
        f"the same two, copier changed ({', '.join(COPY_CHANGES)})",
        f"{med(hub_changed):.2f}",
        str(len(hub_changed)),
        f"same shape, no logic {med(shape_changed):.2f} s",
        f"{med(hub_changed) / med(shape_changed):.2f}",
        "",
    )
    table.add_row("copier update, one hub", f"{med(single):.2f}", str(len(single)), "", "", "")
    if check:
        table.add_row(
            "hub-template check, one hub (in-process)", f"{med(check):.2f}", str(len(check)), check_note, "", ""
        )
    else:
        table.add_row("hub-template check, one hub", "-", "0", check_note, "", "")
    for name, values in preview.items():
        table.add_row(f"hub-template preview: {name}", f"{med(values):.1f}", str(len(values)), "", "", "")
    if not preview:
        table.add_row("hub-template preview --smoke", "-", "0", preview_note, "", "")
    console.print(table)

    scaling = Table(title="a federation's commands as it grows (one run each; per hub = wall / hubs)")
    for column in ("hubs", "command", "wall s", "per hub s", "CPU/wall", "vs shell loop", "goal"):
        scaling.add_column(column, justify="left" if column in ("command", "goal") else "right")
    for size, figures in federations.items():
        loop_wall = figures["shell loop of copier update"][0]
        for name, (wall, cpu) in figures.items():
            goal = ""
            if name == "update, parallel":
                goal = _goal(wall / size <= 0.5 and wall / loop_wall <= 0.25, "<= 0.5 s/hub, <= 0.25x loop")
            elif name == "update, already current":
                goal = _goal(wall / size <= 0.010, "<= 10 ms/hub")
            elif name == "check, every hub" and size >= 60:
                goal = _goal(wall <= 5, "<= 5 s")
            versus = f"{wall / loop_wall:.2f}" if "current" not in name and "check" not in name else ""
            scaling.add_row(str(size), name, f"{wall:.2f}", f"{wall / size:.3f}", f"{cpu / wall:.2f}", versus, goal)
    console.print(scaling)
    return 0


def _goal(met: bool, goal: str) -> str:
    return f"[green]{goal} met[/]" if met else f"[red]{goal} missed[/]"


def _expect_same_copy(plain: Path, changed: Path) -> None:
    """The what-if copy only counts if it rendered the very same hub."""
    from template_versions import snapshot

    hub = Path("copy-0") / "deployments" / "charlie"
    if snapshot(plain / hub) != snapshot(changed / hub):
        raise SystemExit(f"the what-if copy in {changed} differs from the plain one in {plain}")


def _expect_all_updated(fed: Path, hubs: int) -> None:
    """A timing only counts if every hub really reached v1.2.0."""
    done = sum("_commit: v1.2.0" in p.read_text() for p in (fed / "deployments").glob("*/.copier-answers.yml"))
    if done != hubs:
        raise SystemExit(f"only {done} of {hubs} hubs in {fed} reached v1.2.0")


if __name__ == "__main__":
    sys.exit(main())
