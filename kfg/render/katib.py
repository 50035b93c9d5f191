"""The Katib Experiment whose trials are runs of the pipeline, and when a new one starts.

Each trial is a batch/v1 Job running `kfg trial`, which starts one KFP run of a pipeline
version with the trial's parameter values, waits for it and prints the run's metrics as
`name=value` for Katib's stdout collector.

**What Katib allows.** Katib's validating webhook (kubeflow/katib v0.19.0
pkg/webhook/v1beta1/experiment/validator/validator.go:117-143) refuses any change to an
existing Experiment's spec except the three trial counts, and refuses even those once the
Experiment has finished unless its resumePolicy is LongRunning or FromVolume *and* it
finished by reaching maxTrialCount. A refused update fails the GitOps sync of the whole
package. The trial template is part of the spec, so it is immutable too.

**The sweep.** An Experiment is therefore named after a hash of its entire spec (and of
`tuning.revision`): an edit that changes the spec is a new Experiment, a new sweep of
maxTrials runs, and any other edit leaves the Experiment's spec, and so its name, exactly
as it was. For a notebook edit to leave the spec alone, the trials must not run the
pipeline's own version (its name hashes every step). They run a *tuning version*: the
pipeline cut down to the steps that report the Experiment's metrics and every step those
wait for (`scope`). Its name hashes exactly what can change a metric: the code, prelude,
image, packages and settings of those steps and the pipeline parameters. A plot legend in
a step downstream of the metrics changes the pipeline's version but neither the tuning
version nor the Experiment. When every step leads to a metric, the tuning version is the
pipeline's version.

Two alternatives were weighed. Trials could resolve the *latest* version at run time (by a
label, or from a ConfigMap trial template that GitOps updates): the Experiment would survive
every edit, but the trials of one sweep would run different code, and the ConfigMap needs a
namespace kfg does not know when kustomize or the GitOps controller sets it, and must exist
before the Experiment (Flux dry-runs one stage at once, and the webhook reads the ConfigMap).
Or the Experiment could be created once and never re-applied (Flux's `ssa: IfNotPresent`;
Argo CD has no equivalent): git would no longer describe the cluster. A tuning version keeps
every trial of a sweep on identical code and keeps git and the cluster equal.

**Zero drift.** Katib's mutating webhook decodes the Experiment into its Go types, applies
`SetDefault` and answers with a patch to the re-encoded object
(pkg/webhook/v1beta1/experiment/mutate_webhook.go:44-60): it fills in defaults and drops
empty `omitempty` fields. What is rendered here is already that fixed point, so a freshly
synced Experiment shows no difference in Argo CD (tests/render/katib_webhook.py proves it).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from kfg.analysis.dataflow import Flow, upstream_of
from kfg.config.algorithms import setting_text
from kfg.config.model import Pipeline, SearchSpace, Tuning
from kfg.kube.names import content_hash, versioned
from kfg.render import gitops
from kfg.render.launcher import CONTAINER, job_deadline, launcher_args, pod_template

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
STEPS_ANNOTATION = "kfg.dev/tuning-steps"  # the steps the trials run, for people and kfg diff
REVISION_ANNOTATION = "kfg.dev/tuning-revision"
TUNING_SUFFIX = "tune"


def experiment_name(pipeline: str, spec: dict[str, Any], revision: str | None = None) -> str:
    """`<pipeline>-<hash>`, at most 40 characters and starting with a letter, as Katib requires.

    The hash covers the whole spec, counts included (Katib refuses to change a finished
    Experiment at all), and the revision, so the spec under one name never changes.
    """
    hashed: Any = spec if revision is None else {"revision": revision, "spec": spec}
    base = pipeline if pipeline[:1].isalpha() else f"tune-{pipeline}"
    return versioned(base, content_hash(hashed), NAME_MAX)


@dataclasses.dataclass(frozen=True)
class Scope:
    """The part of a pipeline that Katib trials run: the steps the metrics depend on."""

    pipeline: Pipeline
    flow: Flow
    whole: bool  # every step leads to a metric: the trials run the pipeline's own version

    @property
    def steps(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.pipeline.steps)


def reporters(pipeline: Pipeline) -> set[str]:
    """The steps that report the Experiment's objective and additional metrics."""
    tuning = pipeline.tuning
    assert tuning is not None
    wanted = {tuning.metric, *tuning.additional_metrics}
    return {m.step for m in pipeline.metrics if m.name in wanted}


