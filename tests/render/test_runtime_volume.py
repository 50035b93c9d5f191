"""The step runtime travels once per pipeline, as an immutable ConfigMap every step mounts.

The KFP 2.17.0 driver turns a task's `configMapAsVolume` into a pod volume named after the
ConfigMap, mounted at `mountPath`, with `optional` passed through
(kubeflow/pipelines 2.17.0 backend/src/v2/driver/k8s.go, the `GetConfigMapAsVolume` loop;
the field names are kubernetes_platform/proto/kubernetes_executor_config.proto's
ConfigMapAsVolume). The volume reaches the pod because no kfg component declares task
config passthroughs (driver.go getTaskConfigOptions: then every field applies to the pod).
test_platform.py checks the entry against kfp-kubernetes itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from kfg.kube.names import is_dns_label
from kfg.render import gitops, runtime_volume
from kfg.render.build import IR_FILE, RUNTIME_FILE, render
from kfg.render.components import build_component
from tests.pipelines import chain, make

RUNTIME = Path(runtime_volume.__file__).resolve().parent.parent / "runtime" / "step.py"


def _version(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == "PipelineVersion")


def test_the_package_carries_the_runtime_once_and_every_step_mounts_it(tmp_path: Path) -> None:
    result = chain(tmp_path, 4)
    assert result.pipeline and result.flow and result.notebook
    rendered = render(result.pipeline, result.flow, result.notebook, tmp_path)
    maps = [o for o in rendered.objects if o["kind"] == "ConfigMap"]
    assert len(maps) == 1
    runtime = maps[0]
    name = runtime["metadata"]["name"]
    digest = hashlib.sha256(RUNTIME.read_bytes()).hexdigest()
    assert runtime["data"] == {"step.py": RUNTIME.read_bytes().decode("utf-8")}
    assert runtime["immutable"] is True
    assert name == f"p-runtime-{digest[:8]}" and is_dns_label(name)  # the pod volume's name
    # Old versions mount it by name: no controller may prune it, and it precedes them.
    assert gitops.is_kept(runtime)
    assert runtime["metadata"]["annotations"][gitops.ARGOCD_SYNC_WAVE] == str(gitops.WAVE_PIPELINE)
    assert RUNTIME_FILE in rendered.package.files

    version = _version(rendered.objects)
    text = json.dumps(version)
    assert "def run_step" not in text  # the runtime's source is not in the version
    assert text.count(digest) == 4  # each component names the runtime by its digest
    components = version["spec"]["pipelineSpec"]["components"].values()
    assert not [c for c in components if c.get("taskConfigPassthroughs")]
    platform = version["spec"]["platformSpec"]["platforms"]["kubernetes"]["deploymentSpec"]
    for executor in platform["executors"].values():
        assert executor["configMapAsVolume"] == [
            {
                "configMapName": name,
                "configMapNameParameter": {"runtimeValue": {"constant": name}},
                "mountPath": "/kfg/runtime",
                "optional": True,
            }
        ]
    assert f"ConfigMap {name}" in rendered.package.files[IR_FILE]


def test_embedded_steps_carry_the_runtime_and_need_no_config_map(tmp_path: Path) -> None:
    result = chain(tmp_path, 2, runtime="embedded")
    assert result.pipeline and result.flow and result.notebook
    rendered = render(result.pipeline, result.flow, result.notebook, tmp_path)
    assert not [o for o in rendered.objects if o["kind"] == "ConfigMap"]
    assert RUNTIME_FILE not in rendered.package.files
    assert json.dumps(_version(rendered.objects)).count("def run_step") == 2


def test_a_new_runtime_is_a_new_config_map_and_a_new_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = chain(tmp_path, 2)
    assert result.pipeline and result.flow and result.notebook
    before = render(result.pipeline, result.flow, result.notebook, tmp_path)
    changed = runtime_volume.runtime_text() + "\n# a fix\n"
    monkeypatch.setattr(runtime_volume, "runtime_text", lambda: changed)
    monkeypatch.setattr(
        runtime_volume, "runtime_digest", lambda: hashlib.sha256(changed.encode()).hexdigest()
    )
    after = render(result.pipeline, result.flow, result.notebook, tmp_path)
    assert before.version != after.version  # versions are immutable: a new one
    names = {
        o["metadata"]["name"]
        for r in (before, after)
        for o in r.objects
        if o["kind"] == "ConfigMap"
    }
    assert len(names) == 2  # the old one stays for the old version


def _loader(tmp_path: Path) -> Path:
    """A script running the component's loading lines, as a step's function body does."""
    body = "\n".join(runtime_volume.loader_lines("p"))
    script = tmp_path / "component.py"
    script.write_text(
        "def component():\n" + body + "\n    return main\n\n"
        "print(component().__module__, component().__name__)\n"
    )
    return script


def _run(script: Path, folder: Path | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != runtime_volume.DIRECTORY_VARIABLE}
    if folder is not None:
        env[runtime_volume.DIRECTORY_VARIABLE] = str(folder)
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60
    )


def test_the_component_loads_the_mounted_runtime(tmp_path: Path) -> None:
    mounted = tmp_path / "mount"
    mounted.mkdir()
    (mounted / "step.py").write_bytes(RUNTIME.read_bytes())
    ran = _run(_loader(tmp_path), mounted)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["kfg_step_runtime", "main"]


def test_a_missing_or_different_runtime_fails_at_once_naming_the_config_map(
    tmp_path: Path,
) -> None:
    script = _loader(tmp_path)
    name = runtime_volume.config_map_name("p")
    missing = _run(script, tmp_path / "nowhere")
    assert missing.returncode == 1
    assert f"apply the package's pipeline stage (ConfigMap {name})" in missing.stderr
    assert "Traceback" not in missing.stderr
    other = tmp_path / "other"
    other.mkdir()
    (other / "step.py").write_text("def main(**kwargs):\n    pass\n")
    different = _run(script, other)
    assert different.returncode == 1
    assert "is not the step runtime this pipeline version was rendered with" in different.stderr


def test_the_default_mount_path_is_where_the_volume_is_mounted() -> None:
    lines = "\n".join(runtime_volume.loader_lines("p"))
    assert f'"{runtime_volume.MOUNT_PATH}"' in lines
    assert runtime_volume.volume("p")["mountPath"] == runtime_volume.MOUNT_PATH


def test_component_source_of_a_mounted_step_is_small(tmp_path: Path) -> None:
    result = make(tmp_path, [("code", "x = 1")], [{"name": "a", "cells": [1]}])
    assert result.pipeline and result.flow and result.notebook
    component = build_component(
        result.pipeline, result.flow, result.notebook, result.pipeline.steps[0]
    )
    assert len(component.source) < 2500, component.source
    compile(component.source, "<component>", "exec")
    assert textwrap.dedent(component.source).count("exec(compile(runtime") == 1


def test_long_pipeline_names_that_share_a_prefix_get_their_own_config_maps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A DNS label holds 63 characters: `<pipeline>-runtime-<8>` shortens the pipeline name,
    # and two names differing only past the cut would otherwise be one ConfigMap.
    first = "churn-model-with-gradient-boosting-and-calibration-for-europe-v1"[:63]
    second = first[:-1] + "2"
    names = [runtime_volume.config_map_name(p) for p in (first, second)]
    assert names[0] != names[1]
    assert all(is_dns_label(n) for n in names)
    assert names[0] == runtime_volume.config_map_name(first)  # stable
    short = runtime_volume.config_map_name("p")
    assert short == f"p-runtime-{runtime_volume.runtime_digest()[:8]}"
    # another runtime is another ConfigMap, for a shortened name as for any other
    monkeypatch.setattr(runtime_volume, "runtime_digest", lambda: "0" * 64)
    assert runtime_volume.config_map_name(first) != names[0]
    assert runtime_volume.config_map_name("p") == "p-runtime-00000000"
