"""`kfg init` proposals: faithful to Kale's tags, sensible without them, and always valid."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from kfg.core.load import load_pipeline
from kfg.notebook.reader import parse_notebook, read_notebook
from kfg.scaffold import Proposal, propose
from kfg.scaffold.writer import to_yaml
from tests.conftest import EXAMPLES
from tests.notebooks import KALE_METADATA, KALE_TITANIC, notebook_json, write_notebook


def _check(path: Path, data: dict[str, object]) -> list[str]:
    text = to_yaml(data, schema_ref="x.json", header=["test"])
    return [
        f"{d.line}: {d.message}"
        for d in load_pipeline(path, text=text).diagnostics
        if d.severity.value == "error"
    ]


def test_kale_tags_translate_faithfully(tmp_path: Path) -> None:
    nb = read_notebook(write_notebook(tmp_path / "titanic.ipynb", KALE_TITANIC, KALE_METADATA))
    proposal = propose(nb)
    spec = proposal.data["spec"]
    assert proposal.data["metadata"]["name"] == "titanic-ml"
    assert proposal.data["metadata"]["annotations"] == {"config.kubernetes.io/local-config": "true"}
    assert spec["prelude"] == ["2-3"]
    assert spec["skip"] == [6, 11]
    assert spec["parameters"] == {"cell": 4}
    steps = {s["name"]: s for s in spec["steps"]}
    assert list(steps) == ["load-data", "feature-engineering", "random-forest", "svm"]
    assert steps["load-data"]["cells"] == [5, 7]  # the untagged cell 7 joins the block above it
    assert steps["feature-engineering"]["after"] == ["load-data"]
    assert steps["feature-engineering"]["resources"] == {"memory": {"limit": "4Gi"}}
    assert steps["feature-engineering"]["labels"] == {"app": "titanic", "team": "ml"}
    forest = steps["random-forest"]
    assert forest["resources"] == {"gpu": {"count": 1, "type": "nvidia.com/gpu"}}
    assert forest["image"] == "pytorch/pytorch:2.5.1" and forest["caching"] is False
    assert forest["secrets"] == [
        {"secret": "s3-creds", "key": "AWS_KEY", "env": "AWS_ACCESS_KEY_ID"}
    ]
    assert steps["svm"]["annotations"] == {"example.com/owner": "ds"}
    assert spec["metrics"] == [
        {"name": "acc_forest", "variable": "acc_forest"},
        {"name": "acc_svm", "variable": "acc_svm"},
    ]
    assert spec["volumes"] == [
        {
            "name": "titanic-data",
            "claim": "titanic-data",
            "mountPath": "/data",
            "snapshot": {"version": "v2"},
        }
    ]
    tuning = spec["tuning"]
    assert tuning["objective"] == {"metric": "acc_forest", "type": "maximize", "goal": 0.99}
    assert tuning["algorithm"] == {"name": "grid"}
    assert (tuning["maxTrials"], tuning["parallelTrials"], tuning["maxFailedTrials"]) == (12, 3, 3)
    assert tuning["parameters"] == {
        "n_estimators": {"type": "int", "min": 50, "max": 200, "step": 50},
        "learning_rate": {"type": "double", "min": 0.01, "max": 0.5, "step": 0.05},
        "criterion": {"type": "categorical", "values": ["gini", "entropy"]},
    }
    assert _check(tmp_path / "kale.yaml", proposal.data) == []


def test_katib_parameters_that_are_not_pipeline_parameters_are_dropped_with_a_note(
    tmp_path: Path,
) -> None:
    meta = {
        "kubeflow_notebook": {
            "katib_metadata": {
                "objective": {"objectiveMetricName": "acc_forest", "type": "maximize"},
                "algorithm": {
                    "algorithmName": "random",
                    "algorithmSettings": [{"name": "random_state", "value": "7"}],
                },
                "parameters": [
                    {
                        "name": "ghost",
                        "parameterType": "int",
                        "feasibleSpace": {"min": "1", "max": "2"},
                    },
                    {
                        "name": "n_estimators",
                        "parameterType": "discrete",
                        "feasibleSpace": {"list": ["100", "200"]},
                    },
                ],
            }
        }
    }
    nb = read_notebook(write_notebook(tmp_path / "t.ipynb", KALE_TITANIC, meta))
    proposal = propose(nb)
    assert proposal.data["spec"]["tuning"]["parameters"] == {
        "n_estimators": {"type": "discrete", "values": [100, 200]}
    }
    assert proposal.data["spec"]["tuning"]["algorithm"] == {
        "name": "random",
        "settings": {"random_state": "7"},
    }
    assert any("`ghost` is not a pipeline parameter" in n for n in proposal.notes)
    assert _check(tmp_path / "kale.yaml", proposal.data) == []


def _kale_tuning(tmp_path: Path, katib: dict[str, object], **meta: object) -> Proposal:
    cells = [
        ("code", "import math", ["imports"]),
        ("code", "n_trees = 10\nrate = 0.5\nkind = 'a'", ["pipeline-parameters"]),
        ("code", "test_accuracy_resnet = n_trees * rate / 100\n_loss = 1 - rate", ["step:train"]),
        ("code", "print(test_accuracy_resnet)\nprint(_loss)", ["pipeline-metrics"]),
    ]
    metadata = {"kubeflow_notebook": {"katib_metadata": katib, **meta}}
    return propose(read_notebook(write_notebook(tmp_path / "k.ipynb", cells, metadata)))


KATIB: dict[str, object] = {
    "objective": {"objectiveMetricName": "test-accuracy-resnet", "type": "maximize"},
    "algorithm": {"algorithmName": "random"},
    "parameters": [
        {
            "name": "n_trees",
            "parameterType": "categorical",
            "feasibleSpace": {"list": ["10", "50", "100"]},
        },
        {"name": "rate", "parameterType": "categorical", "feasibleSpace": {"list": ["0.5", "1"]}},
        {"name": "kind", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b"]}},
    ],
}


def test_kale_metric_names_and_the_katib_objective_stay_one_metric(tmp_path: Path) -> None:
    # Kale prints the variable (`test_accuracy_resnet`); its Katib objective may spell the
    # same metric with `-`. Both become one metric; the tuning is kept, not dropped.
    proposal = _kale_tuning(tmp_path, KATIB)
    spec = proposal.data["spec"]
    assert spec["metrics"] == [
        {"name": "test-accuracy-resnet", "variable": "test_accuracy_resnet"},
        {"name": "loss", "variable": "_loss"},  # `_loss` is no metric name
    ]
    assert spec["tuning"]["objective"] == {"metric": "test-accuracy-resnet", "type": "maximize"}
    assert _check(tmp_path / "kale.yaml", proposal.data) == []


def test_numeric_categorical_choices_become_a_discrete_space(tmp_path: Path) -> None:
    spaces = _kale_tuning(tmp_path, KATIB).data["spec"]["tuning"]["parameters"]
    assert spaces == {
        "n_trees": {"type": "discrete", "values": [10, 50, 100]},
        "rate": {"type": "discrete", "values": [0.5, 1.0]},
        "kind": {"type": "categorical", "values": ["a", "b"]},
    }


def test_katib_run_false_keeps_the_search_space_for_kfg_tune_only(tmp_path: Path) -> None:
    proposal = _kale_tuning(tmp_path, KATIB, katib_run=False)
    tuning = proposal.data["spec"]["tuning"]
    assert tuning["cluster"] is False and tuning["parameters"]
    assert any("katib_run is false" in n for n in proposal.notes)
    assert _check(tmp_path / "kale.yaml", proposal.data) == []
    assert "cluster" not in _kale_tuning(tmp_path, KATIB, katib_run=True).data["spec"]["tuning"]


def test_settings_left_from_another_algorithm_and_trials_beyond_the_grid_are_fixed(
    tmp_path: Path,
) -> None:
    """Kale's Katib dialog keeps bayesianoptimization's settings after a switch to grid
    (kale examples/serving/sklearn/iris.ipynb); 15 trials on a 12-point grid are more than
    Katib's grid service accepts. Both are corrected, each with a note."""
    katib = {
        **KATIB,
        "algorithm": {
            "algorithmName": "grid",
            "algorithmSettings": [
                {"name": "random_state", "value": "10"},
                {"name": "acq_func", "value": "gp_hedge"},
                {"name": "base_estimator", "value": "GP"},
            ],
        },
        "maxTrialCount": 15,
        "parallelTrialCount": 3,
    }
    proposal = _kale_tuning(tmp_path, katib)
    tuning = proposal.data["spec"]["tuning"]
    assert tuning["algorithm"] == {"name": "grid", "settings": {"random_state": "10"}}
    assert tuning["maxTrials"] == 12 and tuning["parallelTrials"] == 3
    assert sum("does not read the setting" in n for n in proposal.notes) == 2
    assert any("maxTrials is 12" in n for n in proposal.notes)
    assert _check(tmp_path / "kale.yaml", proposal.data) == []


