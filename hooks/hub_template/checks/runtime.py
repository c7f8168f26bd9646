"""The dask configuration the image reads at run time, found by reading the
image's own scripts, never by running them: postBuild and start come from a
hub (and often from a notebook repository nobody reviewed), so the checker
treats them as text.

In the image, dask reads ``$DASK_ROOT_CONFIG`` (default /etc/dask, empty),
``{sys.prefix}/etc/dask`` (sys.prefix is ``$NB_PYTHON_PREFIX``), ``~/.config/dask``
(hidden by the users' home volume) and ``$DASK_CONFIG``. postBuild is read as
a list of shell commands over a model of the image's file system, in which
/srv/repo holds the hub's image/ folder: variable assignments and exports,
``cd``, ``mkdir``, ``cp``, ``install``, ``ln`` and ``mv`` move hub files
about; anything else (a command substitution, a loop, a program) is left
alone. start is read the same way for the ``DASK_*`` variables it exports.
Every path of the model maps back to a file of the hub or to nothing: a
``DASK_CONFIG=/home/me`` makes the checker read nothing of the operator's.
"""

from __future__ import annotations

import itertools
import posixpath
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .. import derived, load_data
from ..environment import logical_lines
from ..helm_values import ValuesFile
from .hub import Hub
from .image import CONDA_BUILDPACK, plan

_BUILD = load_data("image_build.yml")  # as CI builds the image
REPO = _BUILD["target_repo_dir"]
PREFIX = "/srv/conda/envs/notebook"
HOME = derived.home(_BUILD["user_name"])
# What repo2docker sets while it builds and starts the image.
IMAGE_ENV = {
    "REPO_DIR": REPO, "NB_PYTHON_PREFIX": PREFIX, "KERNEL_PYTHON_PREFIX": PREFIX, "CONDA_DIR": "/srv/conda",
    "HOME": HOME, "USER": _BUILD["user_name"], "NB_USER": _BUILD["user_name"], "NB_UID": str(_BUILD["user_id"]),
    "PWD": REPO,
}  # fmt: skip
DASK_SUFFIXES = (".yaml", ".yml", ".json")
_OPERATORS = {";", "&&", "||", "|", "&", "(", ")", "{", "}"}
_KEYWORDS = {"if", "then", "else", "elif", "do", "while", "until", "!", "time"}
_VARIABLE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
_ASSIGNMENT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$", re.S)


@dataclass(frozen=True)
class Export:
    """A variable a script exports: where, and its value (None when the
    value is not known without running the script)."""

    name: str
    value: str | None
    file: str  # hub-relative, e.g. image/binder/start
    line: int


@dataclass
class RuntimeConfig:
    files: list[ValuesFile] = field(default_factory=list)  # what dask reads, labelled by their source
    config: dict[str, Any] = field(default_factory=dict)  # those files merged in dask's order
    hidden: list[str] = field(default_factory=list)  # dask files postBuild put under the home volume
    exports: list[Export] = field(default_factory=list)  # DASK_* variables start and postBuild export
    error: str | None = None  # why the scripts could not be read


def runtime_config(hub: Hub) -> RuntimeConfig:
    return hub.memo("runtime-config", _runtime_config)


def _runtime_config(hub: Hub) -> RuntimeConfig:
    import dask.config

    base = plan(hub)
    if base.error or base.buildpack != CONDA_BUILDPACK:
        # A Dockerfile decides for itself where files go: nothing to read here.
        return RuntimeConfig(error="repo2docker does not build image/ with its conda buildpack (IM001)")
    image = ImageModel(hub)
    result = RuntimeConfig()
    for script in base.post_build:  # repo2docker runs them from ${REPO_DIR}
        result.exports += image.run(f"image/{script}", dict(IMAGE_ENV))
    started: dict[str, str] = dict(IMAGE_ENV)
    if base.start:
        result.exports += image.run(f"image/{base.start}", started, writes=False)
    dask_dirs = [started.get("DASK_ROOT_CONFIG") or "/etc/dask", f"{PREFIX}/etc/dask"]
    if started.get("DASK_CONFIG"):
        dask_dirs.append(started["DASK_CONFIG"])
    for folder in dask_dirs:
        for path in image.under(folder):
            rel = image.files[path]
            values = hub.values_file(rel) if rel.endswith(DASK_SUFFIXES) else None
            if values is not None and all(f.label != rel for f in result.files):
                result.files.append(values)
    result.hidden = [
        posixpath.relpath(p, f"{HOME}/.config/dask") for p in image.under(f"{HOME}/.config/dask", recursive=True)
    ]
    result.config = dask.config.merge(*(f.data for f in result.files)) if result.files else {}
    return result


