"""Where a file holds what looks like a credential in clear: (line, what),
never the value.

Two readings, so a value the line-based one cannot see is still seen:

- YAML and JSON files (notebooks included) are parsed and every value is
  judged with its key: a block scalar (`client_secret: |`), a folded one, a
  `- name: API_TOKEN / value: ...` pair of an env list, a service-account
  JSON's `private_key`. Each line of a string (a notebook cell's source, a
  Python snippet) is also read as text. The values sops encrypted
  (`ENC[...]`) and its own `sops:` metadata are no credentials; a value sops
  left in clear is read like any other.
- every text file is read line by line for token shapes (token_shapes.py:
  detect-secrets' plugins) and for assignments whose name says secret: YAML,
  INI and .env `key: value` / `key=value`, shell `export KEY=...`, notebooks'
  `%env KEY=...`, Python's `os.environ["KEY"] = ...`, `os.putenv("KEY", ...)`
  and keyword arguments (`S3FileSystem(secret="...")`), netrc's `password`,
  npmrc's `_authToken` / `_auth` / `_password`.

A name says secret when one of its words (snake, kebab or camel case) is a
secret word (SECRET_WORDS: `DB_PASS`, `GITLAB_PAT`, `client_secret`) or two
of them a secret pair (`AccountKey`, `AWS_SECRET_ACCESS_KEY`), unless its
last word names something else (`token_url`, `existingSecret`, `password_file`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import yaml

from ..safe_yaml import compose_bounded
from .base import code
from .encryption import PLACEHOLDER
from .token_shapes import shapes

SECRET_WORDS = frozenset(
    {"secret", "secrets", "token", "password", "passwd", "passphrase", "pass", "pwd", "pat", "apikey", "credential"}
)
SECRET_PAIRS = frozenset(
    {("private", "key"), ("access", "key"), ("api", "key"), ("client", "key"), ("account", "key"), ("auth", "key")}
)
SECRET_NAMES = frozenset({"_auth", "credentials"})  # npmrc's base64 user:password; a bare `credentials:` value
# A name ending in one of these holds what points to a secret, not the secret.
NOT_A_SECRET_WORDS = frozenset(
    {
        *("name", "ref", "file", "path", "uri", "url", "type", "class", "kind", "mode", "enabled"),
        *("backend", "format", "regex", "id", "dir", "env", "length", "expiry", "expires", "scope", "scopes"),
    }
)
WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

# Assignments on one line: (key, value), each pattern with those two groups.
ASSIGNMENTS = (
    # YAML, INI, .env, shell, %env, make: `key: value`, `KEY=value`, `export KEY=value`,
    # `%env KEY=value`, `KEY := $(shell ...)`.
    re.compile(
        r"""^\s*(?:-\s+)?(?:export\s+|declare\s+(?:-\w+\s+)?|readonly\s+|set\s+|%env\s+|%set_env\s+|!\s*export\s+)?"""
        r"""["']?(?P<key>[A-Za-z_][\w.-]*)["']?\s*(?::{1,2}=|[?+!]=|[:=])\s*(?P<value>.*?)\s*[,;]?\s*$"""
    ),
    # IPython's `%env KEY value`.
    re.compile(r"^\s*%env\s+(?P<key>[A-Za-z_]\w*)\s+(?P<value>[^=\s].*?)\s*$"),
    # Python: os.environ["KEY"] = value; os.environ.setdefault / os.putenv("KEY", value).
    re.compile(r"""environ\s*\[\s*(?P<q>["'])(?P<key>[^"']+)(?P=q)\s*\]\s*=\s*(?P<value>.+?)\s*;?\s*$"""),
    re.compile(r"""(?:setdefault|putenv|setenv)\s*\(\s*(?P<q>["'])(?P<key>[^"']+)(?P=q)\s*,\s*(?P<value>[^)]+)\)"""),
    # A quoted value anywhere: keyword arguments, dict entries, JSON members.
    re.compile(r"""(?P<key>[A-Za-z_][\w-]*)["']?\s*[:=]\s*(?P<value>(?P<q>["'])[^"'\n]*(?P=q))"""),
    # npmrc: //registry/:_authToken=..., _auth=..., _password=...
    re.compile(r"^\s*(?://\S*?:)?(?P<key>_authToken|_auth|_password)\s*=\s*(?P<value>.*?)\s*$"),
    # netrc: machine HOST login USER password SECRET (on one line or several)
    re.compile(r"^\s*(?:(?:machine|login|account)\s+\S+\s+|default\s+)*(?P<key>password)\s+(?P<value>\S+)"),
)
REFERENCE = re.compile(
    r"^(\$\(.*\)|\$\{.*\}|\$[A-Za-z_]\w*|\{.*\}|<.*>|[|>][-+]?|[\[{(]|null|~|true|false|None|True|False"
    r"|(os\.)?environ.*|(os\.)?getenv\(.*|getpass.*|input\(.*|ENC\[.*\]|[\d.]+|[*x.]+|\w+\(.*\))$",
    re.I,
)
# A shell or make expansion starts the value (`X=$(shyaml get-value password < f) cmd`,
# `$$(...)` in a Makefile): what it reads is elsewhere.
EXPANSION = re.compile(r"^\$+[({A-Za-z_]")
ENCRYPTED = re.compile(r"ENC\[[^\]]*\]")  # a value sops encrypted
STRUCTURED = (".yaml", ".yml", ".json", ".ipynb")


