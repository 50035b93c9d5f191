"""Build small notebooks for tests, so each test shows the cells it is about."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbformat import NotebookNode

Cell = tuple[str, str] | tuple[str, str, list[str]]


def notebook_json(
    cells: Sequence[Cell], metadata: dict[str, Any] | None = None, minor: int = 5
) -> str:
    out = []
    for index, cell in enumerate(cells, start=1):
        kind, source = cell[0], cell[1]
        tags = cell[2] if len(cell) > 2 else []
        item: dict[str, Any] = {
            "cell_type": "markdown" if kind == "md" else kind,
            "metadata": {"tags": tags} if tags else {},
            "source": source,
        }
        if minor >= 5:
            item["id"] = f"c{index}"
        if item["cell_type"] == "code":
            item.update(execution_count=None, outputs=[])
        out.append(item)
    book = {"cells": out, "metadata": metadata or {}, "nbformat": 4, "nbformat_minor": minor}
    return json.dumps(book, indent=1)


def write_notebook(
    path: Path, cells: Sequence[Cell], metadata: dict[str, Any] | None = None, minor: int = 5
) -> Path:
    path.write_text(notebook_json(cells, metadata, minor), encoding="utf-8")
    return path


# nbformat, the reference implementation the tests compare with and execute through
# nbclient, annotates neither of these functions: typed here, once.
def nbformat_read(path: Path) -> NotebookNode:
    """The notebook as nbformat reads it, as nbformat 4."""
    import nbformat

    book: NotebookNode = nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]
    return book


def nbformat_code_cell(source: str) -> NotebookNode:
    """A new nbformat 4 code cell holding `source`."""
    import nbformat

    cell: NotebookNode = nbformat.v4.new_code_cell(source)  # type: ignore[no-untyped-call]
    return cell


KALE_TITANIC: list[Cell] = [
    ("md", "# Titanic"),
    ("code", "import pandas as pd\nimport numpy as np", ["imports"]),
    ("code", "def clean(x):\n    return x", ["functions"]),
    (
        "code",
        "n_estimators = 100\nlearning_rate = 0.1\ncriterion = 'gini'",
        ["pipeline-parameters"],
    ),
    ("code", "train = pd.DataFrame({'a': [1, 2]})", ["block:load_data"]),
    ("code", "train.describe()", ["skip"]),
    ("code", "train = clean(train)"),
    (
        "code",
        "features = train * 2",
        ["step:feature_engineering", "prev:load_data", "limit:memory:4Gi", "label:team:ml"],
    ),
    (
        "code",
        "acc_forest = float(n_estimators) / 1000\nlr = learning_rate",
        [
            "step:random_forest",
            "prev:feature_engineering",
            "limit:nvidia.com/gpu:1",
            "image:pytorch/pytorch:2.5.1",
            "cache:false",
            "secret:s3-creds:AWS_KEY:AWS_ACCESS_KEY_ID",
        ],
    ),
    (
        "code",
        "acc_svm = 0.5",
        ["step:svm", "prev:feature_engineering", "annotation:example.com/owner:ds"],
    ),
    ("code", "print(acc_forest)\nprint(acc_svm)", ["pipeline-metrics"]),
]

KALE_METADATA: dict[str, Any] = {
    "kubeflow_notebook": {
        "pipeline_name": "titanic_ml",
        "pipeline_description": "Predict survival",
        "docker_image": "python:3.11-slim",
        "steps_defaults": ["label:app:titanic"],
        "volumes": [
            {
                "name": "titanic-data",
                "mount_point": "/data",
                "type": "pvc",
                "snapshot": True,
                "snapshot_name": "v2",
            }
        ],
        "katib_metadata": {
            "algorithm": {"algorithmName": "grid"},
            "maxFailedTrialCount": 3,
            "maxTrialCount": 12,
            "parallelTrialCount": 3,
            "objective": {"objectiveMetricName": "acc_forest", "type": "maximize", "goal": 0.99},
            "parameters": [
                {
                    "name": "n_estimators",
                    "parameterType": "int",
                    "feasibleSpace": {"min": "50", "max": "200", "step": "50"},
                },
                {
                    "name": "learning_rate",
                    "parameterType": "double",
                    "feasibleSpace": {"min": "0.01", "max": "0.5", "step": "0.05"},
                },
                {
                    "name": "criterion",
                    "parameterType": "categorical",
                    "feasibleSpace": {"list": ["gini", "entropy"]},
                },
            ],
        },
    }
}
