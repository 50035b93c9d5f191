"""Every semantic check, each placed on the line of the node it is about."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kfg.config.model import Gpu
from kfg.core.load import find_config_files, load_pipeline, repository_root
from kfg.diagnostics import Severity
from tests.conftest import EXAMPLES
from tests.notebooks import write_notebook


@pytest.mark.parametrize("name", ["wine", "digits"])
def test_examples_are_valid_and_build_a_pipeline(name: str) -> None:
    result = load_pipeline(EXAMPLES / name / "kale.yaml")
    assert result.diagnostics == []
    assert result.pipeline is not None
    assert result.pipeline.notebook == (EXAMPLES / name / f"{name}.ipynb").resolve()


def test_wine_model() -> None:
    p = load_pipeline(EXAMPLES / "wine" / "kale.yaml").pipeline
    assert p is not None
    assert [s.name for s in p.steps][:3] == ["load", "preprocess", "features"]
    assert p.step("features").cells == (13, 14)
    assert p.prelude == (2, 3) and p.skip == (8, 9) and p.parameter_cells == (5,)
    assert {x.name: x.default for x in p.parameters} == {
        "test_size": 0.25,
        "random_state": 42,
        "n_estimators": 200,
        "max_depth": 6,
        "C": 1.0,
    }
    forest = p.step("random-forest")
    assert forest.resources.cpu is not None and forest.resources.cpu.request == "2"
    assert forest.packages == ("pandas==2.2.3", "scikit-learn==1.5.2")
    assert {m.name: m.step for m in p.metrics}["best-accuracy"] == "results"
    assert {m.name: m.step for m in p.metrics}["forest-accuracy"] == "random-forest"


def test_digits_tuning_model() -> None:
    p = load_pipeline(EXAMPLES / "digits" / "kale.yaml").pipeline
    assert p is not None and p.tuning is not None
    assert p.tuning.metric == "val-accuracy" and p.tuning.algorithm == "tpe"
    assert [s.name for s in p.tuning.parameters] == ["learning_rate", "hidden_units", "alpha"]
    assert p.step("train").timeout_seconds == 1800


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def _found(path: Path) -> list[tuple[int, str, str, str]]:
    return [(d.line, d.severity.value, d.code, d.message) for d in load_pipeline(path).diagnostics]


def _line_of(path: Path, text: str) -> int:
    """The last line containing `text`: an edit that duplicates a line is reported at the copy."""
    return [i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line][-1]


CASES = [
    (
        "cells: [7]",
        "cells: [23]",
        "cells: [23]",
        "bad-cell-ref",
        "cell 23 is out of range: wine.ipynb has 22 cells",
    ),
    ("cells: [7]", "cells: ['7-30']", "cells: ['7-30']", "bad-cell-ref", "cell 30 is out of range"),
    (
        "cells: [7]",
        "cells: ['9-7']",
        "cells: ['9-7']",
        "bad-cell-ref",
        "runs backwards; write `7-9`",
    ),
    ("cells: [7]", "cells: [id:lod]", "cells: [id:lod]", "bad-cell-ref", "did you mean `load`?"),
    (
        "cells: [7]",
        "cells: [tag:x]",
        "cells: [tag:x]",
        "bad-cell-ref",
        "no cell of wine.ipynb carries tag `x`",
    ),
    (
        "cells: [11]",
        "cells: [7]",
        "cells: [7]\n",
        "cell-claimed-twice",
        "cell 7 is listed already in step `load`",
    ),
    ("cells: [11]", "cells: [2]", "cells: [2]\n", "cell-claimed-twice", "already in the prelude"),
    ("cells: [7]", "cells: [7, 7]", "cells: [7, 7]", "cell-claimed-twice", "listed again"),
    ("cells: [7]", "cells: [6]", "cells: [6]", "empty-step", "step `load` has no code to run"),
    (
        "- name: svm",
        "- name: load",
        "- name: load\n",
        "duplicate-step",
        "duplicate step name `load` (first used on line",
    ),
    (
        "cells: [18]",
        "cells: [18]\n      after: [forrest]",
        "after: [forrest]",
        "unknown-step",
        "unknown step `forrest`",
    ),
    (
        "cells: [18]",
        "cells: [18]\n      after: [random-forrest]",
        "after: [random-forrest]",
        "unknown-step",
        "did you mean `random-forest`?",
    ),
    (
        "cells: [18]",
        "cells: [18]\n      after: [svm]",
        "after: [svm]",
        "bad-after",
        "cannot run after itself",
    ),
    (
        "cells: [11]",
        "cells: [11]\n      after: [features]",
        "after: [features]",
        "cycle",
        "preprocess -> features -> preprocess",
    ),
    (
        "cells: [7]",
        "cells: [12]",
        "cells: [7]",
        "step-order",
        "step `preprocess` starts at cell 7, before step `load`",
    ),
    (
        'skip: ["8-9"]',
        "skip: [9]",
        "steps:",
        "unassigned-cell",
        "code cell 8 (`raw.describe().T`) is in no step",
    ),
    (
        "variable: acc_forest",
        "variable: acc_forst",
        "acc_forst",
        "undefined-metric",
        "did you mean `acc_forest`?",
    ),
    (
        "{name: svm-accuracy, variable: acc_svm}",
        "{name: svm-accuracy, variable: acc_svm, step: load}",
        "svm-accuracy",
        "undefined-metric",
        "step `load` does not define `acc_svm`",
    ),
    (
        "{name: svm-accuracy, variable: acc_svm}",
        "{name: svm-accuracy, variable: acc_svm, step: smv}",
        "svm-accuracy",
        "unknown-step",
        "did you mean `svm`?",
    ),
    (
        "{name: svm-accuracy,",
        "{name: logreg-accuracy,",
        "variable: acc_svm",
        "duplicate-metric",
        "duplicate metric `logreg-accuracy`",
    ),
    (
        "memory: 2Gi",
        "memory: {request: 4Gi, limit: 2Gi}",
        "memory:",
        "request-above-limit",
        "memory request 4Gi is more than its limit 2Gi",
    ),
    ("memory: 2Gi", "memory: 2", "memory:", "tiny-memory", "means 2 bytes"),
    (
        "packages: [pandas==2.2.3, scikit-learn==1.5.2]",
        "packages: [pandas, 'scikit-learn==1.5.2']",
        "packages:",
        "unpinned-package",
        "`pandas` is not pinned",
    ),
    (
        "packages: [pandas==2.2.3, scikit-learn==1.5.2]",
        "packages: ['pandas=>2', 'scikit-learn==1.5.2']",
        "packages:",
        "bad-package",
        "is not a pip requirement",
    ),
    (
        "notebook: wine.ipynb",
        "notebook: wnie.ipynb",
        "notebook:",
        "notebook-missing",
        "does not exist; did you mean `wine.ipynb`?",
    ),
    (
        "notebook: wine.ipynb",
        "notebook: ../outside.ipynb",
        "notebook:",
        "notebook-outside-repo",
        "resolves outside the repository",
    ),
    (
        "notebook: wine.ipynb",
        "notebook: /abs/wine.ipynb",
        "notebook:",
        "notebook-path",
        "must be relative",
    ),
    (
        "parameters: {cell: 5}",
        "parameters: {cell: 4}",
        "parameters:",
        "not-code",
        "cell 4 is a markdown cell",
    ),
    (
        "parameters: {cell: 5}",
        "parameters: {cell: 7}",
        "parameters:",
        "bad-parameter",
        "`raw = load_wine(as_frame=True).frame`",
    ),
    (
        "parameters: {cell: 5}",
        "parameters: {values: {class: 1}}",
        "values: {class",
        "bad-parameter",
        "is a Python keyword",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "where", "code", "fragment"), CASES, ids=[c[3] + ":" + c[1][:30] for c in CASES]
)
def test_semantic_checks(
    wine: Path, old: str, new: str, where: str, code: str, fragment: str
) -> None:
    _edit(wine, old, new)
    if code == "cycle":
        _edit(wine, '["13-14"]', '["13-14"]\n      after: [preprocess]')
    if code == "step-order":
        _edit(wine, "cells: [11]", "cells: [7]")
        _edit(wine, "cells: [12]", "cells: [11]")
    found = _found(wine)
    line = _line_of(wine, where.strip("\n")) if "\n" not in where.strip("\n") else None
    hits = [f for f in found if f[2] == code and fragment in f[3]]
    assert hits, found
    if line is not None:
        assert any(h[0] == line for h in hits), (line, found)


def test_a_syntax_error_in_a_step_names_step_cell_and_line(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    write_notebook(tmp_path / "n.ipynb", [("code", "x = 1\ny = (\n")])
    cfg = tmp_path / "kale.yaml"
    cfg.write_text(
        "apiVersion: kfg.dev/v1alpha1\nkind: NotebookPipeline\nmetadata: {name: p}\nspec:\n  notebook: n.ipynb\n  steps: [{name: a, cells: [1]}]\n"
    )
    (d,) = load_pipeline(cfg).diagnostics
    assert (d.code, d.line) == ("syntax-error", 6)
    assert d.message.startswith("step `a`: cell 1, line 2:")


def test_ipython_syntax_does_not_break_checks(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    cells = [("code", "%matplotlib inline\n!pip install x\nfiles = !ls\nacc = 1\nacc?")]
    write_notebook(tmp_path / "n.ipynb", [*cells, ("code", "%%bash\necho hi")])
    cfg = tmp_path / "kale.yaml"
    cfg.write_text(
        "apiVersion: kfg.dev/v1alpha1\nkind: NotebookPipeline\nmetadata: {name: p}\nspec:\n  notebook: n.ipynb\n  steps: [{name: a, cells: [1, 2]}]\n  metrics: [{name: acc}]\n"
    )
    assert load_pipeline(cfg).diagnostics == []


def test_not_a_notebook_is_reported_in_the_notebook_file(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "n.ipynb").write_text('{"cells": [\n  oops\n]}')
    cfg = tmp_path / "kale.yaml"
    cfg.write_text(
        "apiVersion: kfg.dev/v1alpha1\nkind: NotebookPipeline\nmetadata: {name: p}\nspec:\n  notebook: n.ipynb\n  steps: [{name: a, cells: [1]}]\n"
    )
    found = load_pipeline(cfg).diagnostics
    assert {(d.file.endswith("n.ipynb"), d.line, d.code) for d in found} == {
        (True, 2, "not-a-notebook"),
        (False, 5, "not-a-notebook"),
    }


@pytest.mark.parametrize(
    ("metadata", "refused"),
    [
        ({"kernelspec": {"name": "ir", "language": "R", "display_name": "R"}}, "a r notebook"),
        ({"language_info": {"name": "julia"}}, "a julia notebook"),
        ({"kernelspec": {"name": "python3", "language": "python"}}, None),
        ({}, None),
    ],
)
def test_only_python_notebooks_are_pipelines(
    tmp_path: Path, metadata: dict[str, object], refused: str | None
) -> None:
    """An R notebook's cells parsed as Python gave `illegal target for annotation`."""
    (tmp_path / ".git").mkdir()
    cell: dict[str, object] = {
        "cell_type": "code",
        "metadata": {},
        "outputs": [],
        "execution_count": None,
    }
    book = {"cells": [{**cell, "source": "x <- 1"}], "metadata": metadata, "nbformat": 4}
    (tmp_path / "n.ipynb").write_text(json.dumps({**book, "nbformat_minor": 4}))
    cfg = tmp_path / "kale.yaml"
    cfg.write_text(
        "apiVersion: kfg.dev/v1alpha1\nkind: NotebookPipeline\nmetadata: {name: p}\nspec:\n  notebook: n.ipynb\n  steps: [{name: a, cells: [1]}]\n"
    )
    found = [(d.code, d.message) for d in load_pipeline(cfg).diagnostics]
    if refused:
        assert [c for c, m in found if refused in m] == ["not-python"], found
    else:
        assert "not-python" not in {c for c, _ in found}


