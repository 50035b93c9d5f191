"""YAML written the same way on every machine, and readable in a pull-request diff.

Multi-line strings (the steps' code inside the pipeline spec) are written as literal
blocks, so a changed line of a notebook cell is a changed line of the diff, not one
re-wrapped escaped string. Keys keep the order they were built in; callers sort what has
no natural order. Anchors and aliases are never emitted.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import yaml

from kfg.files.yamlsource import plain_is_safe

# libyaml's emitter when PyYAML was built with it (every PyYAML wheel on PyPI is): it is
# about ten times faster on pipelines that embed their code, and the golden-file tests pin
# its output.
_BaseDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


def _style(value: str) -> str | None:
    """A literal block for several lines, else plain when a YAML 1.2 reader gets the same
    string back, else single quotes."""
    return "|" if "\n" in value else _line_style(value)


@functools.lru_cache(maxsize=8192)
def _line_style(value: str) -> str | None:
    # Cached: keys and short values repeat throughout a package.
    return None if plain_is_safe(value) or not value.isprintable() else "'"


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar(_STR, value, style=_style(value))


class _Dumper(_BaseDumper):  # type: ignore[valid-type,misc]
    def ignore_aliases(self, data: Any) -> bool:
        return True

    def represent_data(self, data: Any) -> yaml.Node:
        """PyYAML's dispatch by type, cut short for the exact types a package is made of.

        The nodes are those PyYAML's own representers build with `default_flow_style=False`,
        `sort_keys=False`, no default style and no aliases (how `dump_all` below calls it):
        every mapping and sequence in block style, strings styled by `_style`. Anything
        else, and any other configuration, goes through PyYAML's dispatch.
        """
        if self.default_flow_style is not False or self.sort_keys or self.default_style:
            node: yaml.Node = super().represent_data(data)
            return node
        kind = type(data)
        if kind is str:
            return yaml.ScalarNode(_STR, data, style=_style(data))
        if kind is dict:
            pairs = [(self.represent_data(k), self.represent_data(v)) for k, v in data.items()]
            return yaml.MappingNode(_MAP, pairs, flow_style=False)
        if kind is list:
            items = [self.represent_data(v) for v in data]
            return yaml.SequenceNode(_SEQ, items, flow_style=False)
        other: yaml.Node = super().represent_data(data)
        return other

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        """The tag a scalar would be read back as, which libyaml's emitter asks for twice
        per scalar to decide on quotes: PyYAML's regular expressions, remembered for the
        one-line strings (keys, names, short values) that make most of a package."""
        if kind is yaml.ScalarNode and type(implicit) is tuple and "\n" not in value:
            return _scalar_tag(value, implicit)
        return super().resolve(kind, value, implicit)


_Dumper.add_representer(str, _string)
_RESOLVER = yaml.resolver.Resolver()  # _Dumper's resolver: the same implicit tags


@functools.lru_cache(maxsize=16384)
def _scalar_tag(value: str, implicit: tuple[bool, bool]) -> Any:
    return _RESOLVER.resolve(yaml.ScalarNode, value, implicit)  # type: ignore[no-untyped-call]


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
