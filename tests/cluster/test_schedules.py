"""`kfg status` on a kale.yaml with schedules: loopback Kubernetes and KFP APIs."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from tests.conftest import REPO
from tests.launcher.fake_kfp import FakeKfp, Scenario

NAMESPACE = "team-a"
SCHEDULED = REPO / "tests" / "render" / "scheduled" / "kale.yaml"
GOLDEN = REPO / "tests" / "render" / "golden" / "scheduled" / "release" / "schedules.yaml"
BATCH = f"/apis/batch/v1/namespaces/{NAMESPACE}"
LAST = "2026-12-01T02:00:00Z"  # 03:00 in Berlin


def _nightly() -> dict[str, Any]:
    """The CronJob as the cluster holds it: the rendered object and the controller's status."""
    cronjob: dict[str, Any] = next(d for d in yaml.safe_load_all(GOLDEN.read_text()) if d)
    cronjob["status"] = {"lastScheduleTime": LAST, "lastSuccessfulTime": "2026-12-01T02:41:07Z"}
    return cronjob


def _job(minutes: int, condition: str | None) -> dict[str, Any]:
    status: dict[str, Any] = {"active": 1} if condition is None else {}
    if condition:
        status["conditions"] = [{"type": condition, "status": "True"}]
    return {"metadata": {"name": f"wine-scheduled-nightly-{minutes}"}, "status": status}


class FakeKubernetes:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                fake.requests.append((parts.path, query))
                status, body = fake.answer(parts.path, query)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path == f"{BATCH}/cronjobs/wine-scheduled-nightly":
            return 200, _nightly()
        if path == f"{BATCH}/jobs":
            selector = query["labelSelector"][0]
            jobs = [_job(29410440, "Failed"), _job(29411880, "Complete")]
            items = jobs if "kfg.dev/schedule=nightly" in selector else []
            return 200, {"apiVersion": "batch/v1", "kind": "JobList", "items": items}
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}

    def kubeconfig(self, path: Path) -> Path:
        server = f"http://127.0.0.1:{self.server.server_address[1]}"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": server}}],
                    "users": [{"name": "me", "user": {"token": "t"}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "me"}}],
                    "current-context": "fake",
                }
            )
        )
        return path


@pytest.fixture
def kubernetes() -> Iterator[FakeKubernetes]:
    fake = FakeKubernetes()
    yield fake
    fake.server.shutdown()


def test_status_lists_each_schedule_with_last_and_next_firing_and_the_run(
    kubernetes: FakeKubernetes, tmp_path: Path
) -> None:
    scenario = Scenario(multi_user=True)
    with FakeKfp(scenario) as kfp:
        kfp.experiments.append(
            {"experiment_id": "exp-9", "display_name": "wine-scheduled", "namespace": NAMESPACE}
        )
        kfp.runs["run-42"] = {
            "run_id": "run-42",
            "display_name": "wine-scheduled-nightly-20261201-0200",
            "experiment_id": "exp-9",
            "state": "SUCCEEDED",
        }
        before = datetime.datetime.now(datetime.timezone.utc)
        result = subprocess.run(
            [
                *(sys.executable, "-m", "kfg", "status", str(SCHEDULED), "--json"),
                *("--kubeconfig", str(kubernetes.kubeconfig(tmp_path / "kubeconfig"))),
                *("--endpoint", kfp.endpoint, "--ui", "https://kf.example/pipeline"),
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={k: v for k, v in os.environ.items() if not k.startswith("KF_")},
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    nightly, weekly = json.loads(result.stdout)
    assert nightly["name"] == "nightly" and not nightly["suspended"]
    upcoming = datetime.datetime.fromisoformat(nightly["next_fire"])
    assert (upcoming.hour, upcoming.minute) == (3, 0)  # Europe/Berlin wall clock
    assert upcoming > before and upcoming - before <= datetime.timedelta(days=1)
    assert datetime.datetime.fromisoformat(nightly["last_fire"].replace("Z", "+00:00")) == (
        datetime.datetime(2026, 12, 1, 2, 0, tzinfo=datetime.timezone.utc)
    )
    assert nightly["last_job_state"] == "Succeeded"  # the newest Job, not the failed one
    assert nightly["last_run"] == "wine-scheduled-nightly-20261201-0200"
    assert nightly["last_run_state"] == "SUCCEEDED"
    assert nightly["link"] == "https://kf.example/pipeline/#/runs/details/run-42"
    # Suspended and not synced yet: nothing fired, nothing will.
    assert weekly["suspended"] and weekly["next_fire"] is None and weekly["last_fire"] is None
    listing = next(r for r in kfp.requests if r.operation == "run_service_list_runs")
    assert listing.query["namespace"] == [NAMESPACE]


def test_the_table_names_the_namespace_and_each_schedule(
    kubernetes: FakeKubernetes, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "kfg", "status", str(SCHEDULED)),
            *("--kubeconfig", str(kubernetes.kubeconfig(tmp_path / "kubeconfig"))),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if not k.startswith("KF_")},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"schedules of {NAMESPACE}/wine-scheduled:"
    assert lines[1].split() == ["schedule", "cron", "next", "last", "job", "run", "state", "link"]
    assert lines[2].startswith("nightly ") and "Succeeded" in lines[2]
    assert lines[3].startswith("weekly-full (suspended)")
