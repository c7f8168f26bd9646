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

from ..copier_settings import ANSWERS_FILE, template_root
from ..copier_settings import settings as copier_settings

# copier's own default exclusions that can occur in template/.
DEFAULT_EXCLUDE = ("__pycache__", "*.pyc", "*.pyo", ".DS_Store", "~*")


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

    import jinja2
    import pathspec

    answers = json.loads(answers_json)
    root = template_root()
    if root is None:
        raise FileNotFoundError("hub-template's template/ and copier.yml are not installed beside the checker")
    settings = copier_settings()
    suffix = settings.get("_templates_suffix", ".jinja")
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
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    # copier renders _subdirectory with the answers (template/ or federation/).
    source = root / env.from_string(settings.get("_subdirectory", "")).render(context)
    exclude = pathspec.GitIgnoreSpec.from_lines([*DEFAULT_EXCLUDE, *settings.get("_exclude", [])])
    rendered = []
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if not path.is_file() or exclude.match_file(rel.as_posix()):
            continue
        # copier drops the suffix, then renders each part of the path; a part
        # that renders empty drops the file.
        parts = list(rel.parts)
        if suffix and parts[-1].endswith(suffix):
            parts[-1] = parts[-1][: -len(suffix)]
        parts = [env.from_string(part).render(context) for part in parts]
        if all(parts):
            rendered.append("/".join(parts))
    skip = pathspec.GitIgnoreSpec.from_lines(settings.get("_skip_if_exists", []))
    owned = tuple(rel for rel in rendered if not skip.match_file(rel))
    return TemplateFiles(version("hub-template"), tuple(rendered), owned)