def test_a_kale_clone_volume_is_mounted_read_only_with_a_note(tmp_path: Path) -> None:
    """Kale gave each run a Rok clone of the notebook's volume; kfg mounts the claim itself,
    so steps must not write into the live workspace unless the author says so."""
    volumes = [{"name": "workspace-nb", "mount_point": "/home/jovyan", "type": "clone"}]
    proposal = _kale_tuning(tmp_path, KATIB, volumes=volumes)
    (volume,) = proposal.data["spec"]["volumes"]
    assert volume["readOnly"] is True and volume["claim"] == "workspace-nb"
    assert any("clone of this volume" in n for n in proposal.notes)
    assert _check(tmp_path / "kale.yaml", proposal.data) == []


def test_packages_are_proposed_from_imports_at_the_installed_versions(tmp_path: Path) -> None:
    from importlib.metadata import version

    cells = [
        ("code", "import json\nimport numpy as np\nfrom sklearn.svm import SVC"),
        ("md", "## Train"),
        ("code", "import not_installed_anywhere\nx = np.zeros(2)"),
    ]
    proposal = propose(read_notebook(write_notebook(tmp_path / "i.ipynb", cells)))
    spec = proposal.data["spec"]
    assert spec["packages"] == [
        f"numpy=={version('numpy')}",
        f"scikit-learn=={version('scikit-learn')}",  # the distribution, not `sklearn`
    ]
    assert list(spec)[:2] == ["notebook", "packages"]
    assert any("`not_installed_anywhere`, not installed here" in n for n in proposal.notes)


