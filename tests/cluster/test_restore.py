"""`kfg restore`: a notebook that reruns one step with exactly the inputs it received."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient
from nbformat import NotebookNode

from kfg.cluster.restore import (
    RestoreError,
    build,
    fetch_value,
    from_directory,
    from_run,
    notebook_server,
)
from kfg.core.load import load_pipeline
from kfg.runtime.step import run_step, save_value
from tests import crds
from tests.conftest import EXAMPLES, REPO
from tests.launcher.fake_kfp import FakeKfp, Scenario
from tests.notebooks import nbformat_code_cell, nbformat_read


def kfg(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kfg", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


@pytest.fixture(scope="module")
def wine_values(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """The wine pipeline's steps up to the models, run with the shared runtime."""
    result = load_pipeline(EXAMPLES / "wine" / "kale.yaml", root=REPO)
    pipeline, flow, notebook = result.pipeline, result.flow, result.notebook
    assert pipeline and flow and notebook
    values = tmp_path_factory.mktemp("values")
    defaults = {p.name: p.default for p in pipeline.parameters}
    metrics: dict[str, float] = {}
    for step in pipeline.steps[:5]:  # load .. random-forest
        here = flow.step(step.name)
        metrics.update(
            run_step(
                pipeline=pipeline.name,
                step=step.name,
                prelude=[(c, notebook.cell(c).source) for c in pipeline.prelude],
                cells=[(c, notebook.cell(c).source) for c in step.cells],
                parameters={p: defaults[p] for p in here.parameters},
                inputs={v: str(values / v) for v in here.inputs},
                outputs={v: str(values / v) for v in here.outputs},
                metrics={m.name: m.variable for m in pipeline.metrics if m.step == step.name},
            )
        )
    return values, metrics


def _execute(path: Path) -> NotebookNode:
    book = nbformat_read(path)
    nbformat.validate(book)
    book.cells.append(nbformat_code_cell("print(repr(acc_forest))"))
    NotebookClient(book, timeout=300, kernel_name="python3").execute(cwd=str(path.parent))
    return book


