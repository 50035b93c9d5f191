"""A yes/no JSON Schema check for the keywords kale.schema.json uses, without jsonschema.

Importing jsonschema costs about 75 ms, a fifth of `kfg validate` and of a cached `kfg
run`. Almost every file kfg checks is valid, so this module answers only "valid?" for
draft-07's keywords that the schema uses; when the answer is no, or the schema uses
anything else, kfg asks jsonschema, which also explains what is wrong. A property test
keeps both in agreement on valid and broken documents.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

# Keywords that carry no constraint here.
_ANNOTATIONS = frozenset(
    {"description", "examples", "errorMessage", "$schema", "$id", "title", "definitions", "default"}
)


class Unsupported(Exception):
    """The schema uses a keyword this checker does not know; ask jsonschema instead."""


_ECMA_OUTSIDE_CLASS = {"d": "[0-9]", "D": "[^0-9]", "w": "[A-Za-z0-9_]", "W": "[^A-Za-z0-9_]"}
_ECMA_INSIDE_CLASS = {"d": "0-9", "w": "A-Za-z0-9_"}


@cache
def ecma_pattern(text: str) -> re.Pattern[str]:
    """A JSON Schema `pattern` compiled with ECMA-262's meaning, as editors apply it.

    Python's `$` also matches before a final newline and its `\\d` and `\\w` match any
    Unicode digit or letter; ECMA-262's `$` (without the multiline flag) matches only at
    the end and its `\\d` and `\\w` are ASCII. Without this, `name: "load\\n"` would pass
    a `^...$` pattern in kfg but fail in an editor and in Kubernetes.
    """
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            escaped = text[i + 1]
            table = _ECMA_INSIDE_CLASS if in_class else _ECMA_OUTSIDE_CLASS
            out.append(table.get(escaped, char + escaped))
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            # `[]` and `[^]` open with a literal `]` in Python, never in ECMA-262.
            if text[i + 1 : i + 2] == "]" or text[i + 1 : i + 3] == "^]":
                raise re.error(f"unsupported character class in {text!r}")
        elif char == "$":
            char = r"\Z"
        out.append(char)
        i += 1
    return re.compile("".join(out))


def _is_type(value: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, (int, float))
    raise Unsupported(f"type {kind}")


def _key(value: Any) -> str:
    """Equality as JSON Schema means it: `true` is not `1`."""
    return json.dumps(value, sort_keys=True, default=str) + type(value).__name__


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return _key(a) == _key(b) if isinstance(a, (dict, list)) else a == b


class Checker:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root

    def _resolve(self, reference: str) -> Any:
        if not reference.startswith("#/"):
            raise Unsupported(reference)
        node: Any = self.root
        for part in reference[2:].split("/"):
            node = node[part]
        return node

    def valid(self, value: Any, schema: Any) -> bool:
        if schema is True or schema == {}:
            return True
        if schema is False:
            return False
        for keyword, rule in schema.items():
            if keyword in _ANNOTATIONS:
                continue
            if keyword == "$ref":
                if not self.valid(value, self._resolve(rule)):
                    return False
            elif keyword == "type":
                kinds = rule if isinstance(rule, list) else [rule]
                if not any(_is_type(value, k) for k in kinds):
                    return False
            elif keyword == "enum":
                if not any(_equal(value, option) for option in rule):
                    return False
            elif keyword == "const":
                if not _equal(value, rule):
                    return False
            elif keyword == "not":
                if self.valid(value, rule):
                    return False
            elif keyword == "anyOf":
                if not any(self.valid(value, option) for option in rule):
                    return False
            elif keyword == "allOf":
                if not all(self.valid(value, option) for option in rule):
                    return False
            elif keyword == "if":
                branch = schema.get("then") if self.valid(value, rule) else schema.get("else")
                if branch is not None and not self.valid(value, branch):
                    return False
            elif keyword in ("then", "else"):
                continue
            elif not self._typed(keyword, rule, value, schema):
                return False
        return True

    def _typed(self, keyword: str, rule: Any, value: Any, schema: dict[str, Any]) -> bool:
        """Keywords that constrain one type of value and ignore the others."""
        if keyword in ("properties", "additionalProperties", "required", "propertyNames"):
            if not isinstance(value, dict):
                return True
            if keyword == "required":
                return all(name in value for name in rule)
            if keyword == "propertyNames":
                return all(self.valid(name, rule) for name in value)
            if keyword == "properties":
                return all(self.valid(value[k], s) for k, s in rule.items() if k in value)
            known = schema.get("properties", {})
            if "patternProperties" in schema:
                raise Unsupported("patternProperties")
            return all(self.valid(v, rule) for k, v in value.items() if k not in known)
        if keyword in ("minProperties", "maxProperties"):
            if not isinstance(value, dict):
                return True
            return bool(len(value) >= rule if keyword == "minProperties" else len(value) <= rule)
        if keyword in ("items", "minItems", "maxItems", "uniqueItems"):
            if not isinstance(value, list):
                return True
            if keyword == "items":
                if isinstance(rule, list):
                    raise Unsupported("tuple items")
                return all(self.valid(item, rule) for item in value)
            if keyword == "minItems":
                return bool(len(value) >= rule)
            if keyword == "maxItems":
                return bool(len(value) <= rule)
            keys = [_key(item) for item in value]
            return not rule or len(set(keys)) == len(keys)
        if keyword in ("pattern", "minLength", "maxLength"):
            if not isinstance(value, str):
                return True
            if keyword == "pattern":
                return ecma_pattern(rule).search(value) is not None
            return bool(len(value) >= rule if keyword == "minLength" else len(value) <= rule)
        if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return True
            return bool(
                {
                    "minimum": value >= rule,
                    "maximum": value <= rule,
                    "exclusiveMinimum": value > rule,
                    "exclusiveMaximum": value < rule,
                }[keyword]
            )
        raise Unsupported(keyword)


def conforms(value: Any, schema: dict[str, Any]) -> bool:
    """True only when `value` is certainly valid; False means "ask jsonschema"."""
    try:
        return Checker(schema).valid(value, schema)
    except (Unsupported, re.error, KeyError, TypeError, RecursionError):
        return False


def whole_numbers(value: Any, schema: dict[str, Any]) -> Any:
    """`value` with every integral float the schema types as an integer made an int.

    Draft 7 counts 4.0 as an integer, so a valid kale.yaml may write `maxTrials: 4.0`; the
    Kubernetes and Katib fields kfg renders it into are int32 and int64, and an API server
    refuses `4.0` there. Only a value the schema declares `integer` and not `number` changes:
    a float parameter default stays a float. Call it on a valid document.
    """
    checker = Checker(schema)

    def walk(value: Any, schema: Any) -> Any:
        if not isinstance(schema, dict):
            return value
        if "$ref" in schema:
            value = walk(value, checker._resolve(schema["$ref"]))
        kinds = schema.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        integral = isinstance(value, float) and value.is_integer()
        if integral and "integer" in kinds and "number" not in kinds:
            value = int(value)
        for option in schema.get("allOf", []):
            value = walk(value, option)
        for option in schema.get("anyOf", []):
            if checker.valid(value, option):
                value = walk(value, option)
                break
        if "if" in schema:
            branch = (
                schema.get("then") if checker.valid(value, schema["if"]) else schema.get("else")
            )
            value = walk(value, branch)
        if isinstance(value, dict):
            known = schema.get("properties", {})
            rest = schema.get("additionalProperties")
            value = {k: walk(v, known.get(k, rest)) for k, v in value.items()}
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            value = [walk(item, schema["items"]) for item in value]
        return value

    return walk(value, schema)
