"""The source import edits the hub's rendered YAML round trip
(hooks/hub_template/yaml_edit.py): every file of every cell comes back byte
for byte, and an import changes the lines it adds or replaces and no other."""

from __future__ import annotations

import copy
import difflib
import itertools
import random

import pytest
import yaml
from hub_cells import CELLS, rendered_hub

from hub_template import load_data, yaml_edit
from hub_template.environment import merge, read_environment
from hub_template.source_import import merge_dask_config

EDITED = ["image/binder/environment.yml", "image/.dask/config.yaml"]
SUPPORTED = load_data("versions.yml")["python_supported"]


def changes(before: str, after: str) -> tuple[list[str], list[str]]:
    """(lines removed, lines added) from `before` to `after`."""
    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    return [d[2:] for d in diff if d.startswith("- ")], [d[2:] for d in diff if d.startswith("+ ")]


@pytest.mark.parametrize("cell", CELLS, ids=["-".join(c) for c in CELLS])
def test_every_rendered_file_the_import_edits_comes_back_byte_for_byte(template_repo, tmp_path_factory, cell):
    hub = rendered_hub(template_repo, tmp_path_factory, *cell)
    for name in EDITED:
        text = (hub / name).read_text()
        assert yaml_edit.dump(yaml_edit.load(text, name)) == text, name


def test_an_import_changes_only_the_lines_it_adds_or_replaces(template_repo, tmp_path_factory):
    text = (rendered_hub(template_repo, tmp_path_factory, "gcp", "sops", "gateway") / EDITED[0]).read_text()
    source = read_environment(
        "channels: [conda-forge, pyviz]\n"
        "dependencies:\n  - gcsfs=2024.6.1\n  - zarr>=2.18\n  - geopandas\n  - pip:\n      - odc-stac==0.3.9\n",
        "src",
    )
    removed, added = changes(text, merge(text, [source], SUPPORTED).text)
    assert removed == ["  - gcsfs  # reads and writes the scratch bucket", "  - zarr"]
    assert added == [
        "  - pyviz",
        "  - gcsfs=2024.6.1  # reads and writes the scratch bucket",  # the comment keeps its distance
        "  - zarr>=2.18",
        "  - geopandas",
        "  - pip",
        "  - pip:",
        "      - odc-stac==0.3.9",
    ]


def test_dask_settings_join_the_hubs_blocks_under_a_comment(template_repo, tmp_path_factory):
    text = (rendered_hub(template_repo, tmp_path_factory, "gcp", "sops", "gateway") / EDITED[1]).read_text()
    source = {"labextension": {"default": {"threads": 2}}, "distributed": {"scheduler": {"work-stealing": False}}}
    merged, notes = merge_dask_config(text, [("src", {**source, "array": {"chunk-size": "128MiB"}})])
    removed, added = changes(text, merged)
    assert removed == [] and notes == []
    comment = "# Imported from the source repository."
    assert added == [
        f"    {comment}",
        "    threads: 2",
        f"  {comment}",
        "  scheduler:",
        "    work-stealing: false",
        "",
        comment,
        "array:",
        "  chunk-size: 128MiB",
    ]
    # the hub's blank line still ends labextension: the addition is inside it
    lines = merged.splitlines()
    assert lines[lines.index("    threads: 2") + 1] == "" and lines[lines.index("    threads: 2") + 2] == "gateway:"


