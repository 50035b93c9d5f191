"""Propose steps for an untagged notebook: one per `##` markdown section."""

from __future__ import annotations

import ast
import re
from typing import Any

from kfg.analysis.dataflow import KNOWN
from kfg.kube.names import dns_label, unique
from kfg.notebook.reader import Cell, Notebook
from kfg.pysource.parameters import parse_parameters
from kfg.pysource.scopes import Kind, code_facts
from kfg.pysource.source import parse_cell

_H2 = re.compile(r"^##(?!#)\s*(.+?)\s*#*\s*$", re.MULTILINE)


def _heading(cell: Cell) -> str | None:
    if cell.cell_type != "markdown":
        return None
    match = _H2.search(cell.source)
    return match.group(1) if match else None


def _is_setup(cell: Cell, prelude_names: set[str]) -> bool:
    """Imports, function and class definitions only: code every step can share, provided
    what they need while being defined (decorators, defaults, base classes) is the
    prelude's too: the prelude runs first in every step, before any step's own cells."""
    tree = parse_cell(cell.source)
    if not isinstance(tree, ast.Module) or not tree.body:
        return False
    allowed = (
        ast.Import,
        ast.ImportFrom,
        ast.FunctionDef,
        ast.AsyncFunctionDef,
        ast.ClassDef,
        ast.Pass,
    )
    if not all(isinstance(s, allowed) for s in tree.body):
        return False
    bound = set(prelude_names)
    for event in code_facts(tree).events:
        if event.kind is Kind.BIND:
            bound.add(event.name)
        elif event.kind is Kind.READ and event.name not in bound and event.name not in KNOWN:
            return False
    return True


def _binds(cell: Cell) -> set[str]:
    tree = parse_cell(cell.source)
    if not isinstance(tree, ast.Module):
        return set()
    return {e.name for e in code_facts(tree).events if e.kind is Kind.BIND}


def _is_literal(cell: Cell) -> bool:
    """A papermill `parameters` cell kfg can read: literal assignments only."""
    params, problems = parse_parameters(cell.source)
    return bool(params) and not any(not p.warning for p in problems)


_PARAMETERS_TITLE = re.compile(r"^(pipeline\s+)?parameters?$", re.IGNORECASE)


def propose(notebook: Notebook, notes: list[str]) -> dict[str, Any]:
    prelude: list[int] = []
    prelude_names: set[str] = set()
    parameters: list[int] = []
    steps: list[dict[str, Any]] = []
    taken: set[str] = set()
    current: dict[str, Any] | None = None
    for cell in notebook.cells:
        title = _heading(cell)
        if title is not None:
            current = {"name": unique(dns_label(title), taken), "cells": [], "title": title}
            steps.append(current)
            continue
        if not cell.is_code or cell.is_blank:
            continue
        in_parameters = (
            current is not None
            and not current["cells"]
            and _PARAMETERS_TITLE.match(current["title"]) is not None
        )
        if ("parameters" in cell.tags or in_parameters) and not parameters and _is_literal(cell):
            # A papermill `parameters` cell, or the literal assignments under a
            # `## Parameters` heading: the pipeline's parameters, not a step of their own.
            parameters.append(cell.position)
            continue
        if _is_setup(cell, prelude_names) and (current is None or not current["cells"]):
            prelude.append(cell.position)
            prelude_names |= _binds(cell)
            continue
        if current is None:
            current = {"name": unique("start", taken), "cells": [], "title": ""}
            steps.append(current)
        current["cells"].append(cell.position)
    steps = [{"name": s["name"], "cells": s["cells"]} for s in steps if s["cells"]]
    if not steps:
        if not notebook.code_cells:
            notes.append("the notebook has no code cells; add some, then list them in a step")
        code = [
            c.position for c in notebook.code_cells if not c.is_blank and c.position not in prelude
        ]
        steps = [{"name": "main", "cells": code or prelude[-1:]}]
        if not code and prelude:
            prelude = prelude[:-1]
    spec: dict[str, Any] = {}
    if prelude:
        spec["prelude"] = prelude
    if parameters:
        spec["parameters"] = {"cell": parameters[0]}
    spec["steps"] = steps
    notes.append(
        f"proposed {len(steps)} step(s) from the notebook's `##` sections; review the split,"
        " then add resources, parameters and metrics"
    )
    return spec
