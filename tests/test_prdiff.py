"""`kfg diff`: the pull-request summary compares the base revision with the working tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def diff(repo: Path, base: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kfg", "diff", "--base", base],
        capture_output=True,
        text=True,
        cwd=repo,
        timeout=120,
    )


def test_summary_shows_the_graph_and_a_new_pipeline_version(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    shutil.copytree(EXAMPLES / "wine", tmp_path / "wine")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "base")
    unchanged = diff(tmp_path, "HEAD")
    assert unchanged.returncode == 0, unchanged.stderr
    assert "No rendered object changes." in unchanged.stdout
    notebook = tmp_path / "wine" / "wine.ipynb"
    notebook.write_text(
        notebook.read_text().replace(
            "max_depth=max_depth, random_state", "max_depth=3, random_state"
        )
    )
    result = diff(tmp_path, "HEAD")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("<!-- kfg-pr-summary -->")
    assert "### `wine-quality`" in text and "```mermaid\nflowchart TD" in text
    assert "| added | PipelineVersion |" in text and "| removed | PipelineVersion |" in text
    assert "leaves git but stays on the cluster" in text
    assert "Objects: 1 added, 0 changed, 1 removed." in text
    assert not list(tmp_path.glob(".git/worktrees/*"))  # the base worktree was removed


@pytest.mark.parametrize("base", ["nope", "-f", "--help", "--orphan=x"])
def test_unknown_base_is_a_clear_error_and_never_an_option(tmp_path: Path, base: str) -> None:
    _git(tmp_path, "init", "-q")
    (tmp_path / "x").write_text("x")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "base")
    result = diff(tmp_path, base)
    assert result.returncode == 1, result.stdout
    assert f"`{base}` is not a commit" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / ".git" / "worktrees").exists()
