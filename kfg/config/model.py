"""The typed pipeline that rendering, the local engine and tuning work from.

It is built only from a kale.yaml that passed the schema and the semantic checks, so its
constructors can trust the shape of their input; every default of the format is applied
here, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfg.config.cellmap import PARAMETERS, PRELUDE, SKIP, CellMap, step_role
from kfg.config.requirements import normalize
from kfg.kube.quantity import parse_duration
from kfg.pysource.parameters import Parameter

DEFAULT_IMAGE = "python:3.11-slim"
DEFAULT_MAX_TRIALS = 12
DEFAULT_PARALLEL_TRIALS = 3
DEFAULT_MAX_FAILED_TRIALS = 3
DEFAULT_GPU_TYPE = "nvidia.com/gpu"
DEFAULT_RUNTIME = "mounted"
DEFAULT_LAUNCHER_IMAGE = "ghcr.io/kfg-dev/kfg"  # tagged with kfg's version
DEFAULT_KFP_ENDPOINT = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
DEFAULT_LAUNCHER_TIMEOUT = 7200.0


@dataclass(frozen=True)
class Amount:
    request: str | None = None
    limit: str | None = None


@dataclass(frozen=True)
class Gpu:
    count: int
    type: str = DEFAULT_GPU_TYPE


# Requests a step's pod gets for what kale.yaml declares neither a request nor a limit for.
# A pod without requests is BestEffort: scheduled as if it used nothing, the first evicted
# under node pressure. 100m is a tenth of a core, what an idle Python process waiting on
# I/O is granted by most LimitRanges; 256Mi holds the interpreter, KFP's launcher and
# numpy/pandas imported (about 150 MiB resident) with room for a small data set. A limit
# alone also sets the request (Kubernetes copies it), so it is left as declared.
DEFAULT_REQUESTS = {"cpu": "100m", "memory": "256Mi"}


@dataclass(frozen=True)
class Resources:
    cpu: Amount | None = None
    memory: Amount | None = None
    gpu: Gpu | None = None

    def defaulted(self) -> dict[str, str]:
        """The requests rendered from DEFAULT_REQUESTS because none was declared."""
        found = {}
        for name, amount in (("cpu", self.cpu), ("memory", self.memory)):
            if amount is None or not (amount.request or amount.limit):
                found[name] = DEFAULT_REQUESTS[name]
        return found


@dataclass(frozen=True)
class SecretEnv:
    secret: str
    key: str
    env: str


@dataclass(frozen=True)
class Step:
    name: str
    cells: tuple[int, ...]
    after: tuple[str, ...] = ()
    image: str = DEFAULT_IMAGE
    packages: tuple[str, ...] = ()
    runtime: str = DEFAULT_RUNTIME
    resources: Resources = field(default_factory=Resources)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[SecretEnv, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    volumes: tuple[str, ...] = ()
    snapshot_after: bool = False
    caching: bool = True
    retries: int = 0
    timeout_seconds: float | None = None


@dataclass(frozen=True)
class Metric:
    name: str
    variable: str
    step: str


DEFAULT_RESTORE_SIZE = "10Gi"


@dataclass(frozen=True)
class Snapshot:
    version: str
    class_name: str | None = None
    size: str = DEFAULT_RESTORE_SIZE
    storage_class: str | None = None
    access_mode: str = "ReadWriteOnce"


@dataclass(frozen=True)
class SnapshotClass:
    name: str
    driver: str
    deletion_policy: str = "Retain"
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Volume:
    name: str
    claim: str
    mount_path: str
    read_only: bool = False
    snapshot: Snapshot | None = None


@dataclass(frozen=True)
class SearchSpace:
    name: str
    type: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    distribution: str | None = None
    values: tuple[str | int | float | bool, ...] = ()


@dataclass(frozen=True)
class Tuning:
    metric: str
    goal_type: str
    algorithm: str
    parameters: tuple[SearchSpace, ...]
    goal: float | None = None
    additional_metrics: tuple[str, ...] = ()
    strategies: dict[str, str] = field(default_factory=dict)
    algorithm_settings: dict[str, str | int | float | bool] = field(default_factory=dict)
    early_stopping: str | None = None
    early_stopping_settings: dict[str, str | int | float | bool] = field(default_factory=dict)
    max_trials: int = DEFAULT_MAX_TRIALS
    parallel_trials: int = DEFAULT_PARALLEL_TRIALS
    max_failed_trials: int = DEFAULT_MAX_FAILED_TRIALS
    revision: int | str | None = None  # bumped by hand to start a new Experiment
    cluster: bool = True  # false: `kfg tune` only, no Katib Experiment is rendered


@dataclass(frozen=True)
class Launcher:
    image: str
    service_account: str
    kfp_access: str = "token"
    endpoint: str = DEFAULT_KFP_ENDPOINT
    timeout_seconds: float = DEFAULT_LAUNCHER_TIMEOUT
    run_on_sync: bool = False


DEFAULT_CONCURRENCY = "Forbid"
DEFAULT_TIME_ZONE = "UTC"
DEFAULT_SUCCESSFUL_HISTORY = 3
DEFAULT_FAILED_HISTORY = 1


@dataclass(frozen=True)
class Schedule:
    """A recurring run (`spec.schedules`): a CronJob starting the rendered version."""

    name: str
    cron: str
    time_zone: str = DEFAULT_TIME_ZONE
    parameters: dict[str, Any] = field(default_factory=dict)
    experiment: str | None = None
    concurrency: str = DEFAULT_CONCURRENCY
    successful_history: int = DEFAULT_SUCCESSFUL_HISTORY
    failed_history: int = DEFAULT_FAILED_HISTORY
    suspend: bool = False


def default_launcher_image() -> str:
    from kfg import __version__

    return f"{DEFAULT_LAUNCHER_IMAGE}:{__version__}"


@dataclass(frozen=True)
class Pipeline:
    name: str
    source: Path
    notebook: Path
    steps: tuple[Step, ...]
    namespace: str | None = None
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    prelude: tuple[int, ...] = ()
    skip: tuple[int, ...] = ()
    parameter_cells: tuple[int, ...] = ()
    parameters: tuple[Parameter, ...] = ()
    metrics: tuple[Metric, ...] = ()
    volumes: tuple[Volume, ...] = ()
    tuning: Tuning | None = None
    snapshot_class: SnapshotClass | None = None
    launcher: Launcher = field(
        default_factory=lambda: Launcher(default_launcher_image(), "kfg-launcher")
    )
    schedules: tuple[Schedule, ...] = ()

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)


def _amount(value: Any) -> Amount | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return Amount(_text(value.get("request")), _text(value.get("limit")))
    return Amount(request=_text(value))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def gpu_of(raw: Any) -> Gpu | None:
    """`gpu: 1` is shorthand for `gpu: {count: 1}` (the default type)."""
    if not raw:
        return None
    # JSON Schema's integer includes 2.0 (YAML's float), so counts are made ints here.
    if isinstance(raw, (int, float)):
        return Gpu(int(raw))
    return Gpu(int(raw["count"]), raw.get("type", DEFAULT_GPU_TYPE))


def _resources(raw: dict[str, Any]) -> Resources:
    return Resources(
        cpu=_amount(raw.get("cpu")),
        memory=_amount(raw.get("memory")),
        gpu=gpu_of(raw.get("gpu")),
    )


def _env(raw: dict[str, Any]) -> dict[str, str]:
    return {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in raw.items()}


def _step(raw: dict[str, Any], spec: dict[str, Any], cellmap: CellMap, volumes: list[str]) -> Step:
    timeout = raw.get("timeout")
    return Step(
        name=raw["name"],
        cells=tuple(cellmap.sections.get(step_role(raw["name"]), [])),
        after=tuple(raw.get("after", [])),
        image=raw.get("image", spec.get("image", DEFAULT_IMAGE)),
        # Checked already; the normalised form is what may reach kfp's install line.
        packages=tuple(normalize(p)[0] for p in raw.get("packages", spec.get("packages", []))),
        runtime=raw.get("runtime", spec.get("runtime", DEFAULT_RUNTIME)),
        resources=_resources(raw.get("resources", {})),
        node_selector=dict(raw.get("nodeSelector", {})),
        tolerations=tuple(raw.get("tolerations", [])),
        env=_env(raw.get("env", {})),
        secrets=tuple(
            SecretEnv(s["secret"], s["key"], s.get("env", s["key"])) for s in raw.get("secrets", [])
        ),
        labels=dict(raw.get("labels", {})),
        annotations=dict(raw.get("annotations", {})),
        volumes=tuple(raw.get("volumes", volumes)),
        snapshot_after=raw.get("snapshot") == "after",
        caching=raw.get("caching", True),
        retries=raw.get("retries", 0),
        timeout_seconds=parse_duration(timeout) if timeout is not None else None,
    )


def _tuning(raw: dict[str, Any], metrics: tuple[Metric, ...]) -> Tuning:
    objective = raw["objective"]
    others = tuple(m.name for m in metrics if m.name != objective["metric"])
    early = raw.get("earlyStopping", {})
    spaces = tuple(
        SearchSpace(
            name=name,
            type=space["type"],
            min=space.get("min"),
            max=space.get("max"),
            step=space.get("step"),
            distribution=space.get("distribution"),
            values=tuple(space.get("values", [])),
        )
        for name, space in raw["parameters"].items()
    )
    return Tuning(
        metric=objective["metric"],
        goal_type=objective["type"],
        goal=objective.get("goal"),
        additional_metrics=tuple(objective.get("additionalMetrics", others)),
        strategies=dict(objective.get("strategies", {})),
        algorithm=raw["algorithm"]["name"],
        algorithm_settings=dict(raw["algorithm"].get("settings", {})),
        early_stopping=early.get("name"),
        early_stopping_settings=dict(early.get("settings", {})),
        parameters=spaces,
        max_trials=raw.get("maxTrials", DEFAULT_MAX_TRIALS),
        parallel_trials=raw.get("parallelTrials", DEFAULT_PARALLEL_TRIALS),
        max_failed_trials=raw.get("maxFailedTrials", DEFAULT_MAX_FAILED_TRIALS),
        revision=raw.get("revision"),
        cluster=raw.get("cluster", True),
    )


def build(
    data: dict[str, Any],
    *,
    source: Path,
    notebook: Path,
    cellmap: CellMap,
    parameters: list[Parameter],
    metric_steps: dict[str, str],
) -> Pipeline:
    """The typed pipeline; `metric_steps` gives the step that reports each metric."""
    spec = data["spec"]
    meta = data["metadata"]
    volume_names = [v["name"] for v in spec.get("volumes", [])]
    metrics = tuple(
        Metric(m["name"], m.get("variable", m["name"]), metric_steps[m["name"]])
        for m in spec.get("metrics", [])
    )
    return Pipeline(
        name=meta["name"],
        namespace=meta.get("namespace"),
        labels=dict(meta.get("labels", {})),
        annotations=dict(meta.get("annotations", {})),
        source=source,
        notebook=notebook,
        description=spec.get("description", ""),
        prelude=tuple(cellmap.sections.get(PRELUDE, [])),
        skip=tuple(cellmap.sections.get(SKIP, [])),
        parameter_cells=tuple(cellmap.sections.get(PARAMETERS, [])),
        parameters=tuple(parameters),
        steps=tuple(_step(s, spec, cellmap, volume_names) for s in spec["steps"]),
        metrics=metrics,
        volumes=tuple(
            Volume(
                v["name"],
                v["claim"],
                v["mountPath"],
                v.get("readOnly", False),
                _snapshot(v["snapshot"]) if "snapshot" in v else None,
            )
            for v in spec.get("volumes", [])
        ),
        tuning=_tuning(spec["tuning"], metrics) if "tuning" in spec else None,
        launcher=_launcher(spec.get("launcher", {}), meta["name"]),
        snapshot_class=_snapshot_class(spec.get("snapshotClass"), meta["name"]),
        schedules=tuple(
            _schedule(s, {p.name: p.type_name for p in parameters})
            for s in spec.get("schedules", [])
        ),
    )


def _schedule(raw: dict[str, Any], types: dict[str, str]) -> Schedule:
    """The checks accepted an int for a float parameter; it is that float from here on, so a
    local run and a KFP run see the same value."""
    values = {
        k: float(v) if types.get(k) == "float" and isinstance(v, int) else v
        for k, v in raw.get("parameters", {}).items()
    }
    return Schedule(
        name=raw["name"],
        cron=raw["cron"],
        time_zone=raw.get("timeZone", DEFAULT_TIME_ZONE),
        parameters=values,
        experiment=raw.get("experiment"),
        concurrency=raw.get("concurrencyPolicy", DEFAULT_CONCURRENCY),
        successful_history=raw.get("successfulJobsHistoryLimit", DEFAULT_SUCCESSFUL_HISTORY),
        failed_history=raw.get("failedJobsHistoryLimit", DEFAULT_FAILED_HISTORY),
        suspend=raw.get("suspend", False),
    )


def _snapshot_class(raw: dict[str, Any] | None, pipeline: str) -> SnapshotClass | None:
    if raw is None:
        return None
    return SnapshotClass(
        name=raw.get("name", f"{pipeline[:200]}-snapshots"),
        driver=raw["driver"],
        deletion_policy=raw.get("deletionPolicy", "Retain"),
        parameters={k: str(v) for k, v in raw.get("parameters", {}).items()},
    )


def _snapshot(raw: dict[str, Any]) -> Snapshot:
    return Snapshot(
        version=raw["version"],
        class_name=raw.get("className"),
        size=str(raw.get("size", DEFAULT_RESTORE_SIZE)),
        storage_class=raw.get("storageClass"),
        access_mode=raw.get("accessMode", "ReadWriteOnce"),
    )


def _launcher(raw: dict[str, Any], pipeline: str) -> Launcher:
    """Each pipeline's launcher has its own ServiceAccount unless kale.yaml names one."""
    timeout = raw.get("timeout")
    return Launcher(
        image=raw.get("image", default_launcher_image()),
        service_account=raw.get("serviceAccount", f"{pipeline[:50]}-launcher"),
        kfp_access=raw.get("kfpAccess", "token"),
        endpoint=raw.get("endpoint", DEFAULT_KFP_ENDPOINT),
        timeout_seconds=(parse_duration(timeout) or DEFAULT_LAUNCHER_TIMEOUT)
        if timeout is not None
        else DEFAULT_LAUNCHER_TIMEOUT,
        run_on_sync=raw.get("runOnSync", False),
    )
