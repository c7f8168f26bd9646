"""`hub-template plan-deploy`: what the federation's CI does for one push or
pull request, decided from git alone (the workflows only run the result).

    hub-template plan-deploy --before SHA --after SHA --branch staging
    hub-template plan-deploy --before BASE --after HEAD --pull-request

Prints one line of JSON, `{"environment": ..., "count": N, "hubs": [...]}`,
one entry per hub to deploy (or, for a pull request, to check):

- a hub is in the plan when a file under `deployments/<hub>/` changed, and
  every hub is when a file outside `deployments/` changed (the chart, CI, a
  root file). A hub added in one commit is thereby planned: nothing outside
  its folder needs an edit. A push whose `before` git does not know (a new
  branch, a force push) plans every hub, building every image;
- `tag` is the last commit that changed the hub's `image/` (its first 12
  hex digits), so an unchanged image keeps its tag and is not rebuilt;
- staging builds the image (`build`) when `image/` changed; prod never
  builds it, it promotes (`promote`) the image staging built for the same
  tag. The workflow builds and pushes only a tag the registry lacks, so a
  tag, once pushed, is never overwritten and prod runs what staging ran;
- `git_crypt_secret` names the repository secret holding the hub's own
  git-crypt key (`git_crypt_key`; the hub's README names the same);
- `staging` and `prod` pick the environment; any other branch is refused;
- `deploy` is the exact `hubploy deploy` command line CI runs;
- a hub whose answers still hold a stand-in id (ST006: `--defaults` or an
  update recorded it) is refused: its login would name no real identity.

Everything is read from the commits (`git show`), and every value that
reaches the workflow is checked against a strict pattern first: a hub's files
are untrusted input to CI.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, overload

import yaml

from . import git_runner, load_data, rules
from .copier_settings import ANSWERS_FILE
from .stand_ins import stand_in_answers

DEPLOYMENTS = "deployments"
ENVIRONMENTS = ("staging", "prod")
CHART = "chart"  # the federation's deployment chart, at the repository root
TAG_LENGTH = 12
SECRETS_BACKENDS = ("git-crypt", "sops")

# The answers each provider's keyless login needs (the federation's
# deploy.yml), each with the rule of data/rules.yml its question applies:
# data/providers.yml `login`.
LOGIN: dict[str, dict[str, str]] = {provider: facts["login"] for provider, facts in load_data("providers.yml").items()}
# What a value must look like before it reaches a workflow (answers and
# values are the hub's, so untrusted): the rule of data/rules.yml that
# copier's question for it applies.
PATTERNS = {
    field: rules.pattern(rule).pattern
    for field, rule in {
        "hub": "hub_name",
        "umbrella": "helm_umbrella_key",
        "image": "image_name",
        "git_crypt_key": "git_crypt_key",
        "host": "hostname",
        **{field: rule for login in LOGIN.values() for field, rule in login.items()},
    }.items()
}


class PlanError(Exception):
    """A one-line reason the plan cannot be made."""


@dataclass(frozen=True)
class HubPlan:
    hub: str
    environment: str | None
    provider: str
    secrets: str  # git-crypt (CI unlocks it) or sops (hubploy decrypts)
    tag_value: str  # the helm value CI sets to the tag: <jupyterhub values>.singleuser.image.tag
    image: str
    tag: str
    registry: str  # the image's registry host, which CI logs docker in to
    build: bool  # staging and pull requests: image/ changed, so build it (unless the registry has the tag)
    promote: bool  # prod: image/ changed, so deploy the image staging built for this tag (never rebuilt)
    git_crypt_secret: str | None  # the repository secret with the hub's git-crypt key; None for sops
    login: dict[str, Any]
    deploy: list[str] | None  # None for a pull request: nothing is deployed
    url: str | None  # the deployed hub's, where CI runs its notebooks after the deploy; None for a pull request


# --- reading git ------------------------------------------------------------


@cache
def _repository(repo: Path) -> git_runner.Repository:
    """The repository holding `repo`, found by its .git: a folder of the
    hubs' files laid out as a git directory is never taken for it."""
    found = git_runner.repository_of(repo)
    if found is None:
        raise PlanError(f"{repo} is not in a git repository: run plan-deploy in the federation's checkout")
    return found


@overload
def _git(repo: Path, *args: str, check: Literal[True] = True) -> str: ...
@overload
def _git(repo: Path, *args: str, check: bool) -> str | None: ...
def _git(repo: Path, *args: str, check: bool = True) -> str | None:
    done = _repository(repo).run(*args, text=True)
    if done.returncode != 0:
        if check:
            raise PlanError(f"git {' '.join(args)}: {done.stderr.strip().splitlines()[-1:] or ['failed']}")
        return None
    return done.stdout


