"""Read an untrusted git repository safely: one commit of it, as a list of
files with their sizes, whose contents are streamed out of git on demand.

- The URL is checked here again (copier.yml's validator is only a first line):
  https, ssh (ssh://, git@host:path), file:// and local paths; never an option
  (`--upload-pack=...`), a `transport::` address (`ext::sh -c ...`) or another
  scheme. git's own protocol allow-list says the same, for the clone and for
  any redirect, and `--` always comes before the URL.
- Only one commit is fetched, shallow where the server allows, with a timeout
  and a cap on what is downloaded.
- Nothing is checked out: no hooks, filters (git-lfs) or submodules run, no
  symlink is ever followed on disk. Files are read from git's object store,
  after every name, size and link target of the commit has been checked.

Runs in copier's interpreter: standard library, pyyaml (data/rules.yml) and the
git executable.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from hub_template import rules, url_credentials
from hub_template.git_names import is_dot_git

MB = 1024 * 1024
FILE_CAP = 50 * MB  # a file, and
TOTAL_CAP = 200 * MB  # all files of the commit
FILE_COUNT_CAP = 20_000  # files and links of the commit
TIMEOUT = 300  # seconds for the whole download

LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_OUTSIDE = object()  # what a path resolves to when it leaves the repository


class SourceError(Exception):
    """The repository cannot be imported; the message says why and what to do."""


@dataclass(frozen=True)
class Source:
    url: str  # what git is given
    protocol: str  # the one git protocol allowed: https, ssh or file
    shown: str  # the answer as the user wrote it


def parse_source(text: str, origin_dir: Path) -> Source:
    """Check `source_repo` and say how git must reach it. A relative local path
    is relative to `origin_dir`, where the user ran copier. Messages show the
    answer without the credentials a URL may carry."""
    allowed = "give an https://, ssh://, git@host:path or file:// URL, or a local path"
    shown = url_credentials.strip(text)
    if not text or _CONTROL.search(text) or re.search(r"\s", text):
        raise SourceError(f"source_repo {shown!r} is not allowed: {allowed}, without spaces.")
    if text.startswith("-"):
        raise SourceError(f"source_repo '{shown}' looks like a git option, which is never allowed: {allowed}.")
    if rules.matches("git_transport", text):
        raise SourceError(f"source_repo '{shown}' names a git transport ('::'), which is never allowed: {allowed}.")
    scheme, sep, _ = text.partition("://")
    if sep and rules.matches("url_scheme", scheme):
        return _parse_url(text, scheme, allowed, origin_dir, shown)
    scp = re.match(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^/:]+):(?P<path>.*)$", text)
    if scp and not re.match(r"^[A-Za-z]:[\\/]", text):
        if scp["host"].startswith("-") or (scp["user"] or "").startswith("-"):
            raise SourceError(f"source_repo '{shown}': a host or user name never starts with '-'.")
        if not scp["path"]:
            raise SourceError(f"source_repo '{shown}' names no repository after the ':'.")
        return Source(text, "ssh", shown)
    return _local(Path(os.path.expanduser(text)), shown, origin_dir)


def _parse_url(text: str, scheme: str, allowed: str, origin_dir: Path, shown: str) -> Source:
    try:
        parts = urlsplit(text)
        host, user = parts.hostname or "", parts.username or ""
    except ValueError:  # `ssh://[-oProxyCommand=x]/x`: not even a URL
        raise SourceError(f"source_repo '{shown}' is not a valid URL: {allowed}.") from None
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise SourceError(
                f"source_repo '{shown}': a file:// URL names a path on this machine, like file:///home/me/notebooks."
            )
        return _local(Path(parts.path), shown, origin_dir)
    if not rules.matches("source_protocol", scheme):
        lower = scheme.lower()  # git itself reads HTTPS:// as a helper program's name
        hint = (
            " (use https://)"
            if lower in ("http", "git")
            else f" (write {lower}://)"
            if lower != scheme and rules.matches("source_protocol", lower)
            else ""
        )
        raise SourceError(f"source_repo '{shown}' uses {scheme}://, which is not allowed{hint}: {allowed}.")
    if not host or host.startswith("-") or user.startswith("-") or not re.fullmatch(r"[A-Za-z0-9._:-]+", host):
        raise SourceError(f"source_repo '{shown}' has no valid host name: {allowed}.")
    return Source(text, "https" if scheme == "https" else "ssh", shown)


def _local(path: Path, text: str, origin_dir: Path) -> Source:
    path = path if path.is_absolute() else origin_dir / path
    if not path.is_dir():
        raise SourceError(
            f"source_repo '{text}': there is no directory {path} (a relative path is relative to where you ran copier)."
        )
    return Source(str(path.resolve()), "file", text)


# --- running git -------------------------------------------------------------


def _git_env(protocol: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX", "GIT_OBJECT", "GIT_NAMESPACE"))
    }
    env.update(
        GIT_TERMINAL_PROMPT="0",  # fail instead of asking for a password
        GIT_ALLOW_PROTOCOL=protocol,  # overrides protocol.allow, so say it here too
    )
    return env


class _Git:
    def __init__(self, repo: Path, source: Source, bucket: str):
        self.repo, self.source, self.bucket = repo, source, bucket
        self.env = _git_env(source.protocol)
        self.config = [
            "-c", "protocol.allow=never",
            "-c", f"protocol.{source.protocol}.allow=always",
            "-c", "core.hooksPath=/dev/null",
            "-c", "submodule.recurse=false",
            "-c", "fetch.recurseSubmodules=false",
        ]  # fmt: skip

    def run(self, *args: str, deadline: float | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run git in the repository; past `deadline`, or once the download
        outgrows TOTAL_CAP, kill it and its helpers (ssh, git-remote-https)."""
        process = subprocess.Popen(
            ["git", *self.config, *args],
            cwd=self.repo,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        while True:
            try:
                out, err = process.communicate(timeout=0.5)
                return subprocess.CompletedProcess(args, process.returncode, out, err)
            except subprocess.TimeoutExpired:
                if deadline is not None and time.monotonic() > deadline:
                    self._kill(process)
                    raise SourceError(
                        f"Fetching {self.source.shown} took more than {TIMEOUT} s; "
                        "check the address and your network, or import a smaller repository."
                    ) from None
                if _tree_size(self.repo / ".git" / "objects") > TOTAL_CAP:
                    self._kill(process)
                    raise SourceError(
                        f"{self.source.shown} is larger than {TOTAL_CAP // MB} MB. "
                        + LARGE_DATA.format(bucket=self.bucket)
                    ) from None

    @staticmethod
    def _kill(process: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


LARGE_DATA = (
    "Large data belongs in object storage (the hub's scratch bucket, {bucket}), "
    "not in the image: remove it from the repository, or point source_ref at a "
    "branch without it, and read it from the bucket in your notebooks."
)


def _tree_size(path: Path) -> int:
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _last_error(result: subprocess.CompletedProcess[bytes]) -> str:
    text = url_credentials.strip(result.stderr.decode(errors="replace"))  # git may name the URL
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return (fatal or lines or ["git gave no reason"])[-1]


# --- one commit of the repository ----------------------------------------------


@dataclass(frozen=True)
class Entry:
    path: str
    mode: str  # 100644, 100755, 120000 (symlink), 160000 (submodule)
    oid: str
    size: int

    @property
    def executable(self) -> bool:
        return self.mode == "100755"


def _is_sha(ref: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-f]{7,64}", ref))


class SourceTree:
    """The files of one commit of a fetched repository."""

    def __init__(self, repo: Path, source: Source, commit: str, bucket: str):
        self.repo, self.source, self.commit = repo, source, commit
        self._git = _Git(repo, source, bucket)
        self.files: dict[str, Entry] = {}
        self.links: dict[str, str] = {}  # symlinks to a file of the repository: path -> that file
        self._targets: dict[str, str] = {}  # every symlink: path -> its target as written
        self.skipped: list[str] = []  # what was left out, and why
        self._read_tree(bucket)

    def _read_tree(self, bucket: str) -> None:
        result = self._git.run("ls-tree", "-r", "-l", "-z", "--full-tree", self.commit)
        if result.returncode:
            raise SourceError(f"Could not list the files of {self.source.shown}: {_last_error(result)}")
        total, links = 0, {}
        records = [r for r in result.stdout.split(b"\0") if r]
        if len(records) > FILE_COUNT_CAP:
            raise SourceError(
                f"{self.source.shown} has {len(records)} files; the image takes at most {FILE_COUNT_CAP} "
                "from it. " + LARGE_DATA.format(bucket=bucket)
            )
        for record in records:
            if not record:
                continue
            meta, _, raw_path = record.partition(b"\t")
            mode, kind, oid, size = meta.decode().split()
            path = _checked_path(raw_path, self.source)
            if kind == "commit":
                self.skipped.append(
                    f"{path}/: a git submodule, not imported (clone it into image/ by hand if you need it)"
                )
                continue
            entry = Entry(path, mode, oid, int(size))
            if mode == "120000":
                links[path] = entry
                continue
            if entry.size > FILE_CAP:
                raise SourceError(
                    f"{path} in {self.source.shown} is {entry.size / MB:.0f} MB; files in the image may "
                    f"be at most {FILE_CAP // MB} MB. " + LARGE_DATA.format(bucket=bucket)
                )
            total += entry.size
            self.files[path] = entry
        if total > TOTAL_CAP:
            raise SourceError(
                f"The files of {self.source.shown} add up to {total / MB:.0f} MB; the image takes at most "
                f"{TOTAL_CAP // MB} MB from it. " + LARGE_DATA.format(bucket=bucket)
            )
        self._targets = {}
        for path, entry in links.items():
            target = self._blob(entry.oid).decode(errors="replace")
            if _CONTROL.search(target):
                self.skipped.append(f"{path}: a symlink with control characters in its target; not copied")
            else:
                self._targets[path] = target
        for path, target in self._targets.items():
            resolved = self._walk(path)
            if resolved is _OUTSIDE:
                self.skipped.append(f"{path}: a symlink to {target}, outside the repository; not followed, not copied")
            elif resolved in self.files:
                self.links[path] = resolved
            elif isinstance(resolved, str) and self.is_dir(resolved):
                self.skipped.append(
                    f"{path}: a symlink to the folder {target}; not copied (the image holds only files)"
                )
            else:
                self.skipped.append(f"{path}: a symlink to {target}, which names no file; not copied")

    def _walk(self, path: str) -> str | object | None:
        """The file or folder `path` names once every symlink on the way is
        followed as the kernel does (a `..` after a link leaves the link's
        target, not the link's folder): a repository path, _OUTSIDE when it
        leaves the repository, None when it names nothing or loops."""
        done: list[str] = []
        pending = path.split("/")
        hops = 0
        while pending:
            part = pending.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if not done:
                    return _OUTSIDE
                done.pop()
                continue
            here = "/".join([*done, part])
            if here in self._targets:
                hops += 1
                target = self._targets[here]
                if hops > 40:
                    return None
                if target.startswith("/"):
                    return _OUTSIDE
                pending = target.split("/") + pending
                continue
            if here in self.files and pending and any(p not in ("", ".") for p in pending):
                return None  # a file is no folder
            done.append(part)
        return "/".join(done)

    # reading

    def is_dir(self, path: str) -> bool:
        prefix = path.rstrip("/") + "/"
        return any(p.startswith(prefix) for p in (*self.files, *self._targets))

    def resolve(self, path: str) -> str | None:
        """The file `path` names, following symlinks inside the repository."""
        resolved = self._walk(path)
        return resolved if isinstance(resolved, str) and resolved in self.files else None

    def read(self, path: str) -> bytes | None:
        """The content of a (small) file, or None if the commit has no such file."""
        resolved = self.resolve(path)
        return None if resolved is None else self._blob(self.files[resolved].oid)

    def _blob(self, oid: str) -> bytes:
        result = self._git.run("cat-file", "blob", oid)
        if result.returncode:
            raise SourceError(f"Could not read {oid} of {self.source.shown}: {_last_error(result)}")
        blob: bytes = result.stdout
        return blob

    def export(self, wanted: list[tuple[str, Path]]) -> list[str]:
        """Write files (source path, destination) from git's object store, one
        `cat-file --batch` stream; returns the LFS pointers left out. Each
        destination is created anew: an existing one (a link above all) is
        never opened."""
        if not wanted:
            return []
        requests = self.repo / "export-requests"
        requests.write_text("".join(self.files[p].oid + "\n" for p, _ in wanted))
        left_out = []
        with requests.open("rb") as stdin:
            process = subprocess.Popen(
                ["git", *self._git.config, "cat-file", "--batch"],
                cwd=self.repo, env=self._git.env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            assert process.stdout is not None  # stdout=PIPE
            for path, target in wanted:
                header = process.stdout.readline().split()
                if len(header) != 3 or header[1] != b"blob":
                    process.kill()
                    raise SourceError(f"Could not read {path} from {self.source.shown}.")
                size = int(header[2])
                head = process.stdout.read(min(size, len(LFS_POINTER)))
                if head == LFS_POINTER:
                    process.stdout.read(size - len(head) + 1)
                    left_out.append(path)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                mode = 0o755 if self.files[path].executable else 0o644
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                with os.fdopen(os.open(target, flags, mode), "wb") as out:
                    if self.files[path].executable:
                        os.fchmod(out.fileno(), mode)  # as the umask allows for any other file
                    out.write(head)
                    remaining = size - len(head)
                    while remaining:
                        chunk = process.stdout.read(min(remaining, MB))
                        out.write(chunk)
                        remaining -= len(chunk)
                process.stdout.read(1)  # the newline after each object
            process.communicate()
        return left_out


def _checked_path(raw: bytes, source: Source) -> str:
    try:
        path = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SourceError(f"{source.shown} has a file name that is not UTF-8 ({raw!r}); rename it.") from None
    parts = path.split("/")
    if (
        _CONTROL.search(path)
        or path.startswith("/")
        or any(part in ("", ".", "..") or len(part.encode()) > 255 for part in parts)
    ):
        raise SourceError(f"{source.shown} has a file name hub-template refuses to write: {path!r}.")
    if any(is_dot_git(part) for part in parts):
        raise SourceError(
            f"{source.shown} has {path!r}, a name git, Windows or macOS reads as .git (git's own folder); "
            "rename it in the source."
        )
    return path


def fetch(source: Source, ref: str, workdir: Path, bucket: str) -> SourceTree:
    """Fetch `ref` (a branch, tag or commit; the default branch if empty) of
    `source` into `workdir` (a new, empty folder) and list its files. Large
    data is pointed to `bucket`."""
    if ref and not rules.matches("git_ref", ref):
        raise SourceError(f"source_ref '{ref}' is not a branch, tag or commit name: letters, digits and _ . / -.")
    workdir.mkdir(parents=True)
    init = subprocess.run(
        ["git", "init", "-q", "--template=", str(workdir)], env=_git_env(source.protocol), capture_output=True
    )
    if init.returncode:
        raise SourceError(f"git could not create a repository in {workdir}: {_last_error(init)}")
    git = _Git(workdir, source, bucket)
    deadline = time.monotonic() + TIMEOUT
    fetch = ["fetch", "--quiet", "--no-tags", "--no-recurse-submodules"]
    shallow = git.run(*fetch, "--depth", "1", "--", source.url, ref or "HEAD", deadline=deadline)
    if shallow.returncode == 0:
        commit = git.run("rev-parse", "--verify", "--quiet", "FETCH_HEAD^{commit}")
    elif _is_sha(ref):
        # A commit: a server that refuses to send one by name, or an
        # abbreviated name, needs the branches and tags; git finds it there.
        everything = git.run(
            *fetch, "--", source.url, "+refs/heads/*:refs/source/heads/*", "+refs/tags/*:refs/source/tags/*",
            deadline=deadline,
        )  # fmt: skip
        if everything.returncode:
            raise SourceError(f"Could not fetch {source.shown}: {_last_error(everything)}")
        commit = git.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        if commit.returncode:
            raise SourceError(f"{source.shown} has no commit '{ref}' (source_ref) on any of its branches or tags.")
    elif ref and "couldn't find remote ref" in _last_error(shallow):
        raise SourceError(f"{source.shown} has no branch or tag '{ref}' (source_ref); check its name.")
    else:
        raise SourceError(f"Could not fetch {source.shown}: {_last_error(shallow)}")
    if commit.returncode:
        raise SourceError(f"{source.shown} at '{ref or 'HEAD'}' is not a commit.")
    return SourceTree(workdir, source, commit.stdout.decode().strip(), bucket)
