"""data/logins.yml as the Python parts read it (copier.yml and the templates
read it through jinja/data.jinja): how hubs name each login's authenticator."""

from __future__ import annotations

from functools import lru_cache

from . import load_data


@lru_cache(maxsize=1)
def authenticator_classes() -> dict[str, tuple[str, str]]:
    """JupyterHub.authenticator_class as hubs write it (the entry point's name,
    the module's, the class's, or its dotted path) -> (login, the class whose
    hub.config section configures it)."""
    found = {}
    for login, spec in load_data("logins.yml").items():
        cls, module = spec["class"], spec["module"]
        for name in (
            spec["authenticator_class"],
            module,
            cls,
            f"oauthenticator.{module}.{cls}",
            f"oauthenticator.{cls}",
        ):
            found[name] = (login, cls)
    return found
