"""Render validated kale.yaml files into packages: one per pipeline, or one aggregating many.

Rendering is a pure function of the committed files: it reads the kale.yaml and the
notebook, never the cluster, the clock or the machine, so the same commit renders to the
same bytes everywhere (which is what lets `kfg render --check` guard pull requests).

Every package is split in two stages, each a kustomization of its own, and a top-level
kustomization including both:

- `pipeline/`: the Pipeline, the data snapshots and the step runtime's ConfigMap, which
  everything else refers to;
- `release/`: the PipelineVersion and what uses it (launcher RBAC, Experiment, run Job,
  the schedules' CronJobs).

KFP's PipelineVersion webhook refuses a version whose Pipeline does not exist yet
(kubeflow/pipelines 2.17.0 backend/src/apiserver/webhook/pipelineversion_webhook.go), and
Flux's kustomize-controller dry-runs every namespaced object of one Kustomization before it
applies any (fluxcd/pkg ssa ApplyAllStaged/ApplyAll), so one Kustomization holding both
never applies anything. Flux syncs the two directories as two Kustomizations joined by
`dependsOn`; Argo CD and `kubectl apply -k` take the top level, where sync waves order them.
An aggregate package repeats the split over all its pipelines (`pipeline/` and `release/`
at its root include each pipeline's), so the same two paths serve both layouts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kfg.analysis.dataflow import Flow
from kfg.config.model import Pipeline
from kfg.errors import KfgError
from kfg.notebook.reader import Notebook
from kfg.render import gitops, katib, launcher, runtime_volume, schedules, snapshots
from kfg.render.package import (
    KPTFILE,
    KRMIGNORE,
    KUSTOMIZATION,
    Package,
    header,
    kptfile,
    kustomization,
)
from kfg.render.yamlout import dump_all, sorted_keys

# The two stages (see the module docstring); a pipeline may not take either name in an
# aggregate package, whose root holds both.
PIPELINE_STAGE = "pipeline"
RELEASE_STAGE = "release"
STAGES = (PIPELINE_STAGE, RELEASE_STAGE)
PIPELINE_FILE = f"{PIPELINE_STAGE}/pipeline.yaml"
SNAPSHOTS_FILE = f"{PIPELINE_STAGE}/snapshots.yaml"
RUNTIME_FILE = f"{PIPELINE_STAGE}/runtime.yaml"
VERSION_FILE = f"{RELEASE_STAGE}/version.yaml"
LAUNCHER_FILE = f"{RELEASE_STAGE}/launcher.yaml"
EXPERIMENT_FILE = f"{RELEASE_STAGE}/experiment.yaml"
RUN_FILE = f"{RELEASE_STAGE}/run.yaml"
SCHEDULES_FILE = f"{RELEASE_STAGE}/schedules.yaml"
IR_FILE = "pipeline.ir.yaml"
TUNING_IR_FILE = "tuning.ir.yaml"
PIPELINE_LABEL = "kfg.dev/pipeline"
# Annotations meant for kale.yaml itself (kpt's local-config) must not reach the cluster.
PRIVATE_ANNOTATION_PREFIXES = ("config.kubernetes.io/", "internal.config.kubernetes.io/")
SOURCE_ANNOTATION = "kfg.dev/source"
NOTEBOOK_ANNOTATION = "kfg.dev/notebook"


@dataclass(frozen=True)
class Rendered:
    pipeline: Pipeline
    version: str
    source: str  # the kale.yaml, relative to the repository root
    objects: list[dict[str, Any]]  # what the package applies, in order
    package: Package


def relative_to_root(path: Path, root: Path) -> str:
    """`path` as seen from the repository root, the same whatever the working directory."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.name


