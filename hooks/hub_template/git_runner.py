"""Every git command hub-template runs, run one way: on a repository it names,
never on one git finds for itself, with configuration that runs no code.

The hubs and source repositories hub-template reads are untrusted. Four plain
files committed in a folder (HEAD, objects/..., refs/... and a config setting
`core.worktree` and `core.fsmonitor`) make git take that folder for a
repository when it searches upwards from a hub, and run the config's command.
So here:

- the repository is found by looking for its `.git` (a folder, or a
  worktree's file), which git never lets a commit hold, and named to git with
  `--git-dir` and `--work-tree`: git searches nothing;
- `safe.bareRepository=explicit` makes any other git that searches (copier's,
  in the environment of `hardened_environment`) refuse such a folder instead of
  reading its config;
- no fsmonitor, no hooks, no submodules, no `ext::` transport, whatever the
  repository's own config says (command-line config wins over it).

Runs in copier's interpreter too (migrations, the source import): standard
library only.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

# Set on every git command, as `-c` options or GIT_CONFIG_* variables.
HARDENED: tuple[tuple[str, str], ...] = (
    ("safe.bareRepository", "explicit"),  # a folder of HEAD, objects/, refs/ is no repository unless named
    ("core.fsmonitor", "false"),  # a command git would run on status, diff, add...
    ("core.hooksPath", os.devnull),  # no hook runs (checkout, commit, worktree add)
    ("submodule.recurse", "false"),
    ("protocol.ext.allow", "never"),  # `ext::sh -c ...` runs a command as a transport
)
CONFIG_OPTIONS: tuple[str, ...] = tuple(arg for key, value in HARDENED for arg in ("-c", f"{key}={value}"))

# Variables that point git at another repository, index or object store.
_LOCATING = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_COMMON_DIR",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
)


def config_entries(env: Mapping[str, str], pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """GIT_CONFIG_* variables adding `pairs` after those `env` already has."""
    start = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
    added = {"GIT_CONFIG_COUNT": str(start + len(pairs))}
    for i, (key, value) in enumerate(pairs, start):
        added[f"GIT_CONFIG_KEY_{i}"], added[f"GIT_CONFIG_VALUE_{i}"] = key, value
    return added


def hardened_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (os.environ) with HARDENED as GIT_CONFIG_* entries: for git
    commands other programs start (copier's)."""
    env = dict(os.environ if base is None else base)
    return {**env, **config_entries(env, HARDENED)}


def environment(git_dir: Path | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a git command on `git_dir` (None: no repository
    yet, a clone or an init). Variables naming another repository are
    dropped; an index git itself named for this one (a hook's
    GIT_INDEX_FILE, with GIT_DIR) is kept."""
    env = dict(os.environ)
    own = git_dir is not None and "GIT_DIR" in env and _same(Path(env["GIT_DIR"]), git_dir)
    for name in _LOCATING:
        if not (own and name in ("GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES")):
            env.pop(name, None)
    env.update(extra or {})
    return env


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def command(*args: str, git_dir: Path | None = None, work_tree: Path | None = None) -> list[str]:
    """The argv of a hardened git command."""
    located = [f"--git-dir={git_dir}"] if git_dir is not None else []
    located += [f"--work-tree={work_tree}"] if work_tree is not None else []
    return ["git", *CONFIG_OPTIONS, *located, *args]


@overload
def run(
    *args: str, cwd: Path | None = ..., input: str | None = ..., text: Literal[True], env: dict[str, str] | None = ...
) -> subprocess.CompletedProcess[str]: ...
@overload
def run(
    *args: str,
    cwd: Path | None = ...,
    input: bytes | None = ...,
    text: Literal[False] = ...,
    env: dict[str, str] | None = ...,
) -> subprocess.CompletedProcess[bytes]: ...
def run(
    *args: str,
    cwd: Path | None = None,
    input: str | bytes | None = None,
    text: bool = False,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str] | subprocess.CompletedProcess[bytes]:
    """A hardened git command on no repository (`clone`, `init`): `args`
    name everything git reads."""
    return subprocess.run(
        command(*args), cwd=cwd, input=input, capture_output=True, text=text, env=env or environment()
    )


@dataclass(frozen=True)
class Repository:
    """A repository named to git: its git directory and, unless it is bare,
    its work tree."""

    git_dir: Path
    work_tree: Path | None = None

    @property
    def top(self) -> Path:
        return self.work_tree if self.work_tree is not None else self.git_dir

    def argv(self, *args: str) -> list[str]:
        return command(*args, git_dir=self.git_dir, work_tree=self.work_tree)

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return environment(self.git_dir, extra)

    @overload
    def run(self, *args: str, input: str | None = ..., text: Literal[True]) -> subprocess.CompletedProcess[str]: ...
    @overload
    def run(
        self, *args: str, input: bytes | None = ..., text: Literal[False] = ...
    ) -> subprocess.CompletedProcess[bytes]: ...
    def run(
        self, *args: str, input: str | bytes | None = None, text: bool = False
    ) -> subprocess.CompletedProcess[str] | subprocess.CompletedProcess[bytes]:
        """The command's result, whatever its exit status."""
        return subprocess.run(
            self.argv(*args), cwd=self.top, input=input, capture_output=True, text=text, env=self.env()
        )

    def out(self, *args: str, input: str | None = None) -> str:
        """The command's output (text); CalledProcessError when it fails."""
        done = self.run(*args, input=input, text=True)
        done.check_returncode()
        return done.stdout


def bare(git_dir: Path) -> Repository:
    """A bare repository hub-template made itself (a template's mirror)."""
    return Repository(git_dir)


def repository_of(path: Path) -> Repository | None:
    """The repository whose work tree holds `path`: the nearest folder at or
    above it with a `.git`, checked by git as a repository. A folder that
    merely looks like a git directory is never one."""
    try:
        here = path.resolve()
    except OSError:
        return None
    for folder in (here, *here.parents):
        dot_git = folder / ".git"
        if os.path.lexists(dot_git):
            if dot_git.is_symlink():
                return None  # git never makes one; somebody laid it
            repo = Repository(dot_git, folder)
            return repo if repo.run("rev-parse", "--git-dir").returncode == 0 else None
    return None


def looks_like_git_dir(folder: Path) -> bool:
    """Whether git would take `folder` for a git directory: HEAD beside
    objects/ and refs/, or beside a `commondir` naming where those are."""
    try:
        names = set(os.listdir(folder))
    except OSError:
        return False
    return "HEAD" in names and ("commondir" in names or {"objects", "refs"} <= names)


def git_dir_layouts(root: Path) -> list[Path]:
    """Folders at or under `root` (links not followed, .git skipped) that
    look like git directories: each a repository git may find when it
    searches upwards, and whose config it reads, unless told
    `safe.bareRepository=explicit`."""
    found = []
    for folder, dirs, _files in os.walk(root):
        here = Path(folder)
        if looks_like_git_dir(here):
            found.append(here)
        dirs[:] = [d for d in dirs if d != ".git" and not (here / d).is_symlink()]
    return sorted(found)
