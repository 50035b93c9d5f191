"""`kfg run`'s arguments, checked in-process (no step runs: the usage errors come first)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from kfg.cli import app
from tests.conftest import EXAMPLES


@pytest.mark.parametrize("option", ["--only", "--from"])
def test_a_misspelt_step_gets_did_you_mean_and_exit_2(option: str) -> None:
    result = CliRunner().invoke(app, ["run", str(EXAMPLES / "wine" / "kale.yaml"), option, "lod"])
    assert result.exit_code == 2
    assert "unknown step `lod`; did you mean `load`?" in result.output