def names_a_secret(key: str) -> bool:
    """Whether a variable, key or argument named ``key`` holds a secret."""
    if key.lower() in SECRET_NAMES:
        return True
    words = [w.lower() for w in WORDS.findall(key)]
    if not words or words[-1] in NOT_A_SECRET_WORDS or words[0] == "existing":
        return False
    return bool(SECRET_WORDS.intersection(words)) or any(pair in SECRET_PAIRS for pair in itertools.pairwise(words))


def _looks_secret(key: str, value: str) -> bool:
    """Whether `value`, held by `key`, looks like a credential in clear."""
    if not names_a_secret(key):
        return False
    value = re.sub(r"\s+#.*$", "", value).strip().strip("\"'`").strip()
    return (
        len(value) >= 6
        and not PLACEHOLDER.search(value)
        and not REFERENCE.match(value)
        and not EXPANSION.match(value)
        and not re.match(r"^https?://\S*$", value)
    )


def line_credentials(text: str, first_line: int = 1) -> list[tuple[int, str]]:
    """(line, what) for each line that looks like it holds a credential."""
    found = []
    for number, line in enumerate(text.splitlines(), first_line):
        line = ENCRYPTED.sub("ENC[]", line)
        what = next(shapes(line), None)
        if what:
            found.append((number, f"holds what looks like {what}"))
            continue
        key = next(_secret_assignments(line), None)
        if key is not None:
            found.append((number, f"{code(key)} holds what looks like a credential"))
    return found


def _secret_assignments(line: str) -> Iterator[str]:
    for pattern in ASSIGNMENTS:
        for match in pattern.finditer(line):
            if _looks_secret(match["key"], match["value"]):
                yield match["key"]


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
            elif node.style in ("|", ">") or "\n" not in scalar:
                found.extend(line_credentials(scalar, line))
            else:  # a quoted string over lines, as a notebook's JSON: its lines are on one line of the file
                found.extend((line, what) for _, what in line_credentials(scalar))
        else:
            walk(node)

    def walk(node: yaml.Node | None, top: bool = False) -> None:
        if isinstance(node, yaml.MappingNode):
            keys = {str(k.value): v for k, v in node.value if isinstance(k, yaml.ScalarNode)}
            named = keys.get("name")
            for key_node, item in node.value:
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else ""
                if top and key == "sops" and isinstance(item, yaml.MappingNode):
                    continue  # sops' own metadata: its keys' names, encrypted data keys, a MAC
                if key == "value" and isinstance(named, yaml.ScalarNode):
                    key = str(named.value)  # an env list's {name: API_TOKEN, value: ...}
                value(key, item)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                value("", item)
        elif node is not None:
            value("", node)

    walk(root, top=True)
    return found


def credentials(text: str, rel: str = "") -> list[tuple[int, str]]:
    """(line, what) for each value in clear that looks like a credential."""
    found = _structured(text) if rel.endswith(STRUCTURED) else None
    if found is None:
        return line_credentials(text)
    # a token in a comment or a key is no value: the lines see it
    seen = {line for line, _ in found}
    in_sops_block = _sops_block_lines(text)
    found += [
        (line, what)
        for line, what in line_credentials(text)
        if line not in seen and what.startswith("holds") and line not in in_sops_block
    ]
    return sorted(set(found))


def _sops_block_lines(text: str) -> set[int]:
    """The lines of a top-level `sops:` mapping (its encrypted data keys are no credential)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"^sops:\s*$", line)), None)
    if start is None:
        return set()
    end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i][0].isspace()), len(lines))
    return set(range(start + 1, end + 1))
