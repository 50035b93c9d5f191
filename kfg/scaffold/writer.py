"""Write a proposed kale.yaml as text: modeline, a short header, then the document."""

from __future__ import annotations

from typing import Any

import yaml

MODELINE = "# yaml-language-server: $schema={schema}"


def to_yaml(data: dict[str, Any], *, schema_ref: str, header: list[str]) -> str:
    body = yaml.safe_dump(
        data, sort_keys=False, default_flow_style=None, width=100, allow_unicode=True
    )
    lines = [MODELINE.format(schema=schema_ref), *(f"# {h}" if h else "#" for h in header)]
    return "\n".join(lines) + "\n" + body
