"""Generated kale.yaml documents and notebooks (hypothesis): whatever the shape, kfg answers
with an exit status and a line, never an internal error, and writes nothing on failure."""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile.harness import KALE, NOTEBOOK, check, invoke, project, tree

BASE: dict[str, Any] = yaml.safe_load(KALE)
SPEC_KEYS = [*BASE["spec"], "packages", "prelude", "skip", "volumes", "description", "tuning"]
STEP_KEYS = [
    "name",
    "cells",
    "after",
    "resources",
    "env",
    "timeout",
    "retries",
    "caching",
    "image",
    "packages",
    "labels",
    "volumes",
    "secrets",
    "tolerations",
]

# Scalars that have broken parsers before: numbers at the edges, YAML-looking strings,
# shell metacharacters, newlines, unicode.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "",
            "9E",
            "1e400",
            ".nan",
            "2-",
            "1-3",
            "$(touch pwned)",
            "a\nb",
            "-1",
            "python:3.11-slim",
            "prepare",
            "score",
            "tiny.ipynb",
            "100m",
            "1Gi",
        ]
    ),
    st.text(max_size=20),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """The tiny pipeline with some fields replaced, removed or added."""
    document = copy.deepcopy(BASE)
    target: object  # any generated value: only a mapping gets a field changed
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(["top", "metadata", "spec", "step"]))
        if where == "top":
            target, keys = document, ["apiVersion", "kind", "metadata", "spec"]
        elif where == "metadata":
            target, keys = document.get("metadata"), ["name", "namespace", "labels"]
        elif where == "spec":
            target, keys = document.get("spec"), SPEC_KEYS
        else:
            spec = document.get("spec")
            steps = spec.get("steps") if isinstance(spec, dict) else None
            if not isinstance(steps, list) or not steps or not isinstance(steps[0], dict):
                continue
            target, keys = draw(st.sampled_from(steps)), STEP_KEYS
        if not isinstance(target, dict):
            continue
        key = draw(st.sampled_from(keys))
        if draw(st.booleans()) and key in target:
            del target[key]
        else:
            target[key] = draw(VALUES)
    return document


@st.composite
def notebooks(draw: st.DrawFn) -> dict[str, Any]:
    """The tiny notebook with its fields or cells replaced by generated values."""
    book = copy.deepcopy(NOTEBOOK)
    for _ in range(draw(st.integers(1, 3))):
        choice = draw(st.sampled_from(["top", "cell", "cell-field", "source"]))
        if choice == "top":
            book[draw(st.sampled_from(["nbformat", "nbformat_minor", "metadata", "cells"]))] = draw(
                VALUES
            )
        elif not isinstance(book.get("cells"), list) or not book["cells"]:
            continue
        elif choice == "cell":
            book["cells"][draw(st.integers(0, len(book["cells"]) - 1))] = draw(VALUES)
        else:
            cell = book["cells"][draw(st.integers(0, len(book["cells"]) - 1))]
            if isinstance(cell, dict):
                key = (
                    "source"
                    if choice == "source"
                    else draw(st.sampled_from(["cell_type", "id", "metadata", "outputs"]))
                )
                cell[key] = draw(st.text(max_size=40)) if choice == "source" else draw(VALUES)
    return book


@contextmanager
def scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="kfg-hostile-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# The default run is fixed (derandomised) and small enough for `make test`; set
# KFG_HOSTILE_EXAMPLES to search further with fresh examples.
EXAMPLES = os.environ.get("KFG_HOSTILE_EXAMPLES")
SETTINGS = settings(
    max_examples=int(EXAMPLES) if EXAMPLES else 40,
    deadline=None,
    derandomize=not EXAMPLES,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@SETTINGS
@given(documents())
def test_generated_kale_yaml(document: dict[str, Any]) -> None:
    with scratch() as tmp:
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
        root = project(tmp / "p", text)
        before = tree(root)
        validated = invoke(["validate", "kale.yaml"], root)
        check(validated, valid=None, names="kale.yaml", located=False)
        for args in (["graph", "kale.yaml"], ["render", "kale.yaml", "-o", "out", "--root", "."]):
            outcome = invoke(args, root)
            check(outcome, valid=validated.code == 0, names="kale.yaml", located=False)
            if outcome.code != 0:
                assert tree(root) == before


@SETTINGS
@given(notebooks())
def test_generated_notebooks(book: dict[str, Any]) -> None:
    with scratch() as tmp:
        root = project(tmp / "p", KALE, book)
        before = tree(root)
        for args in (
            ["validate", "kale.yaml"],
            ["cells", "tiny.ipynb"],
            ["init", "tiny.ipynb", "-o", "new.yaml"],
        ):
            outcome = invoke(args, root)
            check(outcome, valid=None, names=("tiny.ipynb", "kale.yaml", "new.yaml"), located=False)
            if outcome.code != 0:
                assert tree(root) == before


def test_generated_documents_are_json_serialisable() -> None:
    # The strategies above build plain data that yaml.safe_dump and json both write.
    assert json.loads(json.dumps(BASE)) == BASE
