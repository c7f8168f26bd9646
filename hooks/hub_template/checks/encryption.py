"""How a secret file looks encrypted, and the template's one placeholder form.

- git-crypt: the blob starts with the bytes ``\\0GITCRYPT\\0``.
- sops: YAML, JSON and binary files (stored as JSON) carry a top-level ``sops``
  mapping with its ``mac`` and ``version``; INI files a ``[sops]`` section;
  dotenv files ``sops_version=`` and ``sops_mac=`` lines.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

GITCRYPT_MAGIC = b"\0GITCRYPT\0"
SOPS_METADATA = {"mac", "version", "lastmodified"}

YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def encryption_of(data: bytes) -> str | None:
    """'git-crypt', 'sops', or None for a file in clear."""
    if data.startswith(GITCRYPT_MAGIC):
        return "git-crypt"
    text = data.decode("utf-8", errors="replace")
    if "sops" not in text:
        return None
    try:
        doc = yaml.load(text, Loader=YamlLoader)  # JSON is YAML too
    except yaml.YAMLError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("sops"), dict) and SOPS_METADATA & set(doc["sops"]):
        return "sops"
    if re.search(r"^\[sops\]\s*$", text, re.M) and re.search(r"^mac\s*=", text, re.M):
        return "sops"
    if re.search(r"^sops_version=", text, re.M) and re.search(r"^sops_mac=", text, re.M):
        return "sops"
    return None


def _placeholder_pattern() -> re.Pattern[str]:
    """The form jinja/secrets.jinja renders, read from that macro itself so the
    two can never drift."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).resolve().parents[1] / "jinja"))
    name = "hubtemplateplaceholdername"
    rendered = env.from_string(
        "{% from 'secrets.jinja' import placeholder %}{{ placeholder('" + name + "') }}").render()
    before, _, after = rendered.partition(name)
    return re.compile(re.escape(before) + r"[a-z0-9][a-z0-9-]*" + re.escape(after))


PLACEHOLDER = _placeholder_pattern()
