"""Recurring runs as plain CronJobs that a GitOps controller applies, updates and prunes.

KFP 2.17 keeps recurring runs in its database, created through its API: nothing a pull
request can review or a controller can remove. kfg renders one batch/v1 CronJob per
schedule instead, whose Jobs run the launcher (`kfg schedule-run`) against the exact
PipelineVersion rendered beside it. A notebook change renders a new version and, in the
same commit, the CronJob's arguments name it; the old version stays (it is never pruned),
the CronJob is updated in place. Unlike the versions, a CronJob carries no Prune=false:
removing the schedule from kale.yaml must remove it. Its Jobs are owned by it and go with
it (garbage collection); the KFP runs they started live in KFP and stay.

The launcher pod is the trial launcher's (`kfg.render.launcher.pod_template`): the same
token, ServiceAccount and restricted pod security, and `activeDeadlineSeconds` bounding
each Job. The CronJob's own `concurrencyPolicy` guards its Jobs; the launcher guards the
runs, which outlive their Job when it times out, by asking KFP (see kfg.launcher.schedule).
"""

from __future__ import annotations

from typing import Any

from kfg.config.model import Pipeline, Schedule
from kfg.config.schedules import cronjob_name
from kfg.pysource.parameters import python_type
from kfg.render import gitops
from kfg.render.launcher import RULES, job_deadline, pod_template

SCHEDULE_LABEL = "kfg.dev/schedule"
# The Job controller labels each Job's pods with the Job's name, which the CronJob
# controller makes `<cronjob>-<scheduled time in minutes since the epoch>` (kubernetes
# pkg/controller/cronjob/utils.go getJobName): the downward API hands it to the launcher,
# which names the run after the time it was scheduled for, not the time the pod started.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
JOB_NAME_ENV = "KFG_SCHEDULE_JOB"
# A schedule's launcher also lists the runs of its experiment (concurrencyPolicy: KFP
# 2.17.0 run_server.go listRuns authorises verb `list` on `runs`).
LIST_RUNS = "list"


def rules(pipeline: Pipeline) -> list[dict[str, Any]]:
    """The launcher Role: the trial launcher's, plus listing runs when schedules exist."""
    if not pipeline.schedules:
        return RULES
    granted = []
    for rule in RULES:
        if rule["resources"] == ["runs"] and LIST_RUNS not in rule["verbs"]:
            rule = {**rule, "verbs": sorted([*rule["verbs"], LIST_RUNS])}
        granted.append(rule)
    return granted


def typed(name: str, kind: str, value: Any) -> str:
    """`name:type=value` as `kfg schedule-run --param` (kfg.launcher.params) reads it; the
    type is the parameter's, so `C: 2` for a float parameter reaches KFP as 2.0."""
    import json

    if kind in ("list", "dict"):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    elif kind == "bool":
        text = "true" if value else "false"
    else:
        text = str(value)
    return f"{name}:{kind}={text}"


def launcher_args(pipeline: Pipeline, version: str, schedule: Schedule) -> list[str]:
    launcher = pipeline.launcher
    args = [
        "schedule-run",
        "--pipeline",
        pipeline.name,
        "--version",
        version,
        "--schedule",
        schedule.name,
        "--concurrency-policy",
        schedule.concurrency,
        "--endpoint",
        launcher.endpoint,
        "--timeout",
        str(int(launcher.timeout_seconds)),
    ]
    if pipeline.namespace:
        args += ["--namespace", pipeline.namespace]
    if schedule.experiment:
        args += ["--experiment", schedule.experiment]
    for name in sorted(schedule.parameters):
        value = schedule.parameters[name]
        declared = pipeline.parameter(name)
        kind = declared.type_name if declared is not None else python_type(value)
        args += ["--param", typed(name, kind, value)]
    return args


def cron_job(
    pipeline: Pipeline, version: str, schedule: Schedule, labels: dict[str, str]
) -> dict[str, Any]:
    own = {**labels, SCHEDULE_LABEL: schedule.name}
    metadata: dict[str, Any] = {"name": cronjob_name(pipeline.name, schedule.name)}
    if pipeline.namespace:
        metadata["namespace"] = pipeline.namespace
    metadata["labels"] = dict(sorted(own.items()))
    # After the version it starts (Argo CD waves; Flux orders by the release stage).
    metadata["annotations"] = {gitops.ARGOCD_SYNC_WAVE: str(gitops.WAVE_RUN)}
    template = pod_template(pipeline.launcher, launcher_args(pipeline, version, schedule), own)
    [container] = template["spec"]["containers"]
    container["env"].append(
        {
            "name": JOB_NAME_ENV,
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{JOB_NAME_LABEL}']"}},
        }
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata,
        "spec": {
            "schedule": schedule.cron,
            "timeZone": schedule.time_zone,
            "concurrencyPolicy": schedule.concurrency,
            "successfulJobsHistoryLimit": schedule.successful_history,
            "failedJobsHistoryLimit": schedule.failed_history,
            "suspend": schedule.suspend,
            "jobTemplate": {
                "metadata": {"labels": dict(sorted(own.items()))},
                "spec": {
                    "activeDeadlineSeconds": job_deadline(pipeline.launcher),
                    "backoffLimit": 0,
                    "template": template,
                },
            },
        },
    }


def cron_jobs(pipeline: Pipeline, version: str, labels: dict[str, str]) -> list[dict[str, Any]]:
    return [cron_job(pipeline, version, s, labels) for s in pipeline.schedules]
