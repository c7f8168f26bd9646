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


def load_trusted_yaml(path: Path) -> Any:
    """A YAML file of hub-template's own (never a hub's or a source's), with
    libyaml where pyyaml has it: the checker reads the data files and copier.yml
    at every start, and the pure-Python parser takes a third of a second."""
    import yaml

    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_data(name: str) -> dict[str, Any]:
    """versions.yml, providers.yml or rules.yml, as copier.yml reads them."""
    data: dict[str, Any] = load_trusted_yaml(data_file(name))
    return data


def user_cache() -> Path:
    """hub-template's folder of the user's cache (XDG_CACHE_HOME, else ~/.cache):
    the preview's environments, the daskhub chart, a failed preview's logs."""
    import os

    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hub-template"
