"""The pre-commit hooks, through the real `pre-commit try-repo` on a sample repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import EXAMPLES, REPO
from tests.notebooks import Cell, write_notebook


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def test_kfg_validate_hook_rejects_a_bad_kale_yaml(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    shutil.copytree(EXAMPLES / "wine", repo / "wine")
    kale = repo / "wine" / "kale.yaml"
    kale.write_text(kale.read_text().replace('cells: ["id:results"]', "cells: [99]"))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "sample")
    pre_commit = [sys.executable, "-m", "pre_commit", "try-repo", str(REPO), "kfg-validate"]
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}

    rejected = subprocess.run(
        [*pre_commit, "--all-files"], cwd=repo, capture_output=True, text=True, env=env, timeout=900
    )
    assert rejected.returncode == 1, rejected.stdout + rejected.stderr
    assert "cell 99 is out of range: wine.ipynb has 22 cells" in rejected.stdout

    kale.write_text(kale.read_text().replace("cells: [99]", 'cells: ["id:results"]'))
    _git(repo, "commit", "-qam", "fix")
    accepted = subprocess.run(
        [*pre_commit, "--all-files"], cwd=repo, capture_output=True, text=True, env=env, timeout=900
    )
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr


def test_kfg_fix_check_hook_explains_a_notebook_changed_under_its_kale_yaml(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    cells: list[Cell] = [("code", "import math"), ("code", "x = math.pi"), ("code", "y = x * 2")]
    write_notebook(repo / "demo.ipynb", cells)
    kale = repo / "kale.yaml"
    kale.write_text(
        "apiVersion: kfg.dev/v1alpha1\nkind: NotebookPipeline\nmetadata: {name: demo}\n"
        "spec:\n  notebook: demo.ipynb\n  prelude: [1]\n  steps:\n"
        "    - {name: make, cells: [2]}\n    - {name: double, cells: [3]}\n"
    )
    # A hand-written positional kale.yaml, fingerprinted by `kfg fix --write`.
    recorded = subprocess.run(
        [sys.executable, "-m", "kfg", "fix", "--write", "kale.yaml"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert recorded.returncode == 0, recorded.stderr
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "sample")
    write_notebook(repo / "demo.ipynb", [("code", "import os"), *cells])
    _git(repo, "commit", "-qam", "a cell at the top")
    pre_commit = [sys.executable, "-m", "pre_commit", "try-repo", str(REPO), "kfg-fix-check"]
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    rejected = subprocess.run(
        [*pre_commit, "--all-files"], cwd=repo, capture_output=True, text=True, env=env, timeout=900
    )
    assert rejected.returncode == 1, rejected.stdout + rejected.stderr
    assert (
        "cells moved in demo.ipynb: a cell was inserted at 1; step `make` referred to cell 2,"
        " which is now cell 3"
    ) in rejected.stdout
    assert "run `kfg fix --write" in rejected.stdout
