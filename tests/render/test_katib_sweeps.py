"""Katib Experiments on a GitOps cluster: no drift after Katib's webhook, and when a sweep starts.

Upstream behaviour encoded here was read from kubeflow/katib v0.19.0:
- pkg/webhook/v1beta1/experiment/mutate_webhook.go:44-60 and
  pkg/apis/controller/experiments/v1beta1/experiment_defaults.go (see katib_webhook.py);
- pkg/webhook/v1beta1/experiment/validator/validator.go:117-143: an update may change only
  the three counts, and nothing at all once the Experiment finished with resumePolicy Never.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfg.core.load import load_pipeline
from kfg.render.build import EXPERIMENT_FILE, TUNING_IR_FILE, VERSION_FILE, Rendered, render
from kfg.render.katib import REVISION_ANNOTATION, STEPS_ANNOTATION
from tests.conftest import EXAMPLES
from tests.notebooks import Cell
from tests.pipelines import make, messages
from tests.render.katib_webhook import DecodeError, admit

PARAMETERS = "epochs = 3\nlr = 0.01\nkind = 'adam'\nbatch = 32\ndropout = 0.5"
LOAD = "data = list(range(10))"
TRAIN = "model = sum(data) * lr * epochs * (1 - dropout) + batch + len(kind)\nnoise = 0.1"
EVALUATE = "score = model / 100\nloss = 1 - score"
REPORT = "legend = 'score'\nprint(legend, score, noise)"

TUNING: dict[str, Any] = {
    "objective": {
        "metric": "score",
        "type": "maximize",
        "additionalMetrics": ["loss"],
        "strategies": {"loss": "min"},
    },
    "algorithm": {"name": "random"},
    "earlyStopping": {"name": "medianstop", "settings": {"min_trials_required": 2}},
    "maxTrials": 8,
    "parallelTrials": 2,
    "parameters": {
        "epochs": {"type": "int", "min": 1, "max": 9, "step": 2},
        "lr": {"type": "double", "min": 0.001, "max": 0.1, "distribution": "logUniform"},
        "dropout": {"type": "double", "min": 0.0, "max": 0.9},
        "kind": {"type": "categorical", "values": ["adam", "sgd"]},
        "batch": {"type": "discrete", "values": [16, 32, 64]},
    },
}


def _rich(tmp_path: Path, *, cells: dict[int, str] | None = None, **tuning: Any) -> Rendered:
    """Five parameter types, early stopping, two metrics and a step after the metrics."""
    sources = {1: PARAMETERS, 2: LOAD, 3: TRAIN, 4: EVALUATE, 5: REPORT, **(cells or {})}
    notebook: list[Cell] = [("code", sources[i]) for i in range(1, 6)]
    result = make(
        tmp_path,
        notebook,
        [
            {"name": "load", "cells": [2]},
            {"name": "train", "cells": [3]},
            {"name": "evaluate", "cells": [4]},
            {"name": "report", "cells": [5]},
        ],
        parameters={"cell": 1},
        metrics=[{"name": "score"}, {"name": "loss"}],
        tuning={**TUNING, **tuning},
    )
    assert result.ok and result.pipeline and result.flow and result.notebook, messages(result)
    return render(result.pipeline, result.flow, result.notebook, tmp_path)


def _examples(tmp_path: Path, name: str, extra: str = "") -> Rendered:
    shutil.copytree(EXAMPLES / name, tmp_path / name)
    (tmp_path / ".git").mkdir(exist_ok=True)
    kale = tmp_path / name / "kale.yaml"
    kale.write_text(kale.read_text() + extra)
    result = load_pipeline(kale, root=tmp_path)
    assert result.ok and result.pipeline and result.flow and result.notebook, messages(result)
    return render(result.pipeline, result.flow, result.notebook, tmp_path)


WINE_TUNING = """  tuning:
    objective: {metric: forest-accuracy, type: maximize, additionalMetrics: []}
    algorithm: {name: tpe, settings: {n_EI_candidates: 32}}
    parameters:
      n_estimators: {type: int, min: 50, max: 500, step: 50}
      max_depth: {type: int, min: 2, max: 12}
