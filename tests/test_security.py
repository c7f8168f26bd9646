"""Untrusted input never runs, never escapes, never leaks (issue 8).

What the template trusts and what it does not is in docs/security.md. Each
test here builds a hostile input for real (a git repository with links, a hub
whose scripts plant canaries, files holding secrets) and drives the real
tool: `copier copy --trust` through copier's run_copy, or the
`hub-template check` command. Each asserts that nothing outside the
destination changed, that no secret value shows in a file or in the output,
and that a bad input gets one clear line instead of a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import BIN, check_report, git, hub_template
from copier import run_copy
from hub_cells import commit_federation, copy_hub, rendered_hub

from hub_template.checks import CHECK_CLASSES

# --- helpers -------------------------------------------------------------------------


def make_source(path: Path, files: dict[str, str], links: dict[str, str] | None = None) -> Path:
    """A git repository of `files` and `links` (symlinks, created on disk and
    committed as git stores them)."""
    path.mkdir(parents=True)
    git(path, "init", "-q")
    for name, content in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(content)
    for name, target in (links or {}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path / name)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "hostile")
    return path


def tree_digest(root: Path) -> str:
    """A checksum of every name, link and byte under `root` (links not followed)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_symlink():
            digest.update(b"->" + os.readlink(path).encode())
        elif path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def copy(template: Path, dst: Path, capfd, **data) -> tuple[Path, str, Exception | None]:
    """`copier copy --trust --defaults` with `data`; (hub, stderr+stdout, the error)."""
    capfd.readouterr()
    error = None
    try:
        run_copy(str(template), str(dst), data=data, defaults=True, unsafe=True, quiet=True)
    except Exception as caught:  # copier's TaskError when the import refused
        error = caught
    out = capfd.readouterr()
    return dst, out.out + out.err, error


def no_traceback(output: str) -> None:
    assert "Traceback" not in output, output


# --- 1. no write through symlinks --------------------------------------------------------


def test_a_chain_of_links_out_of_the_source_writes_nothing_outside(template_repo, tmp_path, capfd):
    """Each link looks inside the repository once normalised (`up/..` is the
    folder holding `up`), but followed the way the kernel follows it every
    `upN` climbs one folder higher, out of the image, out of the hub, out of
    the federation. README.md and binder/postBuild point through the chain."""
    chain = {"s1/s2/s3/up": "../../.."}
    for n in range(2, 9):
        chain[f"s1/s2/s3/up{n}"] = ("up" if n == 2 else f"up{n - 1}") + "/.."
    links = {
        **chain,
        "README.md": "s1/s2/s3/up8/../canary-readme",
        "s1/s2/s3/escape.txt": "up8/../canary-file",
        "notebooks-link": "notebooks",  # a folder inside: not copied
        "data.csv": "notebooks/data.csv",  # a file inside: copied as a file
    }
    source = make_source(
        tmp_path / "source",
        {
            "s1/s2/s3/canary-readme": "decoy\n",
            "s1/s2/s3/canary-file": "decoy\n",
            "notebooks/data.csv": "a,b\n1,2\n",
            "notebooks/intro.ipynb": "{}",
        },
        links,
    )
    sibling = tmp_path / "federation" / "deployments" / "other"
    sibling.mkdir(parents=True)
    (sibling / "keep.txt").write_text("untouched\n")
    before = tree_digest(sibling)

    hub, output, error = copy(
        template_repo, tmp_path / "federation" / "deployments" / "hub", capfd, source_repo=str(source)
    )
    assert error is None, output
    no_traceback(output)
    for parent in [tmp_path, *tmp_path.parents][:3]:
        assert not (parent / "canary-readme").exists() and not (parent / "canary-file").exists()
    outside = [p for p in tmp_path.rglob("canary-*") if not p.is_relative_to(source) and not p.is_relative_to(hub)]
    assert outside == [], outside
    assert tree_digest(sibling) == before
    assert sorted(p.name for p in (tmp_path / "federation" / "deployments").iterdir()) == ["hub", "other"]
    image = hub / "image"
    assert not [p for p in hub.rglob("*") if p.is_symlink()]
    assert (image / "data.csv").read_text() == "a,b\n1,2\n" and not (image / "data.csv").is_symlink()
    assert (image / "README.md").read_text().startswith("> Imported by hub-template")
    # the summary says what was left out and why
    assert "README.md: a symlink to s1/s2/s3/up8/../canary-readme, outside the repository" in output
    assert "s1/s2/s3/up8: a symlink to up7/.., outside the repository" in output
    assert "notebooks-link: a symlink to the folder notebooks; not copied" in output
    assert "1 of them symlinks, copied as files" in output