def test_a_notebook_path_that_is_a_link_to_nowhere_says_so(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "n.ipynb").symlink_to(tmp_path / "n.ipynb")  # a loop
    cfg = tmp_path / "kale.yaml"
    cfg.write_text(
        "apiVersion: kfg.dev/v1alpha1\nkind: NotebookPipeline\nmetadata: {name: p}\nspec:\n  notebook: n.ipynb\n  steps: [{name: a, cells: [1]}]\n"
    )
    (found,) = [d.message for d in load_pipeline(cfg).diagnostics if d.code == "notebook-missing"]
    assert "is not a regular file" in found and "did you mean" not in found


TUNING = """  tuning:
    objective: {metric: forest-accuracy, type: maximize}
    algorithm: {name: ALGO}
    maxTrials: 6
    parallelTrials: 2
    maxFailedTrials: 1
    parameters:
      SPACE
"""

TUNING_CASES = [
    ("random", "n_estimators: {type: int, min: 50, max: 500, step: 50}", None, None),
    (
        "random",
        "n_estimatros: {type: int, min: 50, max: 500}",
        "unknown-parameter",
        "did you mean `n_estimators`?",
    ),
    (
        "random",
        "n_estimators: {type: double, min: 50, max: 500}",
        "tuning-type",
        "`double` search space cannot tune (its values such as 50.5 are not whole numbers)",
    ),
    (
        "grid",
        "n_estimators: {type: double, min: 50, max: 500, step: 50}",
        "tuning-type",
        "(Katib draws it as a float, which an int parameter does not take)",
    ),
    (
        "random",
        "n_estimators: {type: discrete, values: [100, 200.5, 200]}",
        "tuning-type",
        "200.5 is not a whole number",
    ),
    ("random", "n_estimators: {type: discrete, values: [100.0, 200.0]}", None, None),
    ("random", "C: {type: int, min: 1, max: 5}", "tuning-type", "defaults to 1.0 (float)"),
    (
        "random",
        "n_estimators: {type: int, min: 500, max: 50}",
        "tuning-bounds",
        "must be greater than `min`",
    ),
    (
        "random",
        "n_estimators: {type: int, min: 10, max: 100}",
        "tuning-bounds",
        "(200) lies outside [10, 100]",
    ),
    (
        "random",
        "n_estimators: {type: int, min: 50, max: 500, step: 1000}",
        "tuning-bounds",
        "larger than the range",
    ),
    (
        "random",
        "C: {type: double, min: 0, max: 5, distribution: logUniform}",
        "tuning-bounds",
        "needs `min` greater than 0",
    ),
    (
        "random",
        "n_estimators: {type: discrete, values: [100, 300]}",
        "tuning-bounds",
        "(200) is not one of the values",
    ),
    (
        "random",
        "n_estimators: {type: categorical, values: [a, b]}",
        "tuning-type",
        "`categorical` search space cannot tune",
    ),
    ("grid", "C: {type: double, min: 0.5, max: 5}", "tuning-grid", "needs a `step`"),
    (
        "cmaes",
        "n_estimators: {type: discrete, values: [100, 200]}",
        "tuning-algorithm",
        "cmaes tunes only",
    ),
    (
        "hyperband",
        "n_estimators: {type: int, min: 50, max: 500}",
        "tuning-algorithm",
        "resource_name",
    ),
]


