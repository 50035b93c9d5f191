"""`kfg tune`: run `spec.tuning` locally with Optuna, reusing cached steps across trials."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from kfg.cli.common import cache_or_exit, fail, load_or_exit, usage_error

if TYPE_CHECKING:
    from kfg.engine.tuning import TrialResult, TuneSummary


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


class _Progress:
    """A live table of finished trials and the best so far on a terminal; lines elsewhere."""

    def __init__(self) -> None:
        self.live: Any = None

    def __enter__(self) -> _Progress:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live("waiting for the first trial...", console=Console(stderr=True))
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def update(self, result: TrialResult, summary: TuneSummary) -> None:
        if self.live is None:
            best = summary.best
            params = ", ".join(f"{k} {v}" for k, v in result.params.items())
            typer.echo(
                f"trial {result.number:>3} {result.state:<8} {summary.metric}"
                f" {_value(result.value)}  (best {_value(best.value if best else None)})"
                f"  {params}  [{len(result.executed)} step(s) ran, {result.seconds:.1f} s]",
                err=True,
            )
            if result.error:
                typer.echo(f"  {result.error}", err=True)
            return
        from rich.table import Table

        table = Table(title=f"{summary.study}: {summary.direction} {summary.metric}", box=None)
        names = sorted({p for t in summary.trials for p in t.params})
        for column in ("trial", "state", summary.metric, *names, "steps run", "time"):
            table.add_column(column)
        best = summary.best
        for trial in sorted(summary.trials, key=lambda t: t.number)[-20:]:
            mark = " *" if best is not None and trial.number == best.number else ""
            table.add_row(
                f"{trial.number}{mark}",
                trial.state,
                _value(trial.value),
                *(str(trial.params.get(n, "")) for n in names),
                str(len(trial.executed)),
                f"{trial.seconds:.1f} s",
            )
        self.live.update(table)


def _table(summary: TuneSummary) -> str:
    lines = [f"study {summary.study}: {summary.direction} {summary.metric}"]
    best = summary.best
    if best is not None:
        assigned = ", ".join(f"{k}={v}" for k, v in best.params.items())
        lines.append(
            f"best: trial {best.number}, {summary.metric} {_value(best.value)}, {assigned}"
        )
    names = sorted({p for t in summary.trials for p in t.params})
    header = ["trial", "state", summary.metric, *names, "steps run"]
    rows = [
        [
            str(t.number),
            t.state,
            _value(t.value),
            *(str(t.params.get(n, "")) for n in names),
            str(len(t.executed)),
        ]
        for t in summary.trials
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines.append("")
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    if summary.plots:
        lines += ["", f"plots: {summary.plots['png']}", f"       {summary.plots['html']}"]
    return "\n".join(lines) + "\n"


def command(
    config: Path = typer.Argument(..., help="The kale.yaml whose spec.tuning to run."),
    trials: int | None = typer.Option(None, "--trials", help="Trials in all (default: maxTrials)."),
    parallel: int | None = typer.Option(
        None, "--parallel", help="Trials at once (default: parallelTrials)."
    ),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", envvar="KFG_CACHE_DIR", help="Cache directory (default: .kfg)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    plots: bool = typer.Option(
        False,
        "--plots",
        help="Also draw the objective over trials and against each parameter (PNG and HTML"
        " under the cache directory's tune/); with a finished study, draws without running.",
    ),
) -> None:
    """Tune the pipeline's parameters here; an interrupted study resumes where it stopped.

    Exit status: 0 when at least one trial completed, 1 otherwise or for invalid input,
    2 for a usage error, 130 when interrupted.
    """
    from kfg.engine.tuning import TuneError, local_notes, tune

    if trials is not None and trials < 1:
        usage_error("--trials must be at least 1")
    if parallel is not None and parallel < 1:
        usage_error("--parallel must be at least 1")
    result = load_or_exit(config)
    pipeline, flow, notebook = result.pipeline, result.flow, result.notebook
    assert pipeline is not None and flow is not None and notebook is not None
    if pipeline.tuning is None:
        fail(f"{result.display} has no spec.tuning")
    cache = cache_or_exit(cache_dir, config)
    for note in local_notes(pipeline.tuning):
        typer.echo(f"kfg: warning: {note}", err=True)
    try:
        with _Progress() as progress:
            summary = tune(
                pipeline,
                flow,
                notebook,
                cache,
                trials=trials,
                parallel=parallel,
                listener=progress.update,
                plots=plots,
            )
    except TuneError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        typer.echo("kfg: interrupted; finished trials are stored and will be reused", err=True)
        raise typer.Exit(130) from None
    if summary.finished is not None:
        typer.echo(f"kfg: {summary.finished}", err=True)
    if as_json:
        sys.stdout.write(json.dumps(summary.as_dict(), indent=2) + "\n")
    else:
        typer.echo(_table(summary), nl=False)
    if summary.best is None:
        reasons = sorted({t.error for t in summary.trials if t.error})
        fail("no trial completed" + "".join(f"\n  {reason}" for reason in reasons[:5]))
