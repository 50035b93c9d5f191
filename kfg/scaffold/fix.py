"""`kfg fix`: make a kale.yaml follow the notebook it describes.

It re-anchors positions whose cells moved (as `spec.cellHashes` shows), converts positions to
cell ids when asked, records fresh fingerprints, and proposes a step for each cell that has
none. The file is edited as text at the spans of the nodes that change (located with
ruamel.yaml's composer), so comments, key order, quoting and layout everywhere else stay
byte for byte what the author wrote.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from kfg.config.cellmap import PARAMETERS, describe_role, likely_step, step_role
from kfg.core.load import load_pipeline
from kfg.files.yamlsource import plain_is_safe
from kfg.notebook import anchors
from kfg.notebook.cellrefs import CellRef, CellRefError, has_ids, parse_ref
from kfg.notebook.reader import Notebook


class FixError(Exception):
    """kale.yaml cannot be fixed (it does not parse, or its notebook is missing)."""


class _Unfollowable(Exception):
    """A reference whose cells moved in a way no reference of its kind can follow."""


@dataclass
class FixResult:
    path: Path
    display: str
    original: str
    fixed: str
    notes: list[str] = field(default_factory=list)
    drift: str = ""
    # References kfg cannot follow (their cells were reordered across them): the file is
    # not rewritten until the author settles them.
    problems: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.original != self.fixed

    def diff(self) -> str:
        return "".join(
            difflib.unified_diff(
                self.original.splitlines(keepends=True),
                self.fixed.splitlines(keepends=True),
                f"a/{self.display}",
                f"b/{self.display}",
            )
        )


@dataclass
class _Edit:
    start: int
    end: int
    text: str


def _quote(value: int | str) -> str:
    return str(value) if isinstance(value, int) else json.dumps(value)


def _retarget(
    ref: CellRef, value: Any, drift: anchors.Drift | None, notebook: Notebook, ids: bool
) -> int | str:
    """The reference that selects, in today's notebook, the cells `ref` meant."""
    if ref.kind not in ("position", "range"):
        return value  # type: ignore[no-any-return]
    start, end = ref.start, ref.end
    if drift:
        start, end = drift.translate(start), drift.translate(end)
    if start > end:
        raise _Unfollowable(
            f"cells {ref.start}-{ref.end}: the first is now cell {start} and the last cell"
            f" {end}, so the cells between were reordered and no range selects what this one"
            " meant; list the cells it should hold by hand"
        )
    if ids:
        first, last = notebook.cell(start).id, notebook.cell(end).id
        return f"id:{first}" if start == end else f"id:{first}..id:{last}"
    if start == end and isinstance(value, int):
        return start
    return f"{start}-{end}" if ref.kind == "range" else str(start)


def _spec_nodes(root: Node) -> dict[str, tuple[Node, Node]]:
    if not isinstance(root, MappingNode):
        raise FixError("expected a mapping at the top of the file")
    for key, value in root.value:
        if key.value == "spec" and isinstance(value, MappingNode):
            return {k.value: (k, v) for k, v in value.value}
    raise FixError("no `spec` mapping")


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _line_end(text: str, index: int) -> int:
    end = text.find("\n", index)
    return len(text) if end < 0 else end


_PROPERTIES = re.compile(r"(?:[&!][^\s\[\]{},]*\s+)*")


def _value_start(text: str, node: Node) -> int:
    """Where a node's value begins: after its anchor (`&cells`) and tag, which an alias
    elsewhere in the file may need, so they stay."""
    index = int(node.start_mark.index)
    match = _PROPERTIES.match(text, index)
    return match.end() if match else index


def _sequence_edit(text: str, node: SequenceNode, items: list[str]) -> _Edit:
    if node.flow_style or not node.value:
        return _Edit(_value_start(text, node), node.end_mark.index, "[" + ", ".join(items) + "]")
    first, last = node.value[0], node.value[-1]
    start = _line_start(text, first.start_mark.index)
    prefix = text[start : first.start_mark.index]
    lines = [prefix + items[0]]
    lines += [" " * len(prefix[:-2]) + "- " + item for item in items[1:]]
    return _Edit(start, last.end_mark.index, "\n".join(lines))


