"""`hub-template check`: it passes on every rendered cell, and each kind of
breakage fails the right check with a message naming the file (and line).

Hubs are rendered once per cell (hub_cells.py); each breakage works on its
own copy, placed in a federation git repository when git must be asked.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import BIN, ROOT, chart_data, check_report, git, hub_template
from hub_cells import CELLS, commit_federation, copy_hub, rendered_hub

from hub_template import load_data
from hub_template.checks import PLACEHOLDER
from hub_template.checks.runner import run_checks, selected
from hub_template.checks.template_files import template_files
from hub_template.helm_values import Chart, ValuesFile, check_values

TOKEN = "ghp_" + "Zq8x" * 9  # GitHub's token shape; must never be echoed


WITH_CHART = object()  # the chart data of the tests (conftest.chart_data)


def results(hub: Path, chart: Path | object | None = WITH_CHART) -> dict:
    return {r.name: r for r in run_checks(hub, chart_data() if chart is WITH_CHART else chart).results}


def failures(hub: Path, chart: Path | object | None = WITH_CHART) -> dict:
    return {name: r.err_msg for name, r in results(hub, chart).items() if r.result is False}


def edit(path: Path, pattern: str, replacement: str, count: int = 1) -> None:
    """Regex-replace in a file, failing loudly if the template no longer has the text."""
    text = path.read_text()
    new, n = re.subn(pattern, replacement, text, count=count, flags=re.M)
    assert n, f"{pattern!r} not found in {path}"
    path.write_text(new)


def append(path: Path, text: str) -> None:
    """Add ``text`` at the end of a file."""
    path.write_text(path.read_text() + text)


def line_of(path: Path, marker: str) -> int:
    """The first line holding ``marker`` (starting with it, for a marker "^...")."""
    lines = enumerate(path.read_text().splitlines(), 1)
    if marker.startswith("^"):
        return next(n for n, line in lines if line.startswith(marker[1:]))
    return next(n for n, line in lines if marker in line)


# --- every cell passes ---------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS, ids="-".join)
def test_every_rendered_cell_passes(template_repo, tmp_path_factory, cell):
    hub = rendered_hub(template_repo, tmp_path_factory, *cell)
    found = results(hub)
    assert {name: r.err_msg for name, r in found.items() if r.result is False} == {}
    skipped = {name: r.skip_reason for name, r in found.items() if r.result is None}
    # Outside a git repository git cannot say what git-crypt covers; nothing else skips.
    assert skipped.keys() == ({"SE002"} if cell[1] == "git-crypt" else set())
    assert all(skipped.values()), "a skip must say why"


def test_hubs_checked_in_one_process_keep_their_own_results(template_repo, tmp_path_factory, tmp_path, monkeypatch):
    """A check keeps nothing of a run: one set of check instances checks a hub
    where SE002 skips (no git repository) and one where it passes, in either
    order, and each hub gets the results it gets alone."""
    import hub_template.checks.runner as runner
    from hub_template.checks import CHECK_CLASSES

    instances = {cls.__name__: cls() for cls in CHECK_CLASSES}
    monkeypatch.setattr(runner, "repo_review_checks", lambda hub: instances if hub.is_hub else {})
    rendered = rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", "gateway")
    alone = copy_hub(rendered, tmp_path / "alone")
    in_git = copy_hub(rendered, tmp_path / "federation")
    commit_federation(tmp_path / "federation")

    def both(first: Path, second: Path) -> dict[Path, list]:
        return {hub: run_checks(hub, chart_data()).results for hub in (first, second)}

    forward, backward = both(alone, in_git), both(in_git, alone)
    assert forward == backward
    skipped = {hub: {r.name: r.skip_reason for r in found if r.result is None} for hub, found in forward.items()}
    assert skipped[in_git] == {}
    assert skipped[alone].keys() == {"SE002"} and skipped[alone]["SE002"]


@pytest.mark.parametrize("cell", [c for c in CELLS if c[1] == "git-crypt" and c[0] == "gcp"], ids="-".join)
def test_a_hub_in_its_federation_repository_passes_everything(template_repo, tmp_path_factory, tmp_path, cell):
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, *cell), tmp_path)
    commit_federation(tmp_path)
    found = results(hub)
    assert {n: r.err_msg for n, r in found.items() if r.result is not True} == {}


def test_the_checker_expects_exactly_the_files_copier_renders(template_repo, tmp_path_factory):
    """The expected list is derived from the template, and matches what copier wrote."""
    for cell in CELLS:
        hub = rendered_hub(template_repo, tmp_path_factory, *cell)
        answers = yaml.safe_load((hub / ".copier-answers.yml").read_text())
        on_disk = {p.relative_to(hub).as_posix() for p in hub.rglob("*") if p.is_file()}
        assert set(template_files(answers).rendered) == on_disk


def test_the_placeholder_is_the_one_secrets_jinja_renders(template_repo, tmp_path_factory):
    hub = rendered_hub(template_repo, tmp_path_factory, "aws", "sops", "gateway")
    for rel in ("secrets/prod.yaml", "secrets/staging.yaml"):
        found = PLACEHOLDER.findall((hub / rel).read_text())
        assert found and all(f.startswith("<hub-template placeholder: ") for f in found)
    for other in ("CHANGEME", "<placeholder: github-oauth-client-id>", "{{ client_secret }}"):
        assert not PLACEHOLDER.search(other)


# --- one breakage per check ------------------------------------------------------------


@dataclass(frozen=True)
class Breakage:
    name: str
    fails: frozenset[str]  # exactly the checks that must fail
    file: str  # the file the message names
    marker: str | None  # text on the line the message names, if it names one
    change: Callable[[Path], None]
    cell: tuple[str, str, str] = ("gcp", "git-crypt", "gateway")
    in_git: bool = False
    # A check that fails as a consequence, naming another file: check -> that file.
    elsewhere: tuple[tuple[str, str], ...] = ()


def _misspell_helm_key(hub):
    edit(hub / "config/common.yaml", r"^(\s+)serviceAccountName:", r"\1serviceAcountName:")


def _unknown_umbrella_key(hub):
    edit(hub / "config/prod.yaml", r"^  jupyterhub:", "  jupyterhubb:\n    foo: 1\n  jupyterhub:")


def _unknown_file_key(hub):
    append(hub / "config/staging.yaml", "jupyterhub:\n  debug:\n    enabled: true\n")


def _build_string(hub):
    edit(hub / "image/binder/environment.yml", r"^  - zarr$", "  - numpy=1.26.4=py312h1234567_0")


def _prefix(hub):
    append(hub / "image/binder/environment.yml", "prefix: /home/someone/miniconda3/envs/science\n")


def _pin_mismatch(hub):
    edit(hub / "image/binder/environment.yml", r"^  - dask-gateway=\S+", "  - dask-gateway=2024.1.0")


def _apt_injection(hub):
    append(hub / "image/binder/apt.txt", "nco\nfoo;bar\n")


def _start_without_exec(hub):
    edit(hub / "image/binder/start", r'^exec "\$@"$', '"$@"')


def _gateway_adress(hub):
    edit(hub / "image/.dask/config.yaml", r"^  address:", "  adress:")


def _old_workspace_id(hub):
    edit(hub / "image/binder/jupyterlab-workspace.json", r'"id": "default"', '"id": "/user/{name}/lab"')


def _broken_notebook(hub):
    path = hub / "image/welcome.ipynb"
    notebook = json.loads(path.read_text())
    del notebook["cells"][1]["source"]
    path.write_text(json.dumps(notebook, indent=1))


def _plaintext_token(hub):
    edit(hub / "secrets/prod.yaml", r'client_secret: ".*"', f'client_secret: "{TOKEN}"')


def _not_covered_by_git_crypt(hub):
    (hub / ".gitattributes").write_text("secrets/prod.yaml filter=git-crypt diff=git-crypt\n")


def _filled_sops_file_in_clear(hub):
    edit(hub / "secrets/prod.yaml", r'client_id: ".*"', 'client_id: "Iv1.8a61f9b3a7aba766"')
    edit(hub / "secrets/prod.yaml", r'client_secret: ".*"', 'client_secret: "' + "3f9a" * 10 + '"')


def _committed_in_clear(hub):
    _filled_sops_file_in_clear(hub)  # then the federation commits it without git-crypt set up


def _sops_rule_misses_a_file(hub):
    edit(hub / ".sops.yaml", r"path_regex: .*", "path_regex: (^|/)secrets/prod[.]yaml$")


def _kubernetes_factory_in_a_gateway_hub(hub):
    edit(hub / "image/.dask/config.yaml", r"module: dask_gateway", "module: dask_kubernetes")
    edit(hub / "image/.dask/config.yaml", r"class: GatewayCluster", "class: KubeCluster")


def _dask_variable_typo(hub):
    edit(hub / "config/common.yaml", r"DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE", "DASK_GATEWAY__CLUSTER__OPTION__IMAGE")


def _config_left_in_home(hub):
    edit(
        hub / "image/binder/postBuild",
        r"^mkdir -p .*\n(cp .*)$",
        'mkdir -p "${HOME}/.config/dask"\ncp .dask/config.yaml "${HOME}/.config/dask/"',
    )


def _missing_start(hub):
    (hub / "image/binder/start").unlink()


def _unrendered_jinja(hub):
    edit(hub / "README.md", r"^# charlie$", "# {{ hub_name }}")


def _yaml_syntax_error(hub):
    edit(hub / "config/staging.yaml", r"^(\s+)hosts:$", r"\1hosts: [oops")


def _hubploy_missing_key(hub):
    edit(hub / "hubploy.yaml", r"^    zone: .*\n", "")


def _hubploy_key_file_missing(hub):
    edit(hub / "hubploy.yaml", r"^    role_arn: .*$", "    service_key: aws-key.yaml")


def _snippet_syntax_error(hub):
    edit(
        hub / "config/common.yaml", r"^(\s+)c\.ClusterConfig\.idle_timeout = .*$", r"\1c.ClusterConfig.idle_timeout = ("
    )


def _dockerfile(hub):
    (hub / "image/binder/Dockerfile").write_text("FROM busybox\n")


def _root_level_apt(hub):
    (hub / "image/apt.txt").write_text("nco\n")


def _python_unpinned(hub):
    edit(hub / "image/binder/environment.yml", r"^  - python=\S+\n", "")


def _shellcheck_finding(hub):
    append(hub / "image/binder/postBuild", "for f in $(ls .dask); do echo $f; done\n")


def _hub_dask_missing(hub):
    (hub / "image/hub_dask.py").unlink()


def _kubernetes_key_typo(hub):
    edit(hub / "image/.dask/config.yaml", r"^  worker-command:", "  worker-comand:")


BREAKAGES = [
    Breakage(
        "misspelled helm key", frozenset({"HV003"}), "config/common.yaml", "serviceAcountName", _misspell_helm_key
    ),
    Breakage(
        "unknown key under daskhub", frozenset({"HV002"}), "config/prod.yaml", "jupyterhubb:", _unknown_umbrella_key
    ),
    Breakage("unknown top-level key", frozenset({"HV001"}), "config/staging.yaml", "^jupyterhub:", _unknown_file_key),
    Breakage("build string", frozenset({"IM002"}), "image/binder/environment.yml", "py312h1234567_0", _build_string),
    Breakage("prefix line", frozenset({"IM003"}), "image/binder/environment.yml", "^prefix:", _prefix),
    Breakage(
        "dask-gateway pin mismatch",
        frozenset({"IM005"}),
        "image/binder/environment.yml",
        "dask-gateway=",
        _pin_mismatch,
    ),
    Breakage("foo;bar in apt.txt", frozenset({"IM006"}), "image/binder/apt.txt", "foo;bar", _apt_injection),
    Breakage("start without exec", frozenset({"IM008"}), "image/binder/start", '"$@"', _start_without_exec),
    Breakage("gateway.adress", frozenset({"DK002"}), "image/.dask/config.yaml", "adress:", _gateway_adress),
    Breakage(
        "old workspace id", frozenset({"IM009"}), "image/binder/jupyterlab-workspace.json", '"id"', _old_workspace_id
    ),
    Breakage("broken notebook", frozenset({"IM010"}), "image/welcome.ipynb", None, _broken_notebook),
    # A real value beside a placeholder left is a secret in clear (issue 27, item 3).
    Breakage("plaintext token", frozenset({"SE001", "SE003"}), "secrets/prod.yaml", "client_secret:", _plaintext_token),
    Breakage(
        "secrets file not covered by git-crypt",
        frozenset({"SE002"}),
        "secrets/staging.yaml",
        None,
        _not_covered_by_git_crypt,
        in_git=True,
    ),
    Breakage(
        "filled sops file in clear",
        frozenset({"SE001", "SE003"}),
        "secrets/prod.yaml",
        None,
        _filled_sops_file_in_clear,
        cell=("gcp", "sops", "gateway"),
    ),
    Breakage(
        "committed in clear", frozenset({"SE001", "SE003"}), "secrets/prod.yaml", None, _committed_in_clear, in_git=True
    ),
    Breakage(
        "sops rule misses a file",
        frozenset({"SE002"}),
        "secrets/staging.yaml",
        None,
        _sops_rule_misses_a_file,
        cell=("gcp", "sops", "gateway"),
    ),
    Breakage(
        "factory of the other backend",
        frozenset({"DK003"}),
        "image/.dask/config.yaml",
        None,
        _kubernetes_factory_in_a_gateway_hub,
    ),
    Breakage(
        "DASK_ variable typo",
        frozenset({"DK004"}),
        "config/common.yaml",
        "DASK_GATEWAY__CLUSTER__OPTION__IMAGE",
        _dask_variable_typo,
    ),
    # Nothing installed, so no factory either: the dask panel falls back to a LocalCluster.
    Breakage(
        "dask config left in the home",
        frozenset({"DK001", "DK003"}),
        "image/.dask/config.yaml",
        None,
        _config_left_in_home,
    ),
    Breakage(
        "the panel's hub_dask module missing",
        frozenset({"ST001", "DK003", "IM012"}),
        "image/hub_dask.py",
        None,
        _hub_dask_missing,
        cell=("gcp", "git-crypt", "kubernetes"),
        elsewhere=(("IM012", "image/welcome.ipynb"),),  # the welcome notebook imports it
    ),
    Breakage("missing start", frozenset({"ST001"}), "image/binder/start", None, _missing_start),
    Breakage("unrendered Jinja", frozenset({"ST002"}), "README.md", "{{ hub_name }}", _unrendered_jinja),
    Breakage("YAML syntax error", frozenset({"ST003"}), "config/staging.yaml", None, _yaml_syntax_error),
    Breakage("hubploy key missing", frozenset({"ST004"}), "hubploy.yaml", None, _hubploy_missing_key),
    Breakage(
        "hubploy key file missing",
        frozenset({"ST005"}),
        "hubploy.yaml",
        "service_key",
        _hubploy_key_file_missing,
        cell=("aws", "git-crypt", "gateway"),
    ),
    Breakage(
        "snippet syntax error", frozenset({"HV004"}), "config/common.yaml", "idle_timeout = (", _snippet_syntax_error
    ),
    Breakage("Dockerfile", frozenset({"IM001"}), "image/", None, _dockerfile),
    Breakage("apt.txt outside binder/", frozenset({"IM001"}), "image/apt.txt", None, _root_level_apt),
    Breakage("Python unpinned", frozenset({"IM004"}), "image/binder/environment.yml", None, _python_unpinned),
    Breakage("shellcheck finding", frozenset({"IM007"}), "image/binder/postBuild", "for f in", _shellcheck_finding),
    Breakage(
        "kubernetes key typo",
        frozenset({"DK002"}),
        "image/.dask/config.yaml",
        "worker-comand",
        _kubernetes_key_typo,
        cell=("gcp", "git-crypt", "kubernetes"),
    ),
]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda b: b.name)
def test_each_breakage_fails_its_check_naming_the_file(template_repo, tmp_path_factory, tmp_path, breakage):
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, *breakage.cell), tmp_path)
    if breakage.name == "committed in clear":
        commit_federation(tmp_path)  # before the change: the repository, without git-crypt
    breakage.change(hub)
    if breakage.in_git:
        commit_federation(tmp_path)
    failed = failures(hub)
    assert failed.keys() == breakage.fails, failed
    where = breakage.file
    if breakage.marker:
        where += f":{line_of(hub / breakage.file, breakage.marker)}"
    elsewhere = dict(breakage.elsewhere)
    for check, message in failed.items():
        assert f"`{elsewhere.get(check, where)}" in message, message
    assert TOKEN not in json.dumps(failed)


def test_an_encrypted_secret_is_accepted_and_left_out_of_the_merge(template_repo, tmp_path_factory, tmp_path):
    """What git-crypt leaves in a locked working tree, and what sops writes."""
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", "gateway"), tmp_path / "a")
    (hub / "secrets/prod.yaml").write_bytes(b"\0GITCRYPT\0" + os.urandom(200))
    assert failures(hub) == {}
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "sops", "gateway"), tmp_path / "b")
    (hub / "secrets/prod.yaml").write_text(
        "daskhub:\n  jupyterhub:\n    hub:\n      config:\n        GitHubOAuthenticator:\n"
        "          client_secret: ENC[AES256_GCM,data:q83Hd9s0aZ1b2c3d4e5f6g7h8i9j0k==,iv:abc=,tag:def=,type:str]\n"
        "sops:\n  gcp_kms:\n    - resource_id: projects/p/locations/global/keyRings/r/cryptoKeys/k\n"
        "  lastmodified: '2026-11-01T00:00:00Z'\n  mac: ENC[AES256_GCM,data:xyz=,type:str]\n  version: 3.9.0\n"
    )
    assert failures(hub) == {}


def test_the_pin_follows_the_chart_given(template_repo, tmp_path_factory, tmp_path):
    """With --chart, dask-gateway must equal the chart's dask-gateway, not versions.yml's."""
    chart = tmp_path / "daskhub"
    shutil.copytree(chart_data(), chart)
    edit(chart / "charts/dask-gateway/Chart.yaml", r"^version: .*$", "version: 2026.9.0")
    hub = rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", "gateway")
    failed = failures(hub, chart)
    assert failed.keys() == {"IM005"}
    assert "2026.9.0, the chart's dask-gateway" in failed["IM005"]


def test_without_a_chart_the_chart_checks_skip_and_say_how_to_get_one(template_repo, tmp_path_factory):
    hub = rendered_hub(template_repo, tmp_path_factory, "gcp", "sops", "gateway")
    found = results(hub, chart=None)
    for name in ("HV002", "HV003"):
        assert found[name].result is None
        assert "helm pull dask/daskhub --untar" in found[name].skip_reason
        assert "helm dependency build" in found[name].skip_reason
    assert found["HV001"].result is True and found["IM005"].result is True


def test_a_chart_from_helm_dependency_build_reads_the_same(tmp_path, template_repo, tmp_path_factory):
    """Subcharts packed as charts/<name>-<version>.tgz, as `helm dependency build` leaves them."""
    packed, source = tmp_path / "daskhub", chart_data()
    shutil.copytree(source, packed, ignore=shutil.ignore_patterns("charts"))
    (packed / "charts").mkdir()
    for sub in (source / "charts").iterdir():
        version = yaml.safe_load((sub / "Chart.yaml").read_text())["version"]
        with tarfile.open(packed / "charts" / f"{sub.name}-{version}.tgz", "w:gz") as archive:
            archive.add(sub, arcname=sub.name)
    unpacked, tgz = Chart(source), Chart(packed)
    assert tgz.subcharts == unpacked.subcharts
    assert tgz.subchart_version("dask-gateway") == unpacked.subchart_version("dask-gateway")
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", "gateway"), tmp_path / "fed")
    _misspell_helm_key(hub)
    files = [ValuesFile.load(hub / rel, rel) for rel in ("config/common.yaml", "config/prod.yaml")]
    assert check_values(tgz, files, "daskhub") == check_values(unpacked, files, "daskhub") != []


# --- the command, for real -------------------------------------------------------------------


def test_the_command_passes_a_good_hub_with_json(template_repo, tmp_path_factory):
    hub = rendered_hub(template_repo, tmp_path_factory, "aws", "sops", "kubernetes")
    done = hub_template("check", str(hub), "--chart", str(chart_data()), "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = check_report(done.stdout)
    assert report["status"] == "passed"
    assert list(report["families"]) == ["structure", "helm", "image", "dask", "secrets"]
    assert all(c["result"] is True for c in report["checks"].values())
    assert {"ST001", "HV003", "IM001", "DK001", "SE001"} <= report["checks"].keys()


def test_the_command_fails_a_broken_hub_naming_file_and_line(template_repo, tmp_path_factory, tmp_path):
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", "gateway"), tmp_path)
    _gateway_adress(hub)
    _plaintext_token(hub)
    done = hub_template("check", "--format", "json", "--chart", str(chart_data()), str(hub / "secrets" / "prod.yaml"))
    assert done.returncode == 1
    report = check_report(done.stdout)
    failed = {k: v for k, v in report["checks"].items() if v["result"] is False}
    assert failed.keys() == {"DK002", "SE001", "SE003"}  # a real value beside a placeholder: SE001 too
    line = line_of(hub / "image/.dask/config.yaml", "adress:")
    assert f"image/.dask/config.yaml:{line}" in failed["DK002"]["err_msg"]
    assert "gateway.address" in failed["DK002"]["err_msg"]
    assert TOKEN not in done.stdout + done.stderr
    rich = hub_template("check", str(hub), "--show", "err")
    assert rich.returncode == 1 and "DK002" in rich.stdout and "ST001" not in rich.stdout
    assert TOKEN not in rich.stdout + rich.stderr


def test_the_command_selects_ignores_and_writes_html(template_repo, tmp_path_factory, tmp_path):
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", "gateway"), tmp_path)
    _apt_injection(hub)
    only = check_report(hub_template("check", str(hub), "--select", "SE,IM006", "--format", "json").stdout)
    assert only["checks"].keys() == {"SE001", "SE002", "SE003", "IM006"}
    ignored = hub_template("check", str(hub), "--ignore", "IM006", "--format", "json")
    assert ignored.returncode == 0 and "IM006" not in check_report(ignored.stdout)["checks"]
    html = hub_template("check", str(hub), "--format", "html")
    assert html.returncode == 1 and "<" in html.stdout and "IM006" in html.stdout


def test_a_selected_check_finds_what_it_finds_in_a_full_run(template_repo, tmp_path_factory, tmp_path):
    """--select runs only the checks it names (the pre-commit hook's SE001 in
    under a second), and each finds alone exactly what the full run finds."""
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", "gateway"), tmp_path)
    _apt_injection(hub)
    full = run_checks(hub, chart_data()).results
    assert [r.name for r in full if r.result is False] == ["IM006"]
    for result in full:
        assert run_checks(hub, chart_data(), select=frozenset({result.name})).results == [result]


def test_a_selected_check_brings_what_it_requires():
    class Check:
        def __init__(self, *requires: str) -> None:
            self.requires = frozenset(requires)

    checks = {"AA001": Check("BB001"), "BB001": Check("CC001"), "CC001": Check(), "DD001": Check()}
    assert selected(checks, frozenset({"AA"})).keys() == {"AA001", "BB001", "CC001"}
    assert selected(checks, frozenset({"DD001"})).keys() == {"DD001"}
    assert selected(checks, frozenset()) is checks


def test_the_command_refuses_what_is_not_a_hub_or_a_chart(template_repo, tmp_path_factory, tmp_path):
    hub = rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", "gateway")
    not_hub = hub_template("check", str(tmp_path))
    assert not_hub.returncode == 2 and "is not a hub" in not_hub.stderr and not_hub.stdout == ""
    not_chart = hub_template("check", str(hub), "--chart", str(tmp_path))
    assert not_chart.returncode == 2 and "helm pull dask/daskhub --untar" in not_chart.stderr
    nothing = hub_template("check", str(hub), "--select", "XX999")
    assert nothing.returncode == 2


def test_several_hubs_in_one_run(template_repo, tmp_path_factory, tmp_path):
    good = rendered_hub(template_repo, tmp_path_factory, "gcp", "sops", "gateway")
    bad = copy_hub(rendered_hub(template_repo, tmp_path_factory, "azure", "sops", "kubernetes"), tmp_path)
    _prefix(bad)
    done = hub_template("check", str(good), str(bad), "--format", "json", "--select", "IM")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert len(report) == 2
    statuses = sorted(v["status"] for v in report.values())
    assert statuses == ["errors", "passed"]


def test_repo_review_runs_the_hub_checks_through_its_entry_points(template_repo, tmp_path_factory):
    hub = rendered_hub(template_repo, tmp_path_factory, "gcp", "sops", "gateway")
    done = subprocess.run([str(BIN / "repo-review"), str(hub), "--format", "json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    checks = json.loads(done.stdout)["checks"]
    assert checks["ST001"]["result"] is True
    assert checks["HV003"]["result"] is None  # repo-review cannot pass a chart


def test_the_checks_stay_silent_on_a_folder_that_is_no_hub():
    from hub_template.checks import repo_review_checks
    from hub_template.checks.hub import Hub

    assert repo_review_checks(Hub(ROOT)) == {}
    assert len(repo_review_checks(Hub(ROOT), list_all=True)) >= 20


def test_the_pre_commit_hook_refuses_a_secret_staged_in_clear(template_repo, tmp_path_factory, tmp_path):
    """.pre-commit-hooks.yaml's entry, run as pre-commit runs it: on the staged
    files its `files` pattern selects, in the federation repository."""
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    entry = shlex.split(hook["entry"])
    entry[0] = str(BIN / entry[0])
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", "gateway"), tmp_path)
    (tmp_path / "README.md").write_text("A federation.\n")
    commit_federation(tmp_path)

    def run_hook():
        staged = git(tmp_path, "diff", "--cached", "--name-only").splitlines()
        files = [f for f in staged if re.search(hook["files"], f)]
        return files, subprocess.run([*entry, *files], cwd=tmp_path, capture_output=True, text=True)

    _filled_sops_file_in_clear(hub)  # real values, and git-crypt was never set up here
    (tmp_path / "README.md").write_text("A federation of hubs.\n")
    git(tmp_path, "add", "-A")
    files, done = run_hook()
    # Every staged file: one of no hub is passed over, any file of a hub checks it.
    assert files == ["README.md", "deployments/charlie/secrets/prod.yaml"]
    assert done.returncode == 1
    assert "SE001" in done.stdout and "secrets/prod.yaml" in done.stdout and "3f9a3f9a" not in done.stdout

    git(tmp_path, "checkout", "--", ".")
    git(tmp_path, "reset", "-q", "--hard")
    _unknown_file_key(hub)  # not a secrets matter: the hook lets it through
    git(tmp_path, "add", "-A")
    files, done = run_hook()
    assert files == ["deployments/charlie/config/staging.yaml"] and done.returncode == 0, done.stdout
    outside = subprocess.run([*entry, "README.md"], cwd=tmp_path, capture_output=True, text=True)
    assert outside.returncode == 0 and "in no hub" in outside.stderr


def test_the_docs_list_every_check_as_the_checker_describes_it():
    from hub_template.checks import CHECK_CLASSES

    section = (ROOT / "docs" / "checks.md").read_text()
    rows = dict(re.findall(r"^\| ([A-Z]{2}\d{3}) \| (.+?) \|", section, re.M))
    assert rows == {cls.__name__: cls.__doc__ for cls in CHECK_CLASSES}


def test_kubernetes_keys_are_checked_only_against_the_dask_kubernetes_hubs_pin():
    """Its keys come from the installed package's kubernetes.yaml, never from a
    list of our own: with no dask-kubernetes in the range versions.yml pins,
    they are not checked, and the check says so."""
    from importlib.metadata import version

    from hub_template.checks.dask_config import _known, unknown_keys

    config = {"kubernetes": {"worker-comand": "dask worker"}, "gateway": {"adress": "x"}}
    pinned = _known(load_data("versions.yml")["dask_kubernetes"])
    assert [p for p, _ in unknown_keys(config, pinned)] == [("kubernetes", "worker-comand"), ("gateway", "adress")]
    elsewhere = _known(">=2019.1,<2019.2")  # a range the installed dask-kubernetes is not in
    assert [p for p, _ in unknown_keys(config, elsewhere)] == [("gateway", "adress")]
    assert f"dask-kubernetes {version('dask-kubernetes')} is installed" in elsewhere.unchecked["kubernetes"]
    assert "pip install 'hub-template[kubernetes]'" in elsewhere.unchecked["kubernetes"]


def test_a_hubploy_yaml_for_hubploy_0_4_is_told_to_update(template_repo, tmp_path_factory, tmp_path):
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", "gateway"), tmp_path)
    path = hub / "hubploy.yaml"
    path.write_text("images:\n  image_name: us-central1-docker.pkg.dev/p/hubs/charlie\n" + path.read_text())
    failed = failures(hub, chart=None)
    assert set(failed) == {"ST004"}, failed
    assert "`images` is hubploy 0.4's: today's hubploy builds no image and reads only `cluster:`" in failed["ST004"]
    assert failed["ST004"].startswith("- `hubploy.yaml`: `(top level)`: ")


def test_conflict_markers_in_any_file_are_one_st003_finding(template_repo, tmp_path_factory, tmp_path):
    """An update's conflict in a script (or the README) is ST003's, named as
    such, once: IM007 does not report bash's syntax error on the markers. A
    `.rej` file (`copier update --conflict rej`) is ST003's too."""
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", "gateway"), tmp_path)
    postbuild = hub / "image" / "binder" / "postBuild"
    lines = postbuild.read_text().splitlines(keepends=True)
    lines[3:3] = ["<<<<<<< before updating\n", "pip install mine\n", "=======\n", "pip install theirs\n"]
    lines.insert(7, ">>>>>>> after updating\n")
    postbuild.write_text("".join(lines))
    (hub / "config" / "prod.yaml.rej").write_text("@@ -1 +1 @@\n-a: 1\n+a: 2\n")

    found = results(hub)

    assert found["ST003"].result is False
    message = found["ST003"].err_msg
    assert "`image/binder/postBuild:4`: holds the conflict markers an update left (lines 4-8)" in message, message
    assert "`config/prod.yaml.rej`: is a change an update could not place" in message, message
    assert "`config/prod.yaml` by hand" in message
    assert found["IM007"].result is True  # start is checked; postBuild is left to ST003
    assert [name for name, r in found.items() if r.result is False and "postBuild" in (r.err_msg or "")] == ["ST003"]
