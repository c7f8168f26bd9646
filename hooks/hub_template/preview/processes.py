"""Starting the preview's programs and stopping every one of them, by pid.

Each program starts in its own session with its output in a log file. On the
way out every pid this preview started, and every descendant of those (users'
servers, dask schedulers and workers), gets SIGTERM, then SIGKILL after a grace
period; processes whose working folder is inside the preview's folder are ours
too (the gateway starts clusters there), and go the same way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

from hub_template.preview import PreviewError

GRACE = 10  # seconds a program has to stop its own children after SIGTERM


def free_port() -> int:
    """A free port on loopback, chosen now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Processes:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
        log = (self.work / f"{name}.log").open("w")
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.started.append(proc)
        return proc

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.work / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def wait_http(self, name: str, proc: subprocess.Popen[bytes], url: str, timeout: float) -> None:
        """Until `url` answers (any HTTP status), or fail with the program's log."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + timeout
        while True:
            try:
                opener.open(url, timeout=2).close()
                return
            except urllib.error.HTTPError:
                return
            except (urllib.error.URLError, OSError):
                pass
            if proc.poll() is not None:
                raise PreviewError(
                    f"{name} exited ({proc.returncode}) before it answered; its log:\n{self.log_tail(name)}"
                )
            if time.monotonic() > deadline:
                raise PreviewError(
                    f"{name} did not answer at {url} within {timeout:.0f} s; its log:\n{self.log_tail(name)}"
                )
            time.sleep(0.25)

    def ours(self) -> list[psutil.Process]:
        """Every live process this preview started, their descendants, and
        anything working inside the preview's folder."""
        found: dict[int, psutil.Process] = {}
        for proc in self.started:
            try:
                parent = psutil.Process(proc.pid)
                for p in [parent, *parent.children(recursive=True)]:
                    if p.status() != psutil.STATUS_ZOMBIE:
                        found[p.pid] = p
            except psutil.Error:
                continue
        for p in psutil.process_iter():
            try:
                if p.status() == psutil.STATUS_ZOMBIE:
                    continue  # exited, waiting for its parent (or init) to reap it
                if p.pid != os.getpid() and Path(p.cwd()).is_relative_to(self.work):
                    found[p.pid] = p
            except (psutil.Error, OSError, ValueError):
                continue
        return list(found.values())

    def rss(self) -> int:
        """Resident memory of everything this preview runs, in bytes."""
        total = 0
        for p in self.ours():
            try:
                total += p.memory_info().rss
            except psutil.Error:
                continue
        return total

    def stop_all(self) -> list[int]:
        """Stop everything, first the programs (they stop their children), then
        whatever is left; returns the pids that needed SIGKILL."""
        before = {p.pid: p for p in self.ours()}  # children are orphaned once their parent stops
        for proc in reversed(self.started):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE
        for proc in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        left = [p for p in {**before, **{p.pid: p for p in self.ours()}}.values() if p.is_running()]
        for p in left:
            with contextlib.suppress(psutil.Error):
                p.terminate()
        _, alive = psutil.wait_procs(left, timeout=5)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(alive, timeout=5)
        for proc in self.started:
            if proc.poll() is None:
                proc.wait(timeout=5)
        return [p.pid for p in alive]
