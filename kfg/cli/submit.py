"""`kfg submit`: one run of a kale.yaml's rendered pipeline version on a KFP server."""

from __future__ import annotations

import datetime
from pathlib import Path

import typer

from kfg.cli.common import fail, load_or_exit, usage_error


def command(
    config: Path = typer.Argument(..., help="The kale.yaml whose pipeline to run."),
    params: list[str] = typer.Option(
        [], "--param", "-p", help="Parameter value as name=value (repeatable)."
    ),
    endpoint: str | None = typer.Option(
        None,
        "--endpoint",
        envvar="KF_PIPELINES_ENDPOINT",
        help="URL of the KFP API server (default: spec.launcher.endpoint).",
    ),
    run_name: str | None = typer.Option(
        None, "--run-name", help="Name of the run (default: the version and the time)."
    ),
    namespace: str | None = typer.Option(
        None, "--namespace", help="Kubeflow profile namespace (default: metadata.namespace)."
    ),
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="Wait for the run and print its metrics."
    ),
    timeout: float | None = typer.Option(None, "--timeout", help="Seconds to wait for the run."),
    poll: float = typer.Option(10, "--poll", help="Seconds between status checks."),
) -> None:
    """Run the pipeline version `kfg render` writes for this kale.yaml (it must be synced).

    Exit status: 0 when the run succeeded (or started, with --no-wait), 1 otherwise,
    2 for a malformed argument.
    """
    from kfg.cli.trial import run
    from kfg.core.load import repository_root
    from kfg.launcher.params import ParameterError, parse_override
    from kfg.launcher.runs import Launcher, LaunchError, RunRequest
    from kfg.render.build import render

    result = load_or_exit(config)
    pipeline, flow, notebook = result.pipeline, result.flow, result.notebook
    assert pipeline is not None and flow is not None and notebook is not None
    types = {p.name: p.type_name for p in pipeline.parameters}
    values = {p.name: p.default for p in pipeline.parameters}
    for argument in params:
        try:
            name, value = parse_override(argument, types)
        except ParameterError as exc:
            usage_error(f"--param {exc}")
        values[name] = value
    version = render(pipeline, flow, notebook, repository_root(config.parent)).version
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    request = RunRequest(
        endpoint=endpoint or pipeline.launcher.endpoint,
        pipeline=pipeline.name,
        version=version,
        run_name=run_name or f"{version}-{stamp}",
        parameters=values,
        # The metrics are printed when they can be read; the run's outcome is the result.
        metrics=(),
        namespace=namespace or pipeline.namespace,
        timeout_seconds=timeout if timeout is not None else pipeline.launcher.timeout_seconds,
        poll_seconds=poll,
    )
    if wait:
        run(request)
        return
    try:
        run_id = Launcher(request).start()
    except LaunchError as exc:
        fail(str(exc))
    typer.echo(run_id)
