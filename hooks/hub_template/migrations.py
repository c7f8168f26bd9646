"""What an existing hub needs when `copier update` takes it across a version.

Each function below is registered, with `@migration`, for the template
version that introduced the change. copier.yml's `_migrations` has one entry
per such version, naming its stages: when an update crosses that version,
copier runs `hooks/run.py migrate` in the hub's folder with $STAGE and
$VERSION_PEP440_CURRENT, which runs that version's migrations of that stage.
So each runs once, in version order.

- "before" migrations run before the new version renders: rename or convert
  answers in the answers file, so the new questions find them.
- "after" migrations run once the new version is rendered: move values the
  hub added by hand in files whose layout changed (e.g. helm values after a
  chart upgrade).

Runs in copier's interpreter: standard library, pyyaml, jinja2, packaging only.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from packaging.version import Version

from hub_template import git_runner, load_data
from hub_template.copier_settings import ANSWERS_FILE, installed_template_root

Stage = Literal["before", "after"]
# A migration: given the hub, what it did, or None if nothing.
MigrationFunc = Callable[[Path], str | None]


@dataclass(frozen=True)
class Migration:
    version: Version
    stage: Stage
    run: MigrationFunc

    @property
    def name(self) -> str:
        return self.run.__name__


MIGRATIONS: list[Migration] = []


def migration(version: str, stage: Stage = "before") -> Callable[[MigrationFunc], MigrationFunc]:
    """Register a migration for hubs updating from before `version`."""

    def register(func: MigrationFunc) -> MigrationFunc:
        MIGRATIONS.append(Migration(Version(version), stage, func))
        return func

    return register


def pending(version_from: Version, version_to: Version, stage: Stage) -> list[Migration]:
    """Migrations an update from `version_from` to `version_to` crosses, in order."""
    return sorted(
        (m for m in MIGRATIONS if m.stage == stage and version_from < m.version <= version_to),
        key=lambda m: m.version,
    )


def registered() -> set[tuple[Version, Stage]]:
    """The (version, stage) pairs copier.yml's `_migrations` must list."""
    return {(m.version, m.stage) for m in MIGRATIONS}


def run(hub: Path, version_from: Version, version_to: Version, stage: Stage, only: Version | None = None) -> list[str]:
    """Run the migrations an update crosses; with `only`, those of that version."""
    done = []
    for m in pending(version_from, version_to, stage):
        if only is not None and m.version != only:
            continue
        what = m.run(hub)
        done.append(f"migration {m.version} ({m.name}): {what or 'nothing to change'}")
    return done


# --- helpers for writing migrations ------------------------------------------


def rename_answer(hub: Path, old: str, new: str) -> str | None:
    """Rename a top-level answer in the answers file, keeping everything else."""
    path = hub / ANSWERS_FILE
    text = path.read_text()
    if re.search(rf"^{re.escape(new)}:", text, flags=re.M):
        return None
    renamed, count = re.subn(rf"^{re.escape(old)}:", f"{new}:", text, flags=re.M)
    if not count:
        return None
    path.write_text(renamed)
    return f"answer '{old}' is now '{new}'"


# --- the migrations ------------------------------------------------------------


@migration("1.1.0")
def rename_provider_to_cloud_provider(hub: Path) -> str | None:
    """1.1.0 renamed the `provider` answer `cloud_provider`: `provider` was
    easily confused with hubploy's own `provider` values (gcloud, aws, azure).
    Without this, an update would fall back to the default provider."""
    return rename_answer(hub, "provider", "cloud_provider")


@migration("1.2.0", stage="after")
def hubploy_yaml_for_todays_hubploy(hub: Path) -> str | None:
    """1.2.0 targets today's hubploy, which reads only `cluster:` and logs in
    keylessly (CI has the cloud's OIDC credentials): hubploy.yaml is rendered
    again from the answers when it still has 0.4's `images:` block or a key
    file (copier's merge of two unrelated layouts would only leave conflict
    markers), and the operator is told which key files in secrets/ are unused.
    Nothing is deleted: the keys must be revoked in the cloud first."""
    if not (hub / "hubploy.yaml").is_file():
        return None  # not a hub (a federation's root)
    done = []
    text = (hub / "hubploy.yaml").read_text()
    if _hubploy_0_4(text):
        (hub / "hubploy.yaml").write_text(_render_template_file(hub, "hubploy.yaml.jinja"))
        done.append("hubploy.yaml rendered again for today's hubploy (`cluster:` only; the old file is in git)")
    unused = [
        name
        for name in _retired_key_files()
        if (hub / "secrets" / name).is_file() or _restore_real_key(hub, f"secrets/{name}")
    ]
    for name in unused:
        done.append(
            f"secrets/{name} is no longer used (CI logs in with GitHub's OIDC token): "
            f"revoke that key in the cloud, then `git rm secrets/{name}`"
        )
    return "; ".join(done) or None


