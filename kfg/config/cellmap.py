"""Which notebook cell belongs to which part of the pipeline.

Every code cell should have exactly one role: prelude, skip, parameters, or one step. This
module resolves the cell references of a kale.yaml against its notebook, reports references
that select nothing, cells claimed twice and cells claimed by nobody, and keeps the result
for `kfg cells` and for rendering.

When kale.yaml records `spec.cellHashes`, positions are first checked against them: if the
notebook changed under a positional kale.yaml, one `cells-moved` error says how, and the
references are followed to where their cells went, so the remaining checks see the cells
the author meant rather than a cascade of errors about whatever now sits at those numbers.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from kfg.config.findings import Findings
from kfg.diagnostics import Severity
from kfg.files.yamlsource import Path
from kfg.notebook import anchors
from kfg.notebook.cellrefs import CellRef, CellRefError, parse_ref, resolve
from kfg.notebook.reader import Cell, Notebook
from kfg.pysource.scopes import Kind, code_facts
from kfg.pysource.source import parse_cell

PRELUDE = "prelude"
SKIP = "skip"
PARAMETERS = "parameters"


def step_role(name: str) -> str:
    return f"step:{name}"


def describe_role(role: str) -> str:
    """`step `train``, `the prelude`... for messages."""
    if role.startswith("step:"):
        return f"step `{role[5:]}`"
    return {PRELUDE: "the prelude", SKIP: "skip", PARAMETERS: "the parameters cell"}[role]


@dataclass
class CellMap:
    """Roles of cells by 1-based position, and the code cells of each section in order."""

    roles: dict[int, str] = field(default_factory=dict)
    sections: dict[str, list[int]] = field(default_factory=dict)

    def role_label(self, position: int) -> str:
        role = self.roles.get(position, "")
        return role.removeprefix("step:")


def _section_refs(spec: dict[str, Any]) -> list[tuple[str, Path, list[Any]]]:
    sections: list[tuple[str, Path, list[Any]]] = []
    for name in (PRELUDE, SKIP):
        if name in spec:
            sections.append((name, ("spec", name), spec[name]))
    parameters = spec.get("parameters", {})
    if "cell" in parameters:
        sections.append((PARAMETERS, ("spec", "parameters", "cell"), [parameters["cell"]]))
    for index, step in enumerate(spec.get("steps", [])):
        sections.append((step_role(step["name"]), ("spec", "steps", index, "cells"), step["cells"]))
    return sections


def _shown(cell: Cell) -> str:
    first_line = cell.first_line
    return first_line if len(first_line) <= 40 else first_line[:37] + "..."


def _drift_message(drift: anchors.Drift, spec: dict[str, Any], notebook: Notebook) -> str:
    """ "cells moved: a cell was inserted at 1; step `load` referred to cell 6, which is now
    cell 7": what happened first, then the references it broke, most important first."""
    broken: list[tuple[bool, int, str]] = []
    for role, _, refs in _section_refs(spec):
        for value in refs:
            try:
                ref = parse_ref(value)
            except CellRefError:
                continue
            if ref.kind not in ("position", "range"):
                continue
            start, end = drift.translate(ref.start), drift.translate(ref.end)
            if (start, end) == (ref.start, ref.end):
                continue
            if ref.start == ref.end:
                what = f"cell {ref.start}, which is now cell {start}"
            elif start > end:
                what = (
                    f"cells {ref.start}-{ref.end}, whose first is now cell {start} and last"
                    f" cell {end} (reordered: list its cells by hand)"
                )
            else:
                what = f"cells {ref.start}-{ref.end}, which are now {start}-{end}"
            broken.append(
                (
                    not role.startswith("step:"),
                    ref.start,
                    f"{describe_role(role)} referred to {what}",
                )
            )
    broken.sort()
    moved = [text for _, _, text in broken]
    shown = moved[:2] + ([f"{len(moved) - 2} more"] if len(moved) > 2 else [])
    what = "; ".join([*drift.changes[:2], *shown])
    return (
        f"cells moved in {notebook.path.name}: {what}; run `kfg fix --write` to follow the"
        " notebook (or `kfg fix --ids --write` to anchor cells by id)"
    )


def _recorded_span(ref: CellRef, recorded: dict[str, str]) -> set[str] | None:
    """The ids an id range covered when its hashes were recorded (keys in notebook order)."""
    keys = [anchors.recorded_id(k) for k in recorded]
    if ref.key not in keys or ref.end_key not in keys:
        return None
    first, last = keys.index(ref.key), keys.index(ref.end_key)
    return set(keys[first : last + 1])


def _select(
    ref: CellRef, notebook: Notebook, drift: anchors.Drift | None, recorded: dict[str, str]
) -> tuple[list[int], list[int]]:
    """The cells `ref` selects and, of those, the ones that are new since the record."""
    if drift and ref.kind in ("position", "range"):
        start, end = drift.translate(ref.start), drift.translate(ref.end)
        if end > len(notebook.cells):
            raise CellRefError(
                f"cell {end} is out of range: {notebook.path.name} has {len(notebook.cells)} cells"
            )
        selected = list(range(start, end + 1))
        known = {drift.translate(p) for p in range(ref.start, ref.end + 1)}
        return selected, [p for p in selected if p not in known]
    selected = resolve(ref, notebook)
    if ref.kind == "idrange":
        span = _recorded_span(ref, recorded)
        if span is not None:
            return selected, [p for p in selected if notebook.cell(p).id not in span]
    return selected, []


