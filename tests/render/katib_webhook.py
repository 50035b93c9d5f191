"""Katib's mutating webhook for Experiments, as a function: what it leaves of a spec.

Read from kubeflow/katib v0.19.0. The webhook (pkg/webhook/v1beta1/experiment/
mutate_webhook.go:44-60) decodes the request into the Go type `Experiment`, runs
`SetDefault` on a copy and answers with the JSON patch from the request to
`json.Marshal` of that copy. So the object stored is: the spec decoded into Go structs
(unknown fields dropped, missing ones zero), defaulted, and encoded again, where encoding
leaves out every `omitempty` field holding a zero value (false, 0, "", nil, an empty slice
or map), but never a struct held by value.

The Go types are transcribed below with their json tags, from
pkg/apis/controller/experiments/v1beta1/experiment_types.go (E) and
pkg/apis/controller/common/v1beta1/common_types.go (C), lines cited per type. Kubernetes'
own types that kfg never renders inside an Experiment (v1.HTTPGetAction, v1.Container) are
passed through unchanged. Only the spec is modelled: metadata and status are the API
server's.
"""

from __future__ import annotations

import copy
from typing import Any

# A field: (json name, kind, omitempty). A kind is "string", "bool", "int32", "float64",
# "unstructured", "raw", or a tuple: ("ptr", kind), ("slice", kind), ("map", kind),
# ("struct", type name), ("inline", type name) for an embedded struct.
Field = tuple[str, Any, bool]

TYPES: dict[str, list[Field]] = {
    # E:27-63
    "ExperimentSpec": [
        ("parameters", ("slice", ("struct", "ParameterSpec")), True),
        ("objective", ("ptr", ("struct", "ObjectiveSpec")), True),
        ("algorithm", ("ptr", ("struct", "AlgorithmSpec")), True),
        ("earlyStopping", ("ptr", ("struct", "EarlyStoppingSpec")), True),
        ("trialTemplate", ("ptr", ("struct", "TrialTemplate")), True),
        ("parallelTrialCount", ("ptr", "int32"), True),
        ("maxTrialCount", ("ptr", "int32"), True),
        ("maxFailedTrialCount", ("ptr", "int32"), True),
        ("metricsCollectorSpec", ("ptr", ("struct", "MetricsCollectorSpec")), True),
        ("nasConfig", ("ptr", ("struct", "NasConfig")), True),
        ("resumePolicy", "string", True),
    ],
    # E:206-210
    "ParameterSpec": [
        ("name", "string", True),
        ("parameterType", "string", True),
        ("feasibleSpace", ("struct", "FeasibleSpace"), True),
    ],
    # E:222-230
    "FeasibleSpace": [
        ("max", "string", True),
        ("min", "string", True),
        ("list", ("slice", "string"), True),
        ("step", "string", True),
        ("distribution", "string", True),
    ],
    # E:243-271, with TrialSource (E:275-282) inline
    "TrialTemplate": [
        ("retain", "bool", True),
        ("", ("inline", "TrialSource"), False),
        ("trialParameters", ("slice", ("struct", "TrialParameterSpec")), True),
        ("primaryPodLabels", ("map", "string"), True),
        ("primaryContainerName", "string", True),
        ("successCondition", "string", True),
        ("failureCondition", "string", True),
    ],
    "TrialSource": [
        ("trialSpec", ("ptr", "unstructured"), True),
        ("configMap", ("ptr", ("struct", "ConfigMapSource")), True),
    ],
    # E:285-294
    "ConfigMapSource": [
        ("configMapName", "string", True),
        ("configMapNamespace", "string", True),
        ("templatePath", "string", True),
    ],
    # E:297-306
    "TrialParameterSpec": [
        ("name", "string", True),
        ("description", "string", True),
        ("reference", "string", True),
    ],
    # E:332-358
    "NasConfig": [
        ("graphConfig", ("struct", "GraphConfig"), True),
        ("operations", ("slice", ("struct", "Operation")), True),
    ],
    "GraphConfig": [
        ("numLayers", ("ptr", "int32"), True),
        ("inputSizes", ("slice", "int32"), True),
        ("outputSizes", ("slice", "int32"), True),
    ],
    "Operation": [
        ("operationType", "string", True),
        ("parameters", ("slice", ("struct", "ParameterSpec")), True),
    ],
    # C:25-42
    "AlgorithmSpec": [
        ("algorithmName", "string", True),
        ("algorithmSettings", ("slice", ("struct", "AlgorithmSetting")), True),
    ],
    "AlgorithmSetting": [("name", "string", True), ("value", "string", True)],
    # C:46-63
    "EarlyStoppingSpec": [
        ("algorithmName", "string", True),
        ("algorithmSettings", ("slice", ("struct", "EarlyStoppingSetting")), True),
    ],
    "EarlyStoppingSetting": [("name", "string", True), ("value", "string", True)],
    # C:98-120
    "ObjectiveSpec": [
        ("type", "string", True),
        ("goal", ("ptr", "float64"), True),
        ("objectiveMetricName", "string", True),
        ("additionalMetricNames", ("slice", "string"), True),
        ("metricStrategies", ("slice", ("struct", "MetricStrategy")), True),
    ],
    # C:145-148
    "MetricStrategy": [("name", "string", True), ("value", "string", True)],
    # C:166-191
    "MetricsCollectorSpec": [
        ("source", ("ptr", ("struct", "SourceSpec")), True),
        ("collector", ("ptr", ("struct", "CollectorSpec")), True),
    ],
    "SourceSpec": [
        ("httpGet", ("ptr", "raw"), True),
        ("fileSystemPath", ("ptr", ("struct", "FileSystemPath")), True),
        ("filter", ("ptr", ("struct", "FilterSpec")), True),
    ],
    "FilterSpec": [("metricsFormat", ("slice", "string"), True)],
    # C:209-213
    "FileSystemPath": [
        ("path", "string", True),
        ("kind", "string", True),
        ("format", "string", True),
    ],
    # C:240-244
    "CollectorSpec": [("kind", "string", True), ("customCollector", ("ptr", "raw"), True)],
}

