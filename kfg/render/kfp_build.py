"""Build the kfp pipeline from the analysed notebook and compile it with kfp's compiler.

This is the only module that imports kfp (about a second of start-up), and only `kfg
render` imports it. kfp is used for what it owns: the component interface, the IR, the
Kubernetes platform spec and the Pipeline/PipelineVersion manifests.
"""

from __future__ import annotations

import inspect
import linecache
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kfp import compiler, dsl, kubernetes
from kfp.compiler.compiler_utils import KubernetesManifestOptions
from kfp.dsl import HTML, Artifact, Input, Metrics, Output

from kfg.analysis.dataflow import Flow
from kfg.config.model import Pipeline, Step
from kfg.names import content_hash, versioned
from kfg.notebook.reader import Notebook
from kfg.render.components import Component, build_component, input_name, output_name

# Steps run as this user unless the image says otherwise; kfp's compiler adds the rest of
# the restricted profile (no privilege escalation, all capabilities dropped, seccomp).
RUN_AS_USER = 1000
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
    return function


def _configure(task: Any, step: Step, pipeline: Pipeline) -> None:
    resources = step.resources
    if resources.cpu is not None:
        if resources.cpu.request:
            task.set_cpu_request(resources.cpu.request)
        if resources.cpu.limit:
            task.set_cpu_limit(resources.cpu.limit)
    if resources.memory is not None:
        if resources.memory.request:
            task.set_memory_request(resources.memory.request)
        if resources.memory.limit:
            task.set_memory_limit(resources.memory.limit)
    if resources.gpu is not None:
        task.set_accelerator_type(resources.gpu.type)
        task.set_accelerator_limit(resources.gpu.count)
    for key, value in sorted(step.node_selector.items()):
        kubernetes.add_node_selector(task, key, value)
    for toleration in step.tolerations:
        kubernetes.add_toleration(
            task,
            key=toleration.get("key"),
            operator=toleration.get("operator"),
            value=toleration.get("value"),
            effect=toleration.get("effect"),
            toleration_seconds=toleration.get("tolerationSeconds"),
        )
    for name, value in sorted({**STEP_ENV, **step.env}.items()):
        task.set_env_variable(name, value)
    by_secret: dict[str, dict[str, str]] = {}
    for secret in step.secrets:
        by_secret.setdefault(secret.secret, {})[secret.key] = secret.env
    for secret_name, keys in sorted(by_secret.items()):
        kubernetes.use_secret_as_env(task, secret_name, secret_key_to_env=keys)
    for key, value in sorted(step.labels.items()):
        kubernetes.add_pod_label(task, key, value)
    for key, value in sorted(step.annotations.items()):
        kubernetes.add_pod_annotation(task, key, value)
    task.set_caching_options(step.caching)
    if step.retries:
        task.set_retry(num_retries=step.retries)
    if step.timeout_seconds is not None:
        kubernetes.set_timeout(task, max(1, int(step.timeout_seconds)))
    volumes = {v.name: v for v in pipeline.volumes}
    for name in step.volumes:
        volume = volumes[name]
        kubernetes.mount_pvc(task, pvc_name=volume.claim, mount_path=volume.mount_path)
    kubernetes.set_security_context(
        task, run_as_user=RUN_AS_USER, run_as_group=RUN_AS_USER, run_as_non_root=True
    )


def _pipeline_function(
    pipeline: Pipeline, flow: Flow, components: dict[str, Any]
) -> Callable[..., None]:
    names = [p.name for p in pipeline.parameters]

    def body(*args: Any) -> None:
        values = dict(zip(names, args, strict=True))
        tasks: dict[str, Any] = {}
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
            tasks[step.name] = task

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


def _compile(graph: Any, path: Path, options: KubernetesManifestOptions | None) -> list[Any]:
    compiler.Compiler().compile(
        graph,
        str(path),
        kubernetes_manifest_options=options,
        kubernetes_manifest_format=options is not None,
    )
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def compile_pipeline(pipeline: Pipeline, flow: Flow, notebook: Notebook) -> Compiled:
    components = tuple(build_component(pipeline, flow, notebook, s) for s in pipeline.steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
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
        with tempfile.TemporaryDirectory(prefix="kfg-render-") as scratch:
            ir = _compile(graph, Path(scratch) / "ir.yaml", None)
            version = versioned(pipeline.name, content_hash(ir))
            options = KubernetesManifestOptions(
                pipeline_name=pipeline.name,
                pipeline_display_name=pipeline.name,
                pipeline_version_name=version,
                pipeline_version_display_name=version,
                namespace=pipeline.namespace,
                include_pipeline_manifest=True,
            )
            manifests = _compile(graph, Path(scratch) / "manifests.yaml", options)
    return Compiled(ir=ir, manifests=manifests, version=version, components=components)
