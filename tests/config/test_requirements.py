"""Requirements reach kfp's `sh -c` install line single-quoted, with nothing to expand."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kfg.config.requirements import RequirementError, normalize
from tests.pipelines import make, messages

HOSTILE = [
    "six==1.16.0; python_version > '$(touch pwned)'",
    'six; python_version > "a\'b"',
    "six; python_version > '`touch pwned`'",
    "x @ https://example.com/$(touch pwned).whl",
    "x @ https://example.com/a'b.whl",
    "six==1.16.0\n; touch pwned",
    "six==1.16.0 && touch pwned",
    "six==1.16.0; touch pwned",
    # kfp writes the requirement with repr(), which escapes what is not printable: the
    # shell would pass pip `\x80`, four characters, not the one in kale.yaml
    "0 @ \x80",
    "x @ https://example.com/a\u2028b.whl",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_requirements_are_refused(text: str) -> None:
    with pytest.raises(RequirementError):
        normalize(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pandas==2.2.3", ("pandas==2.2.3", True)),
        ("six; python_version > '3.8'", ('six; python_version > "3.8"', False)),
        ("pandas @ https://x/p.whl", ("pandas @ https://x/p.whl", True)),
        ("six[a,b]>=1,<2", ("six[a,b]<2,>=1", False)),
    ],
)
def test_valid_requirements_are_normalised(text: str, expected: tuple[str, bool]) -> None:
    assert normalize(text) == expected


@given(st.text(max_size=60))
def test_whatever_is_accepted_is_single_quoted_by_kfp(text: str) -> None:
    # kfp 2.17.0 kfp/dsl/component_factory.py make_pip_install_command writes each package
    # with repr(); it must pick single quotes, inside which sh expands nothing.
    try:
        normalized, _ = normalize(text)
    except RequirementError:
        return
    assert repr(normalized).startswith("'") and shlex.split(repr(normalized)) == [normalized]


def test_the_rendered_install_line_does_not_run_a_marker(tmp_path: Path) -> None:
    from kfg.render.kfp_build import compile_pipeline

    result = make(
        tmp_path,
        [("code", "x = 1")],
        [{"name": "s", "cells": [1], "packages": ["six==1.16.0; python_version > '3.8'"]}],
    )
    assert result.ok, messages(result)
    assert result.pipeline is not None and result.flow is not None
    assert result.notebook is not None
    compiled = compile_pipeline(result.pipeline, result.flow, result.notebook)
    executors = compiled.ir[0]["deploymentSpec"]["executors"]
    (container,) = [e["container"] for e in executors.values()]
    assert container["command"][:2] == ["sh", "-c"]
    script = container["command"][2]
    assert "'six==1.16.0; python_version > \"3.8\"'" in script
    # The shell sees the requirement as one word, exactly as normalised.
    line = next(li for li in script.splitlines() if "pip install" in li)
    words = shlex.split(line.split("&&")[0])
    assert 'six==1.16.0; python_version > "3.8"' in words
    probe = subprocess.run(["sh", "-n", "-c", script], capture_output=True)
    assert probe.returncode == 0
