"""`kfg run`: execute the pipeline locally, steps in parallel, with a content-addressed cache."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from kfg.cli.common import EXIT_INVALID, cache_or_exit, fail, load_or_exit, usage_error

if TYPE_CHECKING:
    from kfg.engine.runner import RunSummary, StepState

SYMBOLS = {
    "pending": "·",
    "running": "…",
    "cached": "=",
    "done": "✓",
    "failed": "✗",
    "skipped": "-",
}


def _line(state: StepState) -> str:
    timing = f"{state.seconds:6.2f} s" if state.status in ("done", "failed") else " " * 8
    extra = f"  {state.error}" if state.error else ""
    return f"{SYMBOLS[state.status]} {state.name:<24} {state.status:<8} {timing}{extra}"


LOG_TAIL = 25


class _Progress:
    """A live table of the steps on a terminal; one line per change anywhere else (CI logs)."""

    def __init__(self, names: list[str]) -> None:
        self.live_mode = sys.stderr.isatty()  # rich is imported only for a terminal
        self.states: dict[str, StepState] = {}
        self.names = names
        self.live: Any = None

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(box=None, show_header=True, header_style="bold")
        for column in ("", "step", "state", "time", ""):
            table.add_column(column)
        for name in self.names:
            state = self.states.get(name)
            status = state.status if state else "pending"
            timing = f"{state.seconds:.2f} s" if state and state.seconds else ""
            table.add_row(SYMBOLS[status], name, status, timing, state.error if state else "")
        return table

    def update(self, state: StepState) -> None:
        self.states[state.name] = state
        if self.live is not None:
            self.live.update(self._table())
        else:
            typer.echo(_line(state), err=True)

    def __enter__(self) -> _Progress:
        if self.live_mode:
            from rich.console import Console
            from rich.live import Live

            console = Console(stderr=True)
            self.live = Live(self._table(), console=console, refresh_per_second=8)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)


def _report(summary: RunSummary) -> str:
    lines = [
        "",
        f"{summary.pipeline}: {len(summary.executed)} step(s) ran,"
        f" {sum(s.status == 'cached' for s in summary.steps)} from the cache,"
        f" {summary.seconds:.2f} s",
    ]
    if summary.metrics:
        width = max(len(n) for n in summary.metrics)
        lines += ["", "metrics:"] + [f"  {n:<{width}}  {v:.6g}" for n, v in summary.metrics.items()]
    lines += ["", "steps:"]
    for state in summary.steps:
        where = state.entry.report if state.entry else state.log
        lines.append(f"  {state.name:<24} {state.status:<8} {state.seconds:6.2f} s  {where or ''}")
    return "\n".join(lines) + "\n"


def command(
    config: Path = typer.Argument(..., help="The kale.yaml of the pipeline to run."),
    params: list[str] = typer.Option([], "--param", "-p", help="Parameter as name=value."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", help="Steps at once (default: CPUs)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Run every step, ignoring the cache."),
    rerun_from: str | None = typer.Option(
        None, "--from", help="Run this step and everything after it again."
    ),
    only: str | None = typer.Option(
        None, "--only", help="Run only this step (earlier steps must be cached)."
    ),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", envvar="KFG_CACHE_DIR", help="Cache directory (default: .kfg)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    schedule: str | None = typer.Option(
        None,
        "--schedule",
        help="Run once with this schedule's parameters (spec.schedules); --param overrides them.",
    ),
) -> None:
    """Run the notebook's pipeline here; steps whose inputs did not change come from the cache.

    Exit status: 0 when every step succeeded, 1 when a step failed or the input is
    invalid, 2 for a usage error, 130 when interrupted.
    """
    from kfg.diagnostics import did_you_mean
    from kfg.engine.runner import Engine, EngineError
    from kfg.launcher.params import ParameterError, parse_override

    result = load_or_exit(config)
    pipeline, flow, notebook = result.pipeline, result.flow, result.notebook
    assert pipeline is not None and flow is not None and notebook is not None
    names = [s.name for s in pipeline.steps]
    for option, value in (("--from", rerun_from), ("--only", only)):
        if value is not None and value not in names:
            usage_error(
                f"{option}: unknown step `{value}`{did_you_mean(value, names)}"
                f" (steps: {', '.join(names)})"
            )
    if jobs is not None and jobs < 1:
        usage_error("--jobs must be at least 1")
    types = {p.name: p.type_name for p in pipeline.parameters}
    values: dict[str, Any] = {}
    if schedule is not None:
        scheduled = {s.name: s for s in pipeline.schedules}
        if schedule not in scheduled:
            usage_error(
                f"--schedule: unknown schedule `{schedule}`{did_you_mean(schedule, scheduled)}"
                f" (schedules: {', '.join(scheduled) or 'none'})"
            )
        values.update(scheduled[schedule].parameters)
    for argument in params:
        try:
            name, value = parse_override(argument, types)
        except ParameterError as exc:
            usage_error(f"--param {exc}")
        values[name] = value
    cache = cache_or_exit(cache_dir, config)

    progress = _Progress(names)

    engine = Engine(
        pipeline,
        flow,
        notebook,
        cache,
        parameters=values,
        jobs=jobs,
        use_cache=not no_cache,
        rerun_from=rerun_from,
        only=only,
        listener=progress.update,
    )
    try:
        with progress:
            summary = engine.run()
    except EngineError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        typer.echo("kfg: interrupted; finished steps are cached", err=True)
        raise typer.Exit(130) from None
    if as_json:
        sys.stdout.write(json.dumps(summary.as_dict(), indent=2) + "\n")
    else:
        typer.echo(_report(summary), nl=False)
    if not summary.ok:
        for state in summary.steps:
            if state.status == "failed":
                typer.echo(f"kfg: step `{state.name}` failed: {state.error}", err=True)
                if state.log is not None:
                    tail = state.log.read_text(encoding="utf-8", errors="replace").splitlines()
                    typer.echo("\n".join(f"  | {line}" for line in tail[-LOG_TAIL:]), err=True)
                    typer.echo(f"  the whole log: {state.log}", err=True)
        raise typer.Exit(EXIT_INVALID)
