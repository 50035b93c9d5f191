"""Build a small notebook and kale.yaml in a temporary git repository, and load them."""

from __future__ import annotations

from pathlib import Path

import yaml

from kfg.core.load import LoadResult, load_pipeline
from tests.notebooks import Cell, write_notebook


def make(
    directory: Path,
    cells: list[Cell],
    steps: list[dict[str, object]],
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
