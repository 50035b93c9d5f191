"""The Katib Experiment whose trials are runs of the rendered pipeline version.

Each trial is a batch/v1 Job running `kfg trial`, which starts one KFP run of the version
with the trial's parameter values, waits for it and prints the run's metrics as
`name=value` for Katib's stdout collector. Every field Katib's mutating webhook would fill
in is written out, so a GitOps controller sees no difference between git and the cluster.
"""

from __future__ import annotations

import re
from typing import Any

from kfg.config.model import Pipeline, SearchSpace, Tuning
from kfg.names import content_hash, versioned
from kfg.render import gitops
from kfg.render.launcher import CONTAINER, launcher_args, pod_template

API_VERSION = "kubeflow.org/v1beta1"
NAME_PATTERN = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
NAME_MAX = 40
# Katib's own defaults for a Job trial (experiment_defaults.go), written out explicitly.
JOB_SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
RESUME_POLICY = "Never"
DEFAULT_DISTRIBUTION = "uniform"
# One metric per line, `name=value`, exactly what `kfg trial` prints; anchored so that no
# other line of the launcher's log can be mistaken for a metric.
METRICS_FORMAT = r"^([A-Za-z][\w-]*)=([+-]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)$"
TRIAL_NAME_PARAMETER = "kfg_trial_name"  # kfg_ is reserved: no pipeline parameter clashes
# Counts are the only part of an Experiment's spec Katib lets change in place.
COUNT_FIELDS = ("maxTrialCount", "parallelTrialCount", "maxFailedTrialCount")


def experiment_name(pipeline: str, spec: dict[str, Any]) -> str:
    """`<pipeline>-<hash>`, at most 40 characters and starting with a letter, as Katib requires.

    The hash covers the spec without its counts: any other change is a new Experiment.
    """
    fixed = {k: v for k, v in spec.items() if k not in COUNT_FIELDS}
    base = pipeline if pipeline[:1].isalpha() else f"tune-{pipeline}"
    return versioned(base, content_hash(fixed), NAME_MAX)


def _setting(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _settings(settings: dict[str, str | int | float | bool]) -> list[dict[str, str]]:
    return [{"name": k, "value": _setting(v)} for k, v in sorted(settings.items())]


def _number(value: float | None) -> str:
    assert value is not None
    return repr(value) if isinstance(value, float) else str(value)


def _parameter(space: SearchSpace) -> dict[str, Any]:
    feasible: dict[str, Any] = {}
    if space.type in ("int", "double"):
        feasible["min"] = _number(space.min)
        feasible["max"] = _number(space.max)
        if space.step is not None:
            feasible["step"] = _number(space.step)
    else:
        feasible["list"] = [_setting(v) for v in space.values]
    feasible["distribution"] = space.distribution or DEFAULT_DISTRIBUTION
    return {"name": space.name, "parameterType": space.type, "feasibleSpace": feasible}


def _objective(tuning: Tuning) -> dict[str, Any]:
    default = "max" if tuning.goal_type == "maximize" else "min"
    metrics = [tuning.metric, *tuning.additional_metrics]
    objective: dict[str, Any] = {
        "type": tuning.goal_type,
        "objectiveMetricName": tuning.metric,
    }
    if tuning.goal is not None:
        objective["goal"] = tuning.goal
    if tuning.additional_metrics:
        objective["additionalMetricNames"] = list(tuning.additional_metrics)
    objective["metricStrategies"] = [
        {"name": m, "value": tuning.strategies.get(m, default)} for m in metrics
    ]
    return objective


def trial_args(pipeline: Pipeline, version: str, tuning: Tuning) -> list[str]:
    """`kfg trial` arguments, with Katib placeholders for the trial's name and values."""
    args = launcher_args(pipeline, version, f"${{trialParameters.{TRIAL_NAME_PARAMETER}}}")
    for name in (tuning.metric, *tuning.additional_metrics):
        args += ["--metric", name]
    for space in tuning.parameters:
        parameter = pipeline.parameter(space.name)
        assert parameter is not None
        args += ["--param", f"{space.name}:{parameter.type_name}=${{trialParameters.{space.name}}}"]
    return args


def experiment(pipeline: Pipeline, version: str, labels: dict[str, str]) -> dict[str, Any]:
    """The Experiment for `pipeline.tuning`, running trials of PipelineVersion `version`."""
    tuning = pipeline.tuning
    assert tuning is not None
    trial_parameters = [
        {
            "name": TRIAL_NAME_PARAMETER,
            "description": "Name of the trial, given to its pipeline run",
            "reference": "${trialSpec.Name}",
        }
    ]
    for space in tuning.parameters:
        parameter = pipeline.parameter(space.name)
        assert parameter is not None
        trial_parameters.append(
            {
                "name": space.name,
                "description": f"Pipeline parameter {space.name} ({parameter.type_name})",
                "reference": space.name,
            }
        )
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "backoffLimit": 0,
            "template": pod_template(
                pipeline.launcher, trial_args(pipeline, version, tuning), labels
            ),
        },
    }
    spec: dict[str, Any] = {
        "objective": _objective(tuning),
        "algorithm": {
            "algorithmName": tuning.algorithm,
            "algorithmSettings": _settings(tuning.algorithm_settings),
        },
    }
    if tuning.early_stopping:
        spec["earlyStopping"] = {
            "algorithmName": tuning.early_stopping,
            "algorithmSettings": _settings(tuning.early_stopping_settings),
        }
    spec.update(
        {
            "parallelTrialCount": tuning.parallel_trials,
            "maxTrialCount": tuning.max_trials,
            "maxFailedTrialCount": tuning.max_failed_trials,
            "resumePolicy": RESUME_POLICY,
            "parameters": [_parameter(space) for space in tuning.parameters],
            "metricsCollectorSpec": {
                "collector": {"kind": "StdOut"},
                "source": {"filter": {"metricsFormat": [METRICS_FORMAT]}},
            },
            "trialTemplate": {
                "primaryContainerName": CONTAINER,
                "successCondition": JOB_SUCCESS,
                "failureCondition": JOB_FAILURE,
                "retain": False,
                "trialParameters": trial_parameters,
                "trialSpec": job,
            },
        }
    )
    metadata: dict[str, Any] = {"name": experiment_name(pipeline.name, spec)}
    if pipeline.namespace:
        metadata["namespace"] = pipeline.namespace
    metadata["labels"] = dict(labels)
    gitops.keep(metadata, wave=gitops.WAVE_EXPERIMENT)
    return {"apiVersion": API_VERSION, "kind": "Experiment", "metadata": metadata, "spec": spec}
