"""`kfg schedule-run` (a schedule's CronJob Job) against the loopback KFP 2.17.0 API."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kfg.config.model import Pipeline, Schedule
from kfg.launcher.schedule import Firing, fire_time
from kfg.render.launcher import RULES
from kfg.render.schedules import JOB_NAME_ENV, rules
from tests.conftest import REPO
from tests.launcher.fake_kfp import EXPERIMENT_ID, RUN_ID, FakeKfp, Scenario
from tests.launcher.fake_kube import FakeKube

MINUTES = 29_412_360  # what the CronJob controller appends to the Job's name
FIRED = datetime.datetime.fromtimestamp(MINUTES * 60, datetime.timezone.utc)
RUN_NAME = f"digits-mlp-nightly-{FIRED:%Y%m%d-%H%M}"
JOB = f"digits-mlp-nightly-{MINUTES}"


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        yield fake


def schedule_run(
    fake: FakeKfp, kube: FakeKube, tmp_path: Path, policy: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KUBERNETES_SERVICE", "KF_PIPELINES", "KFG_"))
    }
    environment = {
        **base,
        "KUBECONFIG": str(kube.kubeconfig(tmp_path / "kubeconfig", "kubeflow")),
        "PYTHONWARNINGS": "ignore",
        JOB_NAME_ENV: JOB,
    }
    command = [
        *("schedule-run", "--pipeline", "digits-mlp", "--version", "digits-mlp-f4dfc150"),
        *("--schedule", "nightly", "--concurrency-policy", policy, "--poll", "0.05"),
        *("--endpoint", fake.endpoint, "--param", "hidden_units:int=32", *extra),
    ]
    return subprocess.run(
        [sys.executable, "-m", "kfg", *command],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=environment,
        timeout=120,
    )


def _earlier(fake: FakeKfp, run_id: str, name: str, state: str) -> None:
    """A run an earlier firing started, still in KFP after its launcher's Job ended."""
    if not fake.experiments:
        fake.experiments.append(
            {"experiment_id": EXPERIMENT_ID, "display_name": "digits-mlp", "namespace": ""}
        )
    fake.runs[run_id] = {
        "run_id": run_id,
        "display_name": name,
        "experiment_id": EXPERIMENT_ID,
        "state": state,
    }


def _created(fake: FakeKfp) -> list[dict[str, Any]]:
    return [r.body for r in fake.requests if r.operation == "run_service_create_run"]


def test_the_run_is_named_after_the_schedule_and_its_fire_time(
    kube: FakeKube, tmp_path: Path
) -> None:
    with FakeKfp(Scenario(), kube) as fake:
        result = schedule_run(fake, kube, tmp_path, "Forbid")
    assert result.returncode == 0, result.stderr
    [body] = _created(fake)
    assert body["display_name"] == RUN_NAME
    assert "schedule `nightly`" in body["description"] and JOB in body["description"]
    assert body["runtime_config"]["parameters"] == {"hidden_units": 32}
    [listing] = [r for r in fake.requests if r.operation == "run_service_list_runs"]
    assert listing.query["experiment_id"] == [EXPERIMENT_ID]
    [predicate] = json.loads(listing.query["filter"][0])["predicates"]
    assert predicate == {
        "operation": "IS_SUBSTRING",
        "key": "display_name",
        "string_value": "digits-mlp-nightly-",
    }


def test_forbid_starts_nothing_while_a_run_of_the_schedule_is_active(
    kube: FakeKube, tmp_path: Path
) -> None:
    with FakeKfp(Scenario(), kube) as fake:
        _earlier(fake, "earlier-run", "digits-mlp-nightly-20261201-0300", "RUNNING")
        result = schedule_run(fake, kube, tmp_path, "Forbid")
    assert result.returncode == 0, result.stderr
    assert _created(fake) == []
    assert "earlier-run" in result.stderr and "Forbid" in result.stderr
    assert fake.terminated == []


