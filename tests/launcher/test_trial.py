"""`kfg trial` against a loopback KFP API: the exact requests, and every way a run ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kfg.launcher.params import ParameterError, convert, parse_override, parse_typed
from kfg.launcher.runs import Launcher, LaunchError, RunRequest
from tests.conftest import REPO
from tests.launcher.fake_kfp import EXPERIMENT, RUN_ID, VERSION, FakeKfp, Scenario

ARGS = [
    "--pipeline",
    "digits-mlp",
    "--version",
    "digits-mlp-f4dfc150",
    "--run-name",
    "digits-trial-x7k2",
    "--metric",
    "val-accuracy",
    "--param",
    "hidden_units:int=64",
    "--param",
    "learning_rate:float=0.003",
    "--poll",
    "0.05",
]


def trial(fake: FakeKfp, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kfg", "trial", "--endpoint", fake.endpoint, *ARGS, *extra],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=120,
    )


def test_success_prints_the_metrics_and_sends_exactly_these_requests() -> None:
    with FakeKfp(Scenario()) as fake:
        result = trial(fake)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "val-accuracy=0.9777777777777777\n"
    assert f"kfg: run {RUN_ID} SUCCEEDED" in result.stderr
    calls = [(r.method, r.path) for r in fake.requests]
    assert calls == [
        ("GET", "/apis/v2beta1/healthz"),
        ("GET", "/apis/v2beta1/pipelines"),
        ("GET", f"/apis/v2beta1/pipelines/{VERSION['pipeline_id']}/versions"),
        ("GET", "/apis/v2beta1/experiments"),
        ("POST", "/apis/v2beta1/experiments"),
        ("POST", "/apis/v2beta1/runs"),
        ("GET", f"/apis/v2beta1/runs/{RUN_ID}"),
        ("GET", f"/apis/v2beta1/runs/{RUN_ID}"),
        ("GET", f"/apis/v2beta1/runs/{RUN_ID}"),
        ("GET", "/apis/v2beta1/artifact_tasks"),
        ("GET", "/apis/v2beta1/artifacts/art-report"),
        ("GET", "/apis/v2beta1/artifacts/art-metric"),
    ]
    pipelines = fake.requests[1]
    assert json.loads(pipelines.query["filter"][0])["predicates"] == [
        {"operation": 1, "key": "display_name", "stringValue": "digits-mlp"}  # kfp.Client's
    ]
    versions = fake.requests[2]
    assert json.loads(versions.query["filter"][0])["predicates"][0]["stringValue"] == (
        "digits-mlp-f4dfc150"
    )
    assert fake.requests[4].body == {"display_name": "digits-mlp", "namespace": ""}
    create = fake.requests[5].body
    assert create == {
        "experiment_id": EXPERIMENT["experiment_id"],
        "display_name": "digits-trial-x7k2",
        "pipeline_version_reference": {
            "pipeline_id": VERSION["pipeline_id"],
            "pipeline_version_id": VERSION["pipeline_version_id"],
        },
        "runtime_config": {"parameters": {"hidden_units": 64, "learning_rate": 0.003}},
    }
    artifacts = fake.requests[9]
    assert artifacts.query == {"run_ids": [RUN_ID], "type": ["OUTPUT"], "page_size": ["200"]}


def test_failed_run_exits_1_with_kfps_reason() -> None:
    with FakeKfp(Scenario(states=["RUNNING", "FAILED"], error="step train: OOMKilled")) as fake:
        result = trial(fake)
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"kfg: run {RUN_ID} ended FAILED: step train: OOMKilled" in result.stderr
    assert "Traceback" not in result.stderr


def test_timeout_terminates_the_run_and_exits_1() -> None:
    with FakeKfp(Scenario(states=["RUNNING"])) as fake:
        result = trial(fake, "--timeout", "0.3")
    assert result.returncode == 1
    assert "did not finish within 0.3 s and was terminated" in result.stderr
    assert ("POST", f"/apis/v2beta1/runs/{RUN_ID}:terminate") in [
        (r.method, r.path) for r in fake.requests
    ]


def test_server_error_is_reported_in_one_line() -> None:
    with FakeKfp(Scenario(create_run_status=500)) as fake:
        result = trial(fake)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "kfg: starting run `digits-trial-x7k2`: the KFP API answered HTTP 500:"
        " Internal error: failed to create a run: database is locked"
    )


def test_deleted_run_and_missing_pipeline() -> None:
    with FakeKfp(Scenario(run_gone=True)) as fake:
        gone = trial(fake)
    assert gone.returncode == 1 and "was deleted while kfg waited for it" in gone.stderr
    with FakeKfp(Scenario(pipelines=[])) as fake:
        missing = trial(fake)
    assert missing.returncode == 1
    assert "pipeline `digits-mlp` does not exist" in missing.stderr


def test_unreachable_server_and_bad_parameters() -> None:
    unreachable = subprocess.run(
        [sys.executable, "-m", "kfg", "trial", "--endpoint", "http://127.0.0.1:9", *ARGS],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert unreachable.returncode == 1
    assert "cannot reach the KFP API at http://127.0.0.1:9" in unreachable.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "kfg", "trial", *ARGS, "--param", "hidden_units:int=1.5"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "parameter `hidden_units` (int): `1.5` is not a whole number" in bad.stderr


def test_missing_metric_fails_the_trial() -> None:
    with FakeKfp(Scenario()) as fake:
        launcher = Launcher(
            RunRequest(fake.endpoint, "digits-mlp", "digits-mlp-f4dfc150", "t", metrics=("loss",)),
            sleep=lambda s: None,
        )
        with pytest.raises(LaunchError, match=r"reported no loss \(it reported: val-accuracy\)"):
            launcher.run()


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("n:int=16", 16),
        ("n:int=16.0", 16),
        ("n:int=12345678901234567890", 12345678901234567890),
        ("r:float=1e-05", 1e-05),
        ("b:bool=true", True),
        ("s:str=gini", "gini"),
        ("l:list=[1, 2]", [1, 2]),
        ('d:dict={"a": 1}', {"a": 1}),
    ],
)
def test_typed_parameters(argument: str, value: object) -> None:
    assert parse_typed(argument)[1] == value


@pytest.mark.parametrize("argument", ["n=1", "n:int", "n:float=nan", "n:bool=maybe", "n:x=1"])
def test_malformed_parameters(argument: str) -> None:
    with pytest.raises(ParameterError):
        parse_typed(argument)


def test_overrides_use_the_pipelines_types() -> None:
    assert parse_override("C=2", {"C": "float"}) == ("C", 2.0)
    with pytest.raises(ParameterError, match="unknown parameter `c`"):
        parse_override("c=2", {"C": "float"})
    assert convert("x", "str", "1") == "1"


def test_namespace_goes_to_the_experiment_and_skips_the_health_probe() -> None:
    with FakeKfp(Scenario()) as fake:
        result = trial(fake, "--namespace", "team-a")
    assert result.returncode == 0, result.stderr
    assert fake.requests[0].path == "/apis/v2beta1/pipelines"
    created = next(
        r for r in fake.requests if r.method == "POST" and r.path.endswith("/experiments")
    )
    assert created.body == {"display_name": "digits-mlp", "namespace": "team-a"}
