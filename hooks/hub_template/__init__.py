"""hub-template's Python: what copier runs (migrations, the source import) and
the tools for operators (`hub-template check`, `hub-template update`).

Modules copier runs use only copier's own dependencies; see hooks/run.py.
"""

from pathlib import Path
from typing import Any

# Nothing heavy is imported here: every `hooks/run.py migrate` imports this
# package, twice per update, in a fresh interpreter.


def data_file(name: str) -> Path:
    """A file of hooks/hub_template/data/, shared with copier.yml."""
    return Path(__file__).resolve().parent / "data" / name


def load_data(name: str) -> dict[str, Any]:
    """versions.yml, providers.yml or rules.yml, as copier.yml reads them."""
    import yaml

    data: dict[str, Any] = yaml.safe_load(data_file(name).read_text())
    return data
