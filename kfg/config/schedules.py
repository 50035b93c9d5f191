"""Checks of `spec.schedules` the schema cannot express: the cron expression as Kubernetes
reads it, the time zone, unique names that fit a CronJob, and parameter values that exist
and have their parameter's type.
"""

from __future__ import annotations

from typing import Any

from kfg.config.findings import Findings
from kfg.diagnostics import did_you_mean
from kfg.kube.cron import CRONJOB_NAME_MAX, CronError, parse, zone, zone_names
from kfg.pysource.parameters import Parameter, python_type, value_problem


def cronjob_name(pipeline: str, schedule: str) -> str:
    return f"{pipeline}-{schedule}"


def fits(parameter: Parameter, value: Any) -> bool:
    """Whether KFP would take `value` for the parameter: its own type, or an int for a float."""
    wanted, given = parameter.type_name, python_type(value)
    return given == wanted or (wanted == "float" and given == "int")


def check_schedules(
    data: dict[str, Any], findings: Findings, parameters: list[Parameter] | None
) -> None:
    spec = data["spec"]
    pipeline = str(data.get("metadata", {}).get("name", ""))
    first_at: dict[str, int] = {}
    known = {p.name: p for p in parameters or []}
    for index, schedule in enumerate(spec.get("schedules", [])):
        where = ("spec", "schedules", index)
        name = schedule["name"]
        if name in first_at:
            line = findings.line((*where[:2], first_at[name], "name"))
            findings.error(
                (*where, "name"),
                "duplicate-schedule",
                f"duplicate schedule name `{name}` (first used on line {line})",
            )
        else:
            first_at[name] = index
        full = cronjob_name(pipeline, name)
        if len(full) > CRONJOB_NAME_MAX:
            findings.error(
                (*where, "name"),
                "schedule-name",
                f"the CronJob name `{full}` is {len(full)} characters; Kubernetes allows"
                f" {CRONJOB_NAME_MAX} (it appends 11 to name each Job): shorten the schedule name",
            )
        try:
            parse(schedule["cron"])
        except CronError as exc:
            findings.error((*where, "cron"), "bad-cron", f"`{schedule['cron']}`: {exc}")
        if "timeZone" in schedule:
            try:
                zone(schedule["timeZone"])
            except CronError as exc:
                hint = did_you_mean(schedule["timeZone"], sorted(zone_names()))
                findings.error((*where, "timeZone"), "bad-time-zone", f"{exc}{hint}")
        if parameters is None:
            continue
        for key, value in schedule.get("parameters", {}).items():
            path = (*where, "parameters", key)
            if key not in known:
                hint = did_you_mean(key, known) or (
                    "; declare it in spec.parameters" if not known else ""
                )
                findings.error(
                    path,
                    "unknown-parameter",
                    f"`{key}` is not a pipeline parameter{hint}",
                    key=True,
                )
            elif bad_value := value_problem(value):
                findings.error(path, "bad-parameter", f"`{key}` {bad_value}")
            elif not fits(known[key], value):
                findings.error(
                    path,
                    "parameter-type",
                    f"`{key}` is {_a(known[key].type_name)} parameter (default"
                    f" {known[key].default!r}); {value!r} is {_a(python_type(value))}",
                )


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"
