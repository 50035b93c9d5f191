"""`kfg validate`: check kale.yaml files before a pull request merges."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from kfg.cli.common import EXIT_INVALID, config_files_or_exit, usage_error
from kfg.cli.report import plural


def command(
    paths: list[Path] | None = typer.Argument(
        None, help="kale.yaml files, or directories to search for them (default: .)."
    ),
    output_format: str = typer.Option(
        "text", "--format", "-f", help="Output format: text, json or github (annotations)."
    ),
    strict: bool = typer.Option(False, "--strict", help="Treat warnings as errors."),
    root: Path | None = typer.Option(
        None,
        "--root",
        help="Repository root the notebooks must stay inside (default: git top level).",
    ),
) -> None:
    """Check kale.yaml files against the schema, their notebooks and each other.

    Exit status: 0 valid, 1 invalid, 2 usage error.
    """
    from kfg.cli import report
    from kfg.core.load import display_path
    from kfg.core.project import load_project
    from kfg.diagnostics import Severity, has_errors

    if output_format not in report.FORMATS:
        usage_error(f"unknown --format `{output_format}`; use one of {', '.join(report.FORMATS)}")
    _, files = config_files_or_exit(paths, root)

    project = load_project(files, root)
    results, diagnostics = project.results, project.diagnostics
    valid = not has_errors(diagnostics, strict=strict)
    if strict:
        diagnostics = [dataclasses.replace(d, severity=Severity.ERROR) for d in diagnostics]

    if output_format == "json":
        typer.echo(report.as_json(diagnostics, [r.display for r in results], valid))
    elif output_format == "github":
        if diagnostics:
            typer.echo(report.github(diagnostics))
        typer.echo(report.summary(diagnostics, len(results)), err=True)
    else:
        if diagnostics:
            typer.echo(report.text(diagnostics))
        refused = {d.file for d in diagnostics if d.severity is Severity.ERROR}
        for result in results:
            if result.display not in refused and result.pipeline is not None:
                p = result.pipeline
                cells = sum(len(s.cells) for s in p.steps)
                typer.echo(
                    f"{result.display}: valid: pipeline `{p.name}` from {display_path(p.notebook)},"
                    f" {plural(len(p.steps), 'step')}, {plural(cells, 'code cell')},"
                    f" {plural(len(p.parameters), 'parameter')}, {plural(len(p.metrics), 'metric')}"
                    f"{', tuning' if p.tuning else ''}{report.defaulted_requests(p.steps)}"
                )
        typer.echo(report.summary(diagnostics, len(results)))
    if not valid:
        raise typer.Exit(EXIT_INVALID)
