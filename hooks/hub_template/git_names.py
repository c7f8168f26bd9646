"""What git reads as a repository of its own: the `.git` name in every
spelling some file system reads as `.git`, and a git directory's layout
(HEAD beside objects/ and refs/) under any name. A tree holding either,
checked out or copied, lets git run what that repository's config says
(core.fsmonitor, hooks) when anyone runs git there: the source import
refuses both, at any depth.

Runs in copier's interpreter: standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable

# Code points HFS+ (macOS) ignores in names, as git's own is_hfs_dotgit does:
# `.g\u200cit` is `.git` there.
_HFS_IGNORED = frozenset([*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF])


def is_dot_git(name: str) -> bool:
    """Whether one path component names `.git` on some file system: any
    case, trailing dots and spaces (Windows drops them), an NTFS stream
    (`.git::$INDEX_ALLOCATION`), the 8.3 short name `git~1`, or characters
    macOS ignores."""
    plain = "".join(c for c in name if ord(c) not in _HFS_IGNORED)
    plain = plain.split(":", 1)[0].rstrip(". ").casefold()
    return plain in (".git", "git~1")


def git_dir_layouts(paths: Iterable[str]) -> list[str]:
    """The folders ("" for the root) of a list of file paths that git would
    take for a git directory: a HEAD file beside files under objects/ and
    refs/, or beside a `commondir` file (git then reads objects and refs from
    the folder it names)."""
    files = set(paths)
    folders_with: dict[str, set[str]] = {}
    for path in files:
        parts = path.split("/")
        for depth in range(len(parts) - 1):
            folder = "/".join(parts[:depth])
            folders_with.setdefault(folder, set()).add(parts[depth])
    found = []
    for folder in sorted({p.rpartition("/")[0] for p in files}):
        prefix = f"{folder}/" if folder else ""
        if f"{prefix}HEAD" not in files:
            continue
        below = folders_with.get(folder, set())
        if {"objects", "refs"} <= below or f"{prefix}commondir" in files:
            found.append(folder)
    return found