def changed_files(repo: Path, before: str | None, after: str, merge_base: bool) -> list[str] | None:
    """Files changed from `before` to `after`, or None when `before` is unknown."""
    if not before or set(before) == {"0"} or _git(repo, "cat-file", "-e", f"{before}^{{commit}}", check=False) is None:
        return None
    spec = f"{before}...{after}" if merge_base else f"{before}..{after}"
    return _git(repo, "diff", "--name-only", "--no-renames", spec).splitlines()


def hubs_at(repo: Path, commit: str) -> list[str]:
    """The hubs of the commit: folders of deployments/ with a hubploy.yaml."""
    listing = _git(repo, "ls-tree", "-r", "--name-only", commit, "--", f"{DEPLOYMENTS}/") or ""
    return sorted(
        {
            parts[1]
            for parts in (line.split("/") for line in listing.splitlines())
            if len(parts) == 3 and parts[2] == "hubploy.yaml"
        }
    )


def _yaml_at(repo: Path, commit: str, path: str) -> dict[str, Any]:
    text = _git(repo, "show", f"{commit}:{path}", check=False)
    if text is None:
        raise PlanError(f"{path}: missing at {commit[:TAG_LENGTH]}; render the hub with copier")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise PlanError(f"{path}: is not valid YAML; run `hub-template check` on the hub") from None
    if not isinstance(data, dict):
        raise PlanError(f"{path}: is not a mapping; run `hub-template check` on the hub")
    return data


def _checked(where: str, field: str, value: object) -> str:
    pattern = PATTERNS[field]
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise PlanError(f"{where}: {field} {value!r} does not match {pattern}")
    return value


# --- deciding ---------------------------------------------------------------------


def image_tag(repo: Path, commit: str, hub: str) -> str:
    """The last commit up to `commit` that changed the hub's image/."""
    last = _git(repo, "log", "-1", "--format=%H", commit, "--", f"{DEPLOYMENTS}/{hub}/image").strip()
    if not last:
        raise PlanError(f"{DEPLOYMENTS}/{hub}/image: no commit has it; render the hub with copier")
    return last[:TAG_LENGTH]


def git_crypt_secret(key: str) -> str:
    """The repository secret CI unlocks a hub's git-crypt key with: the
    shared key's `GIT_CRYPT_KEY`, or `GIT_CRYPT_KEY_<KEY>` for the hub's own
    key (the hub's README, jinja/secrets.jinja `git_crypt_secret`, names the
    same; GitHub secret names are letters, digits and _)."""
    return "GIT_CRYPT_KEY" if key == "default" else f"GIT_CRYPT_KEY_{key.upper().replace('-', '_')}"


def deploy_command(hub: str, environment: str, tag_value: str, tag: str) -> list[str]:
    """The `hubploy deploy` CI runs: today's hubploy sets no image tag itself.
    ``tag_value`` is the helm value of the users' image tag."""
    return [
        "hubploy",
        "deploy",
        hub,
        CHART,
        environment,
        "--set-string",
        f"{tag_value}={tag}",
        "--cleanup-on-fail",
    ]


# Folders CI's tools read (repo2docker, helm, hubploy) after git-crypt unlocks
# the secrets: a link there would make them read and print the runner's files.
NO_LINKS = ("image", "config", "secrets")


def refuse_links(repo: Path, commit: str, where: str) -> None:
    """Refuse a hub whose image/, config/ or secrets/ commits a symlink (mode 120000)."""
    listing = _git(repo, "ls-tree", "-r", "-z", commit, "--", *(f"{where}/{folder}/" for folder in NO_LINKS)) or ""
    links = [entry.partition("\t")[2] for entry in listing.split("\0") if entry.startswith("120000 ")]
    if links:
        raise PlanError(
            f"{links[0]}: is a symlink ({len(links)} in the hub's image/, config/ or secrets/); CI's tools would "
            "read what it points to on the runner. Commit the file itself (`hub-template check` ST007)."
        )


def hub_url(repo: Path, commit: str, where: str, path: list[str], environment: str) -> str:
    """The environment's hub URL: the first host of its config/<env>.yaml
    (proxy.https.hosts, where the template puts the hub's domain)."""
    rel = f"{where}/config/{environment}.yaml"
    values: object = _yaml_at(repo, commit, rel)
    for key in [*path, "proxy", "https", "hosts"]:
        values = values.get(key) if isinstance(values, dict) else None
    host = values[0] if isinstance(values, list) and values else None
    return "https://" + _checked(f"{rel} proxy.https.hosts", "host", host)


