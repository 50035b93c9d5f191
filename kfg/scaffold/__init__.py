"""`kfg init`: propose a kale.yaml for a notebook.

A notebook tagged for Kale is translated faithfully (tags and `kubeflow_notebook`
metadata); any other notebook gets one step per `##` markdown section. Either way the
proposal is checked with the same loader as `kfg validate` before it is written.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from kfg.kube.names import dns_label
from kfg.notebook.cellrefs import CellRefError, has_ids, parse_ref
from kfg.notebook.reader import Notebook
from kfg.pysource.imports import distributions, imports, installed_version, is_stdlib
from kfg.pysource.source import parse_cell
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
    if "packages" not in spec:
        packages = propose_packages(notebook, spec, notes)
        if packages:
            spec = _after(spec, ("description", "image"), "packages", packages)
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


def _after(spec: dict[str, Any], before: tuple[str, ...], key: str, value: Any) -> dict[str, Any]:
    """`spec` with `key` placed after the keys in `before` (kale.yaml reads top-down)."""
    head = {k: v for k, v in spec.items() if k in before}
    return {**head, key: value, **{k: v for k, v in spec.items() if k not in before}}


def propose_packages(notebook: Notebook, spec: dict[str, Any], notes: list[str]) -> list[str]:
    """Pins of what the notebook imports, at the versions installed here.

    The default image is a bare Python; a step importing numpy fails in its pod although
    the notebook ran here. What is imported but not installed here is left to the user.
    """
    skipped = _expand(spec.get("skip", []))
    pins: dict[str, str] = {}
    missing: list[str] = []
    for cell in notebook.code_cells:
        if cell.position in skipped:
            continue
        tree = parse_cell(cell.source)
        if not isinstance(tree, ast.Module):
            continue
        for found in imports(tree):
            if is_stdlib(found.module) or found.module in missing:
                continue
            distribution = distributions(found.module)[0]
            version = installed_version(distribution)
            if version is None:
                missing.append(found.module)
            else:
                pins.setdefault(distribution.lower(), f"{distribution}=={version}")
    if pins:
        notes.append(
            "packages: pinned to the versions installed here for the modules the notebook"
            " imports; check them against the image"
        )
    if missing:
        names = ", ".join(f"`{m}`" for m in missing)
        notes.append(
            f"the notebook imports {names}, not installed here; add their distributions to"
            " packages (or list them in imageProvides if the image has them)"
        )
    return [pins[k] for k in sorted(pins)]


def _expand(refs: list[Any]) -> set[int]:
    """Cell numbers of `skip: [6, "9-11"]`."""
    cells: set[int] = set()
    for ref in refs:
        if isinstance(ref, int):
            cells.add(ref)
        elif isinstance(ref, str) and "-" in ref:
            low, _, high = ref.partition("-")
            if low.isdigit() and high.isdigit():
                cells.update(range(int(low), int(high) + 1))
    return cells
