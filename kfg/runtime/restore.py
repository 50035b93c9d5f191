"""The component that restores a claim from a VolumeSnapshot for the steps of a run.

kfp's own `CreatePVC` (kfp-kubernetes 2.17.0) cannot do what kfg needs with the KFP 2.17.0
driver (backend/src/v2/driver/k8s.go, createPVC): it always sets `storageClassName`, to
`standard` when none is given (and the SDK refuses `None`), so the claim never gets the
cluster's default class; and its names are random, which would put a new claim name into
the cache key of every step that mounts it. This component creates the claim itself:

- `storage_class` empty leaves `storageClassName` out, so the cluster's default applies;
- `run_id` empty names the claim `name` exactly: one claim per data version, which later
  runs find and reuse (kfg does this for read-only volumes, so steps reading them keep the
  same cache key across runs); otherwise the claim is `<name>-<run_id>`, a run's own.

kfp builds a lightweight component from this function's source, so it imports what it uses
inside its body and depends only on the Kubernetes client, which the component installs.
The pipeline's ServiceAccount needs `create` and `get` on `persistentvolumeclaims`.
"""

# No `from __future__ import annotations`: kfp reads this function's annotations as types.


def restore_claim(
    name: str, run_id: str, snapshot: str, size: str, access_mode: str, storage_class: str
) -> str:
    """Create the claim (or find the one an earlier run created) and return its name."""
    from kubernetes import client, config

    claim = f"{name}-{run_id}" if run_id else name
    config.load_incluster_config()
    with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as handle:
        namespace = handle.read().strip()
    spec: dict[str, object] = {
        "accessModes": [access_mode],
        "resources": {"requests": {"storage": size}},
        "dataSource": {
            "apiGroup": "snapshot.storage.k8s.io",
            "kind": "VolumeSnapshot",
            "name": snapshot,
        },
    }
    if storage_class:
        spec["storageClassName"] = storage_class
    body = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": claim,
            "labels": {"app.kubernetes.io/managed-by": "kfg"},
            "annotations": {"kfg.dev/snapshot": snapshot},
        },
        "spec": spec,
    }
    api = client.CoreV1Api()
    try:
        api.create_namespaced_persistent_volume_claim(namespace, body)
        print(f"kfg: restoring snapshot {snapshot} into claim {claim}")
    except client.ApiException as exc:
        if exc.status != 409:  # anything but AlreadyExists
            raise
        existing = api.read_namespaced_persistent_volume_claim(claim, namespace)
        if existing.metadata.deletion_timestamp is not None:
            raise RuntimeError(
                f"claim {claim} is being deleted; run again once it is gone"
            ) from exc
        print(f"kfg: claim {claim} already holds snapshot {snapshot}; reusing it")
    return claim


def release_claim(name: str, run_id: str) -> str:
    """Delete the claim `restore_claim` created for this run; nothing if there is none.

    kfp's `DeletePVC` would need the restore task's output, and kfp 2.17.0 lets a task that
    must run after failed steps (`ignore_upstream_failure`) take no upstream output
    without a default; the name is therefore rebuilt from the same inputs.
    """
    from kubernetes import client, config

    claim = f"{name}-{run_id}"
    config.load_incluster_config()
    with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as handle:
        namespace = handle.read().strip()
    try:
        client.CoreV1Api().delete_namespaced_persistent_volume_claim(claim, namespace)
        print(f"kfg: deleted claim {claim}")
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        print(f"kfg: claim {claim} does not exist; nothing to delete")
    return claim
