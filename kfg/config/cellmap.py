"""Which notebook cell belongs to which part of the pipeline.

Every code cell should have exactly one role: prelude, skip, parameters, or one step. This
module resolves the cell references of a kale.yaml against its notebook, reports references
that select nothing, cells claimed twice and cells claimed by nobody, and keeps the result
for `kfg cells` and for rendering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kfg.config.findings import Findings
from kfg.diagnostics import Severity
from kfg.files.yamlsource import Path
from kfg.notebook.cellrefs import CellRefError, compress, parse_ref, resolve
from kfg.notebook.reader import Notebook

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


def map_cells(spec: dict[str, Any], notebook: Notebook, findings: Findings) -> CellMap:
    cellmap = CellMap()
    claimed_at: dict[int, Path] = {}
    for role, path, refs in _section_refs(spec):
        positions: list[int] = []
        single_ref = role == PARAMETERS
        for index, value in enumerate(refs):
            ref_path = path if single_ref else (*path, index)
            try:
                ref = parse_ref(value)
                selected = resolve(ref, notebook)
            except CellRefError as exc:
                findings.error(ref_path, "bad-cell-ref", exc.message)
                continue
            for position in selected:
                cell = notebook.cell(position)
                if not cell.is_code:
                    if ref.kind == "position" and role != SKIP:
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
    if len(unassigned) == 1:
        first_line = notebook.cell(unassigned[0]).first_line
        shown = first_line if len(first_line) <= 40 else first_line[:37] + "..."
        what = f"code cell {unassigned[0]} (`{shown}`) is"
    else:
        what = "code cells " + ", ".join(str(r) for r in compress(unassigned)) + " are"
    if unassigned:
        findings.warning(
            ("spec", "steps"),
            "unassigned-cell",
            f"{what} in no step, nor in prelude, skip or parameters; add them where they"
            " belong (see `kfg cells`)",
            key=True,
        )
    return cellmap