# --- 2. the checker never runs the hub's scripts ---------------------------------------------


def _every_select() -> list[str]:
    ids = [cls.__name__ for cls in CHECK_CLASSES]
    prefixes = sorted({i[:2] for i in ids})
    return ["", *ids, *prefixes, ",".join(ids)]


def test_the_checker_never_runs_postbuild_or_start(template_repo, tmp_path_factory, tmp_path):
    """Canaries in postBuild and start (and in a script postBuild calls): no
    variant of `hub-template check` may fire them, `--select SE001` (the
    pre-commit hook) included."""
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "sops", "gateway"), tmp_path)
    canaries = tmp_path / "canaries"
    for script in ("postBuild", "start"):
        path = hub / "image" / "binder" / script
        lines = path.read_text().splitlines()
        at = lines.index("set -euo pipefail") + 1
        lines[at:at] = [
            f'touch "{canaries}-{script}"',
            f'echo pwned > "$HOME/canary-{script}"',
            f"./binder/helper-{script}",
        ]
        path.write_text("\n".join(lines) + "\n")
        helper = hub / "image" / "binder" / f"helper-{script}"
        helper.write_text(f'#!/bin/bash\ntouch "{canaries}-helper-{script}"\n')
        helper.chmod(0o755)
    before = tree_digest(hub)
    home = Path.home()
    for select in _every_select():
        done = hub_template("check", str(hub), *(["--select", select] if select else []))
        assert done.returncode in (0, 1), (select, done.stderr)
        no_traceback(done.stdout + done.stderr)
        fired = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("canaries"))
        assert fired == [], (select, fired)
        assert not (home / "canary-postBuild").exists() and not (home / "canary-start").exists()
    assert tree_digest(hub) == before  # and the checker changed no file of the hub


def test_the_checker_still_sees_where_postbuild_installs_the_dask_config(template_repo, tmp_path_factory, tmp_path):
    """Read statically, postBuild still says where the dask config lands: a
    copy into ~/.config/dask (hidden by the home volume) fails DK001."""
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "sops", "gateway"), tmp_path)
    post_build = hub / "image" / "binder" / "postBuild"
    post_build.write_text(
        post_build.read_text()
        .replace(
            'mkdir -p "${NB_PYTHON_PREFIX}/etc/dask"',
            'cd "${REPO_DIR}" && mkdir -p ~/.config/dask "$HOME/.config/dask"',
        )
        .replace('"${NB_PYTHON_PREFIX}/etc/dask/', '"${HOME}/.config/dask/')
    )
    done = hub_template("check", str(hub), "--select", "DK001", "--format", "json")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "under ~/.config/dask" in done.stdout


# --- 4. credentials in URLs ---------------------------------------------------------------

PASSWORD = "s3cret-Pa55word"


def _files_holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and secret.encode() in p.read_bytes()]


def test_a_password_in_source_repo_is_never_recorded_nor_printed(template_repo, tmp_path, capfd):
    """The fetch fails (nothing listens on port 9). The folder existed empty
    before, so the import empties it again; the answers it keeps beside it
    hold the URL without its password."""
    hub = tmp_path / "deployments" / "hub"
    hub.mkdir(parents=True)
    url = f"https://alice:{PASSWORD}@127.0.0.1:9/notebooks.git"
    _, output, error = copy(template_repo, hub, capfd, source_repo=url)
    assert error is not None
    no_traceback(output)
    assert PASSWORD not in output and "https://127.0.0.1:9/notebooks.git" in output
    assert _files_holding(tmp_path, PASSWORD) == []
    assert hub.is_dir() and not any(hub.iterdir())
    assert "https://127.0.0.1:9/notebooks.git" in (hub.parent / "hub.answers.yml").read_text()


