"""A loopback Kubernetes API serving the two pod operations the launcher may use.

`GET /api/v1/namespaces/{ns}/pods` (list, with an equality `labelSelector`) and
`GET /api/v1/namespaces/{ns}/pods/{name}/log` (`container`), answered as kube-apiserver
does (PodList, text/plain logs, `Status` objects for errors); 404 for everything else.
With `token`, a request without that bearer token is 401; with `allowed`, a request whose
resource and verb the Role does not grant is 403, as the RBAC authorizer would answer.

The pods are what KFP 2.17.0 creates for a run: every pod labelled `pipeline/runid`
(`backend/src/apiserver/template/v2_template.go`, SetPodMetadataLabels), drivers and
executors told apart by the `pipelines.kubeflow.org/runtime-role` annotation
(`backend/src/v2/compiler/argocompiler/common.go`), named as Argo's v2 pod names are
(`<workflow>-<template>-<node hash>`, `RetrievePodName` in
`backend/src/common/util/workflow.go`), the step's code in container `main`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

from tests.launcher.loopback import Loopback, Recorded, Reply

PODS = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods$")
LOG = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)/log$")


@dataclass(frozen=True)
class Step:
    """One step of a fake run: its name, what its `main` container printed, and whether
    KFP took it from its cache (then only its driver pod exists)."""

    name: str
    log: str = ""
    cached: bool = False


def status(code: int, reason: str, message: str) -> Reply:
    return Reply(
        code,
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        },
    )


class FakeKube(Loopback):
    def __init__(self, token: str | None = None, allowed: set[tuple[str, str]] | None = None):
        super().__init__()
        self.token = token
        self.allowed = allowed
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], str] = {}
        self._created = 0

    def __enter__(self) -> FakeKube:
        super().__enter__()
        return self

    def add_pod(
        self,
        namespace: str,
        name: str,
        labels: dict[str, str],
        annotations: dict[str, str],
        log: str,
        phase: str = "Succeeded",
    ) -> None:
        self._created += 1
        self.pods[(namespace, name)] = {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "annotations": annotations,
                "creationTimestamp": f"2026-11-22T10:{self._created:02d}:00Z",
            },
            "spec": {"containers": [{"name": "wait"}, {"name": "main"}]},
            "status": {"phase": phase},
        }
        self.logs[(namespace, name)] = log

    def add_run(self, run_id: str, namespace: str, steps: list[Step]) -> None:
        """The pods KFP 2.17.0 leaves behind after run `run_id` of these steps succeeded."""
        workflow = f"digits-mlp-{run_id[:5]}"
        labels = {
            "pipeline/runid": run_id,
            "pipelines.kubeflow.org/v2_component": "true",
            "workflows.argoproj.io/workflow": workflow,
        }
        for index, step in enumerate(steps):
            node = f"{workflow}.root.{step.name}"
            self.add_pod(
                namespace,
                f"{workflow}-system-container-driver-{1000 + index}",
                labels,
                {
                    "pipelines.kubeflow.org/runtime-role": "driver",
                    "workflows.argoproj.io/node-name": f"{node}-driver",
                },
                f"I1122 10:00:00 driver.go:250] cached decision: {step.cached}\n",
            )
            if not step.cached:
                self.add_pod(
                    namespace,
                    f"{workflow}-system-container-impl-{2000 + index}",
                    labels,
                    {
                        "pipelines.kubeflow.org/runtime-role": "launcher",
                        "workflows.argoproj.io/node-name": f"{node}.executor",
                    },
                    step.log,
                )

    def delete_pods(self) -> None:
        """What Argo's podGC or the Workflow's deletion leaves: nothing."""
        self.pods.clear()
        self.logs.clear()

    def kubeconfig(self, path: Path, namespace: str) -> Path:
        user: dict[str, Any] = {"token": self.token} if self.token else {}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.endpoint}}],
            "users": [{"name": "launcher", "user": user}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "launcher", "namespace": namespace},
                }
            ],
            "current-context": "fake",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def answer(self, request: Recorded) -> Reply:
        if request.method == "GET" and (match := PODS.match(request.path)):
            request.operation = "pods list"
            return self._guard(request, "pods", "list") or self._list(match["ns"], request)
        if request.method == "GET" and (match := LOG.match(request.path)):
            request.operation = "pods/log get"
            return self._guard(request, "pods/log", "get") or self._log(
                match["ns"], unquote(match["name"]), request
            )
        return status(404, "NotFound", "the server could not find the requested resource")

    def _guard(self, request: Recorded, resource: str, verb: str) -> Reply | None:
        if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
            return status(401, "Unauthorized", "Unauthorized")
        if self.allowed is not None and (resource, verb) not in self.allowed:
            return status(
                403,
                "Forbidden",
                f'{resource} is forbidden: User "system:serviceaccount:x:launcher" cannot'
                f' {verb} resource "{resource}"',
            )
        return None

    def _list(self, namespace: str, request: Recorded) -> Reply:
        selector = dict(
            term.split("=", 1)
            for term in request.query.get("labelSelector", [""])[0].split(",")
            if term
        )
        items = [
            pod
            for (ns, _), pod in self.pods.items()
            if ns == namespace
            and all(pod["metadata"]["labels"].get(k) == v for k, v in selector.items())
        ]
        return Reply(
            200,
            {
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": "7"},
                "items": items,
            },
        )

    def _log(self, namespace: str, name: str, request: Recorded) -> Reply:
        pod = self.pods.get((namespace, name))
        if pod is None:
            return status(404, "NotFound", f'pods "{name}" not found')
        container = request.query.get("container", [""])[0]
        names = [c["name"] for c in pod["spec"]["containers"]]
        if container not in names:
            return status(400, "BadRequest", f"container {container} is not valid for pod {name}")
        return Reply(200, self.logs[(namespace, name)].encode(), "text/plain")
