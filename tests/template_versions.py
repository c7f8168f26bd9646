"""The template as it evolves: three releases in one real git repository, and
hubs rendered from them inside a federation repository.

- v1.0.0 asked `provider` (the exact inverse of the 1.1.0 migration);
- v1.1.0 is the current template with 1.1.0's hubploy.yaml (hubploy 0.4's
  schema), its cloud key stub in secrets/ (tests/data/v1.1.0), its looser
  pip grammar (`s3fs~=2024`), and without the login questions 1.2.0 added
  whose defaults are stand-ins (`gcp_workload_identity_provider`, Azure's ids);
- v1.2.0 is the current template plus what a maintainer would change next:
  a helm value (how often the culler looks), a pinned version (dask-labextension
  capped below 8) and a better starter notebook.

Tests never read this repository's own tags: CI clones may lack them.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from conftest import ROOT, TEMPLATE_PARTS, git, publish_template
from copier import run_copy

ANSWERS = ".copier-answers.yml"

# v1.2.0's changes, each an (old, new) edit of one file of the current template.
CULL_MAX_AGE = "      maxAge: {{ normal.cull_max_age_hours * 3600 }}\n"
CULL_BLOCK = "      # Look for idle servers every 5 minutes, not 10.\n      every: 300\n"
V1_2_0_EDITS = {
    "template/config/common.yaml.jinja": (CULL_MAX_AGE, CULL_MAX_AGE + CULL_BLOCK),
    "hooks/hub_template/data/versions.yml": ('dask_labextension: ">=7"', 'dask_labextension: ">=7,<8"'),
    "template/image/{% if not source_repo %}welcome.ipynb{% endif %}.jinja": (
        "This notebook starts a dask cluster,",
        "This notebook starts a dask cluster in seconds,",
    ),
}


def _copy_current(dst: Path) -> Path:
    dst.mkdir(parents=True)
    for part in TEMPLATE_PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dst / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dst / part)
    return dst


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    # A loud failure if the current template moved on: the fixture must
    # really publish a different version.
    assert old in text, f"{path}: {old!r} not found; update tests/template_versions.py"
    path.write_text(text.replace(old, new, 1))


V1_1_0_FILES = ROOT / "tests" / "data" / "v1.1.0"


def v1_1_0_source(dst: Path) -> Path:
    """The current template with 1.1.0's files for hubploy 0.4 laid over it."""
    _copy_current(dst)
    for path in V1_1_0_FILES.rglob("*"):
        if path.is_file() and path.name != "README.md":
            shutil.copy2(path, dst / path.relative_to(V1_1_0_FILES))
    # 1.1.0's provider facts, beside those the current copier.yml asks more of
    # (the cluster's machines, pools and identity: 1.2.0 added them).
    import yaml

    facts = dst / "hooks" / "hub_template" / "data" / "providers.yml"
    current = yaml.safe_load((ROOT / "hooks" / "hub_template" / "data" / "providers.yml").read_text())
    old = yaml.safe_load(facts.read_text())
    facts.write_text(yaml.safe_dump({name: {**current[name], **old[name]} for name in old}))
    # 1.1.0's versions, beside those the current copier.yml reads more of
    # (pangeo_images: the images users choose, 1.2.0's user_images).
    pins = dst / "hooks" / "hub_template" / "data" / "versions.yml"
    if pins.exists():
        now = yaml.safe_load((ROOT / "hooks" / "hub_template" / "data" / "versions.yml").read_text())
        pins.write_text(yaml.safe_dump({**now, **yaml.safe_load(pins.read_text())}))
    # 1.1.0's looser pip grammar: it took `s3fs~=2024`, which later releases
    # refuse (PEP 440 wants two parts after ~=); issue 29's lost answer.
    rules = dst / "hooks" / "hub_template" / "data" / "rules.yml"
    line = next(line for line in rules.read_text().splitlines() if line.startswith("pip_requirement: "))
    _edit(rules, line, "pip_requirement: '[A-Za-z0-9][^,]*'")
    _as_1_1_0_questions(dst / "copier.yml")
    _without_login_questions(dst / "copier.yml")
    return dst