@pytest.mark.parametrize(
    "line",
    [
        f"private-pkg @ https://__token__:{PASSWORD}@pypi.example.org/private_pkg-1.0-py3-none-any.whl",
        f"--extra-index-url https://__token__:{PASSWORD}@pypi.example.org/simple",
    ],
)
def test_a_token_in_an_environment_file_is_refused_without_showing_it(template_repo, tmp_path, capfd, line):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"xarray\n{line}\n")
    hub, output, error = copy(
        template_repo, tmp_path / "deployments" / "hub", capfd, environment_file=str(requirements)
    )
    assert error is not None and not hub.exists()
    no_traceback(output)
    assert PASSWORD not in output and "requirements.txt, line 2:" in output
    assert _files_holding(tmp_path, PASSWORD) == [requirements]


def test_the_checker_flags_a_url_with_a_password_anywhere(template_repo, tmp_path_factory, tmp_path):
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "sops", "gateway"), tmp_path)
    (hub / "image" / "notes.md").write_text(f"clone https://bob:{PASSWORD}@git.example.org/data.git\n")
    done = hub_template("check", str(hub), "--select", "SE003")
    assert done.returncode == 1 and "image/notes.md:1" in done.stdout and "a URL with a password" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr


# --- 5, 6, 12. secrets the checker must see ---------------------------------------------------

AWS_KEY_ID = "AKIA" + "Q3EXAMPLE7KEY9ZZ"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
GH_TOKEN = "ghp_" + "Zq8x" * 9
SECRET_VALUES = (
    AWS_KEY_ID,
    AWS_SECRET,
    GH_TOKEN,
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
    "c0ffee-block-secret-1234",
    "folded-secret-value-5678",
    "plaintext-under-sops-9999",
)


def _hostile_secrets(hub: Path, tmp_path: Path) -> dict[str, int]:
    """Plant each secret the line scan missed; returns file -> line expected."""
    prod = hub / "secrets" / "prod.yaml"
    text = prod.read_text()
    assert 'client_secret: "' in text
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if "client_secret:" in line)
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    lines[at : at + 1] = [f"{indent}client_secret: |", f"{indent}  c0ffee-block-secret-1234"]
    prod.write_text("\n".join(lines) + "\n")
    common = hub / "config" / "common.yaml"
    common.write_text(common.read_text() + "extra:\n  api_token: >-\n    folded-secret-value-5678\n")
    (hub / "image" / ".env").write_text(f"AWS_ACCESS_KEY_ID={AWS_KEY_ID}\nAWS_SECRET_ACCESS_KEY={AWS_SECRET}\n")
    (hub / "image" / "fetch.py").write_text(f'import os\n\naws_secret_access_key = "{AWS_SECRET}"\n')
    (hub / "image" / "data").mkdir()
    (hub / "image" / "data" / "sa.json").write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "p",
                "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n",
            },
            indent=2,
        )
    )
    (hub / "config" / "kubeconfig").write_text(
        "apiVersion: v1\nusers:\n- name: admin\n  user:\n    client-key-data: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
    )
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "id": "c1",
                "metadata": {},
                "execution_count": 1,
                "source": ["import os\n", "print('hello')\n"],
                "outputs": [{"output_type": "stream", "name": "stdout", "text": [f"token {GH_TOKEN}\n"]}],
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (hub / "image" / "leak.ipynb").write_text(json.dumps(notebook, indent=1))
    # a sops block above values in clear
    staging = hub / "secrets" / "staging.yaml"
    text = re.sub(r'client_id: ".*"', 'client_id: "plaintext-under-sops-9999"', staging.read_text())
    text = re.sub(r'client_secret: ".*"', 'client_secret: "plaintext-under-sops-9999"', text)
    staging.write_text(text + "sops:\n  mac: ENC[AES256_GCM,data:abc,type:str]\n  version: 3.9.0\n")
    return {
        "secrets/prod.yaml": at + 2,
        "config/common.yaml": len(common.read_text().splitlines()),
        "image/.env": 1,
        "image/fetch.py": 3,
        "image/data/sa.json": None,
        "config/kubeconfig": 5,
        "image/leak.ipynb": None,
        "secrets/staging.yaml": None,
    }


