"""`kfg trial` against a KFP API that hangs, resets connections and answers 5xx.

The launcher's `--timeout` is a deadline over everything it does; transient failures
(no answer, a reset, a gateway's 502/503/504) are tried again with backoff inside it;
nothing ends in a traceback or an internal error.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from kfg.launcher.runs import printable
from tests.conftest import REPO
from tests.launcher.fake_kfp import RUN_ID, FakeKfp, Scenario
from tests.launcher.fake_kube import FakeKube, Step
from tests.launcher.loopback import Silent
from tests.launcher.test_trial import ARGS, env, kube, trial

__all__ = ["kube"]  # the fixture, imported for the tests below


def _clean(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr


def test_a_server_that_never_answers_ends_within_the_timeout(
    kube: FakeKube, tmp_path: Path
) -> None:
    with Silent() as silent:
        started = time.monotonic()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "kfg",
                "trial",
                "--endpoint",
                silent.endpoint,
                *ARGS,
                "--timeout",
                "4",
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env(kube, tmp_path),
            timeout=60,
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    _clean(result)
    assert "the --timeout of 4 s passed" in result.stderr.strip().splitlines()[-1]
    assert result.stdout == ""
    # Before: urllib3 retried the connection and each read waited 60 s; it ran until killed.
    assert elapsed < 40


@pytest.mark.parametrize("fault", ["reset", 502, 503, 504])
def test_transient_failures_of_every_call_are_retried(
    kube: FakeKube, tmp_path: Path, fault: str | int
) -> None:
    faults: dict[str, list[str | int]] = {
        "pipeline_service_get_pipeline_by_name": [fault],
        "pipeline_service_list_pipeline_versions": [fault],
        "experiment_service_list_experiments": [fault],
        "run_service_get_run": [fault, fault],
    }
    # A create is sent again only when the server cannot have acted on it: a 503 is a
    # refusal, a reset or a 502/504 may come after the run was created.
    faults["run_service_create_run"] = [fault] if fault == 503 else []
    with FakeKfp(Scenario(faults=faults), kube) as fake:
        result = trial(fake, env(kube, tmp_path), "--timeout", "60")
    _clean(result)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "val-accuracy=0.9777777777777777\n"
    assert "trying again" in result.stderr
    assert fake.operations_called().count("run_service_create_run") == (2 if fault == 503 else 1)


def test_a_stalled_request_ends_at_the_deadline(kube: FakeKube, tmp_path: Path) -> None:
    scenario = Scenario(faults={"run_service_get_run": ["stall"]})
    with FakeKfp(scenario, kube) as fake:
        result = trial(fake, env(kube, tmp_path), "--timeout", "3")
    _clean(result)
    assert result.returncode == 1
    assert "did not finish within 3 s and was terminated" in result.stderr
    assert fake.terminated == [RUN_ID]


def test_a_reset_while_creating_the_run_is_not_sent_again(kube: FakeKube, tmp_path: Path) -> None:
    scenario = Scenario(faults={"run_service_create_run": ["reset"]})
    with FakeKfp(scenario, kube) as fake:
        result = trial(fake, env(kube, tmp_path), "--timeout", "30")
    _clean(result)
    assert result.returncode == 1
    assert "starting run `digits-trial-x7k2`: cannot reach the KFP API" in result.stderr
    assert fake.operations_called().count("run_service_create_run") == 1


def test_errors_that_persist_fail_within_the_deadline(kube: FakeKube, tmp_path: Path) -> None:
    scenario = Scenario(faults={"run_service_get_run": [503] * 1000})
    with FakeKfp(scenario, kube) as fake:
        started = time.monotonic()
        result = trial(fake, env(kube, tmp_path), "--timeout", "3")
        elapsed = time.monotonic() - started
    _clean(result)
    assert result.returncode == 1
    assert fake.terminated == [RUN_ID]
    assert "did not finish within 3 s and was terminated" in result.stderr
    assert elapsed < 30


def test_a_refused_connection_is_one_line(kube: FakeKube, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kfg",
            "trial",
            "--endpoint",
            "http://127.0.0.1:9",
            *ARGS,
            "--timeout",
            "2",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env(kube, tmp_path),
        timeout=60,
    )
    _clean(result)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("kfg: finding pipeline `digits-mlp`: ")
    assert "\n" not in last


def test_stdout_carries_only_metrics_katib_reads_as_themselves() -> None:
    # kubeflow/katib v0.19.0 pkg/metricscollector/v1beta1/common/const.go: DefaultFilter
    # `([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)` is searched in every stdout line.
    found = {
        "val-accuracy": 0.5,
        "loss": 0.25,
        "x=1\nval-accuracy": 1.0,  # a forged second line
        "a b": 1.0,
        "dotted.name": 1.0,  # Katib would read `name`
        "accuracy": float("nan"),
    }
    assert printable(found) == {"loss": 0.25, "val-accuracy": 0.5}


FORGING_LOG = (
    # A cell printing look-alike lines before the runtime reports the step's metric.
    'kfg:metric {"name": "val-accuracy", "step": "evaluate", "value": 0.999}\n'
    'kfg:metric {"name": "x val-accuracy=1 y", "step": "evaluate", "value": 0.5}\n'
    'kfg:metric {"name": "loss.val-accuracy", "step": "evaluate", "value": 0.5}\n'
    'kfg:metric {"name": "val-accuracy", "step": "evaluate", "value": 0.9777777777777777}\n'
)


def test_what_a_run_prints_cannot_forge_a_metric_on_stdout(kube: FakeKube, tmp_path: Path) -> None:
    scenario = Scenario(steps=[Step("evaluate", FORGING_LOG)])
    without_metric = [a for a in ARGS if a not in ("--metric", "val-accuracy")]
    with FakeKfp(scenario, kube) as fake:
        result = subprocess.run(
            [sys.executable, "-m", "kfg", "trial", "--endpoint", fake.endpoint, *without_metric],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env(kube, tmp_path),
            timeout=120,
        )
    _clean(result)
    assert result.returncode == 0, result.stderr
    # Only the metric the runtime printed last, under a name Katib reads as itself.
    assert result.stdout == "val-accuracy=0.9777777777777777\n"
    assert "not printable for Katib" in result.stderr
