"""Secrets: nothing secret reaches git in clear.

A file under secrets/ is safe when it is encrypted (git-crypt's output, or
sops metadata), when git-crypt will encrypt it on commit (the repository is
unlocked and its rule covers the file), or while every value in it is still
one of the template's placeholders (encryption.PLACEHOLDER): one real value
beside a placeholder is a secret in clear. Values are never echoed: a
finding names the file, the line and the key only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..copier_settings import ANSWERS_FILE
from ..helm_values import Problem
from ..safe_yaml import compose_bounded, load_bounded
from .base import Secrets, Skip, code, report
from .credential_scan import credentials
from .encryption import PLACEHOLDER, clear_bytes, encryption_of
from .hub import MAX_READ, Hub, read_no_follow

# sops' key sources: a creation rule without one encrypts nothing.
SOPS_KEYS = ("kms", "gcp_kms", "azure_keyvault", "pgp", "age", "hc_vault_transit_uri", "key_groups")


@dataclass(frozen=True)
class SecretFile:
    rel: str
    encryption: str | None  # "git-crypt" / "sops" in the working tree, None in clear
    real_values: tuple[tuple[int | None, str], ...]  # (line, key) of each value that is no placeholder
    on_commit: str | None = None  # "git-crypt" when the unlocked repository encrypts it on commit
    staged_in_clear: bool = False  # git's index already holds it unencrypted, with real values


def real_values(data: bytes) -> tuple[tuple[int | None, str], ...]:
    """(line, key) of each value of a secret file in clear that is not the
    template's placeholder: strings of YAML or JSON (sops' own metadata and
    its ENC[...] values aside), or, in any other file, each line with
    something left beside its placeholders, key and comment."""
    text = clear_bytes(data).decode("utf-8", errors="replace")
    try:
        root = compose_bounded(text)
    except (yaml.YAMLError, RecursionError):
        root = None
    if isinstance(root, (yaml.MappingNode, yaml.SequenceNode)):
        return tuple(_yaml_real_values(root, "", top=True))
    found: list[tuple[int | None, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        rest = PLACEHOLDER.sub("", line).split("#")[0].strip()
        key, sep, value = rest.partition("=") if "=" in rest else rest.partition(":")
        if rest and not re.fullmatch(r"\[[^\]]*\]", rest) and (value.strip(" \"'") if sep else rest):
            found.append((number, key.strip() if sep else ""))
    return tuple(found)


def _yaml_real_values(node: yaml.Node, key: str, top: bool = False) -> Iterator[tuple[int | None, str]]:
    if isinstance(node, yaml.MappingNode):
        for key_node, item in node.value:
            name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else ""
            if not (top and name == "sops"):
                yield from _yaml_real_values(item, name)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _yaml_real_values(item, key)
    elif isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:str":
        value = str(node.value).strip()
        if value and not PLACEHOLDER.fullmatch(value) and not (value.startswith("ENC[") and value.endswith("]")):
            yield node.start_mark.line + 1 + (1 if node.style in ("|", ">") else 0), key


def is_git_crypt(filter_name: str | None) -> bool:
    """git-crypt's filter, with the default key or a named one (`git-crypt-<key>`)."""
    return filter_name is not None and (filter_name == "git-crypt" or filter_name.startswith("git-crypt-"))


def secret_files(hub: Hub) -> list[SecretFile]:
    return hub.memo("secret-files", _secret_files)


