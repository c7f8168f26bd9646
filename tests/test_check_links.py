"""Symlinks in a hub (issue 27, item 6): `ln -s ~/.ssh/id_rsa
HUB/image/binder/runtime.txt` made IM001 print the key, since repo2docker
follows links. The checker names a link in image/, config/ or secrets/
(ST007), runs no tool over a folder holding one, reads every file through a
no-follow open, and CI's plan refuses such a hub before anything builds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import check_report, git, hub_template, render
from hub_cells import REAL_IDS, copy_hub, rendered_hub

from hub_template.checks.hub import Hub, read_no_follow

MARKER = "HOST-KEY-MATERIAL-7f3a9c"


def host_key(tmp_path: Path) -> Path:
    """A file of the machine the checker runs on, standing for ~/.ssh/id_rsa."""
    key = tmp_path / "home" / ".ssh" / "id_rsa"
    key.parent.mkdir(parents=True)
    key.write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{MARKER}\n-----END OPENSSH PRIVATE KEY-----\n")
    return key


@pytest.mark.parametrize(
    "link",
    ["image/binder/runtime.txt", "image/binder/apt.txt", "config/staging.yaml", "image/notes/key.txt"],
)
def test_a_link_to_a_host_file_is_named_and_never_read(template_repo, tmp_path_factory, tmp_path, link):
    hub = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "sops", "gateway"), tmp_path / "fed")
    target = hub / link
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    target.symlink_to(host_key(tmp_path))
    done = hub_template("check", str(hub), "--format", "json")
    rich = hub_template("check", str(hub))
    for output in (done.stdout, done.stderr, rich.stdout, rich.stderr):
        assert MARKER not in output and "PRIVATE KEY" not in output
        assert "Traceback" not in output
    checks = check_report(done.stdout)["checks"]
    assert checks["ST007"]["result"] is False
    assert checks["ST007"]["err_msg"].count("\n") == 0 and f"`{link}`: is a symlink" in checks["ST007"]["err_msg"]
    if link.startswith("image/"):
        assert "repo2docker, which follows them, was not run" in checks["IM001"]["err_msg"]


def test_a_file_swapped_for_a_link_after_listing_is_not_followed(template_repo, tmp_path_factory, tmp_path):
    hub_dir = copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "sops", "gateway"), tmp_path / "fed")
    hub = Hub(hub_dir.resolve())
    assert "image/binder/start" in hub.files  # listed as a regular file...
    start = hub_dir / "image" / "binder" / "start"
    start.unlink()
    start.symlink_to(host_key(tmp_path))  # ...then replaced by a link before it is read
    assert hub.raw("image/binder/start") is None
    # and a folder on the way swapped for a link is refused too
    binder = hub_dir / "image" / "binder"
    binder.rename(hub_dir / "image" / "moved")
    binder.symlink_to(hub_dir / "image" / "moved")
    assert read_no_follow(hub_dir, "image/binder/postBuild") is None
    assert read_no_follow(hub_dir, "image/moved/postBuild") is not None


def test_plan_deploy_refuses_a_hub_with_a_link_in_image_or_config(template_repo, tmp_path):
    fed = tmp_path / "fed"
    fed.mkdir()
    git(fed, "init", "-q")
    hub = render(template_repo, fed / "deployments" / "alpha", cloud_provider="gcp", **REAL_IDS)
    (hub / "image" / "binder" / "runtime.txt").symlink_to("../../secrets/prod.yaml")
    git(fed, "add", "-A")
    git(fed, "commit", "-q", "-m", "a hub with a link")
    done = subprocess.run(
        [sys.executable, "-m", "hub_template.cli", "plan-deploy", "--repo", str(fed), "--branch", "staging"],
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.startswith("plan-deploy: deployments/alpha/image/binder/runtime.txt: is a symlink")
    assert len(done.stderr.splitlines()) == 1
