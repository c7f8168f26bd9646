"""Reading, cleaning and merging conda environments (hub_template.environment),
against environment.yml files the template really renders."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import render
from packaging.version import InvalidVersion, Version
from rattler import MatchSpec

from hub_template import load_data
from hub_template.environment import (
    SpecError,
    admits,
    is_conda_list,
    merge,
    parse_conda_spec,
    read_conda_list,
    read_environment,
    read_requirements,
    supported_minors,
    within,
)

VERSIONS = load_data("versions.yml")
SUPPORTED = VERSIONS["python_supported"]
HUB_BLOCK_END = "  # The hub's own packages."

FULL_EXPORT = """\
name: esip-tech-dive
channels:
  - conda-forge
  - defaults
dependencies:
  - _libgcc_mutex=0.1=conda_forge
  - bzip2=1.0.8=hd590300_5
  - numpy=1.26.4=py311h64a7726_0
  - python=3.11.9=hb806964_0_cpython
  - xarray=2024.6.0=pyhd8ed1ab_1
  - pip=24.0=pyhd8ed1ab_0
  - pip:
      - pystac-client==0.7.5
prefix: /home/scott/miniconda3/envs/esip-tech-dive
"""

FROM_HISTORY = """\
name: esip-tech-dive
channels:
  - conda-forge
dependencies:
  - python=3.11
  - xarray
  - gdal>=3.8