def _secret_files(hub: Hub) -> list[SecretFile]:
    rels = [rel for rel in hub.files if rel.startswith("secrets/")]
    repo = hub.git if rels else None
    paths = [hub.folder / rel for rel in rels]
    filters = repo.check_attr("filter", paths) if repo else {}
    # git-crypt's filter is `git-crypt` for the default key, `git-crypt-<key>`
    # for a named one (a hub's own key); it encrypts once that key is unlocked.
    unlocked = {f for f in set(filters.values()) if repo and is_git_crypt(f) and repo.config(f"filter.{f}.clean")}
    staged = repo.staged(paths) if repo else {}
    found = []
    for rel, path in zip(rels, paths, strict=True):
        data = hub.raw(rel) or b""
        encryption = encryption_of(data)
        blob = staged.get(path)
        staged_values = real_values(blob) if blob is not None and encryption_of(blob) is None else ()
        found.append(
            SecretFile(
                rel,
                encryption,
                real_values=real_values(data) if encryption is None else (),
                on_commit="git-crypt" if filters.get(path) in unlocked else None,
                staged_in_clear=bool(staged_values),
            )
        )
    return found


class SE001(Secrets):
    "Every file in secrets/ is encrypted, or holds nothing but the template's placeholders"

    def run(self, hub: Hub) -> str | Skip:
        files = secret_files(hub)
        links = {rel: target for rel, target in hub.links.items() if rel.startswith("secrets/")}
        if not files and not links:
            return self.skip("no secrets/ folder")
        how = _how_to_encrypt(hub)
        problems = [
            Problem(
                rel,
                None,
                f"is a symlink (to {code(target)}), which the checker does not follow: git commits the link, "
                "not the secret, and hubploy reads whatever it points to. Put the encrypted file itself there.",
            )
            for rel, target in links.items()
        ]
        for f in files:
            if f.staged_in_clear:
                problems.append(
                    Problem(
                        f.rel,
                        None,
                        "is staged or committed in clear (git's index holds it unencrypted): anyone with the "
                        "repository can read it. Rotate these credentials, then `git rm --cached` it and add it "
                        f"again with the encryption rule active. {how}",
                    )
                )
            elif f.encryption is None and f.on_commit is None and f.real_values:
                line, key = f.real_values[0]
                what = f"{code(key)} holds a value" if key else "a value is there"
                more = f" (and {len(f.real_values) - 1} more)" if len(f.real_values) > 1 else ""
                problems.append(
                    Problem(
                        f.rel,
                        line,
                        f"is in clear, and {what} that is not the template's placeholder{more}: "
                        f"a real value, never to be committed in clear. {how}",
                    )
                )
        return report(problems)


class SE002(Secrets):
    "An encryption rule covers every file in secrets/"

    def run(self, hub: Hub) -> str | Skip:
        rels = [f.rel for f in secret_files(hub)]
        if not rels:
            return self.skip("no secrets/ folder")
        backend = hub.secrets_backend
        if backend == "sops":
            return report(self._sops(hub, rels))
        if backend != "git-crypt":
            return report(
                [
                    Problem(
                        ANSWERS_FILE,
                        None,
                        "names no secrets_backend and the hub has neither .gitattributes nor .sops.yaml: nothing "
                        "encrypts secrets/. Run `copier update --trust --defaults` to restore the template's rule.",
                    )
                ]
            )
        repo = hub.git
        if repo is None:
            return self.skip(
                "the hub is not in a git repository, so git cannot say which files git-crypt "
                "encrypts; check it inside the federation repository"
            )
        filters = repo.check_attr("filter", [hub.folder / rel for rel in rels])
        return report(
            Problem(
                rel,
                None,
                f"is not covered by git-crypt: `git check-attr filter` says {code(filters[hub.folder / rel])}, "
                "so git would commit it in clear. Add `secrets/** filter=git-crypt diff=git-crypt` to the "
                "hub's .gitattributes.",
            )
            for rel in rels
            if not is_git_crypt(filters[hub.folder / rel])
        )

    def _sops(self, hub: Hub, rels: list[str]) -> list[Problem]:
        problems = []
        for rel in rels:
            config = nearest_sops_config(hub.folder, hub.git.top if hub.git else None)
            if config is None:
                problems.append(
                    Problem(
                        rel,
                        None,
                        "has no .sops.yaml in or above the hub's folder: `sops --encrypt` run there would not "
                        "know which key to use. Restore the hub's .sops.yaml with `copier update --trust --defaults`.",
                    )
                )
                continue
            label = _relative(config, hub.folder)
            try:
                read = read_no_follow(config.parent, config.name)
                if read is None:
                    raise OSError("a symlink or no regular file")
                rules = (load_bounded(read[0].decode()) or {}).get("creation_rules") or []
            except (yaml.YAMLError, AttributeError, RecursionError, OSError, UnicodeDecodeError):
                problems.append(Problem(label, None, "is not a mapping with `creation_rules`; fix its YAML."))
                continue
            # sops compares the path relative to the .sops.yaml's folder.
            target = (hub.folder / rel).resolve().relative_to(config.parent.resolve()).as_posix()
            rule = sops_creation_rule(rules, target)
            if rule is None:
                problems.append(
                    Problem(
                        rel,
                        None,
                        f"matches no creation rule of {code(label)} (sops matches {code(target)} against each "
                        "`path_regex`): sops would refuse to encrypt it. Add a rule whose path_regex matches it.",
                    )
                )
            elif not any(rule.get(key) for key in SOPS_KEYS):
                problems.append(
                    Problem(
                        rel,
                        None,
                        f"matches a creation rule of {code(label)} that names no key ({', '.join(SOPS_KEYS)}).",
                    )
                )
        return problems


