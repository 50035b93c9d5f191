"""Read a .ipynb file into the few facts kfg needs, quickly and without trusting it.

nbformat is the reference implementation of the format, but importing it costs about 0.3 s,
more than `kfg validate` may spend in total. The notebook JSON is simple enough to check
directly for what kfg relies on: nbformat 4, a list of cells, each with a type, a source,
metadata and (from 4.5) an id.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfg.errors import KfgError
from kfg.files.inputfile import InputFileError, read_bounded

MAX_NOTEBOOK_BYTES = 256 << 20
CELL_TYPES = ("code", "markdown", "raw")
# jupyter/nbformat v4/nbformat.v4.5.schema.json: definitions.cell_id.
CELL_ID = re.compile(r"\A[a-zA-Z0-9-_]{1,64}\Z")


class NotebookError(KfgError):
    """A file that is not a notebook kfg can read; `line` is a line of the .ipynb file."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@dataclass(frozen=True)
class Cell:
    """One notebook cell. `position` is 1-based, as `kfg cells` prints it."""

    position: int
    cell_type: str
    source: str
    id: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_code(self) -> bool:
        return self.cell_type == "code"

    @property
    def is_blank(self) -> bool:
        return not self.source.strip()

    @property
    def first_line(self) -> str:
        for line in self.source.splitlines():
            if line.strip():
                return line.strip()
        return ""


@dataclass(frozen=True)
class Notebook:
    path: Path
    cells: tuple[Cell, ...]
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    nbformat_minor: int = 0

    def cell(self, position: int) -> Cell:
        return self.cells[position - 1]

    @property
    def code_cells(self) -> tuple[Cell, ...]:
        return tuple(c for c in self.cells if c.is_code)

    @property
    def language(self) -> str | None:
        """The kernel's language as the notebook records it (kernelspec, then
        language_info), lower case; None when it records none."""
        for section, key in (("kernelspec", "language"), ("language_info", "name")):
            value = self.metadata.get(section)
            if isinstance(value, dict) and isinstance(value.get(key), str) and value[key]:
                return str(value[key]).strip().lower()
        return None


def _source(value: Any, where: str) -> str:
    if isinstance(value, str):
        source = value
    elif isinstance(value, list) and all(isinstance(part, str) for part in value):
        source = "".join(value)
    else:
        raise NotebookError(f"{where}: `source` must be a string or a list of strings")
    try:
        source.encode("utf-8")
    except UnicodeEncodeError as exc:  # JSON can escape a lone surrogate; no editor saves one
        line = source.count("\n", 0, exc.start) + 1
        raise NotebookError(
            f"{where}, line {line}: `source` holds {source[exc.start]!r}, half of a UTF-16"
            " surrogate pair, which is not text Python or an editor can read"
        ) from None
    return source


def parse_notebook(text: str, path: Path) -> Notebook:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookError(
            f"not a notebook: invalid JSON ({exc.msg})", exc.lineno, exc.colno
        ) from None
    except RecursionError:
        raise NotebookError("not a notebook: JSON nested too deeply") from None
    if not isinstance(raw, dict) or ("cells" not in raw and "worksheets" not in raw):
        raise NotebookError("not a notebook: expected a JSON object with `cells`")
    version = raw.get("nbformat")
    if not isinstance(version, int) or isinstance(version, bool):
        raise NotebookError("not a notebook: `nbformat` is missing or not a number")
    if version < 4:
        raise NotebookError(
            f"nbformat {version} notebooks are not supported; convert it with"
            " `jupyter nbconvert --to notebook --inplace`"
        )
    if version > 4:
        raise NotebookError(f"nbformat {version} notebooks are not supported; kfg reads nbformat 4")
    cells_raw = raw.get("cells")
    if not isinstance(cells_raw, list):
        raise NotebookError("not a notebook: `cells` must be a list")
    cells = []
    seen_ids: dict[str, int] = {}
    for index, item in enumerate(cells_raw, start=1):
        where = f"cell {index}"
        if not isinstance(item, dict):
            raise NotebookError(f"{where} is not a JSON object")
        cell_type = item.get("cell_type")
        if cell_type not in CELL_TYPES:
            raise NotebookError(f"{where}: unknown cell_type {cell_type!r}")
        metadata = item.get("metadata", {})
        if not isinstance(metadata, dict):
            raise NotebookError(f"{where}: `metadata` must be an object")
        tags = metadata.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise NotebookError(f"{where}: `metadata.tags` must be a list of strings")
        cell_id = item.get("id")
        if cell_id is not None:
            if not isinstance(cell_id, str) or not CELL_ID.match(cell_id):
                raise NotebookError(
                    f"{where}: `id` must be 1 to 64 letters, digits, `-` or `_` (nbformat 4.5)"
                )
            if cell_id in seen_ids:
                raise NotebookError(
                    f"{where}: id `{cell_id}` is also the id of cell {seen_ids[cell_id]};"
                    " cell ids must be unique (nbformat 4.5)"
                )
            seen_ids[cell_id] = index
        cells.append(
            Cell(
                index,
                cell_type,
                _source(item.get("source", ""), where),
                cell_id,
                tuple(tags),
                metadata,
            )
        )
    metadata = raw.get("metadata", {})
    minor = raw.get("nbformat_minor", 0)
    return Notebook(
        path,
        tuple(cells),
        metadata if isinstance(metadata, dict) else {},
        minor if isinstance(minor, int) else 0,
    )


def read_notebook(path: Path) -> Notebook:
    """Read and check a notebook; raise NotebookError with a clear reason otherwise."""
    try:
        data = read_bounded(path, MAX_NOTEBOOK_BYTES)
    except InputFileError as exc:
        raise NotebookError(f"cannot read notebook: {exc.message}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NotebookError(f"not a notebook: not UTF-8 (byte {exc.start})") from None
    return parse_notebook(text, path)
