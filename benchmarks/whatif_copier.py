"""What-if: `hub-template ARGS` (or `copier ARGS`) with the changes copier
itself could make (four for an update, a fifth for a one-off copy), to measure
them before proposing them upstream (docs/performance.md). Never imported by the product; the benchmark runs it
as a separate command.

    python benchmarks/whatif_copier.py update deployments/
    python benchmarks/whatif_copier.py copier copy --trust --defaults URL DST

1. Compile each template string once per process: copier calls
   `from_string` for every file name, file, answer default and validator of
   every render (three renders per update), and Jinja compiles each anew.
   Here jinja2's `Environment.compile` keeps what it compiled, keyed by the
   source, the template's name and the environment's syntax (every copier
   Worker of one template builds the same environment), not by the file's
   path: each clone of the template is another folder (Jinja's own
   BytecodeCache keys on the path, so copier would override its key).
2. Read `core.fileMode` once per destination instead of once per file.
3. Read YAML with libyaml (PyYAML's `CSafeLoader`) when PyYAML has it: copier
   parses `copier.yml` four times per update, and every `type: yaml` answer
   and `from_yaml` filter, with the pure-Python `SafeLoader` (copier.yml:
   50 ms against 4 ms, the same data).
4. Check a template out once per run: an update makes five Templates (the
   old render, the update's own, the new render, and the subproject's), each
   cloning the template from copier's mirror (`git remote update`,
   `worktree add`, two `submodule` runs: about 0.18 s each) and asking git
   and dunamai its commit and version; two of them are of the old commit and
   three of the new. Here one Template per (url, ref) serves every Worker of
   the process, every hub included, and is removed at the end.

5. (compile-cache) Keep what 1. compiled on disk, in copier's cache folder,
   as Python keeps bytecode in __pycache__: a one-off `copier copy` compiles
   nothing its machine compiled before. It only matters to a process that
   renders once, so the benchmark measures it on `copier copy`.

HUB_TEMPLATE_WHAT_IF names the changes to make (`compile,file-mode,libyaml,
template-once`, the default: the four an update is measured with), to
measure each alone.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHANGES = ("compile", "file-mode", "libyaml", "template-once")
# What a single `copier copy` is measured with (template-once: a copy makes one Template anyway).
COPY_CHANGES = ("compile-cache", "file-mode", "libyaml")


def patch(changes: set[str]) -> None:
    if unknown := changes - {*CHANGES, *COPY_CHANGES}:
        names = ",".join(dict.fromkeys((*CHANGES, *COPY_CHANGES)))
        raise SystemExit(f"HUB_TEMPLATE_WHAT_IF: no change named {', '.join(sorted(unknown))}; use {names}")
    if changes & {"compile", "compile-cache"}:
        compile_once(on_disk="compile-cache" in changes)
    if "file-mode" in changes:
        file_mode_once()
    if "libyaml" in changes:
        libyaml()
    if "template-once" in changes:
        template_once()


def compile_once(on_disk: bool) -> None:
    import hashlib
    import marshal

    import jinja2
    from copier._vcs import _get_cache_dir

    compiled: dict[tuple, object] = {}
    jinja_compile = jinja2.Environment.compile
    folder = _get_cache_dir() / "what-if-compiled"
    if on_disk:
        folder.mkdir(parents=True, exist_ok=True)

    def compile_or_load(self, key, source, name, filename, raw, defer_init):
        if not on_disk or raw:  # raw: Python source, not code
            return jinja_compile(self, source, name, filename, raw, defer_init)
        stamp = repr((key, jinja2.__version__, sys.version)).encode()
        path = folder / hashlib.sha256(stamp).hexdigest()
        try:
            return marshal.loads(path.read_bytes())
        except FileNotFoundError:
            code = jinja_compile(self, source, name, filename, raw, defer_init)
            path.write_bytes(marshal.dumps(code))
            return code

    def compile(self, source, name=None, filename=None, raw=False, defer_init=False):
        key = (
            source,
            name,
            raw,
            defer_init,
            type(self),
            tuple(sorted(self.extensions)),
            self.block_start_string,
            self.variable_start_string,
            self.comment_start_string,
            self.line_statement_prefix,
            self.trim_blocks,
            self.lstrip_blocks,
            self.newline_sequence,
            self.keep_trailing_newline,
            self.optimized,
            repr(self.undefined),
        )
        if key not in compiled:
            compiled[key] = compile_or_load(self, key, source, name, filename, raw, defer_init)
        return compiled[key]

    jinja2.Environment.compile = compile


def file_mode_once() -> None:
    from copier import _main

    file_mode: dict[Path, str] = {}
    sync_once = _main.Worker._sync_git_index_executable_bit

    def sync(self, dst_relpath, src_mode):
        root = Path(self.subproject.local_abspath)
        if root not in file_mode:
            done = subprocess.run(
                ["git", "-C", str(root), "config", "--type=bool", "--get", "core.fileMode"],
                capture_output=True,
                text=True,
            )
            file_mode[root] = done.stdout.strip() if done.returncode == 0 else ""
        if file_mode[root] == "false":  # only then does copier touch the index
            sync_once(self, dst_relpath, src_mode)

    _main.Worker._sync_git_index_executable_bit = sync


def libyaml() -> None:
    # copier's loaders (copier.yml's, with `!include`, `safe_load` of answers,
    # the from_yaml filter) all name yaml.SafeLoader when they run.
    import yaml

    yaml.SafeLoader = yaml.CSafeLoader  # type: ignore[misc]


def template_once() -> None:
    from copier import _main, _subproject, _template

    made: dict[tuple, _template.Template] = {}
    cleanup = _template.Template._cleanup

    def shared(make):
        def template(self):
            fresh = make(self)
            if fresh is None:
                return None
            return made.setdefault((fresh.url, fresh.ref, fresh.use_prereleases), fresh)

        return functools.cached_property(template)

    for owner in (_main.Worker, _subproject.Subproject):
        prop = shared(owner.template.func)
        prop.__set_name__(owner, "template")
        owner.template = prop
    # Each Worker asks its Template to clean up as it ends: the shared ones
    # stay until the run is over (the clones are in the run's temporary
    # folder, removed by main below).
    _template.Template._cleanup = lambda self: None if self in made.values() else cleanup(self)


def main(argv: list[str]) -> int:
    patch({c for c in os.environ.get("HUB_TEMPLATE_WHAT_IF", ",".join(CHANGES)).split(",") if c})
    with tempfile.TemporaryDirectory(prefix="hub-template-what-if.") as scratch:
        tempfile.tempdir = scratch  # every clone, the workers' included, is made in here
        try:
            return copier(argv[1:]) if argv[:1] == ["copier"] else hub_template(argv)
        finally:
            tempfile.tempdir = None


def hub_template(argv: list[str]) -> int:
    from hub_template.cli import main

    return main(argv)


def copier(argv: list[str]) -> int:
    from copier._cli import CopierApp

    _, code = CopierApp.run(["copier", *argv], exit=False)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
