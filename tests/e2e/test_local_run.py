"""`kfg run` on the examples: the metrics of the notebook run by a kernel, then all cached."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.reference import notebook_metrics


def run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kfg", "run", *args],
        capture_output=True,
        text=True,
        cwd=repo,
        timeout=600,
    )


@pytest.mark.parametrize("name", ["wine", "digits"])
def test_kfg_run_matches_the_notebook_and_then_runs_nothing(name: str, tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    shutil.copytree(EXAMPLES / name, tmp_path / name)
    config = f"{name}/kale.yaml"
    cold = run(tmp_path, config, "--json")
    assert cold.returncode == 0, cold.stderr
    summary = json.loads(cold.stdout)
    assert summary["ok"] and not any(s["cached"] for s in summary["steps"])
    assert summary["metrics"] == pytest.approx(notebook_metrics(tmp_path / config), rel=1e-12)
    for step in summary["steps"]:
        assert Path(step["report"]).is_file()
    warm = json.loads(run(tmp_path, config, "--json").stdout)
    assert all(s["cached"] for s in warm["steps"])
    assert warm["metrics"] == summary["metrics"]


def test_cli_errors(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    shutil.copytree(EXAMPLES / "digits", tmp_path / "digits")
    assert run(tmp_path, "digits/kale.yaml", "--only", "nope").returncode == 2
    assert run(tmp_path, "digits/kale.yaml", "-p", "nope=1").returncode == 2
    only = run(tmp_path, "digits/kale.yaml", "--only", "evaluate")
    assert only.returncode == 1 and "needs step `load` from the cache" in only.stderr