prefix: /home/scott/miniconda3/envs/esip-tech-dive
"""


@pytest.fixture(scope="module")
def rendered(template_repo, tmp_path_factory) -> dict[str, str]:
    """image/binder/environment.yml as the template renders it, without and
    with a pip section."""
    base = tmp_path_factory.mktemp("rendered")
    plain = render(template_repo, base / "plain")
    with_pip = render(template_repo, base / "with-pip", pip_packages="pystac-client, odc-stac>=0.3")
    return {
        name: (hub / "image" / "binder" / "environment.yml").read_text()
        for name, hub in (("plain", plain), ("pip", with_pip))
    }


def blocks(text: str) -> tuple[list[str], list[str]]:
    lines = text.splitlines()
    split = lines.index(HUB_BLOCK_END)
    return lines[:split], lines[split + 1 :]


def assert_valid(text: str) -> dict:
    env = yaml.safe_load(text)
    assert set(env) == {"channels", "dependencies"}
    names = []
    for dependency in env["dependencies"]:
        if isinstance(dependency, str):
            spec = MatchSpec(dependency)
            assert spec.build is None, dependency
            names.append(spec.name.normalized)
    assert len(names) == len(set(names)), "a package is listed twice"
    return env


# --- reading -----------------------------------------------------------------------


def test_full_export_is_cleaned():
    env = read_environment(FULL_EXPORT, "exported.yml")
    assert [str(s) for s in env.conda] == [
        "_libgcc_mutex=0.1", "bzip2=1.0.8", "numpy=1.26.4", "python=3.11.9", "xarray=2024.6.0", "pip=24.0",
    ]  # fmt: skip
    assert [s.text for s in env.pip] == ["pystac-client==0.7.5"]
    assert env.channels == ["conda-forge"]
    assert any("channel 'defaults' left out" in n for n in env.notes)
    assert any("stripped 6 build strings" in n and "--from-history" in n for n in env.notes)


def test_from_history_export_is_kept_as_written():
    env = read_environment(FROM_HISTORY, "history.yml")
    assert [str(s) for s in env.conda] == ["python=3.11", "xarray", "gdal>=3.8"]
    assert env.notes == []


@pytest.mark.parametrize(
    "text, build",
    [
        ("numpy=1.26.4=py312heda63a1_0", "py312heda63a1_0"),
        ("numpy==1.26.4=py312heda63a1_0", "py312heda63a1_0"),
        ("numpy 1.26.4 py312heda63a1_0", "py312heda63a1_0"),  # `conda list` style
        ("numpy=1.26=*", ""),
        ("conda-forge::numpy>=1.26,<2", ""),
    ],
)
def test_build_strings_are_stripped(text, build):
    spec, stripped = parse_conda_spec(text)
    assert stripped == build
    assert MatchSpec(str(spec)).build is None
    assert MatchSpec(str(spec)).name.normalized == "numpy"


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "dependencies:\n  - xarray\n  - numpy;rm -rf /\n",
            "env.yml, line 3: 'numpy;rm -rf /' is not a conda package spec",
        ),
        ("dependencies:\n  - numpy[version='>=1']\n", "line 2: 'numpy[version='>=1']' uses the bracket form"),
        (
            "dependencies:\n  - pip:\n      - --index-url=https://evil.example\n",
            "line 3: '--index-url=https://evil.example' is a pip option",
        ),
        (
            "dependencies:\n  - pip:\n      - not a requirement!\n",
            "line 3: 'not a requirement!' is not a pip requirement",
        ),
        (
            "dependencies:\n  - conda:\n      - numpy\n",
            "line 2: only a `pip:` list may sit among the dependencies",
        ),
        ("dependencies: numpy\n", "line 1: `dependencies:` must be a list"),
        ("dependencies:\n  - [numpy]\n", "line 2: each entry of `dependencies:` is one text line"),
        ("channels:\n  - 'conda forge'\n", "line 2: 'conda forge' is not a conda channel name"),
        ("dependencies:\n  - numpy\npackages:\n  - x\n", "line 3: 'packages' is not an environment.yml key"),
        ("dependencies:\n  - numpy\n - bad indent\n", "env.yml, line 3 is not valid YAML: "),
        ("- numpy\n", "env.yml: an environment file is a mapping"),
    ],
)
def test_invalid_environments_name_the_line(text, message):
    with pytest.raises(SpecError) as error:
        read_environment(text, "env.yml")
    assert message in str(error.value)


def test_requirements_txt():
    files = {"extra.txt": "planetary-computer\n"}
    env = read_requirements(
        "# notebooks\npystac-client>=0.7  # search\nodc-stac \\\n  ==0.3.9\n\n-r extra.txt\n",
        "requirements.txt",
        include=files.get,
    )
    assert [s.text for s in env.pip] == ["pystac-client>=0.7", "odc-stac==0.3.9", "planetary-computer"]
    with pytest.raises(SpecError, match=r"requirements.txt, line 2: '-e \.' is a pip option"):
        read_requirements("numpy\n-e .\n", "requirements.txt")
    with pytest.raises(SpecError, match=r"line 1: '-r missing.txt' names a file the source does not have"):
        read_requirements("-r missing.txt\n", "requirements.txt", include=files.get)


def test_environment_pip_section_may_include_requirements():
    env = read_environment(
        "dependencies:\n  - pip:\n      - -r requirements.txt\n",
        "env.yml",
        include={"requirements.txt": "zarr\n"}.get,
    )
    assert [s.text for s in env.pip] == ["zarr"]


# --- version constraints ----------------------------------------------------------


@pytest.mark.parametrize(
    "constraint, version, expected",
    [
        ("=2026.3.0", "2026.3.0", True),
        ("=2026.3", "2026.3.1", True),
        ("=2026.3", "2026.30", False),
        ("==2026.3.0", "2026.3.1", False),
        (">=7", "7.0.0", True),
        (">=7,<8", "8.0", False),
        ("1.2|1.4", "1.4", True),
        ("3.11.*", "3.11.9", True),
        ("!=3.11", "3.11.2", True),
        ("", "1", True),
        # where pre-, post- and dev-releases fall: packaging's order
        ("<2", "2.0rc1", True),
        (">=2", "2.0rc1", False),
        # a prefix `=1.2` is [1.2, 1.3.dev0): not 1.2's own pre-releases, which sort below 1.2
        ("=1.2", "1.2rc1", False),
        ("=1.2", "1.2.dev0", False),
        ("=1.2", "1.2.post1", True),
        ("=1.2", "1.2.1rc1", True),
        ("=1.2", "1.3.dev0", False),
        ("=1.2.0", "1.2", True),  # packaging's 1.2 == 1.2.0
        ("=1!1.2", "1.2", False),  # another epoch
        ("!=1.2.*", "1.2.5", False),
        ("!=1.2.*", "1.3.dev0", True),
        ("~=1.2.3", "1.2.9", True),
        ("~=1.2.3", "1.3.0rc1", False),
        (">2,<1", "1.5", False),
        # what packaging cannot read is assumed to fit
        (">=1,1.2.3_1", "7", True),
        (">=7", "not a version", True),
    ],
)
def test_admits(constraint, version, expected):
    assert admits(constraint, version) is expected


# (inner, outer, whether inner lies within outer); the brute-force test below reads them too
WITHIN = [
    ("=7.0.0", ">=7", True),
    ("=5.3", ">=7", False),
    (">=2023", "=2026.3.0", False),
    ("==2026.3.0", "=2026.3.0", True),
    ("=2026.1.0", "", True),
    (">=2024.1,<2024.3", ">=2024.1,<2024.5", True),
    (">=2024.1", ">=2024.1,<2024.5", False),
    # what sampling said wrong: no sample past 2.0.2, or at 1.1, or at 1.2.4rc1
    (">=2.0.1", "~=2.0.1", False),
    (">1.0", "~=1.0", False),
    ("<1.2.0", "<=1", False),
    (">=1.2.3,<1.2.4", "=1.2.3", False),  # 1.2.4rc1 is below 1.2.4
    (">=1.2.3,<1.2.4.dev0", "=1.2.3", True),  # sampling raised InvalidVersion on `.dev0`
    (">=2024.10.100000,<2024.10.100001", "=2024.10.100000", False),
    ("<2.0", "=1|<1.3", False),  # 2.0rc1 is above 2.dev0
    ("2", "=2.0", True),
    (">=3.11.40,<3.12.dev0", "=3.11", True),
    # bounds apart by more than a sample step
    ("<2.0.1", "<2", False),
    ("<2", "<2.0.1", True),
    ("=2024.10", ">=2024.10,<2024.10.100000", False),
    ("=2024.10.100000", ">=2024.10.99999", True),
    # `!=` holes
    (">=1,<2", ">=1,<2,!=1.5", False),
    ("=1.5", "!=1.5.*", False),
    ("=1.5.1", "!=1.5", True),
    ("!=1.5.*", "!=1.5", True),
    ("!=1.5", "!=1.5.*", False),
    (">=1,<3,!=2", ">=1,<2|>2,<3", True),
    # alternatives
    ("1.2|1.4", ">=1.2,<1.5", True),
    (">=1.2,<1.5", "1.2|1.4", False),
    ("=1.2|=1.4", ">=1.2,<1.3|>=1.4,<1.5", True),
    ("=1.2|=1.4", ">=1.2,<1.3.dev0|>=1.4,<1.4.9", False),
    # open ends
    (">7", ">=7", True),
    (">=7", ">7", False),
    ("", ">=0.dev0", True),
    ("", ">=0", False),  # 0.dev0 is below 0
    ("", ">=1|<2", True),
    # an inner that allows nothing is not within a pin
    (">2,<1", ">=1", False),
    ("<0.dev0", ">=0.dev0", False),
    # a version packaging cannot read allows everything
    ("1.2.3_1", ">=1", False),
    (">=1", "1.2.3_1", True),
]


@pytest.mark.parametrize("inner, outer, expected", WITHIN)
def test_within(inner, outer, expected):
    assert within(inner, outer) is expected


def test_supported_minors():
    assert supported_minors("=3.11.9", SUPPORTED) == ["3.11"]
    assert supported_minors(">=3.10,<3.12", SUPPORTED) == ["3.10", "3.11"]
    assert supported_minors("=3.8", SUPPORTED) == []
    assert supported_minors("", SUPPORTED) == SUPPORTED
    # the minor's versions are [3.11, 3.12.dev0): patches past any sample, not 3.12's pre-releases
    assert supported_minors(">=3.11.40", ["3.11", "3.12"]) == ["3.11", "3.12"]
    assert supported_minors("=3.11.100", ["3.11", "3.12"]) == ["3.11"]
    assert supported_minors(">=3.12.0rc1", ["3.11", "3.12"]) == ["3.12"]
    assert supported_minors("<3.12", ["3.11", "3.12"]) == ["3.11"]
    assert supported_minors("3.11.*|3.13.*", ["3.11", "3.12", "3.13"]) == ["3.11", "3.13"]
    assert supported_minors(">2,<1", SUPPORTED) == []


def reference_admits(constraint: str, version: str) -> bool:
    """admits as comparisons on one version, without intervals: a prefix `=1.2`
    is 1.2 or later, in 1.2's epoch, with a release that starts 1, 2."""
    v = Version(version)

    def in_series(bound: Version, release: tuple[int, ...]) -> bool:
        padded = (*v.release, *[0] * len(release))[: len(release)]
        return v >= bound and (not release or (v.epoch == bound.epoch and padded == release))

    def term(text: str) -> bool:
        match = re.fullmatch(r"(>=|<=|==|!=|~=|>|<|=)?(.*)", text)
        assert match is not None
        op, value = match.groups()
        try:
            bound = Version(value.rstrip("*").rstrip("."))
        except InvalidVersion:
            return True
        if value.endswith("*") or op == "=":
            if op in (None, "=", "=="):
                return in_series(bound, bound.release)
            if op == "!=":
                return not in_series(bound, bound.release)
        return {
            None: v == bound,
            "==": v == bound,
            "!=": v != bound,
            ">=": v >= bound,
            "<=": v <= bound,
            ">": v > bound,
            "<": v < bound,
            "~=": in_series(bound, bound.release[:-1]),
        }[op]

    return not constraint or any(all(map(term, alt.split(","))) for alt in constraint.split("|"))


