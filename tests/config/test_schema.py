"""The schema is a valid JSON Schema, documents itself, and accepts its own examples."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource

from kfg.config import model
from kfg.config import schema as kschema
from kfg.files.yamlsource import load

SCHEMA = kschema.load_schema()


def test_schema_is_a_valid_draft7_schema() -> None:
    Draft7Validator.check_schema(SCHEMA)
    assert SCHEMA["$id"] == kschema.SCHEMA_ID


def _properties(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            if isinstance(sub, dict):
                yield f"{path}/properties/{name}", sub
        for key, sub in node.items():
            yield from _properties(sub, f"{path}/{key}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            yield from _properties(sub, f"{path}/{i}")


PROPERTIES = [(p, s) for p, s in _properties(SCHEMA) if "/if/" not in p and "/then/" not in p]


def test_there_are_many_properties() -> None:
    assert len(PROPERTIES) > 80


@pytest.mark.parametrize(("path", "sub"), PROPERTIES, ids=[p for p, _ in PROPERTIES])
def test_every_property_has_a_description_and_examples_that_it_accepts(
    path: str, sub: dict[str, Any]
) -> None:
    assert sub.get("description"), f"{path} has no description"
    assert sub.get("examples"), f"{path} has no examples"
    registry: Registry = Registry().with_resource(kschema.SCHEMA_ID, Resource.from_contents(SCHEMA))
    validator = Draft7Validator(
        {**sub, "$id": kschema.SCHEMA_ID + "#sub", "definitions": SCHEMA["definitions"]},
        registry=registry,
    )
    for example in sub["examples"]:
        errors = list(validator.iter_errors(example))
        assert not errors, f"{path}: example {example!r} rejected: {errors[0].message}"


def test_the_schema_examples_validate_as_documents() -> None:
    for example in SCHEMA["examples"]:
        assert not list(Draft7Validator(SCHEMA).iter_errors(example))


def test_defaults_in_the_schema_agree_with_the_model() -> None:
    gpu_type = SCHEMA["definitions"]["gpu"]["properties"]["type"]["default"]
    assert gpu_type == model.DEFAULT_GPU_TYPE


def _messages(text: str) -> list[tuple[int, str, str]]:
    doc = load(text)
    return [
        (d.line, d.code, d.message) for d in kschema.validate(doc.data, doc.positions, "k.yaml")
    ]


HEAD = "apiVersion: kfg.dev/v1alpha1\nkind: NotebookPipeline\nmetadata: {name: p}\nspec:\n  notebook: n.ipynb\n"


@pytest.mark.parametrize(
    ("body", "line", "code", "fragment"),
    [
        (
            "  steps: [{name: a, cells: [1], resource: {}}]\n",
            6,
            "unknown-key",
            "did you mean `resources`",
        ),
        ("  steps: [{name: a}]\n", 6, "missing-key", "missing required key `cells`"),
        (
            "  steps: [{name: a, cells: 3}]\n",
            6,
            "wrong-type",
            "expected a list, got an integer `3`",
        ),
        ("  steps: [{name: A_b, cells: [1]}]\n", 6, "invalid-value", "DNS-1123 label"),
        ("  steps: [{name: a, cells: [0]}]\n", 6, "invalid-value", "must be a cell reference"),
        ("  steps: [{name: a, cells: ['x:1']}]\n", 6, "invalid-value", "must be a cell reference"),
        (
            "  steps: [{name: a, cells: [1], resources: {memory: 4 gigs}}]\n",
            6,
            "invalid-value",
            "Kubernetes quantity",
        ),
        (
            "  steps: [{name: a, cells: [1], resources: {cpu: -1}}]\n",
            6,
            "invalid-value",
            "Kubernetes quantity",
        ),
        (
            "  steps: [{name: a, cells: [1], caching: yes}]\n",
            6,
            "wrong-type",
            "write true or false",
        ),
        ("  steps: [{name: a, cells: [1], timeout: 1 hour}]\n", 6, "invalid-value", "duration"),
        (
            "  steps: [{name: a, cells: [1], env: {1X: a}}]\n",
            6,
            "invalid-key",
            "environment variable name",
        ),
        ("  steps: [{name: a, cells: [1], retries: -1}]\n", 6, "invalid-value", "at least 0"),
        ("  steps: []\n", 6, "invalid-value", "must not be empty"),
        (
            "  steps: [{name: a, cells: [1]}]\n  parameters: {}\n",
            7,
            "invalid-value",
            "exactly one of `cell`",
        ),
        (
            "  steps: [{name: a, cells: [1]}]\n  parameters: {cell: 1, values: {}}\n",
            7,
            "invalid-value",
            "exactly one of",
        ),
        (
            "  steps: [{name: a, cells: [1]}]\n  tuning:\n    objective: {metric: m, type: maximise}\n"
            "    algorithm: {name: random}\n    parameters: {x: {type: int, min: 1, max: 2}}\n",
            8,
            "invalid-value",
            "did you mean `maximize`",
        ),
        (
            "  steps: [{name: a, cells: [1]}]\n  tuning:\n    objective: {metric: m, type: maximize}\n"
            "    algorithm: {name: random}\n    parameters: {x: {type: int, min: 1, max: 2, values: [1]}}\n",
            10,
            "key-not-allowed",
            "key `values` is not allowed with `type: int`",
        ),
        (
            "  steps: [{name: a, cells: [1]}]\n  tuning:\n    objective: {metric: m, type: maximize}\n"
            "    algorithm: {name: random}\n    parameters: {x: {type: int, min: 1.5, max: 2}}\n",
            10,
            "wrong-type",
            "expected an integer",
        ),
        (
            "  steps: [{name: a, cells: [1]}]\n  tuning:\n    objective: {metric: m, type: maximize}\n"
            "    algorithm: {name: random}\n    parameters: {x: {type: categorical}}\n",
            10,
            "missing-key",
            "missing required key `values`",
        ),
        (
            "  notebook2: x\n  steps: [{name: a, cells: [1]}]\n",
            6,
            "unknown-key",
            "unknown key `notebook2`",
        ),
        ("  steps: [{name: a, cells: [1], image: ''}]\n", 6, "invalid-value", "container image"),
        (
            "  steps: [{name: a, cells: [1]}]\n  volumes: [{name: d, claim: c, mountPath: data}]\n",
            7,
            "invalid-value",
            "absolute path",
        ),
    ],
)
def test_schema_errors_are_specific_and_placed(
    body: str, line: int, code: str, fragment: str
) -> None:
    found = _messages(HEAD + body)
    assert any(ln == line and c == code and fragment in m for ln, c, m in found), found


def test_wrong_api_version_and_kind() -> None:
    found = _messages(
        "apiVersion: kfg.dev/v1\nkind: Pipeline\nmetadata: {name: p}\nspec: {notebook: n.ipynb, steps: [{name: a, cells: [1]}]}\n"
    )
    assert (1, "invalid-value", "must be `kfg.dev/v1alpha1`, not `kfg.dev/v1`") in found
    assert (2, "invalid-value", "must be `NotebookPipeline`, not `Pipeline`") in found


def test_every_error_is_reported_not_just_the_first() -> None:
    found = _messages(HEAD + "  steps: [{name: A, cells: x, retries: -1, colour: red}]\n")
    assert {c for _, c, _ in found} >= {"invalid-value", "wrong-type", "unknown-key"}
    assert len(found) == 4


def test_id_ranges_and_cell_hashes_are_valid() -> None:
    body = (
        "  steps: [{name: a, cells: ['id:a1..id:c3', 'id:d4', 2, '3-4']}]\n"
        "  cellHashes: {a1: '0f3a9b2c', '2': 'deadbeef'}\n"
    )
    assert _messages(HEAD + body) == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("  steps: [{name: a, cells: [1]}]\n  cellHashes: {'1': 12345678}\n", "8 lowercase hex"),
        ("  steps: [{name: a, cells: [1]}]\n  cellHashes: {'1': 'XYZ'}\n", "8 lowercase hex"),
    ],
)
def test_bad_cell_hashes(body: str, fragment: str) -> None:
    assert any(fragment in m for _, _, m in _messages(HEAD + body)), _messages(HEAD + body)
