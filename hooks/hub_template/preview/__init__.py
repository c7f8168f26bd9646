"""`hub-template preview`: run a rendered hub on this machine, on 127.0.0.1 only,
with the hub's own configuration and only what cannot run here replaced.

- `overrides`: the one list of those replacements (printed; the tests assert it)
- `gateway_config`: dask-gateway-server's configuration
- `hub_config`: JupyterHub's, loading the helm values as z2jh does
- `userenv`: the users' environment, from image/binder/environment.yml
- `processes`: starting the programs, and stopping all of them by pid
- `sandbox`: the hub's postBuild and start as a user pod runs them (bubblewrap)
- `notebooks`: the hub's own notebooks run in a user's server (`run-notebooks`)
- `smoke`: the researcher's path in headless Chromium
- `command`: the verb
"""

from collections.abc import Callable
from pathlib import Path

# Prints one line of progress for the operator.
Say = Callable[[str], None]


class PreviewError(RuntimeError):
    """Why a preview cannot run, in one line (value first, then the rule)."""


def program_failed(what: str, output: str, log: Path, lines: int = 12) -> PreviewError:
    """`what` failed: the program's own last lines, and the log file that holds
    all its output (written here, so the file named exists)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(output)
    last = [line.rstrip() for line in output.splitlines() if line.strip()][-lines:] or ["(no output)"]
    return PreviewError(f"{what}; its output ends:\n" + "\n".join(f"  {line}" for line in last) + f"\nall of it: {log}")
