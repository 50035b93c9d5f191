"""Load one YAML document into plain data while remembering where every node came from.

kfg reports every mistake at a line and column of kale.yaml, and PyYAML's constructors throw
that information away (and silently keep the last of two duplicate keys). So the document is
built here from libyaml's event stream instead: iteratively, so deep nesting cannot exhaust
the Python stack, and with limits on size, depth and alias expansion, so hostile input is
refused in milliseconds instead of being expanded.

Plain scalars follow the YAML 1.2 core schema, as kustomize, Argo CD and yaml-language-server
do: `yes` and `2026-11-01` stay strings, `true`, `3` and `1e-3` do not.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from kfg.errors import KfgError

Path = tuple[str | int, ...]

MAX_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_NODES = 50_000


@dataclass(frozen=True, order=True)
class Pos:
    """A 1-based line and column."""

    line: int
    column: int


class YamlError(KfgError):
    """A document that cannot be loaded, with the position that explains why."""

    def __init__(self, message: str, pos: Pos | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


@dataclass
class Positions:
    """Where each value and each mapping key of a document starts."""

    values: dict[Path, Pos] = field(default_factory=dict)
    keys: dict[Path, Pos] = field(default_factory=dict)

    def of(self, path: Path, *, key: bool = False) -> Pos:
        """The position of `path`, or of its nearest ancestor that has one.

        Missing entries are normal: a required key that is absent, or a node reached through
        an alias, has no position of its own, and its parent is the right place to point at.
        """
        if key and path in self.keys:
            return self.keys[path]
        probe = path
        while probe:
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), Pos(1, 1))


@dataclass
class Document:
    data: Any
    positions: Positions


_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_OCT = re.compile(r"^0o[0-7]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^([-+]?)\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")


def resolve_plain(text: str) -> Any:
    """The value of a plain (unquoted, untagged) scalar under the YAML 1.2 core schema."""
    if _NULL.match(text):
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.match(text):
        return int(text)
    if _OCT.match(text):
        return int(text[2:], 8)
    if _HEX.match(text):
        return int(text[2:], 16)
    if _FLOAT.match(text):
        return float(text)
    inf = _INF.match(text)
    if inf:
        return -math.inf if inf.group(1) == "-" else math.inf
    if _NAN.match(text):
        return math.nan
    return text


def plain_is_safe(text: str) -> bool:
    """Whether `text` may be written unquoted: a YAML 1.2 reader gets the same string back.

    PyYAML writes YAML 1.1 and leaves strings such as `1e-06`, `0o17` or `0E0` plain,
    which YAML 1.2 readers (kustomize, Argo CD, Flux, editors, kfg) take for numbers.
    """
    return text.isprintable() and resolve_plain(text) == text


def _tagged(tag: str, text: str, pos: Pos) -> Any:
    short = tag.replace("tag:yaml.org,2002:", "!!")
    if short == "!!str":
        return text
    value: Any = resolve_plain(text)
    expected: dict[str, type | tuple[type, ...]] = {
        "!!int": int,
        "!!float": (int, float),
        "!!bool": bool,
        "!!null": type(None),
    }
    if short not in expected:
        raise YamlError(f"unsupported YAML tag `{short}`", pos)
    if short == "!!int" and isinstance(value, bool):
        value = text
    if not isinstance(value, expected[short]):
        raise YamlError(f"`{text}` is not a valid {short} value", pos)
    return float(str(value)) if short == "!!float" else value


def _pos(mark: Any) -> Pos:
    return Pos(mark.line + 1, mark.column + 1)


@dataclass
class _Frame:
    container: dict[str, Any] | list[Any]
    path: Path
    pos: Pos
    anchor: str | None
    nodes_at_start: int
    key: str | None = None
    key_pos: Pos | None = None
    merges: list[tuple[dict[str, Any], Pos]] = field(default_factory=list)


class _Builder:
    def __init__(self) -> None:
        self.positions = Positions()
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.stack: list[_Frame] = []
        self.nodes = 0
        self.root: Any = None
        self.done = False

    def count(self, n: int, pos: Pos) -> None:
        self.nodes += n
        if self.nodes > MAX_NODES:
            raise YamlError(
                f"document too large: more than {MAX_NODES} nodes once aliases are expanded"
                " (an alias bomb?)",
                pos,
            )

    def child_path(self) -> Path:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.container, list):
            return (*top.path, len(top.container))
        assert top.key is not None
        return (*top.path, top.key)

    def expecting_key(self) -> bool:
        return (
            bool(self.stack)
            and isinstance(self.stack[-1].container, dict)
            and (self.stack[-1].key is None)
        )

    def add(self, value: Any, pos: Pos, anchor: str | None, size: int) -> None:
        if anchor:
            self.anchors[anchor] = (value, size)
        if not self.stack:
            self.root = value
            self.done = True
            return
        top = self.stack[-1]
        if isinstance(top.container, list):
            top.container.append(value)
            return
        assert top.key is not None and top.key_pos is not None
        if top.key == "<<":
            self.merge(top, value, pos)
        else:
            top.container[top.key] = value
        top.key = None

    def merge(self, top: _Frame, value: Any, pos: Pos) -> None:
        sources = value if isinstance(value, list) else [value]
        for source in sources:
            if not isinstance(source, dict):
                raise YamlError("a merge key `<<` takes a mapping or a list of mappings", pos)
            top.merges.append((source, pos))

    def set_key(self, key: str, pos: Pos) -> None:
        top = self.stack[-1]
        assert isinstance(top.container, dict)
        key_path = (*top.path, key)
        if key in top.container:
            first = self.positions.keys[key_path]
            raise YamlError(f"duplicate key `{key}` (first defined on line {first.line})", pos)
        top.key, top.key_pos = key, pos
        if key != "<<":
            self.positions.keys[key_path] = pos

    def start(self, container: dict[str, Any] | list[Any], pos: Pos, anchor: str | None) -> None:
        if self.expecting_key():
            raise YamlError("mapping keys must be plain strings, not mappings or lists", pos)
        if len(self.stack) >= MAX_DEPTH:
            raise YamlError(f"document nested deeper than {MAX_DEPTH} levels", pos)
        self.count(1, pos)
        path = self.child_path()
        self.positions.values[path] = pos
        self.stack.append(_Frame(container, path, pos, anchor, self.nodes))

    def end(self) -> None:
        frame = self.stack.pop()
        if isinstance(frame.container, dict):
            for source, pos in frame.merges:
                for key, item in source.items():
                    if key not in frame.container:
                        frame.container[key] = item
                        self.positions.values.setdefault((*frame.path, key), pos)
                        self.positions.keys.setdefault((*frame.path, key), pos)
        self.add(frame.container, frame.pos, frame.anchor, self.nodes - frame.nodes_at_start + 1)

    def scalar(self, event: yaml.ScalarEvent) -> None:
        pos = _pos(event.start_mark)
        self.count(1, pos)
        if self.expecting_key():
            if event.tag not in (None, "!", "tag:yaml.org,2002:str"):
                raise YamlError("mapping keys must be plain strings", pos)
            self.set_key(event.value, pos)
            return
        plain = event.implicit[0] and event.tag in (None, "!")
        if plain:
            try:
                value = resolve_plain(event.value)
            except ValueError:  # an integer past Python's 4300-digit conversion limit
                raise YamlError(f"`{event.value[:20]}...` is too long a number", pos) from None
        elif event.tag in (None, "!"):
            value = event.value
        else:
            value = _tagged(event.tag, event.value, pos)
        self.positions.values[self.child_path()] = pos
        self.add(value, pos, event.anchor, 1)

    def alias(self, event: yaml.AliasEvent) -> None:
        pos = _pos(event.start_mark)
        if event.anchor not in self.anchors:
            raise YamlError(f"unknown alias `*{event.anchor}`", pos)
        value, size = self.anchors[event.anchor]
        self.count(size, pos)
        if self.expecting_key():
            raise YamlError("aliases cannot be used as mapping keys", pos)
        self.positions.values[self.child_path()] = pos
        self.add(value, pos, None, size)


def _events(text: str) -> Iterator[yaml.Event]:
    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_cls(text)
    try:
        while loader.check_event():
            yield loader.get_event()
    finally:
        loader.dispose()


def check_limits(text: str, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> None:
    """Refuse a stream nested deeper or holding more nodes than allowed, before another YAML
    library (ruamel's recursive composer, for a KRM ResourceList) builds it; libyaml's event
    scan is fast and needs no recursion. Aliases count once: they are not expanded here."""
    depth = nodes = 0
    try:
        for event in _events(text):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > max_depth:
                    raise YamlError(
                        f"document nested deeper than {max_depth} levels", _pos(event.start_mark)
                    )
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            elif not isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
                continue
            nodes += 1
            if nodes > max_nodes:
                raise YamlError(f"more than {max_nodes} YAML nodes", _pos(event.start_mark))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _pos(mark) if mark else None
        raise YamlError(f"invalid YAML: {exc.problem or exc.context}", where) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"invalid YAML: {exc}") from None


def load(text: str) -> Document:
    """Build the single document in `text`; raise YamlError for anything kfg will not read."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlError(f"file larger than {MAX_BYTES // 1024} KiB; kale.yaml files are small")
    builder = _Builder()
    documents = 0
    try:
        for event in _events(text):
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise YamlError(
                        "expected one YAML document, found a second one"
                        " (one kale.yaml describes one pipeline)",
                        _pos(event.start_mark),
                    )
            elif isinstance(event, yaml.MappingStartEvent):
                if event.tag not in (None, "!", "tag:yaml.org,2002:map"):
                    raise YamlError(f"unsupported YAML tag `{event.tag}`", _pos(event.start_mark))
                builder.start({}, _pos(event.start_mark), event.anchor)
            elif isinstance(event, yaml.SequenceStartEvent):
                if event.tag not in (None, "!", "tag:yaml.org,2002:seq"):
                    raise YamlError(f"unsupported YAML tag `{event.tag}`", _pos(event.start_mark))
                builder.start([], _pos(event.start_mark), event.anchor)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                builder.end()
            elif isinstance(event, yaml.ScalarEvent):
                builder.scalar(event)
            elif isinstance(event, yaml.AliasEvent):
                builder.alias(event)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            problem = f"{exc.problem} ({exc.context})"
        raise YamlError(f"invalid YAML: {problem}", _pos(mark) if mark else None) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"invalid YAML: {exc}") from None
    if not builder.done:
        raise YamlError("the file is empty", Pos(1, 1))
    return Document(builder.root, builder.positions)
