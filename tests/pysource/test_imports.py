"""Imports in notebook code and the distributions that provide them."""

from __future__ import annotations

import ast

import pytest

from kfg.pysource.imports import Import, distributions, imports, is_stdlib, named_modules, provided


def test_top_level_modules_with_lines_skipping_relative_and_tolerated_imports() -> None:
    tree = ast.parse(
        "import numpy as np, os.path\n"
        "from sklearn.svm import SVC\n"
        "from . import local\n"
        "from __future__ import annotations\n"
        "try:\n"
        "    import ujson\n"
        "except ImportError:\n"
        "    ujson = None\n"
        "def f():\n"
        "    import torch\n"
    )
    assert imports(tree) == [
        Import("numpy", 1),
        Import("os", 1),
        Import("sklearn", 2),
        Import("torch", 10),
    ]


def test_standard_library_and_distribution_names() -> None:
    assert is_stdlib("json") and is_stdlib("sys") and not is_stdlib("numpy")
    assert distributions("yaml") == ["PyYAML"]  # installed here: its real name
    assert provided("sklearn", ["scikit-learn==1.5.2"])
    assert provided("yaml", ["pyyaml>=6"]) and provided("numpy", ["NumPy==2.1.0"])
    assert not provided("numpy", ["pandas==2.2.3"])


def test_validating_the_examples_never_maps_every_installed_distribution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # packages_distributions() reads every installed distribution's files (about 0.4 s):
    # modules named like their distribution are looked up one by one instead.
    from importlib import metadata

    from kfg.core.load import load_pipeline
    from kfg.pysource import imports
    from tests.conftest import EXAMPLES

    imports._installed.cache_clear()

    def refuse() -> None:
        raise AssertionError("packages_distributions() was called")

    monkeypatch.setattr(metadata, "packages_distributions", refuse)
    for name in ("wine", "digits"):
        assert load_pipeline(EXAMPLES / name / "kale.yaml").ok


def test_named_modules_are_what_the_code_imports_itself_with_the_packages_above() -> None:
    tree = ast.parse(
        "import sklearn.experimental.enable_iterative_imputer\n"
        "from pandas.io import parquet, formats as f\n"
        "from os.path import *\n"
        "from . import sibling\n"
        "def later():\n"
        "    import json.tool\n"
    )
    assert named_modules(tree) == {
        "sklearn",
        "sklearn.experimental",
        "sklearn.experimental.enable_iterative_imputer",
        "pandas",
        "pandas.io",
        "pandas.io.parquet",
        "pandas.io.formats",
        "os",
        "os.path",
        "json",
        "json.tool",
    }
