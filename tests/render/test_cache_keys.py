"""KFP's cache keys over the rendered PipelineVersion: which steps two trials share.

The model below follows kubeflow/pipelines at tag 2.17.0:

- backend/src/v2/cacheutils/cache.go, GenerateCacheKey (lines 173-229): the key holds the
  input artifacts' names, the input parameters' values, the output artifacts' names, types
  and metadata (URIs wiped), the output parameters' types, and the container's image,
  command plus arguments and the names of the claims it mounts; GenerateFingerPrint
  (lines 151-171) hashes its JSON.
- backend/src/v2/driver/cache.go, getFingerPrint (lines 83-117): command and arguments as
  written in the IR (placeholders unresolved), claim names deduplicated and sorted.
- backend/src/v2/driver/container.go (lines 149-179): the claim names are the *resolved*
  ones (makeVolumeMountPatch in k8s.go names each pod volume after its claim), including
  names produced by an upstream task's output parameter.
- backend/src/v2/driver/resolve.go, resolveInputParameter: parameter values as resolved
  for this run (`{{$.pipeline_job_uuid}}` only as a whole value).
- backend/src/v2/metadata/converter.go, toRuntimeArtifact: an input artifact's name is
  its ML Metadata id; a cache hit publishes the cached execution's output artifacts again
  (driver/cache.go, reuseCachedOutputs), so a step after a cache hit sees the same ids.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kfg.core.load import load_pipeline
from kfg.render.build import Rendered, render
from tests.conftest import EXAMPLES, REPO
from tests.pipelines import make, messages

_ids = itertools.count(1)


@dataclass
class Cluster:
    """What outlives a run: the cache (fingerprint -> outputs) and the claims that exist."""

    cache: dict[str, dict[str, Any]] = field(default_factory=dict)
    claims: set[str] = field(default_factory=set)


def _resolve(spec: dict[str, Any], params: dict[str, Any], run: RunState) -> Any:
    if "componentInputParameter" in spec:
        return params[spec["componentInputParameter"]]
    if "taskOutputParameter" in spec:
        producer = spec["taskOutputParameter"]
        return run.parameters[producer["producerTask"]][producer["outputParameterKey"]]
    value = spec["runtimeValue"]["constant"]
    return run.run_id if value == "{{$.pipeline_job_uuid}}" else value


@dataclass
class RunState:
    run_id: str
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    artifacts: dict[str, dict[str, str]] = field(default_factory=dict)
    hits: set[str] = field(default_factory=set)
    executed: set[str] = field(default_factory=set)
    mounted: set[str] = field(default_factory=set)


def _order(tasks: dict[str, Any]) -> list[str]:
    done: list[str] = []
    while len(done) < len(tasks):
        for name in sorted(tasks):
            if name not in done and set(tasks[name].get("dependentTasks", [])) <= set(done):
                done.append(name)
    return done


def _fake_component(
    image: str, image_args: list[str], inputs: dict[str, Any], cluster: Cluster
) -> Any:
    """The output parameters of the tasks that have any: the claims a run mounts."""
    if image == "argostub/createpvc":  # kfp's CreatePVC: the driver creates the claim
        # backend/src/v2/driver/k8s.go createPVC: `pvc_name` as given, else a UUID prefix.
        claim = inputs.get("pvc_name") or f"{uuid.uuid4()}{inputs.get('pvc_name_suffix', '')}"
        cluster.claims.add(claim)
        return {"name": claim}
    source = " ".join(image_args)
    if "def restore_claim(" in source:
        claim = f"{inputs['name']}-{inputs['run_id']}" if inputs["run_id"] else inputs["name"]
        cluster.claims.add(claim)
        return {"Output": claim}
    if "def release_claim(" in source:
        cluster.claims.discard(f"{inputs['name']}-{inputs['run_id']}")
    return {}


def run_pipeline(
    version: dict[str, Any], arguments: dict[str, Any], cluster: Cluster, run_id: str
) -> RunState:
    """Drive one run through the cache as the KFP 2.17.0 driver does, task by task."""
    pipeline = version["pipelineSpec"]
    executors = pipeline["deploymentSpec"]["executors"]
    platform = version["platformSpec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    root = pipeline["root"]
    params = {
        name: spec.get("defaultValue")
        for name, spec in root.get("inputDefinitions", {}).get("parameters", {}).items()
    }
    params.update(arguments)
    run = RunState(run_id)
    for name in _order(root["dag"]["tasks"]):
        task = root["dag"]["tasks"][name]
        component = pipeline["components"][task["componentRef"]["name"]]
        label = component["executorLabel"]
        container = executors[label]["container"]
        inputs = {
            k: _resolve(v, params, run)
            for k, v in task.get("inputs", {}).get("parameters", {}).items()
        }
        artifacts = {
            k: [
                run.artifacts[v["taskOutputArtifact"]["producerTask"]][
                    v["taskOutputArtifact"]["outputArtifactKey"]
                ]
            ]
            for k, v in task.get("inputs", {}).get("artifacts", {}).items()
        }
        claims = sorted(
            {
                _resolve(m["pvcNameParameter"], params, run)
                for m in platform.get(label, {}).get("pvcMount", [])
            }
        )
        run.mounted.update(claims)
        outputs = component.get("outputDefinitions", {})
        key = {
            "inputArtifactNames": {k: {"artifactNames": v} for k, v in artifacts.items()},
            "inputParameterValues": inputs,
            "outputArtifactsSpec": {
                k: {"name": k, "type": v["artifactType"]}
                for k, v in outputs.get("artifacts", {}).items()
            },
            "outputParametersSpec": {
                k: v["parameterType"] for k, v in outputs.get("parameters", {}).items()
            },
            "containerSpec": {
                "image": container["image"],
                "cmdArgs": container.get("command", []) + container.get("args", []),
                "pvcNames": claims,
            },
        }
        fingerprint = hashlib.sha256(
            json.dumps(key, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        cached = task.get("cachingOptions", {}).get("enableCache") and fingerprint in cluster.cache
        if cached:
            result = cluster.cache[fingerprint]
            run.hits.add(task["taskInfo"]["name"])
        else:
            result = {
                "artifacts": {k: str(next(_ids)) for k in outputs.get("artifacts", {})},
                "parameters": _fake_component(
                    container["image"], container.get("command", []), inputs, cluster
                ),
            }
            run.executed.add(task["taskInfo"]["name"])
            if task.get("cachingOptions", {}).get("enableCache"):
                cluster.cache[fingerprint] = result
        run.artifacts[name] = result["artifacts"]
        run.parameters[name] = result["parameters"]
    return run


def _version(item: Rendered) -> dict[str, Any]:
    spec: dict[str, Any] = next(o for o in item.objects if o["kind"] == "PipelineVersion")["spec"]
    return spec


def _trials(item: Rendered, values: Callable[[int], dict[str, Any]]) -> tuple[RunState, ...]:
    cluster = Cluster()
    runs = tuple(
        run_pipeline(_version(item), values(n), cluster, f"00000000-0000-4000-8000-00000000000{n}")
        for n in (1, 2)
    )
    return runs


CELLS = [
    ("code", "lr = 0.1\nseed = 1"),
    ("code", "import os\nrows = len(os.listdir('/data'))"),
    ("code", "features = rows * 2 + seed"),
    ("code", "model = features * lr"),
    ("code", "score = model + 1"),
]
STEPS = [
    {"name": "load", "cells": [2], "volumes": ["data"]},
    {"name": "features", "cells": [3]},
    {"name": "train", "cells": [4]},
    {"name": "evaluate", "cells": [5]},
]
TUNING = {
    "objective": {"metric": "score", "type": "maximize"},
    "algorithm": {"name": "random"},
    "parameters": {"lr": {"type": "double", "min": 0.01, "max": 0.5}},
}


def _snapshot_pipeline(tmp_path: Path, read_only: bool) -> Rendered:
    volume = {
        "name": "data",
        "claim": "raw",
        "mountPath": "/data",
        "readOnly": read_only,
        "snapshot": {"version": "v1", "size": "1Gi"},
    }
    result = make(
        tmp_path,
        CELLS,
        STEPS,
        parameters={"cell": 1},
        volumes=[volume],
        metrics=[{"name": "score", "variable": "score"}],
        tuning=TUNING,
    )
    assert result.ok and result.pipeline and result.flow and result.notebook, messages(result)
    return render(result.pipeline, result.flow, result.notebook, tmp_path)


def _digits_trials_share_every_step_before_the_tuned_ones() -> None:
    """The shipped tuning example: every step before the tuned ones is shared."""
    result = load_pipeline(EXAMPLES / "digits" / "kale.yaml", root=REPO)
    assert result.pipeline and result.flow and result.notebook and result.pipeline.tuning
    item = render(result.pipeline, result.flow, result.notebook, REPO)
    tuned = {p.name for p in result.pipeline.tuning.parameters}
    space = {p.name: p for p in result.pipeline.tuning.parameters}

    def values(n: int) -> dict[str, Any]:
        chosen: dict[str, Any] = {}
        for name, p in space.items():
            bound = p.min if n == 1 else p.max
            assert bound is not None, name  # the example tunes ranges only
            chosen[name] = int(bound) if p.type == "int" else float(bound)
        return chosen

    first, second = _trials(item, values)
    assert first.hits == set()
    reads_tuned = {
        s.name for s in result.pipeline.steps if tuned & set(result.flow.step(s.name).parameters)
    }
    downstream = {
        s.name
        for s in result.pipeline.steps
        if s.name in reads_tuned or reads_tuned & set(result.flow.step(s.name).upstream)
    }
    assert reads_tuned and second.hits == {s.name for s in result.pipeline.steps} - downstream
    assert second.executed == downstream


def test_steps_reading_a_read_only_snapshot_are_cache_hits_in_the_second_trial(
    tmp_path: Path,
) -> None:
    from kfg.kube.names import is_dns_label

    first, second = _trials(_snapshot_pipeline(tmp_path, True), lambda n: {"lr": 0.1 * n})
    assert {"load", "features", "train", "evaluate"} <= first.executed
    assert second.hits == {"load", "features"}
    assert second.executed == {"restore-data", "train", "evaluate"}
    # Hits of claims the API server would refuse prove nothing: each name must be valid.
    assert first.mounted == second.mounted and all(map(is_dns_label, second.mounted))
    _digits_trials_share_every_step_before_the_tuned_ones()


@pytest.mark.parametrize("read_only", [True, False])
def test_every_mounted_claim_name_is_valid_and_exists(tmp_path: Path, read_only: bool) -> None:
    from kfg.kube.names import is_dns_label

    item = _snapshot_pipeline(tmp_path, read_only)
    cluster = Cluster()
    run = run_pipeline(_version(item), {"lr": 0.2}, cluster, "0b6a3c8e-6a4f-4a0e-9a51-1f0c2d3e4f50")
    [claim] = {v["Output"] for v in run.parameters.values() if "Output" in v}
    assert is_dns_label(claim)
    # A shared claim stays for the next run; a run's own is deleted at its end.
    assert cluster.claims == ({claim} if read_only else set())


def test_a_writable_snapshot_costs_the_cache_of_the_steps_mounting_it(tmp_path: Path) -> None:
    """The documented price of isolation: a claim per run is a new name in every key."""
    first, second = _trials(_snapshot_pipeline(tmp_path, False), lambda n: {"lr": 0.1 * n})
    assert first.mounted.isdisjoint(second.mounted)
    assert second.hits == set()
    assert {"load", "features", "train", "evaluate"} <= second.executed
