"""`kfg fn`: kfg as a KRM function (kpt, kustomize), reading and writing ResourceLists."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

app = typer.Typer(
    name="fn",
    help="kfg as a KRM function: a ResourceList on stdin, a ResourceList on stdout.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


@app.command("render")
def render() -> None:
    """Render the NotebookPipelines of a ResourceList (functionConfig and items).

    Exit status: 0 rendered, 1 when any NotebookPipeline is invalid (see `results`).
    """
    from kfg.gitops.krm import MAX_INPUT_BYTES, process

    # One byte past the limit is enough to refuse; the rest of a huge stdin is never read.
    data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    output, code = process(data.decode("utf-8", errors="replace"), Path.cwd())
    sys.stdout.write(output)
    sys.stdout.flush()
    if code:
        raise typer.Exit(code)
