"""What several commands share: usage errors and atomic file writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import NoReturn

import typer

EXIT_INVALID = 1
EXIT_USAGE = 2


def usage_error(message: str) -> NoReturn:
    typer.echo(f"kfg: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def fail(message: str) -> NoReturn:
    typer.echo(f"kfg: {message}", err=True)
    raise typer.Exit(EXIT_INVALID)


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
