"""The one entry point copier runs (see `_tasks` and `_migrations` in copier.yml).

copier starts it with its own interpreter (`_copier_python`), which has only
the standard library, pyyaml, jinja2, packaging and pydantic: the modules it
dispatches to must need nothing more.

    python hooks/run.py migrate        # before/after an update; reads $STAGE, $VERSION_*
    python hooks/run.py import-source  # after a copy: image/ from source_repo, environment_file
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

COMMANDS = {
    "migrate": "hub_template.migrations",
    "import-source": "hub_template.source_import",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: run.py {{{','.join(COMMANDS)}}} [args...]", file=sys.stderr)
        return 2
    module = __import__(COMMANDS[argv[0]], fromlist=["main"])
    code: int = module.main(argv[1:])
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
