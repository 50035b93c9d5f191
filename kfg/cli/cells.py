"""`kfg cells`: list a notebook's cells and the step each belongs to."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from kfg.cli.common import EXIT_INVALID, no_file_reason, usage_error


def command(
    path: Path = typer.Argument(..., help="A notebook, or a kale.yaml (its notebook is listed)."),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="kale.yaml mapping the cells (default: the one beside the notebook).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the cells as JSON."),
) -> None:
    """List every cell: position, id, type, tags, the step it belongs to, and its first line."""
    from kfg.cli.report import text
    from kfg.config import listing
    from kfg.core.load import config_for_notebook, display_path, is_config_file, load_pipeline
    from kfg.diagnostics import Severity
    from kfg.notebook.reader import NotebookError, read_notebook

    if reason := no_file_reason(path):
        usage_error(f"{path}: {reason}")
    if config is not None and (reason := no_file_reason(config)):
        usage_error(f"--config {config}: {reason}")
    if is_config_file(path) or path.suffix in (".yaml", ".yml"):
        config, notebook_path = path, None
    else:
        notebook_path = path
        config = config or config_for_notebook(path)

    notebook, cellmap = None, None
    if config is not None:
        result = load_pipeline(config)
        notebook, cellmap = result.notebook, result.cellmap
        if not result.ok:
            errors = [d for d in result.diagnostics if d.severity is Severity.ERROR]
            typer.echo(text(errors), err=True)
            typer.echo(
                f"note: {display_path(config)} has {len(errors)} error(s); steps are shown as far"
                " as they could be resolved",
                err=True,
            )
        if (
            notebook_path is not None
            and notebook is not None
            and notebook.path != notebook_path.resolve()
        ):
            usage_error(
                f"{display_path(config)} describes {display_path(notebook.path)}, not {path}"
            )
    if notebook is None:
        if notebook_path is None:
            raise typer.Exit(EXIT_INVALID)
        try:
            notebook = read_notebook(notebook_path)
        except NotebookError as exc:
            typer.echo(
                f"{display_path(notebook_path)}:{exc.line}:{exc.column}: error: {exc.message}",
                err=True,
            )
            raise typer.Exit(EXIT_INVALID) from None

    table = listing.rows(notebook, cellmap)
    if as_json:
        typer.echo(listing.as_json(table))
    else:
        width = shutil.get_terminal_size((120, 24)).columns
        typer.echo(listing.as_table(table, width, with_step=cellmap is not None))
