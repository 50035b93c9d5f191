"""A pipeline's schedules as they stand: when each fired, when it fires next, how the last
run went. The next time comes from the cron expression and time zone (kfg.kube.cron); the
last from the CronJob's status and the Job it made, read through the Kubernetes API; the
run itself, with its state and link, from the KFP API when an endpoint is given.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import asdict, dataclass
from typing import Any

from kfg.config.model import Pipeline, Schedule
from kfg.config.schedules import cronjob_name
from kfg.errors import KfgError
from kfg.kube.cron import next_fire, parse, zone

RUN_LINK = "#/runs/details/{run_id}"  # the KFP UI's route for a run (frontend/src/lib/Apis.ts)


class ScheduleStatusError(KfgError):
    """The CronJobs cannot be read; the message says why."""


@dataclass(frozen=True)
class ScheduleRow:
    name: str
    cron: str
    time_zone: str
    suspended: bool
    next_fire: str | None  # ISO 8601 in the schedule's zone; None when suspended or never
    last_fire: str | None  # the CronJob's status.lastScheduleTime
    last_job_state: str | None  # Active, Succeeded or Failed (the launcher waits for its run)
    last_run: str | None  # the run's name
    last_run_state: str | None  # from KFP, when asked
    link: str | None


def _job_state(job: dict[str, Any]) -> str:
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return "Succeeded" if condition["type"] == "Complete" else "Failed"
    return "Active" if status.get("active") else "Pending"


def row(
    pipeline: Pipeline,
    schedule: Schedule,
    now: datetime.datetime,
    cronjob: dict[str, Any] | None,
    jobs: list[dict[str, Any]],
    run: dict[str, Any] | None = None,
    ui: str | None = None,
) -> ScheduleRow:
    tz = zone(schedule.time_zone)
    status = (cronjob or {}).get("status") or {}
    suspended = bool(((cronjob or {}).get("spec") or {}).get("suspend", schedule.suspend))
    upcoming = None if suspended else next_fire(parse(schedule.cron), tz, now)
    last = status.get("lastScheduleTime")
    latest = max(jobs, key=lambda j: j["metadata"]["name"], default=None)
    run_name = None
    if last:
        when = datetime.datetime.fromisoformat(str(last).replace("Z", "+00:00"))
        run_name = f"{pipeline.name}-{schedule.name}-{when.strftime('%Y%m%d-%H%M')}"
    link = None
    if run is not None and run.get("run_id"):
        link = RUN_LINK.format(run_id=run["run_id"])
        if ui:
            link = f"{ui.rstrip('/')}/{link}"
    return ScheduleRow(
        name=schedule.name,
        cron=schedule.cron,
        time_zone=schedule.time_zone,
        suspended=suspended,
        next_fire=upcoming.isoformat() if upcoming else None,
        last_fire=str(last) if last else None,
        last_job_state=_job_state(latest) if latest is not None else None,
        last_run=run_name,
        last_run_state=str(run.get("state")) if run else None,
        link=link,
    )


def read(batch: Any, namespace: str, pipeline: Pipeline) -> dict[str, tuple[Any, list[Any]]]:
    """Each schedule's CronJob (None before it is synced) and its Jobs, from the cluster."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    found: dict[str, tuple[Any, list[Any]]] = {}
    try:
        for schedule in pipeline.schedules:
            name = cronjob_name(pipeline.name, schedule.name)
            try:
                cronjob = batch.api_client.sanitize_for_serialization(
                    batch.read_namespaced_cron_job(name, namespace)
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
                cronjob = None
            listed = batch.list_namespaced_job(
                namespace,
                label_selector=f"kfg.dev/schedule={schedule.name},kfg.dev/pipeline={pipeline.name}",
            )
            jobs = batch.api_client.sanitize_for_serialization(listed).get("items") or []
            found[schedule.name] = (cronjob, jobs)
    except ApiException as exc:
        if exc.status in (401, 403):
            raise ScheduleStatusError(
                f"not allowed to read CronJobs or Jobs in `{namespace}` (HTTP {exc.status});"
                " check your kubeconfig context"
            ) from None
        raise ScheduleStatusError(
            f"the Kubernetes API answered HTTP {exc.status}: {exc.reason}"
        ) from None
    except HTTPError as exc:
        raise ScheduleStatusError(f"cannot reach the Kubernetes API ({exc})") from None
    return found


def as_json(rows: list[ScheduleRow]) -> str:
    return json.dumps([asdict(r) for r in rows], indent=2)


def table(pipeline: str, namespace: str, rows: list[ScheduleRow]) -> str:
    header = ["schedule", "cron", "next", "last", "job", "run", "state", "link"]
    body = [
        [
            r.name + (" (suspended)" if r.suspended else ""),
            f"{r.cron} {r.time_zone}",
            r.next_fire or "-",
            r.last_fire or "-",
            r.last_job_state or "-",
            r.last_run or "-",
            r.last_run_state or "-",
            r.link or "-",
        ]
        for r in rows
    ]
    widths = [max(len(x[i]) for x in [header, *body]) for i in range(len(header))]
    lines = [f"schedules of {namespace}/{pipeline}:"]
    for cells in [header, *body]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"


def find_run(kfp: Any, namespace: str | None, name: str) -> dict[str, Any] | None:
    """The KFP run of this name (as the launcher named it), or None; `kfp` a launcher Kfp."""
    from kfg.launcher.kfpapi import KfpError

    predicate = {"operation": "EQUALS", "key": "display_name", "string_value": name}
    try:
        listed = kfp.call(
            "RunServiceApi",
            "run_service_list_runs",
            namespace=namespace,
            filter=json.dumps({"predicates": [predicate]}),
            page_size=10,
        )
    except KfpError as exc:
        raise ScheduleStatusError(f"listing runs named `{name}`: {exc}") from None
    runs = [r for r in listed.get("runs") or [] if r.get("display_name") == name]
    return runs[-1] if runs else None
