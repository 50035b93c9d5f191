"""`kfg trial`: what each Katib trial's Job runs: one pipeline run, then its metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from kfg.cli.common import fail, usage_error

if TYPE_CHECKING:
    from kfg.launcher.runs import RunRequest


def command(
    pipeline: str = typer.Option(..., "--pipeline", help="Name of the KFP Pipeline."),
    version: str = typer.Option(..., "--version", help="Name of the PipelineVersion to run."),
    run_name: str = typer.Option(..., "--run-name", help="Name of the run (the trial's name)."),
    endpoint: str = typer.Option(
        "http://ml-pipeline.kubeflow.svc.cluster.local:8888",
        "--endpoint",
        envvar="KF_PIPELINES_ENDPOINT",
        help="URL of the KFP API server.",
    ),
    namespace: str | None = typer.Option(None, "--namespace", help="Kubeflow profile namespace."),
    experiment: str | None = typer.Option(
        None, "--experiment", help="KFP experiment for the run (default: the pipeline's name)."
    ),
    timeout: float = typer.Option(7200, "--timeout", help="Seconds to wait for the run."),
    poll: float = typer.Option(10, "--poll", help="Seconds between status checks."),
    metrics: list[str] = typer.Option(
        [], "--metric", help="Metric to report (repeatable; default: all the run reports)."
    ),
    params: list[str] = typer.Option(
        [], "--param", help="Parameter as name:type=value, type one of int, float, str, bool."
    ),
) -> None:
    """Start a run of a pipeline version, wait for it, print its metrics as name=value.

    Exit status: 0 when the run succeeded and reported every metric, 1 when it failed, was
    deleted, timed out or the API refused, 2 for a malformed argument.
    """
    from kfg.launcher.params import ParameterError, parse_typed
    from kfg.launcher.runs import RunRequest

    values = {}
    for argument in params:
        try:
            name, value = parse_typed(argument)
        except ParameterError as exc:
            usage_error(f"--param {exc}")
        values[name] = value
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


def run(request: RunRequest) -> None:
    """Shared by `kfg trial` and `kfg submit`: progress on stderr, metrics on stdout."""
    from kfg.launcher.runs import Launcher, LaunchError

    try:
        launcher = Launcher(request)
        run_id = launcher.start()
        typer.echo(f"kfg: started run {run_id} ({request.run_name}) of {request.version}", err=True)
        state = launcher.wait(run_id)
        typer.echo(f"kfg: run {run_id} {state}", err=True)
        for name, value in launcher.metrics(run_id).items():
            typer.echo(f"{name}={value!r}")
    except LaunchError as exc:
        fail(str(exc))
