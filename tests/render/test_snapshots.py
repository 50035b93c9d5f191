"""Versioned data: VolumeSnapshots, and the claim each run restores, mounts and releases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kfg.render import gitops
from kfg.render.build import SNAPSHOTS_FILE, Rendered, render
from tests import crds
from tests.pipelines import make, messages

VOLUMES = [
    {
        "name": "data",
        "claim": "wine-data",
        "mountPath": "/data",
        "snapshot": {
            "version": "2026-11-01",
            "size": "20Gi",
            "className": "csi-snapclass",
            "accessMode": "ReadOnlyMany",
        },
    },
    {"name": "scratch", "claim": "scratch", "mountPath": "/scratch"},
]


def _render(tmp_path: Path, volumes: list[dict[str, Any]] = VOLUMES) -> Rendered:
    result = make(
        tmp_path,
        [("code", "x = 1"), ("code", "y = x"), ("code", "z = y")],
        [
            {"name": "load", "cells": [1], "volumes": ["data"]},
            {"name": "train", "cells": [2], "volumes": ["data", "scratch"]},
            {"name": "report", "cells": [3], "volumes": []},
        ],
        volumes=volumes,
    )
    assert result.ok and result.pipeline and result.flow and result.notebook, messages(result)
    return render(result.pipeline, result.flow, result.notebook, tmp_path)


def test_snapshot_is_rendered_kept_and_synced_first(tmp_path: Path) -> None:
    item = _render(tmp_path)
    [snapshot] = [d for d in yaml.safe_load_all(item.package.files[SNAPSHOTS_FILE]) if d]
    crds.validate(snapshot)
    assert snapshot["metadata"]["name"] == "wine-data-2026-11-01"
    assert snapshot["spec"] == {
        "source": {"persistentVolumeClaimName": "wine-data"},
        "volumeSnapshotClassName": "csi-snapclass",
    }
    assert gitops.is_kept(snapshot)
    assert snapshot["metadata"]["annotations"][gitops.ARGOCD_SYNC_WAVE] == "0"
    assert item.objects[0] is not None and item.objects[0]["kind"] == "VolumeSnapshot"


def test_each_run_restores_mounts_and_releases_its_own_claim(tmp_path: Path) -> None:
    spec = next(o for o in _render(tmp_path).objects if o["kind"] == "PipelineVersion")["spec"]
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    create = tasks["createpvc"]
    inputs = create["inputs"]["parameters"]
    assert inputs["pvc_name"]["runtimeValue"]["constant"] == "kfg-data-{{$.pipeline_job_uuid}}"
    assert inputs["data_source"]["runtimeValue"]["constant"] == {
        "apiGroup": "snapshot.storage.k8s.io",
        "kind": "VolumeSnapshot",
        "name": "wine-data-2026-11-01",
    }
    assert inputs["size"]["runtimeValue"]["constant"] == "20Gi"
    assert inputs["access_modes"]["runtimeValue"]["constant"] == ["ReadOnlyMany"]
    assert create["cachingOptions"] == {}
    delete = tasks["deletepvc"]
    assert sorted(delete["dependentTasks"]) == ["load", "train"]
    assert delete["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert delete["inputs"]["parameters"]["pvc_name"]["runtimeValue"]["constant"] == (
        "kfg-data-{{$.pipeline_job_uuid}}"
    )
    executors = spec["platformSpec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    load_mounts = executors["exec-load"]["pvcMount"]
    assert [m["mountPath"] for m in load_mounts] == ["/data"]
    assert load_mounts[0]["taskOutputParameter"]["producerTask"] == "createpvc"
    train_mounts = {m["mountPath"]: m for m in executors["exec-train"]["pvcMount"]}
    assert train_mounts["/scratch"]["constant"] == "scratch"
    assert "pvcMount" not in executors.get("exec-report", {})


def test_snapshot_without_size_warns(tmp_path: Path) -> None:
    result = make(
        tmp_path,
        [("code", "x = 1")],
        [{"name": "a", "cells": [1], "volumes": ["d"]}],
        volumes=[{"name": "d", "claim": "c", "mountPath": "/d", "snapshot": {"version": "v1"}}],
    )
    assert result.ok
    assert any("needs a size at least the snapshot's restoreSize" in m for m in messages(result))


def test_snapshot_after_a_step_snapshots_its_writable_volumes(tmp_path: Path) -> None:
    result = make(
        tmp_path,
        [("code", "x = 1"), ("code", "y = x")],
        [
            {"name": "prepare", "cells": [1], "volumes": ["work", "data"], "snapshot": "after"},
            {"name": "train", "cells": [2], "volumes": ["work"]},
        ],
        volumes=[
            {"name": "work", "claim": "workspace", "mountPath": "/work"},
            {"name": "data", "claim": "raw", "mountPath": "/raw", "snapshot": {"version": "v1"}},
        ],
    )
    assert result.ok and result.pipeline and result.flow and result.notebook, messages(result)
    item = render(result.pipeline, result.flow, result.notebook, tmp_path)
    spec = next(o for o in item.objects if o["kind"] == "PipelineVersion")["spec"]
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    [name] = [t for t in tasks if t.startswith("take-volume-snapshot")]
    snapshot = tasks[name]
    assert snapshot["dependentTasks"] == ["prepare"]
    assert snapshot["taskInfo"]["name"] == "snapshot-prepare-work"
    parameters = snapshot["inputs"]["parameters"]
    assert parameters["claim"]["runtimeValue"]["constant"] == "workspace"
    assert parameters["name"]["runtimeValue"]["constant"] == (
        "workspace-prepare-{{$.pipeline_job_uuid}}"
    )
    assert snapshot["cachingOptions"] == {}
    component = spec["pipelineSpec"]["components"][snapshot["componentRef"]["name"]]
    assert "Output" in component["outputDefinitions"]["parameters"]  # the snapshot's name
    executor = spec["pipelineSpec"]["deploymentSpec"]["executors"][component["executorLabel"]][
        "container"
    ]
    assert "'kubernetes==30.1.0'" in executor["command"][2]


def test_snapshot_after_needs_a_writable_volume(tmp_path: Path) -> None:
    result = make(
        tmp_path,
        [("code", "x = 1")],
        [{"name": "a", "cells": [1], "volumes": ["d"], "snapshot": "after"}],
        volumes=[{"name": "d", "claim": "c", "mountPath": "/d", "readOnly": True}],
    )
    assert not result.ok
    assert any("`snapshot: after` needs a writable volume" in m for m in messages(result))


def test_snapshot_class_is_rendered_with_retain_and_used(tmp_path: Path) -> None:
    volumes = [
        {"name": "data", "claim": "raw", "mountPath": "/data", "snapshot": {"version": "v1"}},
        {
            "name": "data2",
            "claim": "raw2",
            "mountPath": "/data2",
            "snapshot": {"version": "v1", "className": "their-class"},
        },
    ]
    result = make(
        tmp_path,
        [("code", "x = 1")],
        [{"name": "a", "cells": [1]}],
        volumes=volumes,
        snapshotClass={"driver": "hostpath.csi.k8s.io", "parameters": {"tier": "fast"}},
    )
    assert result.ok and result.pipeline and result.flow and result.notebook, messages(result)
    item = render(result.pipeline, result.flow, result.notebook, tmp_path)
    documents = [d for d in yaml.safe_load_all(item.package.files[SNAPSHOTS_FILE]) if d]
    for document in documents:
        crds.validate(document)
    snapshot_class, first, second = documents
    assert snapshot_class["kind"] == "VolumeSnapshotClass"
    assert snapshot_class["metadata"]["name"] == "p-snapshots"
    assert snapshot_class["deletionPolicy"] == "Retain"
    assert gitops.is_kept(snapshot_class)
    assert first["spec"]["volumeSnapshotClassName"] == "p-snapshots"
    assert second["spec"]["volumeSnapshotClassName"] == "their-class"
