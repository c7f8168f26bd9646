"""What-if: `hub-template ARGS` with two changes copier itself could make,
to measure them before proposing them upstream (docs/performance.md). Never
imported by the product; the benchmark runs it as a separate command.

    python benchmarks/whatif_copier.py update deployments/

1. Compile each template string once per process: copier calls
   `from_string` for every file name, file, answer default and validator of
   every render (three renders per update), and Jinja compiles each anew.
   Here jinja2's `Environment.compile` keeps what it compiled, keyed by the
   source and the environment's syntax (every copier Worker of one template
   builds the same environment).
2. Read `core.fileMode` once per destination instead of once per file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def patch() -> None:
    import jinja2
    from copier import _main

    compiled: dict[tuple, object] = {}
    compile_once = jinja2.Environment.compile

    def compile(self, source, name=None, filename=None, raw=False, defer_init=False):
        key = (
            source,
            name,
            filename,
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
            compiled[key] = compile_once(self, source, name, filename, raw, defer_init)
        return compiled[key]

    jinja2.Environment.compile = compile

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


if __name__ == "__main__":
    patch()
    from hub_template.cli import main

    sys.exit(main(sys.argv[1:]))
