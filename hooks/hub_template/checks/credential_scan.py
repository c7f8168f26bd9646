"""Where a file holds what looks like a credential in clear: (line, what),
never the value.

Two readings, so a value the line-based one cannot see is still seen:

- YAML and JSON files (notebooks included) are parsed and every value is
  judged with its key: a block scalar (`client_secret: |`), a folded one, a
  `- name: API_TOKEN / value: ...` pair of an env list, a service-account
  JSON's `private_key`. Each line of a multi-line value is also read as text
  (a Python snippet's `api_token = "..."`).
- every text file is read line by line for known token shapes (private keys,
  GitHub, AWS, Google, Slack tokens, JWTs, URLs with a password) and for
  `key = value` / `key: value` lines whose key names a secret.
"""

from __future__ import annotations

import re

import yaml

from ..safe_yaml import compose_bounded
from .base import code
from .encryption import PLACEHOLDER

SECRET_KEY = re.compile(
    r"secret|token|passw(or)?d|private[-_]?key|access[-_]?key|api[-_]?key|credential|client[-_]?key", re.I
)
NOT_A_SECRET_KEY = re.compile(
    r"(name|ref|file|path|uri|url|type|class|kind|mode|enabled|backend|format|regex|existing\w*)$", re.I
)
TOKEN_SHAPES = (
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("a GitHub token", re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b")),
    ("an AWS access key", re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")),
    ("a URL with a password", re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@\"'<>]+:[^/\s@\"'<>]+@[A-Za-z0-9]")),
)
KEY_VALUE = re.compile(r"""^\s*(?:-\s+)?["']?(?P<key>[A-Za-z0-9_.-]+)["']?\s*[:=]\s*(?P<value>.*?)\s*,?\s*$""")
REFERENCE = re.compile(r"^(\$\(.*\)|\$\{.*\}|\{.*\}|[|>][-+]?|[\[{]|null|~|true|false|os\.environ.*|None)$")
STRUCTURED = (".yaml", ".yml", ".json", ".ipynb")


def _shape(text: str) -> str | None:
    return next((what for what, pattern in TOKEN_SHAPES if pattern.search(text)), None)


def _looks_secret(key: str, value: str) -> bool:
    """Whether `value`, held by `key`, looks like a credential in clear."""
    if not SECRET_KEY.search(key) or NOT_A_SECRET_KEY.search(key):
        return False
    value = value.strip().strip("\"'")
    return (
        len(value) >= 8
        and not PLACEHOLDER.fullmatch(value)
        and not REFERENCE.match(value)
        and not re.match(r"^https?://\S*$", value)
    )


def line_credentials(text: str, first_line: int = 1) -> list[tuple[int, str]]:
    """(line, what) for each line that looks like it holds a credential."""
    found = []
    for number, line in enumerate(text.splitlines(), first_line):
        shape = _shape(line)
        if shape:
            found.append((number, f"holds what looks like {shape}"))
            continue
        match = KEY_VALUE.match(line)
        if match and _looks_secret(match["key"], re.sub(r"\s+#.*$", "", match["value"])):
            found.append((number, f"{code(match['key'])} holds what looks like a credential"))
    return found


def _structured(text: str) -> list[tuple[int, str]] | None:
    """The findings of a YAML or JSON document, or None if it does not parse."""
    try:
        root = compose_bounded(text)
    except (yaml.YAMLError, RecursionError):
        return None
    found: list[tuple[int, str]] = []

    def value(key: str, node: yaml.Node) -> None:
        if isinstance(node, yaml.ScalarNode):
            scalar, line = str(node.value), node.start_mark.line + 1
            if node.style in ("|", ">"):
                line += 1  # the value starts below its indicator
            if _looks_secret(key, scalar):
                found.append((line, f"{code(key)} holds what looks like a credential"))
            elif "\n" in scalar:
                found.extend(line_credentials(scalar, line))
            elif shape := _shape(scalar):
                found.append((line, f"holds what looks like {shape}"))
        else:
            walk(node)

    def walk(node: yaml.Node | None) -> None:
        if isinstance(node, yaml.MappingNode):
            keys = {str(k.value): v for k, v in node.value if isinstance(k, yaml.ScalarNode)}
            named = keys.get("name")
            for key_node, item in node.value:
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else ""
                if key == "value" and isinstance(named, yaml.ScalarNode):
                    key = str(named.value)  # an env list's {name: API_TOKEN, value: ...}
                value(key, item)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                value("", item)
        elif node is not None:
            value("", node)

    walk(root)
    return found


def credentials(text: str, rel: str = "") -> list[tuple[int, str]]:
    """(line, what) for each value in clear that looks like a credential."""
    found = _structured(text) if rel.endswith(STRUCTURED) else None
    if found is None:
        return line_credentials(text)
    # a token in a comment or a key is no value: the lines see it
    seen = {line for line, _ in found}
    found += [(line, what) for line, what in line_credentials(text) if line not in seen and what.startswith("holds")]
    return sorted(set(found))
