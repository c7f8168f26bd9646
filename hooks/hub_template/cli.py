"""`hub-template`: the operators' command.

    hub-template check deployments/charlie [--chart daskhub/]
    hub-template update deployments/ [--check]
    hub-template plan-deploy --before SHA --after SHA --branch staging
    hub-template adopt deployments/ocean

Each verb lives in its own module, which provides `add_arguments(parser)` and
`run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

VERBS = {
    "check": ("hub_template.checks.command", "Check a rendered hub, offline, in seconds."),
    "update": ("hub_template.federation", "Update every hub of a federation to the newest template."),
    "plan-deploy": ("hub_template.deploy_plan", "Plan what CI builds and deploys for a push or pull request."),
    "lock": ("hub_template.lock", "Solve a hub's image environment for linux-64 into a lock beside it."),
    "preview": ("hub_template.preview.command", "Run a hub on this machine, on 127.0.0.1, to see it work."),
    "adopt": ("hub_template.adopt", "Bring a hand-made hub under the template, changing none of its files."),
    "run-notebooks": (
        "hub_template.preview.notebooks",
        "Run a hub's own notebooks in a user's server: its health check.",
    ),
}

# Shown under each verb's --help.
EXAMPLES = {
    "check": """examples:
  hub-template check deployments/charlie
  hub-template check deployments/charlie --chart daskhub/   # with the chart's schemas
  hub-template check deployments/* --select SE --show err   # secrets only, failures only
  hub-template check deployments/charlie --format json > report.json""",
    "update": """examples:
  hub-template update deployments/ --check       # who is behind; changes nothing
  hub-template update deployments/               # update every hub that is behind
  hub-template update deployments/ --vcs-ref v1.2.0
  hub-template update deployments/ --data contact_email=ops@uni.edu""",
    "preview": """examples:
  hub-template preview deployments/charlie                    # open the printed URL
  hub-template preview deployments/charlie --smoke            # the researcher's path, headless
  hub-template preview deployments/charlie --chart daskhub/   # offline, with a daskhub chart folder""",
    "adopt": """examples:
  hub-template adopt deployments/ocean                      # shows the answers, asks the rest
  hub-template adopt deployments/ocean --defaults -d domain=ocean.pangeo.io""",
    "lock": """examples:
  hub-template lock deployments/charlie          # (re)write image/binder/environment.lock.yml
  hub-template lock deployments/charlie --diff   # and print the table of version changes
  hub-template lock deployments/* --check        # exit 1 if a lock would change
  hub-template lock deployments/charlie --export analysis.yml   # keep a `conda env export`'s builds""",
    "run-notebooks": """examples:
  hub-template run-notebooks https://staging.charlie.example.org --secrets deployments/charlie/secrets/staging.yaml
  hub-template run-notebooks https://staging.charlie.example.org --token-file token.txt""",
    "plan-deploy": """examples:
  hub-template plan-deploy --before HEAD~1 --after HEAD --branch staging   # what a push deploys
  hub-template plan-deploy --before origin/staging --after HEAD --pull-request""",
}

# A verb's dependencies that are an extra, and how to get them.
EXTRAS = {
    "check": "pip install 'hub-template[check] @ git+https://github.com/pangeo/hub-template'\n"
    "   or, from a clone: pip install -e '.[check]'",
    "lock": "pip install 'hub-template[lock] @ git+https://github.com/pangeo/hub-template'\n"
    "   or, from a clone: pip install -e '.[lock]'",
    "run-notebooks": "pip install 'hub-template[health] @ git+https://github.com/pangeo/hub-template'\n"
    "   or, from a clone: pip install -e '.[health]'",
}


# A verb whose extra has another name.
EXTRA_NAMES = {"run-notebooks": "health"}

# Verbs whose native solver leaves threads running (py-rattler's runtime) that
# can crash Python's finalization once the verb is done (SIGSEGV or SIGABRT,
# "no Python frame", about one run in twenty on a busy machine): run as the
# program, they end the process with their own exit status, output flushed.
NATIVE_RUNTIME = frozenset({"lock"})


def _missing_extra(verb: str, error: ModuleNotFoundError) -> bool:
    """Whether ``error`` is a module of the verb's extra that is not installed
    (and not some other missing module, which is a bug to show as it is)."""
    from importlib.metadata import packages_distributions, requires

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    wanted = {
        canonicalize_name(r.name)
        for r in map(Requirement, requires("hub-template") or ())
        if r.marker and r.marker.evaluate({"extra": EXTRA_NAMES.get(verb, verb)})
    }
    top = (error.name or "").partition(".")[0]
    return any(canonicalize_name(d) in wanted for d in packages_distributions().get(top, [top]))


class _Version(argparse.Action):
    """--version, reading the installed version only when asked (importlib.metadata
    costs more than deciding that 60 hubs are current)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show hub-template's version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("hub-template")
        except PackageNotFoundError:  # run from a clone that is not installed
            installed = "(not installed)"
        print(f"hub-template {installed}")  # on stdout, as argparse's own version action
        parser.exit()


def main(argv: list[str] | None = None) -> int:
    as_program = argv is None  # the console script, or `python -m hub_template.cli`
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="hub-template",
        description=__doc__.splitlines()[0],
        epilog="`hub-template VERB --help` shows a verb's options and examples.",
    )
    parser.add_argument("--version", action=_Version)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="{" + ",".join(VERBS) + "}")
    # Import only the verb asked for: one verb's dependencies never break another.
    chosen = next((arg for arg in argv if arg in VERBS), None)
    module = None
    for verb, (module_name, help_text) in VERBS.items():
        sub = verbs.add_parser(
            verb,
            help=help_text,
            description=help_text,
            epilog=EXAMPLES.get(verb),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if verb == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
    args = parser.parse_args(argv)
    assert module is not None  # parse_args exits unless a verb was given
    try:
        code: int = module.run(args)
    except ModuleNotFoundError as missing:  # the verbs import their tools when they need them
        if args.verb not in EXTRAS or not _missing_extra(args.verb, missing):
            raise
        parser.exit(
            2,
            f"hub-template {args.verb}: '{missing.name}' is missing; install the [{EXTRA_NAMES.get(args.verb, args.verb)}] extra:\n"
            f"   {EXTRAS[args.verb]}\n",
        )
    if as_program and args.verb in NATIVE_RUNTIME:
        _end_now(code)
    return code


def _end_now(code: int) -> NoReturn:
    """End the process without Python's finalization, its output flushed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
