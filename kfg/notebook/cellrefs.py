"""Cell references in kale.yaml (`6`, `"9-12"`, `"id:abc"`, `"tag:train"`) and what they select."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from kfg.diagnostics import did_you_mean
from kfg.errors import KfgError
from kfg.notebook.reader import Notebook

_RANGE = re.compile(r"^\s*([1-9][0-9]*)\s*(?:-\s*([1-9][0-9]*)\s*)?$")

RefKind = Literal["position", "range", "id", "tag"]


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

    def __str__(self) -> str:
        return self.text


def parse_ref(value: int | str) -> CellRef:
    """Parse a reference; the schema has already checked its shape, this gives it meaning."""
    if isinstance(value, int):
        return CellRef("position", str(value), value, value)
    if value.startswith("id:"):
        return CellRef("id", value, key=value[3:])
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
    if ref.kind == "id":
        ids = [c.id for c in notebook.cells if c.id]
        if not ids:
            raise CellRefError(
                f"{name} has no cell ids (nbformat 4.{notebook.nbformat_minor});"
                " refer to cells by number, or save it with Jupyter to add ids"
            )
        hits = [c.position for c in notebook.cells if c.id == ref.key]
        if not hits:
            raise CellRefError(f"no cell of {name} has id `{ref.key}`{did_you_mean(ref.key, ids)}")
        return hits
    hits = [c.position for c in notebook.cells if ref.key in c.tags]
    if not hits:
        tags = sorted({t for c in notebook.cells for t in c.tags})
        raise CellRefError(
            f"no cell of {name} carries tag `{ref.key}`{did_you_mean(ref.key, tags)}"
        )
    return hits


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