def _recorded_hashes(spec: dict[str, Any]) -> dict[str, str]:
    raw = spec.get("cellHashes")
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def map_cells(spec: dict[str, Any], notebook: Notebook, findings: Findings) -> CellMap:
    cellmap = CellMap()
    claimed_at: dict[int, Path] = {}
    recorded = _recorded_hashes(spec)
    drift = anchors.detect(recorded, notebook) if recorded else None
    if drift:
        findings.error(
            ("spec", "cellHashes"), "cells-moved", _drift_message(drift, spec, notebook), key=True
        )
    for role, path, refs in _section_refs(spec):
        positions: list[int] = []
        single_ref = role == PARAMETERS
        for index, value in enumerate(refs):
            ref_path = path if single_ref else (*path, index)
            try:
                ref = parse_ref(value)
                selected, new = _select(ref, notebook, drift, recorded)
            except CellRefError as exc:
                findings.error(ref_path, "bad-cell-ref", exc.message)
                continue
            for position in new:
                cell = notebook.cell(position)
                if cell.is_code and not cell.is_blank and role.startswith("step:"):
                    findings.warning(
                        ref_path,
                        "new-cell-in-range",
                        f"cell {position} (`{_shown(cell)}`) is new inside `{ref}`, so"
                        f" {describe_role(role)} runs it; `kfg fix --write` records it",
                    )
            for position in selected:
                cell = notebook.cell(position)
                if not cell.is_code:
                    if ref.kind == "position" and role != SKIP and not drift:
                        findings.warning(
                            ref_path,
                            "not-code",
                            f"cell {position} is a {cell.cell_type} cell; only code cells run",
                        )
                    continue
                if position in claimed_at:
                    if cell.is_blank:
                        continue
                    first = claimed_at[position]
                    owner = cellmap.roles[position]
                    same = " again" if owner == role else f" already in {describe_role(owner)}"
                    findings.error(
                        ref_path,
                        "cell-claimed-twice",
                        f"cell {position} is listed{same} (line {findings.line(first)});"
                        " a code cell belongs to one place",
                    )
                    continue
                claimed_at[position] = ref_path
                cellmap.roles[position] = role
                positions.append(position)
        cellmap.sections[role] = sorted(positions)
    for role, positions in cellmap.sections.items():
        if role.startswith("step:") and all(notebook.cell(p).is_blank for p in positions):
            index = next(i for i, s in enumerate(spec["steps"]) if step_role(s["name"]) == role)
            field = f"spec.steps[{index}].cells"
            if not any(
                d.field.startswith(field) and d.severity is Severity.ERROR for d in findings.items
            ):
                findings.error(
                    ("spec", "steps", index, "cells"),
                    "empty-step",
                    f"step `{role[5:]}` has no code to run: its cells are empty or not code",
                )
    unassigned = [
        c.position
        for c in notebook.code_cells
        if not c.is_blank and c.position not in cellmap.roles
    ]
    for position in unassigned:
        cell = notebook.cell(position)
        findings.warning(
            ("spec", "steps"),
            "unassigned-cell",
            f"code cell {position} (`{_shown(cell)}`) is in no step, nor in prelude, skip or"
            f" parameters{_likely_home(cell, cellmap, notebook)} (see `kfg cells`, `kfg fix`)",
            key=True,
        )
    return cellmap


def _names(cell: Cell) -> tuple[set[str], set[str]]:
    """Module-level names a cell reads and binds; empty for a cell that does not parse."""
    tree = parse_cell(cell.source)
    if not isinstance(tree, ast.Module):
        return set(), set()
    events = code_facts(tree).events
    binds = {e.name for e in events if e.kind is Kind.BIND}
    reads = {e.name for e in events if e.kind is Kind.READ} - binds
    return reads, binds


def likely_step(cell: Cell, cellmap: CellMap, notebook: Notebook) -> tuple[str, str] | None:
    """The step an unassigned cell most likely belongs to, and why.

    Data flow decides first: the earliest step reading a name the cell defines needs it
    before it runs, else the latest step defining a name the cell reads produced its input.
    Otherwise the cell goes with the step of the nearest code cell above it (or below it, for
    a cell above every step).
    """
    steps = [r for r in cellmap.sections if r.startswith("step:") and cellmap.sections[r]]
    steps.sort(key=lambda r: cellmap.sections[r][0])
    reads, binds = _names(cell)
    step_names: dict[str, tuple[set[str], set[str]]] = {}
    for role in steps:
        step_reads: set[str] = set()
        step_binds: set[str] = set()
        for position in cellmap.sections[role]:
            r, b = _names(notebook.cell(position))
            step_reads |= r - step_binds
            step_binds |= b
        step_names[role] = (step_reads, step_binds)
    for role in steps:
        used = sorted(binds & step_names[role][0])
        if used and cellmap.sections[role][-1] > cell.position:
            return role[5:], f"it defines `{used[0]}`, which step `{role[5:]}` reads"
    for role in reversed(steps):
        made = sorted(reads & step_names[role][1])
        if made and cellmap.sections[role][0] < cell.position:
            return role[5:], f"it reads `{made[0]}` from step `{role[5:]}`"
    above = [p for p in cellmap.roles if p < cell.position and cellmap.roles[p].startswith("step:")]
    if above:
        role = cellmap.roles[max(above)]
        return role[5:], f"it follows step `{role[5:]}`"
    if steps:
        return steps[0][5:], f"it comes before step `{steps[0][5:]}`"
    return None


def _likely_home(cell: Cell, cellmap: CellMap, notebook: Notebook) -> str:
    guess = likely_step(cell, cellmap, notebook)
    return f"; it most likely belongs to step `{guess[0]}` ({guess[1]})" if guess else ""
