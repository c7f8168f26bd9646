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

import json
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

# The default path, as a researcher takes it: what they type, by question; a
# question not listed gets Enter (its default). A choice is the value to pick
# with the arrow keys. Names as people paste them: URLs, an account id with
# the console's dashes.
ANSWERS = {
    "hub_name": "charlie",
    "hub_description": "Ocean model analysis for the Charlie lab",
    "github_orgs": "https://github.com/uw-glaciology, https://github.com/orgs/pangeo-data/teams/hub-users",
    "domain": "https://glacierhub.ess.example.edu/",
    "cloud_provider": "aws",
    "aws_account_id": "1234-5678-9012",
    "aws_region": "eu-central-1",
    "conda_packages": "xarray, zarr>=2.18, cartopy",
}

# Mistakes made first, by question: what is typed, and the whole line copier
# must show (within 80 columns) before the question is asked again.
MISTAKES = {
    "hub_name": ("Charlie", "'Charlie': lowercase a-z, 0-9 and -"),
    "aws_account_id": ("12345678901", "'12345678901': not 12 digits"),
    "conda_packages": ("xarray, numpy=1.26.4=py312h8753938_0", "'numpy=1.2...': no build strings"),
}

# The customised path: sizes and limits as people write them.
CUSTOM_ANSWERS = {
    "hub_name": "charlie",
    "cloud_provider": "aws",
    "aws_account_id": "210987654321",
    "customise": "y",
    "worker_cores": "500m",
    "worker_memory": "4 Gi",
    "worker_cores_max": "0.5",
    "worker_memory_max": "4096M",
    "cluster_max_memory": "4GB",
    "max_users": "80 users",
    "user_storage": "20Gi",
    "idle_timeout_minutes": "1.5h",
}
CUSTOM_MISTAKES = {
    # A limit below its guarantee names the guarantee.
    "worker_cores_max": ("0.25", "'0.25': < worker_cores (0.5)"),
    # copier's own cast would say only `Invalid input` here.
    "max_users": ("ten", "'ten': a whole number, like 50"),
    "worker_memory": ("4 Gx", "'4 Gx': not GB, like 4GB"),
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


def answer_in_a_terminal(template_repo, tmp_path, typed: dict, mistakes: dict) -> tuple[list[str], str, Path]:
    """`copier copy --trust` in a real terminal, each question answered from
    `typed` (after the mistake of `mistakes`, if any) or with Enter: the
    questions asked, in order, what the terminal showed, and the hub."""
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

            if name in mistakes:
                # A rejected answer first: the whole message is on screen, and
                # the question stays open for another try.
                wrong, says = mistakes[name]
                message = f"Validation error for question '{name}': {says}"
                assert len(message) <= COLUMNS, message
                term.send(CLEAR_LINE + wrong + ENTER, f"{name}, rejected")
                term.wait_for(lambda message=message: message in term.lines, f"the rejection of {wrong!r}")
                assert term.active_question()[1] == first_line, term.report()
                term.send(CLEAR_LINE + typed[name] + ENTER, f"{name}, retried")
            elif name in typed and "choices" in specs[name]:
                moves = choice_moves(specs[name], typed[name])
                term.send(DOWN * moves + ENTER, f"{name}: {typed[name]}")
            elif name in typed and specs[name]["type"] == "bool":
                term.send(typed[name], f"{name}: {typed[name]}")
            elif name in typed:
                term.send(CLEAR_LINE + typed[name] + ENTER, name)
            else:
                term.send(ENTER, f"{name}: the default")
            answers[name] = typed.get(name, specs[name].get("default"))
            if specs[name]["type"] == "bool":
                answers[name] = typed.get(name, "n") == "y" if name in typed else specs[name].get("default")
            if name == "cloud_provider":  # the computed `cloud` follows it
                answers["cloud"] = providers[answers.get(name, specs[name]["default"])]
        status = term.close()
    finally:
        term.close()
    assert status == 0, f"copier exited {status}\n" + term.report()
    assert not any(line.startswith("Validation error") for line in term.lines), term.report()
    assert set(mistakes) <= set(asked)
    return asked, term.output.decode(errors="replace"), tmp_path / "federation" / "deployments" / "charlie"


def test_a_researcher_takes_the_default_path(template_repo, tmp_path):
    """At most 12 questions, each answerable before any cloud work; names
    pasted as URLs and an account id with dashes are read as the names."""
    asked, transcript, hub = answer_in_a_terminal(template_repo, tmp_path, ANSWERS, MISTAKES)

    assert len(asked) <= 12, asked
    assert asked[-1] == "customise"
    # Cloud resources that do not exist yet are named, not asked.
    assert not {"aws_cluster", "aws_deploy_role", "image_registry", "cloud_identity", "user_sizes"} & set(asked)
    assert {"aws_account_id", "aws_region"} <= set(asked)
    assert not {"gcp_project", "azure_cluster", "source_ref"} & set(asked)
    assert 'Your hub "charlie" is rendered' in transcript
    # The names read from what was pasted are echoed once the hub is made.
    for line in (
        "domain: glacierhub.ess.example.edu",
        "aws_account_id: 123456789012",
        "github_orgs: uw-glaciology, pangeo-data:hub-users",
    ):
        assert line in transcript, transcript

    recorded = yaml.safe_load((hub / ".copier-answers.yml").read_text())
    assert recorded["customise"] is False
    assert recorded["aws_region"] == "eu-central-1"
    # What the hub uses: the names, never the URLs.
    assert recorded["staging_domain"] == "staging.glacierhub.ess.example.edu"
    assert recorded["aws_cluster"] == "pangeo-hubs"
    assert recorded["aws_deploy_role"] == "arn:aws:iam::123456789012:role/pangeo-hubs-deployer"
    assert recorded["image_name"] == "123456789012.dkr.ecr.eu-central-1.amazonaws.com/pangeo-hubs/charlie"
    prod = yaml.safe_load((hub / "config" / "prod.yaml").read_text())
    assert "https://glacierhub.ess.example.edu/hub/oauth_callback" in json.dumps(prod)
    common = yaml.safe_load((hub / "config" / "common.yaml").read_text())
    github = common["daskhub"]["jupyterhub"]["hub"]["config"]["GitHubOAuthenticator"]
    assert github["allowed_organizations"] == ["uw-glaciology", "pangeo-data:hub-users"]
    environment = yaml.safe_load((hub / "image" / "binder" / "environment.yml").read_text())
    assert {"cartopy", "zarr>=2.18"} <= set(d for d in environment["dependencies"] if isinstance(d, str))


def test_a_researcher_customises_sizes_as_they_write_them(template_repo, tmp_path):
    """Behind `customise`: memories and CPUs as people write them, read as
    GB and cores; a limit below its guarantee says the guarantee."""
    asked, transcript, hub = answer_in_a_terminal(template_repo, tmp_path, CUSTOM_ANSWERS, CUSTOM_MISTAKES)

    assert {"worker_cores", "user_sizes", "aws_cluster", "image_registry", "federation_name"} <= set(asked)
    assert "worker_memory: 4  (typed: 4 Gi)" in transcript, transcript
    recorded = yaml.safe_load((hub / ".copier-answers.yml").read_text())
    assert recorded["customise"] is True
    for name in CUSTOM_ANSWERS.keys() - {"hub_name", "customise", "cloud_provider", "aws_account_id"}:
        assert recorded[name] == CUSTOM_ANSWERS[name], name  # recorded as typed
    common = (hub / "config" / "common.yaml").read_text()
    # ... and used as numbers.
    assert 'Float("worker_cores", default=0.5, min=0.25, max=0.5,' in common
    assert 'Float("worker_memory", default=4.0, min=0.5, max=4.0,' in common
    assert 'c.ClusterConfig.cluster_max_memory = "4 G"' in common
    assert "c.ClusterConfig.idle_timeout = 5400" in common
    values = yaml.safe_load(common)["daskhub"]["jupyterhub"]
    assert values["hub"]["config"]["JupyterHub"]["active_server_limit"] == 80
    assert values["singleuser"]["storage"]["capacity"] == "20Gi"
    # Users' CPU and memory live in the sizes alone: nothing for them to override.
    assert "cpu" not in values["singleuser"] and "memory" not in values["singleuser"]
    assert all("mem_guarantee" in size["kubespawner_override"] for size in values["singleuser"]["profileList"])


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