def test_the_checker_sees_every_secret_and_never_echoes_one(template_repo, tmp_path_factory, tmp_path):
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "sops", "gateway"), tmp_path)
    expected = _hostile_secrets(hub, tmp_path)
    done = hub_template("check", str(hub), "--select", "SE", "--format", "json")
    no_traceback(done.stdout + done.stderr)
    assert done.returncode == 1
    report = check_report(done.stdout)["checks"]
    se003, se001 = report["SE003"]["err_msg"], report["SE001"]["err_msg"]
    for rel, line in expected.items():
        if rel == "secrets/staging.yaml":
            assert "secrets/staging.yaml" in se001  # fake sops: in clear, no placeholder left
            continue
        assert (f"`{rel}:{line}`" if line else f"`{rel}:") in se003, (rel, se003)
    everything = done.stdout + done.stderr + hub_template("check", str(hub)).stdout
    for value in SECRET_VALUES:
        assert value not in everything, value
    assert "ignore" not in se003.lower() and "ignore" not in se001.lower()


def test_a_secret_that_is_a_symlink_out_of_the_repository_is_a_finding(template_repo, tmp_path_factory, tmp_path):
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", "gateway"), tmp_path)
    outside = tmp_path / "outside.yaml"
    outside.write_text(f"token: {GH_TOKEN}\n")
    (hub / "secrets" / "prod.yaml").unlink()
    (hub / "secrets" / "prod.yaml").symlink_to(outside)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "hub")
    done = hub_template("check", str(hub), "--select", "SE")
    no_traceback(done.stdout + done.stderr)
    assert done.returncode == 1 and "secrets/prod.yaml" in done.stdout and "is a symlink" in done.stdout
    assert GH_TOKEN not in done.stdout + done.stderr


# --- 8. DASK_* exports of the image's scripts ---------------------------------------------------


@pytest.mark.parametrize("dask_config", ["/", "HOST"])
def test_dask_config_in_start_never_reads_the_host(template_repo, tmp_path_factory, tmp_path, dask_config):
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "sops", "gateway"), tmp_path)
    host = tmp_path / "host-config"
    host.mkdir()
    (host / "mine.yaml").write_text("operatorsownsetting: 1\n")
    target = str(host) if dask_config == "HOST" else dask_config
    start = hub / "image" / "binder" / "start"
    start.write_text(
        start.read_text().replace(
            "set -euo pipefail\n",
            f"set -euo pipefail\nexport DASK_CONFIG={target}\n"
            "export DASK_LABEXTENSION__FACTORY__CLASS=LocalCluster\n"
            "export DASK_GATEWAY__ADDRESS=http://elsewhere\n",
            1,
        )
    )
    done = hub_template("check", str(hub), "--select", "DK", "--format", "json")
    no_traceback(done.stdout + done.stderr)
    report = check_report(done.stdout)["checks"]
    assert "operatorsownsetting" not in done.stdout
    assert report["DK002"]["result"] is True
    dk003 = report["DK003"]["err_msg"]
    assert "`image/binder/start:6`" in dk003 and "DASK_LABEXTENSION__FACTORY__CLASS" in dk003
    assert "`image/binder/start:7`" in dk003 and "DASK_GATEWAY__ADDRESS" in dk003


# --- 11. YAML alias bombs -----------------------------------------------------------------------

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_an_alias_bomb_from_a_source_is_refused_in_one_line(template_repo, tmp_path, capfd):
    source = make_source(tmp_path / "source", {".dask/config.yaml": BOMB, "intro.ipynb": "{}"})
    hub, output, error = copy(template_repo, tmp_path / "deployments" / "hub", capfd, source_repo=str(source))
    assert error is not None and not hub.exists()
    no_traceback(output)
    assert ".dask/config.yaml of" in output and "holds an alias (*a)" in output