def test_restored_notebook_reproduces_the_step(
    wine_values: tuple[Path, dict[str, float]], tmp_path: Path
) -> None:
    values, metrics = wine_values
    result = kfg(
        "restore",
        str(EXAMPLES / "wine" / "kale.yaml"),
        "--step",
        "random-forest",
        "--inputs",
        str(values),
        "-o",
        str(tmp_path / "forest.ipynb"),
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    book = _execute(tmp_path / "forest.ipynb")
    first = book.cells[1].source
    assert first.startswith("from kfg.runtime.step import restore_value")
    assert "X_train = restore_value(" in first
    assert "n_estimators = 200" in first and "max_depth = 6" in first
    assert "test_size" not in first  # the step does not read it
    printed = book.cells[-1].outputs[0]["text"].strip()
    assert float(printed) == metrics["forest-accuracy"]


def test_missing_inputs_are_named(tmp_path: Path) -> None:
    result = load_pipeline(EXAMPLES / "wine" / "kale.yaml", root=REPO)
    assert result.pipeline and result.flow
    with pytest.raises(RestoreError, match="no saved value for `X_test`, `X_train`"):
        from_directory(result.pipeline, result.flow, "svm", tmp_path)


def test_inputs_from_a_kfp_run(tmp_path: Path) -> None:
    result = load_pipeline(EXAMPLES / "digits" / "kale.yaml", root=REPO)
    pipeline, flow, notebook = result.pipeline, result.flow, result.notebook
    assert pipeline and flow and notebook
    run = {
        "run_id": "r-1",
        "runtime_config": {"parameters": {"hidden_units": 96}},
        "run_details": {
            "task_details": [
                {
                    "display_name": "load",
                    "outputs": {
                        "out_X_train": {"artifact_ids": ["11"]},
                        "out_y_train": {"artifact_ids": ["12"]},
                    },
                }
            ]
        },
    }
    inputs = from_run(pipeline, flow, "train", run, "http://kfp")
    assert inputs.expressions == {
        "X_train": "fetch_value('http://kfp', '11', globals())",
        "y_train": "fetch_value('http://kfp', '12', globals())",
    }
    assert inputs.parameters["hidden_units"] == 96
    assert inputs.parameters["learning_rate"] == 0.001  # not in the run: the default
    book = build(pipeline, notebook, "train", inputs)
    assert book["cells"][1]["source"].startswith("from kfg.cluster.restore import fetch_value")
    with pytest.raises(RestoreError, match="no output `X_val` of step `load`"):
        from_run(pipeline, flow, "evaluate", run, "http://kfp")


def test_fetch_value_downloads_through_the_signed_url(tmp_path: Path) -> None:
    save_value("numbers", [1, 2, 3], str(tmp_path / "value"))
    scenario = Scenario(artifact_api=True, downloads={"42": (tmp_path / "value").read_bytes()})
    with FakeKfp(scenario) as fake:
        assert fetch_value(fake.endpoint, "42", {}) == [1, 2, 3]
    request = next(r for r in fake.requests if r.path == "/apis/v2beta1/artifacts/42")
    assert request.query == {"view": ["DOWNLOAD"]}


def test_fetch_value_on_kfp_2_17_says_it_has_no_artifact_endpoint() -> None:
    with (
        FakeKfp(Scenario()) as fake,
        pytest.raises(RestoreError, match=r"KFP 2\.17\.0 serves none"),
    ):
        fetch_value(fake.endpoint, "42", {})


def test_notebook_server_restores_a_snapshot(tmp_path: Path) -> None:
    claim, server = notebook_server("wine-train", "team-a", "work-train-r1", "/work", "20Gi")
    crds.validate(claim)
    # kubeflow/manifests applications/jupyter/notebook-controller/upstream/crd (tests/crds)
    crds.validate(server)
    assert claim["spec"]["dataSource"] == {
        "apiGroup": "snapshot.storage.k8s.io",
        "kind": "VolumeSnapshot",
        "name": "work-train-r1",
    }
    # Unset, not "standard": the cluster's default StorageClass provisions the claim.
    assert "storageClassName" not in claim["spec"]
    pod = server["spec"]["template"]["spec"]
    assert pod["volumes"][0] == {
        "name": "data",
        "persistentVolumeClaim": {"claimName": "wine-train-data"},
    }
    assert pod["containers"][0]["volumeMounts"][0] == {"name": "data", "mountPath": "/work"}


def test_notebook_server_reaches_kfp_with_its_own_token() -> None:
    (_, server) = notebook_server("wine-train", "team-a", "snap", "/work", "20Gi")
    pod = server["spec"]["template"]["spec"]
    container = pod["containers"][0]
    # kubeflow/pipelines 2.17.0 sdk/python/kfp/client/__init__.py: kfp.Client reads the token
    # file named by KF_PIPELINES_SA_TOKEN_PATH; the API server accepts the audience
    # pipelines.kubeflow.org (backend/src/apiserver/common/const.go DefaultTokenReviewAudience).
    (token,) = [v for v in pod["volumes"] if "projected" in v]
    (source,) = token["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] == "pipelines.kubeflow.org"
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == token["name"]]
    path = f"{mount['mountPath']}/{source['serviceAccountToken']['path']}"
    assert {"name": "KF_PIPELINES_SA_TOKEN_PATH", "value": path} in container["env"]
    # Profiles grant KFP access to default-editor, the account Kubeflow notebooks run as.
    assert pod["serviceAccountName"] == "default-editor"
    # The access-ml-pipeline PodDefault would mount a second volume at the same path.
    assert "access-ml-pipeline" not in server["metadata"]["labels"]


def test_notebook_server_storage_class_comes_from_the_volume_or_the_flag(tmp_path: Path) -> None:
    from tests.pipelines import make

    volume = {
        "name": "data",
        "claim": "data",
        "mountPath": "/data",
        "snapshot": {"version": "v1", "size": "5Gi", "storageClass": "fast-ssd"},
    }
    loaded = make(
        tmp_path,
        [("code", "x = 1")],
        [{"name": "one", "cells": [1], "packages": ["pandas==2.2.3"]}],
        volumes=[volume],
    )
    assert loaded.ok, loaded.diagnostics
    (tmp_path / "values").mkdir()
    args = ["restore", "kale.yaml", "--step", "one", "--inputs", "values", "--force"]
    args += ["--notebook-server", "--snapshot", "data-v1", "--volume", "data"]
    result = kfg(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "has no kfg" in result.stderr  # the default image is named as lacking it
    manifest = tmp_path / "one.restored.notebook-server.yaml"
    claim, _ = yaml.safe_load_all(manifest.read_text())
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    book = nbformat_read(tmp_path / "one.restored.ipynb")
    assert book.cells[1].source.endswith("%pip install --quiet 'pandas==2.2.3'")
    result = kfg(*args, "--storage-class", "standard-rwo", "--image", "me/nb:1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "has no kfg" not in result.stderr
    claim, server = yaml.safe_load_all(manifest.read_text())
    assert claim["spec"]["storageClassName"] == "standard-rwo"
    assert server["spec"]["template"]["spec"]["containers"][0]["image"] == "me/nb:1"
    local = kfg(
        "restore", "kale.yaml", "--step", "one", "--inputs", "values", "--force", cwd=tmp_path
    )
    assert local.returncode == 0, local.stderr
    book = nbformat_read(tmp_path / "one.restored.ipynb")
    assert not any("%pip" in c.source for c in book.cells)  # locally, the user's environment


def test_cli_usage_and_notebook_server(
    wine_values: tuple[Path, dict[str, float]], tmp_path: Path
) -> None:
    values, _ = wine_values
    kale = str(EXAMPLES / "wine" / "kale.yaml")
    assert kfg("restore", kale, "--step", "svm", cwd=tmp_path).returncode == 2
    assert (
        kfg("restore", kale, "--step", "nope", "--inputs", str(values), cwd=tmp_path).returncode
        == 2
    )
    result = kfg(
        "restore",
        kale,
        "--step",
        "svm",
        "--inputs",
        str(values),
        "--notebook-server",
        "--snapshot",
        "wine-data-v1",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    objects = list(yaml.safe_load_all((tmp_path / "svm.restored.notebook-server.yaml").read_text()))
    assert [o["kind"] for o in objects if o] == ["PersistentVolumeClaim", "Notebook"]
    again = kfg("restore", kale, "--step", "svm", "--inputs", str(values), cwd=tmp_path)
    assert again.returncode == 1 and "exists; use --force" in again.stderr


def test_restore_from_the_local_cache(tmp_path: Path) -> None:
    from tests.pipelines import make

    result = make(
        tmp_path,
        [
            ("code", "a = [1, 2]"),
            ("code", "def f(v):\n    return v * 10"),
            ("code", "b = f(sum(a))"),
        ],
        [
            {"name": "one", "cells": [1]},
            {"name": "two", "cells": [2]},
            {"name": "three", "cells": [3]},
        ],
    )
    assert result.ok
    missing = kfg("restore", "kale.yaml", "--step", "three", "--local", cwd=tmp_path)
    assert missing.returncode == 1 and "run `kfg run` first" in missing.stderr
    assert kfg("run", "kale.yaml", cwd=tmp_path).returncode == 0
    restored = kfg("restore", "kale.yaml", "--step", "three", "--local", cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    book = nbformat_read(tmp_path / "three.restored.ipynb")
    book.cells.append(nbformat_code_cell("print(b)"))
    NotebookClient(book, timeout=120, kernel_name="python3").execute(cwd=str(tmp_path))
    assert book.cells[-1].outputs[0]["text"].strip() == "30"


def _restore_run(endpoint: str) -> subprocess.CompletedProcess[str]:
    return kfg(
        "restore",
        str(EXAMPLES / "wine" / "kale.yaml"),
        "--step",
        "preprocess",
        "--run",
        "a1b2c3d4-run",
        "--endpoint",
        endpoint,
        "-o",
        "/dev/null",
        "--force",
        cwd=REPO,
    )


def _started(fake: FakeKfp) -> None:
    """Put run a1b2c3d4-run on the fake server, as a launcher would have."""
    from kfg.launcher.runs import Launcher, RunRequest

    Launcher(RunRequest(fake.endpoint, "digits-mlp", "digits-mlp-f4dfc150", "r")).start()


def test_cli_run_on_kfp_2_17_says_what_is_missing_and_what_to_do() -> None:
    with FakeKfp(Scenario()) as fake:
        _started(fake)
        result = _restore_run(fake.endpoint)
    calls = [(r.method, r.path, r.status) for r in fake.requests]
    assert ("GET", "/apis/v2beta1/runs/a1b2c3d4-run", 200) in calls
    assert ("GET", "/apis/v2beta1/artifact_tasks", 404) in calls
    assert result.returncode == 1
    [message] = result.stderr.strip().splitlines()
    assert "serves no artifact endpoints" in message
    assert "KFP 2.17.0 keeps a run's artifacts in ML Metadata" in message
    assert "(`raw`) from run a1b2c3d4-run in the KFP UI" in message
    assert "use --inputs DIR" in message


def test_cli_run_uses_the_artifact_endpoints_where_the_server_has_them() -> None:
    with FakeKfp(Scenario(artifact_api=True)) as fake:
        _started(fake)
        result = _restore_run(fake.endpoint)
    assert result.returncode == 1  # the fake run's tasks list no outputs
    assert "run a1b2c3d4-run has no output `raw` of step `load`" in result.stderr


def test_cli_run_unknown_run_is_one_line() -> None:
    with FakeKfp(Scenario()) as fake:
        result = _restore_run(fake.endpoint)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "kfg: reading run a1b2c3d4-run: the KFP API answered HTTP 404: Run a1b2c3d4-run not found"
    )
