"""One firing of a schedule: name the run after it, and honour the concurrency policy in KFP.

The CronJob's own `concurrencyPolicy` only sees its Jobs. A KFP run outlives the Job that
started it (the Job's deadline ends the launcher, not always the run), so before starting
a run the launcher asks KFP for the schedule's runs that are still active, found by name in
the schedule's experiment: `Forbid` then starts nothing, `Replace` terminates them first,
`Allow` does not ask. Every run is named `<pipeline>-<schedule>-<YYYYMMDD-HHMM>` (the
scheduled time, UTC) and its description says which schedule and CronJob started it, so
the KFP UI's run list shows where each run came from (KFP 2.17's v2beta1 Run has no labels).
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass
from typing import Any

from kfg.launcher.kfpapi import KfpError
from kfg.launcher.runs import PAGE, TERMINAL_FAILED, TERMINAL_OK, Launcher, LaunchError

POLICIES = ("Allow", "Forbid", "Replace")
STAMP = "%Y%m%d-%H%M"
_STAMP_PATTERN = r"\d{8}-\d{4}"


@dataclass(frozen=True)
class Firing:
    pipeline: str
    schedule: str
    time: datetime.datetime  # aware, UTC
    job: str | None = None  # the CronJob's Job, when known

    @property
    def prefix(self) -> str:
        return f"{self.pipeline}-{self.schedule}-"

    @property
    def run_name(self) -> str:
        return f"{self.prefix}{self.time.strftime(STAMP)}"

    @property
    def description(self) -> str:
        job = f" (Job {self.job})" if self.job else ""
        return (
            f"Started by kfg schedule `{self.schedule}` of pipeline `{self.pipeline}`{job}"
            f" for {self.time.strftime('%Y-%m-%dT%H:%MZ')}."
        )

    def owns(self, run_name: str) -> bool:
        """Whether a run of this name was started by this schedule (not `nightly-2`'s)."""
        return re.fullmatch(re.escape(self.prefix) + _STAMP_PATTERN, run_name) is not None


def fire_time(job_name: str | None, cronjob: str, now: datetime.datetime) -> datetime.datetime:
    """The time the CronJob scheduled this Job for, read from the Job's name.

    kubernetes pkg/controller/cronjob/utils.go getJobName names it `<cronjob>-<minutes
    since the epoch>`; a Job made by hand (`kubectl create job --from=cronjob/...`) is
    named otherwise, and its run is named after `now`.
    """
    if job_name and job_name.startswith(f"{cronjob}-"):
        tail = job_name[len(cronjob) + 1 :]
        if tail.isdigit():
            return datetime.datetime.fromtimestamp(int(tail) * 60, datetime.timezone.utc)
    return now.astimezone(datetime.timezone.utc).replace(second=0, microsecond=0)


def _substring_filter(value: str) -> str:
    # kubeflow/pipelines 2.17.0 backend/api/v2beta1/filter.proto: IS_SUBSTRING on a string.
    return json.dumps(
        {
            "predicates": [
                {"operation": "IS_SUBSTRING", "key": "display_name", "string_value": value}
            ]
        }
    )


def active_runs(launcher: Launcher, firing: Firing, experiment_id: str) -> list[dict[str, Any]]:
    """The schedule's runs in its experiment that have not reached a final state."""
    found: list[dict[str, Any]] = []
    token = ""
    while True:
        try:
            page = launcher.kfp.call(
                "RunServiceApi",
                "run_service_list_runs",
                namespace=launcher.request.namespace,
                experiment_id=experiment_id,
                filter=_substring_filter(firing.prefix),
                page_size=PAGE,
                page_token=token or None,
            )
        except KfpError as exc:
            raise LaunchError(f"listing the runs of schedule `{firing.schedule}`: {exc}") from None
        for run in page.get("runs") or []:
            state = str(run.get("state") or "")
            if not firing.owns(str(run.get("display_name") or "")):
                continue
            if state == TERMINAL_OK or state in TERMINAL_FAILED:
                continue
            found.append(run)
        token = page.get("next_page_token") or ""
        if not token:
            return found


def admit(launcher: Launcher, firing: Firing, policy: str) -> list[str]:
    """Apply `policy` before a run starts: the ids of the active runs that forbid it.

    An empty list means go ahead (with `Replace`, after terminating what was active).
    """
    if policy == "Allow":
        return []
    active = active_runs(launcher, firing, launcher.experiment_id())
    ids = [str(run.get("run_id")) for run in active]
    if policy == "Forbid":
        return ids
    for run_id in ids:
        launcher.terminate(run_id)
    return []
