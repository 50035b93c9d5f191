"""How big a pipeline's PipelineVersion will be, known before compiling it.

The API server keeps a PipelineVersion as one object, and etcd refuses a request over
1.5 MiB by default (`--max-request-bytes` 1,572,864; Argo CD and Flux apply it in one
request), so a pipeline whose version is bigger renders fine and then never syncs. `kfg
validate` must say so without importing kfp (a second of start-up), so the size is
estimated from what kfg writes itself: the components' source, their packages and the
Kubernetes platform config are counted exactly, and kfp's share (executor commands, input
and output definitions, DAG tasks) with per-step and per-input costs measured on
rendered pipelines (tests/render/test_size.py keeps the estimate within 10% of the
rendered object's JSON).
"""

from __future__ import annotations

import json

from kfg.analysis.dataflow import Flow
from kfg.config.model import Pipeline
from kfg.notebook.reader import Notebook
from kfg.render import runtime_volume
from kfg.render.components import build_component
from kfg.render.platform import kubernetes_config

ETCD_REQUEST_LIMIT = 1_572_864  # etcd's default --max-request-bytes
WARN_ABOVE = 1024 * 1024
# kfp's own JSON around each step and each parameter or artifact it passes, and around the
# whole pipeline: measured on chains of 5 and 40 steps and on the examples (kfp 2.17.0).
PER_STEP = 1200
PER_INPUT_OR_OUTPUT = 230
FIXED = 900


def _json_length(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def estimated_version_bytes(pipeline: Pipeline, flow: Flow, notebook: Notebook) -> int:
    total = FIXED
    for step in pipeline.steps:
        component = build_component(pipeline, flow, notebook, step)
        passed = len(component.parameters) + len(component.inputs) + len(component.outputs)
        total += _json_length(component.source) + _json_length(" ".join(component.packages))
        total += _json_length(kubernetes_config(step, pipeline))
        total += PER_STEP + PER_INPUT_OR_OUTPUT * passed
    return total


def size_warning(pipeline: Pipeline, flow: Flow, notebook: Notebook) -> str | None:
    """A warning when the version would be over 1 MiB, and why it matters."""
    size = estimated_version_bytes(pipeline, flow, notebook)
    if size <= WARN_ABOVE:
        return None
    verdict = (
        "the API server refuses objects over 1.5 MiB (etcd's default request limit)"
        if size > ETCD_REQUEST_LIMIT
        else "close to the 1.5 MiB the API server accepts (etcd's default request limit)"
    )
    embedded = sum(1 for s in pipeline.steps if s.runtime == "embedded")
    advice = (
        f"; {embedded} step(s) embed the step runtime"
        f" (about {len(runtime_volume.runtime_text()) // 1000} KB each): `runtime: mounted`"
        " carries it once"
        if embedded
        else "; move large code out of the cells into a package the image provides, or split"
        " the pipeline"
    )
    return (
        f"the PipelineVersion will be about {size / (1024 * 1024):.2f} MiB ({size:,} bytes):"
        f" {verdict}{advice}"
    )
