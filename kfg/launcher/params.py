"""Pipeline parameter values given on a command line, converted to the parameter's type.

Katib substitutes every trial value into the Job as text; the rendered trial template
therefore says the type next to the name (`hidden_units:int=${trialParameters.hidden_units}`)
and the launcher converts before it starts the run, so KFP receives an int for an int
parameter and the run's cache keys match those of a run started any other way.
"""

from __future__ import annotations

import json
import math
from typing import Any

from kfg.pysource.parameters import value_problem

TYPES = ("int", "float", "str", "bool", "list", "dict")
_TRUE = {"true", "True", "1", "yes"}
_FALSE = {"false", "False", "0", "no"}


class ParameterError(ValueError):
    """A value that does not fit its parameter; the message names both."""


def _shown(text: str) -> str:
    """A value as a message quotes it: whole when short, its start and length when not."""
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def _number(text: str) -> float:
    """float(text), refusing in words (`abc` is not a number), not in float()'s."""
    try:
        return float(text)
    except ValueError:
        raise ValueError("not a number") from None


def convert(name: str, type_name: str, text: str) -> Any:
    """`text` as a value of `type_name`; Katib's `16.0` for an int parameter is accepted."""
    value = _convert(name, type_name, text)
    problem = value_problem(value)
    if problem:
        raise ParameterError(f"parameter `{name}` ({type_name}): `{_shown(text)}` {problem}")
    return value


def _convert(name: str, type_name: str, text: str) -> Any:
    try:
        if type_name == "int":
            try:
                return int(text)
            except ValueError:
                number = _number(text)
            if not number.is_integer():
                raise ValueError("not a whole number")
            return int(number)
        if type_name == "float":
            value = _number(text)
            if not math.isfinite(value):
                raise ValueError("not a finite number")
            return value
        if type_name == "bool":
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError("not true or false")
        if type_name in ("list", "dict"):
            try:
                value = json.loads(text)
            except RecursionError:
                raise ValueError("nested too deeply") from None
            expected = list if type_name == "list" else dict
            if not isinstance(value, expected):
                raise ValueError(f"not a JSON {type_name}")
            return value
        if type_name == "str":
            return text
    except json.JSONDecodeError as exc:  # a ValueError too; its words are JSON's, not ours
        raise ParameterError(
            f"parameter `{name}` ({type_name}): `{_shown(text)}` is not a JSON {type_name}"
            f" ({exc.msg})"
        ) from None
    except ValueError as exc:
        shown = _shown(text)
        raise ParameterError(f"parameter `{name}` ({type_name}): `{shown}` is {exc}") from None
    raise ParameterError(f"parameter `{name}`: unknown type `{type_name}`; use one of {TYPES}")


def parse_typed(argument: str) -> tuple[str, Any]:
    """`name:type=value`, as the rendered trial template writes it."""
    head, sep, text = argument.partition("=")
    name, colon, type_name = head.partition(":")
    if not sep or not colon or not name:
        raise ParameterError(f"`{argument}` is not name:type=value")
    return name, convert(name, type_name, text)


def parse_override(argument: str, types: dict[str, str]) -> tuple[str, Any]:
    """`name=value` for a parameter whose type the pipeline declares."""
    name, sep, text = argument.partition("=")
    if not sep or not name:
        raise ParameterError(f"`{argument}` is not name=value")
    if name not in types:
        known = ", ".join(sorted(types)) or "none"
        raise ParameterError(f"unknown parameter `{name}` (parameters: {known})")
    return name, convert(name, types[name], text)
