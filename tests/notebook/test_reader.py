from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kfg.notebook.reader import NotebookError, parse_notebook, read_notebook
from tests.conftest import EXAMPLES
from tests.notebooks import nbformat_read, notebook_json


def test_reads_the_example() -> None:
    nb = read_notebook(EXAMPLES / "wine" / "wine.ipynb")
    assert len(nb.cells) == 22
    assert nb.cell(7).id == "load" and nb.cell(7).is_code
    assert nb.cell(1).first_line.startswith("# Wine quality")


def test_agrees_with_nbformat_on_the_examples() -> None:
    for path in EXAMPLES.glob("*/*.ipynb"):
        ours = read_notebook(path)
        theirs = nbformat_read(path)
        assert [(c.cell_type, c.source, c.id) for c in ours.cells] == [
            (c.cell_type, c.source, c.get("id")) for c in theirs.cells
        ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid JSON"),
        ("[]", "expected a JSON object"),
        ('{"cells": []}', "`nbformat` is missing"),
        ('{"worksheets": [], "nbformat": 3}', "nbformat 3 notebooks are not supported"),
        ('{"cells": {}, "nbformat": 4}', "`cells` must be a list"),
        ('{"cells": [1], "nbformat": 4}', "cell 1 is not a JSON object"),
        ('{"cells": [{"cell_type": "x"}], "nbformat": 4}', "unknown cell_type"),
        ('{"cells": [{"cell_type": "code", "source": 3}], "nbformat": 4}', "`source` must be"),
        (
            '{"cells": [{"cell_type": "code", "source": "", "metadata": {"tags": "a"}}], "nbformat": 4}',
            "tags",
        ),
        ("[" * 100_000, "nested too deeply"),
        ('{"cells": [], "nbformat": 99}', "nbformat 99 notebooks are not supported"),
        (
            '{"cells": [{"cell_type": "code", "source": "", "id": "a"},'
            ' {"cell_type": "code", "source": "", "id": "a"}], "nbformat": 4}',
            "cell 2: id `a` is also the id of cell 1",
        ),
        (
            '{"cells": [{"cell_type": "code", "source": "", "id": "a b"}], "nbformat": 4}',
            "cell 1: `id` must be 1 to 64",
        ),
    ],
)
def test_malformed_notebooks(text: str, message: str) -> None:
    with pytest.raises(NotebookError, match=message):
        parse_notebook(text, Path("x.ipynb"))


def test_json_errors_carry_their_line() -> None:
    with pytest.raises(NotebookError) as err:
        parse_notebook('{\n "cells": [\n  ,\n]}', Path("x.ipynb"))
    assert err.value.line == 3


def test_missing_file_is_a_notebook_error(tmp_path: Path) -> None:
    with pytest.raises(NotebookError, match="cannot read"):
        read_notebook(tmp_path / "nope.ipynb")


def test_list_sources_are_joined() -> None:
    raw = json.loads(notebook_json([("code", "a = 1")]))
    raw["cells"][0]["source"] = ["a = 1\n", "b = 2"]
    assert parse_notebook(json.dumps(raw), Path("x.ipynb")).cell(1).source == "a = 1\nb = 2"


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    ["cells", "nbformat", "cell_type", "source", "metadata", "tags", "id"]
                ),
                inner,
                max_size=5,
            )
        ),
        max_leaves=25,
    )
)
def test_any_json_reads_or_fails_cleanly(value: object) -> None:
    try:
        parse_notebook(json.dumps(value), Path("x.ipynb"))
    except NotebookError as exc:
        assert exc.message
