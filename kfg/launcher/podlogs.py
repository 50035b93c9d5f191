"""A finished run's metrics, read from the logs of its step pods through the Kubernetes API.

Why logs: Kubeflow Pipelines 2.17.0 keeps metric values only in ML Metadata and serves no
REST operation that returns them. Its v2beta1 API has no artifact endpoints (those exist
only on the unreleased `mlmd-removal` branch), and `GET /apis/v2beta1/runs/{id}` returns
`run_details.task_details` built from the Argo Workflow's nodes (`toModelTasks` in
`backend/src/apiserver/server/api_converter.go`) without outputs (the converter's TODO) and
without the task's own `pod_name` (`toApiPipelineTaskDetail` leaves it out;
`child_tasks[].pod_name` holds Argo node ids, not the pod names of Argo's default v2
naming). Reading ML Metadata would mean its gRPC service and client inside every trial.
The step runtime already prints each metric on stdout as an unmistakable line
(`kfg.runtime.step.metric_line`), and the pod's log is the one place 2.17.0 keeps it that
the launcher's ServiceAccount can be allowed to read with plain RBAC.

Which pods: the API server labels every pod of a run `pipeline/runid=<run id>` (workflow
`spec.podMetadata`, `backend/src/apiserver/template/v2_template.go`), and the compiler
annotates the pods that run a step's code `pipelines.kubeflow.org/runtime-role: launcher`
(drivers: `driver`; `backend/src/v2/compiler/argocompiler/common.go`). The step's code runs
in the container Argo names `main`. So the launcher lists the run's pods by label (RBAC
`list` on `pods`), keeps the succeeded executor pods, newest first, and reads `main`'s log
(`get` on `pods/log`) until every wanted metric is found.

When pods are gone: KFP 2.17.0 sets no Argo `podGC` (`backend/src/v2/compiler/argocompiler`
sets none), so a run's pods live as long as its Workflow, which the API server deletes
once the persistence agent reports it again after `TTL_SECONDS_AFTER_WORKFLOW_FINISH`
(86400 s in the 2.17.0 manifests), or earlier when the pipeline sets a TTL. The launcher
reads the logs seconds after the run succeeds. A cluster whose Argo `workflowDefaults`
delete pods on completion leaves nothing to read: the launcher then says so, naming the
run. A step that KFP took from its cache runs no pod and prints nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kfg.runtime.step import METRIC_PREFIX

RUN_LABEL = "pipeline/runid"
ROLE_ANNOTATION = "pipelines.kubeflow.org/runtime-role"
EXECUTOR_ROLE = "launcher"
NODE_ANNOTATION = "workflows.argoproj.io/node-name"
CONTAINER = "main"
TIMEOUT = (10.0, 120.0)
IN_CLUSTER_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class PodLogError(Exception):
    """The pods or their logs cannot be read; the message says which and why."""


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    step: str
    pod: str


def parse(line: str) -> tuple[str, str, float] | None:
    """`(step, name, value)` of a metric line the step runtime printed, else None."""
    if not line.startswith(METRIC_PREFIX):
        return None
    try:
        record = json.loads(line[len(METRIC_PREFIX) :])
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    name, step, value = record.get("name"), record.get("step"), record.get("value")
    if not isinstance(name, str) or not isinstance(step, str):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return step, name, float(value)


@dataclass
class Search:
    """What one pass over a run's pods found, kept for the error message."""

    metrics: dict[str, Metric] = field(default_factory=dict)
    pods: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)


