"""Validate rendered custom resources against the upstream CRDs copied here (see SOURCES.txt)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

HERE = Path(__file__).resolve().parent


@cache
def _schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in sorted(HERE.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def validate(obj: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless the object matches its CRD's schema."""
    schema = _schemas()[(obj["apiVersion"], obj["kind"])]
    jsonschema.Draft7Validator(schema).validate(obj)
