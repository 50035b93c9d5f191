"""The component that snapshots a step's workspace volume after the step (`snapshot: after`).

kfp builds a lightweight component from this function's source, so it imports what it uses
inside its body and depends only on the Kubernetes client, which the component installs.
The pipeline's ServiceAccount needs `create` and `get` on `volumesnapshots` in its namespace.
"""

# No `from __future__ import annotations`: kfp reads this function's annotations as types.


def take_volume_snapshot(
    claim: str, name: str, run_id: str, class_name: str, timeout_seconds: int, poll_seconds: int
) -> str:
    """Snapshot `claim` as `<name>-<run_id>`, wait until it is ready, and return its name.

    The run's id comes as an input of its own because the KFP driver resolves its
    `{{$.pipeline_job_uuid}}` placeholder only as a whole value, never inside a string.
    """
    import time

    from kubernetes import client, config

    name = f"{name}-{run_id}" if run_id else name

    config.load_incluster_config()
    with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as handle:
        namespace = handle.read().strip()
    api = client.CustomObjectsApi()
    spec: dict[str, object] = {"source": {"persistentVolumeClaimName": claim}}
    if class_name:
        spec["volumeSnapshotClassName"] = class_name
    body = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "kfg"}},
        "spec": spec,
    }
    api.create_namespaced_custom_object(
        "snapshot.storage.k8s.io", "v1", namespace, "volumesnapshots", body
    )
    deadline = time.monotonic() + timeout_seconds
    while True:
        current = api.get_namespaced_custom_object(
            "snapshot.storage.k8s.io", "v1", namespace, "volumesnapshots", name
        )
        status = current.get("status") or {}
        if status.get("readyToUse"):
            print(f"kfg: snapshot {name} of {claim} is ready ({status.get('restoreSize')})")
            return name
        error = status.get("error") or {}
        if error.get("message"):
            raise RuntimeError(f"snapshot {name} of {claim} failed: {error['message']}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"snapshot {name} of {claim} not ready after {timeout_seconds} s")
        time.sleep(poll_seconds)