def around(*constraints: str) -> list[str]:
    """Versions at, beside and between the bounds the constraints name: each
    release number one down, the same and one up, or a number more, bare and
    with the pre-, post-, dev- and local suffixes packaging sorts around them."""
    found = {"0.dev0", "0", "1!0", "99999999"}
    for literal in re.findall(r"[0-9][0-9A-Za-z_.+!]*", " ".join(constraints)):
        try:
            bound = Version(literal.rstrip("."))
        except InvalidVersion:
            continue
        found.add(str(bound))
        r = bound.release
        releases = [(*r[:k], r[k] + step) for k in range(len(r)) for step in (-1, 0, 1) if r[k] + step >= 0]
        releases += [(*r, extra) for extra in (0, 1, 99999)]
        epoch = f"{bound.epoch}!" if bound.epoch else ""
        for release in releases:
            text = epoch + ".".join(map(str, release))
            found.update(text + suffix for suffix in ("", ".dev0", "a1", "rc1", ".post1", "+local", ".0.1", ".100000"))
    return sorted(found, key=Version)


EXTRA_PAIRS = [
    ("~=1.2", ">=1.2,<2"),
    ("~=1.2", ">=1.2,<2.dev0"),
    ("=1.2.*", "~=1.2.0"),
    ("==1.2.*", ">=1.2,<1.3"),
    ("!=1.2.*", "<1.2|>=1.3"),
    ("!=1.2.*", "<1.2|>=1.3.dev0"),
    ("<=2", "<2.0.0.1"),
    ("<2.0.0.1", "<=2"),
    (">1.2,<1.2.1", ">1.2,<1.2.0.1|>=1.2.0.1,<1.2.1"),
    (">1.2,<1.2.1", ">1.2,<1.2.0.1|>1.2.0.1,<1.2.1"),
    ("=1!1.2", ">=1!1"),
    ("=1!1.2", "=1.2"),
    ("=1.2rc1", ">=1.2rc1,<1.3.dev0"),
    ("=1.2.post1", ">1.2"),
    ("=0", ">=0"),
    (">=1.0,<1.0.1", "1.0.0|>1.0,<1.0.1"),
    ("1.2|>=1.3,<2", ">=1.2,<2,!=1.2.5"),
    ("~=2024.10.0", ">=2024.10,<2024.11.dev0"),
]