def test_an_alias_bomb_or_duplicate_anchor_in_a_hub_does_not_stop_the_checker(
    template_repo, tmp_path_factory, tmp_path
):
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "sops", "gateway"), tmp_path)
    (hub / "image" / ".dask" / "bomb.yaml").write_text(BOMB)
    (hub / "config" / "anchors.yaml").write_text("a: &x 1\nb: &x 2\nc: *x\n")
    for select in ("SE", "ST003", "DK", ""):
        done = hub_template("check", str(hub), *(["--select", select] if select else []))
        no_traceback(done.stdout + done.stderr)
        assert done.returncode in (0, 1), done.stderr
    done = hub_template("check", str(hub), "--select", "ST003")
    assert "image/.dask/bomb.yaml" in done.stdout and "expands its aliases" in done.stdout
    assert "config/anchors.yaml" in done.stdout and "duplicate anchor" in done.stdout


@pytest.mark.parametrize("unit", ["a:\n", "- \n", "-\n", "a,", "? \n", "a: b\n", "[a]\n", "{a}\n", "- - \n", "- {}\n"])
def test_an_alias_free_text_has_at_most_two_nodes_per_character(unit):
    """Why safe_yaml skips the expansion walk for a short text with no `*`:
    without aliases a document is as large as it is written, at most two
    nodes per character, so EXPANDED_NODES // 2 characters stay within the bound."""
    import yaml

    from hub_template import safe_yaml

    def nodes(node: yaml.Node) -> int:
        if isinstance(node, yaml.MappingNode):
            return 1 + sum(nodes(k) + nodes(v) for k, v in node.value)
        if isinstance(node, yaml.SequenceNode):
            return 1 + sum(nodes(item) for item in node.value)
        return 1

    for text in (unit * 500, "[" + unit * 500 + "]", "{" + unit * 500 + "}"):
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            continue  # not YAML: the parser refuses it before any walk
        assert root is None or nodes(root) <= 2 * len(text), text[:20]
    bound = safe_yaml.EXPANDED_NODES // 2
    assert safe_yaml._bounded_loader("a: 1\n") is not safe_yaml._Bounded
    assert safe_yaml._bounded_loader("a: &x 1\nb: *x\n") is safe_yaml._Bounded
    assert safe_yaml._bounded_loader("[" + "a," * bound + "]") is safe_yaml._Bounded
    with pytest.raises(yaml.YAMLError, match="expands its aliases"):
        safe_yaml.load_bounded("[" + "a," * safe_yaml.EXPANDED_NODES + "]")  # long, no alias: still walked


# --- 14. a kubernetes hub keeps its own dask settings ------------------------------------------


def test_a_kubernetes_hub_drops_the_sources_gateway_settings(template_repo, tmp_path, capfd):
    source = make_source(
        tmp_path / "source",
        {
            ".dask/config.yaml": "gateway:\n  address: http://elsewhere\narray:\n  chunk-size: 64MiB\n",
            "intro.ipynb": "{}",
        },
    )
    hub, output, error = copy(
        template_repo, tmp_path / "deployments" / "hub", capfd, source_repo=str(source), dask_backend="kubernetes"
    )
    assert error is None, output
    config = (hub / "image" / ".dask" / "config.yaml").read_text()
    assert "elsewhere" not in config and "chunk-size: 64MiB" in config
    assert "gateway left out: the hub's dask backend decides how clusters are made" in output


# --- 15. the rest ------------------------------------------------------------------------------


def test_a_source_of_too_many_files_is_refused(template_repo, tmp_path, capfd):
    from hub_template.git_source import FILE_COUNT_CAP

    source = tmp_path / "source"
    source.mkdir()
    git(source, "init", "-q")
    for n in range(FILE_COUNT_CAP + 1):
        (source / f"f{n}").touch()
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", "many")
    hub, output, error = copy(template_repo, tmp_path / "deployments" / "hub", capfd, source_repo=str(source))
    assert error is not None and not hub.exists()
    no_traceback(output)
    assert f"has {FILE_COUNT_CAP + 1} files; the image takes at most {FILE_COUNT_CAP}" in output


def test_an_ssh_url_that_is_an_option_is_refused_without_traceback(template_repo, tmp_path, capfd):
    canary = tmp_path / "proxy-ran"
    hub, output, error = copy(
        template_repo,
        tmp_path / "deployments" / "hub",
        capfd,
        source_repo=f"ssh://[-oProxyCommand=touch {canary}]/x".replace(" ", "${IFS}"),
    )
    assert error is not None and not hub.exists() and not canary.exists()
    no_traceback(output)
    assert "is not a valid URL" in output


