"""`hub-template`: the operators' command.

    hub-template check deployments/charlie [--chart daskhub/]
    hub-template update deployments/ [--check]
    hub-template plan-deploy --before SHA --after SHA --branch staging

Each verb lives in its own module, which provides `add_arguments(parser)` and
`run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

VERBS = {
    "check": ("hub_template.checks.command", "Check a rendered hub, offline, in seconds."),
    "update": ("hub_template.federation", "Update every hub of a federation to the newest template."),
    "plan-deploy": ("hub_template.deploy_plan", "Plan what CI builds and deploys for a push or pull request."),
    "preview": ("hub_template.preview.command", "Run a hub on this machine, on 127.0.0.1, to see it work."),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="hub-template", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="{" + ",".join(VERBS) + "}")
    # Import only the verb asked for: one verb's dependencies never break another.
    chosen = next((arg for arg in argv if arg in VERBS), None)
    module = None
    for verb, (module_name, help_text) in VERBS.items():
        sub = verbs.add_parser(verb, help=help_text, description=help_text)
        if verb == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
    args = parser.parse_args(argv)
    return module.run(args)

if __name__ == "__main__":
    sys.exit(main())