@pytest.mark.parametrize("inner, outer", [(i, o) for i, o, _ in WITHIN if o] + EXTRA_PAIRS)
def test_within_agrees_with_every_version(inner, outer):
    """within and admits against reference_admits on every version around the
    bounds: inner allows some of them, and outer each one inner allows."""
    versions = around(inner, outer)
    for constraint in (inner, outer):
        assert [v for v in versions if admits(constraint, v)] == [
            v for v in versions if reference_admits(constraint, v)
        ]
    allowed = [v for v in versions if reference_admits(inner, v)]
    assert within(inner, outer) is (bool(allowed) and all(reference_admits(outer, v) for v in allowed))


# --- merging into the rendered file ------------------------------------------------


def test_merge_keeps_the_hub_block_and_adds_to_the_hubs_own(rendered):
    before = rendered["plain"]
    merged = merge(before, [read_environment(FROM_HISTORY, "history.yml")], SUPPORTED)
    env = assert_valid(merged.text)
    hub_before, own_before = blocks(before)
    hub_after, own_after = blocks(merged.text)
    # the python line follows the source; nothing else of the first block moves
    assert [line for line in hub_after if "python=" not in line] == [
        line for line in hub_before if "python=" not in line
    ]
    assert "  - python=3.11" in hub_after and merged.python_version == "3.11"
    assert own_after[: len(own_before)] == own_before  # the answers' packages first, in order
    assert own_after[len(own_before) :] == ["  - gdal>=3.8"]  # xarray was there already
    assert env["channels"] == ["conda-forge"]


