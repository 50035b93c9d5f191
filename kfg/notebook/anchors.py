"""Fingerprints of referenced cells, and what they tell about a notebook edited since.

kale.yaml may record `spec.cellHashes`: for each cell it refers to, keyed by its position
(`"7"`) or its id, the first 8 hex digits of a SHA-256 of the cell's type and source. That
is enough to notice that the cell a position named now sits elsewhere, and to say how the
notebook changed ("a cell was inserted at 1") instead of letting every later check fail on
cells that merely shifted. A cell edited in place changes its hash but not its place; that
is normal editing and is not reported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from kfg.notebook.reader import Cell, Notebook


def fingerprint(cell: Cell) -> str:
    """Trailing whitespace and blank edges are ignored: editors and nbstripout vary them."""
    lines = [line.rstrip() for line in cell.source.strip().splitlines()]
    digest = hashlib.sha256((f"{cell.cell_type}\n" + "\n".join(lines)).encode()).hexdigest()
    return digest[:8]


@dataclass
class Drift:
    """Positions named in kale.yaml whose recorded cell now sits at another position."""

    moves: dict[int, int] = field(default_factory=dict)
    matched: list[tuple[int, int]] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.moves)

    def translate(self, position: int) -> int:
        """Where the cell that was at `position` is now; unrecorded cells shift with the
        nearest recorded cell before them."""
        if position in self.moves:
            return self.moves[position]
        delta = 0
        for old, new in self.matched:
            if old > position:
                break
            delta = new - old
        return position + delta


def _cells(count: int) -> str:
    return "a cell was" if count == 1 else f"{count} cells were"


def hash_key(cell: Cell, position: int, *, by_id: bool) -> str:
    """The `spec.cellHashes` key of a cell: its id or its position, as the reference to it
    is written. An id of digits only (nbformat makes one in about fifty) is written
    `id:20240131`, or it would read as a position."""
    if by_id and cell.id:
        return f"id:{cell.id}" if cell.id.isdigit() else cell.id
    return str(position)


def recorded_id(key: str) -> str:
    """The cell id a `spec.cellHashes` key names (for a position key, the key itself)."""
    return key[3:] if key.startswith("id:") else key


def is_position_key(key: str, notebook: Notebook) -> bool:
    """A digit key is a position, unless a cell has it as its id: a kale.yaml that an older
    kfg wrote keyed digit-only ids bare, and reading them as positions reported moves that
    never happened."""
    return key.isdigit() and not any(c.id == key for c in notebook.cells)


def detect(recorded: Mapping[str, str], notebook: Notebook) -> Drift:
    drift = Drift()
    hashes = [fingerprint(c) for c in notebook.cells]
    where: dict[str, list[int]] = {}
    for position, digest in enumerate(hashes, start=1):
        where.setdefault(digest, []).append(position)
    for key, digest in recorded.items():
        if not is_position_key(key, notebook):
            continue
        old = int(key)
        if old <= len(hashes) and hashes[old - 1] == digest:
            drift.matched.append((old, old))
            continue
        candidates = where.get(digest, [])
        if not candidates:
            continue  # edited in place, or deleted: nothing to follow
        new = min(candidates, key=lambda p: abs(p - old))
        drift.moves[old] = new
        drift.matched.append((old, new))
    drift.matched.sort()
    if not drift.moves:
        return drift
    previous_old, previous_new = 0, 0
    for old, new in drift.matched:
        before, after = previous_new - previous_old, new - old
        if new < previous_new:
            drift.changes.append(f"cell {old} moved to {new}")
        elif after > before:
            count = after - before
            if old - previous_old == 1:  # nothing unrecorded between: the place is known
                at = previous_new + 1
                span = f"at {at}" if count == 1 else f"at {at}-{at + count - 1}"
            elif previous_new == 0:
                span = f"above cell {new}"
            else:
                span = f"between cell {previous_new} and cell {new}"
            drift.changes.append(f"{_cells(count)} inserted {span}")
        elif after < before:
            count = before - after
            span = "at the top" if previous_old == 0 else f"after cell {previous_new}"
            drift.changes.append(f"{_cells(count)} deleted {span}")
        previous_old, previous_new = old, max(new, previous_new)
    return drift


def record(positions: list[int], notebook: Notebook, *, by_id: bool) -> dict[str, str]:
    """The `spec.cellHashes` kfg writes: notebook order, keyed the way the refs are."""
    out: dict[str, str] = {}
    for position in sorted(set(positions)):
        cell = notebook.cell(position)
        out[hash_key(cell, position, by_id=by_id)] = fingerprint(cell)
    return out
