"""Versioned data: VolumeSnapshots, and the claim each run restores, mounts and releases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kfg.kube.names import is_dns_label
from kfg.render import gitops
from kfg.render.build import SNAPSHOTS_FILE, Rendered, render
from tests import crds
from tests.pipelines import make, messages

VOLUMES: list[dict[str, Any]] = [
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


def _spec(item: Rendered) -> dict[str, Any]:
    spec: dict[str, Any] = next(o for o in item.objects if o["kind"] == "PipelineVersion")["spec"]
    return spec


def _tasks_by_display_name(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    return {t["taskInfo"]["name"]: {**t, "key": k} for k, t in tasks.items()}


def _constants(task: dict[str, Any]) -> dict[str, Any]:
    return {k: v["runtimeValue"]["constant"] for k, v in task["inputs"]["parameters"].items()}


RUN_ID = "0b6a3c8e-6a4f-4a0e-9a51-1f0c2d3e4f50"


def driver_resolves(value: Any) -> Any:
    """A constant task input as the KFP 2.17.0 driver passes it to the component.

    kubeflow/pipelines 2.17.0 backend/src/v2/driver/resolve.go, resolveInputParameter:
    `{{$.pipeline_job_uuid}}` and its siblings are replaced only when they are the whole
    value (`switch valStr`); inside a longer string they stay as written.
    """
    return RUN_ID if value == "{{$.pipeline_job_uuid}}" else value


def test_a_writable_volume_is_restored_per_run_with_a_valid_name(tmp_path: Path) -> None:
    item = _render(tmp_path)
    spec = _spec(item)
    tasks = _tasks_by_display_name(spec)
    restore = _constants(tasks["restore-data"])
    assert restore == {
        "name": "kfg-data",
        "run_id": "{{$.pipeline_job_uuid}}",
        "snapshot": "wine-data-2026-11-01",
        "size": "20Gi",
        "access_mode": "ReadOnlyMany",
        "storage_class": "",  # the cluster's default StorageClass
    }
    assert tasks["restore-data"]["cachingOptions"] == {}
    # What the component names the claim once the driver resolved its inputs: a DNS label,
    # as the driver names the pod's volume after it (backend/src/v2/driver/k8s.go).
    resolved = {k: driver_resolves(v) for k, v in restore.items()}
    claim = f"{resolved['name']}-{resolved['run_id']}"
    assert claim == f"kfg-data-{RUN_ID}" and is_dns_label(claim)
    release = tasks["release-data"]
    assert {k: driver_resolves(v) for k, v in _constants(release).items()} == {
        "name": "kfg-data",
        "run_id": RUN_ID,
    }
    assert sorted(release["dependentTasks"]) == ["load", "train"]
    assert release["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert release["cachingOptions"] == {}
    executors = spec["platformSpec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    load_mounts = executors["exec-load"]["pvcMount"]
    assert [m["mountPath"] for m in load_mounts] == ["/data"]
    produced = load_mounts[0]["pvcNameParameter"]["taskOutputParameter"]
    assert produced == {
        "producerTask": tasks["restore-data"]["key"],
        "outputParameterKey": "Output",
    }
    train_mounts = {m["mountPath"]: m for m in executors["exec-train"]["pvcMount"]}
    assert train_mounts["/scratch"]["constant"] == "scratch"
    assert "pvcMount" not in executors.get("exec-report", {})


def test_a_long_volume_name_still_gives_a_claim_name_that_is_a_label() -> None:
    from kfg.config.model import Snapshot, Volume
    from kfg.render.snapshots import restored_claim

    volume = Volume("v" * 63, "c", "/d", snapshot=Snapshot("v1"))
    name, run_id = restored_claim(volume)
    assert is_dns_label(f"{name}-{driver_resolves(run_id)}")
    shared_name, shared_run = restored_claim(Volume("v" * 63, "c", "/d", True, Snapshot("v1")))
    assert shared_run == "" and is_dns_label(shared_name)


def test_a_read_only_volume_shares_one_claim_per_data_version(tmp_path: Path) -> None:
    volumes = [{**VOLUMES[0], "readOnly": True}, VOLUMES[1]]
    tasks = _tasks_by_display_name(_spec(_render(tmp_path, volumes)))
    restore = _constants(tasks["restore-data"])
    assert restore["run_id"] == "" and is_dns_label(restore["name"])
    assert restore["name"].startswith("kfg-data-")
    assert "release-data" not in tasks  # later runs reuse the claim
    newer = [{**volumes[0], "snapshot": {**VOLUMES[0]["snapshot"], "version": "2026-12-01"}}]
    again = _constants(
        _tasks_by_display_name(_spec(_render(tmp_path, newer + VOLUMES[1:])))["restore-data"]
    )
    assert again["snapshot"] == "wine-data-2026-12-01" and again["name"] != restore["name"]


def test_a_named_storage_class_reaches_the_restore(tmp_path: Path) -> None:
    snapshot = {**VOLUMES[0]["snapshot"], "storageClass": "csi-fast"}
    volumes = [{**VOLUMES[0], "snapshot": snapshot}, VOLUMES[1]]
    tasks = _tasks_by_display_name(_spec(_render(tmp_path, volumes)))
    assert _constants(tasks["restore-data"])["storage_class"] == "csi-fast"


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
    # The run's id is an input of its own, so the driver resolves it (resolve.go).
    assert parameters["name"]["runtimeValue"]["constant"] == "workspace-prepare"
    assert parameters["run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"
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