@pytest.mark.parametrize(("algorithm", "space", "code", "fragment"), TUNING_CASES)
def test_tuning_checks(
    wine: Path, algorithm: str, space: str, code: str | None, fragment: str | None
) -> None:
    wine.write_text(wine.read_text() + TUNING.replace("ALGO", algorithm).replace("SPACE", space))
    found = _found(wine)
    if code is None:
        assert found == []
    else:
        assert fragment is not None
        assert any(f[2] == code and fragment in f[3] for f in found), found


def test_tuning_counts_and_objective(wine: Path) -> None:
    text = TUNING.replace("ALGO", "random").replace("SPACE", "C: {type: double, min: 0.1, max: 5}")
    text = text.replace("parallelTrials: 2", "parallelTrials: 9").replace(
        "forest-accuracy", "forest-acc"
    )
    wine.write_text(wine.read_text() + text)
    codes = {f[2]: f[3] for f in _found(wine)}
    assert "did you mean `forest-accuracy`?" in codes["unknown-metric"]
    assert "`parallelTrials` (9) is more than `maxTrials` (6)" in codes["tuning-counts"]


def test_warnings_alone_keep_the_file_valid(wine: Path) -> None:
    _edit(wine, 'skip: ["8-9"]', "skip: [9]")
    result = load_pipeline(wine)
    assert [d.severity for d in result.diagnostics] == [Severity.WARNING]
    assert result.ok


