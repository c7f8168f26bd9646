"""`hub-template check` on hand-made hubs (issue 29, item 7): the
pangeo-cloud-federation layout of 2019-2023 gives no false finding, and the
command's own surface (ID options, skip reasons) says what it means."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import BIN, chart_data, check_report, git
from hub_cells import copy_hub, rendered_hub

NFS_MANIFESTS = """\
apiVersion: v1
kind: PersistentVolume
metadata:
  name: shared-nfs-prod
spec:
  capacity: {storage: 1Mi}
  accessModes: [ReadWriteMany]
  nfs: {server: 10.0.0.2, path: /homes}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: home-nfs
spec:
  accessModes: [ReadWriteMany]
  storageClassName: ""
  resources: {requests: {storage: 1Mi}}
"""


@pytest.fixture
def handmade(template_repo, tmp_path_factory, tmp_path) -> Path:
    """A rendered hub made hand-made: no answers file, no .gitattributes of its
    own (the federation's root one covers secrets/), manifests and a Makefile
    beside the values, in a committed federation repository."""
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", "gateway"), tmp_path)
    (hub / ".copier-answers.yml").unlink()
    (hub / ".gitattributes").unlink()
    (tmp_path / ".gitattributes").write_text("deployments/*/secrets/** filter=git-crypt diff=git-crypt\n")
    (hub / "config" / "shared-nfs-prod.yaml").write_text(NFS_MANIFESTS)
    (hub / "Makefile").write_text(
        "PASSWORD := $(shell cat secrets/staging.yaml | shyaml get-value password)\n"
        "deploy:\n\tPASSWORD=$$(shyaml get-value password < secrets/prod.yaml) hubploy deploy hub chart prod\n"
    )
    chart = tmp_path / "pangeo-deploy"  # the federation's own chart, as pangeo-cloud-federation named it
    chart.mkdir()
    (chart / "Chart.yaml").write_text(
        "apiVersion: v2\nname: pangeo-deploy\nversion: 0.1.0\ndependencies:\n"
        "  - name: daskhub\n    version: 2024.1.1\n    repository: https://helm.dask.org\n"
    )
    (chart / "values.yaml").write_text("homeDirectories:\n  nfs:\n    enabled: false\n    serverIP: null\n")
    common = hub / "config" / "common.yaml"
    common.write_text(common.read_text() + "homeDirectories:\n  nfs:\n    enabled: true\n    serverIP: 10.0.0.2\n")
    env = hub / "image" / "binder" / "environment.yml"
    env.write_text(
        env.read_text().rstrip("\n") + "\n  - pip:\n    - git+https://github.com/pangeo-data/climpred.git@main\n"
    )
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "hubs")
    return hub


def check(hub: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "hub-template"), "check", str(hub), "--format", "json", *args], capture_output=True, text=True
    )


def results(hub: Path, *args: str) -> dict:
    done = check(hub, *args)
    assert "Traceback" not in done.stderr, done.stderr
    return check_report(done.stdout)["checks"]


def test_a_multi_document_manifest_is_valid_yaml(handmade):
    assert results(handmade, "--select", "ST003")["ST003"]["result"] is True


def test_extra_yaml_in_config_is_no_environment(handmade):
    found = results(handmade, "--select", "HV003", "--chart", str(chart_data()))["HV003"]
    assert "shared-nfs-prod" not in json.dumps(found)
    assert found["result"] is True, found


def test_the_repositorys_root_gitattributes_encrypts_secrets(handmade):
    found = results(handmade, "--select", "SE002")["SE002"]
    assert found["result"] is True, found


def test_reading_a_secret_with_shyaml_is_no_credential(handmade):
    found = results(handmade, "--select", "SE003")["SE003"]
    assert found["result"] is True, found


def test_a_vcs_url_pip_accepts_is_a_pip_requirement(handmade):
    found = results(handmade, "--select", "IM002")["IM002"]
    assert found["result"] is True, found


@pytest.mark.parametrize("option", ["--select", "--ignore"])
def test_an_unknown_check_id_is_refused(handmade, option):
    done = check(handmade, option, "SE,ZZ9")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"hub-template check: {option} ZZ9: no check has this ID or prefix; give IDs like SE001 or families like SE.\n"
    )
    assert len(done.stderr.splitlines()[0]) <= 120


def test_a_skip_reason_with_brackets_is_printed_as_text(handmade, monkeypatch, capsys):
    """repo-review's printer reads skip reasons as rich markup."""
    import dataclasses

    import hub_template.checks.command as command
    from hub_template.checks import runner

    reason = "dask-kubernetes is not installed: `pip install 'hub-template[kubernetes]'`"
    real = runner.run_checks

    def with_reason(path, **kwargs):
        families, found = real(path, **kwargs)
        return families, [dataclasses.replace(r, result=None, skip_reason=reason) for r in found]

    monkeypatch.setattr(runner, "run_checks", with_reason)
    command.check([handmade], chart=None, select=frozenset({"ST003"}))
    assert "hub-template[kubernetes]" in capsys.readouterr().out


def test_the_federation_charts_own_keys_stay_at_the_top(handmade):
    found = results(handmade, "--select", "HV001")["HV001"]
    assert found["result"] is True, found


def test_values_under_the_2019_pangeo_chart_are_where_the_chart_reads_them(handmade):
    fed = handmade.parents[1]
    chart = fed / "pangeo-deploy" / "Chart.yaml"
    chart.write_text(chart.read_text().replace("name: daskhub", "name: pangeo"))
    for values in [*handmade.glob("config/*.yaml"), *handmade.glob("secrets/*.yaml")]:
        values.write_text(re.sub(r"^daskhub:", "pangeo:", values.read_text(), flags=re.M))
    git(fed, "add", "-A")
    git(fed, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "pangeo chart")
    found = results(handmade, "--select", "HV001")["HV001"]
    assert found["result"] is True, found
    # and a key that is nobody's is still named
    common = handmade / "config" / "common.yaml"
    common.write_text(common.read_text() + "jupyterhubb:\n  hub: {}\n")
    found = results(handmade, "--select", "HV001")["HV001"]
    assert found["result"] is False and "'jupyterhubb'" in found["err_msg"] and "under 'pangeo:'" in found["err_msg"]


def test_json_has_one_shape_for_one_hub_or_several(handmade, template_repo, tmp_path_factory):
    other = rendered_hub(template_repo, tmp_path_factory, "aws", "sops", "gateway")
    one = json.loads(check(handmade, "--select", "SE002").stdout)
    two = json.loads(
        subprocess.run(
            [str(BIN / "hub-template"), "check", str(handmade), str(other), "--format", "json", "--select", "SE002"],
            capture_output=True,
            text=True,
        ).stdout
    )
    assert len(one) == 1 and len(two) == 2
    (label,) = one
    assert label.endswith("deployments/" + handmade.name) and one[label] == two[label]
    for document in (*one.values(), *two.values()):
        assert document.keys() == {"status", "families", "checks"}


def test_the_advice_of_a_finding_names_the_file_in_a_terminal(handmade):
    """rich renders findings as Markdown, where a bare `<env>` is an HTML tag it drops."""
    (handmade / "Makefile").write_text("DB_PASS := s3cr3t-db-pass-77\n")
    done = subprocess.run(
        [str(BIN / "hub-template"), "check", str(handmade), "--select", "SE003"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert "Makefile:1" in done.stdout and "secrets/<env>.yaml" in done.stdout, done.stdout
    assert "s3cr3t-db-pass-77" not in done.stdout + done.stderr


def test_an_alias_bomb_in_a_multi_document_manifest_is_bounded(handmade):
    """Read as a stream, each document is bounded as a single one is."""
    levels = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    levels += [f"{c}: &{c} [{', '.join(['*' + p] * 10)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    (handmade / "config" / "bomb-manifests.yaml").write_text("kind: List\n---\n" + "\n".join(levels) + "\n")
    found = results(handmade, "--select", "ST003")["ST003"]
    assert found["result"] is False and "config/bomb-manifests.yaml" in found["err_msg"]
    assert "expands its aliases" in found["err_msg"]
