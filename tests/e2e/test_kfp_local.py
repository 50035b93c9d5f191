"""The rendered pipelines really run: kfp.local executes the IR kfg wrote, task by task.

`SubprocessRunner(use_venv=False)` runs each task's real command (the pip install line,
kfp's executor, the component's loader of kfg's step runtime) in a subprocess of this
environment, with no cluster and no Docker. The metrics must equal those of the notebook
run by a kernel.

kfp.local ignores the Kubernetes platform spec, so it cannot mount the runtime's
ConfigMap; the test writes the ConfigMap's data into a folder, as the kubelet would, and
points the components at it with KFG_RUNTIME_DIR. The components check its digest, so
this proves the rendered ConfigMap holds exactly the runtime the steps were rendered with.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from kfg.core.load import load_pipeline
from kfg.launcher.podlogs import parse
from kfg.render.build import IR_FILE, RUNTIME_FILE, render
from kfg.render.runtime_volume import DIRECTORY_VARIABLE
from tests.conftest import EXAMPLES
from tests.reference import notebook_metrics

RUNNER = """
import sys
from kfp import components, local
local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2])
components.load_component_from_file(sys.argv[1])()
"""


def _pin_installed(kale: Path) -> None:
    """Pin the packages at the versions installed here, so pip finds them already satisfied."""
    text = kale.read_text()
    text = re.sub(r"pandas==[\w.]+", f"pandas=={version('pandas')}", text)
    text = re.sub(r"scikit-learn==[\w.]+", f"scikit-learn=={version('scikit-learn')}", text)
    kale.write_text(text)


def _metrics(root: Path) -> dict[str, float]:
    found: dict[str, float] = {}
    for output in root.rglob("executor_output.json"):
        artifacts = json.loads(output.read_text()).get("artifacts", {})
        for artifact in artifacts.get("kfg_metrics", {}).get("artifacts", []):
            found.update(artifact.get("metadata", {}))
    return found


@pytest.mark.parametrize("name", ["wine", "digits"])
def test_rendered_pipeline_runs_locally_with_the_notebooks_metrics(
    name: str, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    shutil.copytree(EXAMPLES / name, repo / name)
    config = repo / name / "kale.yaml"
    _pin_installed(config)
    result = load_pipeline(config)
    assert result.ok and result.pipeline and result.flow and result.notebook
    package = render(result.pipeline, result.flow, result.notebook, repo).package
    ir = tmp_path / IR_FILE
    ir.write_text(package.files[IR_FILE])
    mount = tmp_path / "mount"
    mount.mkdir()
    (config_map,) = yaml.safe_load_all(package.files[RUNTIME_FILE])
    for key, value in config_map["data"].items():
        (mount / key).write_text(value, encoding="utf-8")

    ran = subprocess.run(
        [sys.executable, "-c", RUNNER, str(ir), str(tmp_path / "root")],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, DIRECTORY_VARIABLE: str(mount)},
    )
    log = ran.stdout + ran.stderr
    assert ran.returncode == 0, log[-5000:]
    assert "finished with status \x1b[92mSUCCESS" in log or "SUCCESS" in log
    pipeline_metrics = _metrics(tmp_path / "root")

    expected = notebook_metrics(config)
    assert set(expected) == {m.name for m in result.pipeline.metrics}
    assert pipeline_metrics == pytest.approx(expected, rel=1e-12, abs=1e-12)
    # The steps' logs carry the lines the trial launcher reads the run's metrics from
    # (kfp.local indents a task's output by 4 spaces: kfp/local/task_dispatcher.py,
    # logging_utils.indented_print; a pod's log has them as printed).
    printed = {}
    for line in log.splitlines():
        found = parse(line.removeprefix("    "))
        if found:
            printed[found[1]] = found[2]
    assert printed == expected
    # Every step wrote its HTML report.
    reports = list((tmp_path / "root").rglob("kfg_report"))
    assert len(reports) == len(result.pipeline.steps)
