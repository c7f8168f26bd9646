"""The hub checker: `hub-template check deployments/<hub>`.

Built on repo-review, like sp-repo-review: each check is a small class with an
ID, a family and a one-line docstring (base.py), grouped by module:

- structure.py  ST: the template's files, rendered and parseable; hubploy.yaml
- answers.py    ST006: no answer is a --defaults stand-in
- git_layout.py ST008: no folder laid out as a git directory
- helm.py       HV: helm values merged per environment, against --chart
- image.py      IM: repo2docker's plan, environment.yml, apt.txt, scripts, workspace, notebooks
- notebooks.py  IM012-IM013: the notebooks' imports and calls, read against the environment
- dask_config.py DK: the dask config the image reads at run time (runtime.py)
- resources.py  HV005-HV006, DK005: CPU and memory amounts, and the gateway workers' image
- storage.py    HV007: the volume claims users' pods mount are made
- login.py      HV012: who the login lets in, and where the provider calls back
- secrets.py    SE: encryption of secrets/, and no credential in clear

The two functions below and the fixtures of fixtures.py are also repo-review's
entry points (pyproject.toml), so `repo-review deployments/charlie` runs the
same checks (without a chart); runner.py runs them for `hub-template check`.
"""

from __future__ import annotations

from typing import Any

from . import answers, dask_config, git_layout, helm, image, login, notebooks, resources, secrets, storage, structure
from .base import FAMILIES
from .encryption import PLACEHOLDER
from .hub import ChartSource, Hub

CHECK_CLASSES = (
    *structure.CHECKS,
    *answers.CHECKS,
    *git_layout.CHECKS,
    *helm.CHECKS,
    *resources.HELM_CHECKS,
    *storage.CHECKS,
    *login.CHECKS,
    *image.CHECKS,
    *notebooks.CHECKS,
    *dask_config.CHECKS,
    *resources.DASK_CHECKS,
    *secrets.CHECKS,
)

__all__ = ["CHECK_CLASSES", "PLACEHOLDER", "ChartSource", "Hub", "repo_review_checks", "repo_review_families"]


def repo_review_checks(hub: Hub, list_all: bool = False) -> dict[str, Any]:
    """Every check, or none for a folder that is not a hub (so the checks stay
    quiet when repo-review looks at a Python project)."""
    if not (list_all or hub.is_hub):
        return {}
    return {cls.__name__: cls() for cls in CHECK_CLASSES}


def repo_review_families(hub: Hub, list_all: bool = False) -> dict[str, Any]:
    return dict(FAMILIES) if (list_all or hub.is_hub) else {}
