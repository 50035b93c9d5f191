"""The table `kfg cells` prints: every cell with its position, id, type, tags and step."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from kfg.config.cellmap import CellMap
from kfg.notebook.reader import Notebook


@dataclass(frozen=True)
class Row:
    position: int
    id: str
    type: str
    tags: str
    step: str
    first_line: str


def rows(notebook: Notebook, cellmap: CellMap | None) -> list[Row]:
    out = []
    for cell in notebook.cells:
        if cellmap is None:
            role = ""
        elif cell.position in cellmap.roles:
            role = cellmap.role_label(cell.position)
        elif cell.is_code and not cell.is_blank:
            role = "(none)"
        else:
            role = ""
        out.append(
            Row(
                cell.position,
                cell.id or "",
                cell.cell_type,
                ",".join(cell.tags),
                role,
                cell.first_line,
            )
        )
    return out


def as_table(table: list[Row], width: int, with_step: bool) -> str:
    headers = (
        ["#", "id", "type", "tags", "step", "first line"]
        if with_step
        else ["#", "id", "type", "tags", "first line"]
    )
    cells = [
        [str(r.position), r.id, r.type, r.tags, *([r.step] if with_step else []), r.first_line]
        for r in table
    ]
    widths = [
        max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    for i in range(1, len(headers) - 1):
        widths[i] = min(widths[i], 24)
    lines = []
    for row in [headers, *cells]:
        parts = []
        for i, value in enumerate(row[:-1]):
            shown = value if len(value) <= widths[i] else value[: widths[i] - 1] + "…"
            parts.append(shown.rjust(widths[i]) if i == 0 else shown.ljust(widths[i]))
        prefix = "  ".join(parts) + "  "
        room = max(width - len(prefix), 20)
        last = row[-1] if len(row[-1]) <= room else row[-1][: room - 1] + "…"
        lines.append((prefix + last).rstrip())
    return "\n".join(lines)


def as_json(table: list[Row]) -> str:
    return json.dumps([asdict(r) for r in table], indent=2)
