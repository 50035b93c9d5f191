"""YAML written the same way on every machine, and readable in a pull-request diff.

Multi-line strings (the steps' code inside the pipeline spec) are written as literal
blocks, so a changed line of a notebook cell is a changed line of the diff, not one
re-wrapped escaped string. Keys keep the order they were built in; callers sort what has
no natural order. Anchors and aliases are never emitted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from kfg.files.yamlsource import plain_is_safe

# libyaml's emitter when PyYAML was built with it (every PyYAML wheel on PyPI is): it is
# about ten times faster on pipelines that embed their code, and the golden-file tests pin
# its output.
_BaseDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BaseDumper):  # type: ignore[valid-type,misc]
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    style = None if plain_is_safe(value) or not value.isprintable() else "'"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def sorted_keys(value: Any) -> Any:
    """A copy with every mapping's keys sorted, for content whose key order means nothing."""
    if isinstance(value, dict):
        return {k: sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_keys(v) for v in value]
    return value


def dump_all(documents: Iterable[Any], header: str = "") -> str:
    body = yaml.dump_all(
        list(documents),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
        explicit_start=True,
    )
    # libyaml ends some streams with an explicit document end marker; it carries nothing.
    if body.endswith("\n...\n"):
        body = body[: -len("...\n")]
    return header + body
