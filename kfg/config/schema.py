"""The kale.yaml JSON Schema: where it lives, and what its errors mean in plain words.

`schemas/kale.schema.json` is the single source of truth for the structure of kale.yaml;
editors read it through the yaml-language-server modeline and `kfg validate` applies it
here. jsonschema's own messages speak of instances and schemas; these speak of keys, lines
and the likely fix.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path as FsPath
from typing import Any

from kfg.diagnostics import Diagnostic, Severity, did_you_mean
from kfg.files.yamlsource import Path, Positions

SCHEMA_ID = "https://kfg.dev/schemas/kale.v1alpha1.schema.json"
API_VERSION = "kfg.dev/v1alpha1"
KIND = "NotebookPipeline"

_PACKAGED = FsPath(__file__).parent.parent / "schemas" / "kale.schema.json"
_SOURCE_TREE = FsPath(__file__).parent.parent.parent / "schemas" / "kale.schema.json"


def schema_path() -> FsPath:
    """The schema file: inside an installed wheel, or at the top of a source checkout."""
    return _PACKAGED if _PACKAGED.is_file() else _SOURCE_TREE


@cache
def load_schema() -> dict[str, Any]:
    with schema_path().open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


def field_name(path: Path) -> str:
    """`spec.steps[2].resources` for ('spec', 'steps', 2, 'resources')."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def show(value: Any) -> str:
    """A short rendering of a value for a message."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if not text.isprintable():  # a newline or a control character: show it, on one line
        text = repr(text)[1:-1]
    return f"`{text[:57]}...`" if len(text) > 60 else f"`{text}`"


_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


_YAML11_BOOLS = {"yes", "no", "on", "off", "y", "n", "Yes", "No", "On", "Off", "YES", "NO"}
_REQUIRED = re.compile(r"^'(.+)' is a required property$")


def _type_message(expected: str | list[str], value: Any) -> str:
    wanted = [expected] if isinstance(expected, str) else list(expected)
    names = " or ".join(_TYPE_NAMES.get(t, t) for t in wanted)
    got = _TYPE_NAMES[_type_of(value)]
    shown = "" if isinstance(value, (dict, list)) or value is None else f" {show(value)}"
    message = f"expected {names}, got {got}{shown}"
    if "boolean" in wanted and isinstance(value, str) and value in _YAML11_BOOLS:
        message += "; YAML 1.2 reads yes/no/on/off as strings, write true or false"
    if "string" in wanted and _type_of(value) in ("integer", "number", "boolean"):
        message += f'; quote it to keep it a string: "{value}"'
    return message


def _bounds_message(validator: str, bound: Any, value: Any) -> str:
    words = {
        "minimum": f"must be at least {bound}",
        "maximum": f"must be at most {bound}",
        "exclusiveMinimum": f"must be greater than {bound}",
        "exclusiveMaximum": f"must be less than {bound}",
        "minLength": "must not be empty" if bound == 1 else f"needs at least {bound} characters",
        "maxLength": f"is longer than {bound} characters",
        "minItems": "must not be empty" if bound == 1 else f"needs at least {bound} items",
        "maxItems": f"has more than {bound} items",
        "minProperties": "must not be empty" if bound == 1 else f"needs at least {bound} keys",
        "maxProperties": f"has more than {bound} keys",
        "uniqueItems": "has duplicate items",
    }
    shown = "" if isinstance(value, (dict, list)) else f" (got {show(value)})"
    return words[validator] + shown


def _allowed_keys(schema: dict[str, Any]) -> list[str]:
    return list(schema.get("properties", {}))


def _at(data: Any, path: Path) -> Any:
    for part in path:
        data = data[part]
    return data


def _diagnose(error: Any, root: Any) -> Iterator[tuple[Path, bool, str, str]]:
    """(path, at_key, code, message) for one jsonschema error."""
    path: Path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    value = error.instance
    validator = error.validator
    custom = schema.get("errorMessage")
    on_key = "propertyNames" in error.relative_schema_path

    if validator == "not" and error.validator_value == {}:
        sibling_type = ""
        parent = _at(root, path[:-1])
        if isinstance(parent, dict) and isinstance(parent.get("type"), str):
            sibling_type = f" with `type: {parent['type']}`"
        yield path, True, "key-not-allowed", f"key `{path[-1]}` is not allowed{sibling_type}"
    elif on_key:
        message = custom or "is not a valid key here"
        yield (*path, value), True, "invalid-key", f"key {show(value)} {message}"
    elif validator == "additionalProperties" and isinstance(value, dict):
        allowed = _allowed_keys(schema)
        for key in value:
            if key not in allowed:
                hint = did_you_mean(key, allowed)
                if not hint and allowed:
                    hint = "; expected one of " + ", ".join(f"`{k}`" for k in allowed)
                yield (*path, key), True, "unknown-key", f"unknown key `{key}`{hint}"
    elif validator == "required":
        match = _REQUIRED.match(error.message)
        missing = match.group(1) if match else "?"
        where = f" in `{field_name(path)}`" if path else ""
        yield path, False, "missing-key", f"missing required key `{missing}`{where}"
    elif custom:
        yield path, False, "invalid-value", f"{show(value)} {custom}"
    elif validator == "type":
        yield path, False, "wrong-type", _type_message(error.validator_value, value)
    elif validator == "enum":
        choices = [str(c) for c in error.validator_value]
        hint = did_you_mean(str(value), choices)
        listed = ", ".join(f"`{c}`" for c in choices)
        yield path, False, "invalid-value", f"{show(value)} is not one of {listed}{hint}"
    elif validator == "const":
        yield path, False, "invalid-value", f"must be `{error.validator_value}`, not {show(value)}"
    elif validator in (
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "uniqueItems",
    ):
        yield path, False, "invalid-value", _bounds_message(validator, error.validator_value, value)
    elif validator == "pattern":
        yield (
            path,
            False,
            "invalid-value",
            f"{show(value)} does not match `{error.validator_value}`",
        )
    elif validator in ("anyOf", "oneOf") and error.context:
        from jsonschema.exceptions import best_match

        yield from _diagnose(best_match(error.context), root)
    else:
        yield path, False, "invalid-value", error.message


def _non_finite(data: Any, path: Path) -> Iterator[tuple[Path, float]]:
    if isinstance(data, float) and not math.isfinite(data):
        yield path, data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _non_finite(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _non_finite(value, (*path, index))


def _validator_class() -> Any:
    """Draft 7 with `pattern` matched as ECMA-262 matches it (see `ecma_pattern`)."""
    from jsonschema import Draft7Validator, ValidationError, validators

    from kfg.config.schemacheck import ecma_pattern

    def pattern(validator: Any, rule: str, instance: Any, schema: Any) -> Iterator[Any]:
        if validator.is_type(instance, "string") and not ecma_pattern(rule).search(instance):
            yield ValidationError(f"{instance!r} does not match {rule!r}")

    return validators.extend(Draft7Validator, {"pattern": pattern})


def validate(data: Any, positions: Positions, file: str) -> list[Diagnostic]:
    """Check `data` against the schema; one diagnostic per problem, placed at its node."""
    from kfg.config.schemacheck import conforms

    infinite = [
        Diagnostic(
            Severity.ERROR,
            "invalid-value",
            f"{show(value)} is not a number JSON can hold; write a finite number",
            file,
            positions.of(path).line,
            positions.of(path).column,
            field_name(path),
        )
        for path, value in _non_finite(data, ())
    ]
    if infinite:
        return infinite  # YAML's .nan and .inf have no JSON form: the schema cannot judge them
    if conforms(data, load_schema()):
        return []  # jsonschema is needed only to explain what is wrong
    validator = _validator_class()(load_schema())
    found: dict[tuple[Path, str], Diagnostic] = {}
    for error in validator.iter_errors(data):
        for path, at_key, code, message in _diagnose(error, data):
            pos = positions.of(path, key=at_key)
            name = field_name(path)
            diagnostic = Diagnostic(Severity.ERROR, code, message, file, pos.line, pos.column, name)
            found.setdefault((path, message), diagnostic)
    return sorted(found.values(), key=Diagnostic.sort_key)
