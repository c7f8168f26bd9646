"""YAML from untrusted hands, parsed within bounds.

A few lines of anchors and aliases (`a: &a [x, x]`, `b: &b [*a, *a]`, ...)
describe a document of billions of nodes: pyyaml builds it sharing the
repeated parts, but anything that walks it (a merge, a comparison, a dump, a
scan for secrets) then runs for minutes. So:

- `load_untrusted` (what a source repository or an environment file holds)
  refuses aliases outright: no configuration file needs them;
- `load_bounded` (a hub's own files, where an operator may use an anchor)
  refuses a document whose aliases expand past EXPANDED_NODES nodes;
- both refuse a text longer than MAX_CHARS before parsing it.

Both raise `yaml.YAMLError` with a mark, as any parser error, so callers
report them the same way: `error_line` and `error_problem` say where and what.
Runs in copier's interpreter: pyyaml only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from yaml.composer import ComposerError

MAX_CHARS = 5 * 1024 * 1024
EXPANDED_NODES = 200_000


class _NoAliases(yaml.SafeLoader):
    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in types-PyYAML
            raise ComposerError(
                None,
                None,
                f"holds an alias (*{event.anchor}), which hub-template does not "
                "read from a source: write the value out",
                event.start_mark,
            )
        return super().compose_node(parent, index)


# A hub's files are read by every check run, so with libyaml where pyyaml has
# it; the bound is checked on the composed graph, which both parsers build
# alike (an alias is the anchored node again). A source's files keep the
# pure-Python parser: refusing an alias where it stands needs its events.
_FastSafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Bounded(_FastSafeLoader):  # type: ignore[valid-type,misc]  # a class chosen at import
    def get_single_node(self) -> yaml.Node | None:
        node: yaml.Node | None = super().get_single_node()
        _check_expansion(node)
        return node

    def get_node(self) -> yaml.Node | None:  # each document of a stream (load_all_bounded)
        node: yaml.Node | None = super().get_node()
        _check_expansion(node)
        return node


def _check_expansion(root: yaml.Node | None) -> None:
    """Count the nodes the document stands for once every alias is expanded,
    each shared node counted once per use but computed once."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = EXPANDED_NODES + 1  # a node inside itself (a recursive alias) is too many
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(item) for item in node.value)
        else:
            total = 1
        sizes[id(node)] = min(total, EXPANDED_NODES + 1)
        return sizes[id(node)]

    if root is not None and size(root) > EXPANDED_NODES:
        raise ComposerError(
            None,
            None,
            f"expands its aliases to more than {EXPANDED_NODES} values; write it without nested aliases",
            root.start_mark,
        )


def _checked_length(text: str) -> str:
    if len(text) > MAX_CHARS:
        raise yaml.YAMLError(f"is longer than {MAX_CHARS // 2**20} MB, too large for a configuration file")
    return text


def load_untrusted(text: str) -> Any:
    """yaml.safe_load without aliases."""
    return yaml.load(_checked_length(text), Loader=_NoAliases)


def compose_untrusted(text: str) -> yaml.Node | None:
    """yaml.compose without aliases (for line numbers)."""
    return yaml.compose(_checked_length(text), Loader=_NoAliases)


def _bounded_loader(text: str) -> type[yaml.SafeLoader]:
    """_Bounded, unless the text cannot exceed the bound: with no `*` it holds
    no alias, and a node takes at least half a character (`a:` is three), so a
    short text is small whole. Walking the graph was a tenth of a check."""
    if "*" not in text and len(text) <= EXPANDED_NODES // 2:
        return _FastSafeLoader
    return _Bounded


def load_bounded(text: str) -> Any:
    """yaml.safe_load, refusing aliases that expand too far."""
    return yaml.load(_checked_length(text), Loader=_bounded_loader(text))


def load_all_bounded(text: str) -> list[Any]:
    """Every document of a YAML stream (Kubernetes manifests), bounded the same way."""
    return list(yaml.load_all(_checked_length(text), Loader=_bounded_loader(text)))


def compose_bounded(text: str) -> yaml.Node | None:
    return yaml.compose(_checked_length(text), Loader=_bounded_loader(text))


def error_line(error: yaml.YAMLError) -> int | None:
    """The line (from 1) a parser error points at, or None when it has no mark."""
    mark = getattr(error, "problem_mark", None)
    return mark.line + 1 if mark else None


def error_location(origin: str, error: yaml.YAMLError) -> str:
    """`origin`, followed by the line a parser error points at: "file, line 3"."""
    line = error_line(error)
    return f"{origin}, line {line}" if line else origin


def error_problem(error: yaml.YAMLError) -> str:
    """What a parser error says is wrong, without its location."""
    return getattr(error, "problem", None) or str(error)


class Unreadable(ValueError):
    """Untrusted text that is no YAML hub-template reads; the message says where and why."""


def read_untrusted(text: str, origin: str, what: str, parse: Callable[[str], Any] = load_untrusted) -> Any:
    """`parse(text)` (load_untrusted or compose_untrusted), or Unreadable with
    one message naming `origin`, the line and the problem; `what` names the
    kind of file, as in "nested too deeply to be an environment file"."""
    try:
        return parse(text)
    except yaml.YAMLError as error:
        raise Unreadable(f"{error_location(origin, error)} is not valid YAML: {error_problem(error)}") from None
    except RecursionError:
        raise Unreadable(f"{origin} is nested too deeply to be {what}") from None
