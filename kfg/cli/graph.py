"""`kfg graph`: the step DAG kfg infers from the notebook, with the variables on each edge."""

from __future__ import annotations

from pathlib import Path

import typer

from kfg.cli.common import load_or_exit, usage_error


def command(
    config: Path = typer.Argument(..., help="The kale.yaml whose pipeline to draw."),
    output_format: str = typer.Option(
        "text", "--format", "-f", help="Output format: text, mermaid or dot."
    ),
) -> None:
    """Print the pipeline's steps, the variables that flow between them and their parameters."""
    from kfg.analysis.drawing import FORMATS, draw

    if output_format not in FORMATS:
        usage_error(f"unknown --format `{output_format}`; use one of {', '.join(FORMATS)}")
    result = load_or_exit(config)
    assert result.pipeline is not None and result.flow is not None
    typer.echo(draw(result.pipeline.name, result.flow, output_format), nl=False)
