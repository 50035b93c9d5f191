"""Pod security: the pods kfg's Jobs start pass the `restricted` Pod Security Standard.

The PodSecurity admission plugin enforces a namespace's `pod-security.kubernetes.io/enforce`
level on Pods (for Jobs it only warns), so each pod template kfg renders (Katib's trial
Job, the run-on-sync Job) is created as a Pod with server-side dry-run in a namespace that
enforces `restricted`: the real plugin decides, and nothing is persisted.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.e2e.cluster import ApiError, ControlPlane
from tests.e2e.conftest import Repository

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def pod_templates(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(where, pod template) for every pod a rendered object makes the cluster start."""
    found = []
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "Job":
            found.append((name, obj["spec"]["template"]))
        elif obj["kind"] == "CronJob":
            found.append((f"{name} Job", obj["spec"]["jobTemplate"]["spec"]["template"]))
        elif obj["kind"] == "Experiment":
            job = obj["spec"]["trialTemplate"]["trialSpec"]
            assert job["kind"] == "Job"
            found.append((f"{name} trial Job", job["spec"]["template"]))
    return found


def as_pod(template: dict[str, Any], name: str) -> dict[str, Any]:
    """The Pod a Job controller creates from the template (Katib first substitutes the
    trial parameters, which do not affect pod security)."""
    text = re.sub(r"\$\{trialParameters\.[^}]+\}", "1", json.dumps(template))
    spec: dict[str, Any] = json.loads(text)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": spec.get("metadata", {}).get("labels", {})},
        "spec": spec["spec"],
    }


@pytest.mark.parametrize("package", ["digits-mlp", "full-pipeline", "wine-scheduled"])
def test_every_pod_kfg_starts_passes_the_restricted_standard(
    package: str, control_plane: ControlPlane, rendered: Repository
) -> None:
    api = control_plane.api
    namespace = f"pss-{package}"
    api.namespace(namespace, RESTRICTED)
    objects = rendered.objects(package)
    for obj in objects:
        if obj["kind"] == "ServiceAccount":  # the pods run as it; admission looks it up
            api.apply(obj, namespace=namespace)
    templates = pod_templates(objects)
    assert templates, "the package starts no pods"
    refused = []
    for index, (where, template) in enumerate(templates):
        try:
            api.create(as_pod(template, f"pod-{index}"), namespace=namespace, dry_run=True)
        except ApiError as exc:
            refused.append(f"{where}: {exc}")
    assert not refused, "\n".join(refused)


def test_a_privileged_pod_is_refused(control_plane: ControlPlane) -> None:
    """The namespace really enforces the standard: a pod without kfg's settings fails."""
    api = control_plane.api
    api.namespace("pss-negative", RESTRICTED)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "plain"},
        "spec": {"containers": [{"name": "c", "image": "python:3.11-slim"}]},
    }
    with pytest.raises(ApiError, match='violates PodSecurity "restricted:latest"'):
        api.create(pod, namespace="pss-negative", dry_run=True)