def test_find_config_files_skips_virtualenvs(tmp_path: Path) -> None:
    for rel in [
        "a/kale.yaml",
        "b/train.kale.yaml",
        ".venv/x/kale.yaml",
        "node_modules/kale.yaml",
        "c/other.yaml",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    found = sorted(p.relative_to(tmp_path).as_posix() for p in find_config_files([tmp_path]))
    assert found == ["a/kale.yaml", "b/train.kale.yaml"]


def test_repository_root_is_the_git_top_level(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert repository_root(tmp_path / "a" / "b") == tmp_path.resolve()


@pytest.mark.parametrize(
    "text", ["pandas==2.2.3", "scikit-learn==1.5.2", "torch[cpu]==2.5.1", "a.b_c==1.0rc1"]
)
def test_plain_pins_pass_without_packaging(wine: Path, text: str) -> None:
    _edit(wine, "packages: [pandas==2.2.3, scikit-learn==1.5.2]", f"packages: ['{text}']")
    # The notebook imports what the edited list no longer installs; that is another check.
    assert [f for f in _found(wine) if f[2] != "missing-package"] == []


@pytest.mark.parametrize(
    "text",
    [
        "pandas==2.*",
        "pandas>=2",
        "pandas",
        "pandas @ https://x/p.whl",
        "pandas==2; python_version<'3'",
    ],
)
def test_other_requirements_go_through_packaging(wine: Path, text: str) -> None:
    _edit(wine, "packages: [pandas==2.2.3, scikit-learn==1.5.2]", f'packages: ["{text}"]')
    codes = [f[2] for f in _found(wine) if f[2] != "missing-package"]
    assert codes in ([], ["unpinned-package"])
    assert (codes == []) == (" @ " in text or "; " in text)


def test_read_only_volumes_are_flagged_as_not_enforced(tmp_path: Path) -> None:
    from tests.pipelines import make, messages

    result = make(
        tmp_path,
        [("code", "x = 1")],
        [{"name": "a", "cells": [1], "volumes": ["data"]}],
        volumes=[{"name": "data", "claim": "c", "mountPath": "/data", "readOnly": True}],
    )
    assert result.ok
    assert any("`readOnly` is not enforced" in m for m in messages(result))


def test_unknown_katib_settings_are_errors_on_their_line(wine: Path) -> None:
    # kubeflow/katib v0.19.0 pkg/suggestion/v1beta1/hyperopt/service.py:118-119: tpe runs in
    # the hyperopt service, which fails the Experiment on a setting it does not know.
    wine.write_text(
        wine.read_text()
        + """  tuning:
    objective: {metric: forest-accuracy, type: maximize}
    algorithm: {name: tpe, settings: {n_EI_candidate: 3}}
    earlyStopping: {name: medianstop, settings: {start_step: 2}}
    parameters:
      n_estimators: {type: int, min: 50, max: 500}
"""
    )
    result = load_pipeline(wine)
    assert not result.ok
    [error] = [d for d in result.diagnostics if d.code == "tuning-setting"]
    assert "rejects the setting `n_EI_candidate`; did you mean `n_EI_candidates`?" in error.message
    assert error.line == _line_of(wine, "n_EI_candidate")


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        ("  name: wine-quality", '  name: "wine-quality\\n"', 5),
        ("    - name: load", '    - name: "load\\n"', 17),
    ],
    ids=["pipeline-name", "step-name"],
)
def test_a_trailing_newline_is_refused_on_its_line(
    wine: Path, old: str, new: str, line: int
) -> None:
    # JSON Schema patterns are ECMA-262: `$` does not match before a final newline.
    _edit(wine, old, new)
    errors = [d for d in load_pipeline(wine).diagnostics if d.severity is Severity.ERROR]
    assert errors and errors[0].line == line
    assert all("\n" not in d.message for d in errors)


