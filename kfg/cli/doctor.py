"""`kfg doctor`: whether a cluster has what kfg's rendered package needs, and how to fix it."""

from __future__ import annotations

from pathlib import Path

import typer

from kfg.cli.common import config_files_or_exit, fail, load_or_exit


def command(
    paths: list[Path] | None = typer.Argument(
        None, help="kale.yaml files or directories: check what their packages need."
    ),
    namespace: str | None = typer.Option(
        None, "--namespace", "-n", help="Namespace to check (default: kale.yaml's, else context's)."
    ),
    kubeflow: str = typer.Option(
        "kubeflow", "--kubeflow-namespace", help="Namespace of KFP and Katib."
    ),
    kubeconfig: Path | None = typer.Option(
        None, "--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file (default: ~/.kube/config)."
    ),
    context: str | None = typer.Option(None, "--context", help="Kubeconfig context."),
    root: Path | None = typer.Option(None, "--root", help="Repository root (default: git's)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check the cluster: the APIs and versions the package uses, KFP's pipeline store, Katib's
    algorithm services, snapshot classes, the namespace, your access, Istio. Prints each as
    ok / missing / warn / unknown with how to fix it. Without a kubeconfig, says what it would
    check. Exit status: 0 nothing required is missing, 1 something is (or a kale.yaml is
    invalid, or the cluster cannot be reached), 2 usage error."""
    from kfg.cluster import doctor

    needs = doctor.Needs()
    if paths:
        _, files = config_files_or_exit(paths, root)
        loaded = [load_or_exit(f, root=root).pipeline for f in files]
        needs = doctor.needs_of([p for p in loaded if p is not None], namespace)
    try:
        connected = doctor.connect(kubeconfig, context)
    except doctor.DoctorError as exc:
        fail(str(exc))
    if connected is None:
        typer.echo(doctor.plan_json(needs) if as_json else doctor.plan_text(needs), nl=as_json)
        return
    api, context_namespace = connected
    namespaces = needs.namespaces or (namespace or context_namespace,)
    try:
        report = doctor.diagnose(api, needs, namespaces, kubeflow, api.host)
    except doctor.DoctorError as exc:
        fail(str(exc))
    typer.echo(report.as_json() if as_json else doctor.table(report), nl=as_json)
    if report.failed:
        raise typer.Exit(1)
