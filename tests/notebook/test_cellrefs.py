from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kfg.notebook.cellrefs import CellRefError, compress, compress_ids, parse_ref, resolve
from kfg.notebook.reader import parse_notebook
from tests.notebooks import notebook_json

NB = parse_notebook(
    notebook_json([("md", "# t"), ("code", "a", ["x"]), ("code", "b"), ("code", "c", ["x", "y"])]),
    Path("n.ipynb"),
)


@pytest.mark.parametrize(
    ("ref", "cells"),
    [
        (2, [2]),
        ("2", [2]),
        ("2-4", [2, 3, 4]),
        (" 1 - 2 ", [1, 2]),
        ("id:c3", [3]),
        ("id:c2..id:c4", [2, 3, 4]),
        ("id:c1..id:c1", [1]),
        ("tag:x", [2, 4]),
    ],
)
def test_resolve(ref: int | str, cells: list[int]) -> None:
    assert resolve(parse_ref(ref), NB) == cells


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (5, "cell 5 is out of range: n.ipynb has 4 cells"),
        ("3-9", "cell 9 is out of range"),
        ("4-2", "runs backwards"),
        ("id:c9", "no cell of n.ipynb has id `c9`"),
        ("id:c4..id:c2", "runs backwards: cell 4 comes after cell 2; write `id:c2..id:c4`"),
        ("id:c2..id:c8", "no cell of n.ipynb has id `c8`"),
        ("tag:z", "carries tag `z`"),
    ],
)
def test_resolve_errors(ref: int | str, message: str) -> None:
    with pytest.raises(CellRefError, match=message):
        resolve(parse_ref(ref), NB)


def test_id_refs_need_ids() -> None:
    old = parse_notebook(notebook_json([("code", "a")], minor=4), Path("o.ipynb"))
    with pytest.raises(CellRefError, match="has no cell ids"):
        resolve(parse_ref("id:x"), old)


@given(st.lists(st.integers(min_value=1, max_value=60), max_size=30))
def test_compress_selects_exactly_the_same_cells(positions: list[int]) -> None:
    refs = compress(positions)
    expanded: list[int] = []
    for ref in refs:
        parsed = parse_ref(ref)
        expanded.extend(range(parsed.start, parsed.end + 1))
    assert expanded == sorted(set(positions))
    assert len(refs) <= len(set(positions))


@pytest.mark.parametrize("ref", ["id:c1..c3", "id:..id:c3", "id:c1..id:"])
def test_malformed_id_ranges(ref: str) -> None:
    with pytest.raises(CellRefError, match="is not an id range"):
        parse_ref(ref)


def test_compress_ids_keeps_the_same_cells_as_ranges_of_ids() -> None:
    assert compress_ids([2, 3, 4, 1], NB) == ["id:c1..id:c4"]
    assert compress_ids([1, 3], NB) == ["id:c1", "id:c3"]
    for ref in compress_ids([2, 4], NB):
        assert resolve(parse_ref(ref), NB) in ([2], [4])