def test_the_sources_pins_win(rendered):
    source = read_environment(
        "channels: [conda-forge, pyviz]\ndependencies:\n  - xarray>=2024.6\n  - dask=2026.1.0\n  - gcsfs=2024.6.1\n",
        "src",
    )
    merged = merge(rendered["plain"], [source], SUPPORTED)
    hub, own = blocks(merged.text)
    assert "  - xarray>=2024.6" in own and "  - xarray" not in own
    assert "  - dask=2026.1.0" in hub and "  - gcsfs=2024.6.1  # reads and writes the scratch bucket" in hub
    assert assert_valid(merged.text)["channels"] == ["conda-forge", "pyviz"]
    # a channel the image did not use is news: the summary lists it
    assert merged.notes == [
        "warning: src adds the conda channel 'pyviz': any package of the image may now come from it"
    ]


def test_a_later_import_wins(rendered):
    first = read_environment("dependencies:\n  - zarr=2.17\n  - pip:\n      - odc-stac==0.3.8\n", "first")
    second = read_environment("dependencies:\n  - zarr=2.18\n  - pip:\n      - odc-stac==0.3.9\n", "second")
    env = assert_valid(merge(rendered["plain"], [first, second], SUPPORTED).text)
    assert "zarr=2.18" in env["dependencies"] and {"pip": ["odc-stac==0.3.9"]} in env["dependencies"]


def test_conflicting_dask_gateway_warns_and_keeps_the_hubs(rendered):
    gateway = VERSIONS["dask_gateway"]
    source = read_environment(
        "dependencies:\n  - dask-gateway=2023.1.1\n  - dask-labextension=7.0.0\n  - pip:\n      - dask-gateway>=0.9\n",
        "old.yml",
    )
    merged = merge(rendered["plain"], [source], SUPPORTED)
    hub, _own = blocks(merged.text)
    assert f"  - dask-gateway={gateway}  # must equal the hub's dask-gateway server" in hub
    assert "  - dask-labextension=7.0.0" in hub  # within the hub's >=7: the source's pin
    assert merged.notes == [
        f"warning: old.yml pins dask-gateway=2023.1.1, but the hub needs dask-gateway={gateway} "
        "(the client must equal the hub's dask-gateway server); the hub's pin is kept",
        f"warning: old.yml installs dask-gateway>=0.9 with pip; the hub installs dask-gateway={gateway} "
        "from conda-forge (the client must equal the hub's dask-gateway server), so the pip line is left out",
    ]
    assert "pip:" not in merged.text


def test_the_same_dask_gateway_pin_is_quiet(rendered):
    source = read_environment(f"dependencies:\n  - dask-gateway={VERSIONS['dask_gateway']}\n", "same.yml")
    merged = merge(rendered["plain"], [source], SUPPORTED)
    assert merged.text == rendered["plain"] and merged.notes == []


@pytest.mark.parametrize(
    "pin, chosen, note",
    [
        ("python=3.11", "3.11", "the hub's python_version is now 3.11 (was 3.12)"),
        ("python>=3.10", "3.12", "the image uses python=3.12, which it allows"),
        ("python<3.12", "3.11", "the hub's python_version is now 3.11"),
        ("python=3.8", "3.12", "warning: src asks for python=3.8, but the hub supports Python 3.10, 3.11"),
    ],
)
def test_python(pin, chosen, note, rendered):
    merged = merge(rendered["plain"], [read_environment(f"dependencies:\n  - {pin}\n", "src")], SUPPORTED)
    assert merged.python_version == chosen
    assert f"  - python={chosen}" in blocks(merged.text)[0]
    assert any(note in n for n in merged.notes), merged.notes


def test_pip_joins_the_hubs_pip_section(rendered):
    source = read_environment("dependencies:\n  - pip:\n      - odc-stac==0.3.9\n      - planetary-computer\n", "src")
    merged = merge(rendered["pip"], [source], SUPPORTED)
    env = assert_valid(merged.text)
    assert env["dependencies"][-1] == {"pip": ["pystac-client", "odc-stac==0.3.9", "planetary-computer"]}
    assert merged.text.count("  - pip:") == 1 and merged.text.count("  - pip\n") == 1


def test_conda_packages_go_before_the_pip_section(rendered):
    source = read_environment("dependencies:\n  - geopandas\n", "src")
    lines = merge(rendered["pip"], [source], SUPPORTED).text.splitlines()
    assert lines.index("  - geopandas") < lines.index("  - pip") < lines.index("  - pip:")