class ImageModel:
    """The image's file system as far as the scripts move hub files about:
    image path -> the hub file (hub-relative) it holds."""

    def __init__(self, hub: Hub):
        self.hub = hub
        self.files = {f"{REPO}/{rel[len('image/') :]}": rel for rel in hub.files if rel.startswith("image/")}
        self.dirs = {posixpath.dirname(p) for p in self.files}

    def under(self, folder: str, recursive: bool = False) -> list[str]:
        """The files in `folder` (dask reads a folder's own files, not its
        subfolders'), or the file `folder` names."""
        folder = posixpath.normpath(folder)
        if folder in self.files:
            return [folder]
        prefix = folder.rstrip("/") + "/"
        return sorted(p for p in self.files if p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :]))

    def is_dir(self, path: str) -> bool:
        return path in self.dirs or any(p.startswith(path.rstrip("/") + "/") for p in self.files)

    def run(self, rel: str, env: dict[str, str], writes: bool = True) -> list[Export]:
        """Read the script `rel` command by command; returns its DASK_* exports.
        `env` ends holding the variables it leaves set."""
        text = self.hub.text(rel) or ""
        exports: list[Export] = []
        stack: list[dict[str, str]] = []
        for line, words in _commands(text):
            if words in (["("], ["{"]):
                stack.append(dict(env))
                continue
            if words in ([")"], ["}"]):
                if stack:
                    restored = stack.pop()
                    if words == [")"]:  # a subshell's variables and cd end with it
                        env.clear()
                        env.update(restored)
                continue
            exports += self._command(words, env, rel, line, writes)
        return exports

    def _command(self, words: list[str], env: dict[str, Any], rel: str, line: int, writes: bool) -> list[Export]:
        while words and words[0] in _KEYWORDS:
            words = words[1:]
        exporting = bool(words) and words[0] in ("export", "declare", "typeset", "readonly", "local")
        assignments = words[1:] if exporting else list(itertools.takewhile(_ASSIGNMENT.match, words))
        if exporting or len(assignments) == len(words):  # `export A=b`, `A=b`: the script's variables
            exports = []
            for word in assignments:
                match = _ASSIGNMENT.match(word)
                if match is None:
                    continue  # `export A` or an option
                name, value = match["name"], _expand(match["value"], env)
                if value is None:
                    env.pop(name, None)
                else:
                    env[name] = value
                if name.startswith("DASK_"):
                    exports.append(Export(name, value, rel, line))
            return exports
        words = words[len(assignments) :]  # `A=b command`: the assignments are the command's own
        exports = []
        expanded = [_expand(word, env) for word in words]
        known = [word for word in expanded if word is not None]
        if len(known) < len(expanded):
            return exports  # a value only running the script would know
        command, *args = known
        cwd = env.get("PWD", REPO)

        def at(p: str) -> str:
            return posixpath.normpath(posixpath.join(cwd, p))

        if command == "cd" and args:
            env["PWD"] = at(args[-1])
        elif not writes:
            pass
        elif command == "mkdir":
            self.dirs.update(at(a) for a in args if not a.startswith("-"))
        elif command in ("cp", "ln", "mv", "install"):
            self._copy(command, args, at)
        return exports

    def _copy(self, command: str, args: list[str], at: Callable[[str], str]) -> None:
        options, paths, target_dir = [], [], None
        takes_value = {"install": {"-m", "--mode", "-o", "-g", "--owner", "--group"}}.get(command, set())
        words = iter(args)
        for word in words:
            if word in ("-t", "--target-directory"):
                target_dir = next(words, None)
            elif word.startswith("--target-directory="):
                target_dir = word.split("=", 1)[1]
            elif word in takes_value:
                next(words, None)
            elif word.startswith("-") and word != "-":
                options.append(word)
            else:
                paths.append(at(word))
        if target_dir is not None:
            sources, destination, into = paths, at(target_dir), True
        elif len(paths) >= 2:
            sources, destination = paths[:-1], paths[-1]
            into = len(sources) > 1 or self.is_dir(destination) or args[-1].endswith("/")
        else:
            return
        if command == "install" and "-d" in options:
            self.dirs.update(paths)
            return
        moved = {}
        for source in sources:
            base = posixpath.join(destination, posixpath.basename(source)) if into else destination
            if source in self.files:
                moved[base] = self.files[source]
            else:  # a folder (cp -r, ln -s): everything under it
                for path in self.under(source, recursive=True):
                    moved[base + path[len(source) :]] = self.files[path]
            if command == "mv":
                for path in [source, *self.under(source, recursive=True)]:
                    self.files.pop(path, None)
        self.files.update(moved)
        self.dirs.update(posixpath.dirname(p) for p in moved)


def _expand(word: str, env: dict[str, str]) -> str | None:
    """A word with its $VAR and ${VAR:-default} replaced; None when it holds
    something only running the script would know ($(...), `...`, globs, an
    unset variable)."""
    if "$(" in word or "`" in word or re.search(r"[*?\[]", word):
        return None
    unknown = False

    def value(match: re.Match[str]) -> str:
        nonlocal unknown
        name = match["braced"] or match["bare"]
        if name in env:
            return env[name]
        default: str | None = match["default"]
        if default is not None:
            return default
        unknown = True
        return ""

    expanded = _VARIABLE.sub(value, word)
    return None if unknown or "$" in expanded else expanded


def _commands(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line, words) for each simple command of a shell script; `(` and `)`
    come as commands of their own. Quotes are removed as the shell does."""
    for number, line in logical_lines(text):
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            tokens = list(lexer)
        except ValueError:  # an unclosed quote: bash -n (IM007) reports it
            continue
        words: list[str] = []
        for token in tokens:
            if token in _OPERATORS or set(token) <= set(";&|"):
                if words:
                    yield number, words
                words = []
                if token in ("(", ")", "{", "}"):
                    yield number, [token]
            else:
                words.append(token)
        if words:
            yield number, words
