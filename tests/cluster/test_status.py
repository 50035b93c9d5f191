"""`kfg status` against a loopback Kubernetes API serving recorded Katib objects."""

from __future__ import annotations

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

from kfg.cluster.status import summarise, table
from tests.conftest import EXAMPLES, REPO

NAMESPACE = "team-a"
NAME = "digits-mlp-6843fa10"
BASE = f"/apis/kubeflow.org/v1beta1/namespaces/{NAMESPACE}"
TIME = "2026-11-22T10:00:00Z"


def condition(kind: str) -> dict[str, str]:
    return {"type": kind, "status": "True", "reason": f"Trial{kind}", "lastUpdateTime": TIME}


def trial(name: str, states: list[str], lr: str, units: str, acc: str | None) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [condition(s) for s in states], "startTime": TIME}
    if acc is not None:
        status["observation"] = {
            "metrics": [{"name": "val-accuracy", "min": "0.5", "max": acc, "latest": acc}]
        }
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Trial",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"katib.kubeflow.org/experiment": NAME},
        },
        "spec": {
            "parameterAssignments": [
                {"name": "learning_rate", "value": lr},
                {"name": "hidden_units", "value": units},
            ],
            "objective": {"type": "maximize", "objectiveMetricName": "val-accuracy"},
        },
        "status": status,
    }


TRIALS = [
    trial(f"{NAME}-abc12", ["Created", "Running", "Succeeded"], "0.003", "64", "0.97"),
    trial(f"{NAME}-def34", ["Created", "Running", "Failed"], "0.09", "16", None),
    trial(f"{NAME}-ghi56", ["Created", "Running"], "0.0005", "128", None),
]


def experiment(state: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "objective": {
                "type": "maximize",
                "objectiveMetricName": "val-accuracy",
                "metricStrategies": [{"name": "val-accuracy", "value": "max"}],
            }
        },
        "status": {
            "conditions": [condition("Created"), condition("Running")]
            + ([condition("Succeeded")] if state == "Succeeded" else []),
            "currentOptimalTrial": {
                "bestTrialName": f"{NAME}-abc12",
                "parameterAssignments": [
                    {"name": "learning_rate", "value": "0.003"},
                    {"name": "hidden_units", "value": "64"},
                ],
                "observation": {
                    "metrics": [
                        {"name": "val-accuracy", "min": "0.5", "max": "0.97", "latest": "0.97"}
                    ]
                },
            },
            "trials": 3,
            "trialsRunning": 1,
            "trialsSucceeded": 1,
            "trialsFailed": 1,
        },
    }


class FakeKubernetes:
    def __init__(self, states: list[str]) -> None:
        self.states = states
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                fake.requests.append((parts.path, parse_qs(parts.query)))
                status, body = fake.answer(parts.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str) -> tuple[int, Any]:
        if path == f"{BASE}/experiments/{NAME}":
            state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            return 200, experiment(state)
        if path == f"{BASE}/trials":
            return 200, {"apiVersion": "kubeflow.org/v1beta1", "kind": "TrialList", "items": TRIALS}
        return 404, {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": "NotFound",
            "code": 404,
        }


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeKubernetes, Path]]:
    fake = FakeKubernetes(["Running", "Succeeded"])
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "fake",
                        "cluster": {"server": f"http://127.0.0.1:{fake.server.server_address[1]}"},
                    }
                ],
                "users": [{"name": "me", "user": {"token": "t"}}],
                "contexts": [
                    {
                        "name": "fake",
                        "context": {"cluster": "fake", "user": "me", "namespace": NAMESPACE},
                    }
                ],
                "current-context": "fake",
            }
        )
    )
    yield fake, kubeconfig
    fake.server.shutdown()


def status(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kfg", "status", *args, "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
    )


def test_table_shows_counts_best_and_each_trial(cluster: tuple[FakeKubernetes, Path]) -> None:
    fake, kubeconfig = cluster
    result = status(kubeconfig, NAME)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"experiment {NAMESPACE}/{NAME}: Running"
    assert lines[2] == "trials: 1 running, 0 pending, 1 succeeded, 1 failed (3 in all)"
    assert (
        lines[3] == f"best: {NAME}-abc12  val-accuracy 0.97  learning_rate=0.003, hidden_units=64"
    )
    assert lines[5].split() == ["trial", "state", "val-accuracy", "hidden_units", "learning_rate"]
    assert lines[6].split() == [f"{NAME}-abc12", "Succeeded", "0.97", "64", "0.003"]
    assert lines[7].split() == [f"{NAME}-def34", "Failed", "-", "16", "0.09"]
    assert fake.requests[1] == (
        f"{BASE}/trials",
        {"labelSelector": [f"katib.kubeflow.org/experiment={NAME}"]},
    )


def test_watch_refreshes_until_the_experiment_ends(cluster: tuple[FakeKubernetes, Path]) -> None:
    _, kubeconfig = cluster
    result = status(kubeconfig, NAME, "--watch", "--interval", "0.05", "--json")
    assert result.returncode == 0, result.stderr
    decoder = json.JSONDecoder()
    text, position, states = result.stdout, 0, []
    while position < len(text.rstrip()):
        obj, position = decoder.raw_decode(text, position)
        states.append(obj["state"])
        position += 1
    assert states == ["Running", "Succeeded"]


def test_missing_experiment_exits_1(cluster: tuple[FakeKubernetes, Path]) -> None:
    _, kubeconfig = cluster
    result = status(kubeconfig, "nope")
    assert result.returncode == 1
    assert result.stderr.strip() == f"kfg: experiment `nope` not found in namespace `{NAMESPACE}`"


def test_kale_yaml_resolves_to_the_rendered_experiment(
    cluster: tuple[FakeKubernetes, Path],
) -> None:
    from kfg.core.load import load_pipeline
    from kfg.render.build import render

    loaded = load_pipeline(EXAMPLES / "digits" / "kale.yaml", root=REPO)
    assert loaded.pipeline and loaded.flow and loaded.notebook
    rendered = render(loaded.pipeline, loaded.flow, loaded.notebook, REPO)
    expected = next(o for o in rendered.objects if o["kind"] == "Experiment")["metadata"]["name"]
    fake, kubeconfig = cluster
    result = status(kubeconfig, str(EXAMPLES / "digits" / "kale.yaml"))
    assert fake.requests[0][0] == f"{BASE}/experiments/{expected}"
    assert result.returncode == 1  # the recorded cluster holds another experiment
    assert f"experiment `{expected}` not found in namespace `{NAMESPACE}`" in result.stderr


def test_summary_takes_each_metric_by_its_strategy() -> None:
    summary = summarise(experiment("Running"), TRIALS)
    assert [t.objective for t in summary.trials] == [0.97, None, None]
    assert "trial" in table(summary)
    assert not summary.finished


def test_an_unloadable_kubeconfig_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from kfg.cli.app import app

    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    missing = tmp_path / "nowhere.yaml"
    given = CliRunner().invoke(app, ["status", "some-experiment", "--kubeconfig", str(missing)])
    assert given.exit_code == 1
    assert f"cannot load the kubeconfig `{missing}`" in given.stderr
    default = CliRunner().invoke(app, ["status", "some-experiment"])
    assert default.exit_code == 1
    assert f"cannot load the kubeconfig `{tmp_path}/.kube/config` (the default" in default.stderr
    assert "Traceback" not in default.output
