"""A Katib Experiment and its trials, read from the cluster: the terminal's Katib UI.

Reads go through the Kubernetes API with the user's kubeconfig; nothing is changed. The
summary is a plain data structure, printed as a table or as JSON by the CLI.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kfg.errors import KfgError

GROUP = "kubeflow.org"
VERSION = "v1beta1"
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
# Trial condition types, in the order a trial moves through them.
TRIAL_STATES = ("Created", "Running", "Succeeded", "Failed", "Killed", "EarlyStopped")
FINISHED = ("Succeeded", "Failed")


def kubeconfig_tried(path: Path | None) -> str:
    """The file(s) the kubernetes client reads when no --kubeconfig is given, said plainly.

    kubernetes-client/python config/kube_config.py: KUBE_CONFIG_DEFAULT_LOCATION is
    $KUBECONFIG (a list separated by os.pathsep) or ~/.kube/config.
    """
    if path is not None:
        return f"`{path}`"
    env = os.environ.get("KUBECONFIG")
    if env:
        return f"`{env}` (from KUBECONFIG)"
    return f"`{os.path.expanduser('~/.kube/config')}` (the default; KUBECONFIG is not set)"


class StatusError(KfgError):
    """The experiment cannot be read; the message says why."""


@dataclass(frozen=True)
class Trial:
    name: str
    state: str
    parameters: dict[str, str]
    objective: float | None
    metrics: dict[str, float]


@dataclass(frozen=True)
class Summary:
    name: str
    namespace: str
    state: str
    objective: str
    goal_type: str
    counts: dict[str, int]
    trials: list[Trial] = field(default_factory=list)
    best: Trial | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def as_json(self) -> str:
        return json.dumps(asdict(self) | {"finished": self.finished}, indent=2)


def _state(conditions: list[dict[str, Any]] | None, default: str) -> str:
    """The latest condition that holds (conditions are appended as the object moves on)."""
    current = default
    for condition in conditions or []:
        if condition.get("status") == "True":
            current = str(condition.get("type", current))
    return current


def _number(text: object) -> float | None:
    try:
        return float(str(text))
    except (TypeError, ValueError):
        return None


def _metrics(observation: dict[str, Any] | None, strategies: dict[str, str]) -> dict[str, float]:
    """Each metric's value by its strategy (Katib keeps min, max and latest)."""
    values = {}
    for metric in (observation or {}).get("metrics") or []:
        name = metric.get("name", "")
        value = _number(metric.get(strategies.get(name, "latest")))
        if value is not None:
            values[name] = value
    return values


def _assignments(items: list[dict[str, Any]] | None) -> dict[str, str]:
    return {str(a.get("name")): str(a.get("value")) for a in items or []}


def summarise(experiment: dict[str, Any], trials: list[dict[str, Any]]) -> Summary:
    spec = experiment.get("spec", {})
    status = experiment.get("status", {})
    objective = spec.get("objective", {})
    metric = objective.get("objectiveMetricName", "")
    strategies = {s["name"]: s["value"] for s in objective.get("metricStrategies") or []}

    def trial(obj: dict[str, Any]) -> Trial:
        metrics = _metrics(obj.get("status", {}).get("observation"), strategies)
        return Trial(
            name=obj["metadata"]["name"],
            state=_state(obj.get("status", {}).get("conditions"), "Pending"),
            parameters=_assignments(obj.get("spec", {}).get("parameterAssignments")),
            objective=metrics.get(metric),
            metrics=metrics,
        )

    rows = sorted((trial(t) for t in trials), key=lambda t: t.name)
    optimal = status.get("currentOptimalTrial") or {}
    best = None
    if optimal.get("bestTrialName"):
        metrics = _metrics(optimal.get("observation"), strategies)
        best = Trial(
            name=optimal["bestTrialName"],
            state="Succeeded",
            parameters=_assignments(optimal.get("parameterAssignments")),
            objective=metrics.get(metric),
            metrics=metrics,
        )
    counts = {
        "total": int(status.get("trials", len(rows))),
        "running": int(status.get("trialsRunning", 0)),
        "pending": int(status.get("trialsPending", 0)),
        "succeeded": int(status.get("trialsSucceeded", 0)),
        "failed": int(status.get("trialsFailed", 0)),
        "killed": int(status.get("trialsKilled", 0)),
        "early-stopped": int(status.get("trialsEarlyStopped", 0)),
    }
    return Summary(
        name=experiment["metadata"]["name"],
        namespace=experiment["metadata"].get("namespace", ""),
        state=_state(status.get("conditions"), "Created"),
        objective=metric,
        goal_type=objective.get("type", ""),
        counts=counts,
        trials=rows,
        best=best,
    )


def fetch(api: Any, namespace: str, name: str) -> Summary:
    """Read the Experiment and its Trials with a `kubernetes.client.CustomObjectsApi`."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        experiment = api.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "experiments", name
        )
        listed = api.list_namespaced_custom_object(
            GROUP, VERSION, namespace, "trials", label_selector=f"{EXPERIMENT_LABEL}={name}"
        )
    except ApiException as exc:
        if exc.status == 404:
            raise StatusError(f"experiment `{name}` not found in namespace `{namespace}`") from None
        if exc.status in (401, 403):
            raise StatusError(
                f"not allowed to read experiments in `{namespace}` (HTTP {exc.status});"
                " check your kubeconfig context"
            ) from None
        raise StatusError(f"the Kubernetes API answered HTTP {exc.status}: {exc.reason}") from None
    except HTTPError as exc:
        raise StatusError(f"cannot reach the Kubernetes API ({exc})") from None
    return summarise(experiment, list(listed.get("items") or []))


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def table(summary: Summary) -> str:
    """What a person reads: counts, the best trial, then one line per trial."""
    counts = summary.counts
    lines = [
        f"experiment {summary.namespace}/{summary.name}: {summary.state}",
        f"objective: {summary.goal_type} {summary.objective}",
        "trials: "
        + ", ".join(f"{counts[k]} {k}" for k in ("running", "pending", "succeeded", "failed"))
        + (f", {counts['early-stopped']} early-stopped" if counts["early-stopped"] else "")
        + (f", {counts['killed']} killed" if counts["killed"] else "")
        + f" ({counts['total']} in all)",
    ]
    if summary.best is not None:
        best = summary.best
        assigned = ", ".join(f"{k}={v}" for k, v in best.parameters.items())
        lines.append(f"best: {best.name}  {summary.objective} {_value(best.objective)}  {assigned}")
    if summary.trials:
        names = sorted({p for t in summary.trials for p in t.parameters})
        header = ["trial", "state", summary.objective, *names]
        rows = [
            [t.name, t.state, _value(t.objective), *(t.parameters.get(n, "") for n in names)]
            for t in summary.trials
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines.append("")
        for row in [header, *rows]:
            lines.append(
                "  ".join(
                    cell.ljust(width) for cell, width in zip(row, widths, strict=True)
                ).rstrip()
            )
    return "\n".join(lines) + "\n"