def test_untagged_notebooks_get_one_step_per_section() -> None:
    proposal = propose(read_notebook(EXAMPLES / "wine" / "wine.ipynb"))
    spec = proposal.data["spec"]
    assert spec["prelude"] == [2, 3]
    assert spec["parameters"] == {"cell": 5}  # the literal assignments under `## Parameters`
    assert [s["name"] for s in spec["steps"]] == [
        "load-the-data",
        "preprocess",
        "feature-engineering",
        "models",
        "results",
    ]
    assert _check(EXAMPLES / "wine" / "kale.yaml", proposal.data) == []


def test_a_definition_needing_a_steps_import_stays_in_the_step(tmp_path: Path) -> None:
    """house-prices-orig.ipynb (kubeflow/examples): imports mixed with setup code make a
    step, and `def score(X, model=XGBRegressor())` needs that import while being defined;
    in the prelude (which runs first) it would fail in every step."""
    (tmp_path / ".git").mkdir()
    book = tmp_path / "n.ipynb"
    write_notebook(
        book,
        [
            ("code", "import math\nfrom fractions import Fraction\nHALF = Fraction(1, 2)"),
            ("code", "def score(x, unit=Fraction(1, 3)):\n    return x * unit"),
            ("code", "def root(x):\n    return math.sqrt(x)"),
            ("code", "value = score(3) + root(4)"),
        ],
    )
    proposal = propose(read_notebook(book))
    spec = proposal.data["spec"]
    assert spec.get("prelude") is None, spec
    assert _check(tmp_path / "kale.yaml", proposal.data) == []
    # With the import in the prelude's own cell, the definition joins it.
    write_notebook(
        book,
        [
            ("code", "from fractions import Fraction"),
            ("code", "def score(x, unit=Fraction(1, 3)):\n    return x * unit"),
            ("code", "value = score(3)"),
        ],
    )
    assert propose(read_notebook(book)).data["spec"]["prelude"] == [1, 2]


