"""Template sources: each fetched once into a bare mirror that copier's git
is sent to, how far behind a hub is, and which template the federation
trusts (an update runs its tasks and migrations)."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from packaging.version import InvalidVersion, Version

from .. import git_runner
from ..safe_yaml import load_untrusted
from .hubs import FederationHub

# copier's shortcuts for hosted repositories (copier's docs, "Templates").
SHORTCUTS = {"gh:": "https://github.com/", "gl:": "https://gitlab.com/"}


def commit_version(commit: str | None) -> Version | None:
    """The PEP 440 version copier gives a `_commit`: a tag like `v1.2.0`, or
    `v1.2.0-3-gabc1234` for a commit after it (copier's own reading)."""
    if not commit:
        return None
    if re.fullmatch(r"[0-9a-f]{7,40}", commit):
        return None  # a bare commit (`git describe --always`), even one of digits only, as 4104802 may be
    with contextlib.suppress(InvalidVersion):
        return Version(commit)
    match = re.fullmatch(r"(.+)-(\d+)-g([0-9a-f]+)", commit)
    if match:
        with contextlib.suppress(InvalidVersion):
            return Version(f"{match[1]}.post{match[2]}+g{match[3]}")
    return None


# --- which template is trusted ---------------------------------------------------

# The federation's settings file, at its root beside deployments/: the hub
# defaults copier offers, and copier's own `trust:` list, the templates whose
# tasks copier runs. The first one listed is the federation's template.
SETTINGS_FILE = "copier-settings.yml"


def same_template(a: str, b: str) -> bool:
    return git_url(a) == git_url(b)


def pinned(deployments: Path, named: str | None) -> tuple[str | None, str | None]:
    """The federation's template, as `--template` names it, else as the
    first entry of copier-settings.yml's `trust:`; or an error saying how
    to name it. Never what a hub's answers say: those are the hub's files,
    and an update runs the template's tasks."""
    if named:
        return named, None
    settings = deployments.resolve().parent / SETTINGS_FILE
    how = (
        f"name the federation's template with --template SRC, or list it under `trust:` in {settings} "
        "(copier's own setting, e.g. `trust: [gh:pangeo/hub-template]`)"
    )
    if not settings.is_file():
        return None, f"the federation pins no template: {how}"
    try:
        data = load_untrusted(settings.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError) as error:
        return None, f"{settings} is not readable YAML ({str(error).splitlines()[0]}): {how}"
    trust = data.get("trust") if isinstance(data, dict) else None
    if not (isinstance(trust, list) and trust and isinstance(trust[0], str) and trust[0]):
        return None, f"{settings} lists no template under `trust:`: {how}"
    return trust[0], None


def refusal(hub: FederationHub, federation_template: str | None, allowed: list[str]) -> str | None:
    if hub.problem or not hub.src or federation_template is None:
        return None
    if same_template(hub.src, federation_template) or any(same_template(hub.src, a) for a in allowed):
        return None
    return (
        f"its template {hub.src} is not the federation's ({federation_template}); "
        f"--allow-template {hub.src} runs its tasks"
    )


# --- template sources: one mirror each ---------------------------------------------


def git_url(src: str) -> str:
    """The URL git is given for `src`, expanded as copier expands it."""
    for short, base in SHORTCUTS.items():
        if src.startswith(short):
            src = base + src[len(short) :].lstrip("/")
            return src if src.endswith(".git") else src + ".git"
    if src.startswith("git+"):
        return src[4:]
    if src.startswith(tuple(SHORTCUTS.values())) and not src.endswith(".git"):
        return src + ".git"
    if Path(src).expanduser().exists():
        return str(Path(src).expanduser().resolve())
    return src


def is_local(src: str) -> bool:
    return Path(src).expanduser().exists()


@dataclass
class TemplateSource:
    """A template source, fetched once into a bare mirror."""

    src: str
    mirror: Path | None = None
    error: str | None = None
    newest: str | None = None  # the tag (or commit, or --vcs-ref's description) hubs go to
    # commit_of's answers: a federation's hubs mostly name the same few commits.
    _commits: dict[str, str | None] = field(default_factory=dict, repr=False)
    _files: dict[str, str | None] = field(default_factory=dict, repr=False)  # show's answers

    def fetch(self, into: Path, vcs_ref: str | None) -> None:
        done = git_runner.run("clone", "--mirror", "--quiet", "--", git_url(self.src), str(into), text=True)
        if done.returncode:
            lines = done.stderr.strip().splitlines() or ["git clone failed"]
            reason = next((line for line in lines if line.startswith("fatal:")), lines[-1])
            self.error = f"cannot read the template {self.src}: {reason}"
            return
        self.mirror = into
        # With no release tag copier takes the default branch's last commit.
        self.newest = describe(into, vcs_ref or "HEAD") if vcs_ref else newest_tag(into) or describe(into, "HEAD")
        if self.newest is None:
            self.error = (
                f"the template {self.src} has no commit"
                if not vcs_ref
                else f"the template {self.src} has no {vcs_ref!r}"
            )

    def rewrites(self) -> list[tuple[str, str]]:
        """`url.<mirror>.insteadOf` pairs sending git to the mirror for this
        source. Local sources are read in place (git rewrites URLs, not paths
        it can open)."""
        if self.mirror is None or is_local(self.src):
            return []
        urls = {self.src, git_url(self.src)}
        return [(f"url.{self.mirror.as_uri()}.insteadOf", url) for url in sorted(urls)]

    def commit_of(self, version: str) -> str | None:
        """The commit a `_commit` names: a tag, a hash, or `tag-N-gHASH`."""
        if version not in self._commits:
            self._commits[version] = self._rev_parse(version)
        return self._commits[version]

    def _rev_parse(self, version: str) -> str | None:
        match = re.fullmatch(r".+-\d+-g([0-9a-f]+)", version)
        ref = match[1] if match else version
        assert self.mirror is not None
        done = git_runner.bare(self.mirror).run(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", text=True
        )
        return done.stdout.strip() if done.returncode == 0 else None

    def show(self, version: str, path: str) -> str | None:
        """A file of the template at `version` (a `_commit`), or None."""
        key = f"{version}:{path}"
        if key not in self._files:
            commit = self.commit_of(version) if self.mirror is not None else None
            done = (
                git_runner.bare(self.mirror).run("show", "--end-of-options", f"{commit}:{path}", text=True)
                if commit and self.mirror is not None
                else None
            )
            self._files[key] = done.stdout if done is not None and done.returncode == 0 else None
        return self._files[key]

    def is_behind(self, commit: str) -> bool | None:
        """Whether a hub at `commit` is behind `newest`; None when that
        cannot be told. Release versions compare as versions; anything else
        (an untagged template, a hash) as commits: a hub is behind unless it
        is at `newest` or after it."""
        before, newest = commit_version(commit), commit_version(self.newest)
        if before is not None and newest is not None:
            return before < newest
        if self.mirror is None or self.newest is None:
            return None
        mine, theirs = self.commit_of(commit), self.commit_of(self.newest)
        if mine is None or theirs is None:
            return None
        if mine == theirs:
            return False
        ancestor = git_runner.bare(self.mirror).run("merge-base", "--is-ancestor", theirs, mine)
        return ancestor.returncode != 0


def newest_tag(mirror: Path) -> str | None:
    """The highest PEP 440 release tag, as copier picks it (no pre-releases)."""
    tags = git_runner.bare(mirror).out("tag", "--list").split()
    versions = {}
    for tag in tags:
        with contextlib.suppress(InvalidVersion):
            version = Version(tag)
            if not version.is_prerelease:
                versions[version] = tag
    return versions[max(versions)] if versions else None


def describe(mirror: Path, ref: str) -> str | None:
    done = git_runner.bare(mirror).run("describe", "--tags", "--always", "--end-of-options", ref, text=True)
    return done.stdout.strip() if done.returncode == 0 else None
