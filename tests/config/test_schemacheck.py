"""The fast yes/no schema check agrees with jsonschema on valid and broken kale.yaml files."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from kfg.config.schema import _validator_class, load_schema
from kfg.config.schemacheck import conforms, ecma_pattern
from tests.conftest import EXAMPLES

SCHEMA = load_schema()
VALIDATOR = _validator_class()(SCHEMA)
DOCUMENTS = [yaml.safe_load((EXAMPLES / n / "kale.yaml").read_text()) for n in ("wine", "digits")]
RICH = {
    "apiVersion": "kfg.dev/v1alpha1",
    "kind": "NotebookPipeline",
    "metadata": {"name": "p", "namespace": "team", "labels": {"a": "b"}},
    "spec": {
        "notebook": "n.ipynb",
        "runtime": "image",
        "steps": [
            {
                "name": "s",
                "cells": [1, "2-3", "tag:x"],
                "resources": {"cpu": {"request": "1", "limit": 2}, "gpu": {"count": 1}},
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "secrets": [{"secret": "s", "key": "K"}],
                "timeout": "1h",
                "retries": 2,
                "snapshot": "after",
                "volumes": ["d"],
            }
        ],
        "volumes": [
            {
                "name": "d",
                "claim": "c",
                "mountPath": "/d",
                "snapshot": {"version": "v1", "size": "1Gi"},
            }
        ],
        "snapshotClass": {"driver": "x.csi", "deletionPolicy": "Retain"},
        "launcher": {"kfpAccess": "token", "timeout": 60, "runOnSync": True},
        "parameters": {"values": {"a": 1}},
        "tuning": {
            "objective": {"metric": "m", "type": "maximize", "goal": 0.9},
            "algorithm": {"name": "grid"},
            "parameters": {"a": {"type": "int", "min": 1, "max": 4, "step": 1}},
        },
        "metrics": [{"name": "m", "variable": "m"}],
    },
}
SEEDS = [*DOCUMENTS, RICH]

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 300)
    | st.floats(-1, 1e6, allow_nan=False)
    | st.sampled_from(["", "x", "2", "1Gi", "v1", "Exists", "grid", "tag:x", "3-1", "/d", "ab c"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["name", "x", "cells", "type"]), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@given(st.sampled_from(SEEDS), st.data(), values, st.sampled_from(["set", "delete", "add"]))
def test_agrees_with_jsonschema(
    seed: dict[str, Any], data: st.DataObject, value: Any, edit: str
) -> None:
    document = copy.deepcopy(seed)
    path = data.draw(st.sampled_from(_paths(document)[1:]))
    parent: Any = document
    for part in path[:-1]:
        parent = parent[part]
    if edit == "set":
        parent[path[-1]] = value
    elif edit == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent["unknownKey"] = value
    assert conforms(document, SCHEMA) == VALIDATOR.is_valid(document)


def test_valid_documents_pass_without_jsonschema() -> None:
    for document in SEEDS:
        assert VALIDATOR.is_valid(document)
        assert conforms(document, SCHEMA)


def _patterns(node: Any) -> list[str]:
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            found.append(node["pattern"])
        for value in node.values():
            found += _patterns(value)
    elif isinstance(node, list):
        for value in node:
            found += _patterns(value)
    return sorted(set(found))


ANCHORED = [p for p in _patterns(SCHEMA) if p.endswith("$")]


def test_every_end_anchored_pattern_refuses_a_trailing_newline() -> None:
    # ECMA-262 (the regex dialect of JSON Schema and of editors): without the multiline
    # flag `$` matches only at the end of the input; Python's `$` also before a final "\n".
    assert len(ANCHORED) >= 10
    for pattern in ANCHORED:
        example = {"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": "wine", "\\.ipynb$": "a.ipynb"}.get(pattern)
        if example is not None:
            assert ecma_pattern(pattern).search(example)
            assert not ecma_pattern(pattern).search(example + "\n")
        assert not ecma_pattern(pattern).search("x\n"), pattern


def test_digits_and_word_characters_are_ascii_as_in_ecma() -> None:
    assert ecma_pattern(r"^\d+$").search("123")
    assert not ecma_pattern(r"^\d+$").search("١٢٣")  # Arabic-Indic digits
    assert not ecma_pattern(r"^\w+$").search("é")
    assert ecma_pattern(r"^[\d.]+$").search("1.5")
    assert ecma_pattern(r"^a\$$").search("a$")


def test_a_trailing_newline_fails_both_checks() -> None:
    for path in (("metadata", "name"), ("spec", "steps", 0, "image")):
        document = copy.deepcopy(RICH)
        node: Any = document
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = "name\n"
        assert not conforms(document, SCHEMA)
        assert list(VALIDATOR.iter_errors(document))


IMAGE = {"$ref": "#/definitions/image", "definitions": SCHEMA["definitions"]}


def test_image_references_follow_the_distribution_grammar() -> None:
    # distribution/reference reference/regexp.go: [domain[:port]/]path[:tag][@digest], the
    # path lowercase; Kubernetes and every registry refuse anything else.
    good = [
        "python:3.11-slim",
        "ghcr.io/acme/train:1.4",
        "localhost:5000/a/b@sha256:" + "a" * 64,
        "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
    ]
    bad = ["Python:3.11", "python 3", "python:", "a//b", ":tag", "python:3.11\n", "x" * 256]
    for text in good:
        assert conforms(text, IMAGE), text
    for text in bad:
        assert not conforms(text, IMAGE), text
        assert list(_validator_class()(IMAGE).iter_errors(text)), text