def test_merge_needs_the_rendered_layout():
    with pytest.raises(SpecError, match="is not the file hub-template renders"):
        merge("channels:\n  - conda-forge\ndependencies:\n  - numpy\n", [], SUPPORTED)


# --- what the hub owns: its packages' channels, the image base ---------------------


@pytest.mark.parametrize(
    "line", ["attackerchan::dask-gateway", f"attackerchan::dask-gateway={VERSIONS['dask_gateway']}", "evil::dask"]
)
def test_a_channel_qualified_spec_never_replaces_a_package_the_hub_lists(line, rendered):
    """issue 27 #8: `attackerchan::dask-gateway` replaced the pinned line,
    keeping its comment; the same version from another channel lies within
    the pin, so only the channel tells."""
    merged = merge(rendered["plain"], [read_environment(f"dependencies:\n  - {line}\n", "src")], SUPPORTED)
    assert merged.text == rendered["plain"]
    assert "::" not in merged.text
    (note,) = merged.notes
    assert note.startswith(f"warning: src asks for {line}, but the hub installs ")
    assert note.endswith("from its own channels; the channel-qualified line is left out") or "(the client" in note


def test_new_channels_and_url_requirements_are_named(rendered):
    source = read_environment(
        "channels: [conda-forge, attackerchan]\ndependencies:\n  - other::geopandas\n"
        "  - pip:\n      - tool @ https://example.org/tool-1.0.tar.gz\n",
        "src",
    )
    merged = merge(rendered["plain"], [source], SUPPORTED)
    assert "  - other::geopandas" in merged.text and "tool @ https://example.org/tool-1.0.tar.gz" in merged.text
    assert merged.notes == [
        "warning: src adds the conda channel 'attackerchan': any package of the image may now come from it",
        "warning: src installs geopandas from the conda channel 'other'",
        "warning: src installs tool @ https://example.org/tool-1.0.tar.gz with pip from a URL, not the package "
        "index: what it builds runs in the image build",
    ]


@pytest.mark.parametrize(
    "pin, kept",
    [
        ("jupyterlab=3.6", False),
        ("jupyterlab<4", False),
        ("notebook=6.5", False),
        ("jupyterlab>=3", True),
        ("jupyterlab", True),
    ],
)
def test_pins_the_image_base_cannot_have_are_left_out(pin, kept, rendered):
    """issue 28: an old repository's `jupyterlab=3.6` cannot be solved on
    repo2docker's JupyterLab 4 base; the import leaves it out and says why."""
    source = read_environment(f"dependencies:\n  - {pin}\n  - zarr\n", "src")
    merged = merge(rendered["plain"], [source], SUPPORTED, VERSIONS["image_base"])
    assert (f"  - {pin}" in merged.text) is kept and "  - zarr" in merged.text
    if not kept:
        (note,) = merged.notes
        assert note.startswith(f"src: {pin} left out: the image's base has ")


CONDA_LIST_EXPORT = """\
# This file may be used to create an environment using:
# $ conda create --name <env> --file <this file>
# platform: linux-64
_libgcc_mutex=0.1=conda_forge
numpy=1.26.4=py311h64a7726_0
python=3.11.9=hb806964_0_cpython
xarray=2024.6.0=pyhd8ed1ab_1
zarr=2.18.2=pyhd8ed1ab_0
"""


def test_conda_list_export_keeps_names_and_versions(rendered):
    """`conda list --export > env.txt` is conda's own spec file, not a
    requirements.txt: its `name=version=build` lines keep their names and
    versions in the human environment.yml, without the builds."""
    assert is_conda_list(CONDA_LIST_EXPORT) and not is_conda_list("xarray>=2024.1\n")
    env = read_conda_list(CONDA_LIST_EXPORT, "env.txt")
    assert [str(spec) for spec in env.conda] == [
        "_libgcc_mutex=0.1", "numpy=1.26.4", "python=3.11.9", "xarray=2024.6.0", "zarr=2.18.2"
    ]  # fmt: skip
    merged = merge(rendered["plain"], [env], SUPPORTED)
    assert "  - numpy=1.26.4\n" in merged.text and "py311" not in merged.text and merged.python_version == "3.11"
    assert any("stripped 5 build strings" in note for note in env.notes)
    with pytest.raises(SpecError, match=r"env.txt, line 2: `conda list --explicit` names one platform's builds"):
        read_conda_list("# platform: linux-64\n@EXPLICIT\nhttps://conda.anaconda.org/x.conda\n", "env.txt")
