"""What a rendered hub tells its readers and installs, checked against what
the tools do (issue 30's README errors and smaller items)."""

from __future__ import annotations

import yaml
from conftest import render


def test_a_package_the_user_names_is_listed_once(template_repo, tmp_path):
    """The hub's own fsspec package (and dask) give way to the user's spec of
    it, pinned or not: s3fs was listed twice when the user named it."""
    hub = render(
        template_repo,
        tmp_path / "charlie",
        cloud_provider="aws",
        conda_packages="xarray, s3fs>=2024, conda-forge::dask",
    )
    specs = [
        d
        for d in yaml.safe_load((hub / "image/binder/environment.yml").read_text())["dependencies"]
        if isinstance(d, str)
    ]
    names = [spec.split("::")[-1].split(">")[0].split("=")[0] for spec in specs]
    assert names.count("s3fs") == 1 and "s3fs>=2024" in specs
    assert names.count("dask") == 1 and "conda-forge::dask" in specs
    assert "distributed" in specs and "dask-gateway=" in " ".join(specs)


def test_the_readme_says_where_dask_reads_its_config_and_what_the_panel_links(template_repo, tmp_path):
    """dask reads /etc/dask, {sys.prefix}/etc/dask, ~/.config/dask and
    $DASK_CONFIG, never ~/.dask; the dask panel does not connect a gateway
    cluster's dashboard by itself (field notes)."""
    readme = (render(template_repo, tmp_path / "charlie") / "README.md").read_text()
    dask_part = readme[readme.index("**`.dask/config.yaml`**") :]
    dask_part = dask_part[: dask_part.index("\n\n")]
    assert "never from `~/.dask`" in dask_part
    assert "`~/.config/dask`" in dask_part and "${NB_PYTHON_PREFIX}/etc/dask" in dask_part
    assert "links each cluster's dashboard" not in readme
    assert "cluster.dashboard_link" in dask_part