"""


def _experiment(item: Rendered) -> dict[str, Any]:
    [experiment] = [d for d in yaml.safe_load_all(item.package.files[EXPERIMENT_FILE]) if d]
    # as the API server receives it: JSON, from the YAML Argo CD or Flux read
    loaded: dict[str, Any] = json.loads(json.dumps(experiment))
    return loaded


def _versions(item: Rendered) -> dict[str, dict[str, Any]]:
    documents = yaml.safe_load_all(item.package.files[VERSION_FILE])
    return {d["metadata"]["name"]: d for d in documents if d and d["kind"] == "PipelineVersion"}


def _trial_version(experiment: dict[str, Any]) -> str:
    job = experiment["spec"]["trialTemplate"]["trialSpec"]
    args: list[str] = job["spec"]["template"]["spec"]["containers"][0]["args"]
    return args[args.index("--version") + 1]


RENDERS = {
    "digits": lambda tmp: _examples(tmp, "digits"),
    "wine": lambda tmp: _examples(tmp, "wine", WINE_TUNING),
    "rich": lambda tmp: _rich(tmp),
    "cmaes": lambda tmp: _rich(
        tmp,
        algorithm={"name": "cmaes", "settings": {"sigma": 0.1, "popsize": ""}},
        earlyStopping={"name": "medianstop"},
    ),
}


@pytest.mark.parametrize("case", sorted(RENDERS))
def test_katibs_webhook_leaves_the_rendered_experiment_as_it_is(tmp_path: Path, case: str) -> None:
    experiment = _experiment(RENDERS[case](tmp_path))
    assert admit(experiment) == experiment


def test_the_webhook_model_sees_what_used_to_drift() -> None:
    # What kfg rendered before: `retain: false` and `algorithmSettings: []` are omitempty
    # (experiment_types.go:245, common_types.go:32), so the stored object lacks them.
    spec: dict[str, Any] = {
        "objective": {"type": "minimize", "objectiveMetricName": "loss"},
        "algorithm": {"algorithmName": "random", "algorithmSettings": []},
        "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0"}}],
        "trialTemplate": {"retain": False, "trialSpec": {"apiVersion": "batch/v1", "kind": "Job"}},
        "unknownField": 1,
    }
    stored = admit({"spec": spec})["spec"]
    assert "algorithmSettings" not in stored["algorithm"]
    assert "retain" not in stored["trialTemplate"] and "unknownField" not in stored
    assert stored["parallelTrialCount"] == 3 and stored["resumePolicy"] == "Never"
    assert stored["objective"]["metricStrategies"] == [{"name": "loss", "value": "min"}]
    assert stored["parameters"][0]["feasibleSpace"]["distribution"] == "uniform"
    assert stored["trialTemplate"]["successCondition"].startswith("status.conditions")
    assert stored["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}
    with pytest.raises(DecodeError):
        admit({"spec": {"maxTrialCount": "12"}})


def test_trials_run_only_the_steps_the_metrics_depend_on(tmp_path: Path) -> None:
    item = _rich(tmp_path)
    experiment = _experiment(item)
    trial_version = _trial_version(experiment)
    versions = _versions(item)
    assert set(versions) == {item.version, trial_version}
    assert trial_version.startswith("p-tune-")
    assert experiment["metadata"]["annotations"][STEPS_ANNOTATION] == "load,train,evaluate"
    spec = versions[trial_version]["spec"]["pipelineSpec"]
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks) == ["evaluate", "load", "train"]
    train = spec["components"]["comp-train"]["outputDefinitions"]["artifacts"]
    assert "out_model" in train and "out_noise" not in train  # only `report` reads noise
    assert TUNING_IR_FILE in item.package.files
    assert TUNING_IR_FILE in item.package.files[".krmignore"]


def test_a_whole_pipeline_is_its_own_tuning_version(tmp_path: Path) -> None:
    item = _examples(tmp_path, "digits")
    assert _trial_version(_experiment(item)) == item.version
    assert list(_versions(item)) == [item.version]
    assert TUNING_IR_FILE not in item.package.files


def _sweep(item: Rendered) -> tuple[str, str, dict[str, Any]]:
    experiment = _experiment(item)
    return experiment["metadata"]["name"], _trial_version(experiment), experiment["spec"]


def test_an_edit_the_metrics_cannot_see_keeps_the_experiment(tmp_path: Path) -> None:
    base = _rich(tmp_path)
    name, trials, spec = _sweep(base)
    for edit in (
        {5: "legend = 'validation score'\nprint(legend, score, noise)"},  # a plot legend
        {5: "print(score, noise, data)"},  # reads one more variable from upstream
    ):
        edited = _rich(tmp_path, cells=edit)
        assert edited.version != base.version  # the pipeline itself is a new version
        assert _sweep(edited) == (name, trials, spec)  # Katib sees no change at all


@pytest.mark.parametrize(
    ("why", "change"),
    [
        ("a step the metric depends on", {"cells": {3: TRAIN.replace("0.1", "0.2")}}),
        ("a pipeline parameter's default", {"cells": {1: PARAMETERS.replace("batch = 32", "batch = 16")}}),
        ("the search space", {"parameters": {**TUNING["parameters"], "batch": {"type": "discrete", "values": [32, 64]}}}),
        ("the algorithm", {"algorithm": {"name": "random", "settings": {"random_state": 1}}}),
        ("the objective", {"objective": {**TUNING["objective"], "goal": 0.9}}),
        ("the counts", {"maxTrials": 9}),
        ("the early stopping", {"earlyStopping": {"name": "medianstop"}}),
        ("a bumped revision", {"revision": 2}),
    ],
)  # fmt: skip
def test_a_change_that_can_move_the_objective_starts_a_new_experiment(
    tmp_path: Path, why: str, change: dict[str, Any]
) -> None:
    before, _, _ = _sweep(_rich(tmp_path))
    after, _, spec = _sweep(_rich(tmp_path, **change))
    assert after != before, why
    assert spec["maxTrialCount"] in (8, 9)


def test_the_revision_is_recorded_and_a_string_works(tmp_path: Path) -> None:
    experiment = _experiment(_rich(tmp_path, revision="new-labels"))
    assert experiment["metadata"]["annotations"][REVISION_ANNOTATION] == "new-labels"


def test_one_name_never_carries_two_specs(tmp_path: Path) -> None:
    """What Katib's validator needs (validator.go:117-143): re-applying an Experiment of the
    same name never changes its spec, whatever was edited; so no sync is ever refused."""
    seen: dict[str, dict[str, Any]] = {}
    for change in (
        {},
        {"cells": {5: "print('changed report')"}},
        {"cells": {3: TRAIN + "\nunused = 1"}},
        {"maxTrials": 9},
        {"parallelTrials": 1},
    ):
        name, _, spec = _sweep(_rich(tmp_path, **copy.deepcopy(change)))
        assert seen.setdefault(name, spec) == spec
    assert len(seen) == 4


def test_a_tuning_version_renders_byte_identically(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    _rich(tmp_path)
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / f"out{seed}"
        subprocess.run(
            [sys.executable, "-m", "kfg", "render", "kale.yaml", "-o", str(out)],
            cwd=tmp_path,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
            capture_output=True,
        )
        outputs.append(
            {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        )
    assert TUNING_IR_FILE in outputs[0] and outputs[0] == outputs[1]


def test_the_steps_reporting_tuned_metrics_never_come_from_kfps_cache(tmp_path: Path) -> None:
    # A cached task runs no pod (kubeflow/pipelines 2.17.0 backend/src/v2/driver/container.go:
    # a cache hit publishes the old outputs and skips the launcher), so it prints no
    # kfg:metric line for the trial to read.
    item = _examples(tmp_path, "digits")
    experiment = _experiment(item)
    spec = _versions(item)[_trial_version(experiment)]["spec"]["pipelineSpec"]
    tasks = spec["root"]["dag"]["tasks"]
    caching = {
        name: task.get("cachingOptions", {}).get("enableCache", False)
        for name, task in tasks.items()
    }
    assert caching.pop("evaluate") is False
    assert caching and all(caching.values())
