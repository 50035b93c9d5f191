"""Versioned input data: CSI VolumeSnapshots, and the claims runs restore from them.

A volume with `snapshot: {version: V}` gets a VolumeSnapshot `<claim>-<V>` (kept from
pruning, synced first). A task at the start of each run restores it into a claim that the
steps using the volume mount, so every run and every trial reads exactly the bytes of that
data version. Which claim depends on whether steps may write to it:

- `readOnly: true`: one claim per data version (its name is a hash of the snapshot and the
  claim's settings), created by the first run and reused by the next. KFP's cache key holds
  the names of the claims a step mounts (kubeflow/pipelines 2.17.0
  backend/src/v2/cacheutils/cache.go, GenerateCacheKey, PvcNames, fed the resolved names by
  backend/src/v2/driver/container.go), so a constant name keeps steps that read the data
  cache hits from run to run, and from trial to trial.
- writable: a claim of the run's own, `kfg-<volume>-<run id>`, deleted by a final task even
  when a step failed. Runs cannot see each other's writes, at a price: the steps mounting
  it, and every step after them, run again in every run.

Names that carry the run's id get it from KFP's `{{$.pipeline_job_uuid}}` placeholder as a
component input of its own, then join it inside the component: the KFP 2.17.0 driver
replaces a placeholder only when it is the whole input value
(backend/src/v2/driver/resolve.go, resolveInputParameter).
"""

from __future__ import annotations

from typing import Any

from kfg.config.model import Pipeline, Volume
from kfg.kube.names import (
    content_hash,
    run_claim_prefix,
    run_snapshot_prefix,
    shared_claim,
    snapshot_name,
)
from kfg.render import gitops

API_VERSION = "snapshot.storage.k8s.io/v1"
# kfp's placeholder for the run's id, which the KFP driver resolves only as a whole value.
RUN_ID_PLACEHOLDER = "{{$.pipeline_job_uuid}}"
# The Kubernetes client the snapshot and restore components install (the version kfg is
# tested with).
KUBERNETES_CLIENT = "kubernetes==30.1.0"


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


def shared(volume: Volume) -> bool:
    """Whether runs share one restored claim per data version: only when no step writes."""
    return volume.read_only


def restored_claim(volume: Volume) -> tuple[str, str]:
    """The `name` and `run_id` inputs of the restore task: the claim, or its prefix."""
    snapshot = volume.snapshot
    assert snapshot is not None
    if shared(volume):
        settings = {
            "snapshot": snapshot_name(volume.claim, snapshot.version),
            "size": snapshot.size,
            "accessMode": snapshot.access_mode,
            "storageClass": snapshot.storage_class or "",
        }
        return shared_claim(volume.name, content_hash(settings)), ""
    return run_claim_prefix(volume.name), RUN_ID_PLACEHOLDER


def restore(volume: Volume, image: str) -> Any:
    """The task creating (or, when shared, finding) the claim the run's steps mount."""
    from kfp import dsl

    from kfg.runtime.restore import restore_claim

    snapshot = volume.snapshot
    assert snapshot is not None
    component = dsl.component(
        restore_claim, base_image=image, packages_to_install=[KUBERNETES_CLIENT]
    )
    name, run_id = restored_claim(volume)
    task = component(
        name=name,
        run_id=run_id,
        snapshot=snapshot_name(volume.claim, snapshot.version),
        size=snapshot.size,
        access_mode=snapshot.access_mode,
        storage_class=snapshot.storage_class or "",
    )
    task.set_caching_options(False)
    task.set_display_name(f"restore-{volume.name}")
    return task


def mount(task: Any, volume: Volume, created: Any) -> None:
    """Mount the claim by the name the restore task returned, as the driver resolves it."""
    from kfp import kubernetes

    task.after(created)
    kubernetes.mount_pvc(task, pvc_name=created.output, mount_path=volume.mount_path)


def release(volume: Volume, image: str, users: list[Any]) -> Any | None:
    """The task deleting the run's own claim after its users finish, even if they failed."""
    from kfp import dsl

    from kfg.runtime.restore import release_claim

    if shared(volume):
        return None  # later runs reuse it
    component = dsl.component(
        release_claim, base_image=image, packages_to_install=[KUBERNETES_CLIENT]
    )
    name, run_id = restored_claim(volume)
    task = component(name=name, run_id=run_id)
    task.after(*users)
    task.ignore_upstream_failure()
    task.set_caching_options(False)
    task.set_display_name(f"release-{volume.name}")
    return task


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
            name=run_snapshot_prefix(volume.claim, step),
            run_id=RUN_ID_PLACEHOLDER,
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
