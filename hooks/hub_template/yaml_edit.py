"""Edits of a YAML file hub-template rendered that keep everything else of
it: comments, key order, quotes and layout come back byte for byte
(ruamel.yaml's round trip). The source import adds what it takes from a
source to the hub's image/binder/environment.yml and image/.dask/config.yaml
this way, so the lines the template wrote stay as written and a later
`copier update` meets them unchanged.

Why ruamel.yaml: pyyaml drops comments, and an editor of YAML text is a
parser of its own. ruamel.yaml is not one of copier's dependencies; the
README's install line adds it beside copier. Without it, `require` says how
to add it, before the import touches anything. It is imported here only, and
only when an import runs: a copy without a source needs copier alone.

ruamel.yaml keeps a comment with the node before it. The lines after a
block's last entry are kept with that entry, though they belong to what comes
next (a blank line, the comment above the next key); `append` moves them
after the new last entry, so they stay above whatever followed.

Runs in copier's interpreter: standard library, pyyaml and ruamel.yaml.
"""

from __future__ import annotations

import io
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ruamel.yaml import YAML

# The layout every YAML file the template renders has: `key:` blocks
# indented by two, lists as `  - item` under their key.
MAPPING_INDENT, SEQUENCE_INDENT, SEQUENCE_DASH_OFFSET = 2, 4, 2
WIDTH = 4096  # never fold a long line the template wrote on one

INSTALL = "install ruamel.yaml beside copier (`pipx inject copier ruamel.yaml`), then copy again"


class EditError(Exception):
    """A file that cannot be edited, or no ruamel.yaml; the message says what to do."""


@cache
def _yaml() -> YAML:
    """One round-trip YAML for every load and dump (they run one after another)."""
    try:
        from ruamel.yaml import YAML
    except ImportError:
        raise EditError(INSTALL) from None
    yaml = YAML()  # round trip, no tags beyond YAML's own
    yaml.indent(mapping=MAPPING_INDENT, sequence=SEQUENCE_INDENT, offset=SEQUENCE_DASH_OFFSET)
    yaml.width = WIDTH
    yaml.preserve_quotes = True
    # ruamel.yaml writes None as nothing after the colon; the template writes `null`.
    yaml.representer.add_representer(type(None), _null)
    return yaml


def _null(representer: Any, _: None) -> Any:
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def require() -> None:
    """Raise EditError now if ruamel.yaml is missing."""
    _yaml()


def load(text: str, origin: str) -> Any:
    from ruamel.yaml.error import YAMLError

    try:
        return _yaml().load(text)
    except YAMLError as error:
        raise EditError(f"{origin} is not valid YAML ({str(error).splitlines()[-1].strip()})") from None


def dump(data: Any) -> str:
    out = io.StringIO()
    _yaml().dump(data, out)
    return out.getvalue()


def block(value: Any) -> Any:
    """`value` (plain dicts and lists) as ruamel.yaml's block nodes."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, dict):
        return CommentedMap((key, block(item)) for key, item in value.items())
    if isinstance(value, list):
        return CommentedSeq(block(item) for item in value)
    return value


def append(container: Any, value: Any, key: Any = None, comment: str | None = None) -> None:
    """Add `value` at the end of a mapping (under `key`) or of a list, with
    `comment` above it; the lines that ended the container end it still."""
    after = _detach_trailing_lines(container)
    if key is None:
        container.append(block(value))
    else:
        container[key] = block(value)
        if comment is not None:
            container.yaml_set_comment_before_after_key(key, before=comment, indent=container.lc.col or 0)
    if after:
        _attach_trailing_lines(container, after)


def replace(container: Any, key: Any, value: str) -> None:
    """Set the scalar entry `key` (an index in a list) to `value`; a comment
    at the end of its line keeps its distance from it."""
    old = container[key]
    container[key] = value
    position = 2 if isinstance(container, dict) else 0
    token = (container.ca.items.get(key) or [None] * 4)[position]
    if token is not None and isinstance(old, str):
        token.column += len(value) - len(old)


def _last_slot(node: Any) -> tuple[Any, Any, int] | None:
    """(container, key or index, position in its comment entry) of the
    scalar that ends `node`: the comment after it holds the lines that follow."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap) and node:
        key = list(node)[-1]
        if isinstance(node[key], (CommentedMap, CommentedSeq)) and node[key]:
            return _last_slot(node[key])
        return node, key, 2
    if isinstance(node, CommentedSeq) and node:
        index = len(node) - 1
        if isinstance(node[index], (CommentedMap, CommentedSeq)) and node[index]:
            return _last_slot(node[index])
        return node, index, 0
    return None


def _detach_trailing_lines(container: Any) -> str:
    """Remove and return the whole lines after the container's last entry
    that belong to what follows it: from the first blank line or comment
    indented less than the container's entries on, when nothing indented
    as an entry comes after it."""
    slot = _last_slot(container)
    if slot is None:
        return ""
    owner, key, position = slot
    token = (owner.ca.items.get(key) or [None] * 4)[position]
    if token is None or "\n" not in token.value:
        return ""
    end_of_line, rest = token.value.split("\n", 1)
    column = container.lc.col or 0
    lines = rest.splitlines(keepends=True)
    kept = 0  # lines that are the container's own: a comment at its entries' column
    for index, line in enumerate(lines):
        if line.strip() and len(line) - len(line.lstrip()) >= column:
            kept = index + 1
    token.value = end_of_line + "\n" + "".join(lines[:kept])
    return "".join(lines[kept:])


def _attach_trailing_lines(container: Any, lines: str) -> None:
    from ruamel.yaml.error import CommentMark
    from ruamel.yaml.tokens import CommentToken

    slot = _last_slot(container)
    assert slot is not None  # the container holds the entry just added
    owner, key, position = slot
    entry = owner.ca.items.setdefault(key, [None] * 4)
    if entry[position] is None:
        entry[position] = CommentToken("\n" + lines, CommentMark(0), None)
    else:
        entry[position].value += lines
