"""Integral floats where the schema wants integers, and integers beyond what a field holds.

Draft 7 counts 4.0 as an integer, so the schema (and an editor linting with it) accepts
`maxTrials: 4.0`; Katib's maxTrialCount is an int32 and Kubernetes' history limits and
tolerationSeconds are integers, so kfg must render 4, never 4.0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kfg.config.schema import load_schema
from kfg.config.schemacheck import whole_numbers
from kfg.render.build import render
from tests.pipelines import make, messages

CELLS: list[tuple[str, str]] = [
    ("code", "lr = 0.1\nn = 3"),
    ("code", "acc = lr * n"),
    ("code", "print(acc)"),
]


def test_integral_floats_become_ints_only_where_the_schema_says_integer() -> None:
    document: dict[str, Any] = {
        "apiVersion": "kfg.dev/v1alpha1",
        "kind": "NotebookPipeline",
        "metadata": {"name": "p"},
        "spec": {
            "notebook": "n.ipynb",
            "parameters": {"values": {"lr": 1.0, "n": 2.0}},
            "steps": [{"name": "a", "cells": [2.0], "timeout": 60.0, "retries": 2.0}],
            "tuning": {
                "objective": {"metric": "acc", "type": "maximize"},
                "maxTrials": 4.0,
                "parallelTrials": 2.0,
                "parameters": {
                    "n": {"type": "int", "min": 1.0, "max": 5.0},
                    "lr": {"type": "double", "min": 0.5, "max": 2.0},
                },
            },
        },
    }
    out = whole_numbers(document, load_schema())
    spec = out["spec"]
    step = spec["steps"][0]
    assert (step["cells"], step["timeout"], step["retries"]) == ([2], 60, 2)
    assert all(type(v) is int for v in (*step["cells"], step["timeout"], step["retries"]))
    tuning = spec["tuning"]
    assert type(tuning["maxTrials"]) is int and type(tuning["parallelTrials"]) is int
    assert type(tuning["parameters"]["n"]["min"]) is int
    assert type(tuning["parameters"]["n"]["max"]) is int
    # a double's bounds and the parameters' own values keep their float type
    assert type(tuning["parameters"]["lr"]["max"]) is float
    assert type(spec["parameters"]["values"]["lr"]) is float
    assert type(spec["parameters"]["values"]["n"]) is float
    assert document["spec"]["tuning"]["maxTrials"] == 4.0  # the input is left alone


def test_a_float_max_trials_renders_as_an_int(tmp_path: Path) -> None:
    result = make(
        tmp_path,
        CELLS,
        [{"name": "a", "cells": [2]}, {"name": "b", "cells": [3.0]}],
        parameters={"cell": 1},
        metrics=[{"name": "acc", "variable": "acc"}],
        tuning={
            "objective": {"metric": "acc", "type": "maximize"},
            "algorithm": {"name": "random"},
            "maxTrials": 4.0,
            "parameters": {"n": {"type": "int", "min": 1.0, "max": 5.0}},
        },
    )
    assert result.ok, messages(result)
    assert result.pipeline and result.flow and result.notebook
    rendered = render(result.pipeline, result.flow, result.notebook, tmp_path)
    experiment = next(o for o in rendered.objects if o["kind"] == "Experiment")
    text = yaml.safe_dump(experiment)
    assert "maxTrialCount: 4\n" in text
    space = experiment["spec"]["parameters"][0]["feasibleSpace"]
    assert (space["min"], space["max"]) == ("1", "5")


@pytest.mark.parametrize(
    ("tuning", "fragment"),
    [
        ({"maxTrials": 2**31}, "must be at most 2147483647"),
        (
            {"parameters": {"n": {"type": "int", "min": 1, "max": 10**26}}},
            "at most 9007199254740991",
        ),
    ],
)
def test_integers_beyond_their_field_are_refused(
    tmp_path: Path, tuning: dict[str, Any], fragment: str
) -> None:
    spec: dict[str, Any] = {
        "objective": {"metric": "acc", "type": "maximize"},
        "algorithm": {"name": "random"},
        "parameters": {"n": {"type": "int", "min": 1, "max": 5}},
    }
    spec.update(tuning)
    result = make(
        tmp_path,
        CELLS,
        [{"name": "a", "cells": [2]}, {"name": "b", "cells": [3]}],
        parameters={"cell": 1},
        metrics=[{"name": "acc", "variable": "acc"}],
        tuning=spec,
    )
    assert not result.ok
    assert any(fragment in m for m in messages(result)), messages(result)


@pytest.mark.parametrize(
    ("timeout", "fragment"),
    [
        (999999999999999999999, "at most 2147483647"),
        ("99999999999999999999d", "at most 2147483647 seconds"),
        ("500ms", "at least 1s"),
    ],
)
def test_timeouts_must_fit_whole_seconds_in_their_fields(
    tmp_path: Path, timeout: object, fragment: str
) -> None:
    result = make(
        tmp_path,
        CELLS,
        [{"name": "a", "cells": [2], "timeout": timeout}, {"name": "b", "cells": [3]}],
        parameters={"cell": 1},
    )
    assert not result.ok
    assert any(fragment in m for m in messages(result)), messages(result)


def test_the_launcher_timeout_is_checked_too(tmp_path: Path) -> None:
    result = make(
        tmp_path,
        CELLS,
        [{"name": "a", "cells": [2]}, {"name": "b", "cells": [3]}],
        parameters={"cell": 1},
        launcher={"timeout": "0.5s"},
    )
    assert any("at least 1s" in m for m in messages(result)), messages(result)
