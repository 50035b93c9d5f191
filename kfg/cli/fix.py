"""`kfg fix`: rewrite kale.yaml to follow its notebook (diff by default, `--write` to apply)."""

from __future__ import annotations

from pathlib import Path

import typer

from kfg.cli.common import EXIT_INVALID, config_files_or_exit, fail, write_atomic


def command(
    paths: list[Path] | None = typer.Argument(
        None, help="kale.yaml files, or directories to search for them (default: .)."
    ),
    ids: bool = typer.Option(False, "--ids", help="Refer to cells by id instead of position."),
    write: bool = typer.Option(False, "--write", "-w", help="Write the changes (default: show)."),
    check: bool = typer.Option(
        False, "--check", help="Exit 1 when a notebook changed under its kale.yaml (hooks, CI)."
    ),
    root: Path | None = typer.Option(
        None,
        "--root",
        help="Repository root the notebooks must stay inside (default: git top level).",
    ),
) -> None:
    """Re-anchor moved cells, record cell fingerprints, propose steps for new cells.

    Prints a unified diff and changes nothing unless --write is given.
    """
    from kfg.scaffold.fix import FixError, fix_file

    _, files = config_files_or_exit(paths, root)
    drifted: list[str] = []
    stuck: list[str] = []
    for path in files:
        try:
            result = fix_file(path, root=root, ids=ids)
        except FixError as exc:
            if check:  # `kfg validate` reports why it does not load; drift is this check's job
                typer.echo(f"kfg: {exc}", err=True)
                continue
            fail(str(exc))
        if result.drift:
            drifted.append(result.display)
            typer.echo(f"{result.display}: {result.drift}", err=True)
        for note in result.notes:
            typer.echo(f"{result.display}: {note}", err=True)
        for problem in result.problems:
            typer.echo(f"{result.display}: cannot follow {problem}", err=True)
        if result.problems:
            stuck.append(result.display)
            continue
        if not result.changed:
            continue
        if write:
            write_atomic(path, result.fixed)
            typer.echo(f"{result.display}: fixed")
        elif not check:
            typer.echo(result.diff(), nl=False)
    if stuck:
        fail(f"{', '.join(stuck)} left unchanged: settle the references above by hand")
    if check and drifted:
        flags = " ".join(str(p) for p in drifted)
        typer.echo(
            f"kfg: the notebook changed under {flags}; run `kfg fix --write {flags}`", err=True
        )
        raise typer.Exit(EXIT_INVALID)
