"""Read pipeline parameters from a notebook cell of literal assignments.

The parameters cell is the one place where kfg reads values out of code, so it accepts only
what can be read without running anything: `name = <literal>`, optionally annotated.
"""

from __future__ import annotations

import ast
import math
import re
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


# kubeflow/pipelines 2.17.0 sdk/python/kfp/dsl/pipeline_channel.py (PipelineChannel.__init__)
# refuses a parameter whose name does not match ^[A-Za-z][A-Za-z0-9\s_-]*$; of those, the
# names a Python variable can have.
_KFP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# KFP carries a parameter as a protobuf Value, whose numbers are doubles: an int beyond this
# comes back with other digits.
SAFE_INTEGER = (1 << 53) - 1


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a pipeline parameter's name; None when it can."""
    if _KFP_NAME.fullmatch(name):
        return None
    return (
        "is not a name Kubeflow Pipelines accepts for a parameter: an ASCII letter first,"
        " then letters, digits and underscores"
    )


def value_problem(value: Any) -> str | None:
    """Why `value` cannot be a pipeline parameter's value, as a phrase following its name;
    None when it can. What KFP cannot carry exactly is refused, not converted: a step must
    see the value the notebook wrote."""
    try:
        return _problem(value, "")
    except RecursionError:
        return "is nested too deeply to be a parameter"


def _lists(value: Any) -> Any:
    """The value as a pipeline parameter carries it: tuples become lists."""
    if isinstance(value, (list, tuple)):
        return [_lists(item) for item in value]
    if isinstance(value, dict):
        return {key: _lists(item) for key, item in value.items()}
    return value


def _has_tuple(value: Any) -> bool:
    if isinstance(value, tuple):
        return True
    if isinstance(value, list):
        return any(_has_tuple(item) for item in value)
    if isinstance(value, dict):
        return any(_has_tuple(item) for item in value.values())
    return False


def _problem(value: Any, at: str) -> str | None:
    where = f" at {at}" if at else ""
    if value is None:
        return f"holds None{where}; a parameter cannot carry it"
    if isinstance(value, float) and not math.isfinite(value):
        return f"holds {value}{where}, which a parameter cannot carry (JSON has no such number)"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > SAFE_INTEGER:
        return (
            f"holds {value}{where}, beyond ±(2**53 - 1): KFP carries numbers as doubles and"
            " may change its digits; write it as a string"
        )
    if isinstance(value, (bool, int, float, str)):
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _problem(item, f"{at}[{index}]")
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"has the key {key!r}{where}; parameter dicts have string keys"
            found = _problem(item, f"{at}[{key!r}]")
            if found:
                return found
        return None
    return (
        f"holds a {type(value).__name__}{where}; parameters are str, int, float, bool, list or dict"
    )


@dataclass(frozen=True)
class ParameterProblem:
    line: int
    message: str
    warning: bool = False  # the value is kept, changed in a way the author should know


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
        problem = name_problem(target.id) or value_problem(literal)
        if problem:
            problems.append(ParameterProblem(line, f"`{target.id}` {problem}"))
            continue
        value: ParameterValue = _lists(literal)
        if _has_tuple(literal):
            problems.append(
                ParameterProblem(
                    line,
                    f"`{target.id}` holds a tuple: steps receive it as a list, since pipeline"
                    " parameters have no tuples",
                    warning=True,
                )
            )
        if target.id in found:
            problems.append(
                ParameterProblem(
                    line, f"`{target.id}` is assigned twice (first on line {found[target.id].line})"
                )
            )
        found[target.id] = Parameter(target.id, value, line)
    return list(found.values()), problems
