"""Running the hub's own scripts (binder/postBuild, binder/start) as a user
pod runs them: as the image's unprivileged user, with only the environment a
pod would have, and inside bubblewrap (Debian's `bwrap`), which shows them
only the folders they need: the system's programs read-only, the users'
environment and the hub's image/ read-only, and the one folder each may write.

A source repository's scripts are code from elsewhere: the preview shows them
and asks before it runs them (`--yes` answers). Its pip requirements that are
URLs or paths (`pkg @ file://...`, `https://...`) would run their setup code
while the environment is made: they are refused unless named on the command
line (`--allow-requirement`).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

from hub_template import load_data
from hub_template.preview import PreviewError

BWRAP = "bwrap"
USER = load_data("image_build.yml")
# The only variables of this machine a script sees (a pod's locale); the
# preview adds what the pod's own environment has (HOME, PATH, the hub's).
KEPT = ("LANG", "LC_ALL")
# What every script sees read-only: the system's programs and libraries, and
# the few files of /etc that name users, hosts and certificates (not the rest).
SYSTEM = ("/usr",)
ETC = (
    "/etc/passwd",
    "/etc/group",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/ssl",
    "/etc/alternatives",
)
MERGED_USR = ("/bin", "/sbin", "/lib", "/lib64")


def program() -> str:
    found = shutil.which(BWRAP)
    if found is None:
        raise PreviewError("no bubblewrap, which runs the hub's scripts in a sandbox: apt-get install bubblewrap")
    return found


def environment(extra: dict[str, str]) -> dict[str, str]:
    """A pod's environment: the kept locale variables and `extra`, nothing else
    of this machine (no AWS_*, no tokens, no operator variables)."""
    return {**{name: os.environ[name] for name in KEPT if name in os.environ}, **extra}


def python_home() -> Path:
    """Where this Python's standard library lives (a virtual environment's
    interpreter needs it), outside the users' environment."""
    return Path(sys.base_prefix)


def argv(
    command: list[str],
    *,
    read_only: Iterable[Path],
    writable: Iterable[Path],
    home: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> list[str]:
    """bwrap's command line for `command`: as the image's user (uid
    USER['user_id'], in its own user namespace), in fresh namespaces but the
    network's (a server must answer the hub), seeing only the system, `read_only`
    and `writable`; `home` is the user's home (writable). The environment is
    exactly `env`, or the caller's when None (JupyterHub's spawner gives a
    server only the pod's); the folder `cwd`, or the caller's."""
    args = [program(), "--unshare-all", "--share-net", "--die-with-parent", "--new-session"]
    args += ["--unshare-user", "--uid", str(USER["user_id"]), "--gid", str(USER["user_id"])]
    for path in SYSTEM:
        if Path(path).is_dir():
            args += ["--ro-bind", path, path]
    for path in MERGED_USR:
        if Path(path).is_symlink():
            args += ["--symlink", os.readlink(path), path]
        elif Path(path).is_dir():
            args += ["--ro-bind", path, path]
    for path in ETC:
        if Path(path).exists():
            args += ["--ro-bind", path, path]
    args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for shown in dict.fromkeys([python_home(), *read_only]):
        args += ["--ro-bind", str(shown), str(shown)]
    for folder in dict.fromkeys([*writable, home]):
        folder.mkdir(parents=True, exist_ok=True)
        args += ["--bind", str(folder), str(folder)]
    if cwd is not None:
        args += ["--chdir", str(cwd)]
    if env is not None:
        args.append("--clearenv")
        for name, value in env.items():
            args += ["--setenv", name, value]
    return [*args, "--", *command]


def url_requirements(requirements: Iterable[str]) -> list[str]:
    """The requirements that are URLs or paths: pip runs their setup code."""
    found = []
    for spec in requirements:
        text = spec.strip()
        if " @ " in text or "://" in text or text.startswith((".", "/", "~", "-")) or text.endswith((".whl", ".zip")):
            found.append(text)
    return found


def refuse_url_requirements(requirements: Iterable[str], allowed: Iterable[str]) -> None:
    named = set(allowed)
    refused = [spec for spec in url_requirements(requirements) if spec not in named]
    if refused:
        raise PreviewError(
            f"environment.yml's pip requirement {refused[0]!r} is a URL or path, whose setup code would run here: "
            f"refused unless named, e.g. --allow-requirement '{refused[0]}'"
        )


def consent(scripts: list[Path], source: str, yes: bool, ask: bool) -> None:
    """Show the source repository's scripts and ask before they run."""
    shown = [path for path in scripts if path.exists()]
    if not shown:
        return
    print(f"This hub's image came from {source}; these of its scripts run in the preview (in a sandbox):")
    for path in shown:
        print(f"--- {path.parent.name}/{path.name} ---")
        print(path.read_text(errors="replace").rstrip())
    print("---")
    if yes:
        return
    if not ask:
        raise PreviewError(
            "the source repository's scripts were not accepted: read them above, then run again with --yes"
        )
    if input("Run them? [y/N] ").strip().lower() not in ("y", "yes"):
        raise PreviewError("the source repository's scripts were not accepted (answer y, or give --yes)")