# 1.1.0 asked amounts as numbers (copier cast them, its templates did
# arithmetic on them) and the users' CPU and memory, which 1.1.0's
# common.yaml renders; 1.2.0 read amounts as typed and retired those four.
V1_1_0_NUMBERS = {
    "user_storage": "int",
    "worker_cores": "float",
    "worker_memory": "float",
    "worker_cores_max": "float",
    "worker_memory_max": "float",
    "cluster_max_cores": "float",
    "cluster_max_memory": "float",
    "idle_timeout_minutes": "int",
    "max_users": "int",
    "dask_clusters_per_user": "int",
    "cull_idle_minutes": "int",
    "cull_max_age_hours": "int",
    "cull_kernel_minutes": "int",
    "shared_folder_size": "int",
}
V1_1_0_USER_RESOURCES = """
user_cpu_guarantee:
  type: float
  when: "{{ kind == 'hub' }}"
  help: CPU cores each user is guaranteed.
  default: 0.5
user_cpu_limit:
  type: float
  when: "{{ kind == 'hub' }}"
  help: CPU cores each user may use at most (at least the guarantee).
  default: "{{ [user_cpu_guarantee, 2] | max }}"
user_memory_guarantee:
  type: float
  when: "{{ kind == 'hub' }}"
  help: Memory each user is guaranteed, in GB.
  default: 2
user_memory_limit:
  type: float
  when: "{{ kind == 'hub' }}"
  help: Memory each user may use at most, in GB (at least the guarantee).
  default: "{{ [user_memory_guarantee, 8] | max }}"
"""


def _as_1_1_0_questions(copier_yml: Path) -> None:
    text = copier_yml.read_text()
    for name, kind in V1_1_0_NUMBERS.items():
        text, count = re.subn(rf"(?m)^({name}:\n  type: )str$", rf"\g<1>{kind}", text)
        assert count == 1, f"copier.yml's {name} is no longer a str question; update tests/template_versions.py"
    copier_yml.write_text(text.rstrip("\n") + "\n" + V1_1_0_USER_RESOURCES)
    # answers.jinja lists the questions, for the --data name check.
    macros = copier_yml.parent / "hooks" / "hub_template" / "jinja" / "answers.jinja"
    names = ", ".join(
        f'"{name}"' for name in ("user_cpu_guarantee", "user_cpu_limit", "user_memory_guarantee", "user_memory_limit")
    )
    macros.write_text(macros.read_text().replace('"destination_before"\n]', f'"destination_before", {names}\n]'))


# 1.2.0 added CI's keyless login; these of its questions have stand-ins for
# defaults, which an update across 1.2.0 records (tests/test_update.py).
LOGIN_STAND_INS = ("gcp_workload_identity_provider", "azure_client_id", "azure_tenant_id", "azure_subscription_id")


def _without_login_questions(copier_yml: Path) -> None:
    text = copier_yml.read_text()
    for name in LOGIN_STAND_INS:
        text, count = re.subn(rf"(?ms)^{name}:\n.*?\n\n", "", text)
        assert count == 1, f"copier.yml has no question {name}; update tests/template_versions.py"
    copier_yml.write_text(text)


def v1_0_0_source(dst: Path) -> Path:
    """v1.1.0 with the answer named `provider` again: every `cloud_provider`
    token of copier.yml and template/ (hubploy.yaml's own `provider:` keys
    are other words and stay)."""
    v1_1_0_source(dst)
    # answers.jinja lists the questions, for the --data name check.
    files = [
        dst / "copier.yml",
        dst / "hooks" / "hub_template" / "jinja" / "answers.jinja",
        *(p for p in (dst / "template").rglob("*") if p.is_file()),
    ]
    renamed = 0
    for path in files:
        text = path.read_text()
        new, count = re.subn(r"\bcloud_provider\b", "provider", text)
        if count:
            path.write_text(new)
            renamed += count
    assert renamed, "the current template no longer uses cloud_provider"
    return dst


def v1_2_0_source(dst: Path) -> Path:
    _copy_current(dst)
    for relpath, (old, new) in V1_2_0_EDITS.items():
        _edit(dst / relpath, old, new)
    return dst


def publish_versions(repo: Path, scratch: Path) -> Path:
    """A template repository tagged v1.0.0, v1.1.0 and v1.2.0, in that order."""
    publish_template(repo, "v1.0.0", source=v1_0_0_source(scratch / "v1.0.0"))
    publish_template(repo, "v1.1.0", source=v1_1_0_source(scratch / "v1.1.0"))
    publish_template(repo, "v1.2.0", source=v1_2_0_source(scratch / "v1.2.0"))
    return repo


# A fork of the template whose release 1.2.1 has a bug a maintainer could
# make: an "after" migration that reads a file hubs do not have. Its update
# fails once the new version is fully rendered, with a file it created.
BROKEN_MIGRATION = '''

@migration("1.2.1", stage="after")
def move_cull_settings(hub: Path) -> str | None:
    """Moves the culler's settings out of config/common.yaml (buggy)."""
    return (hub / "config" / "cull.yaml").read_text()
'''