def test_forbid_ignores_finished_runs_and_other_schedules(kube: FakeKube, tmp_path: Path) -> None:
    with FakeKfp(Scenario(), kube) as fake:
        _earlier(fake, "done", "digits-mlp-nightly-20261201-0300", "SUCCEEDED")
        _earlier(fake, "failed", "digits-mlp-nightly-20261130-0300", "FAILED")
        _earlier(fake, "other", "digits-mlp-nightly-2-20261201-0300", "RUNNING")
        result = schedule_run(fake, kube, tmp_path, "Forbid")
    assert result.returncode == 0, result.stderr
    assert [b["display_name"] for b in _created(fake)] == [RUN_NAME]


def test_replace_terminates_the_active_run_then_starts(kube: FakeKube, tmp_path: Path) -> None:
    with FakeKfp(Scenario(), kube) as fake:
        _earlier(fake, "earlier-run", "digits-mlp-nightly-20261201-0300", "RUNNING")
        result = schedule_run(fake, kube, tmp_path, "Replace")
    assert result.returncode == 0, result.stderr
    assert fake.terminated == ["earlier-run"]
    operations = fake.operations_called()
    assert operations.index("run_service_terminate_run") < operations.index(
        "run_service_create_run"
    )


def test_allow_does_not_ask(kube: FakeKube, tmp_path: Path) -> None:
    with FakeKfp(Scenario(), kube) as fake:
        _earlier(fake, "earlier-run", "digits-mlp-nightly-20261201-0300", "RUNNING")
        result = schedule_run(fake, kube, tmp_path, "Allow")
    assert result.returncode == 0, result.stderr
    assert "run_service_list_runs" not in fake.operations_called()
    assert [b["display_name"] for b in _created(fake)] == [RUN_NAME]
    assert RUN_ID in fake.runs


def _allowed(granted: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {
        (resource, verb)
        for rule in granted
        if rule["apiGroups"] == ["pipelines.kubeflow.org"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_schedule_role_is_what_forbid_needs(kube: FakeKube, tmp_path: Path) -> None:
    """KFP 2.17.0 run_server.go listRuns asks for `list` on `runs`: the trial Role lacks it."""
    pipeline = Pipeline(
        name="digits-mlp",
        source=Path("kale.yaml"),
        notebook=Path("digits.ipynb"),
        steps=(),
        schedules=(Schedule("nightly", "@daily"),),
    )
    with FakeKfp(Scenario(allowed=_allowed(RULES)), kube) as fake:
        refused = schedule_run(fake, kube, tmp_path, "Forbid")
    assert refused.returncode == 1
    assert "listing the runs of schedule `nightly`" in refused.stderr
    assert "Traceback" not in refused.stderr
    with FakeKfp(Scenario(allowed=_allowed(rules(pipeline))), kube) as fake:
        allowed = schedule_run(fake, kube, tmp_path, "Replace")
    assert allowed.returncode == 0, allowed.stderr


def test_a_bad_policy_is_a_usage_error(kube: FakeKube, tmp_path: Path) -> None:
    with FakeKfp(Scenario(), kube) as fake:
        result = schedule_run(fake, kube, tmp_path, "forbid")
    assert result.returncode == 2
    assert fake.requests == []


def test_fire_time_comes_from_the_job_name_and_falls_back_to_now() -> None:
    now = datetime.datetime(2026, 12, 2, 3, 4, 59, tzinfo=datetime.timezone.utc)
    assert fire_time(JOB, "digits-mlp-nightly", now) == FIRED
    # `kubectl create job --from=cronjob/...` names the Job freely.
    for job in (None, "manual-retry", "digits-mlp-nightly-manual"):
        assert fire_time(job, "digits-mlp-nightly", now) == now.replace(second=0)


def test_a_schedule_owns_only_its_own_runs() -> None:
    firing = Firing("wine", "nightly", FIRED)
    assert firing.owns(firing.run_name)
    assert not firing.owns("wine-nightly-2-20261201-0300")
    assert not firing.owns("wine-nightly-20261201-0300-retry")
