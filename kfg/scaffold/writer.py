"""Write a proposed kale.yaml as text: modeline, a short header, then the document."""

from __future__ import annotations

from typing import Any

import yaml

from kfg.files.yamlsource import plain_is_safe

MODELINE = "# yaml-language-server: $schema={schema}"


class _Dumper(yaml.SafeDumper):
    """PyYAML emits YAML 1.1 and leaves strings like `0o17` or `0E0` plain, which YAML 1.2
    readers (kfg, kustomize, editors) take for numbers; quote every string that would not
    read back as itself."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if not value.isprintable():
        style: str | None = '"'
    elif not plain_is_safe(value):
        style = "'"
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump(data: Any) -> str:
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=None,
        width=100,
        allow_unicode=True,
    )


def to_yaml(data: dict[str, Any], *, schema_ref: str, header: list[str]) -> str:
    lines = [MODELINE.format(schema=schema_ref), *(f"# {h}" if h else "#" for h in header)]
    return "\n".join(lines) + "\n" + dump(data)
