"""The render matrix the checker's tests share: provider x secrets backend x
dask backend, read from the template's own data (providers.yml, the choices in
copier.yml), each cell rendered at most once per test session."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import yaml
from conftest import ROOT, git, render

from hub_template import load_data

_QUESTIONS = yaml.safe_load((ROOT / "copier.yml").read_text())
PROVIDERS = list(load_data("providers.yml"))
SECRETS = list(_QUESTIONS["secrets_backend"]["choices"].values())
DASK = list(_QUESTIONS["dask_backend"]["choices"].values())
CELLS = list(itertools.product(PROVIDERS, SECRETS, DASK))

_rendered: dict[tuple, Path] = {}

# The ids a researcher types, which have no default at the prompt (the
# stand-ins `--defaults` records fail ST006).
REAL_IDS = {
    "gcp_project": "ocean-lab-1",
    "aws_account_id": "210987654321",
    "gcp_workload_identity_provider": "projects/210987654321/locations/global/workloadIdentityPools/hubs-ci/providers/github",
    "azure_client_id": "61a26663-4830-4996-a6a6-8e8907107707",
    "azure_tenant_id": "efdb953d-0cd3-4574-a0bf-88c228ba81e4",
    "azure_subscription_id": "9f48881b-96f8-4ffe-aad2-8b0285987ee2",
}


def rendered_hub(template_repo: Path, tmp_path_factory, provider: str, secrets: str, dask: str) -> Path:
    """deployments/charlie rendered with defaults for this cell (shared: copy it before changing it)."""
    key = (str(template_repo), provider, secrets, dask)
    if key not in _rendered:
        dst = tmp_path_factory.mktemp(f"{provider}-{secrets}-{dask}") / "deployments" / "charlie"
        _rendered[key] = render(
            template_repo, dst, cloud_provider=provider, secrets_backend=secrets, dask_backend=dask, **REAL_IDS
        )
    return _rendered[key]


def copy_hub(hub: Path, federation: Path) -> Path:
    """A private copy of ``hub`` at federation/deployments/<name>."""
    target = federation / "deployments" / hub.name
    shutil.copytree(hub, target)
    return target


def commit_federation(federation: Path) -> None:
    """Make the folder a federation repository with everything committed."""
    if not (federation / ".git").exists():
        git(federation, "init", "-q")
    git(federation, "add", "-A")
    git(federation, "commit", "-q", "-m", "hubs")


def run_postbuild(image: Path, prefix: Path) -> Path:
    """Run the hub's binder/postBuild as repo2docker does, into ``prefix``
    standing for the notebook environment: a Python environment (a venv of
    the tests' Python), as the image has one there. Returns its site-packages."""
    import os
    import subprocess
    import venv

    venv.EnvBuilder(with_pip=False).create(prefix)
    site_packages = Path(
        subprocess.run(
            [str(prefix / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    done = subprocess.run(
        ["bash", "binder/postBuild"],
        cwd=image,
        capture_output=True,
        text=True,
        env={**os.environ, "NB_PYTHON_PREFIX": str(prefix)},
    )
    assert done.returncode == 0, done.stderr
    return site_packages
