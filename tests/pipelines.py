"""Build a small notebook and kale.yaml in a temporary git repository, and load them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from kfg.core.load import LoadResult, load_pipeline
from tests.notebooks import Cell, write_notebook


def make(
    directory: Path,
    cells: Sequence[Cell],
    steps: Sequence[Mapping[str, object]],
    **spec: object,
) -> LoadResult:
    """Cells are numbered from 1; `steps` and `spec` go into kale.yaml's spec as given."""
    (directory / ".git").mkdir(exist_ok=True)
    write_notebook(directory / "n.ipynb", cells)
    document = {
        "apiVersion": "kfg.dev/v1alpha1",
        "kind": "NotebookPipeline",
        "metadata": {"name": "p"},
        "spec": {"notebook": "n.ipynb", "steps": steps, **spec},
    }
    path = directory / "kale.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return load_pipeline(path)


def messages(result: LoadResult) -> list[str]:
    return [f"{d.severity.value}: {d.message}" for d in result.diagnostics]


def chain(directory: Path, steps: int, **spec: object) -> LoadResult:
    """A pipeline of `steps` small steps, each reading the value the previous one wrote."""
    cells: list[Cell] = [("code", "import math"), ("code", "scale = 2")]
    cells.append(("code", "value_0 = [i * scale for i in range(100)]"))
    for index in range(1, steps):
        cells.append(
            (
                "code",
                f"value_{index} = [math.sqrt(abs(v)) + {index} for v in value_{index - 1}]\n"
                f"print('step {index}', sum(value_{index}))",
            )
        )
    return make(
        directory,
        cells,
        [{"name": f"s{i}", "cells": [i + 3]} for i in range(steps)],
        prelude=[1],
        parameters={"cell": 2},
        **spec,
    )
