"""The interactive prompt in a real terminal: `copier copy --trust` runs in a
pseudo-terminal of 80x24 (the smallest common one), its output drawn by a VT100
emulator, and a researcher's answers are typed one question at a time,
including a rejected hub name and its retry.

Questions are recognised by their help text as copier.yml renders it, so a
question added later is simply answered with its default; every question's help
must be fully visible at 80 columns, and every rejection must show what is
allowed before the terminal's edge cuts it.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import jinja2
import pexpect
import pyte
import yaml
from conftest import ROOT

COLUMNS, LINES = 80, 24
QMARK = "🎤"
DOWN, ENTER, CLEAR_LINE = "\x1b[B", "\r", "\x15"  # Ctrl-U: delete back to the line's start

# What the researcher types, by question; a question not listed gets Enter
# (its default). A choice is the value to pick with the arrow keys.
ANSWERS = {
    "hub_name": "charlie",
    "hub_description": "Ocean model analysis for the Charlie lab",
    "domain": "hub.charlie-lab.org",
    "github_orgs": "charlie-lab, pangeo-data:hub-users",
    "admin_users": "octocat",
    "cloud_provider": "aws",
    "aws_account_id": "210987654321",
    "aws_region": "eu-central-1",
    "python_version": "3.13",
    "conda_packages": "xarray, zarr>=2.18, cartopy",
    # Above the limit's own default (2): the limit's default follows it.
    "user_cpu_guarantee": "4",
    "user_memory_limit": "12",
    "apt_packages": "nco",
    "dask_backend": "kubernetes",
    "secrets_backend": "sops",
}


# Mistakes made first, by question: what is typed, and the whole line copier
# must show (within 80 columns) before the question is asked again.
MISTAKES = {
    "hub_name": ("Charlie", "'Charlie': lowercase a-z, 0-9 and -"),
    "aws_account_id": ("12345678901", "'12345678901': not 12 digits"),
    "conda_packages": ("xarray, numpy=1.26.4=py312h8753938_0", "'numpy=1.2...': no build strings"),
    # A limit below the guarantee (the default, 2 GB).
    "user_memory_limit": ("1", "'1': 2 <= GB <= 16384"),
}


class Terminal:
    """A command in a pseudo-terminal, its output kept as the screen shows it."""

    def __init__(self, argv: list[str], cwd: Path, env: dict):
        self.child = pexpect.spawn(argv[0], argv[1:], cwd=str(cwd), env=env, dimensions=(LINES, COLUMNS), encoding=None)
        terminal = self

        class Screen(pyte.Screen):
            def write_process_input(self, data):  # answers prompt_toolkit's cursor-position requests
                terminal.child.send(data)

        self.screen = Screen(COLUMNS, LINES)
        self.stream = pyte.ByteStream(self.screen)
        self.output = bytearray()
        self.log: list[str] = []  # what was typed, and why
        self.ended = False

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.ended and time.monotonic() < deadline:
            try:
                data = self.child.read_nonblocking(65536, timeout=0.05)
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                self.ended = True
                break
            self.output += data
            self.stream.feed(data)

    def wait_for(self, condition, what: str, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump(0.1)
            if result := condition():
                return result
            if self.ended:
                break
        raise AssertionError(
            f"waiting for {what}: {'the program ended' if self.ended else 'timed out'}\n" + self.report()
        )

    def send(self, keys: str, why: str) -> None:
        self.log.append(f"{why}: {keys!r}")
        self.child.send(keys)

    @property
    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def active_question(self) -> tuple[int, str] | None:
        """The row and first help line of the question whose input has the cursor
        (the row changes as the screen scrolls; the line identifies it)."""
        for row in range(self.screen.cursor.y, -1, -1):
            if self.lines[row].startswith(QMARK):
                return row, self.lines[row][len(QMARK) :].strip()
        return None

    def report(self) -> str:
        screen = "\n".join(f"{n:2}|{line}" for n, line in enumerate(self.lines))
        return (
            f"--- screen ({COLUMNS}x{LINES}), cursor at row {self.screen.cursor.y} ---\n{screen}\n"
            f"--- typed ---\n" + "\n".join(self.log)
        )

    def close(self) -> int | None:
        self.child.close(force=True)
        return self.child.exitstatus


def questions(template: Path) -> dict:
    """The questions copier may ask, from the template it runs."""
    return {
        name: spec
        for name, spec in yaml.safe_load((template / "copier.yml").read_text()).items()
        if not name.startswith("_")
        and isinstance(spec, dict)
        and spec.get("when") is not False
        and spec.get("ask") is not False
    }


def rendered_help(spec: dict, answers: dict) -> list[str]:
    """A question's help, as copier renders it with the answers so far
    (including the computed ones that help texts use)."""
    return jinja2.Environment().from_string(spec.get("help", "")).render(answers).splitlines()


def choice_moves(spec: dict, value: str) -> int:
    """How many rows down from the default the choice ``value`` is."""
    values = list(spec["choices"].values())
    return values.index(value) - values.index(spec["default"])


def test_a_researcher_answers_the_questions(template_repo, tmp_path):
    federation = tmp_path / "federation"
    federation.mkdir()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(LINES)}
    term = Terminal(
        [sys.executable, "-m", "copier", "copy", "--trust", str(template_repo), "deployments/charlie"], federation, env
    )
    specs = questions(template_repo)
    # What copier will have recorded, for rendering later help texts.
    data = template_repo / "hooks" / "hub_template" / "data"
    providers = yaml.safe_load((data / "providers.yml").read_text())
    answers: dict = {
        "versions": yaml.safe_load((data / "versions.yml").read_text()),
        "cloud": providers[specs["cloud_provider"]["default"]],
    }
    asked: list[str] = []
    try:
        previous = None
        while True:
            question = term.wait_for(
                lambda previous=previous: term.ended or ((q := term.active_question()) and q[1] != previous and q),
                "the next question",
            )
            if question is True:
                break
            row, first_line = question
            previous = first_line
            # The screen may show a help line cut at the edge: match its start.
            name = next(
                (
                    n
                    for n in specs
                    if n not in asked and (rendered_help(specs[n], answers) or [""])[0].startswith(first_line)
                ),
                None,
            )
            assert name, f"no question of copier.yml has the help {first_line!r}\n" + term.report()
            asked.append(name)
            # The whole help is on screen: no line ran past the edge.
            help_lines = rendered_help(specs[name], answers)
            shown = term.lines[row : row + len(help_lines)]
            shown[0] = shown[0][len(QMARK) :].strip()
            assert shown == help_lines, (
                f"{name}'s help is cut at {COLUMNS} columns: write it as lines of at most "
                f"{COLUMNS - 4} characters (help: |-)\n" + term.report()
            )

            if name in MISTAKES:
                # A rejected answer first: the whole message is on screen, and
                # the question stays open for another try.
                typed, says = MISTAKES[name]
                message = f"Validation error for question '{name}': {says}"
                assert len(message) <= COLUMNS, message
                term.send(CLEAR_LINE + typed + ENTER, f"{name}, rejected")
                term.wait_for(lambda message=message: message in term.lines, f"the rejection of {typed!r}")
                assert term.active_question()[1] == first_line, term.report()
                term.send(CLEAR_LINE + ANSWERS[name] + ENTER, f"{name}, retried")
            elif name in ANSWERS and "choices" in specs[name]:
                moves = choice_moves(specs[name], ANSWERS[name])
                term.send(DOWN * moves + ENTER, f"{name}: {ANSWERS[name]}")
            elif name in ANSWERS:
                term.send(CLEAR_LINE + ANSWERS[name] + ENTER, name)
            else:
                term.send(ENTER, f"{name}: the default")
            if name in ANSWERS:
                answers[name] = ANSWERS[name]
            if name == "cloud_provider":  # the computed `cloud` follows it
                answers["cloud"] = providers[answers.get(name, specs[name]["default"])]
        status = term.close()
    finally:
        term.close()
    transcript = term.output.decode(errors="replace")
    assert status == 0, f"copier exited {status}\n" + term.report()
    assert not any(line.startswith("Validation error") for line in term.lines), term.report()

    # Questions gated by `when` appeared only where they apply.
    assert {"aws_account_id", "aws_region", "aws_cluster", "sops_key"} <= set(asked)
    assert not {"gcp_project", "azure_cluster", "worker_cores_max", "worker_memory_max", "source_ref"} & set(asked)
    assert 'Your hub "charlie" is rendered' in transcript

    hub = federation / "deployments" / "charlie"
    recorded = yaml.safe_load((hub / ".copier-answers.yml").read_text())
    # Every answer survived the mistakes made on the way.
    assert set(MISTAKES) <= set(asked)
    for name, value in ANSWERS.items():
        assert recorded[name] == (float(value) if specs[name]["type"] == "float" else value), name
    assert recorded["user_cpu_limit"] == 4.0  # the default followed the guarantee
    assert recorded["staging_domain"] == "staging.hub.charlie-lab.org"
    assert recorded["image_name"] == "210987654321.dkr.ecr.eu-central-1.amazonaws.com/pangeo-hubs/charlie"
    assert recorded["sops_key"] == "arn:aws:kms:eu-central-1:210987654321:alias/charlie"
    assert (hub / ".sops.yaml").is_file() and not (hub / "secrets" / "aws-config.txt").exists()
    environment = yaml.safe_load((hub / "image" / "binder" / "environment.yml").read_text())
    assert {"python=3.13", "cartopy", "zarr>=2.18", "dask-kubernetes>=2026.3,<2027"} <= set(
        d for d in environment["dependencies"] if isinstance(d, str)
    )


def test_every_help_fits_an_80_column_prompt(template_repo):
    """The questions the researcher above was not asked, for every choice
    their help depends on (copier shows help lines unwrapped)."""
    versions = yaml.safe_load((template_repo / "hooks" / "hub_template" / "data" / "versions.yml").read_text())
    providers = yaml.safe_load((template_repo / "hooks" / "hub_template" / "data" / "providers.yml").read_text())
    for name, spec in questions(template_repo).items():
        assert spec.get("help"), f"{name} has no help"
        for provider in ("gcp", "aws", "azure"):
            for backend in ("gateway", "kubernetes"):
                context = {
                    "versions": versions,
                    "cloud_provider": provider,
                    "dask_backend": backend,
                    "cloud": providers[provider],
                }
                for line in rendered_help(spec, context):
                    assert len(line) <= COLUMNS - 4, f"{name} ({provider}, {backend}): {line!r} is too long"


def test_readme_explains_every_question(template_repo):
    documented = set(re.findall(r"`([a-z_]+)`", (ROOT / "docs" / "questions.md").read_text()))
    # Topics with their own page document their questions there.
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text()
        if "## The questions" in text:
            documented |= set(re.findall(r"`([a-z_]+)`", text[text.index("## The questions") :]))
    assert set(questions(template_repo)) <= documented