def _hubploy_0_4(text: str) -> bool:
    import yaml

    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError:
        return True  # conflict markers from copier's merge
    cluster = config.get("cluster") if isinstance(config, dict) else None
    settings = cluster.get(cluster.get("provider")) if isinstance(cluster, dict) else None
    return (
        "images" in config
        or not isinstance(settings, dict)
        or any(key in settings for key in ("service_key", "auth_file", "account_id"))
    )


def _restore_real_key(hub: Path, rel: str) -> bool:
    """copier deletes a file the new version no longer renders, even one the
    operators filled: put back a committed real key (not 1.1.0's stub, which
    holds placeholders) exactly as git has it, for its owners to revoke."""
    repo = git_runner.repository_of(hub)
    if repo is None:
        return False
    path = (hub.resolve() / rel).relative_to(repo.top).as_posix()
    shown = repo.run("show", f"HEAD:{path}")
    if shown.returncode != 0 or b"<hub-template placeholder: " in shown.stdout:
        return False
    return repo.run("checkout", "HEAD", "--", path).returncode == 0


def _retired_key_files() -> list[str]:
    providers = load_data("providers.yml")
    return [p["retired_key_file"] for p in providers.values() if "retired_key_file" in p]


def _render_template_file(hub: Path, name: str) -> str:
    """A file of template/ rendered with the hub's answers, as copier does."""
    import jinja2
    import yaml

    answers = yaml.safe_load((hub / ANSWERS_FILE).read_text())
    context = {**answers, "cloud": load_data("providers.yml")[answers["cloud_provider"]]}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string((installed_template_root() / "template" / name).read_text()).render(context)


# What 1.1.0 rendered into config/common.yaml of a kubernetes hub that helm
# could not deploy; an update whose merge kept any of it gets it removed.
_KUBERNETES_1_1_0_LEFTOVERS = (
    "      # Users' pods start dask workers themselves: no gateway to register.\n"
    "      services:\n        dask-gateway: null\n"
    "      extraConfig:\n        00-add-dask-gateway-values: null\n",
    "\n  dask-gateway:\n    enabled: false\n  dask-kubernetes:\n    enabled: true\n",
)


@migration("1.2.0", stage="after")
def dask_kubernetes_operator(hub: Path) -> str | None:
    """1.2.0 made the `kubernetes` dask backend deployable: dask-kubernetes'
    operator KubeCluster (the classic one is gone since 2024.5), the jupyterhub
    chart alone (daskhub always deploys dask-gateway), the users' account and
    Role from the deployment chart. The operator itself is not in any hub."""
    answers = (hub / ANSWERS_FILE).read_text()
    if not re.search(r"^dask_backend:\s*['\"]?kubernetes\b", answers, flags=re.M):
        return None
    found = re.search(r"^helm_umbrella_key:\s*['\"]?([\w-]+)", answers, flags=re.M)
    umbrella = found.group(1) if found else "daskhub"
    done, by_hand = [], []
    common = hub / "config" / "common.yaml"
    text = common.read_text() if common.is_file() else ""
    kept = text
    for block in _KUBERNETES_1_1_0_LEFTOVERS:
        kept = kept.replace(block, "\n" if block.startswith("\n") else "")
    if kept != text:
        common.write_text(kept)
        done.append("removed 1.1.0's values helm refused from config/common.yaml")
    # copier never rewrites secrets/: their jupyterhub values move up here.
    for path in sorted([*hub.glob("config/*.yaml"), *hub.glob("secrets/*.yaml")]):
        moved = _unnest_jupyterhub(path, umbrella)
        rel = path.relative_to(hub).as_posix()
        if moved is True:
            done.append(f"moved {rel}'s {umbrella}.jupyterhub to jupyterhub")
        elif moved:
            by_hand.append(f"{rel} ({moved})")
    return (
        "the kubernetes dask backend now uses the dask-kubernetes operator's KubeCluster, "
        "the jupyterhub chart without daskhub (values under jupyterhub:, no dask-gateway) and "
        "the deployment chart's service account and Role (deployment:). Install the operator "
        "once per Kubernetes cluster: helm install --repo https://helm.dask.org "
        "--create-namespace -n dask-operator dask-kubernetes-operator dask-kubernetes-operator "
        "(docs/kubernetes-backend.md)"
        + "".join(f"; {what}" for what in done)
        + (f"; move {umbrella}.jupyterhub to jupyterhub by hand in " + ", ".join(by_hand) if by_hand else "")
    )


