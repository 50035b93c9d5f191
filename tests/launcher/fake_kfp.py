"""A loopback HTTP server speaking the part of KFP's v2beta1 REST API the launcher uses.

Responses follow the API's OpenAPI definitions (backend/api/v2beta1/swagger in
kubeflow/pipelines): snake_case JSON fields, RFC 3339 times, runtime states as enum
names, errors as google.rpc.Status. Every request is recorded so tests can assert exactly
what the launcher sent.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CREATED = "2026-11-22T10:00:00Z"
PIPELINE = {"pipeline_id": "0d6a1c2e-pipeline", "display_name": "digits-mlp", "created_at": CREATED}
VERSION = {
    "pipeline_id": "0d6a1c2e-pipeline",
    "pipeline_version_id": "7f3b9e10-version",
    "display_name": "digits-mlp-f4dfc150",
    "created_at": CREATED,
}
EXPERIMENT = {
    "experiment_id": "5e8c2a77-experiment",
    "display_name": "digits-mlp",
    "created_at": CREATED,
    "storage_state": "AVAILABLE",
}
RUN_ID = "a1b2c3d4-run"


def run_body(state: str, error: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "experiment_id": EXPERIMENT["experiment_id"],
        "run_id": RUN_ID,
        "display_name": "digits-trial-x7k2",
        "storage_state": "AVAILABLE",
        "pipeline_version_reference": {
            "pipeline_id": VERSION["pipeline_id"],
            "pipeline_version_id": VERSION["pipeline_version_id"],
        },
        "created_at": CREATED,
        "state": state,
    }
    if error:
        body["error"] = {"code": 2, "message": error}
    return body


ARTIFACT_TASKS = {
    "artifact_tasks": [
        {
            "id": "at-1",
            "artifact_id": "art-report",
            "run_id": RUN_ID,
            "task_id": "task-evaluate",
            "type": "OUTPUT",
            "producer": {"task_name": "evaluate"},
            "key": "kfg_report",
        },
        {
            "id": "at-2",
            "artifact_id": "art-metric",
            "run_id": RUN_ID,
            "task_id": "task-evaluate",
            "type": "OUTPUT",
            "producer": {"task_name": "evaluate"},
            "key": "kfg_metrics",
        },
    ],
    "total_size": 2,
}
ARTIFACTS = {
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


@dataclass
class Scenario:
    """What the server answers: run states in order, and failures to inject."""

    states: list[str] = field(default_factory=lambda: ["PENDING", "RUNNING", "SUCCEEDED"])
    error: str | None = None
    create_run_status: int = 200
    run_gone: bool = False
    pipelines: list[dict[str, Any]] = field(default_factory=lambda: [PIPELINE])
    version: str = VERSION["display_name"]
    downloads: dict[str, bytes] = field(default_factory=dict)  # artifact id -> file content


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


class FakeKfp:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.requests: list[Recorded] = []
        self._polls = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                fake.requests.append(Recorded(method, parts.path, parse_qs(parts.query), body))
                if parts.path.startswith("/download/"):
                    data = fake.scenario.downloads[parts.path.rsplit("/", 1)[1]]
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                status, payload = fake.answer(method, parts.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeKfp:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        scenario = self.scenario
        if path == "/apis/v2beta1/healthz":
            return 200, {"multi_user": False}
        if path == "/apis/v2beta1/pipelines":
            pipelines = scenario.pipelines
            return 200, {"pipelines": pipelines, "total_size": len(pipelines)} if pipelines else {}
        if path == f"/apis/v2beta1/pipelines/{PIPELINE['pipeline_id']}/versions":
            version = {**VERSION, "display_name": scenario.version}
            return 200, {"pipeline_versions": [version], "total_size": 1}
        if path == "/apis/v2beta1/experiments" and method == "GET":
            return 200, {}
        if path == "/apis/v2beta1/experiments" and method == "POST":
            return 200, EXPERIMENT
        if path == "/apis/v2beta1/runs" and method == "POST":
            if scenario.create_run_status != 200:
                return scenario.create_run_status, {
                    "code": 13,
                    "message": "Internal error: failed to create a run: database is locked",
                }
            return 200, run_body("PENDING")
        if path == f"/apis/v2beta1/runs/{RUN_ID}" and method == "GET":
            if scenario.run_gone:
                return 404, {"code": 5, "message": f"Run {RUN_ID} not found"}
            state = scenario.states[min(self._polls, len(scenario.states) - 1)]
            self._polls += 1
            return 200, run_body(state, scenario.error if state == "FAILED" else None)
        if path == f"/apis/v2beta1/runs/{RUN_ID}:terminate":
            return 200, {}
        if path == "/apis/v2beta1/artifact_tasks":
            return 200, ARTIFACT_TASKS
        if path.startswith("/apis/v2beta1/artifacts/"):
            artifact_id = path.rsplit("/", 1)[1]
            if artifact_id in scenario.downloads:
                return 200, {
                    "artifact_id": artifact_id,
                    "uri": f"minio://mlpipeline/v2/artifacts/{artifact_id}",
                    "download_url": f"{self.endpoint}/download/{artifact_id}",
                }
            return 200, ARTIFACTS[artifact_id]
        return 404, {"code": 5, "message": f"no route {method} {path}"}
