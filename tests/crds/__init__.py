"""Validate rendered objects: custom resources against the upstream CRDs and schemas copied
here (see SOURCES.txt), core Kubernetes objects with kubernetes-validate."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

HERE = Path(__file__).resolve().parent
KUBERNETES_VERSION = "1.33.0"
# Katib's CRD leaves the spec open (x-kubernetes-preserve-unknown-fields); its full schema
# comes from Katib's OpenAPI definitions.
# libyaml's loader when PyYAML has it: the Notebook CRD alone takes 0.7 s in pure Python.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DERIVED = {("kubeflow.org/v1beta1", "Experiment"): "katib-experiment.openapi-derived.yaml"}


@cache
def _schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in sorted(HERE.glob("*.yaml")):
        crd = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
        if crd.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    for key, name in DERIVED.items():
        schemas[key] = yaml.safe_load((HERE / name).read_text(encoding="utf-8"))
    return schemas


def validate(obj: dict[str, Any]) -> None:
    """Raise unless the object matches its CRD's schema, or Kubernetes' own for core kinds."""
    key = (obj["apiVersion"], obj["kind"])
    schema = _schemas().get(key)
    if schema is None:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        return
    jsonschema.Draft7Validator(schema).validate(obj)
    unknown = list(_unknown_fields(obj, schema, ""))
    assert not unknown, f"fields the schema does not define: {unknown}"


def _unknown_fields(value: Any, schema: dict[str, Any], path: str) -> Any:
    """Keys the schema does not declare: a typo the API server would silently drop."""
    if isinstance(value, dict) and "properties" in schema:
        if "additionalProperties" in schema or schema.get("x-kubernetes-preserve-unknown-fields"):
            return
        for key, item in value.items():
            if key not in schema["properties"]:
                yield f"{path}.{key}"
            else:
                yield from _unknown_fields(item, schema["properties"][key], f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _unknown_fields(item, schema["items"], f"{path}[{index}]")
