"""One pipeline run through the KFP API, start to metrics: what every Katib trial does.

The launcher finds the pipeline version GitOps synced (by the names kfg rendered), starts a
run with the given parameters, polls it until it ends or the timeout passes, and reads the
run's metric artifacts. Every way this can go wrong ends in a `LaunchError` whose message
says what happened in KFP's terms; nothing here prints, so the CLI decides what goes where.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

TERMINAL_OK = "SUCCEEDED"
TERMINAL_FAILED = {"FAILED", "CANCELED", "CANCELING", "SKIPPED"}
ARTIFACT_PAGE = 200


class LaunchError(Exception):
    """The run could not be started, failed, vanished or took too long."""


@dataclass(frozen=True)
class RunRequest:
    endpoint: str
    pipeline: str
    version: str
    run_name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()
    experiment: str | None = None  # KFP experiment; default: the pipeline's name
    namespace: str | None = None
    timeout_seconds: float = 7200.0
    poll_seconds: float = 10.0


@dataclass(frozen=True)
class RunResult:
    run_id: str
    state: str
    metrics: dict[str, float]


def _filter(key: str, value: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "stringValue": value}]})


def _api_error(action: str, exc: Exception) -> LaunchError:
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    detail = ""
    if isinstance(body, (str, bytes)):
        try:
            detail = json.loads(body).get("message", "")
        except (ValueError, AttributeError):
            detail = body.decode() if isinstance(body, bytes) else body
    reason = f"HTTP {status}" if status else type(exc).__name__
    message = f"{action}: the KFP API answered {reason}"
    return LaunchError(f"{message}: {detail}" if detail else message)


class Launcher:
    """Runs `RunRequest`s against one KFP API server through `kfp.Client`."""

    def __init__(
        self,
        request: RunRequest,
        client: Any = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.request = request
        self.clock = clock
        self.sleep = sleep
        self.client = client if client is not None else self._call("connecting", connect, request)

    def _call(self, action: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from kfp_server_api.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            # kfp.Client prints links to the KFP UI; stdout carries only metrics.
            with contextlib.redirect_stdout(sys.stderr):
                return function(*args, **kwargs)
        except ApiException as exc:
            raise _api_error(action, exc) from None
        except HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise LaunchError(
                f"{action}: cannot reach the KFP API at {self.request.endpoint} ({reason})"
            ) from None

    def version_ids(self) -> tuple[str, str]:
        request = self.request
        pipeline_id = self._call(
            f"finding pipeline `{request.pipeline}`", self.client.get_pipeline_id, request.pipeline
        )
        if not pipeline_id:
            raise LaunchError(
                f"pipeline `{request.pipeline}` does not exist on {request.endpoint}; has the"
                " rendered Pipeline been synced?"
            )
        listed = self._call(
            f"finding version `{request.version}`",
            self.client.list_pipeline_versions,
            pipeline_id,
            filter=_filter("display_name", request.version),
        )
        versions = [
            v for v in (listed.pipeline_versions or []) if v.display_name == request.version
        ]
        if not versions:
            raise LaunchError(
                f"pipeline `{request.pipeline}` has no version `{request.version}`; has the"
                " rendered PipelineVersion been synced?"
            )
        return pipeline_id, versions[0].pipeline_version_id

    def start(self) -> str:
        request = self.request
        pipeline_id, version_id = self.version_ids()
        experiment = self._call(
            "creating the KFP experiment",
            self.client.create_experiment,
            request.experiment or request.pipeline,
            namespace=request.namespace,
        )
        run = self._call(
            f"starting run `{request.run_name}`",
            self.client.run_pipeline,
            experiment.experiment_id,
            request.run_name,
            params=dict(request.parameters),
            pipeline_id=pipeline_id,
            version_id=version_id,
        )
        run_id: str = run.run_id
        return run_id

    def wait(self, run_id: str) -> str:
        from kfp_server_api.exceptions import ApiException

        deadline = self.clock() + self.request.timeout_seconds
        while True:
            try:
                with contextlib.redirect_stdout(sys.stderr):
                    run = self.client.get_run(run_id)
            except ApiException as exc:
                if exc.status == 404:
                    raise LaunchError(f"run {run_id} was deleted while kfg waited for it") from None
                raise _api_error(f"reading run {run_id}", exc) from None
            state = str(run.state or "")
            if state == TERMINAL_OK:
                return state
            if state in TERMINAL_FAILED:
                error = getattr(run, "error", None)
                reason = getattr(error, "message", None) or "no reason given"
                raise LaunchError(f"run {run_id} ended {state}: {reason}")
            if self.clock() >= deadline:
                self._call(f"terminating run {run_id}", self.client.terminate_run, run_id)
                raise LaunchError(
                    f"run {run_id} did not finish within {self.request.timeout_seconds:g} s"
                    " and was terminated"
                )
            self.sleep(self.request.poll_seconds)

    def read_run(self, run_id: str) -> dict[str, Any]:
        """The run as the v2beta1 API returns it (snake_case keys)."""
        run = self._call(f"reading run {run_id}", self.client.get_run, run_id)
        result: dict[str, Any] = run.to_dict()
        return result

    def get(self, path: str, query: list[tuple[str, str]]) -> dict[str, Any]:
        """A GET on the KFP API that kfp.Client has no method for, with its credentials."""
        api = self.client._run_api.api_client
        result: dict[str, Any] = self._call(
            f"reading {path}",
            api.call_api,
            path,
            "GET",
            query_params=query,
            response_type="object",
            auth_settings=["Bearer"],
            _return_http_data_only=True,
        )
        return result

    def _output_artifacts(self, run_id: str) -> Iterator[dict[str, Any]]:
        token = ""
        while True:
            query = [("run_ids", run_id), ("type", "OUTPUT"), ("page_size", str(ARTIFACT_PAGE))]
            if token:
                query.append(("page_token", token))
            page = self.get("/apis/v2beta1/artifact_tasks", query)
            for link in page.get("artifact_tasks") or []:
                yield self.get(f"/apis/v2beta1/artifacts/{link['artifact_id']}", [])
            token = page.get("next_page_token") or ""
            if not token:
                return

    def metrics(self, run_id: str) -> dict[str, float]:
        """The run's metrics: `Metric` artifacts, and metrics logged on Metrics artifacts."""
        wanted = set(self.request.metrics)
        found: dict[str, float] = {}
        for artifact in self._output_artifacts(run_id):
            kind = artifact.get("type")
            name = artifact.get("name", "")
            if kind == "Metric" and "number_value" in artifact:
                found[name] = float(artifact["number_value"])
            for key, value in (artifact.get("metadata") or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    found.setdefault(key, float(value))
        if wanted:
            missing = sorted(wanted - set(found))
            if missing:
                raise LaunchError(
                    f"run {run_id} succeeded but reported no {', '.join(missing)}"
                    f" (it reported: {', '.join(sorted(found)) or 'nothing'})"
                )
            return {name: found[name] for name in self.request.metrics}
        return dict(sorted(found.items()))

    def run(self) -> RunResult:
        run_id = self.start()
        state = self.wait(run_id)
        return RunResult(run_id, state, self.metrics(run_id))


def connect(request: RunRequest) -> Any:
    """A `kfp.Client` for the endpoint; in a pod it picks up the projected token itself."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kfp's notice about which servers it supports
        from kfp.client import Client

        return Client(host=request.endpoint, namespace=request.namespace or "kubeflow")
