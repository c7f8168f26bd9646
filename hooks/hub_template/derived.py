"""Values derived from the answers, rendered from the macros of
jinja/derived.jinja that the templates render too: one definition each.

Runs in copier's interpreter (the source import): standard library and jinja2.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any


@cache
def _macros() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "jinja"), undefined=jinja2.StrictUndefined
    )
    return env.get_template("derived.jinja").module


def home(user_name: str) -> str:
    """The image user's home folder (repo2docker's HOME)."""
    return str(_macros().home(user_name))


def scratch_url(cloud: dict[str, Any], scratch_bucket: str) -> str:
    """The scratch bucket's URL for the provider facts `cloud` (providers.yml)."""
    return str(_macros().scratch_url(cloud, scratch_bucket))
