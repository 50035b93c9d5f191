"""Declared runtime dependencies and the code agree: nothing imported goes undeclared, and
nothing declared goes unused (pyproject.toml [project].dependencies against every import,
lazy ones included, in kfg/)."""

from __future__ import annotations

import ast
import re
import sys

import tomllib

from tests.conftest import REPO

# Distribution name -> the top-level module it provides, where they differ.
MODULE_OF = {
    "pyyaml": "yaml",
    "kfp-kubernetes": "kfp",  # kfp.kubernetes, a namespace inside kfp
    "kfp-server-api": "kfp_server_api",
    "ruamel.yaml": "ruamel",
    "protobuf": "google",
}
# Declared for what they provide to another dependency at run time, never imported by kfg.
PROVIDED_TO_OTHERS = {"cmaes": "Optuna's CmaEsSampler imports it for the cmaes algorithm"}
# Imported only inside step code, where the step's own packages bring them.
STEP_ONLY = {"joblib", "torch"}


def _imports() -> set[str]:
    found: set[str] = set()
    for path in (REPO / "kfg").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"kfg", "__future__"}


def _declared() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = [re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0].lower() for d in project["dependencies"]]
    return {n: MODULE_OF.get(n, n.replace("-", "_")) for n in names}


def test_every_import_is_declared() -> None:
    undeclared = _imports() - set(_declared().values()) - STEP_ONLY
    assert undeclared == set()


def test_every_declared_dependency_is_imported() -> None:
    unused = {d for d, m in _declared().items() if m not in _imports()} - set(PROVIDED_TO_OTHERS)
    assert unused == set()
