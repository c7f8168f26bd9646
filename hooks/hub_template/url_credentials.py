"""Credentials inside URLs: `https://user:token@host/x.git`,
`pkg @ https://__token__:...@host/pkg.whl`, `--extra-index-url https://...`.

They must never be recorded (answers file, READMEs, environment.yml) nor
printed (summaries, errors). `strip` removes them from any text: for http(s)
the whole userinfo (a bare `token@` is a credential too), for other schemes
the password only (`ssh://git@host` keeps its user name, which git needs).

Runs in copier's interpreter: standard library only.
"""

from __future__ import annotations

import re

# scheme://userinfo@ ; userinfo never holds / or @ or an ASCII blank. Any
# other character, invisible ones included (U+FEFF, U+200B, U+00A0, U+2028,
# which Python's \\s partly counts as blanks), is part of the credential: a
# scrub that stopped there would leave the rest of the password in clear.
_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@ \t\r\n\f\v:?#\[\]]*)(?P<password>:[^/@ \t\r\n\f\v]*)?@"
)


def _replace(match: re.Match[str]) -> str:
    if match["scheme"].lower() in ("http://", "https://"):
        return match["scheme"]
    return match["scheme"] + match["user"] + "@" if match["password"] else match[0]


def strip(text: str) -> str:
    """`text` with the credentials of every URL in it removed."""
    return _USERINFO.sub(_replace, text)


def has_credentials(text: str) -> bool:
    return strip(text) != text
