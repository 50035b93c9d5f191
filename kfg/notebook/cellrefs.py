"""Cell references in kale.yaml (`6`, `"9-12"`, `"id:abc"`, `"id:a..id:b"`, `"tag:train"`).

Positions shift whenever a cell is inserted above them; nbformat 4.5 cell ids do not. An id
range (`"id:a1..id:c3"`) selects every cell from one anchor to the other in notebook order,
so a cell added inside it joins that step, and cells added elsewhere change nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from kfg.diagnostics import did_you_mean
from kfg.errors import KfgError
from kfg.notebook.reader import Notebook

_RANGE = re.compile(r"^\s*([1-9][0-9]*)\s*(?:-\s*([1-9][0-9]*)\s*)?$")

RefKind = Literal["position", "range", "id", "idrange", "tag"]
ID_RANGE_SEP = ".."


class CellRefError(KfgError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class CellRef:
    kind: RefKind
    text: str
    start: int = 0
    end: int = 0
    key: str = ""
    end_key: str = ""

    def __str__(self) -> str:
        return self.text


def parse_ref(value: int | str) -> CellRef:
    """Parse a reference; the schema has already checked its shape, this gives it meaning."""
    if isinstance(value, int):
        return CellRef("position", str(value), value, value)
    if value.startswith("id:"):
        first, sep, last = value[3:].partition(ID_RANGE_SEP)
        if not sep:
            return CellRef("id", value, key=value[3:])
        last = last.strip()
        if not last.startswith("id:") or not first.strip() or not last[3:]:
            raise CellRefError(f"`{value}` is not an id range; write `id:<first>..id:<last>`")
        return CellRef("idrange", value, key=first.strip(), end_key=last[3:].strip())
    if value.startswith("tag:"):
        return CellRef("tag", value, key=value[4:])
    match = _RANGE.match(value)
    if not match:
        raise CellRefError(f"`{value}` is not a cell reference")
    start = int(match.group(1))
    end = int(match.group(2) or start)
    if end < start:
        raise CellRefError(f"range `{value}` runs backwards; write `{end}-{start}`")
    return CellRef("range" if match.group(2) else "position", value, start, end)


def resolve(ref: CellRef, notebook: Notebook) -> list[int]:
    """The 1-based positions of the cells `ref` selects, in notebook order."""
    count = len(notebook.cells)
    name = notebook.path.name
    if ref.kind in ("position", "range"):
        if ref.end > count:
            bad = ref.start if ref.start > count else ref.end
            raise CellRefError(f"cell {bad} is out of range: {name} has {count} cells")
        return list(range(ref.start, ref.end + 1))
    if ref.kind in ("id", "idrange"):
        first = _by_id(ref.key, notebook)
        if ref.kind == "id":
            return [first]
        last = _by_id(ref.end_key, notebook)
        if last < first:
            raise CellRefError(
                f"range `{ref.text}` runs backwards: cell {first} comes after cell {last};"
                f" write `id:{ref.end_key}..id:{ref.key}`"
            )
        return list(range(first, last + 1))
    hits = [c.position for c in notebook.cells if ref.key in c.tags]
    if not hits:
        tags = sorted({t for c in notebook.cells for t in c.tags})
        raise CellRefError(
            f"no cell of {name} carries tag `{ref.key}`{did_you_mean(ref.key, tags)}"
        )
    return hits


def _by_id(key: str, notebook: Notebook) -> int:
    name = notebook.path.name
    ids = [c.id for c in notebook.cells if c.id]
    if not ids:
        raise CellRefError(
            f"{name} has no cell ids (nbformat 4.{notebook.nbformat_minor});"
            " refer to cells by number, or save it with Jupyter to add ids"
        )
    hits = [c.position for c in notebook.cells if c.id == key]
    if not hits:
        raise CellRefError(f"no cell of {name} has id `{key}`{did_you_mean(key, ids)}")
    return hits[0]


def has_ids(notebook: Notebook) -> bool:
    """Every cell has an id: nbformat 4.5 and later, as Jupyter saves them."""
    return bool(notebook.cells) and all(c.id for c in notebook.cells)


def compress_ids(positions: list[int], notebook: Notebook) -> list[int | str]:
    """[2, 3, 4, 7] -> ["id:a..id:c", "id:g"]: the same cells, anchored to their ids.

    A run is contiguous among all cells (markdown included), so the range keeps covering
    exactly these cells until someone inserts a new one inside it.
    """
    out: list[int | str] = []
    for ref in compress(positions):
        if isinstance(ref, int):
            out.append(f"id:{notebook.cell(ref).id}")
        else:
            start, end = (int(part) for part in ref.split("-"))
            out.append(f"id:{notebook.cell(start).id}..id:{notebook.cell(end).id}")
    return out


def compress(positions: list[int]) -> list[int | str]:
    """[2, 3, 4, 7] -> ["2-4", 7]: the shortest list of references for these positions."""
    out: list[int | str] = []
    ordered = sorted(set(positions))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(ordered[i] if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return out
