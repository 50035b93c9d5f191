"""The reference a pipeline is compared with: its notebook run top to bottom by a real kernel."""

from __future__ import annotations

import json
from pathlib import Path

from nbclient import NotebookClient

from kfg.core.load import load_pipeline
from tests.notebooks import nbformat_code_cell, nbformat_read

MARKER = "KFG-METRICS="


def notebook_metrics(config: Path, timeout: int = 600) -> dict[str, float]:
    """Execute the notebook with nbclient, leaving out `spec.skip`, and read the metrics."""
    pipeline = load_pipeline(config).pipeline
    assert pipeline is not None
    book = nbformat_read(pipeline.notebook)
    kept = [
        cell
        for position, cell in enumerate(book.cells, start=1)
        if cell.cell_type == "code" and position not in pipeline.skip
    ]
    variables = {m.name: m.variable for m in pipeline.metrics}
    kept.append(
        nbformat_code_cell(
            f"import json\nprint({MARKER!r} + json.dumps({{n: float(globals()[v]) for n, v in"
            f" {variables!r}.items()}}))"
        )
    )
    book.cells = kept
    NotebookClient(book, timeout=timeout, kernel_name="python3").execute(
        cwd=str(pipeline.notebook.parent)
    )
    for output in book.cells[-1].outputs:
        text = output.get("text", "")
        if MARKER in text:
            metrics: dict[str, float] = json.loads(text.split(MARKER, 1)[1])
            return metrics
    raise AssertionError(f"no metrics printed: {book.cells[-1].outputs}")
