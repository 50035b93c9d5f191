"""`kfg trial`: what each Katib trial's Job runs: one pipeline run, then its metrics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from kfg.cli.common import (
    ENDPOINT,
    Endpoint,
    Experiment,
    Namespace,
    Pipeline,
    Poll,
    TypedParams,
    Version,
    fail,
    usage_error,
)

if TYPE_CHECKING:
    from kfg.launcher.runs import Launcher, RunRequest


def command(
    pipeline: Pipeline,
    version: Version,
    run_name: str = typer.Option(..., "--run-name", help="Name of the run (the trial's name)."),
    endpoint: Endpoint = ENDPOINT,
    namespace: Namespace = None,
    experiment: Experiment = None,
    timeout: float = typer.Option(
        7200,
        "--timeout",
        help="Deadline in seconds over everything: finding the pipeline, the run, its metrics.",
    ),
    poll: Poll = 10,
    metrics: list[str] = typer.Option(
        [],
        "--metric",
        help="Metric the run must report (repeatable; default: report whatever it reports).",
    ),
    params: TypedParams = None,
) -> None:
    """Start a run of a pipeline version, wait for it, print its metrics as name=value.

    Exit status: 0 when the run succeeded and reported every metric, 1 when it failed, was
    deleted, timed out, lacked a metric or the API refused, 2 for a malformed argument,
    143 when SIGTERM stopped it (the run is terminated first).
    """
    from kfg.launcher.runs import RunRequest

    values = typed_params(params)
    request = RunRequest(
        endpoint=endpoint,
        pipeline=pipeline,
        version=version,
        run_name=run_name,
        parameters=values,
        metrics=tuple(metrics),
        experiment=experiment,
        namespace=namespace,
        timeout_seconds=timeout,
        poll_seconds=poll,
    )
    run(request)


def typed_params(arguments: list[str] | None) -> dict[str, Any]:
    """`--param name:type=value` arguments, as the rendered Jobs write them; exit 2 if not."""
    from kfg.launcher.params import ParameterError, parse_typed

    values = {}
    for argument in arguments or []:
        try:
            name, value = parse_typed(argument)
        except ParameterError as exc:
            usage_error(f"--param {exc}")
        values[name] = value
    return values


EXIT_TERMINATED = 128 + 15  # what a shell reports for a process ended by SIGTERM


def run(request: RunRequest) -> None:
    """Shared by `kfg trial` and `kfg submit`: progress on stderr, metrics on stdout.

    SIGTERM terminates the KFP run before the launcher exits, so no pipeline runs on
    unwatched. Katib's metrics collector sends it to this process when it early-stops a
    trial (kubeflow/katib v0.19.0 cmd/metricscollector/v1beta1/file-metricscollector/
    main.go terminates the child of the trial's wrapping shell). Deleting a pod signals
    each container's first process: kfg itself in a run-on-sync Job, but in a trial the
    `sh -c` Katib wraps the command in (pkg/webhook/v1beta1/pod/utils.go), which dies
    without passing it on, so the run of a deleted trial is left to finish.
    """
    from kfg.launcher.runs import (
        DeadlineExceeded,
        Launcher,
        LaunchError,
        Terminated,
        hard_deadline,
        stop_on_sigterm,
    )

    launcher: Launcher | None = None
    pidfile = _write_pidfile()
    try:
        with stop_on_sigterm(), hard_deadline(request.timeout_seconds):
            launcher = Launcher(request)
            run_id = launcher.start()
            typer.echo(
                f"kfg: started run {run_id} ({request.run_name}) of {request.version}", err=True
            )
            state = launcher.wait(run_id)
            typer.echo(f"kfg: run {run_id} {state}", err=True)
            metrics = launcher.metrics(run_id)
    except DeadlineExceeded as exc:
        if launcher is not None and launcher.run_id is not None and not launcher.ended:
            try:
                launcher.terminate(launcher.run_id)
            except LaunchError as stopping:
                typer.echo(f"kfg: {stopping}", err=True)
        fail(str(exc))
    except LaunchError as exc:
        fail(str(exc))
    except Terminated as exc:
        _stop(launcher, str(exc))
    finally:
        if pidfile is not None:
            pidfile.unlink(missing_ok=True)
    for name, value in metrics.items():
        typer.echo(f"{name}={value!r}")


def _write_pidfile() -> Path | None:
    """Where the pod's preStop hook finds this process to send it SIGTERM (see
    kfg.render.launcher.PIDFILE_ENV); nothing outside a rendered launcher pod."""
    import os

    from kfg.render.launcher import PIDFILE_ENV

    name = os.environ.get(PIDFILE_ENV)
    if not name:
        return None
    path = Path(name)
    try:
        path.write_text(f"{os.getpid()}\n", encoding="utf-8")
    except OSError:
        return None  # no preStop stop then; the run's own timeout still ends it
    return path


def _stop(launcher: Launcher | None, signal_name: str) -> NoReturn:
    from kfg.launcher.runs import LaunchError

    run_id = launcher.run_id if launcher is not None else None
    if launcher is None or run_id is None:
        typer.echo(f"kfg: {signal_name}: stopped before a run was started", err=True)
        raise typer.Exit(EXIT_TERMINATED)
    if launcher.ended:
        typer.echo(f"kfg: {signal_name}: stopped after run {run_id} ended", err=True)
        raise typer.Exit(EXIT_TERMINATED)
    try:
        launcher.terminate(run_id)
    except LaunchError as exc:
        typer.echo(f"kfg: {signal_name}: {exc}", err=True)
        raise typer.Exit(EXIT_TERMINATED) from None
    typer.echo(f"kfg: {signal_name}: terminated run {run_id}", err=True)
    raise typer.Exit(EXIT_TERMINATED)
