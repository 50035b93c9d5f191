"""`kfg restore`: a notebook that reproduces one step of a finished run, with its inputs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from kfg.cli.common import fail, load_or_exit, usage_error, write_atomic

if TYPE_CHECKING:
    from kfg.analysis.dataflow import Flow
    from kfg.cluster.restore import Inputs
    from kfg.config.model import Pipeline
    from kfg.notebook.reader import Notebook


def command(
    config: Path = typer.Argument(..., help="The kale.yaml of the pipeline."),
    step: str = typer.Option(..., "--step", help="The step to restore."),
    inputs: Path | None = typer.Option(
        None, "--inputs", help="Directory holding the step's inputs, one saved value per variable."
    ),
    run_id: str | None = typer.Option(None, "--run", help="KFP run whose artifacts to use."),
    local: bool = typer.Option(
        False, "--local", help="Use the values `kfg run` cached (default parameters)."
    ),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", envvar="KFG_CACHE_DIR", help="Cache of --local (default: .kfg)."
    ),
    endpoint: str | None = typer.Option(
        None, "--endpoint", envvar="KF_PIPELINES_ENDPOINT", help="KFP API (with --run)."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Notebook to write (default: STEP.restored.ipynb)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing notebook."),
    notebook_server: bool = typer.Option(
        False, "--notebook-server", help="Also write a Kubeflow Notebook and a restored claim."
    ),
    snapshot: str | None = typer.Option(
        None, "--snapshot", help="VolumeSnapshot the notebook server's claim is restored from."
    ),
    volume: str | None = typer.Option(
        None, "--volume", help="kale.yaml volume the snapshot is of (sets mount path and size)."
    ),
    image: str | None = typer.Option(
        None, "--image", help="Notebook server image (needs kfg installed; see docs/cluster.md)."
    ),
    storage_class: str | None = typer.Option(
        None,
        "--storage-class",
        help="StorageClass of the restored claim (default: the volume's snapshot.storageClass,"
        " else the cluster default).",
    ),
) -> None:
    """Write a notebook: the step's parameters and exact inputs, the prelude, the step's cells.

    Exit status: 0 written, 1 inputs not found or invalid kale.yaml, 2 usage error.
    """
    from kfg.cluster import restore
    from kfg.render.yamlout import dump_all

    if [inputs is not None, run_id is not None, local].count(True) != 1:
        usage_error("give exactly one of --local, --inputs DIR and --run RUN_ID")
    if notebook_server and not snapshot:
        usage_error("--notebook-server needs --snapshot NAME (a step's or a volume's snapshot)")
    result = load_or_exit(config)
    pipeline, flow, notebook = result.pipeline, result.flow, result.notebook
    assert pipeline is not None and flow is not None and notebook is not None
    names = [s.name for s in pipeline.steps]
    if step not in names:
        usage_error(f"unknown step `{step}`; steps: {', '.join(names)}")
    target = output or Path(f"{step}.restored.ipynb")
    if target.exists() and not force:
        fail(f"{target} exists; use --force to overwrite it")
    try:
        if local:
            found = _from_cache(pipeline, flow, notebook, step, cache_dir, config)
        elif inputs is not None:
            if not inputs.is_dir():
                usage_error(f"--inputs {inputs}: not a directory")
            found = restore.from_directory(pipeline, flow, step, inputs)
        else:
            assert run_id is not None
            found = _from_run(pipeline, flow, step, run_id, endpoint or pipeline.launcher.endpoint)
    except restore.RestoreError as exc:
        fail(str(exc))
    chosen = next((v for v in pipeline.volumes if v.name == volume), None)
    if notebook_server and volume is not None and chosen is None:
        usage_error(f"unknown volume `{volume}`")
    # On a notebook server the step's own packages are installed first (as its component
    # does in the cluster); locally the user's environment is what `kfg run` used.
    packages = _component_packages(pipeline, flow, step) if notebook_server else ()
    book = restore.build(pipeline, notebook, step, found, packages)
    write_atomic(target, restore.dumps(book))
    typer.echo(f"wrote {target}: step `{step}` with its inputs from {found.origin}")
    if notebook_server:
        assert snapshot is not None
        snap = chosen.snapshot if chosen else None
        objects = restore.notebook_server(
            name=f"{pipeline.name}-{step}"[:52].rstrip("-"),
            namespace=pipeline.namespace,
            snapshot=snapshot,
            mount_path=chosen.mount_path if chosen else "/data",
            size=snap.size if snap else "10Gi",
            image=image or restore.NOTEBOOK_IMAGE,
            storage_class=storage_class or (snap.storage_class if snap else None),
        )
        manifest = target.with_suffix(".notebook-server.yaml")
        write_atomic(manifest, dump_all(objects))
        typer.echo(f"wrote {manifest}: apply it, then upload {target} to the notebook server")
        if image is None:
            typer.echo(
                f"note: {restore.NOTEBOOK_IMAGE} has no kfg, which the notebook's loading cell"
                " imports; pass --image with kfg installed, or `%pip install` kfg there first"
                " (docs/cluster.md)",
                err=True,
            )


def _component_packages(pipeline: Pipeline, flow: Flow, step: str) -> tuple[str, ...]:
    from kfg.render.components import step_packages

    return step_packages(pipeline.step(step), flow, flow.step(step))


def _from_run(pipeline: Pipeline, flow: Flow, step: str, run_id: str, endpoint: str) -> Inputs:
    from kfg.cluster.restore import NO_ARTIFACT_API, RestoreError, artifact_api, from_run
    from kfg.launcher.kfpapi import Kfp
    from kfg.launcher.runs import Launcher, LaunchError, RunRequest

    kfp = Kfp.connect(endpoint)
    try:
        run = Launcher(RunRequest(endpoint, pipeline.name, "", ""), kfp=kfp).read_run(run_id)
    except LaunchError as exc:
        fail(str(exc))
    if not artifact_api(kfp, run_id):
        inputs = ", ".join(f"`{v}`" for v in flow.step(step).inputs) or "none"
        raise RestoreError(
            NO_ARTIFACT_API.format(endpoint=endpoint, step=step, inputs=inputs, run=run_id)
        )
    return from_run(pipeline, flow, step, run, endpoint)


def _from_cache(
    pipeline: Pipeline,
    flow: Flow,
    notebook: Notebook,
    step: str,
    cache_dir: Path | None,
    config: Path,
) -> Inputs:
    from kfg.cluster.restore import from_paths
    from kfg.core.load import repository_root
    from kfg.engine.cache import Cache
    from kfg.engine.runner import Engine, EngineError

    cache = Cache(
        cache_dir or repository_root(config.parent) / ".kfg",
        warn=lambda message: typer.echo(message, err=True),
    )
    try:
        paths = Engine(pipeline, flow, notebook, cache).locate_inputs(step)
    except EngineError as exc:
        fail(str(exc))
    return from_paths(pipeline, flow, step, paths, f"the local cache in {cache.root}")
