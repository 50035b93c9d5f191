"""`kfg init`: propose a kale.yaml for a notebook.

A notebook tagged for Kale is translated faithfully (tags and `kubeflow_notebook`
metadata); any other notebook gets one step per `##` markdown section. Either way the
proposal is checked with the same loader as `kfg validate` before it is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kfg.kube.names import dns_label
from kfg.notebook.cellrefs import CellRefError, has_ids, parse_ref
from kfg.notebook.reader import Notebook
from kfg.scaffold import kale, sections


@dataclass
class Proposal:
    data: dict[str, Any]
    source: str  # "kale tags" or "markdown sections"
    notes: list[str] = field(default_factory=list)


def propose(notebook: Notebook, name: str | None = None) -> Proposal:
    notes: list[str] = []
    if kale.is_tagged(notebook):
        spec, meta_name = kale.translate(notebook, notes)
        source = "Kale tags"
    else:
        spec, meta_name = sections.propose(notebook, notes), None
        source = "markdown sections"
    pipeline_name = name or meta_name or dns_label(notebook.path.stem, fallback="pipeline")
    data: dict[str, Any] = {
        "apiVersion": "kfg.dev/v1alpha1",
        "kind": "NotebookPipeline",
        "metadata": {
            "name": pipeline_name,
            "annotations": {"config.kubernetes.io/local-config": "true"},
        },
        "spec": {"notebook": notebook.path.name, **spec},
    }
    return Proposal(data, source, notes)


def anchor_to_ids(proposal: Proposal, notebook: Notebook) -> None:
    """Positions shift when a cell is inserted above them; nbformat 4.5 cell ids do not.

    Proposals are made by position (that is how Kale tags and `##` sections are read); this
    turns them into ids, which is what `kfg init` writes.
    """
    spec, notes = proposal.data["spec"], proposal.notes
    if not has_ids(notebook):
        notes.append(
            f"{notebook.path.name} has no cell ids (nbformat 4.{notebook.nbformat_minor}), so"
            " cells are referred to by position; `spec.cellHashes` lets kfg notice when they"
            " move. Save it with JupyterLab 3+ or Notebook 7, then run `kfg fix --ids --write`"
        )
        return

    def to_id(value: Any) -> Any:
        try:
            ref = parse_ref(value)
        except CellRefError:
            return value
        if ref.kind not in ("position", "range"):
            return value
        first, last = notebook.cell(ref.start).id, notebook.cell(ref.end).id
        return f"id:{first}" if ref.start == ref.end else f"id:{first}..id:{last}"

    for key in ("prelude", "skip"):
        if key in spec:
            spec[key] = [to_id(v) for v in spec[key]]
    if "cell" in spec.get("parameters", {}):
        spec["parameters"]["cell"] = to_id(spec["parameters"]["cell"])
    for step in spec.get("steps", []):
        step["cells"] = [to_id(v) for v in step["cells"]]
