"""A loopback server serving exactly the REST operations of Kubeflow Pipelines 2.17.0.

The operations (HTTP method, path template, operation name) are not written down here:
`operations()` reads them from the generated client of the same release,
kfp-server-api==2.17.0, by calling every `*_with_http_info` method of every
`kfp_server_api.api` class against a stand-in ApiClient that records the method and path
template it is asked to request. A request matching none of them is answered 404 with the
google.rpc.Status body KFP's grpc-gateway writes for a path it has no route for; a served
operation the fake does not model answers 501, so a test notices when the launcher calls
one. Responses follow the v2beta1 swagger (snake_case fields, RFC 3339 times, enum names).

Two things of the real server are emulated on request: multi-user authentication (a
bearer token read from a file at each request, so that rotating it is visible) and KFP's
authorisation, which checks one (resource, verb) per operation (`AUTHZ`, read from
`backend/src/apiserver/server/*_server.go` at 2.17.0) against what the launcher's Role
grants. The `artifact_tasks` and `artifacts/{id}` endpoints of KFP's unreleased
`mlmd-removal` branch (backend/api/v2beta1/artifact.proto there) are served only when a
scenario asks for them.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.launcher.fake_kube import FakeKube, Step
from tests.launcher.loopback import Loopback, Recorded, Reply

CREATED = "2026-11-22T10:00:00Z"
RUN_ID = "a1b2c3d4-run"
PIPELINE = {
    "pipeline_id": "0d6a1c2e-pipeline",
    "name": "digits-mlp",
    "display_name": "digits-mlp",
    "created_at": CREATED,
}
VERSION = {
    "pipeline_id": PIPELINE["pipeline_id"],
    "pipeline_version_id": "7f3b9e10-version",
    "name": "digits-mlp-f4dfc150",
    "display_name": "digits-mlp-f4dfc150",
    "created_at": CREATED,
}
EXPERIMENT_ID = "5e8c2a77-experiment"
METRIC_LOG = (
    "I1122 10:01:00 launcher_v2.go:151] executing component\n"
    "val-accuracy=0.1\n"  # the notebook printing something that looks like a metric
    'kfg:metric {"name": "val-accuracy", "step": "evaluate", "value": 0.9777777777777777}\n'
    "I1122 10:01:09 launcher_v2.go:212] uploading outputs\n"
)
STEPS = [
    Step("load", "I1122 loading\n"),
    Step("train", "epoch 1 loss=0.5\n"),
    Step("evaluate", METRIC_LOG),
]

# What KFP 2.17.0 asks its SubjectAccessReview for, per operation the launcher may call
# (group pipelines.kubeflow.org). kubeflow/pipelines 2.17.0:
# backend/src/apiserver/server/pipeline_server.go (getPipelineByName: get; listPipelineVersions
# and listPipelines: list, both on resource "pipelines" through canAccessPipeline),
# experiment_server.go (createExperiment: create; listExperiments: list; getExperiment: get),
# run_server.go (createRun: create; getRun: get; terminateRun: terminate; listRuns: list).
# healthz is not authorised.
AUTHZ: dict[str, tuple[str, str] | None] = {
    "healthz_service_get_healthz": None,
    "pipeline_service_get_pipeline_by_name": ("pipelines", "get"),
    "pipeline_service_get_pipeline": ("pipelines", "get"),
    "pipeline_service_list_pipelines": ("pipelines", "list"),
    "pipeline_service_list_pipeline_versions": ("pipelines", "list"),
    "experiment_service_list_experiments": ("experiments", "list"),
    "experiment_service_create_experiment": ("experiments", "create"),
    "experiment_service_get_experiment": ("experiments", "get"),
    "run_service_create_run": ("runs", "create"),
    "run_service_get_run": ("runs", "get"),
    "run_service_list_runs": ("runs", "list"),
    "run_service_terminate_run": ("runs", "terminate"),
}


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    template: str
    pattern: re.Pattern[str]


class _Recorder:
    """Stands in for kfp_server_api.ApiClient and keeps what it was asked to request."""

    client_side_validation = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def select_header_accept(self, accepts: list[str]) -> str | None:
        return accepts[0] if accepts else None

    def select_header_content_type(self, types: list[str]) -> str | None:
        return types[0] if types else None

    def call_api(self, path: str, method: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((method, path))


def _pattern(template: str) -> re.Pattern[str]:
    regex = ""
    for literal, name in re.findall(r"([^{]*)(?:\{([^}]+)\})?", template):
        regex += re.escape(literal)
        if name:
            regex += f"(?P<{name.replace('.', '__')}>[^/:]+)"
    return re.compile(f"^{regex}$")


@functools.cache
def operations() -> tuple[Operation, ...]:
    """Every REST operation of kfp-server-api 2.17.0, read from its generated classes."""
    import kfp_server_api.api

    found = []
    # The generated classes are untyped: each takes the ApiClient it sends through.
    services: list[tuple[str, type[Any]]] = inspect.getmembers(kfp_server_api.api, inspect.isclass)
    for _, service in services:
        for name, function in inspect.getmembers(service, inspect.isfunction):
            if not name.endswith("_with_http_info"):
                continue
            recorder = _Recorder()
            required = [
                p
                for p in inspect.signature(function).parameters.values()
                if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD
            ]
            getattr(service(recorder), name)(*["x"] * len(required))
            [(method, template)] = recorder.calls
            operation = name.removesuffix("_with_http_info")
            found.append(Operation(operation, method, template, _pattern(template)))
    # Literal paths before templated ones (`pipelines/create` is not a pipeline id).
    found.sort(key=lambda o: (o.template.count("{"), o.template, o.method))
    return tuple(found)


MLMD_REMOVAL = (
    Operation(
        "list_artifact_tasks",
        "GET",
        "/apis/v2beta1/artifact_tasks",
        _pattern("/apis/v2beta1/artifact_tasks"),
    ),
    Operation(
        "get_artifact",
        "GET",
        "/apis/v2beta1/artifacts/{artifact_id}",
        _pattern("/apis/v2beta1/artifacts/{artifact_id}"),
    ),
)


def status(code: int, grpc: int, message: str) -> Reply:
    return Reply(code, {"code": grpc, "message": message, "details": []})


NOT_FOUND = status(404, 5, "Not Found")  # grpc-gateway's answer for a path without a route


def _equals(filter_json: str | None) -> dict[str, str]:
    """The EQUALS predicates of a v2beta1 filter (protojson: either field spelling)."""
    if not filter_json:
        return {}
    found = {}
    for predicate in json.loads(filter_json).get("predicates", []):
        if predicate.get("operation") in ("EQUALS", 1):
            value = predicate.get("string_value", predicate.get("stringValue"))
            found[predicate["key"]] = value
    return found


@dataclass
class Scenario:
    """What the server holds and answers, and the failures to inject."""

    states: list[str] = field(default_factory=lambda: ["PENDING", "RUNNING", "SUCCEEDED"])
    error: str | None = None
    create_run_status: int = 200
    run_gone: bool = False
    pipelines: list[dict[str, Any]] = field(default_factory=lambda: [dict(PIPELINE)])
    versions: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {PIPELINE["pipeline_id"]: [dict(VERSION)]}
    )
    steps: list[Step] = field(default_factory=lambda: list(STEPS))
    multi_user: bool = False
    token_file: Path | None = None  # when set, each request must carry its current content
    allowed: set[tuple[str, str]] | None = None  # the Role, as (resource, verb); None: all
    artifact_api: bool = False  # also serve mlmd-removal's artifact endpoints
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    downloads: dict[str, bytes] = field(default_factory=dict)  # artifact id -> content
    pod_namespace: str = "kubeflow"  # where a run without namespace runs (single-user)
    on_poll: Callable[[int], object] | None = None  # called with the count of GetRun calls
    # Failures to answer an operation with, one per call in order, before answering it
    # normally: "stall", "reset" (TCP RST) or an HTTP status such as 503.
    faults: dict[str, list[str | int]] = field(default_factory=dict)


class FakeKfp(Loopback):
    def __init__(self, scenario: Scenario, kube: FakeKube | None = None) -> None:
        super().__init__()
        self.scenario = scenario
        self.kube = kube
        self.experiments: list[dict[str, Any]] = []
        self.runs: dict[str, dict[str, Any]] = {}
        self.terminated: list[str] = []
        self.polls = 0
        self.polled = threading.Event()
        self._ids = itertools.count(1)

    def __enter__(self) -> FakeKfp:
        super().__enter__()
        return self

    def operations_called(self) -> list[str]:
        return [r.operation for r in self.requests if r.operation]

    # --- routing --------------------------------------------------------------------

    def answer(self, request: Recorded) -> Reply:
        if request.path.startswith("/download/"):
            return Reply(
                200,
                self.scenario.downloads[request.path.rsplit("/", 1)[1]],
                "application/octet-stream",
            )
        served = operations() + (MLMD_REMOVAL if self.scenario.artifact_api else ())
        for operation in served:
            match = operation.pattern.match(request.path)
            if match and operation.method == request.method:
                request.operation = operation.name
                pending = self.scenario.faults.get(operation.name)
                if pending:
                    fault = pending.pop(0)
                    if isinstance(fault, int):
                        return status(fault, 14, f"fake: injected HTTP {fault}")
                    return Reply(0, fault=fault)
                denied = self._authorise(request, operation.name)
                if denied:
                    return denied
                handler = getattr(self, f"_{operation.name}", None)
                if handler is None:
                    return status(501, 12, f"fake: {operation.name} is not modelled")
                result: Reply = handler(request, **match.groupdict())
                return result
        return NOT_FOUND

    def _authorise(self, request: Recorded, operation: str) -> Reply | None:
        scenario = self.scenario
        if scenario.token_file is not None and operation in AUTHZ and AUTHZ[operation]:
            expected = f"Bearer {scenario.token_file.read_text().strip()}"
            if request.headers.get("authorization") != expected:
                return status(
                    401,
                    16,
                    "Failed to check authorization. User identity is empty in the request header",
                )
        if scenario.allowed is not None and operation not in (
            "get_artifact",
            "list_artifact_tasks",
        ):
            if operation not in AUTHZ:
                return status(500, 13, f"fake: no authorisation known for {operation}")
            needed = AUTHZ[operation]
            if needed is not None and needed not in scenario.allowed:
                return status(403, 7, f"PermissionDenied: {needed[1]} {needed[0]}")
        return None

    # --- operations -----------------------------------------------------------------

    def _healthz_service_get_healthz(self, request: Recorded) -> Reply:
        return Reply(200, {"multi_user": self.scenario.multi_user})

    def _pipeline_service_get_pipeline_by_name(self, request: Recorded, name: str) -> Reply:
        namespace = request.query.get("namespace", [""])[0]
        if self.scenario.multi_user and not namespace:
            return status(400, 3, "Invalid input error: Namespace is required")
        for pipeline in self.scenario.pipelines:
            if pipeline["name"] == name and pipeline.get("namespace", "") == namespace:
                return Reply(200, pipeline)
        return status(404, 5, f"Failed to get a pipeline named {name} in namespace {namespace}")

    def _pipeline_service_list_pipeline_versions(
        self, request: Recorded, pipeline_id: str
    ) -> Reply:
        wanted = _equals(request.query.get("filter", [None])[0])
        versions = [
            v
            for v in self.scenario.versions.get(pipeline_id, [])
            if all(v.get(key) == value for key, value in wanted.items())
        ]
        return Reply(
            200, {"pipeline_versions": versions, "total_size": len(versions)} if versions else {}
        )

    def _experiment_service_list_experiments(self, request: Recorded) -> Reply:
        namespace = request.query.get("namespace", [""])[0]
        wanted = _equals(request.query.get("filter", [None])[0])
        found = [
            e
            for e in self.experiments
            if e.get("namespace", "") == namespace
            and all(e.get(key) == value for key, value in wanted.items())
        ]
        return Reply(200, {"experiments": found, "total_size": len(found)} if found else {})

    def _experiment_service_create_experiment(self, request: Recorded) -> Reply:
        experiment = {
            **request.body,
            "experiment_id": EXPERIMENT_ID if not self.experiments else f"exp-{next(self._ids)}",
            "created_at": CREATED,
            "storage_state": "AVAILABLE",
        }
        self.experiments.append(experiment)
        return Reply(200, experiment)

    def _run_service_create_run(self, request: Recorded) -> Reply:
        scenario = self.scenario
        if scenario.create_run_status != 200:
            return status(
                scenario.create_run_status,
                13,
                "Internal error: failed to create a run: database is locked",
            )
        body = request.body
        experiment = next(
            e for e in self.experiments if e["experiment_id"] == body["experiment_id"]
        )
        reference = body["pipeline_version_reference"]
        versions = scenario.versions.get(reference["pipeline_id"], [])
        if not any(v["pipeline_version_id"] == reference["pipeline_version_id"] for v in versions):
            return status(404, 5, "pipeline version not found")
        run = {
            **body,
            "run_id": RUN_ID,
            "storage_state": "AVAILABLE",
            "created_at": CREATED,
            "state": "PENDING",
        }
        self.runs[RUN_ID] = run
        if self.kube is not None:
            namespace = experiment.get("namespace") or scenario.pod_namespace
            self.kube.add_run(RUN_ID, namespace, scenario.steps)
        return Reply(200, run)

    def _run_service_get_run(self, request: Recorded, run_id: str) -> Reply:
        scenario = self.scenario
        if scenario.run_gone or run_id not in self.runs:
            return status(404, 5, f"Run {run_id} not found")
        self.polls += 1
        self.polled.set()
        if scenario.on_poll is not None:
            scenario.on_poll(self.polls)
        state = scenario.states[min(self.polls - 1, len(scenario.states) - 1)]
        run = {**self.runs[run_id], "state": state}
        if state == "FAILED" and scenario.error:
            run["error"] = {"code": 2, "message": scenario.error}
        # 2.17.0 fills run_details.task_details from the Workflow's nodes: display name,
        # state and children by node id, no pod_name, no outputs (api_converter.go).
        run["run_details"] = {
            "task_details": [
                {
                    "run_id": run_id,
                    "task_id": f"task-{step.name}",
                    "display_name": step.name,
                    "state": "SUCCEEDED" if state == "SUCCEEDED" else "RUNNING",
                    "child_tasks": [{"pod_name": f"digits-mlp-{run_id[:5]}-{2000 + i}"}],
                }
                for i, step in enumerate(scenario.steps)
            ]
        }
        return Reply(200, run)

    def _run_service_list_runs(self, request: Recorded) -> Reply:
        """ListRuns by namespace or experiment, with EQUALS and IS_SUBSTRING predicates on
        run fields (kubeflow/pipelines 2.17.0 backend/src/apiserver/filter/filter.go;
        model/run.go maps `display_name`, `state` and `experiment_id`)."""
        namespace = request.query.get("namespace", [""])[0]
        experiment = request.query.get("experiment_id", [""])[0]
        if self.scenario.multi_user and not namespace and not experiment:
            return status(400, 3, "Invalid input error: Namespace is required")
        filter_json = request.query.get("filter", [None])[0]
        predicates = json.loads(filter_json).get("predicates", []) if filter_json else []
        namespaces = {e["experiment_id"]: e.get("namespace", "") for e in self.experiments}

        def matches(run: dict[str, Any]) -> bool:
            if experiment and run.get("experiment_id") != experiment:
                return False
            if not experiment and namespaces.get(run.get("experiment_id", "")) != namespace:
                return False
            for predicate in predicates:
                value = str(run.get(predicate["key"], ""))
                wanted = predicate.get("string_value", predicate.get("stringValue"))
                operation = predicate.get("operation")
                if operation in ("EQUALS", 1) and value != wanted:
                    return False
                if operation in ("IS_SUBSTRING", 9) and wanted not in value:
                    return False
            return True

        found = [run for run in self.runs.values() if matches(run)]
        return Reply(200, {"runs": found, "total_size": len(found)} if found else {})

    def _run_service_terminate_run(self, request: Recorded, run_id: str) -> Reply:
        if run_id not in self.runs:
            return status(404, 5, f"Run {run_id} not found")
        self.terminated.append(run_id)
        return Reply(200, {})

    # --- mlmd-removal's artifact endpoints (only with scenario.artifact_api) -----------

    def _list_artifact_tasks(self, request: Recorded) -> Reply:
        run_ids = request.query.get("run_ids", [])
        links = [
            {"id": f"at-{i}", "artifact_id": artifact_id, "run_id": RUN_ID, "type": "OUTPUT"}
            for i, artifact_id in enumerate(sorted(self.scenario.artifacts))
            if RUN_ID in run_ids
        ]
        return Reply(200, {"artifact_tasks": links, "total_size": len(links)})

    def _get_artifact(self, request: Recorded, artifact_id: str) -> Reply:
        if artifact_id in self.scenario.downloads:
            return Reply(
                200,
                {
                    "artifact_id": artifact_id,
                    "uri": f"minio://mlpipeline/v2/artifacts/{artifact_id}",
                    "download_url": f"{self.endpoint}/download/{artifact_id}",
                },
            )
        if artifact_id not in self.scenario.artifacts:
            return status(404, 5, f"artifact {artifact_id} not found")
        return Reply(200, self.scenario.artifacts[artifact_id])


# mlmd-removal's Artifact message for a metric (backend/api/v2beta1/artifact.proto there).
METRIC_ARTIFACTS: dict[str, dict[str, Any]] = {
    "art-report": {
        "artifact_id": "art-report",
        "name": "kfg_report",
        "type": "HTML",
        "uri": "minio://mlpipeline/v2/artifacts/digits-mlp/a1b2c3d4-run/evaluate/kfg_report",
        "created_at": CREATED,
    },
    "art-metric": {
        "artifact_id": "art-metric",
        "name": "val-accuracy",
        "type": "Metric",
        "number_value": 0.9777777777777777,
        "created_at": CREATED,
    },
}
