"""`hub-template preview`: run a rendered hub on this machine, on 127.0.0.1 only,
with the hub's own configuration and only what cannot run here replaced.

- `overrides`: the one list of those replacements (printed; the tests assert it)
- `gateway_config`: dask-gateway-server's configuration
- `hub_config`: JupyterHub's, loading the helm values as z2jh does
- `userenv`: the users' environment, from image/binder/environment.yml
- `processes`: starting the programs, and stopping all of them by pid
- `smoke`: the researcher's path in headless Chromium
- `command`: the verb
"""

from collections.abc import Callable

# Prints one line of progress for the operator.
Say = Callable[[str], None]


class PreviewError(RuntimeError):
    """Why a preview cannot run, in one line (value first, then the rule)."""