BROKEN_MIGRATION_ENTRY = """  - version: "1.2.1"
    command: ["{{ _copier_python }}", "{{ _copier_conf.src_path }}/hooks/run.py", "migrate"]
    when: "{{ _stage == 'after' }}"
"""


def publish_fork(repo: Path, fork: Path, scratch: Path) -> Path:
    """A clone of the template repository with a broken release v1.2.1."""
    git(fork.parent, "clone", "-q", str(repo), fork.name)
    source = v1_2_0_source(scratch / "v1.2.1")
    with (source / "hooks" / "hub_template" / "migrations.py").open("a") as module:
        module.write(BROKEN_MIGRATION)
    # ...and lists it in copier.yml, as a maintainer must for copier to run it.
    _edit(
        source / "copier.yml",
        "\n# Once, when the hub is created",
        BROKEN_MIGRATION_ENTRY + "\n# Once, when the hub is created",
    )
    (source / "template" / "docs").mkdir()
    (source / "template" / "docs" / "cull.md.jinja").write_text("# How {{ hub_name }} stops idle servers\n")
    return publish_template(fork, "v1.2.1", source=source)


# --- a federation repository and its hubs ---------------------------------------


def federation(path: Path, template: Path | str | None = None) -> Path:
    """An empty federation repository with a first commit; pinned to
    `template` as a rendered federation is (copier-settings.yml's `trust:`),
    so that `hub-template update` knows which template it trusts."""
    path.mkdir(parents=True)
    git(path, "init", "-q")
    (path / "README.md").write_text("# A Pangeo federation\n")
    if template is not None:
        (path / "copier-settings.yml").write_text(f"trust:\n  - {json.dumps(str(template))}\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "federation")
    return path


def bare_remote(template: Path, remote: Path) -> str:
    """A bare clone of the template repository at ``remote``; returns its
    file:// URL, through which copier fetches with git's transport, as it
    would from GitHub."""
    git(template, "clone", "-q", "--bare", str(template), str(remote))
    return remote.as_uri()


def make_hub(template: Path | str, fed: Path, name: str, tag: str, **data) -> Path:
    """Render deployments/<name> from the template at `tag` and commit it."""
    hub = fed / "deployments" / name
    run_copy(str(template), str(hub), data=data, vcs_ref=tag, defaults=True, unsafe=True, quiet=True)
    commit(fed, f"Add hub {name} from hub-template {tag}")
    return hub


def commit(fed: Path, message: str) -> None:
    git(fed, "add", "-A")
    git(fed, "commit", "-q", "-m", message)


def edit_without_committing(hub: Path) -> None:
    """A change the hub's operators have not committed yet: the hub is dirty."""
    prod = hub / "config" / "prod.yaml"
    prod.write_text(prod.read_text() + "# work in progress\n")


def edit_like_a_user(hub: Path) -> dict[str, str]:
    """What a hub's operators change after the first render: a helm value, a
    package, their own notebook and the starter one, the real secrets. Returns
    the lines (or file texts) an update must keep."""
    common = hub / "config" / "common.yaml"
    text = common.read_text()
    assert "capacity: 10Gi" in text
    common.write_text(text.replace("capacity: 10Gi", "capacity: 50Gi"))

    env = hub / "image" / "binder" / "environment.yml"
    env.write_text(env.read_text().rstrip("\n") + "\n  - cartopy\n")

    notebook = hub / "image" / "analysis.ipynb"
    notebook.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n')
    welcome = hub / "image" / "welcome.ipynb"
    welcome.write_text(welcome.read_text().replace("Welcome to", "Welcome, oceanographers, to"))

    secrets = hub / "secrets" / "staging.yaml"
    secrets.write_text(re.sub(r'client_secret: ".*"', 'client_secret: "0123456789abcdef"', secrets.read_text()))
    return {
        "config/common.yaml": "capacity: 50Gi",
        "image/binder/environment.yml": "  - cartopy\n",
        "image/welcome.ipynb": "Welcome, oceanographers, to",
        "secrets/staging.yaml": 'client_secret: "0123456789abcdef"',
    }


def clash_with_v1_2_0(hub: Path) -> None:
    """Edit the very line v1.2.0 changes (the dask-labextension pin)."""
    env = hub / "image" / "binder" / "environment.yml"
    text = env.read_text()
    assert "  - dask-labextension>=7\n" in text
    env.write_text(text.replace("  - dask-labextension>=7\n", "  - dask-labextension>=7.2\n"))


def answers(hub: Path) -> dict:
    import yaml

    return yaml.safe_load((hub / ANSWERS).read_text())


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (outside .git), by relative path."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(folder).parts
    }
