"""The ids with no honest default (a Google Cloud project, an AWS account):
the prompt asks for them with nothing pre-filled, and `copier copy --defaults`
(no prompt, no network: the README's first command) records a stand-in that
`hub-template check` fails, naming the answer and how to set it."""

from __future__ import annotations

import pytest
from conftest import render
from hub_cells import REAL_IDS

from hub_template.checks.runner import run_checks
from hub_template.stand_ins import stand_ins


def test_the_stand_ins_are_read_from_copier_yml():
    assert stand_ins() == {
        "gcp_project": "my-pangeo-project",
        "aws_account_id": "123456789012",
        "gcp_workload_identity_provider": "projects/123456789012/locations/global/workloadIdentityPools/github/providers/github",
        "azure_client_id": "00000000-0000-0000-0000-000000000000",
        "azure_tenant_id": "00000000-0000-0000-0000-000000000000",
        "azure_subscription_id": "00000000-0000-0000-0000-000000000000",
        "oidc_issuer": "https://login.example.org",
    }
    # Every render's ids (the issuer is asked of OIDC hubs alone, whose tests answer it).
    assert set(REAL_IDS) == set(stand_ins()) - {"oidc_issuer"}


@pytest.mark.parametrize(
    ("provider", "name"),
    [
        ("gcp", "gcp_project"),
        ("gcp", "gcp_workload_identity_provider"),
        ("aws", "aws_account_id"),
        ("azure", "azure_tenant_id"),
    ],
)
def test_a_defaults_render_fails_naming_the_stand_in(template_repo, tmp_path, provider, name):
    hub = render(template_repo, tmp_path / "deployments" / "charlie", cloud_provider=provider)
    found = {r.name: r for r in run_checks(hub, select=frozenset({"ST006"})).results}
    assert found["ST006"].result is False
    message = found["ST006"].err_msg
    assert f"`{name}` is the stand-in `{stand_ins()[name]}`" in message
    assert f"copier update --trust --defaults --data {name}=" in message

    real = render(template_repo, tmp_path / "real" / "deployments" / "charlie", cloud_provider=provider, **REAL_IDS)
    assert {r.name: r.result for r in run_checks(real, select=frozenset({"ST006"})).results} == {"ST006": True}