def _metadata(
    raw: dict[str, Any], pipeline: Pipeline, source: str, notebook: str
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": raw["name"]}
    if raw.get("namespace"):
        metadata["namespace"] = raw["namespace"]
    labels = {**pipeline.labels, **gitops.MANAGED_BY}
    metadata["labels"] = dict(sorted(labels.items()))
    annotations = {
        k: v
        for k, v in pipeline.annotations.items()
        if not k.startswith(PRIVATE_ANNOTATION_PREFIXES)
    }
    annotations[SOURCE_ANNOTATION] = source
    annotations[NOTEBOOK_ANNOTATION] = notebook
    metadata["annotations"] = annotations
    return metadata


def _objects(
    manifests: list[dict[str, Any]], pipeline: Pipeline, source: str, notebook: str
) -> list[dict[str, Any]]:
    objects = []
    for manifest in manifests:
        kind = manifest["kind"]
        obj = {
            "apiVersion": manifest["apiVersion"],
            "kind": kind,
            "metadata": _metadata(manifest["metadata"], pipeline, source, notebook),
            "spec": sorted_keys(manifest["spec"]),  # a copy: every dict and list is new
        }
        if kind == "Pipeline":
            gitops.keep(obj["metadata"], wave=gitops.WAVE_PIPELINE)
        else:
            gitops.keep(obj["metadata"], wave=gitops.WAVE_PIPELINE_VERSION, server_side=True)
        obj["metadata"]["annotations"] = dict(sorted(obj["metadata"]["annotations"].items()))
        objects.append(obj)
    return objects


def render(pipeline: Pipeline, flow: Flow, notebook: Notebook, root: Path) -> Rendered:
    """The package of one pipeline. Imports kfp, so only rendering commands call it."""
    from kfg.render.kfp_build import compile_pipeline

    if pipeline.tuning is not None and not pipeline.tuning.cluster:
        pipeline = replace(pipeline, tuning=None)  # tuned only by `kfg tune`
    if pipeline.tuning is not None:
        pipeline = katib.metric_steps_always_run(pipeline)
    source = relative_to_root(pipeline.source, root)
    notebook_path = relative_to_root(pipeline.notebook, root)
    compiled = compile_pipeline(pipeline, flow, notebook)
    objects = _objects(compiled.manifests, pipeline, source, notebook_path)
    top = header(source)
    tuned: tuple[str, tuple[str, ...]] | None = None  # the trials' version and its steps
    tuning_ir: list[dict[str, Any]] = []
    if pipeline.tuning is not None:
        cut = katib.scope(pipeline, flow)
        tuned = (compiled.version, cut.steps)
        if not cut.whole:
            base = katib.tuning_version_base(pipeline.name)
            part = compile_pipeline(cut.pipeline, cut.flow, notebook, version_base=base)
            versions = [m for m in part.manifests if m["kind"] == "PipelineVersion"]
            objects += _objects(versions, pipeline, source, notebook_path)
            tuned = (part.version, cut.steps)
            tuning_ir = part.ir
    package = Package()
    stages: dict[str, list[str]] = {PIPELINE_STAGE: [], RELEASE_STAGE: []}

    def add(path: str, documents: list[dict[str, Any]]) -> None:
        stage, name = path.split("/")
        package.add(path, dump_all(documents, top))
        stages[stage].append(name)

    labels = {**gitops.MANAGED_BY, PIPELINE_LABEL: pipeline.name}
    data = snapshots.volume_snapshots(pipeline, labels)
    if data:
        add(SNAPSHOTS_FILE, data)
    add(PIPELINE_FILE, [o for o in objects if o["kind"] == "Pipeline"])
    mounted = any(step.runtime == "mounted" for step in pipeline.steps)
    if mounted:
        runtime = runtime_volume.config_map(pipeline.name, pipeline.namespace, labels)
        add(RUNTIME_FILE, [runtime])
        data.append(runtime)
    add(VERSION_FILE, [o for o in objects if o["kind"] != "Pipeline"])
    objects[:0] = data
    if pipeline.tuning is not None or pipeline.launcher.run_on_sync or pipeline.schedules:
        access = launcher.rbac(
            pipeline.launcher, labels, pipeline.namespace, schedules.rules(pipeline)
        )
        add(LAUNCHER_FILE, access)
        objects += access
    if tuned is not None:
        tuning = katib.experiment(pipeline, tuned[0], labels, tuned[1])
        add(EXPERIMENT_FILE, [tuning])
        objects.append(tuning)
    if pipeline.launcher.run_on_sync:
        job = launcher.run_job(pipeline, compiled.version, labels)
        add(RUN_FILE, [job])
        objects.append(job)
    if pipeline.schedules:
        recurring = schedules.cron_jobs(pipeline, compiled.version, labels)
        add(SCHEDULES_FILE, recurring)
        objects += recurring
    for stage, files in stages.items():
        package.add(f"{stage}/{KUSTOMIZATION}", kustomization(files, source))
    ir_note = (
        "# The same pipeline as Kubeflow's IR, for installations that upload pipelines"
        f" through the API\n# (kfp upload or the UI). Version: {compiled.version}\n"
    )
    if mounted:
        ir_note += (
            "# Its steps mount the step runtime from ConfigMap"
            f" {runtime_volume.config_map_name(pipeline.name)}\n# ({RUNTIME_FILE}): apply it"
            " in the namespace the runs use.\n"
        )
    mount_note = ir_note[ir_note.index("# Its steps") :] if mounted else ""
    package.add(IR_FILE, dump_all([sorted_keys(d) for d in compiled.ir], top + ir_note))
    ignored = [IR_FILE]
    if tuning_ir and tuned is not None:
        note = (
            "# The steps Katib trials run (the tuning version), as Kubeflow's IR, for"
            f" installations that\n# upload pipelines through the API. Version: {tuned[0]}\n"
            + mount_note
        )
        package.add(TUNING_IR_FILE, dump_all([sorted_keys(d) for d in tuning_ir], top + note))
        ignored.append(TUNING_IR_FILE)
    package.add(KUSTOMIZATION, kustomization(list(STAGES), source))
    package.add(
        KPTFILE,
        kptfile(
            pipeline.name,
            pipeline.description or f"Kubeflow pipeline rendered from {notebook_path}",
            source,
        ),
    )
    listed = "".join(f"{name}\n" for name in ignored)
    package.add(KRMIGNORE, top + f"# Not Kubernetes objects: kpt must not read them.\n{listed}")
    return Rendered(pipeline, compiled.version, source, objects, package)


def aggregate(rendered: list[Rendered], label: str) -> Package:
    """One package holding every pipeline's, so one Application or Kustomization syncs all."""
    package = Package()
    names = []
    for item in sorted(rendered, key=lambda r: r.pipeline.name):
        if item.pipeline.name in STAGES:
            raise KfgError(
                f"{item.source}: a pipeline named `{item.pipeline.name}` cannot share a"
                f" package with others: its root holds the stages {' and '.join(STAGES)}"
            )
        package.nest(item.pipeline.name, item.package)
        names.append(item.pipeline.name)
    package.add(KUSTOMIZATION, kustomization(names, label))
    for stage in STAGES:
        stage_resources = [f"../{name}/{stage}" for name in names]
        package.add(f"{stage}/{KUSTOMIZATION}", kustomization(stage_resources, label))
    description = f"Kubeflow pipelines rendered from {label}"
    package.add(KPTFILE, kptfile("kfg-pipelines", description, label))
    return package
