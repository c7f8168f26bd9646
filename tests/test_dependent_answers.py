"""No sequence of valid answers crashes copier: copier validates a question's
default before it asks (and with --defaults, instead of asking), so a default
that an earlier answer makes invalid is a traceback that loses every answer.
Each question whose default, condition or check uses an earlier answer is
walked with that answer at its valid extremes (and every choice), through
copier itself (`run_copy --defaults --data`, pretend: nothing is written)."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import ROOT
from copier import run_copy

CONFIG = yaml.safe_load((ROOT / "copier.yml").read_text())
QUESTIONS = {name: spec for name, spec in CONFIG.items() if not name.startswith("_")}
COMPUTED = {name for name, spec in QUESTIONS.items() if spec.get("when") is False}

# The valid extremes of each answer that others depend on (choices and bools
# take all their values). A new dependency fails test_every_dependency_is_walked
# until its answer is listed here.
EXTREMES = {
    "hub_name": ["a", "a" * 45, "a--b", "ocean-9"],
    "domain": ["a.io", ("a" * 60 + ".") * 3 + "b" * 59 + ".io"],  # 245 characters
    "gcp_project": ["a" + "-" * 28 + "b", "abcdef"],
    "gcp_region": ["europe-west10"],
    "aws_account_id": ["000000000000"],
    "aws_region": ["us-gov-west-1", "ap-southeast-4"],
    "azure_registry": ["A" * 50, "abcde"],
    "federation_name": ["a", "a" * 63, "pangeo-hubs"],
    "staging_domain": ["staging.a.io", "HTTPS://Staging.Example.org/hub/"],
    # Amounts, which the computed answer `normal` reads: the bounds, and as typed.
    "user_storage": ["1", "65536", "20Gi"],
    "cluster_max_cores": ["1", "100000"],
    "cluster_max_memory": ["4", "1000000", "4096M"],
    "idle_timeout_minutes": ["0", "10080", "1.5h"],
    "max_users": ["1", "100000", "80 users"],
    "dask_clusters_per_user": ["1", "1000"],
    "cull_idle_minutes": ["1", "525600"],
    "cull_max_age_hours": ["0", "8760", "1d"],
    "cull_kernel_minutes": ["0", "525600"],
    "shared_folder_size": ["1", "65536"],
    "customise": [True, False],
    # The largest worker fits the largest machine of every provider (16 vCPUs, 128 GiB).
    "worker_cores": ["0.25", "15.5", "500m"],
    "worker_memory": ["0.5", "112", "4 Gi"],
    "worker_cores_max": ["1", "15.5"],
    "worker_memory_max": ["4", "112"],
    "dask_machine": ["n2-standard-8", "n2-highmem-16"],  # gcp's, walked on gcp
    "user_sizes": [
        [{"name": "a", "machine": "n2-highmem-2"}],
        [
            {"name": "x" * 32, "machine": "n2-highmem-16", "share": 8},
            {"name": "b", "machine": "n2-highmem-2", "teams": ["pangeo-data:t"]},
        ],
    ],
    "gpu_teams": ["", "pangeo-data:gpu-users"],
    "cloud_identity": ["", "abcdef@ocean-lab-1.iam.gserviceaccount.com"],  # gcp's, walked on gcp
    "source_repo": ["", "https://example.org/notebooks.git"],
    "github_orgs": ["pangeo-data", "a" * 39 + ":team"],
    "admin_users": ["", "octocat, hubber"],
    "conda_packages": ["", "xarray zarr>=2.18"],
    "pip_packages": ["", "odc-stac>=0.3, pystac-client"],
    "apt_packages": ["", "nco"],
    "image_registry": ["registry.example.org", "registry.example.org:5000/a/b__c"],
    # The hub's own image, which user_images may not name as another.
    "image_name": ["ghcr.io/a", "registry.example.org:5000/a/b__c/charlie"],
    "user_images": [
        ["hub"],
        ["pangeo-notebook", {"name": "r", "image": "rocker/binder:4.4.1"}, {"name": "ml-notebook", "sizes": ["small"]}],
    ],
    # The login's answers (walked with their login's questions asked only when it is chosen).
    "cilogon_idps": ["google", "https://idp.uni.edu/idp/shibboleth, orcid"],
    "cilogon_domains": ["uni.edu", ".uni.edu, lab.org"],
    "oidc_issuer": ["https://a.io", "login.microsoftonline.com/0/v2.0/.well-known/openid-configuration"],
    "oidc_authorize_url": ["https://a.io/authorize"],
    "oidc_token_url": ["https://a.io/oauth/token"],
    "oidc_userdata_url": ["https://a.io:8443/userinfo"],
    "oidc_username_claim": ["email", "https://a.io/claims/name"],
    "oidc_allowed_groups": ["", "hub-users, https://a.io/admins"],
    "oidc_groups_claim": ["groups", "https://a.io/roles"],
    "oidc_allowed_domains": ["uni.edu", ".uni.edu, lab.org"],
    "oidc_scope": ["openid", "openid profile email groups"],
}


def values(name: str) -> list:
    spec = QUESTIONS[name]
    if "choices" in spec:
        return list(spec["choices"].values())
    if spec.get("type") == "bool":
        return [True, False]
    return EXTREMES.get(name)


def dependencies() -> list[tuple[str, str]]:
    """(earlier, later): the later question's default, condition, help or check
    names the earlier, user-given answer."""
    names = list(QUESTIONS)
    pairs = []
    for i, later in enumerate(names):
        text = " ".join(str(QUESTIONS[later].get(key, "")) for key in ("default", "when", "help", "validator"))
        for earlier in names[:i]:
            if earlier not in COMPUTED and re.search(rf"\b{earlier}\b", text):
                pairs.append((earlier, later))
    return pairs


def test_every_dependency_is_walked():
    missing = sorted({earlier for earlier, _ in dependencies() if values(earlier) is None})
    assert not missing, f"list the valid extremes of {missing} in EXTREMES"
    assert ("worker_cores", "worker_cores_max") in dependencies()


def providers(earlier: str) -> list[str]:
    """The providers an answer is walked with: its own, or all three for the
    answers every provider's defaults use."""
    own = earlier.partition("_")[0]
    if own in ("gcp", "aws", "azure"):
        return [own]
    return (
        ["gcp", "aws", "azure"] if earlier in ("hub_name", "domain", "secrets_backend", "federation_name") else ["gcp"]
    )


CASES = sorted(
    {
        (earlier, n, provider)
        for earlier, _ in dependencies()
        for n in range(len(values(earlier) or ()))
        for provider in providers(earlier)
    }
)


@pytest.mark.parametrize(("earlier", "n", "provider"), CASES)
def test_a_valid_earlier_answer_never_breaks_a_later_default(template_repo, tmp_path, earlier, n, provider):
    data = {"cloud_provider": provider, "secrets_backend": "sops", earlier: values(earlier)[n]}
    # The questions only: pretend renders nothing and runs no task.
    run_copy(
        str(template_repo),
        str(tmp_path / "deployments" / "charlie"),
        data=data,
        defaults=True,
        unsafe=True,
        quiet=True,
        pretend=True,
    )
