"""The example notebooks run offline, top to bottom, with their skipped cells left out."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from kfg.config.load import load_pipeline
from kfg.notebook.reader import read_notebook
from tests.conftest import EXAMPLES


def run_without_skipped(config: Path) -> dict[str, Any]:
    """Execute the notebook's code cells in order, leaving out `spec.skip`: what a pipeline runs."""
    pipeline = load_pipeline(config).pipeline
    assert pipeline is not None
    notebook = read_notebook(pipeline.notebook)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for cell in notebook.code_cells:
        if cell.position not in pipeline.skip:
            exec(compile(cell.source, f"cell {cell.position}", "exec"), namespace)
    return {m.name: namespace[m.variable] for m in pipeline.metrics}


@pytest.mark.parametrize("name", ["wine", "digits"])
def test_example_runs_and_produces_its_metrics(name: str) -> None:
    metrics = run_without_skipped(EXAMPLES / name / "kale.yaml")
    assert metrics
    for value in metrics.values():
        assert isinstance(value, float) and math.isfinite(value) and 0.5 < value <= 1.0
