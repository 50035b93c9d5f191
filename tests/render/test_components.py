from __future__ import annotations

import ast
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from kfg.core.load import load_pipeline
from kfg.render.components import CLOUDPICKLE, build_component, function_name, literal
from tests.pipelines import make


@given(st.text())
def test_literal_round_trips_any_text(text: str) -> None:
    assert ast.literal_eval(literal(text)) == text


def test_literal_keeps_code_readable() -> None:
    assert literal("x = 'a'\nprint(x)") == "'''x = \\'a\\'\nprint(x)'''"


def test_function_names_are_identifiers() -> None:
    assert function_name("random-forest") == "random_forest"
    assert function_name("import") == "import_step"
    assert function_name("3d-model") == "step_3d_model"


def test_component_declares_exactly_what_the_step_reads(wine: Path) -> None:
    result = load_pipeline(wine)
    assert result.pipeline and result.flow and result.notebook
    component = build_component(
        result.pipeline, result.flow, result.notebook, result.pipeline.step("random-forest")
    )
    header = component.source.split("):")[0]
    assert header.splitlines() == [
        "def random_forest(",
        "    max_depth: int,",
        "    n_estimators: int,",
        "    random_state: int,",
        "    in_X_test: Input[Artifact],",
        "    in_X_train: Input[Artifact],",
        "    in_y_test: Input[Artifact],",
        "    in_y_train: Input[Artifact],",
        "    out_acc_forest: Output[Artifact],",
        "    kfg_metrics: Output[Metrics],",
        "    kfg_report: Output[HTML],",
    ]
    compile(component.source, "<component>", "exec")
    assert "'forest-accuracy': 'acc_forest'" in component.source
    assert component.packages == ("pandas==2.2.3", "scikit-learn==1.5.2")


def test_cloudpickle_is_added_where_functions_cross_steps(tmp_path: Path) -> None:
    result = make(
        tmp_path,
        [("code", "def f():\n    return 1"), ("code", "y = f()"), ("code", "z = 2")],
        [{"name": "a", "cells": [1]}, {"name": "b", "cells": [2]}, {"name": "c", "cells": [3]}],
    )
    assert result.pipeline and result.flow and result.notebook
    packages = {
        s.name: build_component(result.pipeline, result.flow, result.notebook, s).packages
        for s in result.pipeline.steps
    }
    assert packages == {"a": (CLOUDPICKLE,), "b": (CLOUDPICKLE,), "c": ()}


def test_image_runtime_imports_kfg_instead_of_embedding_it(tmp_path: Path) -> None:
    result = make(tmp_path, [("code", "x = 1")], [{"name": "a", "cells": [1]}], runtime="image")
    assert result.pipeline and result.flow and result.notebook
    source = build_component(
        result.pipeline, result.flow, result.notebook, result.pipeline.steps[0]
    ).source
    assert "from kfg.runtime.step import main" in source
    assert "kfg_step_runtime" not in source
