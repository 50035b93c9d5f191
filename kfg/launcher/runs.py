"""One pipeline run through the KFP API, start to metrics: what every Katib trial does.

The launcher finds the pipeline version GitOps synced (by the names kfg rendered, in the
pipeline's namespace), starts a run with the given parameters, polls it until it ends or
the timeout passes, and reads the metrics the run's steps reported. Every way this can go
wrong ends in a `LaunchError` whose message says what happened in KFP's terms; nothing
here prints on stdout, which carries only metrics (Katib's StdOut collector reads it).

The calls, and what KFP 2.17.0's authorizer checks for each (`backend/src/apiserver/server/
*_server.go`), are exactly what `kfg.render.launcher.RULES` grants: GetPipelineByName (get
pipelines), ListPipelineVersions (list pipelines), ListExperiments (list experiments),
CreateExperiment (create experiments), CreateRun (create runs), GetRun (get runs) and
TerminateRun (terminate runs); then, in Kubernetes, list pods and get pods/log.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kfg.launcher.kfpapi import ABSENT, DeadlineError, Kfp, KfpError

TERMINAL_OK = "SUCCEEDED"
TERMINAL_FAILED = {"FAILED", "CANCELED", "CANCELING", "SKIPPED"}
ARTIFACT_PAGE = 200
PAGE = 100
# Backoff between tries of a request that failed transiently (refused, reset, timed out,
# 502/503/504): doubling from FIRST_BACKOFF up to MAX_BACKOFF seconds, for as long as the
# deadline allows, so an API server restarting for a minute does not fail a two-hour trial.
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 15.0
# How long one request keeps failing before the launcher gives up even with time left: an
# API server restarts in a minute or two; a wrong endpoint should not take the whole
# two-hour deadline to be reported.
RETRY_WINDOW = 300.0
# Seconds granted past the deadline to terminate the run it left behind.
TERMINATE_GRACE = 10.0
# Characters of a metric name printed on stdout: what Katib's default StdOut filter
# `([\w|-]+)\s*=\s*(...)` reads as one name (kubeflow/katib v0.19.0
# pkg/metricscollector/v1beta1/common/const.go), in ASCII.
METRIC_NAME = re.compile(r"[A-Za-z0-9_-]+")


class LaunchError(Exception):
    """The run could not be started, failed, vanished or took too long."""


class DeadlineExceeded(LaunchError):
    """The request's `timeout_seconds` passed; the run (if any) has been terminated."""


class Terminated(Exception):
    """The launcher was asked to stop (SIGTERM: Katib deleted or early-stopped the trial)."""


@dataclass(frozen=True)
class RunRequest:
    endpoint: str
    pipeline: str
    version: str
    run_name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()  # required; none: report whatever the run printed
    experiment: str | None = None  # KFP experiment; default: the pipeline's name
    namespace: str | None = None
    timeout_seconds: float = 7200.0
    poll_seconds: float = 10.0
    description: str | None = None  # shown in the KFP UI (a schedule says it started the run)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    state: str
    metrics: dict[str, float]


def _filter(key: str, value: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "string_value": value}]})


def _log(message: str) -> None:
    print(f"kfg: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into `Terminated` in the main thread, so the caller can clean up."""

    def handler(signum: int, frame: object) -> None:
        raise Terminated(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# Seconds past `timeout_seconds` after which the alarm below ends whatever is still going
# on; every request's own timeouts are capped by the deadline, so this is a backstop.
BACKSTOP = 5.0


@contextlib.contextmanager
def hard_deadline(seconds: float) -> Iterator[None]:
    """Raise `DeadlineExceeded` in the main thread once `seconds` (plus a backstop margin)
    have passed, whatever the launcher is blocked in."""

    def handler(signum: int, frame: object) -> None:
        raise DeadlineExceeded(f"the --timeout of {seconds:g} s passed")

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.0) + BACKSTOP)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _deferred_sigterm() -> Iterator[None]:
    """Hold SIGTERM back while a run is being created, so its id is known when it lands."""
    blocked = {signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)


