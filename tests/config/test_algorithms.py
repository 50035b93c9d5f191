"""Algorithm settings are checked against the Katib service that runs each algorithm.

Every rule below was read from kubeflow/katib v0.19.0: which service serves which algorithm
from manifests/v1beta1/installs/katib-standalone/katib-config.yaml, what each accepts from
its ValidateAlgorithmSettings (file cited per case).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kfg.config.algorithms import ALGORITHMS, grid_axis
from kfg.core.load import load_pipeline
from tests.conftest import EXAMPLES
from tests.pipelines import make

CELLS: list[Any] = [
    ("code", "a = 1\nlr = 0.1\nkind = 'x'\nepochs = 3"),
    ("code", "score = a * lr + epochs + len(kind)"),
]


def _found(
    tmp_path: Path, algorithm: dict[str, Any], **tuning: Any
) -> list[tuple[str, str, int, str]]:
    spaces = tuning.pop(
        "parameters",
        {"a": {"type": "int", "min": 1, "max": 4}, "lr": {"type": "double", "min": 0, "max": 1}},
    )
    result = make(
        tmp_path,
        CELLS,
        [{"name": "train", "cells": [2]}],
        parameters={"cell": 1},
        metrics=[{"name": "score"}],
        tuning={
            "objective": {"metric": "score", "type": "maximize"},
            "algorithm": algorithm,
            "parameters": spaces,
            **tuning,
        },
    )
    return [(d.severity.value, d.code, d.line, d.message) for d in result.diagnostics]


# (algorithm, settings, severity or None, fragment of the message)
CASES: list[tuple[str, dict[str, Any], str | None, str]] = [
    # hyperopt/service.py:102-125: tpe knows exactly four settings, in hyperopt's spelling
    ("tpe", {"gamma": 0.3, "prior_weight": 2, "n_EI_candidates": 32, "random_state": 1}, None, ""),
    ("tpe", {"n_startup_trials": 4}, "error", "is a setting of multivariate-tpe"),
    ("tpe", {"n_ei_candidates": 24}, "error", "did you mean `n_EI_candidates`?"),
    ("tpe", {"gamma": 1}, "error", "strictly between 0 and 1"),
    (
        "tpe",
        {"gamma": "nan"},
        "error",
        "strictly between 0 and 1",
    ),  # a YAML .nan is refused earlier
    ("tpe", {"prior_weight": 0}, "error", "greater than 0"),
    ("tpe", {"n_EI_candidates": 0}, "error", "at least 1"),
    ("tpe", {"n_EI_candidates": 24.0}, "error", "whole number, not `24.0`"),
    ("tpe", {"random_state": -1}, "error", "at least 0"),
    # hyperopt/service.py:127-143
    ("random", {"random_state": 3}, None, ""),
    ("random", {"seed": 3}, "error", "rejects the setting `seed`"),
    # optuna/service.py:138-159: multivariate-tpe takes Optuna's names
    ("multivariate-tpe", {"n_startup_trials": 4, "n_ei_candidates": 8}, None, ""),
    ("multivariate-tpe", {"n_EI_candidates": 8}, "error", "did you mean `n_ei_candidates`?"),
    ("multivariate-tpe", {"gamma": 0.2}, "error", "rejects the setting `gamma`"),
    # skopt/service.py:116-165
    ("bayesianoptimization", {"base_estimator": "RF", "acq_func": "EI"}, None, ""),
    ("bayesianoptimization", {"base_estimator": "gp"}, "error", "did you mean `GP`?"),
    ("bayesianoptimization", {"acq_optimizer": "adam"}, "error", "auto, sampling, lbfgs"),
    ("bayesianoptimization", {"n_initial_points": "five"}, "error", "whole number"),
    # goptuna/converter.go:38-68: Go's parsing, and names it never reads are ignored
    ("cmaes", {"sigma": 0.5, "restart_strategy": "bipop", "random_state": -4}, None, ""),
    ("cmaes", {"random_state": "1_000"}, "error", "strconv.Atoi"),
    ("cmaes", {"sigma": "1.0e+400"}, "error", "strconv.ParseFloat"),
    ("cmaes", {"restart_strategy": "None"}, "error", "did you mean `none`?"),
    ("cmaes", {"popsize": 8}, "warning", "ignores the setting `popsize`"),
    # goptuna/converter.go:93-94: sobol reads no setting at all
    ("sobol", {"random_state": 1}, "warning", "ignores the setting `random_state`"),
]


@pytest.mark.parametrize(("name", "settings", "severity", "fragment"), CASES)
def test_settings_follow_the_service_that_runs_the_algorithm(
    tmp_path: Path, name: str, settings: dict[str, Any], severity: str | None, fragment: str
) -> None:
    found = _found(tmp_path, {"name": name, "settings": settings})
    about = [f for f in found if f[1] == "tuning-setting"]
    if severity is None:
        assert about == [], about
        return
    assert [f[0] for f in about] == [severity], found
    assert fragment in about[0][3], about[0][3]
    kale = (tmp_path / "kale.yaml").read_text().splitlines()
    setting = next(iter(settings))
    assert setting in kale[about[0][2] - 1], "reported on the line of the setting"


def test_the_python_services_parse_like_python() -> None:
    # `int()` accepts surrounding blanks and digit separators; Go's Atoi does not
    assert ALGORITHMS["random"].settings["random_state"](" 7 ") is None
    assert ALGORITHMS["random"].settings["random_state"]("1_000") is None
    assert ALGORITHMS["cmaes"].settings["random_state"](" 7 ") is not None
    assert ALGORITHMS["cmaes"].settings["random_state"]("+7") is None
    assert ALGORITHMS["cmaes"].settings["sigma"]("Inf") is None
    assert ALGORITHMS["cmaes"].settings["sigma"]("0x1p-2") is None


def test_early_stopping_settings(tmp_path: Path) -> None:
    # medianstop/service.py:92-118
    found = _found(
        tmp_path,
        {"name": "random"},
        earlyStopping={
            "name": "medianstop",
            "settings": {"min_trials_required": 0, "start_step": 2, "min_step": 1},
        },
    )
    errors = " | ".join(f[3] for f in found if f[0] == "error")
    assert errors.count("Katib's `medianstop` early-stopping service rejects") == 2, found
    assert "`min_trials_required` must be at least 1" in errors
    assert "rejects the setting `min_step`" in errors


def test_grid_rejects_more_trials_than_points(tmp_path: Path) -> None:
    # optuna/service.py:238-259: 4 ints x 3 doubles (0, 0.5, 1) = 12 points
    spaces = {
        "a": {"type": "int", "min": 1, "max": 4},
        "lr": {"type": "double", "min": 0, "max": 1, "step": 0.5},
    }
    ok = _found(tmp_path, {"name": "grid"}, parameters=spaces, maxTrials=12)
    assert [f for f in ok if f[1] == "tuning-grid"] == []
    over = _found(tmp_path, {"name": "grid"}, parameters=spaces, maxTrials=13)
    [error] = [f for f in over if f[1] == "tuning-grid"]
    assert "13 trials are more than the 12 points of the grid" in error[3]
    default = _found(tmp_path, {"name": "grid"}, parameters={"a": spaces["a"]})
    assert any("12 trials are more than the 4 points" in f[3] for f in default)


def test_grid_axis_is_numpys_arange() -> None:
    # search_space.py:63-70: arange(min, max + step, step), without a value beyond max
    assert grid_axis("double", 0.1, 0.3, 0.1, ()) == pytest.approx([0.1, 0.2, 0.3])
    assert grid_axis("double", 0.0, 1.0, 0.3, ()) == pytest.approx([0.0, 0.3, 0.6, 0.9])
    assert grid_axis("int", 16, 128, 16, ()) == list(range(16, 129, 16))
    assert grid_axis("double", 0.0, 1.0, None, ()) is None


def test_cmaes_needs_two_numeric_dimensions(tmp_path: Path) -> None:
    # goptuna/service.go:187-197
    found = _found(
        tmp_path,
        {"name": "cmaes"},
        parameters={
            "a": {"type": "int", "min": 1, "max": 4},
            "kind": {"type": "categorical", "values": ["x", "y"]},
        },
    )
    assert any(f[0] == "error" and "at least two int or double" in f[3] for f in found), found
    assert any(f[0] == "warning" and "sampled at random" in f[3] for f in found), found


@pytest.mark.parametrize(
    ("settings", "parallel", "fragment"),
    [
        ({"resource_name": "epochs", "r_l": 9, "eta": 3}, 9, None),
        ({"resource_name": "epochs", "r_l": 9, "eta": 3}, 3, "set it to at least 9"),
        ({"resource_name": "epochs", "eta": 3}, 9, "needs `settings.r_l`"),
        ({"resource_name": "epochs", "r_l": 0}, 9, "greater than 0"),
        ({"resource_name": "epochs", "r_l": 9, "eta": 1.5}, 9, "cannot divide by"),
        ({"resource_name": "lr", "r_l": 9, "eta": "x"}, 9, "`eta` must be a number"),
        ({"resource_name": "nope", "r_l": 9}, 9, "naming a tuned parameter"),
    ],
)
def test_hyperband(
    tmp_path: Path, settings: dict[str, Any], parallel: int, fragment: str | None
) -> None:
    # hyperband/service.py:251-297
    spaces = {
        "epochs": {"type": "int", "min": 1, "max": 9},
        "lr": {"type": "double", "min": 0.01, "max": 1},
    }
    found = _found(
        tmp_path,
        {"name": "hyperband", "settings": settings},
        parameters=spaces,
        parallelTrials=parallel,
        maxTrials=20,
    )
    errors = [f[3] for f in found if f[0] == "error"]
    if fragment is None:
        assert errors == [], found
    else:
        assert any(fragment in e for e in errors), found


def test_the_digits_example_is_accepted_by_katib() -> None:
    result = load_pipeline(EXAMPLES / "digits" / "kale.yaml")
    assert result.diagnostics == [], result.diagnostics
