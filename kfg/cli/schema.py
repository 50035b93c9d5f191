"""`kfg schema`: the kale.yaml JSON Schema, for editors and schema catalogs."""

from __future__ import annotations

from pathlib import Path

import typer


def command(
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the schema to this file."
    ),
) -> None:
    """Print the kale.yaml JSON Schema, or write it to a file."""
    from kfg.cli.common import write_atomic
    from kfg.config.schema import schema_path

    text = schema_path().read_text(encoding="utf-8")
    if output is None:
        typer.echo(text, nl=False)
        return
    write_atomic(output, text)
    typer.echo(f"wrote {output}", err=True)
