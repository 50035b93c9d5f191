"""`kfg status`: a Katib Experiment's trials and best result, from the cluster."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from kfg.cli.common import fail, load_or_exit


def _experiment_of(config: Path) -> tuple[str, str | None]:
    """The name and namespace `kfg render` gives this kale.yaml's Experiment."""
    from kfg.core.load import repository_root
    from kfg.render.build import render

    result = load_or_exit(config)
    pipeline, flow, notebook = result.pipeline, result.flow, result.notebook
    assert pipeline is not None and flow is not None and notebook is not None
    if pipeline.tuning is None:
        fail(f"{result.display} has no spec.tuning, so there is no Experiment to show")
    if not pipeline.tuning.cluster:
        fail(
            f"{result.display} sets spec.tuning.cluster: false, so no Experiment is rendered;"
            " `kfg tune` shows the local study"
        )
    rendered = render(pipeline, flow, notebook, repository_root(config.parent))
    experiment = next(o for o in rendered.objects if o["kind"] == "Experiment")
    return experiment["metadata"]["name"], pipeline.namespace


def _client(kubeconfig: Path | None, context: str | None) -> tuple[Any, str]:
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    from kfg.cluster.status import kubeconfig_tried

    path = str(kubeconfig) if kubeconfig else None
    try:
        api_client = config.new_client_from_config(config_file=path, context=context)
        contexts, active = config.list_kube_config_contexts(config_file=path)
    except (ConfigException, OSError) as exc:
        fail(
            f"cannot load the kubeconfig {kubeconfig_tried(kubeconfig)}: {exc};"
            " pass --kubeconfig FILE or set KUBECONFIG"
        )
    chosen = next((c for c in contexts if c["name"] == context), active) if context else active
    namespace = (chosen or {}).get("context", {}).get("namespace") or "default"
    return client.CustomObjectsApi(api_client), namespace


def command(
    target: str = typer.Argument(..., help="A kale.yaml with spec.tuning, or an Experiment name."),
    namespace: str | None = typer.Option(None, "--namespace", "-n", help="Namespace to read."),
    kubeconfig: Path | None = typer.Option(
        None, "--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file (default: ~/.kube/config)."
    ),
    context: str | None = typer.Option(None, "--context", help="Kubeconfig context."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh until the experiment ends."),
    interval: float = typer.Option(5, "--interval", help="Seconds between refreshes."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (one object per refresh)."),
    endpoint: str | None = typer.Option(
        None,
        "--endpoint",
        envvar="KF_PIPELINES_ENDPOINT",
        help="KFP API server: also show each schedule's last run state and link.",
    ),
    ui: str | None = typer.Option(
        None, "--ui", help="KFP UI base URL for run links (e.g. https://kubeflow.example/pipeline)."
    ),
) -> None:
    """Show how many trials run, succeeded, failed or stopped early, each trial's values and
    metric, and the best result so far; for a kale.yaml with spec.schedules, each schedule's
    last and next fire time and last run first. Exit status 0; 1 when the cluster cannot be
    read."""
    from kfg.cluster.status import StatusError, fetch, table

    if Path(target).is_file() and _schedules(
        Path(target), namespace, kubeconfig, context, as_json, endpoint, ui
    ):
        return
    if Path(target).is_file():
        name, configured = _experiment_of(Path(target))
    else:
        name, configured = target, None
    api, context_namespace = _client(kubeconfig, context)
    where = namespace or configured or context_namespace
    while True:
        try:
            summary = fetch(api, where, name)
        except StatusError as exc:
            fail(str(exc))
        typer.echo(summary.as_json() if as_json else table(summary), nl=as_json)
        if not watch or summary.finished:
            return
        time.sleep(interval)


def _schedules(
    config: Path,
    namespace: str | None,
    kubeconfig: Path | None,
    context: str | None,
    as_json: bool,
    endpoint: str | None,
    ui: str | None,
) -> bool:
    """Print the schedules of a kale.yaml that has some; True when it has no Experiment."""
    import datetime

    from kubernetes import client

    from kfg.cluster import schedules

    result = load_or_exit(config)
    pipeline = result.pipeline
    assert pipeline is not None
    if not pipeline.schedules:
        return False
    api, context_namespace = _client(kubeconfig, context)
    where = namespace or pipeline.namespace or context_namespace
    kfp = None
    if endpoint:
        from kfg.launcher.kfpapi import Kfp

        kfp = Kfp.connect(endpoint)
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        found = schedules.read(client.BatchV1Api(api.api_client), where, pipeline)
        rows = []
        for schedule in pipeline.schedules:
            cronjob, jobs = found[schedule.name]
            row = schedules.row(pipeline, schedule, now, cronjob, jobs)
            if kfp is not None and row.last_run:
                run = schedules.find_run(kfp, pipeline.namespace, row.last_run)
                row = schedules.row(pipeline, schedule, now, cronjob, jobs, run, ui)
            rows.append(row)
    except schedules.ScheduleStatusError as exc:
        fail(str(exc))
    typer.echo(schedules.as_json(rows) if as_json else schedules.table(pipeline.name, where, rows))
    return pipeline.tuning is None