def metric_steps_always_run(pipeline: Pipeline) -> Pipeline:
    """The pipeline with caching off on the steps that report the Experiment's metrics.

    A trial reads its metrics from the log of the step that printed them; a step KFP takes
    from its cache runs no pod and prints nothing, so the trial would fail (two trials with
    the same values, or a trial repeating the defaults). Those steps always run; everything
    upstream of them still comes from the cache.
    """
    steps = reporters(pipeline)
    return dataclasses.replace(
        pipeline,
        steps=tuple(
            dataclasses.replace(s, caching=False) if s.name in steps else s for s in pipeline.steps
        ),
    )


def scope(pipeline: Pipeline, flow: Flow) -> Scope:
    """The steps reporting the Experiment's metrics and all they wait for, as a pipeline.

    Each step saves only what the kept steps read, so a later step that starts reading
    another variable from a kept step does not change the tuning version.
    """
    kept = set(upstream_of(flow, sorted(reporters(pipeline))))
    if len(kept) == len(pipeline.steps):
        return Scope(pipeline, flow, whole=True)
    steps = tuple(s for s in pipeline.steps if s.name in kept)
    consumed: dict[str, set[str]] = {name: set() for name in kept}
    for step in flow.steps:
        if step.name in kept:
            for variable, source in step.inputs.items():
                consumed[source].add(variable)
    flows = tuple(
        dataclasses.replace(
            step,
            outputs=tuple(v for v in step.outputs if v in consumed[step.name]),
            code_outputs=tuple(v for v in step.code_outputs if v in consumed[step.name]),
        )
        for step in flow.steps
        if step.name in kept
    )
    edges = tuple(e for e in flow.edges if e.source in kept and e.target in kept)
    listed = ", ".join(s.name for s in steps)
    cut = dataclasses.replace(
        pipeline,
        steps=steps,
        metrics=tuple(m for m in pipeline.metrics if m.step in kept),
        description=f"The steps of {pipeline.name} its Katib trials run: {listed}",
    )
    return Scope(cut, Flow(flows, edges, flow.problems), whole=False)


def tuning_version_base(pipeline: str) -> str:
    """The tuning version's name before its hash: `<pipeline>-tune`."""
    return f"{pipeline}-{TUNING_SUFFIX}"


def _settings(settings: dict[str, str | int | float | bool]) -> list[dict[str, str]]:
    """Katib's `algorithmSettings`; an empty value is left out, as the webhook would."""
    rendered = []
    for name, value in sorted(settings.items()):
        text = setting_text(value)
        rendered.append({"name": name, "value": text} if text else {"name": name})
    return rendered


def _algorithm(name: str, settings: dict[str, str | int | float | bool]) -> dict[str, Any]:
    """An algorithm block; no `algorithmSettings` key when there are none (omitempty)."""
    block: dict[str, Any] = {"algorithmName": name}
    if settings:
        block["algorithmSettings"] = _settings(settings)
    return block


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
        feasible["list"] = [setting_text(v) for v in space.values]
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


def experiment(
    pipeline: Pipeline, version: str, labels: dict[str, str], steps: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The Experiment for `pipeline.tuning`, whose trials run PipelineVersion `version`.

    `version` is the tuning version (`scope`), made of `steps`.
    """
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
            "activeDeadlineSeconds": job_deadline(pipeline.launcher),
            "backoffLimit": 0,
            "template": pod_template(
                pipeline.launcher, trial_args(pipeline, version, tuning), labels
            ),
        },
    }
    spec: dict[str, Any] = {
        "objective": _objective(tuning),
        "algorithm": _algorithm(tuning.algorithm, tuning.algorithm_settings),
    }
    if tuning.early_stopping:
        spec["earlyStopping"] = _algorithm(tuning.early_stopping, tuning.early_stopping_settings)
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
                "trialParameters": trial_parameters,
                "trialSpec": job,
            },
        }
    )
    revision = None if tuning.revision is None else str(tuning.revision)
    metadata: dict[str, Any] = {"name": experiment_name(pipeline.name, spec, revision)}
    if pipeline.namespace:
        metadata["namespace"] = pipeline.namespace
    metadata["labels"] = dict(labels)
    annotations = metadata["annotations"] = {}
    if steps:
        annotations[STEPS_ANNOTATION] = ",".join(steps)
    if revision is not None:
        annotations[REVISION_ANNOTATION] = revision
    gitops.keep(metadata, wave=gitops.WAVE_EXPERIMENT)
    return {"apiVersion": API_VERSION, "kind": "Experiment", "metadata": metadata, "spec": spec}
