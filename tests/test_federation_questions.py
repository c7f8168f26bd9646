"""What a federation render (`kind=federation`) asks and hands on to its hubs
(issue 29, item 5): only federation questions, every answer it records offered
to hubs by copier-settings.yml, no default taken from the folder's name but
its own name; and the template it names is the one it was made from (item 6)."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT
from copier import run_copy

from hub_template.copier_settings import settings

# Answers about the federation itself, never a hub's.
FEDERATION_ONLY = {"kind", "customise", "source_commit"}


def hub_only_questions() -> set[str]:
    """copier.yml's questions that a federation must not ask: those only a hub
    renders (`kind == 'hub'` in their `when`)."""
    return {
        name
        for name, spec in settings().items()
        if isinstance(spec, dict) and "kind == 'hub'" in str(spec.get("when", ""))
    }


@pytest.mark.parametrize("provider", ["gcp", "aws", "azure"])
def test_a_federation_records_only_federation_answers_and_offers_them_all(template_repo, tmp_path, provider):
    fed = tmp_path / "fedrepo"
    run_copy(
        str(template_repo),
        str(fed),
        defaults=True,
        unsafe=True,
        quiet=True,
        data={"kind": "federation", "cloud_provider": provider},
    )
    recorded = yaml.safe_load((fed / ".copier-answers.yml").read_text())
    answers = {name: value for name, value in recorded.items() if not name.startswith("_")}
    assert not hub_only_questions() & set(answers), sorted(hub_only_questions() & set(answers))
    assert {"user_sizes", "cloud_identity", "git_crypt_key", "max_users", "dask_machine"} <= hub_only_questions()

    offered = yaml.safe_load((fed / "copier-settings.yml").read_text())["defaults"]
    for name, value in answers.items():
        if name not in FEDERATION_ONLY:
            assert str(offered.get(name)) == str(value), (
                f"{name}: the federation recorded {value!r}, hubs get {offered.get(name)!r}"
            )
    # Cloud resources are named after the federation, never after a hub.
    assert offered["federation_name"] == "fedrepo"
    assert not any("-users" in str(value) for value in offered.values()), offered


def test_a_federation_names_the_template_it_was_made_from(template_repo, tmp_path):
    fed = tmp_path / "pangeo-hubs"
    run_copy(str(template_repo), str(fed), defaults=True, unsafe=True, quiet=True, data={"kind": "federation"})
    recorded = yaml.safe_load((fed / ".copier-answers.yml").read_text())
    src, commit = recorded["_src_path"], recorded["_commit"]
    settings_text = (fed / "copier-settings.yml").read_text()
    assert f"copier copy --trust --vcs-ref {commit} {src} deployments/<hub>" in settings_text
    assert "gh:pangeo/hub-template" not in settings_text
    assert f"--vcs-ref {commit} {src} deployments/<hub>" in (fed / "README.md").read_text()
    # A local source has no URL CI could fetch: the canonical repository, at the commit used.
    for workflow in ("deploy.yml", "pull-request.yml"):
        text = (fed / ".github" / "workflows" / workflow).read_text()
        assert f"hub-template @ git+https://github.com/pangeo/hub-template@{commit}" in text


def test_a_federation_from_github_names_that_repository(tmp_path):
    """The references follow `_src_path` (a fork on GitHub), rendered with the
    answers copier would record; no network: the macros alone."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROOT))
    macros = env.get_template("hooks/hub_template/jinja/derived.jinja").module
    answers = {"_src_path": "gh:glacier-lab/hub-template", "_commit": "v1.2.0-3-gabc1234"}
    assert macros.template_repository(answers) == "https://github.com/glacier-lab/hub-template"
    assert macros.template_ref(answers) == "abc1234"
    assert macros.copier_source(answers) == "--vcs-ref v1.2.0-3-gabc1234 gh:glacier-lab/hub-template"
    answers = {"_src_path": "https://gitlab.example.org/hubs/hub-template.git", "_commit": "v1.2.0"}
    assert macros.template_repository(answers) == "https://gitlab.example.org/hubs/hub-template"
    assert macros.template_ref(answers) == "v1.2.0"


def test_the_package_is_the_template_release():
    """`hub-template --version` and ST001 name the release the CHANGELOG's
    top section describes (pyproject.toml said 1.1.0 under 1.2.0's)."""
    import re

    version = re.search(r'(?m)^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text())[1]
    top = re.search(r"(?m)^## (\S+)", (ROOT / "CHANGELOG.md").read_text())
    assert top and top[1] == version
