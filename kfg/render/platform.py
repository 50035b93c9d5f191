"""The Kubernetes part of a task's platform spec: scheduling, secrets, pod metadata, security.

kfp-kubernetes builds this same structure (the JSON form of its KubernetesExecutorConfig
proto) one setting at a time, but importing it imports the whole Kubernetes API client,
which would triple the start-up time of `kfg render`. kfg writes the structure directly;
a test builds the same settings with kfp-kubernetes and checks that both agree, and the
render tests parse every rendered config with kfp-kubernetes' proto.
"""

from __future__ import annotations

from typing import Any

from kfg.config.model import Pipeline, Step
from kfg.render import runtime_volume

# Steps run as this user unless the image says otherwise; kfp's compiler adds the rest of
# the restricted profile (no privilege escalation, all capabilities dropped, seccomp).
RUN_AS_USER = 1000


def _runtime_constant(value: str) -> dict[str, Any]:
    return {"runtimeValue": {"constant": value}}


def kubernetes_config(step: Step, pipeline: Pipeline) -> dict[str, Any]:
    """The `platform_config["kubernetes"]` of the step's task."""
    config: dict[str, Any] = {}
    by_secret: dict[str, dict[str, str]] = {}
    for secret in step.secrets:
        by_secret.setdefault(secret.secret, {})[secret.key] = secret.env
    if by_secret:
        config["secretAsEnv"] = [
            {
                "secretName": name,
                "keyToEnv": [{"secretKey": k, "envVar": v} for k, v in keys.items()],
                "optional": False,
                "secretNameParameter": _runtime_constant(name),
            }
            for name, keys in sorted(by_secret.items())
        ]
    volumes = {v.name: v for v in pipeline.volumes}
    # Snapshotted volumes are mounted from the claim restored from the snapshot (snapshots.py).
    mounts = [volumes[name] for name in step.volumes if volumes[name].snapshot is None]
    if mounts:
        config["pvcMount"] = [
            {
                "constant": volume.claim,
                "mountPath": volume.mount_path,
                "pvcNameParameter": _runtime_constant(volume.claim),
            }
            for volume in mounts
        ]
    if step.runtime == "mounted":
        config["configMapAsVolume"] = [runtime_volume.volume(pipeline.name)]
    if step.node_selector:
        config["nodeSelector"] = {"labels": dict(sorted(step.node_selector.items()))}
    metadata: dict[str, Any] = {}
    if step.labels:
        metadata["labels"] = dict(sorted(step.labels.items()))
    if step.annotations:
        metadata["annotations"] = dict(sorted(step.annotations.items()))
    if metadata:
        config["podMetadata"] = metadata
    if step.timeout_seconds is not None:
        config["activeDeadlineSeconds"] = str(max(1, int(step.timeout_seconds)))
    if step.tolerations:
        config["tolerations"] = [_toleration(t) for t in step.tolerations]
    config["securityContext"] = {
        "runAsUser": str(RUN_AS_USER),
        "runAsGroup": str(RUN_AS_USER),
        "runAsNonRoot": True,
    }
    return config


def _toleration(raw: dict[str, Any]) -> dict[str, Any]:
    toleration: dict[str, Any] = {}
    for key in ("key", "operator", "value", "effect"):
        if raw.get(key):
            toleration[key] = raw[key]
    if raw.get("tolerationSeconds") is not None:
        toleration["tolerationSeconds"] = str(raw["tolerationSeconds"])
    return toleration