def _last_end(node: Node) -> int:
    """Where the last value of a block collection ends (its own end takes in the comments
    that follow it)."""
    while isinstance(node, (MappingNode, SequenceNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(node, MappingNode) else last
    return int(node.end_mark.index)


def _keep_comment_column(text: str, edit: _Edit) -> _Edit:
    """`prelude: [2, 3]   # imports` keeps its comment where it was when the new value fits."""
    rest = text[edit.end : _line_end(text, edit.end)]
    padding = len(rest) - len(rest.lstrip(" "))
    if "\n" in edit.text or not rest.lstrip(" ").startswith("#") or padding == 0:
        return edit
    column = edit.end - _line_start(text, edit.end) + padding
    new_end = edit.start - _line_start(text, edit.start) + len(edit.text)
    spaces = max(2, column - new_end) if padding >= 2 else padding
    return _Edit(edit.start, edit.end + padding, edit.text + " " * spaces)


def _key(key: str) -> str:
    """Ids plain where YAML reads them back as strings; positions quoted (they are keys)."""
    return key if plain_is_safe(key) and not key[0].isdigit() else json.dumps(key)


def _hashes_text(recorded: dict[str, str], roles: dict[str, str], indent: str, inline: bool) -> str:
    rows = [
        f"{indent}  {_key(key)}: {json.dumps(value)}  # {roles[key]}"
        for key, value in recorded.items()
    ]
    head = "" if inline else f"{indent}cellHashes:"
    return "\n".join([head, *rows]) if not inline else "\n" + "\n".join(rows)


def fix_file(path: Path, *, root: Path | None = None, ids: bool = False) -> FixResult:
    return fix_text(path.read_text(encoding="utf-8"), path, root=root, ids=ids)


def fix_text(
    original: str, path: Path, *, root: Path | None = None, ids: bool = False
) -> FixResult:
    """`original` is the kale.yaml text; `path` says where it lives (notebook paths are
    relative to it), so `kfg init` can record fingerprints before it writes the file."""
    result = load_pipeline(path, root=root, text=original)
    if result.data is None or result.notebook is None or result.cellmap is None:
        first = next((d for d in result.diagnostics if d.severity.name == "ERROR"), None)
        why = f": {first.file}:{first.line}: {first.message}" if first else ""
        raise FixError(f"{result.display}: cannot fix before it loads{why}")
    notebook, cellmap, spec = result.notebook, result.cellmap, result.data["spec"]
    fixed = FixResult(path, result.display, original, original)
    drift_diag = next((d for d in result.diagnostics if d.code == "cells-moved"), None)
    fixed.drift = drift_diag.message if drift_diag else ""
    recorded = {str(k): str(v) for k, v in (spec.get("cellHashes") or {}).items()}
    drift = anchors.detect(recorded, notebook) if recorded else None
    if ids and not has_ids(notebook):
        fixed.notes.append(
            f"{notebook.path.name} has no cell ids (nbformat 4.{notebook.nbformat_minor});"
            " kept positions, which `spec.cellHashes` now protects. Save the notebook with"
            " JupyterLab 3+ or Notebook 7 to add ids, then run `kfg fix --ids --write`"
        )
        ids = False
    try:
        tree = YAML().compose(original)
    except YAMLError as exc:
        raise FixError(f"{result.display}: {exc}") from None
    nodes = _spec_nodes(tree)
    edits: list[_Edit] = []
    # Fingerprints, keyed as the new references will be: by id, or by today's position.
    hashes: dict[int, tuple[str, str]] = {}

    def follow(role: str, node: Node) -> list[str] | None:
        values = node.value if isinstance(node, SequenceNode) else [node]
        out: list[str] = []
        changed = False
        for item in values:
            if not isinstance(item, ScalarNode):
                return None
            tag = str(item.tag or "")
            value: int | str = int(item.value) if tag.endswith(":int") else str(item.value)
            try:
                ref = parse_ref(value)
            except CellRefError:
                out.append(_quote(value))
                continue
            try:
                new = _retarget(ref, value, drift, notebook, ids)
            except _Unfollowable as exc:
                fixed.problems.append(f"{describe_role(role)}: {exc}")
                out.append(_quote(value))
                continue
            changed |= new != value
            out.append(_quote(new))
            try:
                new_ref = parse_ref(new)
            except CellRefError:
                continue
            if new_ref.kind in ("position", "range", "id", "idrange"):
                for position in _positions(new_ref, notebook):
                    by_id = new_ref.kind in ("id", "idrange")
                    key = anchors.hash_key(notebook.cell(position), position, by_id=by_id)
                    hashes[position] = (key, describe_role(role))
        return out if changed else None

    sections: list[tuple[str, Node]] = []
    for name in ("prelude", "skip"):
        if name in nodes:
            sections.append((name, nodes[name][1]))
    params = nodes.get("parameters")
    if params and isinstance(params[1], MappingNode):
        for key, value in params[1].value:
            if key.value == "cell":
                sections.append((PARAMETERS, value))
    steps = nodes.get("steps")
    if steps and isinstance(steps[1], SequenceNode):
        for step in steps[1].value:
            if not isinstance(step, MappingNode):
                continue
            entries: dict[str, Node] = {str(k.value): v for k, v in step.value}
            step_name = entries.get("name")
            if isinstance(step_name, ScalarNode) and "cells" in entries:
                sections.append((step_role(str(step_name.value)), entries["cells"]))
    for role, node in sections:
        new_items = follow(role, node)
        if new_items is None:
            continue
        if isinstance(node, SequenceNode):
            edits.append(_sequence_edit(original, node, new_items))
        else:
            edits.append(_Edit(_value_start(original, node), node.end_mark.index, new_items[0]))

    record = {key: anchors.fingerprint(notebook.cell(p)) for p, (key, _) in sorted(hashes.items())}
    roles = {key: role.replace("`", "") for key, role in hashes.values()}
    if "cellHashes" in nodes:
        key_node, value_node = nodes["cellHashes"]
        if isinstance(value_node, MappingNode) and value_node.value and not value_node.flow_style:
            if {str(k.value): str(v.value) for k, v in value_node.value} != record:
                start = _line_end(original, key_node.end_mark.index)
                end = _line_end(original, value_node.value[-1][1].end_mark.index)
                indent = original[_line_start(original, key_node.start_mark.index) :][
                    : key_node.start_mark.column
                ]
                edits.append(_Edit(start, end, _hashes_text(record, roles, indent, True)))
        else:
            indent = " " * key_node.start_mark.column
            start = _line_start(original, key_node.start_mark.index)
            end = _line_end(original, value_node.end_mark.index)
            edits.append(_Edit(start, end, _hashes_text(record, roles, indent, False)))
    elif record and "steps" in nodes:
        # Last in `spec`: out of the way of what people read, and no line above it moves.
        indent = " " * nodes["steps"][0].start_mark.column
        end = _line_end(original, _last_end(list(nodes.values())[-1][1]))
        edits.append(_Edit(end, end, "\n" + _hashes_text(record, roles, indent, False)))

    if fixed.problems:
        edits = []  # half a fix would record fingerprints for references left stale
    text = original
    for edit in sorted(edits, key=lambda e: e.start, reverse=True):
        edit = _keep_comment_column(original, edit)
        text = text[: edit.start] + edit.text + text[edit.end :]
    fixed.fixed = text

    for cell in notebook.code_cells:
        if cell.is_blank or cell.position in cellmap.roles:
            continue
        guess = likely_step(cell, cellmap, notebook)
        where = f"step `{guess[0]}` ({guess[1]})" if guess else "a new step"
        fixed.notes.append(
            f"cell {cell.position} (`{cell.first_line[:40]}`) belongs to no step; it most likely"
            f" belongs to {where}: add `{_anchor(notebook, cell.position)}` to its cells,"
            " or to `skip`"
        )
    return fixed


def _anchor(notebook: Notebook, position: int) -> str:
    cell = notebook.cell(position)
    return f'"id:{cell.id}"' if cell.id else str(position)


def _positions(ref: CellRef, notebook: Notebook) -> list[int]:
    from kfg.notebook.cellrefs import resolve

    try:
        return resolve(ref, notebook)
    except CellRefError:
        return []
