from __future__ import annotations

import json
from pathlib import Path

from kfg.notebook.anchors import detect, fingerprint, record
from kfg.notebook.reader import Notebook, parse_notebook
from tests.notebooks import Cell, notebook_json

CELLS: list[Cell] = [("code", "a = 1"), ("code", "b = a"), ("md", "# x"), ("code", "c = b")]


def _nb(cells: list[Cell]) -> Notebook:
    return parse_notebook(notebook_json(cells), Path("n.ipynb"))


def test_fingerprint_ignores_trailing_whitespace_but_not_code_or_type() -> None:
    plain, spaced = _nb([("code", "x = 1\n")]).cells[0], _nb([("code", "x = 1   \n\n")]).cells[0]
    assert fingerprint(plain) == fingerprint(spaced)
    assert len(fingerprint(plain)) == 8
    assert fingerprint(plain) != fingerprint(_nb([("code", "x = 2")]).cells[0])
    assert fingerprint(plain) != fingerprint(_nb([("md", "x = 1")]).cells[0])


def test_nothing_moved_and_edits_in_place_are_not_drift() -> None:
    recorded = record([1, 2, 4], _nb(CELLS), by_id=False)
    assert list(recorded) == ["1", "2", "4"]
    assert not detect(recorded, _nb(CELLS))
    edited = [("code", "a = 2"), *CELLS[1:]]
    assert not detect(recorded, _nb(edited))


def test_an_insertion_is_located_and_followed() -> None:
    recorded = record([1, 2, 4], _nb(CELLS), by_id=False)
    drift = detect(recorded, _nb([*CELLS[:2], ("code", "new = 0"), *CELLS[2:]]))
    assert drift.moves == {4: 5}
    assert drift.changes == ["a cell was inserted between cell 2 and cell 5"]
    # The new cell is somewhere in 3-4; an unrecorded cell moves with the recorded one above.
    assert drift.translate(3) == 3
    top = detect(recorded, _nb([("code", "import os"), ("code", "import re"), *CELLS]))
    assert top.changes == ["2 cells were inserted at 1-2"]
    assert top.moves == {1: 3, 2: 4, 4: 6}


def test_a_deletion_is_located() -> None:
    recorded = record([1, 2, 4], _nb(CELLS), by_id=False)
    drift = detect(recorded, _nb([CELLS[0], *CELLS[2:]]))
    assert drift.changes == ["a cell was deleted after cell 1"]
    assert drift.moves == {4: 3}


def _with_ids(ids: list[str]) -> Notebook:
    book = json.loads(notebook_json(CELLS))
    for cell, cell_id in zip(book["cells"], ids, strict=True):
        cell["id"] = cell_id
    book["nbformat_minor"] = 5
    return parse_notebook(json.dumps(book), Path("n.ipynb"))


def test_an_id_of_digits_only_is_keyed_so_it_cannot_read_as_a_position() -> None:
    """nbformat makes ids of 8 hex digits; about one in fifty is all digits. Keyed bare,
    `20240131` read as a position and kfg reported 20 million deleted cells."""
    ids = ["aa11", "20240131", "cc33", "dd44"]
    book = _with_ids(ids)
    recorded = record([1, 2, 4], book, by_id=True)
    assert list(recorded) == ["aa11", "id:20240131", "dd44"]
    assert not detect(recorded, book)
    # A kale.yaml an older kfg wrote keyed it bare: still an id, since a cell has it.
    legacy = {("20240131" if k == "id:20240131" else k): v for k, v in recorded.items()}
    assert not detect(legacy, book)
