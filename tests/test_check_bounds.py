"""The checker's bounds (issue 27, Low): it stays offline whatever buildpack
a hub's image asks for, a hub's .shellcheckrc cannot make shellcheck read the
machine's files, a huge file costs neither time nor memory, a size name with a
trailing newline is refused, and invisible characters in a URL's password
are scrubbed with the rest of it."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import BIN, check_report
from hub_cells import copy_hub, rendered_hub

from hub_template import url_credentials


@pytest.fixture
def hub(template_repo, tmp_path_factory, tmp_path) -> Path:
    return copy_hub(rendered_hub(template_repo, tmp_path_factory, "gcp", "sops", "gateway"), tmp_path)


def check(hub: Path, select: str, env: dict[str, str] | None = None) -> dict:
    done = subprocess.run(
        [str(BIN / "hub-template"), "check", str(hub), "--select", select, "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return check_report(done.stdout)["checks"]


class RecordingProxy:
    """A proxy on loopback that records every connection and answers none: the
    network, as the checker's tools would reach it through HTTP(S)_PROXY."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.server.close()


@pytest.mark.parametrize(
    "file, content, buildpack",
    [("runtime.txt", "r-4.1-2021-10-22\n", "RBuildPack"), ("Project.toml", "[deps]\n", "JuliaProjectTomlBuildPack")],
)
def test_the_checker_stays_offline_for_r_and_julia_images(hub, file, content, buildpack):
    (hub / "image" / "binder" / file).write_text(content)
    proxy = RecordingProxy()
    try:
        env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            env[name] = proxy.url
        checks = check(hub, "IM", env)
    finally:
        proxy.close()
    assert proxy.connections == 0
    assert f"repo2docker builds it with {buildpack}, not CondaBuildPack" in checks["IM001"]["err_msg"]


def test_a_hubs_shellcheckrc_cannot_make_shellcheck_read_the_machine(hub, tmp_path):
    host = tmp_path / "host.sh"
    host.write_text("if then fi\n")  # read through `source`, shellcheck would say its parsing failed
    start = hub / "image" / "binder" / "start"
    lines = start.read_text().splitlines()
    lines.insert(1, f"source {host}")
    start.write_text("\n".join(lines) + "\n")
    (hub / "image" / "binder" / ".shellcheckrc").write_text("external-sources=true\nsource-path=/\n")
    found = check(hub, "IM007")["IM007"]["err_msg"]
    assert "SC1091" in found and "Not following" in found and "SC1094" not in found
    # A rule choice of the hub's rc still holds.
    (hub / "image" / "binder" / ".shellcheckrc").write_text("external-sources=true\ndisable=SC1091\n")
    assert check(hub, "IM007")["IM007"]["result"] is True


def test_a_huge_file_costs_neither_time_nor_memory(hub):
    data = hub / "image" / "data.csv"
    row = b"station,2026-01-01T00:00:00,12.5,0.3,some text to make the row long enough\n"
    with data.open("wb") as out:
        for _ in range(150 * 2**20 // (len(row) * 4096) + 1):
            out.write(row * 4096)
    assert data.stat().st_size >= 150 * 2**20
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    checks = check(hub, "SE,ST")
    took = time.monotonic() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert took < 15, took
    assert peak_mb < 400 or peak_mb <= before / 1024, peak_mb
    assert "`image/data.csv`: is 150 MB of text, more than the 10 MB the checker reads" in checks["SE003"]["err_msg"]


def test_a_size_name_with_a_trailing_newline_is_refused(template_repo, tmp_path):
    sizes = json.dumps([{"name": "big\n", "machine": "n2-highmem-4"}])
    done = subprocess.run(
        [
            *(sys.executable, "-m", "copier", "copy", "--trust", "--defaults"),
            *("--data", f"user_sizes={sizes}", str(template_repo), str(tmp_path / "deployments" / "charlie")),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "size names are lowercase a-z, 0-9 and -" in done.stdout + done.stderr


@pytest.mark.parametrize("invisible", ["\ufeff", "\u200b", "\u00a0", "\u2028", "\u3000"])
def test_invisible_characters_in_a_url_password_are_scrubbed(invisible):
    secret = f"pa{invisible}ss-w0rd"
    for url, kept in (
        (f"https://alice:{secret}@git.example.org/x.git", "https://git.example.org/x.git"),
        (f"ssh://git:{secret}@git.example.org/x.git", "ssh://git@git.example.org/x.git"),
    ):
        assert url_credentials.strip(f"clone {url} now") == f"clone {kept} now"
        assert url_credentials.has_credentials(url)
