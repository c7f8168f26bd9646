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

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.plugins.base import RegexBasedDetector

# Shapes that are not credentials: a public IP address is a hub's load balancer.
NOT_CREDENTIALS = frozenset({"Public IP (ipv4)"})
# detect-secrets' names, where a plainer one reads better in a finding.
NAMES = {"Basic Auth Credentials": "a URL with a password", "Private Key": "a private key"}


class HuggingFaceTokenDetector(RegexBasedDetector):  # type: ignore[misc]  # detect-secrets is untyped
    """Hugging Face access tokens."""

    secret_type = "Hugging Face token"
    denylist = (re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),)


class AzureClientSecretDetector(RegexBasedDetector):  # type: ignore[misc]
    """Microsoft Entra ID (Azure AD) client secrets: 3 characters, a digit, `Q~`, 31-34 more."""

    secret_type = "Azure client secret"
    denylist = (re.compile(r"(?<![\w~.-])[\w~.-]{3}\dQ~[\w~.-]{31,34}(?![\w~.-])"),)


class OpenAIProjectKeyDetector(RegexBasedDetector):  # type: ignore[misc]
    """OpenAI's project, service-account and admin keys (detect-secrets knows the legacy form)."""

    secret_type = "OpenAI key"
    denylist = (re.compile(r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}"),)


class GitHubFineGrainedTokenDetector(RegexBasedDetector):  # type: ignore[misc]
    """GitHub's fine-grained personal access tokens."""

    secret_type = "GitHub fine-grained token"
    denylist = (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}"),)


class GoogleApiKeyDetector(RegexBasedDetector):  # type: ignore[misc]
    """Google Cloud API keys."""

    secret_type = "Google API key"
    denylist = (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),)


OWN_PLUGINS = (
    HuggingFaceTokenDetector,
    AzureClientSecretDetector,
    OpenAIProjectKeyDetector,
    GitHubFineGrainedTokenDetector,
    GoogleApiKeyDetector,
)


@functools.cache
def plugins() -> tuple[RegexBasedDetector, ...]:
    """One instance of each regex plugin: detect-secrets' own, then ours."""
    theirs = [
        cls
        for name, cls in sorted(get_mapping_from_secret_type_to_class().items())
        if issubclass(cls, RegexBasedDetector) and name not in NOT_CREDENTIALS
    ]
    return tuple(cls() for cls in (*theirs, *OWN_PLUGINS))


def shapes(line: str) -> Iterator[str]:
    """What each shape found in ``line`` is, in words (never the match itself)."""
    for plugin in plugins():
        for _ in plugin.analyze_string(line):  # analyze_string never verifies, so never calls out
            yield NAMES.get(plugin.secret_type, f"a credential ({plugin.secret_type})")
            break
