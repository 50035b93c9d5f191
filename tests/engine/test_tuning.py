"""kfg tune: Katib's search space and algorithms on Optuna, cached upstream steps, resuming."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest

from kfg.config.model import SearchSpace, Tuning
from kfg.engine.cache import Cache
from kfg.engine.tuning import TuneError, sampler, suggest, tune
from tests.pipelines import make, messages

TUNING = {
    "objective": {"metric": "score", "type": "maximize"},
    "algorithm": {"name": "tpe", "settings": {"random_state": 7, "n_startup_trials": 2}},
    "maxTrials": 6,
    "parallelTrials": 2,
    "parameters": {
        "a": {"type": "int", "min": 1, "max": 5},
        "b": {"type": "categorical", "values": ["x", "y"]},
    },
}


def _pipeline(tmp_path: Path, tuning: dict[str, Any] = TUNING) -> tuple[Any, Path]:
    counter = tmp_path / "executions.txt"
    note = f"open({str(counter)!r}, 'a').write('{{}}\\n')"
    result = make(
        tmp_path,
        [
            ("code", "a = 1\nb = 'x'\nc = 0.5"),
            ("code", "base = [1, 2, 3]\n" + note.format("load")),
            (
                "code",
                "score = float(sum(base) * a + (1 if b == 'y' else 0))\n" + note.format("score"),
            ),
        ],
        [{"name": "load", "cells": [2]}, {"name": "train", "cells": [3]}],
        parameters={"cell": 1},
        metrics=[{"name": "score", "variable": "score"}],
        tuning=tuning,
    )
    assert result.ok, messages(result)
    return result, counter


def test_trials_reuse_upstream_steps_and_a_study_resumes(tmp_path: Path) -> None:
    result, counter = _pipeline(tmp_path)
    cache = Cache(tmp_path / ".kfg")
    summary = tune(result.pipeline, result.flow, result.notebook, cache)
    assert summary.new_trials == 6
    assert all(t.state == "COMPLETE" for t in summary.trials)
    runs = counter.read_text().split()
    assert runs.count("load") == 1  # the step no tuned parameter reaches ran once
    assert summary.best is not None and summary.best.value == max(
        t.value or 0 for t in summary.trials
    )
    assert Path(summary.plots["png"]).is_file() and Path(summary.plots["html"]).is_file()
    again = tune(result.pipeline, result.flow, result.notebook, cache)
    assert again.new_trials == 0 and len(again.trials) == 6  # stored in SQLite, resumed
    more = tune(result.pipeline, result.flow, result.notebook, cache, trials=8)
    assert more.new_trials == 2


def test_goal_stops_the_study(tmp_path: Path) -> None:
    tuning = {**TUNING, "objective": {"metric": "score", "type": "maximize", "goal": 1.0}}
    result, _ = _pipeline(tmp_path, tuning)
    summary = tune(
        result.pipeline, result.flow, result.notebook, Cache(tmp_path / ".kfg"), parallel=1
    )
    assert summary.new_trials == 1


def test_grid_tries_every_combination(tmp_path: Path) -> None:
    tuning = {**TUNING, "algorithm": {"name": "grid"}, "maxTrials": 10}
    result, _ = _pipeline(tmp_path, tuning)
    summary = tune(result.pipeline, result.flow, result.notebook, Cache(tmp_path / ".kfg"))
    tried = sorted((t.params["a"], t.params["b"]) for t in summary.trials)
    assert tried == [(a, b) for a in range(1, 6) for b in ("x", "y")]


def _tuning(name: str, **settings: object) -> Tuning:
    return Tuning(
        metric="m",
        goal_type="maximize",
        algorithm=name,
        parameters=(SearchSpace("x", "double", 0.0, 1.0),),
        algorithm_settings=settings,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("random", optuna.samplers.RandomSampler),
        ("tpe", optuna.samplers.TPESampler),
        ("multivariate-tpe", optuna.samplers.TPESampler),
        ("cmaes", optuna.samplers.CmaEsSampler),
        ("sobol", optuna.samplers.QMCSampler),
    ],
)
def test_katib_algorithms_map_to_optuna_samplers(name: str, kind: type) -> None:
    assert isinstance(sampler(_tuning(name, random_state=1), {"x": "float"}), kind)


def test_algorithms_without_a_local_equivalent_are_errors() -> None:
    with pytest.raises(TuneError, match="hyperband"):
        sampler(_tuning("hyperband"), {"x": "float"})


def test_search_space_semantics() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    trial = study.ask()
    value = suggest(
        trial, SearchSpace("lr", "double", 1e-4, 1e-1, distribution="logUniform"), "float"
    )
    assert 1e-4 <= value <= 1e-1
    stepped = suggest(trial, SearchSpace("n", "int", 16, 128, step=16), "int")
    assert stepped % 16 == 0
    flag = suggest(trial, SearchSpace("f", "categorical", values=("true", "false")), "bool")
    assert isinstance(flag, bool)
    with pytest.raises(TuneError, match="`normal` distribution has no local equivalent"):
        suggest(trial, SearchSpace("z", "double", 0.0, 1.0, distribution="normal"), "float")


def test_cli_json(tmp_path: Path) -> None:
    _pipeline(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "kfg", "tune", "kale.yaml", "--trials", "3", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["new_trials"] == 3 and summary["best"]["params"]
    assert result.stderr.count("COMPLETE") == 3