def plan_hub(repo: Path, commit: str, hub: str, environment: str | None, image_changed: bool) -> HubPlan:
    where = f"{DEPLOYMENTS}/{hub}"
    _checked(where, "hub", hub)
    refuse_links(repo, commit, where)
    if len(hub) > rules.limit("hub_name_max"):
        raise PlanError(f"{where}: hub {hub!r} has {len(hub)} characters, over {rules.limit('hub_name_max')}")
    answers = _yaml_at(repo, commit, f"{where}/{ANSWERS_FILE}")
    standing = stand_in_answers(answers)
    if standing:
        name = next(iter(standing))
        raise PlanError(
            f"{where}: {', '.join(f'{n} {v!r}' for n, v in standing.items())}: stand-ins, no real id (ST006); "
            f"answer each: copier update --trust --defaults --data {name}=..."
        )
    provider = answers.get("cloud_provider")
    if provider not in LOGIN:
        raise PlanError(f"{where}: cloud_provider {provider!r} is not one of {', '.join(LOGIN)}")
    umbrella = _checked(where, "umbrella", answers.get("helm_umbrella_key", "daskhub"))
    secrets = answers.get("secrets_backend")
    if secrets not in SECRETS_BACKENDS:
        raise PlanError(f"{where}: secrets_backend {secrets!r} is not one of {', '.join(SECRETS_BACKENDS)}")
    # Hubs made before 1.2.0 share the repository's key (the 1.2.0 migration
    # writes `git_crypt_key: default` into their answers).
    crypt_key = (
        _checked(where, "git_crypt_key", answers.get("git_crypt_key", "default")) if secrets == "git-crypt" else None
    )
    values = _yaml_at(repo, commit, f"{where}/config/common.yaml")
    # A kubernetes hub deploys the jupyterhub chart alone, at the top (jinja/values.jinja).
    path = ["jupyterhub"] if answers.get("dask_backend") == "kubernetes" else [umbrella, "jupyterhub"]
    chart_values = values
    for key in path:
        chart_values = (chart_values.get(key) if isinstance(chart_values, dict) else None) or {}
    image = (chart_values.get("singleuser") or {}).get("image") or {}
    name = _checked(f"{where}/config/common.yaml", "image", image.get("name") if isinstance(image, dict) else None)
    login = {field: _checked(where, field, answers.get(field)) for field in LOGIN[provider]}
    tag = image_tag(repo, commit, hub)
    tag_value = ".".join([*path, "singleuser", "image", "tag"])
    url = hub_url(repo, commit, where, path, environment) if environment else None
    return HubPlan(
        hub=hub,
        environment=environment,
        provider=provider,
        secrets=secrets,
        tag_value=tag_value,
        image=name,
        tag=tag,
        registry=name.split("/", 1)[0],
        build=image_changed and environment != "prod",
        promote=image_changed and environment == "prod",
        git_crypt_secret=git_crypt_secret(crypt_key) if crypt_key else None,
        login=login,
        deploy=deploy_command(hub, environment, tag_value, tag) if environment else None,
        url=url,
    )


def plan(repo: Path, before: str | None, after: str, branch: str | None, pull_request: bool = False) -> dict[str, Any]:
    if pull_request:
        environment = None
    elif branch in ENVIRONMENTS:
        environment = branch
    else:
        raise PlanError(f"branch {branch!r} deploys nothing: only {' and '.join(ENVIRONMENTS)} do")
    after = _git(repo, "rev-parse", "--verify", f"{after}^{{commit}}").strip()
    changed = changed_files(repo, before, after, merge_base=pull_request)
    hubs = hubs_at(repo, after)
    everything = changed is None or any(not path.startswith(f"{DEPLOYMENTS}/") for path in changed)
    entries = []
    for hub in hubs:
        prefix = f"{DEPLOYMENTS}/{hub}/"
        mine = [] if changed is None else [path for path in changed if path.startswith(prefix)]
        if not (everything or mine):
            continue
        image_changed = changed is None or any(path.startswith(prefix + "image/") for path in mine)
        entries.append(plan_hub(repo, after, hub, environment, image_changed))
    return {"environment": environment, "count": len(entries), "hubs": [asdict(e) for e in entries]}


# --- the command ------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", type=Path, default=Path("."), help="the federation repository (default: .)")
    parser.add_argument(
        "--before",
        help="the commit before the push (github.event.before), or the "
        "pull request's base; unknown or all zeros plans every hub",
    )
    parser.add_argument("--after", default="HEAD", help="the commit pushed, or the pull request's head")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--branch", help="the branch pushed: staging or prod")
    mode.add_argument(
        "--pull-request", action="store_true", help="plan the checks of a pull request: changed hubs, no deploy"
    )


def run(args: argparse.Namespace) -> int:
    try:
        result = plan(args.repo, args.before, args.after, args.branch, args.pull_request)
    except PlanError as error:
        print(f"plan-deploy: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, separators=(",", ":")))
    return 0
