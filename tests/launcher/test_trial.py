"""`kfg trial` end to end against a loopback KFP 2.17.0 API and a loopback Kubernetes API."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kfg.launcher.params import ParameterError, convert, parse_override, parse_typed
from kfg.launcher.podlogs import parse
from kfg.render.launcher import RULES
from kfg.runtime.step import metric_line
from tests.conftest import REPO
from tests.launcher.fake_kfp import (
    EXPERIMENT_ID,
    METRIC_ARTIFACTS,
    PIPELINE,
    RUN_ID,
    VERSION,
    FakeKfp,
    Scenario,
    operations,
)
from tests.launcher.fake_kube import FakeKube, Step

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
K8S_TOKEN = "k8s-sa-token"
METRIC_LOG_WITHOUT = "accuracy printed by a cell: val-accuracy=0.5\n"


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[FakeKube]:
    with FakeKube(token=K8S_TOKEN) as fake:
        yield fake


def env(
    kube: FakeKube, tmp_path: Path, namespace: str = "kubeflow", **extra: str
) -> dict[str, str]:
    """The environment of the launcher: the fake cluster's kubeconfig, no in-cluster account."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KUBERNETES_SERVICE", "KF_PIPELINES"))
    }
    kubeconfig = kube.kubeconfig(tmp_path / "kubeconfig", namespace)
    return {**base, "KUBECONFIG": str(kubeconfig), "PYTHONWARNINGS": "ignore", **extra}


