"""Build the kfp pipeline from the analysed notebook and compile it with kfp's compiler.

This is the only module that imports kfp (about a second of start-up), and only `kfg
render` imports it. kfp is used for what it owns: the component interface, the IR, the
Kubernetes platform spec and the Pipeline/PipelineVersion manifests.
"""

from __future__ import annotations

import inspect
import linecache
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from kfg.analysis.dataflow import Flow
from kfg.config.model import Pipeline, Step
from kfg.errors import KfgError
from kfg.kube.names import content_hash, input_name, output_name, versioned
from kfg.kube.quantity import kfp_cpu, kfp_memory
from kfg.notebook.reader import Notebook
from kfg.render import snapshots
from kfg.render.components import Component, build_component
from kfg.render.kfp_internals import (
    SOURCE_ATTRIBUTE,
    cheap_task_stacks,
    documents_of_the_compiler,
    import_kfp_without_its_client,
    known_function_sources,
    set_kubernetes_config,
)
from kfg.render.platform import kubernetes_config

import_kfp_without_its_client()  # before the first `kfp` import below
# ruff: isort: off
from google.protobuf import json_format  # noqa: E402
from kfp import compiler, dsl  # noqa: E402
from kfp.compiler.compiler_utils import KubernetesManifestOptions  # noqa: E402
from kfp.dsl import HTML, Artifact, Input, Metrics, Output  # noqa: E402
# ruff: isort: on

T = TypeVar("T")

# A non-root user has no writable home in most images; pip's user install and libraries
# that cache under ~ need one.
STEP_ENV = {"HOME": "/tmp"}
PARAMETER_TYPES: dict[str, type] = {
    "bool": bool,
    "int": int,
    "float": float,
    "str": str,
    "list": list,
    "dict": dict,
}


@dataclass(frozen=True)
class Compiled:
    ir: list[dict[str, Any]]  # the IR documents: pipeline spec, then platform spec if any
    manifests: list[dict[str, Any]]  # Pipeline and PipelineVersion
    version: str
    components: tuple[Component, ...]


def _function(component: Component, pipeline: str) -> Callable[..., None]:
    """The component function, defined from generated source that inspect can read back."""
    filename = f"<kfg {pipeline}/{component.step}>"
    linecache.cache[filename] = (
        len(component.source),
        None,
        component.source.splitlines(True),
        filename,
    )
    namespace: dict[str, Any] = {
        "Input": Input,
        "Output": Output,
        "Artifact": Artifact,
        "HTML": HTML,
        "Metrics": Metrics,
    }
    exec(compile(component.source, filename, "exec", dont_inherit=True), namespace)
    function: Callable[..., None] = namespace[component.function]
    setattr(function, SOURCE_ATTRIBUTE, component.source)  # known_function_sources
    return function


def _configure(task: Any, step: Step, pipeline: Pipeline) -> None:
    resources = step.resources
    if resources.cpu is not None:
        if resources.cpu.request:
            task.set_cpu_request(kfp_cpu(resources.cpu.request))
        if resources.cpu.limit:
            task.set_cpu_limit(kfp_cpu(resources.cpu.limit))
    if resources.memory is not None:
        if resources.memory.request:
            task.set_memory_request(kfp_memory(resources.memory.request))
        if resources.memory.limit:
            task.set_memory_limit(kfp_memory(resources.memory.limit))
    if resources.gpu is not None:
        task.set_accelerator_type(resources.gpu.type)
        task.set_accelerator_limit(resources.gpu.count)
    defaults = resources.defaulted()
    if "cpu" in defaults:
        task.set_cpu_request(defaults["cpu"])
    if "memory" in defaults:
        task.set_memory_request(defaults["memory"])
    for name, value in sorted({**STEP_ENV, **step.env}.items()):
        task.set_env_variable(name, value)
    task.set_caching_options(step.caching)
    if step.retries:
        task.set_retry(num_retries=step.retries)
    set_kubernetes_config(task, kubernetes_config(step, pipeline))


def _first_user(pipeline: Pipeline, volume: str) -> Step:
    """The first step mounting `volume`: its image runs the task restoring the volume."""
    return next(s for s in pipeline.steps if volume in s.volumes)


