"""The fast yes/no schema check agrees with jsonschema on valid and broken kale.yaml files."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft7Validator

from kfg.schema import load_schema
from kfg.schemacheck import conforms
from tests.conftest import EXAMPLES

SCHEMA = load_schema()
VALIDATOR = Draft7Validator(SCHEMA)
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