class Pods:
    """The pods of one namespace, through a `kubernetes.client.CoreV1Api`."""

    def __init__(self, core: Any, namespace: str) -> None:
        self.core = core
        self.namespace = namespace
        # The launcher's deadline (a `clock()` instant): it caps each request's timeouts
        # and ends a log that is still streaming when it passes.
        self.deadline: float | None = None
        self.clock: Callable[[], float] = time.monotonic

    def _timeout(self, action: str) -> tuple[float, float]:
        if self.deadline is None:
            return TIMEOUT
        left = self.deadline - self.clock()
        if left <= 0:
            raise PodLogError(f"{action}: the launcher's --timeout passed")
        return (min(TIMEOUT[0], left), min(TIMEOUT[1], left))

    @classmethod
    def connect(cls, namespace: str | None) -> Pods:
        """In a pod: its ServiceAccount; elsewhere: the kubeconfig (`KUBECONFIG`)."""
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        try:
            config.load_incluster_config()
            api = client.ApiClient()
            here = _read(IN_CLUSTER_NAMESPACE)
        except ConfigException:
            try:
                api = config.new_client_from_config()
                _, active = config.list_kube_config_contexts()
            except (ConfigException, OSError) as exc:
                raise PodLogError(
                    f"no in-cluster ServiceAccount and no usable kubeconfig ({exc})"
                ) from None
            here = (active or {}).get("context", {}).get("namespace")
        chosen = namespace or here or "default"
        return cls(client.CoreV1Api(api), chosen)

    def _call(self, action: str, send: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return send()
        except ApiException as exc:
            raise PodLogError(
                f"{action}: the Kubernetes API answered HTTP {exc.status} ({exc.reason})"
            ) from exc
        except HTTPError as exc:
            raise PodLogError(f"{action}: cannot reach the Kubernetes API ({exc})") from None

    def executors(self, run_id: str) -> list[dict[str, Any]]:
        """The run's succeeded pods that ran step code, newest first."""
        action = f"listing the pods of run {run_id} in namespace {self.namespace}"
        timeout = self._timeout(action)
        response = self._call(
            action,
            lambda: self.core.list_namespaced_pod(
                self.namespace,
                label_selector=f"{RUN_LABEL}={run_id}",
                _preload_content=False,
                _request_timeout=timeout,
            ),
        )
        try:
            items = json.loads(response.data).get("items") or []
        except (ValueError, AttributeError) as exc:
            raise PodLogError(
                f"{action}: the Kubernetes API answered no pod list ({exc})"
            ) from None
        chosen = [
            pod
            for pod in items
            if (pod.get("metadata", {}).get("annotations") or {}).get(
                ROLE_ANNOTATION, EXECUTOR_ROLE
            )
            == EXECUTOR_ROLE
            and (pod.get("status") or {}).get("phase") == "Succeeded"
        ]
        chosen.sort(key=lambda pod: pod["metadata"].get("creationTimestamp") or "", reverse=True)
        return chosen

    def lines(self, pod: str) -> Iterator[str]:
        """The log of the pod's `main` container, line by line, without holding it all."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        action = f"reading the log of pod {pod}"
        try:
            response = self.core.read_namespaced_pod_log(
                pod,
                self.namespace,
                container=CONTAINER,
                _preload_content=False,
                _request_timeout=self._timeout(action),
            )
        except HTTPError as exc:
            raise PodLogError(f"{action}: cannot reach the Kubernetes API ({exc})") from None
        except ApiException as exc:
            if exc.status == 404:
                raise FileNotFoundError(pod) from None
            raise PodLogError(
                f"reading the log of pod {pod}: the Kubernetes API answered HTTP"
                f" {exc.status} ({exc.reason})"
            ) from exc
        rest = b""
        try:
            for chunk in response.stream(64 * 1024):
                self._timeout(action)
                rest += chunk
                *whole, rest = rest.split(b"\n")
                for line in whole:
                    yield line.decode("utf-8", "replace").rstrip("\r")
            if rest:
                yield rest.decode("utf-8", "replace")
        except HTTPError as exc:
            raise PodLogError(f"{action}: the Kubernetes API broke off the log ({exc})") from None
        finally:
            response.release_conn()

    def metrics(self, run_id: str, wanted: set[str]) -> Search:
        """Metric lines in the run's executor pods, until every name in `wanted` is found
        (all of them when `wanted` is empty)."""
        search = Search()
        for pod in self.executors(run_id):
            name = pod["metadata"]["name"]
            search.pods.append(name)
            # The last line of a name in a pod wins: the runtime prints its metric lines after
            # every cell of the step has run, so a cell printing a look-alike line earlier
            # cannot stand in for the value the step reports.
            latest: dict[str, Metric] = {}
            try:
                for line in self.lines(name):
                    parsed = parse(line)
                    if parsed is not None:
                        step, metric, value = parsed
                        latest[metric] = Metric(metric, value, step, name)
            except FileNotFoundError:
                search.gone.append(name)
            for metric, found in latest.items():
                search.metrics.setdefault(metric, found)
            if wanted and wanted <= set(search.metrics):
                break
        return search


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError:
        return None
