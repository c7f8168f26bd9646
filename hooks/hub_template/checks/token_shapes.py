"""Token shapes: which strings are credentials whatever holds them.

The shapes are detect-secrets' own regex plugins (a maintained list: AWS,
GitHub, GitLab, Slack tokens and webhooks, Azure storage keys, private keys,
JWTs, URLs with a password, OpenAI, PyPI, npm, Stripe...), used for their
patterns only: a plugin's `verify` would send the secret to its service, so
it is never called. A few shapes detect-secrets 1.5 does not know yet are
plugins of the same kind below; drop each once detect-secrets has it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

# Shapes that are not credentials: a public IP address is a hub's load balancer.
NOT_CREDENTIALS = frozenset({"Public IP (ipv4)"})
# detect-secrets' names, where a plainer one reads better in a finding.
NAMES = {"Basic Auth Credentials": "a URL with a password", "Private Key": "a private key"}
# Shapes detect-secrets 1.5 lacks, as plugins of its own kind: (class, description, what, pattern).
OWN_SHAPES = (
    ("HuggingFaceTokenDetector", "Hugging Face access tokens", "Hugging Face token", r"\bhf_[A-Za-z0-9]{30,}\b"),
    (
        "AzureClientSecretDetector",
        "Microsoft Entra ID (Azure AD) client secrets: 3 characters, a digit, `Q~`, 31-34 more",
        "Azure client secret",
        r"(?<![\w~.-])[\w~.-]{3}\dQ~[\w~.-]{31,34}(?![\w~.-])",
    ),
    (
        "OpenAIProjectKeyDetector",
        "OpenAI's project, service-account and admin keys (detect-secrets knows the legacy form)",
        "OpenAI key",
        r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}",
    ),
    (
        "GitHubFineGrainedTokenDetector",
        "GitHub's fine-grained personal access tokens",
        "GitHub fine-grained token",
        r"\bgithub_pat_[A-Za-z0-9_]{22,}",
    ),
    ("GoogleApiKeyDetector", "Google Cloud API keys", "Google API key", r"\bAIza[0-9A-Za-z_-]{35}\b"),
)


@functools.cache
def plugins() -> tuple[Any, ...]:
    """One instance of each regex plugin: detect-secrets' own, then ours.
    Imported on first use: the `check` extra brings detect-secrets, and the
    command says so when it is missing."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    theirs = [
        cls
        for name, cls in sorted(get_mapping_from_secret_type_to_class().items())
        if issubclass(cls, RegexBasedDetector) and name not in NOT_CREDENTIALS
    ]
    ours = [
        type(name, (RegexBasedDetector,), {"__doc__": doc, "secret_type": what, "denylist": (re.compile(pattern),)})
        for name, doc, what, pattern in OWN_SHAPES
    ]
    return tuple(cls() for cls in (*theirs, *ours))


def shapes(line: str) -> Iterator[str]:
    """What each shape found in ``line`` is, in words (never the match itself)."""
    for plugin in plugins():
        for _ in plugin.analyze_string(line):  # analyze_string never verifies, so never calls out
            yield NAMES.get(plugin.secret_type, f"a credential ({plugin.secret_type})")
            break