def _unnest_jupyterhub(path: Path, umbrella: str) -> bool | str | None:
    """Turn `<umbrella>:\n  jupyterhub:` into `jupyterhub:` where that is the
    umbrella's only key; the values below stay valid YAML, four spaces in.
    True if moved, None if nothing to move, else why it cannot be done here."""
    import yaml

    try:
        text = path.read_text()
    except UnicodeDecodeError:
        return "encrypted: unlock it with git-crypt"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return "not valid YAML"
    if not isinstance(data, dict) or not isinstance(data.get(umbrella), dict):
        return None
    if "sops" in data:
        return "sops-encrypted: edit it with `sops`"
    head = f"{umbrella}:\n  jupyterhub:\n"
    if set(data[umbrella]) != {"jupyterhub"} or "jupyterhub" in data or text.count(head) != 1:
        return f"{umbrella}: holds more than jupyterhub"
    moved = re.sub(rf"^{re.escape(head)}", "jupyterhub:\n", text, flags=re.M)
    if yaml.safe_load(moved) != {
        **{k: v for k, v in data.items() if k != umbrella},
        "jupyterhub": data[umbrella]["jupyterhub"],
    }:
        return "its layout is not the template's"
    path.write_text(moved)
    return True


@migration("1.2.0")
def keep_the_shared_git_crypt_key(hub: Path) -> str | None:
    """1.2.0 gives each new hub its own git-crypt key (`git_crypt_key`, the
    filter `git-crypt-<key>`). A hub made before has its secrets encrypted
    with the repository's shared key: switching filters would leave git
    unable to decrypt them. Keep the shared key (`default`) until the hub's
    operators re-encrypt with their own (docs/cluster.md)."""
    if not (hub / "hubploy.yaml").is_file():
        return None  # not a hub (a federation's root)
    path = hub / ANSWERS_FILE
    text = path.read_text()
    if re.search(r"^git_crypt_key:", text, flags=re.M) or re.search(r"^secrets_backend:\s*sops\s*$", text, flags=re.M):
        return None
    path.write_text(text.rstrip("\n") + "\ngit_crypt_key: default\n")
    return "answer 'git_crypt_key' is 'default': secrets stay with the shared git-crypt key"


# Answers of the users' CPU and memory that 1.2.0's sizes made dead (every
# size of profileList sets all four), retired with their questions.
_RETIRED_USER_RESOURCES = tuple(load_data("retired_answers.yml")["user_resources_1_2_0"])


@migration("1.2.0")
def sizes_hold_users_cpu_and_memory(hub: Path) -> str | None:
    """1.2.0's sizes (`user_sizes`, profileList) set each user's CPU and
    memory, so the four `user_cpu_*`/`user_memory_*` answers changed nothing
    (issue 29) and their questions are gone. Say which values the hub had, so
    an operator who relied on one moves it into a size, and take them out of
    the answers file (copier would drop them silently)."""
    path = hub / ANSWERS_FILE
    text = path.read_text()
    found = {
        name: m[1].strip()
        for name in _RETIRED_USER_RESOURCES
        if (m := re.search(rf"^{name}:[ \t]*(.*)$", text, flags=re.M))
    }
    if not found:
        return None
    kept = [line for line in text.splitlines(keepends=True) if not line.startswith(tuple(f"{n}:" for n in found))]
    path.write_text("".join(kept))
    values = ", ".join(f"{name} {value}" for name, value in found.items())
    return (
        f"answers {values} retired: every size overrode them; users' CPU and memory are "
        "the sizes' (answer user_sizes, docs/cluster.md)"
    )


# --- entry point -----------------------------------------------------------------


def main(argv: list[str]) -> int:
    stage = os.environ.get("STAGE")
    try:
        version_from = Version(os.environ["VERSION_PEP440_FROM"])
        version_to = Version(os.environ["VERSION_PEP440_TO"])
    except KeyError as missing:
        print(f"migrate: copier did not set {missing}; run it through `copier update`.", file=sys.stderr)
        return 2
    if stage not in ("before", "after"):
        print(f"migrate: unknown stage {stage!r}", file=sys.stderr)
        return 2
    # copier sets it for a `_migrations` entry with a `version` (all of ours).
    current = os.environ.get("VERSION_PEP440_CURRENT")
    only = Version(current) if current else None
    if only is not None and (only, stage) not in registered():
        print(
            f"migrate: copier.yml lists {stage!r} migrations for {only}, which migrations.py does not register; "
            "fix copier.yml's _migrations",
            file=sys.stderr,
        )
        return 2
    for line in run(Path.cwd(), version_from, version_to, cast(Stage, stage), only):
        print(line, file=sys.stderr)
    return 0
