"""`kfg init`: propose a kale.yaml for a notebook.

A notebook tagged for Kale is translated faithfully (tags and `kubeflow_notebook`
metadata); any other notebook gets one step per `##` markdown section. Either way the
proposal is checked with the same loader as `kfg validate` before it is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kfg.kube.names import dns_label
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
