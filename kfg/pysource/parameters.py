"""Read pipeline parameters from a notebook cell of literal assignments.

The parameters cell is the one place where kfg reads values out of code, so it accepts only
what can be read without running anything: `name = <literal>`, optionally annotated.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from kfg.pysource.source import is_ipython_call, parse_cell, to_python

ParameterValue = bool | int | float | str | list[Any] | dict[str, Any]


@dataclass(frozen=True)
class Parameter:
    name: str
    default: ParameterValue
    line: int = 0

    @property
    def type_name(self) -> str:
        return python_type(self.default)


def python_type(value: Any) -> str:
    """The parameter type kfg derives from a default (`bool` before `int`, as Python does)."""
    for kind in (bool, int, float, str, list, dict):
        if isinstance(value, kind):
            return kind.__name__
    return type(value).__name__


def _plain(value: Any) -> ParameterValue | None:
    """A JSON-like value, or None when the literal has no pipeline parameter type."""
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        items = [_plain(v) for v in value]
        return None if any(i is None for i in items) else items
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return None
        entries = {k: _plain(v) for k, v in value.items()}
        return None if any(v is None for v in entries.values()) else entries
    return None


@dataclass(frozen=True)
class ParameterProblem:
    line: int
    message: str


def _python_lines(source: str) -> list[str]:
    """The lines `parse_cell` parsed: the source itself when it is plain Python (the
    runtime's translation, and its import, are needed only for IPython syntax)."""
    try:
        ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return to_python(source).splitlines()
    return source.splitlines()


def parse_parameters(source: str) -> tuple[list[Parameter], list[ParameterProblem]]:
    tree = parse_cell(source)
    if not isinstance(tree, ast.Module):
        return [], [ParameterProblem(tree.line, f"invalid syntax: {tree.message}")]
    lines = _python_lines(source)
    found: dict[str, Parameter] = {}
    problems: list[ParameterProblem] = []
    for statement in tree.body:
        line = statement.lineno
        text = lines[line - 1].strip() if line <= len(lines) else ""
        if is_ipython_call(statement) or (
            isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
        ):
            continue
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target, value_node = statement.targets[0], statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            target, value_node = statement.target, statement.value
        else:
            problems.append(
                ParameterProblem(line, f"`{text}` is not an assignment like `n_estimators = 100`")
            )
            continue
        if not isinstance(target, ast.Name):
            problems.append(ParameterProblem(line, f"`{text}`: assign one name per line"))
            continue
        try:
            literal = ast.literal_eval(value_node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            problems.append(
                ParameterProblem(line, f"`{target.id}` is not assigned a literal value (`{text}`)")
            )
            continue
        if literal is None:
            problems.append(
                ParameterProblem(line, f"`{target.id} = None` has no type; give it a typed default")
            )
            continue
        value = _plain(literal)
        if value is None:
            problems.append(
                ParameterProblem(
                    line,
                    f"`{target.id}` has a {type(literal).__name__} default; parameters are"
                    " str, int, float, bool, list or dict",
                )
            )
            continue
        if target.id in found:
            problems.append(
                ParameterProblem(
                    line, f"`{target.id}` is assigned twice (first on line {found[target.id].line})"
                )
            )
        found[target.id] = Parameter(target.id, value, line)
    return list(found.values()), problems
