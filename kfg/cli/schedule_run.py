"""`kfg schedule-run`: what each Job of a schedule's CronJob runs (see kfg.render.schedules)."""

from __future__ import annotations

import datetime
import os

import typer

from kfg.cli.common import fail, usage_error


def command(
    pipeline: str = typer.Option(..., "--pipeline", help="Name of the KFP Pipeline."),
    version: str = typer.Option(..., "--version", help="Name of the PipelineVersion to run."),
    schedule: str = typer.Option(..., "--schedule", help="Name of the schedule in kale.yaml."),
    policy: str = typer.Option(
        "Forbid",
        "--concurrency-policy",
        help="Allow, Forbid (start nothing while a run of this schedule is active) or Replace.",
    ),
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
    params: list[str] = typer.Option(
        [], "--param", help="Parameter as name:type=value, type one of int, float, str, bool."
    ),
) -> None:
    """Start the run of one schedule firing, unless its policy forbids it, and wait for it.

    The run is named `<pipeline>-<schedule>-<YYYYMMDD-HHMM>` after the time the CronJob
    scheduled (read from its Job's name). Exit status: 0 when the run succeeded or Forbid
    skipped it, 1 when it failed or the API refused, 2 for a malformed argument.
    """
    from kfg.cli.trial import run, typed_params
    from kfg.launcher.runs import Launcher, LaunchError, RunRequest
    from kfg.launcher.schedule import POLICIES, Firing, admit, fire_time
    from kfg.render.schedules import JOB_NAME_ENV

    if policy not in POLICIES:
        usage_error(f"--concurrency-policy must be one of {', '.join(POLICIES)}, not `{policy}`")
    values = typed_params(params)
    job = os.environ.get(JOB_NAME_ENV) or None
    now = datetime.datetime.now(datetime.timezone.utc)
    firing = Firing(pipeline, schedule, fire_time(job, f"{pipeline}-{schedule}", now), job)
    request = RunRequest(
        endpoint=endpoint,
        pipeline=pipeline,
        version=version,
        run_name=firing.run_name,
        parameters=values,
        experiment=experiment,
        namespace=namespace,
        timeout_seconds=timeout,
        poll_seconds=poll,
        description=firing.description,
    )
    try:
        blocking = admit(Launcher(request), firing, policy)
    except LaunchError as exc:
        fail(str(exc))
    if blocking:
        typer.echo(
            f"kfg: schedule `{schedule}` fired for {firing.run_name}, but run(s)"
            f" {', '.join(blocking)} of it are still active; concurrencyPolicy Forbid:"
            " starting nothing",
            err=True,
        )
        return
    run(request)
