"""`kfg schedule-run`: what each Job of a schedule's CronJob runs (see kfg.render.schedules)."""

from __future__ import annotations

import datetime
import os

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


def command(
    pipeline: Pipeline,
    version: Version,
    schedule: str = typer.Option(..., "--schedule", help="Name of the schedule in kale.yaml."),
    policy: str = typer.Option(
        "Forbid",
        "--concurrency-policy",
        help="Allow, Forbid (start nothing while a run of this schedule is active) or Replace.",
    ),
    endpoint: Endpoint = ENDPOINT,
    namespace: Namespace = None,
    experiment: Experiment = None,
    timeout: float = typer.Option(7200, "--timeout", help="Seconds to wait for the run."),
    poll: Poll = 10,
    params: TypedParams = None,
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