def _pipeline_function(
    pipeline: Pipeline, flow: Flow, components: dict[str, Any]
) -> Callable[..., None]:
    names = [p.name for p in pipeline.parameters]

    def body(*args: Any) -> None:
        values = dict(zip(names, args, strict=True))
        tasks: dict[str, Any] = {}
        restored = {
            v.name: (v, snapshots.restore(v, _first_user(pipeline, v.name).image))
            for v in snapshots.snapshotted(pipeline)
        }
        for step in pipeline.steps:
            here = flow.step(step.name)
            arguments = {p: values[p] for p in here.parameters}
            for variable, source in here.inputs.items():
                arguments[input_name(variable)] = tasks[source].outputs[output_name(variable)]
            task = components[step.name](**arguments)
            task.set_display_name(step.name)
            for upstream in here.upstream:
                if upstream not in {s for s in here.inputs.values()}:
                    task.after(tasks[upstream])
            _configure(task, step, pipeline)
            for name in step.volumes:
                if name in restored:
                    volume, created = restored[name]
                    snapshots.mount(task, volume, created)
            if step.snapshot_after:
                workspace = snapshots.writable(pipeline, step.volumes)
                chosen = pipeline.snapshot_class
                snapshots.after_step(
                    task, step.name, workspace, step.image, chosen.name if chosen else ""
                )
            tasks[step.name] = task
        for volume, _ in restored.values():
            users = [tasks[s.name] for s in pipeline.steps if volume.name in s.volumes]
            snapshots.release(volume, _first_user(pipeline, volume.name).image, users)

    body.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                p.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=p.default,
                annotation=PARAMETER_TYPES[p.type_name],
            )
            for p in pipeline.parameters
        ]
    )
    body.__name__ = pipeline.name.replace("-", "_")
    return body


def _manifests(graph: Any, options: KubernetesManifestOptions) -> list[Any]:
    """Pipeline and PipelineVersion, as kfp's compiler writes them for the Kubernetes store."""
    with documents_of_the_compiler() as documents:
        compiler.Compiler().compile(
            graph,
            os.devnull,
            kubernetes_manifest_options=options,
            kubernetes_manifest_format=True,
        )
    return [d for d in documents if d is not None]


def intermediate_representation(graph: Any) -> list[dict[str, Any]]:
    """The IR documents kfp's compiler writes: the pipeline spec, then the platform spec."""
    documents = [json_format.MessageToDict(graph.pipeline_spec)]
    platform = json_format.MessageToDict(graph.platform_spec)
    if platform:
        documents.append(platform)
    return documents


def build_graph(
    pipeline: Pipeline, flow: Flow, notebook: Notebook
) -> tuple[Any, tuple[Component, ...]]:
    """The kfp pipeline (a GraphComponent) and the components it is made of."""
    components = tuple(build_component(pipeline, flow, notebook, s) for s in pipeline.steps)
    with warnings.catch_warnings(), cheap_task_stacks(), known_function_sources():
        warnings.simplefilter("ignore")  # kfp's notices about future defaults
        factories = {
            c.step: dsl.component(
                _function(c, pipeline.name),
                base_image=pipeline.step(c.step).image,
                packages_to_install=list(c.packages) or None,
            )
            for c in components
        }
        graph = dsl.pipeline(name=pipeline.name, description=pipeline.description or None)(
            _pipeline_function(pipeline, flow, factories)
        )
    return graph, components


class CompileRefused(KfgError):
    """kfp's compiler refused the pipeline for something kfg's checks let through."""


def _raised_by_kfp(exc: BaseException) -> bool:
    """Whether the innermost frame of `exc` is kfp's own code (not kfg's)."""
    tb = exc.__traceback__
    module = ""
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    return module == "kfp" or module.startswith("kfp.")


def compile_pipeline(
    pipeline: Pipeline, flow: Flow, notebook: Notebook, *, version_base: str | None = None
) -> Compiled:
    """Compile; the version is `<version_base>-<hash of the IR>` (`version_base` defaults to
    the pipeline's name; Katib's tuning version uses its own).

    kfp refuses some input with ValueError or TypeError; that is a refusal of the user's
    pipeline (CompileRefused, exit 1). The same exceptions from kfg's own code are bugs and
    pass through.
    """
    try:
        return _compile(pipeline, flow, notebook, version_base)
    except (ValueError, TypeError) as exc:
        if _raised_by_kfp(exc):
            raise CompileRefused(f"the kfp compiler refused the pipeline: {exc}") from exc
        raise


def _compile(
    pipeline: Pipeline, flow: Flow, notebook: Notebook, version_base: str | None
) -> Compiled:
    graph, components = build_graph(pipeline, flow, notebook)
    ir = intermediate_representation(graph)
    version = versioned(version_base or pipeline.name, content_hash(ir))
    options = KubernetesManifestOptions(
        pipeline_name=pipeline.name,
        pipeline_display_name=pipeline.name,
        pipeline_version_name=version,
        pipeline_version_display_name=version,
        namespace=pipeline.namespace,
        include_pipeline_manifest=True,
    )
    manifests = _manifests(graph, options)
    return Compiled(ir=ir, manifests=manifests, version=version, components=components)