@pytest.mark.parametrize(
    ("resources", "error"),
    [
        ('{cpu: "2", memory: 9E}', None),
        ('{cpu: "2", memory: 1e100}', "memory 1e+100 is more than Kubernetes can hold"),
        ("{cpu: 1e100, memory: 2Gi}", "cpu 1e+100 is more than Kubernetes can hold"),
        ("{cpu: .nan, memory: 2Gi}", "`nan` is not a number JSON can hold"),
        ('{cpu: "2", memory: .inf}', "`inf` is not a number JSON can hold"),
    ],
)
def test_quantities_kubernetes_cannot_hold_are_refused(
    wine: Path, resources: str, error: str | None
) -> None:
    _edit(wine, '{cpu: "2", memory: 2Gi}', resources)
    found = _found(wine)
    if error is None:
        assert found == []
    else:
        assert [(line, code) for line, _, code, _ in found] == [(27, "invalid-value")]
        assert error in found[0][3]


def test_after_against_the_data_flow_is_a_cycle_named_on_its_line(tmp_path: Path) -> None:
    from tests.pipelines import make

    result = make(
        tmp_path,
        [("code", "x = 1"), ("code", "y = x + 1"), ("code", "z = y * 2")],
        [
            {"name": "a", "cells": [1], "after": ["c"]},
            {"name": "b", "cells": [2]},
            {"name": "c", "cells": [3]},
        ],
    )
    assert not result.ok and result.pipeline is not None  # found by the data-flow analysis
    [cycle] = [d for d in result.diagnostics if d.code == "cycle"]
    assert cycle.message == (
        "steps wait for each other in a cycle: a -> c -> b -> a (`a` runs after `c` (after:);"
        " `c` reads `y` from `b`; `b` reads `x` from `a`)"
    )
    text = (tmp_path / "kale.yaml").read_text().splitlines()
    after = next(i for i, line in enumerate(text, start=1) if "after" in line)
    assert cycle.line in (after, after + 1)  # the `after` entry of step `a`