class SE003(Secrets):
    "No value that looks like a credential is in clear"

    def run(self, hub: Hub) -> str:
        # Every file of the hub: image/ (notebooks, scripts, data), config/,
        # the answers file, the READMEs, secrets/ in clear, and the values a
        # sops file leaves in clear (its ENC[...] values are no credential).
        protected = {f.rel for f in secret_files(hub) if f.encryption == "git-crypt" or f.on_commit}
        problems = []
        for rel in hub.files:
            text = None if rel in protected else hub.text(rel)
            for line, what in credentials(text or "", rel):
                fix = (
                    "Encrypt the file, or put the template's placeholder back until it is."
                    if rel.startswith("secrets/")
                    else "Move it to `secrets/<env>.yaml`, which is encrypted, and rotate it if it was pushed."
                )
                problems.append(Problem(rel, line, f"{what}, in clear (value not shown). {fix}"))
        for rel, size in hub.too_large.items():
            problems.append(
                Problem(
                    rel,
                    None,
                    f"is {size / 2**20:.0f} MB of text, more than the {MAX_READ // 2**20} MB the checker reads of a "
                    "file, so it was not scanned for credentials. Keep data out of the hub's git (fetch it at run "
                    "time, or from a bucket).",
                )
            )
        return report(problems)


def _how_to_encrypt(hub: Hub) -> str:
    if hub.secrets_backend == "sops":
        return "Encrypt it from the hub's folder: `sops --encrypt --in-place secrets/<file>`."
    return (
        "Unlock git-crypt in the repository (`git-crypt init` once, or `git-crypt unlock`), so that "
        "the hub's .gitattributes encrypts it on commit; `git-crypt status -e` must list it."
    )


def sops_creation_rule(rules: list[Any], target: str) -> dict[str, Any] | None:
    """The creation rule sops applies to ``target`` (getsops/sops config.go):
    the first whose path_regex matches, or has none. Go's regexp is
    unanchored like re.search, and the template's syntax means the same in both."""
    return next(
        (
            r
            for r in rules
            if isinstance(r, dict) and (not r.get("path_regex") or re.search(str(r["path_regex"]), target))
        ),
        None,
    )


def nearest_sops_config(start: Path, top: Path | None = None) -> Path | None:
    """The .sops.yaml sops uses when run in ``start`` (the hub's folder, as its
    README says): sops looks from the directory it runs in upwards, not from the
    file, up to ``top`` (the git repository's root) if given."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".sops.yaml").is_file():
            return folder / ".sops.yaml"
        if top is not None and folder == top.resolve():
            return None
    return None


def _relative(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)


CHECKS = (SE001, SE002, SE003)