# pkg/apis/controller/experiments/v1beta1/constants.go:21-50
DEFAULT_PARALLEL = 3
DEFAULT_RESUME_POLICY = "Never"
JOB_SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
KUBEFLOW_SUCCESS = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
KUBEFLOW_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
KUBEFLOW_LABELS = {"training.kubeflow.org/job-role": "master"}
TRAINJOB_LABELS = {
    "jobset.sigs.k8s.io/replicatedjob-name": "node",
    "batch.kubernetes.io/job-completion-index": "0",
}
KUBEFLOW_KINDS = {"TFJob", "PyTorchJob", "XGBoostJob", "MPIJob", "TrainJob"}
# common_types.go:215-230
DEFAULT_FILE_PATH = "/var/log/katib/metrics.log"
DEFAULT_TFEVENT_PATH = "/var/log/katib/tfevent/"
DEFAULT_PROMETHEUS_PATH = "/metrics"
DEFAULT_PROMETHEUS_PORT = 8080


class DecodeError(Exception):
    """Go's json.Unmarshal would fail: the webhook answers 400 and nothing is stored."""


def _zero(kind: Any) -> Any:
    if kind == "string":
        return ""
    if kind == "bool":
        return False
    if kind in ("int32", "float64"):
        return 0
    if isinstance(kind, tuple) and kind[0] in ("struct", "inline"):
        zero: dict[str, Any] = {}
        for name, field_kind, _ in TYPES[kind[1]]:
            if name:
                zero[name] = _zero(field_kind)
            else:
                zero |= _zero(field_kind)  # an embedded struct's fields
        return zero
    return None  # pointers, slices, maps, unstructured, raw: nil


def decode(kind: Any, value: Any) -> Any:
    """json.Unmarshal of `value` into a Go value of `kind`, as nested Python values."""
    if value is None and not (isinstance(kind, tuple) and kind[0] in ("struct", "inline")):
        return _zero(kind)
    if kind == "string":
        if not isinstance(value, str):
            raise DecodeError(f"cannot unmarshal {value!r} into a string")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise DecodeError(f"cannot unmarshal {value!r} into a bool")
        return value
    if kind == "int32":
        if isinstance(value, bool) or not isinstance(value, int) or not -(2**31) <= value < 2**31:
            raise DecodeError(f"cannot unmarshal {value!r} into an int32")
        return value
    if kind == "float64":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DecodeError(f"cannot unmarshal {value!r} into a float64")
        return float(value)
    if kind in ("raw", "unstructured"):
        if kind == "unstructured" and not (isinstance(value, dict) and value.get("kind")):
            raise DecodeError("Object 'Kind' is missing")  # Unstructured.UnmarshalJSON
        return copy.deepcopy(value)
    tag, inner = kind
    if tag == "ptr":
        return decode(inner, value)
    if tag == "slice":
        if not isinstance(value, list):
            raise DecodeError(f"cannot unmarshal {value!r} into a slice")
        return [decode(inner, v) for v in value]
    if tag == "map":
        if not isinstance(value, dict):
            raise DecodeError(f"cannot unmarshal {value!r} into a map")
        return {k: decode(inner, v) for k, v in value.items()}
    if value is None:
        return _zero(kind)
    if not isinstance(value, dict):
        raise DecodeError(f"cannot unmarshal {value!r} into {inner}")
    decoded: dict[str, Any] = {}
    for name, field_kind, _ in TYPES[inner]:
        if not name:  # embedded: its fields sit in the same JSON object
            decoded |= decode(field_kind, value)
        else:
            decoded[name] = decode(field_kind, value.get(name))
    return decoded  # keys Go does not know are gone


def _empty(kind: Any, value: Any) -> bool:
    """Whether omitempty leaves the field out (encoding/json): false, 0, "", a nil pointer,
    a nil or empty slice or map, but never a struct held by value."""
    if isinstance(kind, tuple):
        if kind[0] in ("struct", "inline"):
            return False
        if kind[0] == "ptr":
            return value is None
        return value is None or len(value) == 0
    if kind == "bool":
        return value is False
    if kind == "string":
        return bool(value == "")
    if kind in ("int32", "float64"):
        return bool(value == 0)
    return value is None


