"""Which files the template renders for a hub's answers, derived from the
template itself (copier.yml and the file names under template/), so the list
never drifts from what `copier copy` makes.

The checker finds the template beside its own code: in a source checkout the
repository root, in an installed wheel ``hub_template/_template`` (see
pyproject.toml, ``force-include``).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import jinja2

from ..copier_settings import ANSWERS_FILE, template_root
from ..copier_settings import settings as copier_settings

# copier's own default exclusions that can occur in template/.
DEFAULT_EXCLUDE = ("__pycache__", "*.pyc", "*.pyo", ".DS_Store", "~*")
# The file names are compiled here, once per process; StrictUndefined makes a
# name that needs more than the answers fail (see _template_files).
_ENVIRONMENT = jinja2.Environment(undefined=jinja2.StrictUndefined)


@dataclass(frozen=True)
class TemplateFiles:
    version: str  # the checker's version, which is the template's
    rendered: tuple[str, ...]  # every file `copier copy` writes for these answers
    owned: tuple[str, ...]  # those the template keeps owning (not _skip_if_exists)


def template_files(answers: dict[str, Any]) -> TemplateFiles:
    return _template_files(json.dumps(answers, sort_keys=True, default=str))


@functools.lru_cache(maxsize=32)
def _template_files(answers_json: str) -> TemplateFiles:
    from importlib.metadata import version

    import pathspec

    answers = json.loads(answers_json)
    settings = copier_settings()
    # The paths are rendered with the answers and copier's answers_file,
    # all the names use. copier's full context also holds copier.yml's
    # computed values (cloud, versions, lists, ...), which copier renders
    # with its own Jinja environment and the destination: the checker does
    # not rebuild them (a second copy of copier.yml). A name that used one
    # would fail here (StrictUndefined), in every hub tests/test_check.py renders.
    context = {
        "kind": "hub",  # hubs made before 1.2.0 have no `kind` answer
        **answers,
        "_copier_conf": {"answers_file": ANSWERS_FILE},
    }
    # copier renders _subdirectory with the answers (template/ or federation/).
    rendered = []
    for parts in _candidates(_compiled(settings.get("_subdirectory", "")).render(context)):
        # a part that renders empty drops the file, as in copier.
        names = [_compiled(part).render(context) for part in parts]
        if all(names):
            rendered.append("/".join(names))
    skip = pathspec.GitIgnoreSpec.from_lines(settings.get("_skip_if_exists", []))
    owned = tuple(rel for rel in rendered if not skip.match_file(rel))
    return TemplateFiles(version("hub-template"), tuple(rendered), owned)


@functools.cache
def _candidates(subdirectory: str) -> tuple[tuple[str, ...], ...]:
    """The path parts of every file under the template's `subdirectory` that
    copier does not exclude, its suffix dropped: the same for every hub."""
    import pathspec

    root = template_root()
    if root is None:
        raise FileNotFoundError("hub-template's template/ and copier.yml are not installed beside the checker")
    settings = copier_settings()
    suffix = settings.get("_templates_suffix", ".jinja")
    source = root / subdirectory
    exclude = pathspec.GitIgnoreSpec.from_lines([*DEFAULT_EXCLUDE, *settings.get("_exclude", [])])
    found = []
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if not path.is_file() or exclude.match_file(rel.as_posix()):
            continue
        parts = list(rel.parts)
        if suffix and parts[-1].endswith(suffix):
            parts[-1] = parts[-1][: -len(suffix)]
        found.append(tuple(parts))
    return tuple(found)


@functools.cache
def _compiled(source: str) -> jinja2.Template:
    """A path part compiled once per process (each hub renders it with its answers)."""
    return _ENVIRONMENT.from_string(source)