class Launcher:
    """Runs `RunRequest`s against one KFP API server."""

    def __init__(
        self,
        request: RunRequest,
        kfp: Kfp | None = None,
        pods: Any = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.request = request
        self.clock = clock
        self.sleep = sleep
        # One deadline over everything: finding the pipeline, creating the run, polling it
        # and reading its metrics. Every request's timeouts are capped by it.
        self.deadline = clock() + request.timeout_seconds
        self.kfp = kfp if kfp is not None else Kfp.connect(request.endpoint)
        self.kfp.deadline = self.deadline
        self.kfp.clock = clock
        self._pods = pods
        self.run_id: str | None = None
        self.ended = False  # the run reached a final state (nothing left to terminate)

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def expired(self, doing: str) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"{doing}: the --timeout of {self.request.timeout_seconds:g} s passed"
        )

    def send(
        self, service: str, operation: str, *args: Any, idempotent: bool = True, **kwargs: Any
    ) -> dict[str, Any]:
        """One KFP request, tried again with backoff while it fails transiently and the
        deadline allows. A request that creates something is sent again only when the
        connection was never made, so a reset after the server acted cannot duplicate it."""
        backoff = FIRST_BACKOFF
        give_up = self.clock() + RETRY_WINDOW
        while True:
            try:
                return self.kfp.call(service, operation, *args, **kwargs)
            except DeadlineError:
                raise
            except KfpError as exc:
                if not exc.transient or (exc.sent and not idempotent):
                    raise
                pause = min(backoff, MAX_BACKOFF)
                if self.remaining() <= pause or self.clock() + pause > give_up:
                    raise
                _log(f"{operation} failed ({exc}); trying again in {pause:g} s")
                self.sleep(pause)
                backoff *= 2

    def _call(self, action: str, service: str, operation: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.send(service, operation, *args, **kwargs)
        except DeadlineError:
            raise self.expired(action) from None
        except KfpError as exc:
            raise LaunchError(f"{action}: {exc}") from None

    def version_ids(self) -> tuple[str, str]:
        """The pipeline by its name in the request's namespace, then its version by name.

        A lookup by name in one namespace, not a list over all of them: two profiles may
        each have a pipeline of this name (kfp.Client.get_pipeline_id refuses such a name).
        """
        request = self.request
        where = f" in namespace {request.namespace}" if request.namespace else ""
        try:
            pipeline = self.send(
                "PipelineServiceApi",
                "pipeline_service_get_pipeline_by_name",
                request.pipeline,
                namespace=request.namespace,
            )
        except DeadlineError:
            raise self.expired(f"finding pipeline `{request.pipeline}`") from None
        except KfpError as exc:
            if exc.status == 404:
                raise LaunchError(
                    f"pipeline `{request.pipeline}` does not exist{where} on {request.endpoint};"
                    " has the rendered Pipeline been synced?"
                ) from None
            raise LaunchError(f"finding pipeline `{request.pipeline}`{where}: {exc}") from None
        pipeline_id = str(pipeline.get("pipeline_id") or "")
        if not pipeline_id:
            raise LaunchError(f"pipeline `{request.pipeline}`{where}: KFP returned no id")
        listed = self._call(
            f"finding version `{request.version}`",
            "PipelineServiceApi",
            "pipeline_service_list_pipeline_versions",
            pipeline_id,
            filter=_filter("display_name", request.version),
            page_size=PAGE,
        )
        versions = [
            v
            for v in listed.get("pipeline_versions") or []
            if request.version in (v.get("display_name"), v.get("name"))
        ]
        if not versions:
            raise LaunchError(
                f"pipeline `{request.pipeline}`{where} has no version `{request.version}`;"
                " has the rendered PipelineVersion been synced?"
            )
        return pipeline_id, str(versions[0]["pipeline_version_id"])

    def experiment_id(self) -> str:
        """The KFP experiment the run belongs to, created on first use."""
        request = self.request
        name = request.experiment or request.pipeline
        for attempt in (1, 2):
            listed = self._call(
                f"finding KFP experiment `{name}`",
                "ExperimentServiceApi",
                "experiment_service_list_experiments",
                filter=_filter("display_name", name),
                namespace=request.namespace,
                page_size=PAGE,
            )
            for found in listed.get("experiments") or []:
                if found.get("display_name") == name:
                    return str(found["experiment_id"])
            body: dict[str, Any] = {"display_name": name}
            if request.namespace:
                body["namespace"] = request.namespace
            try:
                created = self.send(
                    "ExperimentServiceApi",
                    "experiment_service_create_experiment",
                    body,
                    idempotent=False,
                )
            except DeadlineError:
                raise self.expired(f"creating KFP experiment `{name}`") from None
            except KfpError as exc:
                # A parallel trial created it first: look again.
                if exc.status == 409 and attempt == 1:
                    continue
                raise LaunchError(f"creating KFP experiment `{name}`: {exc}") from None
            return str(created["experiment_id"])
        raise LaunchError(f"creating KFP experiment `{name}`: it exists but cannot be found")

    def start(self) -> str:
        request = self.request
        pipeline_id, version_id = self.version_ids()
        body = {
            "experiment_id": self.experiment_id(),
            "display_name": request.run_name,
            "pipeline_version_reference": {
                "pipeline_id": pipeline_id,
                "pipeline_version_id": version_id,
            },
            "runtime_config": {"parameters": dict(request.parameters)},
        }
        if request.description:
            body["description"] = request.description
        with _deferred_sigterm():
            run = self._call(
                f"starting run `{request.run_name}`",
                "RunServiceApi",
                "run_service_create_run",
                body,
                idempotent=False,
            )
            self.run_id = str(run["run_id"])
        return self.run_id

    def terminate(self, run_id: str) -> None:
        """Terminate the run, with a few seconds past the deadline if it has passed: a run
        left behind would go on using the cluster with nobody watching it."""
        self.kfp.deadline = max(self.deadline, self.clock() + TERMINATE_GRACE)
        try:
            self._call(
                f"terminating run {run_id}", "RunServiceApi", "run_service_terminate_run", run_id
            )
        finally:
            self.kfp.deadline = self.deadline

    def wait(self, run_id: str) -> str:
        while True:
            try:
                run = self.send("RunServiceApi", "run_service_get_run", run_id)
            except KfpError as exc:
                if exc.status == 404:
                    raise LaunchError(f"run {run_id} was deleted while kfg waited for it") from None
                if not exc.transient:
                    raise LaunchError(f"reading run {run_id}: {exc}") from None
                run = {}  # still failing as the deadline nears: it ends below
            state = str(run.get("state") or "")
            self.ended = state == TERMINAL_OK or state in TERMINAL_FAILED
            if state == TERMINAL_OK:
                return state
            if state in TERMINAL_FAILED:
                reason = (run.get("error") or {}).get("message") or "no reason given"
                raise LaunchError(f"run {run_id} ended {state}: {reason}")
            if self.remaining() <= 0:
                self.terminate(run_id)
                self.ended = True
                raise DeadlineExceeded(
                    f"run {run_id} did not finish within {self.request.timeout_seconds:g} s"
                    " and was terminated"
                )
            self.sleep(max(0.0, min(self.request.poll_seconds, self.remaining())))

    def read_run(self, run_id: str) -> dict[str, Any]:
        """The run as the v2beta1 API returns it (snake_case keys)."""
        result: dict[str, Any] = self._call(
            f"reading run {run_id}", "RunServiceApi", "run_service_get_run", run_id
        )
        return result

    # --- metrics -----------------------------------------------------------------------

    def artifact_metrics(self, run_id: str) -> dict[str, float] | None:
        """Metrics from the artifact endpoints of servers that have them, else None.

        KFP 2.17.0 does not (`artifact_tasks` and `artifacts/{id}` are on the unreleased
        `mlmd-removal` branch, `backend/api/v2beta1/artifact.proto`); there the first request
        answers 404 and the launcher reads the pods' logs instead.
        """
        found: dict[str, float] = {}
        token = ""
        while True:
            query = [("run_ids", run_id), ("type", "OUTPUT"), ("page_size", str(ARTIFACT_PAGE))]
            if token:
                query.append(("page_token", token))
            try:
                page = self.kfp.get("/apis/v2beta1/artifact_tasks", query)
                links = page.get("artifact_tasks") or []
                artifacts = [
                    self.kfp.get(f"/apis/v2beta1/artifacts/{link['artifact_id']}", [])
                    for link in links
                ]
            except DeadlineError:
                raise self.expired(f"reading the metrics of run {run_id}") from None
            except KfpError as exc:
                if exc.status not in ABSENT:
                    _log(f"reading the artifacts of run {run_id} failed ({exc}); using pod logs")
                return None
            for artifact in artifacts:
                if artifact.get("type") == "Metric" and "number_value" in artifact:
                    found[str(artifact.get("name", ""))] = float(artifact["number_value"])
                for key, value in (artifact.get("metadata") or {}).items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        found.setdefault(key, float(value))
            token = page.get("next_page_token") or ""
            if not token:
                return found

    def pods(self) -> Any:
        if self._pods is None:
            from kfg.launcher.podlogs import Pods

            self._pods = Pods.connect(self.request.namespace)
        self._pods.deadline = self.deadline
        self._pods.clock = self.clock
        return self._pods

    def metrics(self, run_id: str) -> dict[str, float]:
        """The run's metrics: from the artifact API where the server has one, else (or for
        what it lacks) from the `kfg:metric` lines in the logs of the run's step pods.

        With `request.metrics`, each of them is required; otherwise this reports what it
        finds and a failure to read the logs is only a warning.
        """
        from kfg.launcher.podlogs import PodLogError

        wanted = list(self.request.metrics)
        found = self.artifact_metrics(run_id) or {}
        searched = None
        if not wanted or not set(wanted) <= set(found):
            try:
                pods = self.pods()
                searched = pods.metrics(run_id, set(wanted) - set(found))
            except PodLogError as exc:
                if wanted:
                    raise LaunchError(
                        f"run {run_id} succeeded, but its metrics cannot be read: {exc}"
                    ) from None
                _log(f"run {run_id} succeeded; its metrics cannot be read: {exc}")
            else:
                for name, metric in searched.metrics.items():
                    found.setdefault(name, metric.value)
        if self.remaining() <= 0:
            raise self.expired(f"reading the metrics of run {run_id}")
        if not wanted:
            return printable(found)
        missing = [name for name in wanted if name not in found]
        if missing:
            raise LaunchError(self._missing(run_id, missing, found, searched))
        return {name: found[name] for name in wanted}

    def _missing(
        self, run_id: str, missing: list[str], found: dict[str, float], searched: Any
    ) -> str:
        names = ", ".join(f"`{m}`" for m in missing)
        message = f"run {run_id} succeeded but reported no metric {names}"
        message += f" (it reported: {', '.join(sorted(found)) or 'nothing'})"
        if searched is None:
            return message
        namespace = self._pods.namespace if self._pods is not None else "?"
        if not searched.pods:
            return (
                f"{message}: no succeeded step pod of the run is left in namespace {namespace}"
                " (label pipeline/runid); were its pods deleted (Argo podGC, the Workflow's TTL)"
                " or did it run in another namespace?"
            )
        read = len(searched.pods) - len(searched.gone)
        detail = f"{read} step pod log(s) read"
        if searched.gone:
            detail += f", {len(searched.gone)} pod(s) already deleted"
        return (
            f"{message}; {detail} in namespace {namespace}. A step that KFP took from its cache"
            " runs no pod and prints no metric: set `caching: false` on the step that computes"
            " it"
        )

    def run(self) -> RunResult:
        run_id = self.start()
        state = self.wait(run_id)
        return RunResult(run_id, state, self.metrics(run_id))


def printable(found: dict[str, float]) -> dict[str, float]:
    """The metrics that can be printed as `name=value` lines Katib reads as exactly that
    metric. Names and values come from what a run printed; a name with `=`, a space, a
    newline or any character outside Katib's name pattern could make Katib read another
    metric than the one reported, so such a name is left out (and said so on stderr), as is
    a value that is not finite (Katib's filter reads no `nan`)."""
    kept: dict[str, float] = {}
    for name, value in sorted(found.items()):
        if METRIC_NAME.fullmatch(name) and math.isfinite(value):
            kept[name] = value
        else:
            _log(f"ignoring metric {json.dumps(name)}={value!r}: not printable for Katib")
    return kept
