"""kfg writes the Kubernetes platform config itself; kfp-kubernetes must agree with it."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from kfp import dsl, kubernetes

from kfg.config.model import Step
from kfg.render.platform import RUN_AS_USER, kubernetes_config
from kfg.render.runtime_volume import MOUNT_PATH, config_map_name
from tests.pipelines import make


def _with_kfp_kubernetes(
    step: Step, claims: dict[str, tuple[str, str]], runtime_map: str | None = None
) -> dict[str, Any]:
    """The same settings, made one call at a time with kfp-kubernetes."""
    captured: dict[str, Any] = {}

    def body():  # type: ignore[no-untyped-def]  # kfp reads the return annotation
        task = component()
        by_secret: dict[str, dict[str, str]] = {}
        for secret in step.secrets:
            by_secret.setdefault(secret.secret, {})[secret.key] = secret.env
        for name, keys in sorted(by_secret.items()):
            kubernetes.use_secret_as_env(task, name, secret_key_to_env=keys)
        for volume in step.volumes:
            claim, path = claims[volume]
            kubernetes.mount_pvc(task, pvc_name=claim, mount_path=path)
        if runtime_map is not None:
            kubernetes.use_config_map_as_volume(
                task, runtime_map, mount_path=MOUNT_PATH, optional=True
            )
        for key, value in sorted(step.node_selector.items()):
            kubernetes.add_node_selector(task, key, value)
        for key, value in sorted(step.labels.items()):
            kubernetes.add_pod_label(task, key, value)
        for key, value in sorted(step.annotations.items()):
            kubernetes.add_pod_annotation(task, key, value)
        if step.timeout_seconds is not None:
            kubernetes.set_timeout(task, int(step.timeout_seconds))
        for toleration in step.tolerations:
            kubernetes.add_toleration(
                task,
                key=toleration.get("key"),
                operator=toleration.get("operator"),
                value=toleration.get("value"),
                effect=toleration.get("effect"),
                toleration_seconds=toleration.get("tolerationSeconds"),
            )
        kubernetes.set_security_context(
            task, run_as_user=RUN_AS_USER, run_as_group=RUN_AS_USER, run_as_non_root=True
        )
        captured.update(task.platform_config["kubernetes"])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dsl.pipeline(name="p")(body)
    return captured


@dsl.component(base_image="python:3.11-slim")
def component():  # type: ignore[no-untyped-def]  # kfp reads annotations; this module's are strings
    pass


def test_platform_config_matches_kfp_kubernetes(tmp_path: Path) -> None:
    step = {
        "name": "train",
        "cells": [1],
        "nodeSelector": {"pool": "gpu", "zone": "a"},
        "tolerations": [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
            {
                "key": "spot",
                "operator": "Equal",
                "value": "true",
                "effect": "NoExecute",
                "tolerationSeconds": 30,
            },
        ],
        "secrets": [
            {"secret": "s3", "key": "AWS_KEY"},
            {"secret": "s3", "key": "AWS_SECRET", "env": "SECRET"},
            {"secret": "db", "key": "url", "env": "DB_URL"},
        ],
        "labels": {"team": "ml"},
        "annotations": {"owner": "me"},
        "timeout": "45m",
        "volumes": ["data"],
    }
    result = make(
        tmp_path,
        [("code", "x = 1")],
        [step],
        volumes=[{"name": "data", "claim": "datasets", "mountPath": "/data"}],
    )
    assert result.pipeline is not None, result.diagnostics
    train = result.pipeline.steps[0]
    ours = kubernetes_config(train, result.pipeline)
    expected = _with_kfp_kubernetes(
        train, {"data": ("datasets", "/data")}, config_map_name(result.pipeline.name)
    )
    assert ours == expected
