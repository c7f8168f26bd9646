"""How a secret file looks encrypted, and the template's one placeholder form.

- git-crypt: the blob is its 10-byte header ``\\0GITCRYPT\\0``, a 12-byte
  nonce, then AES-CTR ciphertext as long as the file (git-crypt's
  commands.cpp): bytes with no readable text in them. The header before text
  is no encryption.
- sops: YAML, JSON and binary files (stored as JSON) carry a top-level ``sops``
  mapping with its ``mac`` and ``version``; INI files a ``[sops]`` section;
  dotenv files ``sops_version=`` and ``sops_mac=`` lines. And every value is
  ``ENC[...]``, except those sops' own metadata says it leaves in clear
  (``unencrypted_suffix``, ``unencrypted_regex``, or keys outside
  ``encrypted_regex`` / ``encrypted_suffix``): a ``sops:`` block above values
  in clear is no encryption.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from ..safe_yaml import load_bounded

GITCRYPT_MAGIC = b"\0GITCRYPT\0"
SOPS_METADATA = {"mac", "version", "lastmodified"}

YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


GITCRYPT_NONCE = 12
# Ciphertext is random bytes: a run of 20 printable ones comes once in ~10^8
# files of a few kB; text has them on every line.
READABLE_RUN = re.compile(rb"[\x20-\x7e\t\r\n]{20,}")


def is_git_crypt_output(data: bytes) -> bool:
    """Whether ``data`` is what git-crypt's clean filter writes, not its header before text."""
    if not data.startswith(GITCRYPT_MAGIC):
        return False
    body = data[len(GITCRYPT_MAGIC) :]
    if len(body) < GITCRYPT_NONCE or READABLE_RUN.search(body):
        return False
    try:
        return not body.decode("utf-8").isprintable()
    except UnicodeDecodeError:
        return True


def clear_bytes(data: bytes) -> bytes:
    """The bytes to read for values: a file that only wears git-crypt's header is read after it."""
    if data.startswith(GITCRYPT_MAGIC) and not is_git_crypt_output(data):
        return data[len(GITCRYPT_MAGIC) :]
    return data


def encryption_of(data: bytes) -> str | None:
    """'git-crypt', 'sops', or None for a file in clear."""
    if is_git_crypt_output(data):
        return "git-crypt"
    data = clear_bytes(data)
    text = data.decode("utf-8", errors="replace")
    if "sops" not in text:
        return None
    try:
        doc = load_bounded(text)  # JSON is YAML too
    except (yaml.YAMLError, RecursionError):
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("sops"), dict) and SOPS_METADATA & set(doc["sops"]):
        values = {k: v for k, v in doc.items() if k != "sops"}
        return "sops" if all(_sops_leaves(values, doc["sops"])) else None
    if re.search(r"^\[sops\]\s*$", text, re.M) and re.search(r"^mac\s*=", text, re.M):
        return "sops" if all(_encrypted(v) for v in _ini_values(text)) else None
    if re.search(r"^sops_version=", text, re.M) and re.search(r"^sops_mac=", text, re.M):
        pairs = [
            line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith(("#", "sops_"))
        ]
        return "sops" if all(_encrypted(v) for _, v in pairs) else None
    return None


def _encrypted(value: object) -> bool:
    return isinstance(value, str) and value.startswith("ENC[") and value.endswith("]")


def _sops_leaves(data: object, meta: dict[str, Any], state: str | None = None) -> Iterator[bool]:
    """For each leaf value: whether it is as sops' rules (in its metadata)
    say it must be. A key that matches an encrypt rule encrypts all below
    it, one that matches a leave-in-clear rule leaves all below in clear."""
    only = [meta.get(k) for k in ("encrypted_suffix", "encrypted_regex") if meta.get(k)]
    suffix = meta.get("unencrypted_suffix") or (
        "_unencrypted" if not only and not meta.get("unencrypted_regex") else None
    )
    if isinstance(data, dict):
        for key, value in data.items():
            key = str(key)
            decided = state
            if state is None:
                if (suffix and key.endswith(str(suffix))) or (
                    meta.get("unencrypted_regex") and re.search(str(meta["unencrypted_regex"]), key)
                ):
                    decided = "clear"
                elif (meta.get("encrypted_suffix") and key.endswith(str(meta["encrypted_suffix"]))) or (
                    meta.get("encrypted_regex") and re.search(str(meta["encrypted_regex"]), key)
                ):
                    decided = "encrypted"
            yield from _sops_leaves(value, meta, decided)
    elif isinstance(data, list):
        for item in data:
            yield from _sops_leaves(item, meta, state)
    else:
        clear_allowed = state == "clear" or (state is None and bool(only))
        yield clear_allowed or _encrypted(data)


def _ini_values(text: str) -> Iterator[str]:
    section = None
    for line in text.splitlines():
        if re.match(r"^\[.*\]\s*$", line):
            section = line.strip()
        elif "=" in line and section != "[sops]" and not line.lstrip().startswith(("#", ";")):
            yield line.split("=", 1)[1].strip()


def _placeholder_pattern() -> re.Pattern[str]:
    """The form jinja/secrets.jinja renders, read from that macro itself so the
    two can never drift."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).resolve().parents[1] / "jinja"))
    name = "hubtemplateplaceholdername"
    rendered = env.from_string(
        "{% from 'secrets.jinja' import placeholder %}{{ placeholder('" + name + "') }}"
    ).render()
    before, _, after = rendered.partition(name)
    return re.compile(re.escape(before) + r"[a-z0-9][a-z0-9-]*" + re.escape(after))


PLACEHOLDER = _placeholder_pattern()