def _imports_pipeline(
    tmp_path: Path, *, step: dict[str, object] | None = None, **spec: object
) -> list[str]:
    from tests.pipelines import make

    result = make(
        tmp_path,
        [
            ("code", "import json\nimport numpy as np"),
            ("code", "x = np.zeros(3)"),
            ("code", "from sklearn.svm import SVC\nimport yaml\ny = json.dumps(list(x))"),
        ],
        [{"name": "load", "cells": [2]}, {"name": "train", "cells": [3], **(step or {})}],
        prelude=[1],
        **spec,
    )
    return [d.message for d in result.diagnostics if d.code == "missing-package"]


def test_imports_the_step_image_lacks_are_warned_with_step_import_and_line(
    tmp_path: Path,
) -> None:
    found = _imports_pipeline(tmp_path)
    assert any(
        m.startswith(
            "step `train` imports `sklearn` (its cell 3, line 1), which neither its"
            " packages nor its image `python:3.11-slim` provide"
        )
        and "add `scikit-learn==" in m
        for m in found
    ), found
    assert any("step `load` imports `numpy` (the prelude cell 1, line 2)" in m for m in found)
    assert not any("`json`" in m for m in found)  # the standard library is always there
    declared = _imports_pipeline(
        tmp_path,
        packages=["numpy==2.1.0"],
        imageProvides=["yaml"],
        step={"packages": ["numpy==2.1.0", "scikit-learn==1.5.2"]},
    )
    assert declared == []


def test_gpu_steps_that_cannot_reach_or_use_a_gpu_are_warned(tmp_path: Path) -> None:
    from tests.pipelines import make

    def gpu_findings(**step: object) -> dict[str, str]:
        result = make(
            tmp_path,
            [("code", "x = 1")],
            [{"name": "train", "cells": [1], "resources": {"gpu": 1}, **step}],
        )
        assert result.ok, [d.message for d in result.diagnostics]  # `gpu: 1` is accepted
        assert result.pipeline is not None
        assert result.pipeline.steps[0].resources.gpu == Gpu(1, "nvidia.com/gpu")
        return {d.code: d.message for d in result.diagnostics if d.code.startswith("gpu-")}

    bare = gpu_findings()
    assert "neither nodeSelector nor tolerations" in bare["gpu-scheduling"]
    assert "image `python:3.11-slim` looks CPU-only" in bare["gpu-image"]
    ready = gpu_findings(
        image="pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    )
    assert ready == {}


@pytest.mark.parametrize(
    ("written", "error"), [("2.0", None), ("{count: 2.0}", None), ("1e30", "1024")]
)
def test_gpu_counts_are_whole_and_schedulable(wine: Path, written: str, error: str | None) -> None:
    # JSON Schema's integer admits 2.0; the model keeps an int either way.
    _edit(wine, '{cpu: "2", memory: 2Gi}', f'{{cpu: "2", memory: 2Gi, gpu: {written}}}')
    result = load_pipeline(wine)
    if error is None:
        assert result.pipeline is not None, result.diagnostics
        gpu = result.pipeline.step("random-forest").resources.gpu
        assert gpu is not None and gpu.count == 2 and isinstance(gpu.count, int)
    else:
        assert not result.ok and any(error in d.message for d in result.diagnostics)
