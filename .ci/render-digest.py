"""Print one digest per cell of the render matrix (provider x secrets backend x
dask backend, from the template's own data), for a hub and a federation
rendered from this working tree (copier includes uncommitted changes).

A refactor that must change no rendered byte is shown by the same output
before and after it:

    python .ci/render-digest.py > before.txt   # on the commit before
    python .ci/render-digest.py | diff before.txt -
"""

from __future__ import annotations

import hashlib
import itertools
import re
import sys
import tempfile
import warnings
from pathlib import Path

import yaml
from copier import run_copy

ROOT = Path(__file__).resolve().parent.parent
# The ids a researcher types (they have no default at the prompt).
IDS = {"gcp_project": "ocean-lab-1", "aws_account_id": "210987654321"}


def file_digests(folder: Path) -> dict[str, str]:
    """Each file's digest, the commit rendered from blanked out (copier
    commits a dirty tree anew at each render)."""
    # Read as text: YAML would read a commit like 1234e56 as a number (copier quotes it).
    commit = re.search(rb"^_commit: '?([^'\s]+)'?$", (folder / ".copier-answers.yml").read_bytes(), re.M).group(1)

    def blanked(path: Path) -> bytes:
        data = path.read_bytes()
        if path.name == ".copier-answers.yml":  # quoted or not, as YAML needs
            data = re.sub(rb"^_commit: .*$", b"_commit: <commit>", data, flags=re.M)
        return data.replace(commit, b"<commit>")

    return {
        str(path.relative_to(folder)): hashlib.sha256(blanked(path)).hexdigest()[:16]
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts)
    }


def cells() -> list[dict[str, str]]:
    questions = yaml.safe_load((ROOT / "copier.yml").read_text())
    providers = yaml.safe_load((ROOT / "hooks" / "hub_template" / "data" / "providers.yml").read_text())
    choices = [list(questions[name]["choices"].values()) for name in ("secrets_backend", "dask_backend")]
    return [
        {"kind": "hub", "cloud_provider": p, "secrets_backend": s, "dask_backend": d}
        for p, s, d in itertools.product(providers, *choices)
    ]


def main() -> int:
    warnings.simplefilter("ignore")  # copier's DirtyLocalWarning: uncommitted changes are the point
    with tempfile.TemporaryDirectory() as tmp:
        for n, data in enumerate([*cells(), {"kind": "federation"}]):
            dst = Path(tmp) / str(n) / "deployments" / "charlie"
            run_copy(str(ROOT), str(dst), data={**IDS, **data}, defaults=True, unsafe=True, quiet=True, vcs_ref="HEAD")
            files = file_digests(dst)
            cell = " ".join(f"{k}={v}" for k, v in data.items())
            whole = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()[:16]
            print(whole, cell)
            if "--files" in sys.argv:  # which file differs
                for rel, sha in files.items():
                    print(f"  {sha} {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