@pytest.mark.parametrize(
    "text, expected",
    [
        # a blank line and a comment that introduce the next block stay above it
        ("a:\n  b: 1\n\n# about c\nc: 2\n", "a:\n  b: 1\n  new: 3\n\n# about c\nc: 2\n"),
        # a comment at the entries' column is the block's own: it stays above the new entry
        ("a:\n  b: 1\n  # more of a\nc: 2\n", "a:\n  b: 1\n  # more of a\n  new: 3\nc: 2\n"),
        # nested: the lines after the deepest entry
        ("a:\n  b:\n    x: 1\n\nc: 2\n", "a:\n  b:\n    x: 1\n  new: 3\n\nc: 2\n"),
        # an end-of-line comment stays on its line
        ("a:\n  b: 1  # one\n\nc: 2\n", "a:\n  b: 1  # one\n  new: 3\n\nc: 2\n"),
    ],
)
def test_append_keeps_the_lines_that_follow_a_block_after_it(text, expected):
    document = yaml_edit.load(text, "t.yml")
    yaml_edit.append(document["a"], 3, key="new")
    assert yaml_edit.dump(document) == expected


def test_a_list_entry_goes_after_the_comment_that_heads_it():
    text = "deps:\n  - a  # why a\n  # The hub's own packages.\n"
    document = yaml_edit.load(text, "t.yml")
    yaml_edit.append(document["deps"], "b")
    assert yaml_edit.dump(document) == "deps:\n  - a  # why a\n  # The hub's own packages.\n  - b\n"


def test_a_file_that_is_no_yaml_is_refused_with_its_name():
    with pytest.raises(yaml_edit.EditError, match=r"^image/.dask/config.yaml is not valid YAML \("):
        yaml_edit.load("a: [1\n", "image/.dask/config.yaml")


def generated_document(rng: random.Random, depth: int = 0, indent: int = 0) -> tuple[list[str], dict]:
    """Lines of a block mapping with comments, blank lines, lists and nested
    blocks, and the data they hold; every key and comment is a line of its own kind."""
    lines: list[str] = []
    data: dict = {}
    pad = " " * indent
    for index in range(rng.randint(1, 4)):
        key = f"k{depth}{index}{rng.getrandbits(32):08x}"
        if rng.random() < 0.3:
            lines.append(f"{pad}# about {key}")
        if depth < 3 and rng.random() < 0.5:
            lines.append(f"{pad}{key}:" + ("  # end of line" if rng.random() < 0.3 else ""))
            nested, data[key] = generated_document(rng, depth + 1, indent + 2)
            lines += nested
        elif rng.random() < 0.25:
            data[key] = [f"{key}-{n}" for n in range(rng.randint(1, 3))]
            lines += [f"{pad}{key}:", *(f"{pad}  - {item}" for item in data[key])]
        else:
            data[key] = index
            lines.append(f"{pad}{key}: {index}" + ("  # end of line" if rng.random() < 0.3 else ""))
        if rng.random() < 0.3:
            lines.append("")
        if rng.random() < 0.2:
            lines.append(" " * max(0, indent - 2) + f"# what follows {rng.getrandbits(32):08x}")
    return lines, data


@pytest.mark.parametrize("seed", range(200))
def test_append_anywhere_keeps_every_line_and_adds_the_data(seed):
    rng = random.Random(seed)
    lines, data = generated_document(rng)
    text = "\n".join(lines) + "\n"
    document = yaml_edit.load(text, "t.yml")
    assert yaml_edit.dump(document) == text
    node, expected = document, copy.deepcopy(data)
    inner = expected
    while (blocks := [key for key in node if isinstance(node[key], dict)]) and rng.random() < 0.6:
        key = rng.choice(blocks)
        node, inner = node[key], inner[key]
    yaml_edit.append(node, {"x": [1, 2]}, key="added", comment="Imported")
    inner["added"] = {"x": [1, 2]}
    merged = yaml_edit.dump(document)
    assert yaml.safe_load(merged) == expected
    removed, added = changes(text, merged)
    assert removed == []  # every line of the file stays, in order
    assert added[0].strip() == "# Imported"
    # a blank line or a comment right above an entry is right above it still
    after = merged.splitlines()
    for above, entry in itertools.pairwise(lines):
        heading = not above.strip() or above.lstrip().startswith("#")
        if heading and entry.strip() and not entry.lstrip().startswith("#"):
            assert after[after.index(entry) - 1] == above, (above, entry)
