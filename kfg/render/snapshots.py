"""Versioned input data: CSI VolumeSnapshots, and the claim every run restores from one.

A volume with `snapshot: {version: V}` gets a VolumeSnapshot `<claim>-<V>` (kept from
pruning, synced first). Each run restores it into a claim of its own (named after the
run, caching off, so two runs never share one), the steps that use the volume mount that
claim, and a final task deletes it even when a step failed. Every run and every trial
therefore reads exactly the bytes of that data version.
"""

from __future__ import annotations

from typing import Any

from kfg.config.model import Pipeline, Volume
from kfg.names import restored_claim, snapshot_name
from kfg.render import gitops

API_VERSION = "snapshot.storage.k8s.io/v1"
# kfp's placeholder for the run's id, resolved by the KFP driver for task inputs.
RUN_ID_PLACEHOLDER = "{{$.pipeline_job_uuid}}"


def snapshotted(pipeline: Pipeline) -> list[Volume]:
    """Volumes with a snapshot that at least one step mounts."""
    used = {name for step in pipeline.steps for name in step.volumes}
    return [v for v in pipeline.volumes if v.snapshot is not None and v.name in used]


def volume_snapshots(pipeline: Pipeline, labels: dict[str, str]) -> list[dict[str, Any]]:
    """The VolumeSnapshotClass kale.yaml asks for, if any, then one VolumeSnapshot per version."""
    objects = []
    chosen = pipeline.snapshot_class
    if chosen is not None:
        snapshot_class: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": "VolumeSnapshotClass",
            "metadata": {"name": chosen.name, "labels": dict(labels)},
            "driver": chosen.driver,
            "deletionPolicy": chosen.deletion_policy,
        }
        if chosen.parameters:
            snapshot_class["parameters"] = dict(sorted(chosen.parameters.items()))
        gitops.keep(snapshot_class["metadata"], wave=gitops.WAVE_SNAPSHOT)
        objects.append(snapshot_class)
    for volume in pipeline.volumes:
        snapshot = volume.snapshot
        if snapshot is None:
            continue
        metadata: dict[str, Any] = {"name": snapshot_name(volume.claim, snapshot.version)}
        if pipeline.namespace:
            metadata["namespace"] = pipeline.namespace
        metadata["labels"] = dict(labels)
        gitops.keep(metadata, wave=gitops.WAVE_SNAPSHOT)
        spec: dict[str, Any] = {"source": {"persistentVolumeClaimName": volume.claim}}
        class_name = snapshot.class_name or (chosen.name if chosen else None)
        if class_name:
            spec["volumeSnapshotClassName"] = class_name
        objects.append(
            {
                "apiVersion": API_VERSION,
                "kind": "VolumeSnapshot",
                "metadata": metadata,
                "spec": spec,
            }
        )
    return objects


def restore(volume: Volume) -> Any:
    """The task creating this run's claim from the volume's snapshot (kfp-kubernetes)."""
    from kfp import kubernetes

    snapshot = volume.snapshot
    assert snapshot is not None
    options: dict[str, Any] = {}
    if snapshot.storage_class:
        options["storage_class_name"] = snapshot.storage_class
    task = kubernetes.CreatePVC(
        pvc_name=restored_claim(volume.name, RUN_ID_PLACEHOLDER),
        access_modes=[snapshot.access_mode],
        size=snapshot.size,
        data_source={
            "apiGroup": "snapshot.storage.k8s.io",
            "kind": "VolumeSnapshot",
            "name": snapshot_name(volume.claim, snapshot.version),
        },
        **options,
    )
    task.set_caching_options(False)
    task.set_display_name(f"restore-{volume.name}")
    return task


def mount(task: Any, volume: Volume, created: Any) -> None:
    from kfp import kubernetes

    task.after(created)
    kubernetes.mount_pvc(task, pvc_name=created.outputs["name"], mount_path=volume.mount_path)


def release(volume: Volume, users: list[Any]) -> Any:
    """The task deleting this run's claim after its users finish, whether or not they failed."""
    from kfp import kubernetes

    task = kubernetes.DeletePVC(pvc_name=restored_claim(volume.name, RUN_ID_PLACEHOLDER))
    task.after(*users)
    task.ignore_upstream_failure()
    task.set_caching_options(False)
    task.set_display_name(f"release-{volume.name}")
    return task


# The Kubernetes client the snapshot component installs (the version kfg is tested with).
KUBERNETES_CLIENT = "kubernetes==30.1.0"
SNAPSHOT_TIMEOUT_SECONDS = 1800


def after_step(
    task: Any, step: str, volumes: list[Volume], image: str, class_name: str = ""
) -> list[Any]:
    """Tasks snapshotting the step's writable volumes once it succeeded."""
    from kfp import dsl

    from kfg.runtime.snapshot import take_volume_snapshot

    component = dsl.component(
        take_volume_snapshot, base_image=image, packages_to_install=[KUBERNETES_CLIENT]
    )
    tasks = []
    for volume in volumes:
        snapshot = component(
            claim=volume.claim,
            name=f"{volume.claim}-{step}-{RUN_ID_PLACEHOLDER}",
            class_name=class_name,
            timeout_seconds=SNAPSHOT_TIMEOUT_SECONDS,
            poll_seconds=5,
        )
        snapshot.after(task)
        snapshot.set_caching_options(False)
        snapshot.set_display_name(f"snapshot-{step}-{volume.name}")
        tasks.append(snapshot)
    return tasks


def writable(pipeline: Pipeline, names: tuple[str, ...]) -> list[Volume]:
    volumes = {v.name: v for v in pipeline.volumes}
    return [volumes[n] for n in names if volumes[n].snapshot is None and not volumes[n].read_only]