def trial(
    fake: FakeKfp, environment: dict[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kfg", "trial", "--endpoint", fake.endpoint, *ARGS, *extra],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=environment,
        timeout=120,
    )


def test_the_fake_serves_exactly_the_operations_of_the_generated_client() -> None:
    served = {(o.method, o.template) for o in operations()}
    assert len(operations()) == 40  # kfp-server-api 2.17.0: 10 services
    assert ("POST", "/apis/v2beta1/runs/{run_id}:terminate") in served
    assert ("GET", "/apis/v2beta1/pipelines/names/{name}") in served
    assert not [t for _, t in served if "artifact" in t]  # 2.17.0 has none
    with FakeKfp(Scenario()) as fake:
        for path in ("/apis/v2beta1/artifact_tasks", "/apis/v2beta1/artifacts/1", "/apis/v1/x"):
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(fake.endpoint + path, timeout=30)
            assert caught.value.code == 404
            assert json.loads(caught.value.read())["code"] == 5


def test_success_reads_the_metric_from_the_step_pods_log(kube: FakeKube, tmp_path: Path) -> None:
    with FakeKfp(Scenario(), kube) as fake:
        result = trial(fake, env(kube, tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "val-accuracy=0.9777777777777777\n"
    assert f"kfg: run {RUN_ID} SUCCEEDED" in result.stderr
    assert fake.operations_called() == [
        "pipeline_service_get_pipeline_by_name",
        "pipeline_service_list_pipeline_versions",
        "experiment_service_list_experiments",
        "experiment_service_create_experiment",
        "run_service_create_run",
        "run_service_get_run",
        "run_service_get_run",
        "run_service_get_run",
    ]
    # The artifact endpoints are asked for once and answer 404, as 2.17.0's gateway does.
    assert fake.requests[-1].path == "/apis/v2beta1/artifact_tasks"
    assert fake.requests[-1].status == 404
    assert fake.requests[0].path == "/apis/v2beta1/pipelines/names/digits-mlp"
    assert fake.requests[0].query == {}
    versions = json.loads(fake.requests[1].query["filter"][0])
    assert versions["predicates"] == [
        {"operation": "EQUALS", "key": "display_name", "string_value": "digits-mlp-f4dfc150"}
    ]
    assert fake.requests[3].body == {"display_name": "digits-mlp"}
    assert fake.requests[4].body == {
        "experiment_id": EXPERIMENT_ID,
        "display_name": "digits-trial-x7k2",
        "pipeline_version_reference": {
            "pipeline_id": VERSION["pipeline_id"],
            "pipeline_version_id": VERSION["pipeline_version_id"],
        },
        "runtime_config": {"parameters": {"hidden_units": 64, "learning_rate": 0.003}},
    }
    # Kubernetes: the run's pods by label, then the newest executor's `main` log only.
    listed, log = kube.requests
    assert listed.path == "/api/v1/namespaces/kubeflow/pods"
    assert listed.query["labelSelector"] == [f"pipeline/runid={RUN_ID}"]
    assert log.path.endswith("-system-container-impl-2002/log")  # evaluate's executor
    assert log.query["container"] == ["main"]
    assert all(r.headers["authorization"] == f"Bearer {K8S_TOKEN}" for r in kube.requests)


def test_a_run_without_the_declared_metric_fails_naming_metric_and_run(
    kube: FakeKube, tmp_path: Path
) -> None:
    steps = [Step("load", "loaded\n"), Step("evaluate", METRIC_LOG_WITHOUT, cached=True)]
    with FakeKfp(Scenario(steps=steps), kube) as fake:
        result = trial(fake, env(kube, tmp_path))
    assert result.returncode == 1
    assert result.stdout == ""
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(
        f"kfg: run {RUN_ID} succeeded but reported no metric `val-accuracy`"
        " (it reported: nothing); 1 step pod log(s) read in namespace kubeflow."
    )
    assert "cache" in message
    assert "Traceback" not in result.stderr


def test_pods_already_deleted_are_reported(kube: FakeKube, tmp_path: Path) -> None:
    scenario = Scenario(on_poll=lambda polls: kube.delete_pods() if polls == 3 else None)
    with FakeKfp(scenario, kube) as fake:
        result = trial(fake, env(kube, tmp_path))
    assert result.returncode == 1
    assert "no succeeded step pod of the run is left in namespace kubeflow" in result.stderr
    assert f"run {RUN_ID} succeeded but reported no metric `val-accuracy`" in result.stderr


def test_artifact_endpoints_are_used_where_the_server_has_them(
    kube: FakeKube, tmp_path: Path
) -> None:
    scenario = Scenario(artifact_api=True, artifacts=METRIC_ARTIFACTS)
    with FakeKfp(scenario, kube) as fake:
        result = trial(fake, env(kube, tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "val-accuracy=0.9777777777777777\n"
    assert fake.operations_called()[-3:] == ["list_artifact_tasks", "get_artifact", "get_artifact"]
    artifacts = next(r for r in fake.requests if r.path == "/apis/v2beta1/artifact_tasks")
    assert artifacts.query == {"run_ids": [RUN_ID], "type": ["OUTPUT"], "page_size": ["200"]}
    assert kube.requests == []  # everything came from the API: no pod log was needed


def test_every_kfp_request_carries_the_token_from_the_file_as_it_rotates(
    kube: FakeKube, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("first-token\n")
    scenario = Scenario(
        multi_user=True,
        token_file=token,
        on_poll=lambda polls: token.write_text("rotated-token") if polls == 1 else None,
    )
    environment = env(kube, tmp_path, "team-a", KF_PIPELINES_SA_TOKEN_PATH=str(token))
    scenario.pipelines = [{**PIPELINE, "namespace": "team-a"}]
    with FakeKfp(scenario, kube) as fake:
        result = trial(fake, environment, "--namespace", "team-a")
    assert result.returncode == 0, result.stderr
    headers = [r.headers.get("authorization") for r in fake.requests if r.operation]
    assert headers[:6] == ["Bearer first-token"] * 6  # up to the first GetRun
    assert headers[-1] == "Bearer rotated-token"
    assert all(r.status != 401 for r in fake.requests)


def test_without_the_token_a_multi_user_server_refuses(kube: FakeKube, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    scenario = Scenario(multi_user=True, token_file=token)
    scenario.pipelines = [{**PIPELINE, "namespace": "team-a"}]
    with FakeKfp(scenario, kube) as fake:
        result = trial(fake, env(kube, tmp_path, "team-a"), "--namespace", "team-a")
    assert result.returncode == 1
    assert "HTTP 401" in result.stderr
    assert "authorization" not in fake.requests[0].headers


def test_sigterm_terminates_the_run_then_exits(kube: FakeKube, tmp_path: Path) -> None:
    with FakeKfp(Scenario(states=["RUNNING"]), kube) as fake:
        process = subprocess.Popen(
            [sys.executable, "-m", "kfg", "trial", "--endpoint", fake.endpoint, *ARGS],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env(kube, tmp_path),
        )
        try:
            assert fake.polled.wait(120), "the launcher never polled its run"
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=120)
        finally:
            process.kill()
    assert process.returncode == 143
    assert fake.terminated == [RUN_ID]
    assert fake.operations_called()[-1] == "run_service_terminate_run"
    assert f"kfg: SIGTERM: terminated run {RUN_ID}" in stderr
    assert stdout == ""


def test_deleting_a_wrapped_trial_reaches_the_launcher_through_the_prestop_hook(
    kube: FakeKube, tmp_path: Path
) -> None:
    """Katib runs the launcher under `sh -c` (kubeflow/katib v0.19.0 pkg/webhook/v1beta1/
    pod/utils.go), which does not pass SIGTERM on; the rendered preStop hook finds the
    launcher through its pid file, signals it and waits until it has ended its run."""
    from kfg.render.launcher import PIDFILE_ENV, STOP_SCRIPT

    pidfile = tmp_path / "kfg-launcher.pid"
    script = STOP_SCRIPT.replace("/tmp/kfg-launcher.pid", str(pidfile))
    command = " ".join(
        shlex.quote(a)
        for a in [sys.executable, "-m", "kfg", "trial", "--endpoint", "ENDPOINT", *ARGS]
    )
    with FakeKfp(Scenario(states=["RUNNING"]), kube) as fake:
        wrapped = subprocess.Popen(
            ["sh", "-c", command.replace("ENDPOINT", fake.endpoint) + " > /dev/null 2>&1; exit 0"],
            cwd=REPO,
            env={**env(kube, tmp_path), PIDFILE_ENV: str(pidfile)},
        )
        try:
            assert fake.polled.wait(120), "the launcher never polled its run"
            assert pidfile.read_text().strip().isdigit()
            hook = subprocess.run(["sh", "-c", script], timeout=120)
            wrapped.wait(timeout=120)
        finally:
            wrapped.kill()
    assert hook.returncode == 0
    assert fake.terminated == [RUN_ID]
    assert not pidfile.exists()


def test_two_namespaces_with_the_same_pipeline_name(kube: FakeKube, tmp_path: Path) -> None:
    other = {**PIPELINE, "pipeline_id": "other-pipeline", "namespace": "team-a"}
    mine = {**PIPELINE, "namespace": "team-b"}
    scenario = Scenario(
        multi_user=True,
        pipelines=[other, mine],
        versions={
            "other-pipeline": [
                {**VERSION, "pipeline_id": "other-pipeline", "pipeline_version_id": "v-a"}
            ],
            PIPELINE["pipeline_id"]: [dict(VERSION)],
        },
    )
    with FakeKfp(scenario, kube) as fake:
        result = trial(fake, env(kube, tmp_path, "team-b"), "--namespace", "team-b")
    assert result.returncode == 0, result.stderr
    assert fake.requests[0].query == {"namespace": ["team-b"]}
    created = next(r for r in fake.requests if r.operation == "run_service_create_run")
    assert created.body["pipeline_version_reference"]["pipeline_id"] == PIPELINE["pipeline_id"]
    experiment = next(
        r for r in fake.requests if r.operation == "experiment_service_create_experiment"
    )
    assert experiment.body == {"display_name": "digits-mlp", "namespace": "team-b"}
    assert kube.requests[0].path == "/api/v1/namespaces/team-b/pods"


def _granted() -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in RULES
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_role_grants_exactly_what_the_launcher_uses(kube: FakeKube, tmp_path: Path) -> None:
    """Both fakes authorise every request against RULES (so each run proves they suffice),
    and what the runs exercised, over the success and the timeout paths, is all of RULES."""
    from tests.launcher.fake_kfp import AUTHZ

    granted = _granted()
    kfp_allowed = {(r, v) for g, r, v in granted if g == "pipelines.kubeflow.org"}
    kube.allowed = {(r, v) for g, r, v in granted if g == ""}
    used: set[tuple[str, str, str]] = set()
    for scenario, extra in ((Scenario(), ()), (Scenario(states=["RUNNING"]), ("--timeout", "2"))):
        scenario.allowed = kfp_allowed
        with FakeKfp(scenario, kube) as fake:
            result = trial(fake, env(kube, tmp_path), *extra)
        assert all(r.status not in (401, 403) for r in fake.requests + kube.requests)
        for operation in fake.operations_called():
            needed = AUTHZ[operation]
            if needed is not None:
                used.add(("pipelines.kubeflow.org", *needed))
        for request in kube.requests:
            if request.operation:
                resource, verb = request.operation.split()
                used.add(("", resource, verb))
        assert result.returncode == (0 if not extra else 1), result.stderr
    assert used == granted


def test_failed_run_exits_1_with_kfps_reason(kube: FakeKube, tmp_path: Path) -> None:
    scenario = Scenario(states=["RUNNING", "FAILED"], error="step train: OOMKilled")
    with FakeKfp(scenario, kube) as fake:
        result = trial(fake, env(kube, tmp_path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"kfg: run {RUN_ID} ended FAILED: step train: OOMKilled" in result.stderr
    assert "Traceback" not in result.stderr


def test_timeout_terminates_the_run_and_exits_1(kube: FakeKube, tmp_path: Path) -> None:
    with FakeKfp(Scenario(states=["RUNNING"]), kube) as fake:
        # The deadline covers everything from the start, finding the pipeline included.
        result = trial(fake, env(kube, tmp_path), "--timeout", "2")
    assert result.returncode == 1
    assert "did not finish within 2 s and was terminated" in result.stderr
    assert fake.terminated == [RUN_ID]


def test_server_error_is_reported_in_one_line(kube: FakeKube, tmp_path: Path) -> None:
    with FakeKfp(Scenario(create_run_status=500), kube) as fake:
        result = trial(fake, env(kube, tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "kfg: starting run `digits-trial-x7k2`: the KFP API answered HTTP 500:"
        " Internal error: failed to create a run: database is locked"
    )


def test_deleted_run_and_missing_pipeline(kube: FakeKube, tmp_path: Path) -> None:
    with FakeKfp(Scenario(run_gone=True), kube) as fake:
        gone = trial(fake, env(kube, tmp_path))
    assert gone.returncode == 1 and "was deleted while kfg waited for it" in gone.stderr
    with FakeKfp(Scenario(pipelines=[]), kube) as fake:
        missing = trial(fake, env(kube, tmp_path), "--namespace", "team-a")
    assert missing.returncode == 1
    assert "pipeline `digits-mlp` does not exist in namespace team-a" in missing.stderr


def test_unreachable_server_and_bad_parameters(kube: FakeKube, tmp_path: Path) -> None:
    unreachable = subprocess.run(
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
        ],  # refused connections are tried again until the deadline
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env(kube, tmp_path),
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


def test_metric_lines_round_trip_and_nothing_else_parses() -> None:
    line = metric_line("evaluate", "val-accuracy", 0.9777777777777777)
    assert parse(line) == ("evaluate", "val-accuracy", 0.9777777777777777)
    for other in (
        "val-accuracy=0.97",
        "kfg:metric not json",
        'kfg:metric {"name": "a", "step": "s", "value": "high"}',
        'kfg:metric {"name": "a", "step": "s", "value": true}',
        ' kfg:metric {"name": "a", "step": "s", "value": 1}',
    ):
        assert parse(other) is None


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("n:int=16", 16),
        ("n:int=16.0", 16),
        ("r:float=1e-05", 1e-05),
        ("b:bool=true", True),
        ("s:str=gini", "gini"),
        ("l:list=[1, 2]", [1, 2]),
        ('d:dict={"a": 1}', {"a": 1}),
    ],
)
def test_typed_parameters(argument: str, value: object) -> None:
    assert parse_typed(argument)[1] == value


@pytest.mark.parametrize(
    "argument",
    [
        "n=1",
        "n:int",
        "n:float=nan",
        "n:bool=maybe",
        "n:x=1",
        "n:int=12345678901234567890",  # KFP's numbers are doubles: beyond 2**53 digits change
        "l:list=[NaN]",
        'd:dict={"a": null}',
        "l:list=" + "[" * 5000 + "]" * 5000,
    ],
)
def test_malformed_parameters(argument: str) -> None:
    with pytest.raises(ParameterError):
        parse_typed(argument)


def test_overrides_use_the_pipelines_types() -> None:
    assert parse_override("C=2", {"C": "float"}) == ("C", 2.0)
    with pytest.raises(ParameterError, match="unknown parameter `c`"):
        parse_override("c=2", {"C": "float"})
    assert convert("x", "str", "1") == "1"
