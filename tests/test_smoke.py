from conftest import render


def test_defaults_render_a_hub(template_repo, tmp_path):
    hub = render(template_repo, tmp_path / "deployments" / "charlie")
    assert (hub / "hubploy.yaml").is_file()
    assert "hub_name: charlie" in (hub / ".copier-answers.yml").read_text()