def encode(kind: Any, value: Any) -> Any:
    """json.Marshal of a Go value of `kind`."""
    if not isinstance(kind, tuple):
        return copy.deepcopy(value)
    tag, inner = kind
    if tag == "ptr":
        return None if value is None else encode(inner, value)
    if tag == "slice":
        return None if value is None else [encode(inner, v) for v in value]
    if tag == "map":
        return None if value is None else {k: encode(inner, v) for k, v in value.items()}
    encoded: dict[str, Any] = {}
    for name, field_kind, omitempty in TYPES[inner]:
        if not name:
            encoded |= encode(field_kind, value)
            continue
        if omitempty and _empty(field_kind, value[name]):
            continue
        encoded[name] = encode(field_kind, value[name])
    return encoded


def set_default(spec: dict[str, Any]) -> None:
    """Experiment.SetDefault, experiment_defaults.go:27-200, on a decoded spec."""
    # setDefaultParallelTrialCount, :36-41
    if spec["parallelTrialCount"] is None:
        spec["parallelTrialCount"] = DEFAULT_PARALLEL
    # setDefaultResumePolicy, :43-47
    if spec["resumePolicy"] == "":
        spec["resumePolicy"] = DEFAULT_RESUME_POLICY
    # setDefaultObjective, :49-95
    objective = spec["objective"]
    if objective is not None:
        if objective["metricStrategies"] is None:
            objective["metricStrategies"] = []
        by_type = {"minimize": "min", "maximize": "max"}.get(objective["type"], "latest")
        strategies = objective["metricStrategies"]
        has_objective = any(s["name"] == objective["objectiveMetricName"] for s in strategies)
        others = {s["name"] for s in strategies if s["name"] != objective["objectiveMetricName"]}
        if not has_objective:
            strategies.append({"name": objective["objectiveMetricName"], "value": by_type})
        for name in objective["additionalMetricNames"] or []:
            if name not in others:
                strategies.append({"name": name, "value": by_type})
    # setDefaultTrialTemplate, :97-137
    template = spec["trialTemplate"]
    if template is not None and template["trialSpec"] is not None:
        kind = template["trialSpec"].get("kind", "")
        if kind == "Job":
            template["successCondition"] = template["successCondition"] or JOB_SUCCESS
            template["failureCondition"] = template["failureCondition"] or JOB_FAILURE
        elif kind in KUBEFLOW_KINDS:
            train = kind == "TrainJob"
            success = JOB_SUCCESS if train else KUBEFLOW_SUCCESS
            failure = JOB_FAILURE if train else KUBEFLOW_FAILURE
            template["successCondition"] = template["successCondition"] or success
            template["failureCondition"] = template["failureCondition"] or failure
            if not template["primaryPodLabels"]:
                template["primaryPodLabels"] = dict(TRAINJOB_LABELS if train else KUBEFLOW_LABELS)
    # setDefaultMetricsCollector, :139-192
    if spec["metricsCollectorSpec"] is None:
        spec["metricsCollectorSpec"] = _zero(("struct", "MetricsCollectorSpec"))
    collector_spec = spec["metricsCollectorSpec"]
    if collector_spec["collector"] is None:
        collector_spec["collector"] = {"kind": "StdOut", "customCollector": None}
    kind = collector_spec["collector"]["kind"]
    if kind in ("PrometheusMetric", "File", "TensorFlowEvent"):
        if collector_spec["source"] is None:
            collector_spec["source"] = _zero(("struct", "SourceSpec"))
        source = collector_spec["source"]
        if kind == "PrometheusMetric":
            get = source["httpGet"] = source["httpGet"] or {}
            get["path"] = get.get("path") or DEFAULT_PROMETHEUS_PATH
            if str(get.get("port", 0)) == "0":
                get["port"] = DEFAULT_PROMETHEUS_PORT
        else:
            if source["fileSystemPath"] is None:
                source["fileSystemPath"] = _zero(("struct", "FileSystemPath"))
            path = source["fileSystemPath"]
            if kind == "File":
                path["kind"] = path["kind"] or "File"
                path["path"] = path["path"] or DEFAULT_FILE_PATH
                path["format"] = path["format"] or "TEXT"
            else:
                path["kind"] = path["kind"] or "Directory"
                path["path"] = path["path"] or DEFAULT_TFEVENT_PATH
    # setDefaultParameterDistribution, :194-200
    for parameter in spec["parameters"] or []:
        if parameter["feasibleSpace"]["distribution"] == "":
            parameter["feasibleSpace"]["distribution"] = "uniform"


def admit(experiment: dict[str, Any]) -> dict[str, Any]:
    """The Experiment as stored after Katib's mutating webhook: the spec round-tripped."""
    kind = ("struct", "ExperimentSpec")
    spec = decode(kind, experiment.get("spec"))
    set_default(spec)
    return {**experiment, "spec": encode(kind, spec)}