def test_papermill_parameters_tag_becomes_the_parameters_cell(tmp_path: Path) -> None:
    nb = read_notebook(
        write_notebook(
            tmp_path / "p.ipynb",
            [
                ("code", "import os"),
                ("code", "x = 1", ["parameters"]),
                ("md", "## Go"),
                ("code", "y = x"),
            ],
        )
    )
    spec = propose(nb).data["spec"]
    assert spec["parameters"] == {"cell": 2}
    assert spec["steps"] == [{"name": "go", "cells": [4]}]


cells = st.lists(
    st.tuples(
        st.sampled_from(["code", "md"]),
        st.sampled_from(
            [
                "import os",
                "x = 1",
                "y = x + 1",
                "",
                "## Section",
                "## Section",
                "# Title",
                "def f():\n    return 1",
                "print(x)",
                "%time x = 2",
                "z = (",
            ]
        ),
        st.lists(
            st.sampled_from(
                [
                    "skip",
                    "imports",
                    "functions",
                    "pipeline-parameters",
                    "pipeline-metrics",
                    "step:a",
                    "block:b_c",
                    "prev:a",
                    "limit:cpu:2",
                    "parameters",
                    "other",
                ]
            ),
            max_size=2,
        ),
    ),
    max_size=12,
)


@given(cells)
def test_every_proposal_is_valid_or_says_why(
    tmp_path_factory: object, generated: list[tuple[str, str, list[str]]]
) -> None:
    directory = Path(__import__("tempfile").mkdtemp())
    (directory / ".git").mkdir()
    path = directory / "n.ipynb"
    path.write_text(notebook_json(generated))
    nb = parse_notebook(path.read_text(), path)
    proposal = propose(nb)
    errors = _check(directory / "kale.yaml", proposal.data)
    if errors:
        # A proposal may only fail where the notebook itself is broken or empty: a syntax
        # error, no code at all, or code reading a name no cell it keeps defines.
        broken = (
            any("z = (" in c[1] for c in generated)
            or not any(c[0] == "code" and c[1] for c in generated)
            or all("is read before" in e for e in errors)
        )
        assert broken or proposal.notes, errors


def test_a_kale_double_range_over_whole_numbers_for_an_int_becomes_an_int_range(
    tmp_path: Path,
) -> None:
    # Kale's dog-breed example tunes `nodes_number = 256` as a double from 128 to 2100 in
    # steps of 128: whole numbers all, which the notebook can take as an int range.
    whole = {"name": "n_trees", "parameterType": "double"}
    half = {"name": "rate", "parameterType": "double"}
    katib = {
        **KATIB,
        "parameters": [
            {**whole, "feasibleSpace": {"min": "5", "max": "2100", "step": "5"}},
            {**half, "feasibleSpace": {"min": "0.1", "max": "0.9"}},
        ],
    }
    proposal = _kale_tuning(tmp_path, katib)
    assert proposal.data["spec"]["tuning"]["parameters"] == {
        "n_trees": {"type": "int", "min": 5, "max": 2100, "step": 5},
        "rate": {"type": "double", "min": 0.1, "max": 0.9},
    }
    assert any("`n_trees` is a double range over whole numbers" in n for n in proposal.notes)
    assert _check(tmp_path / "kale.yaml", proposal.data) == []
