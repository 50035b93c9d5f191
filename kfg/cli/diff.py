"""`kfg diff`: the pull-request summary of what rendering changes, as Markdown."""

from __future__ import annotations

from pathlib import Path

import typer

from kfg.cli.common import fail


def command(
    base: str = typer.Option(..., "--base", help="Git revision to compare with (the PR base)."),
    root: Path = typer.Option(Path("."), "--root", help="Repository to compare (default: .)."),
) -> None:
    """Render the base revision and the working tree, and print what changes: each changed
    pipeline's graph (Mermaid) and its objects added, changed and removed."""
    from kfg.core.load import repository_root
    from kfg.gitops.prdiff import DiffError, render_revision, render_tree, summary

    repo = repository_root(root)
    try:
        before = render_revision(repo, base)
    except DiffError as exc:
        fail(str(exc))
    typer.echo(summary(before, render_tree(repo)), nl=False)