def test_braces_in_the_description_and_nulls_in_the_lists(template_repo, tmp_path, capfd):
    hub, output, error = copy(
        template_repo,
        tmp_path / "deployments" / "hub",
        capfd,
        hub_description="Uses {{ templates }} in its notebooks",
        pip_packages=[None, "odc-stac"],
    )
    assert error is None, output
    environment = (hub / "image" / "binder" / "environment.yml").read_text()
    assert "- None" not in environment and "- odc-stac" in environment
    done = hub_template("check", str(hub), "--select", "ST002")
    assert done.returncode == 0, done.stdout


def test_python_310_read_as_31_from_a_data_file_is_explained(template_repo, tmp_path):
    data = tmp_path / "answers.yml"
    data.write_text("python_version: 3.10\n")  # YAML reads the number 3.1
    done = subprocess.run(
        [
            str(BIN / "copier"),
            "copy",
            "--trust",
            "--defaults",
            "--data-file",
            str(data),
            str(template_repo),
            str(tmp_path / "deployments" / "hub"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and not (tmp_path / "deployments" / "hub").exists()
    assert 'YAML reads an unquoted 3.10 as 3.1: write "3.10".' in done.stderr


# --- 9. a git directory laid out in plain files (issue 27, item 1) -------------------------


def plant_git_dir(folder: Path, canary: Path | None) -> None:
    """The four files that make git take `folder` for a repository when it
    searches upwards: HEAD, objects/, refs/ and, where the folder may hold a
    file named config, a config whose fsmonitor command touches `canary`."""
    (folder / "HEAD").write_text("ref: refs/heads/main\n")
    for sub in ("objects/info/k", "refs/heads/k"):
        (folder / sub).parent.mkdir(parents=True, exist_ok=True)
        (folder / sub).write_text("")
    if canary is not None:  # git 2.39 reads core.worktree only with a format version
        (folder / "config").write_text(
            "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tworktree = .\n"
            f'\tfsmonitor = "echo ran >> {canary}; false"\n'
        )


def planted_federation(template_repo: Path, tmp_path_factory, tmp_path: Path, where: str) -> tuple[Path, Path]:
    """A federation whose deployments/ (or hub charlie) holds a git directory
    layout, committed; returns the hub and the canary the layout's command touches."""
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", "gateway"), tmp_path)
    canary = tmp_path / "canary"
    plant_git_dir(hub.parent if where == "deployments" else hub, canary if where == "deployments" else None)
    commit_federation(tmp_path)
    return hub, canary


@pytest.mark.parametrize("where", ["deployments", "hub"])
def test_a_git_directory_in_plain_files_is_flagged_and_never_run_by_check(
    template_repo, tmp_path_factory, tmp_path, where
):
    """In deployments/, git took the folder for the repository holding the
    hub and ran its fsmonitor command on every check; in the hub itself
    (whose config/ is a folder, so no command), it made SE002 skip as "not
    in a git repository". The checker finds the federation's own repository
    and ST008 names the layout."""
    hub, canary = planted_federation(template_repo, tmp_path_factory, tmp_path, where)
    done = hub_template("check", str(hub), "--select", "SE,ST008", "--format", "json")
    no_traceback(done.stdout + done.stderr)
    assert not canary.exists(), canary.read_text()
    results = check_report(done.stdout)["checks"]
    assert results["SE002"]["result"] is True, results["SE002"]  # the federation's .gitattributes was read
    assert results["ST008"]["result"] is False
    layout = "deployments/" if where == "deployments" else "deployments/charlie/"
    assert f"`{layout}`: holds HEAD, objects/ and refs/" in results["ST008"]["err_msg"]


@pytest.mark.parametrize("where", ["deployments", "hub"])
def test_update_refuses_hubs_under_a_git_directory_layout_and_runs_nothing(evolving_template, tmp_path, where):
    """In deployments/, the layout's fsmonitor ran on the update's first `git
    status`; in a hub, copier's git took the hub for a repository. Each hub
    under it is refused before anything runs; the others update."""
    from template_versions import commit, federation, make_hub, snapshot
    from test_federation import hub_template_rows

    fed = federation(tmp_path / "federation", evolving_template)
    hubs = {name: make_hub(evolving_template, fed, name, "v1.1.0") for name in ("alpha", "bravo")}
    canary = tmp_path / "canary"
    plant_git_dir(fed / "deployments", canary) if where == "deployments" else plant_git_dir(hubs["bravo"], None)
    commit(fed, "a git directory in plain files")
    before = snapshot(fed / "deployments")
    code, rows, output = hub_template_rows("update", str(fed / "deployments"), "--jobs", "1")
    no_traceback(output)
    assert not canary.exists(), canary.read_text()
    refused = {"alpha", "bravo"} if where == "deployments" else {"bravo"}
    layout = "deployments/" if where == "deployments" else "deployments/bravo/"
    for name in refused:
        assert rows[name][2] == "refused" and f"{layout} holds HEAD, objects/ and refs/" in rows[name][3], output
        prefix = f"{name}/"
        assert {p: b for p, b in snapshot(fed / "deployments").items() if p.startswith(prefix)} == {
            p: b for p, b in before.items() if p.startswith(prefix)
        }
    assert code == 1 and all(rows[name][2] == "updated" for name in set(hubs) - refused), output


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_update_runs_no_fsmonitor_nor_hook_through_copier(evolving_template, tmp_path, jobs):
    """Every git of an update, copier's own (`git status`, `git apply` in the
    hub) and its worktrees' included, runs with fsmonitor and hooks off,
    whatever a repository's config says."""
    from template_versions import federation, make_hub
    from test_federation import hub_template_rows

    fed = federation(tmp_path / "federation", evolving_template)
    hubs = [make_hub(evolving_template, fed, name, "v1.1.0") for name in ("alpha", "bravo")]
    canary = tmp_path / "canary"
    git(fed, "config", "core.fsmonitor", f"echo fsmonitor >> {canary}; false")
    hooks = fed / ".git" / "hooks"
    for hook in ("post-checkout", "pre-commit", "post-commit", "post-index-change"):
        (hooks / hook).write_text(f"#!/bin/sh\necho {hook} >> {canary}\n")
        (hooks / hook).chmod(0o755)
    code, rows, output = hub_template_rows("update", str(fed / "deployments"), "--jobs", jobs)
    assert code == 0 and [row[2] for row in rows.values()] == ["updated", "updated"], output
    assert not canary.exists(), canary.read_text()
    assert all("_commit: v1.2.0" in (hub / ".copier-answers.yml").read_text() for hub in hubs)


def test_plan_deploy_plans_the_federation_never_a_planted_repository(template_repo, tmp_path_factory, tmp_path):
    """deployments/ holding a whole git directory (a commit that deploys a
    hub "mallory", an fsmonitor command): plan-deploy run from inside
    deployments/ planned from that repository; it plans the federation's."""
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "git-crypt", "gateway"), tmp_path)
    commit_federation(tmp_path)
    image_commit = git(tmp_path, "rev-parse", "HEAD")  # the last to change the hub's image/: its tag
    planted = make_source(tmp_path.parent / f"{tmp_path.name}-planted", {"deployments/mallory/hubploy.yaml": "x: 1\n"})
    canary = tmp_path / "canary"
    for name in ("HEAD", "objects", "refs"):
        source = planted / ".git" / name
        copy_to = hub.parent / name
        if source.is_dir():
            shutil.copytree(source, copy_to)
        else:
            copy_to.write_bytes(source.read_bytes())
    (hub.parent / "config").write_text(
        "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tworktree = ..\n"
        f'\tfsmonitor = "echo ran >> {canary}; false"\n'
    )
    commit_federation(tmp_path)
    done = subprocess.run(
        [str(BIN / "hub-template"), "plan-deploy", "--before", "0" * 40, "--after", "HEAD", "--branch", "staging"],
        cwd=hub.parent,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [entry["hub"] for entry in result["hubs"]] == ["charlie"] and result["hubs"][0]["tag"] == image_commit[:12]
    assert not canary.exists()
