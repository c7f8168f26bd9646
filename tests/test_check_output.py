"""`hub-template check` over several hubs: one JSON document, one HTML page
with a link per check into its own section of the docs, and the same
findings whether the hubs are checked in parallel or one at a time."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

from conftest import ROOT, chart_data, hub_template
from hub_cells import rendered_hub

from hub_template.checks import CHECK_CLASSES


def three_hubs(template_repo, tmp_path_factory, tmp_path) -> list[Path]:
    """Two good hubs and one whose environment.yml carries a local prefix (IM fails)."""
    hubs = []
    for name, cell in (
        ("alpha", ("gcp", "sops", "gateway")),
        ("bravo", ("aws", "git-crypt", "kubernetes")),
        ("charlie", ("azure", "sops", "gateway")),
    ):
        hubs.append(tmp_path / "deployments" / name)
        shutil.copytree(rendered_hub(template_repo, tmp_path_factory, *cell), hubs[-1])
    env = hubs[1] / "image" / "binder" / "environment.yml"
    env.write_text(env.read_text() + "prefix: /home/someone/miniconda3/envs/science\n")
    return hubs


def test_parallel_checks_find_what_one_at_a_time_finds(template_repo, tmp_path_factory, tmp_path):
    hubs = [str(h) for h in three_hubs(template_repo, tmp_path_factory, tmp_path)]
    chart = ["--chart", str(chart_data())]
    one = hub_template("check", *hubs, *chart, "--format", "json", "--jobs", "1")
    two = hub_template("check", *hubs, *chart, "--format", "json", "--jobs", "2")
    assert one.returncode == two.returncode == 1, one.stdout + one.stderr
    assert two.stdout == one.stdout  # the same document, byte for byte, hubs in the order given
    report = json.loads(one.stdout)  # one JSON document, not fragments
    assert list(report) == hubs
    assert {hub: doc["status"] for hub, doc in report.items()} == dict(
        zip(hubs, ["passed", "errors", "passed"], strict=True)
    )
    failed = {k for k, v in report[hubs[1]]["checks"].items() if v["result"] is False}
    assert failed and all(k.startswith("IM") for k in failed), failed


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.doctype, self.tags, self.links, self.title = "", [], [], ""

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [value for key, value in attrs if tag == "a" and key == "href"]

    def handle_data(self, data):
        if self.tags and self.tags[-1] == "title" and not self.title:
            self.title = data


def test_the_html_report_is_a_page_linking_each_check_to_its_own_anchor(template_repo, tmp_path_factory, tmp_path):
    hubs = three_hubs(template_repo, tmp_path_factory, tmp_path)
    done = hub_template("check", *map(str, hubs), "--format", "html")
    assert done.returncode == 1
    page = Page()
    page.feed(done.stdout)
    assert page.doctype.lower() == "doctype html"
    assert done.stdout.rstrip().endswith("</html>")
    assert page.tags[:4] == ["html", "head", "meta", "title"] and "body" in page.tags
    assert page.title == "hub-template check: " + ", ".join(map(str, hubs))
    assert page.tags.count("section") == 3
    anchors = {link.rsplit("#", 1)[1] for link in page.links if "docs/checks.md#" in link}
    assert {"im001", "se001", "st001"} <= anchors


def test_every_check_has_its_own_url():
    urls = {cls.__name__: cls.url for cls in CHECK_CLASSES}
    assert len(set(urls.values())) == len(urls)
    # Table rows make no anchor on GitHub: each row carries its own, once.
    docs = (ROOT / "docs" / "checks.md").read_text()
    for name, url in urls.items():
        assert url.endswith(f"docs/checks.md#{name.lower()}"), url
        assert docs.count(f'<a name="{name.lower()}"></a>') == 1, name


def test_the_hint_under_failed_checks_is_how_a_hub_ignores_one(template_repo, tmp_path):
    """repo-review's hint names the repository's pyproject.toml, which a hub
    does not have; the real output names the hub's own instead, with
    --ignore for one run, and says which failed checks no hub can ignore.
    Following the hint skips the check it names."""
    import re

    from conftest import render

    hub = render(template_repo, tmp_path / "deployments" / "charlie", cloud_provider="gcp")  # ST006: the stand-in
    secrets = hub / "secrets" / "prod.yaml"
    secrets.write_text(re.sub(r'client_secret: ".*"', 'client_secret: "' + "3f9a" * 10 + '"', secrets.read_text()))
    chart = ["--chart", str(chart_data())]
    done = hub_template("check", str(hub), *chart, "--select", "ST006,SE001")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "add this to pyproject.toml" not in done.stdout
    text = "".join(done.stdout.split())  # rich wraps long lines (the path) anywhere

    def shown(sentence: str) -> bool:
        return "".join(sentence.split()) in text

    assert shown("SE001 cannot be ignored (no hub can switch off SE*, ST007, ST008): fix what they name.")
    assert shown(
        f"Hint: to skip ST006 once, pass --ignore ST006; to ignore it in this hub for good, add this to "
        f"{hub / 'pyproject.toml'} (the hub's own; hub-template check reads it):"
    )
    toml = done.stdout[done.stdout.index("[tool.repo-review.ignore]") :].split("\n\n")[0]
    assert toml.splitlines() == ["[tool.repo-review.ignore]", 'ST006 = "why this hub skips it"']

    # Both ways the hint gives skip ST006, and only it.
    once = hub_template("check", str(hub), *chart, "--select", "ST006,SE001", "--ignore", "ST006", "--format", "json")
    (hub / "pyproject.toml").write_text(toml.replace("why this hub skips it", "no GCP project yet") + "\n")
    for_good = hub_template("check", str(hub), *chart, "--select", "ST006,SE001", "--format", "json")
    for done in (once, for_good):
        checks = json.loads(done.stdout)[str(hub)]["checks"]
        assert {name: check["result"] for name, check in checks.items() if check["result"] is not None} == {
            "SE001": False
        }, done.stdout
