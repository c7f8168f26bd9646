"""A small static reading of notebooks' code cells: the modules they import
and the APIs they call that their libraries have removed
(data/notebook_apis.yml). It reads text only, never runs a cell: the source
import uses it to say, before anyone builds the image, which imports
environment.yml names no package for and which calls will fail.

It is honest about what it cannot know: environment.yml lists packages, not
the modules each brings (nor what they depend on), so a module is "named"
when a listed package's name, written the way package names are (`-`, `_`
and `.` alike, a `py`/`python-` prefix dropped), is the module's. Anything
else is reported as not named, not as missing.

Runs in copier's interpreter: standard library and pyyaml.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from hub_template import load_data

# Lines IPython reads and Python does not: magics, shell escapes, help.
_IPYTHON_LINE = re.compile(r"^\s*[%!?]|^\s*\w[\w.]*\?\s*$")
_IMPORT_LINE = re.compile(
    r"^\s*(?:from\s+([A-Za-z_][\w.]*)\s+import|import\s+([A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*))"
)


@dataclass(frozen=True)
class Finding:
    notebook: str
    cell: int  # 1-based, counting code cells and markdown alike, as JupyterLab shows them
    what: str


def code_cells(text: str) -> Iterator[tuple[int, str]]:
    """(cell number, source) of each code cell of a notebook's JSON; none if
    the text is not a notebook."""
    try:
        notebook = json.loads(text)
    except ValueError:
        return
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    for number, cell in enumerate(cells if isinstance(cells, list) else [], 1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        yield number, "".join(source) if isinstance(source, list) else str(source)


def imported_modules(source: str) -> set[str]:
    """The top-level modules a cell imports (relative imports left out)."""
    lines = [("pass" if _IPYTHON_LINE.match(line) else line) for line in source.splitlines()]
    if lines and lines[0].lstrip().startswith("%%"):
        return set()  # a cell magic: the cell is not Python
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        found: set[str] = set()  # read what can be read, line by line
        for line in lines:
            if match := _IMPORT_LINE.match(line):
                names = [match[1]] if match[1] else [n.strip() for n in match[2].split(",")]
                found.update(n.split(".")[0] for n in names)
        return found
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module.split(".")[0])
    return modules


def package_key(name: str) -> str:
    """A package or module name compared the way names are written."""
    key = re.sub(r"[-_.]+", "", name.lower())
    return key.removeprefix("python") if key.startswith("python") and len(key) > 6 else key


def named(module: str, packages: Iterable[str]) -> bool:
    keys = {package_key(p) for p in packages}
    key = package_key(module)
    return key in keys or key.removeprefix("py") in keys or f"py{key}" in keys


@dataclass(frozen=True)
class Removed:
    """An API data/notebook_apis.yml says a library removed."""

    shows: str  # what messages quote
    why: str  # since when, and what to use instead
    package: str  # the conda package it was removed from
    removed_in: str  # the first version without it

    def __str__(self) -> str:
        return f"{self.shows}: {self.why}"


def removed_calls(source: str) -> list[Removed]:
    """What a cell calls that its library removed, as data/notebook_apis.yml says."""
    return [api for pattern, api in _apis() if re.search(pattern, source, re.MULTILINE)]


def _apis() -> list[tuple[str, Removed]]:
    return [
        (api["pattern"], Removed(api["shows"], api["why"], api["package"], str(api["removed_in"])))
        for api in load_data("notebook_apis.yml")["removed"]
    ]


def local_modules(paths: Iterable[str]) -> set[str]:
    """The modules a notebook can import from files beside it: each folder and
    .py file named in `paths` (image-relative, POSIX)."""
    return {part.removesuffix(".py") for p in paths for part in p.split("/") if "." not in part or part.endswith(".py")}


def unnamed_imports(notebooks: dict[str, str], packages: Iterable[str], local: Iterable[str]) -> list[Finding]:
    """Each import (`what` is the module) of `notebooks` (name -> JSON text)
    that no package of `packages` names, leaving out the standard library and
    `local` modules (files of the repository); the first cell importing it, per notebook."""
    packages, local = list(packages), set(local)
    found: dict[tuple[str, str], Finding] = {}
    for name, text in sorted(notebooks.items()):
        for cell, source in code_cells(text):
            for module in sorted(imported_modules(source)):
                if module in sys.stdlib_module_names or module in local or named(module, packages):
                    continue
                found.setdefault((name, module), Finding(name, cell, module))
    return list(found.values())


def removed_apis(notebooks: dict[str, str]) -> list[tuple[Finding, Removed]]:
    """Each call of a removed API in `notebooks` (name -> JSON text), with its cell."""
    return [
        (Finding(name, cell, str(api)), api)
        for name, text in sorted(notebooks.items())
        for cell, source in code_cells(text)
        for api in removed_calls(source)
    ]


def scan(
    notebooks: dict[str, str], packages: Iterable[str], local: Iterable[str]
) -> tuple[dict[str, list[str]], list[Finding]]:
    """Read `notebooks` (name -> JSON text): the modules they import that no
    package of `packages` names (module -> the notebooks importing it),
    leaving out the standard library and `local` modules (files of the
    repository), and the removed APIs they call."""
    unnamed: dict[str, list[str]] = {}
    for finding in unnamed_imports(notebooks, packages, local):
        unnamed.setdefault(finding.what, []).append(finding.notebook)
    return unnamed, [finding for finding, _ in removed_apis(notebooks)]
