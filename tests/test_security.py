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
import os
import subprocess
import sys
from pathlib import Path

import pytest
from copier import run_copy

from conftest import git
from hub_cells import copy_hub, rendered_hub
from hub_template.checks import CHECK_CLASSES

BIN = Path(sys.executable).parent


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


def hub_template(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "hub-template"), *args], capture_output=True, text=True)


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
    source = make_source(tmp_path / "source", {
        "s1/s2/s3/canary-readme": "decoy\n", "s1/s2/s3/canary-file": "decoy\n",
        "notebooks/data.csv": "a,b\n1,2\n", "notebooks/intro.ipynb": "{}",
    }, links)
    sibling = tmp_path / "federation" / "deployments" / "other"
    sibling.mkdir(parents=True)
    (sibling / "keep.txt").write_text("untouched\n")
    before = tree_digest(sibling)

    hub, output, error = copy(template_repo, tmp_path / "federation" / "deployments" / "hub", capfd,
                              source_repo=str(source))
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
        lines[at:at] = [f'touch "{canaries}-{script}"', f'echo pwned > "$HOME/canary-{script}"',
                        f"./binder/helper-{script}"]
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


def test_the_checker_still_sees_where_postbuild_installs_the_dask_config(template_repo, tmp_path_factory,
                                                                         tmp_path):
    """Read statically, postBuild still says where the dask config lands: a
    copy into ~/.config/dask (hidden by the home volume) fails DK001."""
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "sops", "gateway"), tmp_path)
    post_build = hub / "image" / "binder" / "postBuild"
    post_build.write_text(post_build.read_text().replace(
        'mkdir -p "${NB_PYTHON_PREFIX}/etc/dask"', 'cd "${REPO_DIR}" && mkdir -p ~/.config/dask "$HOME/.config/dask"'
    ).replace('"${NB_PYTHON_PREFIX}/etc/dask/', '"${HOME}/.config/dask/'))
    done = hub_template("check", str(hub), "--select", "DK001", "--format", "json")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "under ~/.config/dask" in done.stdout
