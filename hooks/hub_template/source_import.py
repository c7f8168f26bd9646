"""`hooks/run.py import-source`: build a new hub's `image/` from a repository
of notebooks (`source_repo` at `source_ref`) and/or an existing conda
environment (`environment_file`), right after `copier copy` rendered it.

copier runs it as a task (copier.yml `_tasks`) in the new hub's folder, on
copy only: on update the imported files are the hub's own, and copier keeps
them like any other edit. What it does:

- content: every file of the source commit goes to image/, except VCS and CI
  metadata, what repo2docker reads as configuration (merged below) and what
  cannot be imported safely (reported: submodules, symlinks leaving the
  repository, git-lfs pointers). The source README becomes image/README.md
  under a short header saying where it came from.
- configuration, from `binder/` or `.binder/`, else the root, as repo2docker
  reads it: environment.yml (or requirements.txt) and the environment file
  merged into image/binder/environment.yml (see environment.py); apt.txt
  joined to the hub's; postBuild and start kept, with the hub's own steps
  once; .dask/*.yaml merged under the hub's dask settings;
  jupyterlab-workspace.json replacing the hub's, under the id JupyterLab 4
  imports. A Dockerfile is left out unless `source_keep_dockerfile`.
- the answers file records `source_commit` (and `python_version` when the
  source decided it), written the way copier writes it.

Everything is checked and prepared before the hub is touched; any failure
exits non-zero with one message, and copier then removes the new folder. A
folder that existed is copier's to keep, so a failure there empties it again
when it held nothing before the copy (see `held_nothing_before`), and leaves
it, saying so, when it held anything.

Runs in copier's interpreter: standard library, pyyaml, packaging, ruamel.yaml
(yaml_edit.py, which the README's install line adds beside copier) and git.
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import re
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hub_template import derived, environment, load_data, notebook_scan, rules, url_credentials, yaml_edit
from hub_template.copier_settings import ANSWERS_FILE
from hub_template.git_names import git_dir_layouts
from hub_template.git_source import SourceError, SourceTree, fetch, parse_source
from hub_template.safe_yaml import Unreadable, read_untrusted

WORK = ".hub-template-import"  # scratch space inside the new hub, removed at the end
ENVIRONMENT_FILE_CAP = 5 * 1024 * 1024

# What repo2docker reads in its configuration folder (data/image_build.yml)
# that the import merges into the hub's own (a Dockerfile: keeps or leaves
# out), and the workspace JupyterLab opens; the source's other configuration
# files are copied as they are.
COPIED_CONFIG_FILES = {"runtime.txt", "install.R", "Project.toml"}
CONFIG_FILES: tuple[str, ...] = (
    *(name for name in load_data("image_build.yml")["configuration_files"] if name not in COPIED_CONFIG_FILES),
    "jupyterlab-workspace.json",
)
# Never imported: version control metadata and caches anywhere, CI and tool metadata at the root.
VCS_NAMES = {
    "dask-worker-space",  # dask's scratch space, committed by accident
    ".git",
    ".gitignore",
    ".gitattributes",
    ".gitmodules",
    ".ipynb_checkpoints",
    "__pycache__",
    ".DS_Store",
}
CI_NAMES = {
    ".github", ".gitlab", ".gitlab-ci.yml", ".circleci", ".travis.yml", "azure-pipelines.yml",
    "appveyor.yml", ".pre-commit-config.yaml", ".readthedocs.yml", ".readthedocs.yaml",
    "codecov.yml", ".codecov.yml",
}  # fmt: skip
README = re.compile(r"^readme(\.(md|markdown|rst|txt))?$", re.IGNORECASE)
# The image's files the import merges into, as copier rendered them.
ENVIRONMENT, WORKSPACE, DASK_CONFIG = "binder/environment.yml", "binder/jupyterlab-workspace.json", ".dask/config.yaml"
RENDERED = (ENVIRONMENT, "binder/apt.txt", "binder/postBuild", "binder/start", WORKSPACE, DASK_CONFIG, "README.md")
YAML = (".yaml", ".yml")
# The dask settings that decide how clusters are made: the hub's, whole.
HUB_DASK_KEYS = [("labextension", "factory"), ("gateway",), ("kubernetes",), ("hub-dask",)]


class ImportFailed(Exception):
    """The import cannot go on; the message says why and what to do."""


@dataclass
class ImportPlan:
    """Everything the import will write, prepared before the hub is touched."""

    copies: dict[str, str] = field(default_factory=dict)  # image-relative destination -> source path
    links: dict[str, str] = field(default_factory=dict)  # of copies: destination -> the symlink it was
    texts: dict[str, str] = field(default_factory=dict)  # image-relative destination -> content
    executables: set[str] = field(default_factory=set)
    answers: dict[str, str] = field(default_factory=dict)
    merged: list[str] = field(default_factory=list)
    left_out: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    # The source's commands merged into the hub's scripts, as they will run: file -> lines
    scripts: dict[str, list[str]] = field(default_factory=dict)


# --- entry point -----------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="run.py import-source")
    parser.add_argument("--answers-file", default=ANSWERS_FILE)
    parser.add_argument("--origin-dir", default=".", help="where copier was run: relative paths start there")
    parser.add_argument("--destination-before", help="copier.yml's destination_before, as JSON")
    args = parser.parse_args(argv)
    hub = Path.cwd()
    work = hub / WORK
    try:
        shutil.rmtree(work, ignore_errors=True)
        summary = run(hub, hub / args.answers_file, Path(args.origin_dir), work)
    except (ImportFailed, SourceError, environment.SpecError, yaml_edit.EditError, OSError) as error:
        print(f"\nhub-template could not build the image: {url_credentials.strip(str(error))}", file=sys.stderr)
        print(keep_answers(hub, hub / args.answers_file, Path(args.origin_dir)) + "\n", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
        if held_nothing_before(hub, args.destination_before):
            empty(hub)  # copier removes a folder it made, but keeps one that existed
        else:
            print(f"{hub.name}/ held files before this copy: copier's files are left in it.\n", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
        scrub_credentials(hub, hub / args.answers_file)
    print(url_credentials.strip(summary), file=sys.stderr)
    return 0


def keep_answers(hub: Path, answers_path: Path, origin_dir: Path) -> str:
    """copier removes the hub it made when this task fails, answers and all:
    keep them beside it (credentials removed) and say, from where copier ran,
    how to copy again."""
    try:
        recorded = yaml.safe_load(answers_path.read_text()) or {}
        kept = {key: value for key, value in recorded.items() if not str(key).startswith("_")}
        kept["source_repo"] = url_credentials.strip(str(kept.get("source_repo") or ""))
        kept.pop("source_commit", None)  # the import's result, not an answer
        # Beside the hub (copier removes the hub, never its parent).
        saved = hub.parent / f"{hub.name}.answers.yml"
        saved.write_text(
            "# Answers kept by hub-template after a failed copy: fix the one the error\n"
            "# names, copy again with the command it printed, then delete this file.\n"
            + yaml.safe_dump(kept, sort_keys=False)
        )
    except (OSError, yaml.YAMLError) as error:
        return f"(your answers could not be kept: {error})"
    where = os.path.relpath(hub, origin_dir)
    ref = f" --vcs-ref {recorded['_commit']}" if recorded.get("_commit") else ""
    template = recorded.get("_src_path", "gh:pangeo/hub-template")
    shown = os.path.relpath(saved, origin_dir)
    return (
        f"Your answers are in {shown}: fix it, then run\n"
        f"  copier copy --trust --data-file {shown}{ref} {template} {where}"
    )


def held_nothing_before(hub: Path, before: str | None) -> bool:
    """Whether everything in `hub` is this copy's: copier saw no file in it
    when the questions were answered (copier.yml's destination_before), and
    nothing in it is older than that second. Anything else (no record, a
    file seen then, one folder or file older) keeps everything."""
    try:
        seen = json.loads(before) if before else None
    except ValueError:
        return False
    if not isinstance(seen, dict):
        return False
    since = seen.get("since")
    if not isinstance(since, int) or isinstance(since, bool) or seen.get("files") != 0:
        return False
    for folder, dirs, names in os.walk(hub):
        for name in dirs + names:
            if os.lstat(os.path.join(folder, name)).st_ctime < since:
                return False
    return True


def empty(hub: Path) -> None:
    """Remove everything in `hub` (links themselves, never what they point to)."""
    for entry in hub.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def scrub_credentials(hub: Path, answers_path: Path) -> None:
    """copier rendered source_repo as it was answered, into the answers file
    and the READMEs: with the credentials a URL may carry removed there, no
    file of the hub holds them."""
    try:
        answer = str((yaml.safe_load(answers_path.read_text()) or {}).get("source_repo") or "")
    except (OSError, yaml.YAMLError):
        return
    clean = url_credentials.strip(answer)
    if clean == answer:
        return
    for folder, dirs, names in os.walk(hub):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        for name in names:
            path = Path(folder) / name
            if path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
            if answer.encode() in data:
                path.write_bytes(data.replace(answer.encode(), clean.encode()))


def run(hub: Path, answers_path: Path, origin_dir: Path, work: Path) -> str:
    """Read the source and the freshly rendered image, decide the plan, then write it."""
    yaml_edit.require()  # before anything is fetched or written
    answers = yaml.safe_load(answers_path.read_text())
    versions, providers = load_data("versions.yml"), load_data("providers.yml")
    bucket = derived.scratch_url(providers[answers["cloud_provider"]], str(answers["scratch_bucket"]))
    image = hub / "image"
    rendered = {name: (image / name).read_text() for name in RENDERED}
    owned = rendered_files(image)
    plan = ImportPlan()
    imports: list[environment.Environment] = []
    tree = None
    lines = []
    if answers.get("source_repo"):
        source = parse_source(str(answers["source_repo"]), origin_dir)
        # A recopy fetches the very commit the hub was made from.
        ref = str(answers.get("source_commit") or answers.get("source_ref") or "")
        tree = fetch(source, ref, work / "source", bucket)
        plan, imports = plan_source(tree, rendered, owned, bool(answers.get("source_keep_dockerfile")))
        plan.answers["source_commit"] = tree.commit
        lines.append(f"hub-template imported {source.shown} at commit {tree.commit} into image/:")
    if answers.get("environment_file"):
        imports.append(read_environment_file(str(answers["environment_file"]), origin_dir))
        if imports[-1].builds:  # a `conda env export`: its builds can still make the lock
            plan.notes.append(
                f"environment.yml keeps names and versions only; `hub-template lock {os.path.relpath(hub, origin_dir)} "
                f"--export {answers['environment_file']}` locks the exported builds for linux-64 where the channels "
                "have them (docs/image-lock.md)"
            )
        lines.append(f"hub-template imported the environment {answers['environment_file']}:")
        plan.merged.append(ENVIRONMENT)
    if imports:
        merged = environment.merge(
            rendered[ENVIRONMENT], imports, versions["python_supported"], versions.get("image_base", {})
        )
        plan.texts[ENVIRONMENT] = merged.text
        plan.notes += merged.notes
        if merged.python_version != str(answers["python_version"]):
            plan.answers["python_version"] = merged.python_version
    if tree is not None:
        environment_text = plan.texts.get(ENVIRONMENT, rendered[ENVIRONMENT])
        plan.notes += notebook_report(tree, plan.copies, environment_text, versions.get("image_base", {}))
    write(plan, tree, image, work / "stage")
    record_answers(answers_path, plan.answers)
    lines += [shown(line) for text in _summary(plan) for line in text.split("\n")]
    return "\n".join(lines) + "\n"


def shown(line: str) -> str:
    """A line of the summary with what a terminal would act on written out
    (`\\x1b`, `\\u202e`): the source's script lines cannot hide or reorder
    what the summary says."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in line)


def _summary(plan: ImportPlan) -> list[str]:
    notebooks = sum(1 for d in plan.copies if d.endswith(".ipynb"))
    lines = []
    if plan.copies:
        links = f", {len(plan.links)} of them symlinks, copied as files" if plan.links else ""
        lines.append(f"  copied {len(plan.copies)} files ({notebooks} notebooks{links})")
    if plan.merged:
        lines.append(
            f"  merged with the hub's own (review them before you commit): {', '.join(sorted(set(plan.merged)))}"
        )
    if plan.left_out:
        lines.append(f"  left out: {', '.join(sorted(plan.left_out))}")
    for script, commands in plan.scripts.items():
        when = SCRIPT_RUNS.get(script, "at build time")
        lines.append(f"  image/{script} now runs the source's {len(commands)} command lines {when}:")
        lines += [f"    | {command}" for command in commands]
    warnings = [n for n in plan.notes if n.startswith("warning:")]
    lines += [f"  {n}" for n in warnings] + [f"  note: {n}" for n in plan.notes if n not in warnings]
    return lines


SCRIPT_RUNS = {"binder/start": "in every notebook server and dask worker, with the user's token"}


# --- the source repository -------------------------------------------------------

NOTEBOOK_SCAN_CAP = 5 * 1024 * 1024  # a notebook larger is mostly outputs: not read


def notebook_report(tree: SourceTree, copies: dict[str, str], environment_text: str, base: dict[str, str]) -> list[str]:
    """What the imported notebooks' code cells say will fail: modules that no
    package of the image's environment names, and calls of removed APIs
    (notebook_scan). Warnings, for the summary."""
    env = environment.read_environment(environment_text, ENVIRONMENT)
    packages = [*base, *(spec.name for spec in env.conda), *(spec.name for spec in env.pip)]
    local = notebook_scan.local_modules(copies)
    notebooks = {}
    for destination, path in copies.items():
        entry = tree.files.get(path)
        if destination.endswith(".ipynb") and entry is not None and entry.size <= NOTEBOOK_SCAN_CAP:
            notebooks[destination] = (tree.read(path) or b"").decode("utf-8", errors="replace")
    unnamed, findings = notebook_scan.scan(notebooks, packages, local)
    notes = []
    if unnamed:
        listed = "".join(f"\n    | {module}: {', '.join(names)}" for module, names in sorted(unnamed.items()))
        notes.append(
            "warning: the notebooks import modules no package of image/binder/environment.yml is named after; "
            f"add the packages that provide them, unless another package brings them:{listed}"
        )
    notes += [f"warning: {f.notebook}, cell {f.cell}: {f.what}" for f in findings]
    return notes


def rendered_files(image: Path) -> set[str]:
    """Every file copier rendered into image/ (image-relative, POSIX): the
    hub's own, which the import merges into or leaves alone, never replaces."""
    return {Path(folder, name).relative_to(image).as_posix() for folder, _, names in os.walk(image) for name in names}


def plan_source(
    tree: SourceTree, rendered: dict[str, str], owned: set[str], keep_dockerfile: bool
) -> tuple[ImportPlan, list[environment.Environment]]:
    """What importing `tree` writes into an image rendered as `rendered`
    (image-relative path -> text, of the files merged into; `owned` is every
    file rendered), and the source's environments, for environment.merge.
    Reads the source; writes nothing."""
    if layouts := git_dir_layouts([*tree.files, *tree.links]):
        where = ", ".join(f"{folder}/" if folder else "its root" for folder in layouts)
        raise ImportFailed(
            f"{tree.source.shown} holds a git directory's files (HEAD, objects/, refs/) in {where}: "
            "git run there would obey its config (hooks, fsmonitor). Remove them from the source."
        )
    plan = ImportPlan()
    source = SourceConfig.of(tree)
    _plan_copies(tree, source, plan, owned)
    imports = _source_environments(source, plan)
    _plan_scripts(source, rendered, plan)
    _plan_workspace(source, rendered, plan)
    _plan_dask_config(tree, source, rendered, plan)
    _plan_dockerfile(tree, source, keep_dockerfile, plan)
    plan.texts["README.md"] = _readme_text(tree, source.readme, rendered["README.md"], source.found_text)
    return plan, imports


@dataclass
class SourceConfig:
    """Where repo2docker would find the source's configuration, and its text."""

    tree: SourceTree
    folder: str  # "binder", ".binder" or "" (the root)
    readme: str | None

    @classmethod
    def of(cls, tree: SourceTree) -> SourceConfig:
        return cls(tree, _config_dir(tree), _readme(tree))

    def at(self, name: str) -> str:
        return f"{self.folder}/{name}" if self.folder else name

    def origin(self, path: str) -> str:
        return f"{path} of {self.tree.source.shown}"

    def text(self, path: str) -> str | None:
        content = self.tree.read(path)
        if content is None:
            return None
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError:
            raise ImportFailed(f"{path} of {self.tree.source.shown} is not UTF-8 text.") from None

    def found_text(self, path: str) -> str:
        """The text of a file the tree was seen to hold."""
        content = self.text(path)
        assert content is not None, path
        return content

    def include(self, base: str) -> environment.Include:
        """Reads the files `-r name` names, next to `base` (None if absent)."""
        folder = posixpath.dirname(base)
        return lambda name: self.text(posixpath.normpath(posixpath.join(folder, name)))


def _plan_copies(tree: SourceTree, source: SourceConfig, plan: ImportPlan, owned: set[str]) -> None:
    """The source's files that go to image/ as they are. A symlink to a file
    of the repository becomes a copy of that file: the image holds only
    regular files, so nothing written later into image/ can pass through a link.
    A file the template rendered stays the hub's (compared without case, as
    macOS and Windows compare names)."""
    entries = [(path, path) for path in sorted(tree.files)] + sorted(tree.links.items())
    hubs = {name.casefold(): name for name in owned}
    for path, content in entries:
        placed = _placement(path, source.folder, source.readme)
        if placed.left_out:
            plan.left_out.add(placed.left_out)
        plan.notes += [placed.note] if placed.note else []
        if placed.destination is not None and (own := hubs.get(placed.destination.casefold())):
            plan.notes.append(
                f"warning: {path} left out: image/{own} is the hub's own file (the template renders it), "
                "never replaced by an import"
            )
        elif placed.destination is not None:
            plan.copies[placed.destination] = content
            if content != path:
                plan.links[placed.destination] = path
    plan.notes += tree.skipped


def _source_environments(source: SourceConfig, plan: ImportPlan) -> list[environment.Environment]:
    """The environment, as repo2docker would read it: environment.yml, else requirements.txt."""
    tree = source.tree
    env_path = next((source.at(n) for n in ("environment.yml", "environment.yaml") if tree.resolve(source.at(n))), None)
    requirements = source.at("requirements.txt")
    if env_path:
        if tree.resolve(requirements):
            plan.notes.append(
                f"{requirements}: repo2docker does not read it beside {env_path} (unless its pip: section "
                "says `-r requirements.txt`), so neither does the hub"
            )
        read, path = environment.read_environment, env_path
    elif tree.resolve(requirements):
        read, path = environment.read_requirements, requirements
    else:
        return []
    plan.merged.append(ENVIRONMENT)
    return [read(source.found_text(path), source.origin(path), source.include(path))]


def _plan_scripts(source: SourceConfig, rendered: dict[str, str], plan: ImportPlan) -> None:
    """apt.txt, postBuild and start: the source's joined to the hub's."""
    if (apt := source.text(source.at("apt.txt"))) is not None:
        plan.texts["binder/apt.txt"] = merged_apt = merge_apt(
            rendered["binder/apt.txt"], apt, source.origin(source.at("apt.txt"))
        )
        plan.merged.append("binder/apt.txt")
        if added := [line for line in merged_apt.splitlines() if line not in rendered["binder/apt.txt"].splitlines()]:
            plan.notes.append(f"binder/apt.txt now installs the source's Debian packages: {', '.join(added)}")
    if (post_build := source.text(source.at("postBuild"))) is not None:
        merged, extra, notes, kept = merge_post_build(
            rendered["binder/postBuild"], post_build, source.origin(source.at("postBuild"))
        )
        plan.texts["binder/postBuild"] = merged
        plan.executables.add("binder/postBuild")
        if extra is not None:
            plan.texts["binder/source-postBuild"] = extra
            plan.executables.add("binder/source-postBuild")
            plan.scripts["binder/source-postBuild"] = kept
        else:
            plan.scripts["binder/postBuild"] = kept
        plan.notes += notes
        plan.merged.append("binder/postBuild")
    if (start := source.text(source.at("start"))) is not None:
        merged, notes, kept = merge_start(rendered["binder/start"], start, source.origin(source.at("start")))
        plan.texts["binder/start"] = merged
        plan.executables.add("binder/start")
        plan.scripts["binder/start"] = kept
        plan.notes += notes
        plan.merged.append("binder/start")


def _plan_workspace(source: SourceConfig, rendered: dict[str, str], plan: ImportPlan) -> None:
    """The source's JupyterLab workspace, or the hub's opening the source's first notebook."""
    name = source.at("jupyterlab-workspace.json")
    opened = first_notebook(plan.copies, book_order(source))
    if (workspace := source.text(name)) is not None:
        text, note = workspace_for_jupyterlab4(workspace, source.origin(name))
        plan.notes += [note] if note else []
        text, notes = workspace_in_home(text, in_home(plan.copies), source.origin(name))
        plan.notes += notes
        if opened and not _opens_a_notebook(json.loads(text)):
            plan.notes.append(
                f"{source.origin(name)} opens no notebook: the hub's workspace, opening {opened}, is kept"
            )
        else:
            plan.texts[WORKSPACE] = text
            plan.merged.append(WORKSPACE)
    if opened and WORKSPACE not in plan.texts:
        # No welcome notebook here: JupyterLab opens the source's own.
        plan.texts[WORKSPACE] = workspace_opening(rendered[WORKSPACE], opened)


def _plan_dask_config(tree: SourceTree, source: SourceConfig, rendered: dict[str, str], plan: ImportPlan) -> None:
    """The source's .dask/*.yaml (at the root or in its configuration folder) under the hub's."""
    folders = dict.fromkeys([".dask", source.at(".dask")])
    found = [p for d in folders for p in sorted(tree.files) if posixpath.dirname(p) == d and p.endswith(YAML)]
    if not found:
        return
    configs = [(source.origin(p), _yaml_mapping(source.found_text(p), source.origin(p))) for p in found]
    plan.texts[DASK_CONFIG], notes = merge_dask_config(rendered[DASK_CONFIG], configs)
    plan.notes += notes
    plan.merged.append(DASK_CONFIG)


def _plan_dockerfile(tree: SourceTree, source: SourceConfig, keep: bool, plan: ImportPlan) -> None:
    name = source.at("Dockerfile")
    if (dockerfile := tree.read(name)) is None:
        return
    if keep:
        plan.texts["binder/Dockerfile"] = dockerfile.decode("utf-8", errors="replace")
        plan.notes.append(
            f"warning: {name} kept as image/binder/Dockerfile: repo2docker now builds only "
            "from it and ignores environment.yml, apt.txt, postBuild and start, the hub's dask setup "
            "included. Remove it to build from the merged environment."
        )
    else:
        plan.notes.append(
            f"warning: {name} left out: repo2docker would build only from it and ignore the "
            "environment, postBuild and start the hub needs. Answer source_keep_dockerfile=true to keep it."
        )


def _config_dir(tree: SourceTree) -> str:
    binder, dot_binder = tree.is_dir("binder"), tree.is_dir(".binder")
    if binder and dot_binder:
        raise ImportFailed(
            f"{tree.source.shown} has both binder/ and .binder/, which repo2docker refuses; keep one of them."
        )
    return "binder" if binder else ".binder" if dot_binder else ""


def _readme(tree: SourceTree) -> str | None:
    found = sorted(
        (p for p in tree.files if "/" not in p and README.match(p)),
        key=lambda p: (not p.lower().endswith((".md", ".markdown")), p),
    )
    return found[0] if found else None


@dataclass(frozen=True)
class Placement:
    """Where a source file goes in image/ (None: not copied), and why not."""

    destination: str | None
    left_out: str = ""  # a name the summary lists as left out
    note: str = ""


def _placement(path: str, config: str, readme: str | None) -> Placement:
    parts = path.split("/")
    if vcs := next((part for part in parts if part in VCS_NAMES), None):
        return Placement(None, left_out=vcs)
    if parts[0] in CI_NAMES:
        return Placement(None, left_out=parts[0] + ("/" if len(parts) > 1 else ""))
    if path in ("binder", ".dask"):
        return Placement(None, note=f"{path}: not a folder, where the image needs its own {path}/ folder; left out")
    if config and parts[0] == config:
        rest = "/".join(parts[1:])
        merged = rest in CONFIG_FILES or (rest.startswith(".dask/") and rest.endswith(YAML))
        return Placement(None if merged else f"binder/{rest}")
    if not config and path in CONFIG_FILES:
        return Placement(None)
    if parts[0] == ".dask" and len(parts) == 2 and path.endswith(YAML):
        return Placement(None)
    if path == readme and readme.lower().endswith((".md", ".markdown")):
        return Placement(None)  # becomes README.md, under the provenance header
    return Placement(path)


def _readme_text(tree: SourceTree, readme: str | None, rendered: str, text: Callable[[str], str]) -> str:
    header = (
        f"> Imported by hub-template from {tree.source.shown} at commit `{tree.commit}`\n"
        "> when this hub was created. Users find these files in `~/hub-notebooks`;\n"
        "> `binder/` holds the image's environment, merged with what the hub needs.\n\n"
    )
    if readme and readme.lower().endswith((".md", ".markdown")):
        return header + text(readme)
    return header + rendered


# --- merging the source's configuration into the hub's ---------------------------


def merge_apt(rendered: str, source: str, origin: str) -> str:
    """The hub's apt.txt with the source's packages added (a source version
    pin replaces the hub's line). repo2docker checks only the start of each
    line before putting it in a shell command, so check whole lines here."""
    lines = rendered.splitlines()
    for number, line in enumerate(source.splitlines(), 1):
        package = line.partition("#")[0].strip()
        if not package:
            continue
        if not rules.matches("apt_package", package):
            raise ImportFailed(
                f"{origin}, line {number}: '{package}' is not a Debian package name "
                "(lowercase letters, digits and + . -, optionally =version), one per line."
            )
        name = package.split("=")[0]
        same = [i for i, known in enumerate(lines) if known.strip().split("=")[0] == name]
        if same:
            lines[same[0]] = package
        else:
            lines.append(package)
    return "\n".join(lines) + "\n"


_SHELL = re.compile(r"^#!\s*(/usr)?/bin/(env\s+)?(ba|da)?sh(\s|$)")
_WORKSPACE_IMPORT = re.compile(r"\bjupyter(\s+|-)lab\s+workspaces\s+import\b")
_DASK_INSTALL = re.compile(r"^\s*(cp|install|ln)\b.*\.dask/config\.yaml")
_JUPYTERLAB3 = re.compile(
    r"\bjupyter\s+(labextension\s+install|serverextension\s+enable|nbextension\s+(install|enable))\b"
)


def _body(script: str) -> tuple[str, list[list[str]]]:
    """A script's lines without its shebang, continuations kept together."""
    lines = script.splitlines()
    shebang = lines[0] if lines and lines[0].startswith("#!") else ""
    logical: list[list[str]] = []
    current: list[str] = []
    for line in lines[1:] if shebang else lines:
        current.append(line)
        if not line.endswith("\\"):
            logical.append(current)
            current = []
    if current:
        logical.append(current)
    return shebang, logical


def _commands(lines: list[str]) -> list[str]:
    """The lines of a script that run something (not blank, not only a comment)."""
    return [line for line in lines if line.strip() and not line.strip().startswith("#")]


def merge_post_build(hub: str, source: str, origin: str) -> tuple[str, str | None, list[str], list[str]]:
    """The hub's postBuild followed by the source's commands, in a subshell so
    their shell options, `cd` and `exit` stay theirs and a failure still fails
    the build. A postBuild in another language stays a file of its own.
    What is known to fail on the image is left out, leaving a `:` in its
    place (the line may be all an `if` holds). Returns (postBuild, that other
    file or None, notes, the source's command lines that will run)."""
    shebang, logical = _body(source)
    notes: list[str] = []
    if shebang and not _SHELL.match(shebang):
        block = f"\n# The source repository's postBuild, from {origin}, kept as it was.\n./binder/source-postBuild\n"
        return hub.rstrip("\n") + "\n" + block, source, notes, _commands(logical_lines_of(logical))
    kept: list[str] = []
    for group in logical:
        joined = " ".join(line.rstrip("\\").strip() for line in group)
        indent = group[0][: len(group[0]) - len(group[0].lstrip())]
        if _DASK_INSTALL.search(joined):
            notes.append(f"{origin}: '{joined}' left out: the hub installs the merged .dask/config.yaml itself")
            kept.append(f"{indent}:  # left out by hub-template: the hub installs the merged dask config")
            continue
        if _JUPYTERLAB3.search(joined):
            notes.append(
                f"{origin}: '{joined}' left out: a JupyterLab 3 step, which fails on the image's JupyterLab 4 "
                "(extensions install as conda packages, like dask-labextension in environment.yml)"
            )
            kept.append(f"{indent}:  # left out by hub-template: a JupyterLab 3 step, failing on JupyterLab 4")
            continue
        kept.extend(group)
    body = "\n".join(kept).strip("\n")
    block = (
        f"\n# The source repository's postBuild, from {origin}.\n"
        "# The subshell keeps its shell options, `cd` and `exit` its own; a\n"
        "# failure still fails the build.\n"
        f"(\nset +euo pipefail\n{body}\n)\n"
    )
    return hub.rstrip("\n") + "\n" + block, None, notes, _commands(kept)


def logical_lines_of(logical: list[list[str]]) -> list[str]:
    return [line for group in logical for line in group]


def _without_final_exec(logical: list[list[str]], origin: str) -> list[list[str]]:
    """A start script's logical lines without its last command, which must be
    the final exec of data/rules.yml (the checker's IM008 rule)."""
    commands = [i for i, group in enumerate(logical) if " ".join(group).strip().partition("#")[0]]
    if not commands:
        raise ImportFailed(f'{origin} runs nothing: a start script must end with exec "$@".')
    last = " ".join(logical[commands[-1]]).strip()
    if not rules.matches("final_exec", last):
        raise ImportFailed(f"{origin}: '{last}' is not the final exec \"$@\" start must end with.")
    return logical[: commands[-1]] + logical[commands[-1] + 1 :]


def merge_start(hub: str, source: str, origin: str) -> tuple[str, list[str], list[str]]:
    """The hub's start with the source's commands run first, under bash's
    default options as they were written (exports reach the final exec). The
    hub's workspace import and `exec "$@"` stay the only ones: the source's
    start must end with that final exec too (data/rules.yml), as repo2docker
    requires, and its final exec gives way to the hub's. Returns (start,
    notes, the source's command lines that will run)."""
    shebang, logical = _body(source)
    if shebang and not _SHELL.match(shebang):
        raise ImportFailed(
            f"{origin} runs with '{shebang[2:].strip()}'; hub-template merges shell start scripts only. "
            'Rewrite it in bash (it must end with exec "$@") or remove it from the source.'
        )
    notes: list[str] = []
    kept: list[str] = []
    for group in _without_final_exec(logical, origin):
        joined = " ".join(group)
        if _WORKSPACE_IMPORT.search(joined):
            notes.append(
                f"{origin}: '{joined.strip()}' left out: the hub imports binder/jupyterlab-workspace.json itself"
            )
            continue
        if re.match(r"^\s*(exec|exit)\b", joined):
            notes.append(f"warning: {origin}: '{joined.strip()}' ends start before the hub's own steps run")
        kept.extend(group)
    body = "\n".join(kept).strip("\n")
    lines = hub.splitlines()
    at = lines.index("set -euo pipefail") + 1
    while at < len(lines) and not lines[at].strip():
        at += 1
    block = [
        f"# The source repository's start, from {origin}.",
        "# It runs first, under bash's default options as it was written; its",
        "# exports reach the notebook server and dask workers.",
        "set +euo pipefail",
        *body.splitlines(),
        "set -euo pipefail",
        "",
    ]
    return "\n".join(lines[:at] + block + lines[at:]) + "\n", notes, _commands(body.splitlines())


def first_notebook(destinations: Iterable[str], order: Iterable[str] = ()) -> str | None:
    """The notebook users see first: the first of `order` (a book's table of
    contents) that the image has, else the shallowest in image/, by name
    (hidden folders left out)."""
    notebooks = [
        d for d in destinations if d.endswith(".ipynb") and not any(part.startswith(".") for part in d.split("/"))
    ]
    for entry in order:
        path = posixpath.normpath(entry.strip().lstrip("/"))
        for candidate in (path, f"{path}.ipynb"):
            if candidate in notebooks:
                return candidate
    return min(notebooks, key=lambda d: (d.count("/"), d.lower()), default=None)


# A book's table of contents at the repository's root: MyST's and Jupyter Book's.
BOOK_TOCS = ("myst.yml", "_toc.yml")


def book_order(source: SourceConfig) -> list[str]:
    """The files a book's table of contents names (`file:`, and `root:` of
    Jupyter Book's _toc.yml), in the reader's order; none if unreadable."""
    for name in BOOK_TOCS:
        text = source.text(name) if source.tree.resolve(name) else None
        if text is None:
            continue
        try:
            toc = read_untrusted(text, source.origin(name), "a table of contents")
        except Unreadable:
            return []
        return list(_toc_files(toc))
    return []


def _toc_files(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("file", "root") and isinstance(value, str):
                yield value
            else:
                yield from _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            yield from _toc_files(item)


def workspace_opening(text: str, notebook: str) -> str:
    """The hub's workspace (binder/jupyterlab-workspace.json) with ``notebook``
    (image-relative; start copies image/ to ~/hub-notebooks) open in the
    main area's first tab area."""
    workspace = json.loads(text)
    key, path = f"notebook:hub-notebooks/{notebook}", f"hub-notebooks/{notebook}"
    area = workspace["data"]["layout-restorer:data"]["main"]["dock"]["children"][0]
    area["widgets"], area["currentIndex"] = [key], 0
    workspace["data"][key] = {"data": {"path": path, "factory": "Notebook"}}
    return json.dumps(workspace, indent=2) + "\n"


HOME_FOLDER = "hub-notebooks"  # where start copies image/ in users' homes (binder/start)


def in_home(destinations: Iterable[str]) -> set[str]:
    """The image's files start copies into ~/hub-notebooks: not binder/,
    not a hidden entry of image/, not README.md (binder/start's find)."""
    return {d for d in destinations if not d.startswith(("binder/", ".")) and d != "README.md"}


def _opens_a_notebook(workspace: dict[str, Any]) -> bool:
    return any(key.startswith("notebook:") for key in _main_widgets(workspace))


def _main_widgets(workspace: dict[str, Any]) -> list[str]:
    layout = workspace.get("data", {}).get("layout-restorer:data", {})
    found: list[str] = []

    def walk(area: Any) -> None:
        if isinstance(area, dict):
            widgets, children = area.get("widgets"), area.get("children")
            if isinstance(widgets, list):
                found.extend(w for w in widgets if isinstance(w, str))
            for child in children if isinstance(children, list) else []:
                walk(child)

    walk(
        layout.get("main", {}).get("dock")
        if isinstance(layout, dict) and isinstance(layout.get("main"), dict)
        else None
    )
    return found


def workspace_in_home(text: str, files: set[str], origin: str) -> tuple[str, list[str]]:
    """The source's workspace naming files where the image puts them: a
    binder opened the repository as the home folder, the hub copies it to
    ~/hub-notebooks. A widget of a file the image does not have, and the dask
    panel's saved dashboard URL (a binder's, or a placeholder its start filled
    in), are left out: the panel finds each cluster's dashboard itself."""
    workspace = json.loads(text)
    data: dict[str, Any] = workspace.setdefault("data", {})
    notes: list[str] = []
    renamed: dict[str, str | None] = {}
    for key in list(data):
        kind, sep, _ = key.partition(":")
        value = data[key]
        if kind == "dask-dashboard-launcher" and not sep:
            if isinstance(value, dict) and "url" in value:
                notes.append(
                    f"{origin}: the dask panel's saved URL '{value['url']}' left out: the panel finds each cluster's dashboard"
                )
                value.pop("url")
            continue
        inner = value.get("data") if isinstance(value, dict) else None
        if not (sep and isinstance(inner, dict) and isinstance(inner.get("path"), str)):
            continue
        file = posixpath.normpath(inner["path"].lstrip("/"))
        if file in files:
            inner["path"] = f"{HOME_FOLDER}/{file}"
            renamed[key] = f"{kind}:{HOME_FOLDER}/{file}"
        else:
            renamed[key] = None
            notes.append(f"{origin}: {key} left out: the image has no {file} in ~/{HOME_FOLDER}")
    for old, new in renamed.items():
        value = data.pop(old)
        if new is not None:
            data[new] = value
    browser = data.get("file-browser-filebrowser:cwd")
    if isinstance(browser, dict) and isinstance(browser.get("path"), str):
        cwd = posixpath.normpath(browser["path"].strip("/") or ".")
        browser["path"] = HOME_FOLDER if cwd == "." else f"{HOME_FOLDER}/{cwd}"

    def rename(area: Any) -> None:
        if isinstance(area, dict):
            if isinstance(area.get("widgets"), list):
                area["widgets"] = [renamed.get(w, w) for w in area["widgets"] if renamed.get(w, w) is not None]
                index = area.get("currentIndex")
                index = index if isinstance(index, int) and not isinstance(index, bool) else 0
                area["currentIndex"] = max(min(index, len(area["widgets"]) - 1), 0)
            for child in area.values():
                if isinstance(child, (dict, list)):
                    rename(child)
        elif isinstance(area, list):
            for child in area:
                rename(child)

    rename(data.get("layout-restorer:data"))
    return json.dumps(workspace, indent=2) + "\n", notes


def workspace_for_jupyterlab4(text: str, origin: str) -> tuple[str, str | None]:
    """The source workspace with metadata.id "default": JupyterLab 4 imports
    a workspace only under the name it is imported as."""
    try:
        workspace = json.loads(text)
    except json.JSONDecodeError as error:
        raise ImportFailed(f"{origin} is not valid JSON (line {error.lineno}: {error.msg}).") from None
    if not isinstance(workspace, dict) or not isinstance(workspace.get("data", {}), dict):
        raise ImportFailed(f"{origin} is not a JupyterLab workspace (an object with `data` and `metadata`).")
    metadata = workspace.setdefault("metadata", {})
    old = metadata.get("id")
    metadata["id"] = "default"
    note = (
        f"{origin}: metadata.id '{old}' is now 'default', the id JupyterLab 4 imports"
        if old not in (None, "default")
        else None
    )
    return json.dumps(workspace, indent=2) + "\n", note


def _yaml_mapping(text: str, origin: str) -> dict[str, Any]:
    try:
        data = read_untrusted(text, origin, "a dask configuration")
    except Unreadable as error:
        raise ImportFailed(f"{error}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ImportFailed(f"{origin} is not a dask configuration (a mapping of settings).")
    return data


def merge_dask_config(hub_text: str, sources: list[tuple[str, dict[str, Any]]]) -> tuple[str, list[str]]:
    """The hub's .dask/config.yaml with the source's settings added under it:
    the hub's values win, and the settings that decide how clusters are made
    (HUB_DASK_KEYS) are the hub's whole. The hub's text stays as written
    (yaml_edit); each addition comes with a comment saying where from."""
    document = yaml_edit.load(hub_text, "image/.dask/config.yaml") or yaml_edit.block({})
    notes: list[str] = []
    additions: dict[str, Any] = {}
    for origin, config in sources:
        _deep_update(additions, _additions(document, config, (), origin, notes))
    _add_settings(document, additions, top=True)
    return yaml_edit.dump(document), notes


def _additions(
    hub: dict[str, Any], source: dict[str, Any], path: tuple[str, ...], origin: str, notes: list[str]
) -> dict[str, Any]:
    found = {}
    for key, value in source.items():
        where = (*path, key)
        dotted = ".".join(map(str, where))
        if where in HUB_DASK_KEYS and key not in hub:
            # e.g. gateway.* in a kubernetes hub: how clusters are made is the hub's decision
            notes.append(f"{origin}: {dotted} left out: the hub's dask backend decides how clusters are made")
        elif key not in hub:
            found[key] = value
        elif where in HUB_DASK_KEYS or not (isinstance(hub[key], dict) and isinstance(value, dict)):
            if hub[key] != value:
                notes.append(f"{origin}: {dotted} left out, the hub's own setting is kept")
        elif sub := _additions(hub[key], value, where, origin, notes):
            found[key] = sub
    return found


def _deep_update(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(base.get(key), dict) and isinstance(value, dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
    return base


def _add_settings(config: Any, additions: dict[str, Any], top: bool = False) -> None:
    """Add `additions` into the round-trip mapping `config`: into the
    hub's own blocks where they nest, else as new keys at the block's end."""
    for key, value in additions.items():
        if isinstance(config.get(key), dict) and isinstance(value, dict):
            _add_settings(config[key], value)
        else:
            comment = "\nImported from the source repository." if top else "Imported from the source repository."
            yaml_edit.append(config, value, key=key, comment=comment)


# --- the environment file ----------------------------------------------------------


def read_environment_file(answer: str, origin_dir: Path) -> environment.Environment:
    """The environment_file answer: a path (relative to where copier ran) to
    an environment.yml or `conda env export` output, or a requirements.txt."""
    path = Path(os.path.expanduser(answer))
    path = path if path.is_absolute() else origin_dir / path
    if not path.is_file():
        raise ImportFailed(
            f"environment_file '{answer}': there is no file {path} (a relative path is relative to where you ran copier)."
        )
    if path.stat().st_size > ENVIRONMENT_FILE_CAP:
        raise ImportFailed(
            f"environment_file '{answer}' is larger than {ENVIRONMENT_FILE_CAP // 2**20} MB; it is not an environment file."
        )
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ImportFailed(f"environment_file '{answer}' is not UTF-8 text.") from None
    if path.suffix == ".txt" and environment.is_conda_list(content):
        return environment.read_conda_list(content, answer)
    if path.suffix == ".txt":
        return environment.read_requirements(content, answer)
    return environment.read_environment(content, answer)


# --- writing -------------------------------------------------------------------------


def write(plan: ImportPlan, tree: SourceTree | None, image: Path, stage: Path) -> None:
    """Write the plan into image/: the source's files first go to `stage`
    (git may still fail there), then everything moves into place. Every
    destination is checked first: none is, or passes through, a symlink."""
    for destination in (*plan.copies, *plan.texts):
        _checked_destination(image, destination)
    if tree is not None:
        staged = {destination: stage / destination for destination in plan.copies}
        lfs = set(tree.export([(path, staged[d]) for d, path in plan.copies.items()]))
        for path in sorted(lfs):
            plan.notes.append(f"{path}: a git-lfs pointer; the data it points to is not imported")
        for destination, path in plan.copies.items():
            if path in lfs:
                continue
            target = _checked_destination(image, destination, create=True)
            if os.path.lexists(target):  # plan_source left out the hub's own files: this is a bug
                raise ImportFailed(f"image/{destination} exists; the import never replaces a file of the hub.")
            os.replace(staged[destination], target)
    for destination, content in plan.texts.items():
        target = _checked_destination(image, destination, create=True)
        mode = 0o755 if destination in plan.executables else 0o644
        if target.is_file():
            target.unlink()  # a file copier rendered: written anew, never opened through anything
        with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode), "w") as out:
            if destination in plan.executables:
                os.fchmod(out.fileno(), mode)
            out.write(content)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _checked_destination(image: Path, destination: str, create: bool = False) -> Path:
    """image/destination, after checking that neither it nor a folder on
    the way is a symlink or something else than a folder (creating the
    folders when `create`)."""
    parts = destination.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ImportFailed(f"{destination}: not a path inside image/; nothing was written there.")
    here = image
    for part in parts[:-1]:
        here = here / part
        if here.is_symlink() or (here.exists() and not here.is_dir()):
            raise ImportFailed(f"image/{destination}: image/{here.relative_to(image)} is not a folder.")
        if create and not here.exists():
            here.mkdir()
    target = here / parts[-1]
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise ImportFailed(f"image/{destination} exists and is not a file; nothing was written there.")
    return target


def _nice_yaml(data: dict[str, Any]) -> str:
    """What copier's `to_nice_yaml` filter writes (jinja2-ansible-filters)."""
    return yaml.dump(data, indent=4, allow_unicode=True, default_flow_style=False)


def record_answers(path: Path, updates: dict[str, str]) -> None:
    """Set answers in the answers file exactly as copier would have written
    them, so a later `copier update` sees no change in it."""
    if not updates:
        return
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    head = "".join(lines[: next(i for i, line in enumerate(lines) if not line.startswith("#"))])
    body = text[len(head) :]
    data = yaml.safe_load(body)
    if _nice_yaml(data) != body:
        raise ImportFailed(
            f"{path.name} is not written the way copier writes it; hub-template cannot record {', '.join(updates)} in it."
        )
    data.update(updates)
    path.write_text(head + _nice_yaml(data))
