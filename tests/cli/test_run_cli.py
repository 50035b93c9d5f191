"""`kfg run`'s arguments, checked in-process (no step runs: the usage errors come first)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from kfg.cli.app import app
from tests.conftest import EXAMPLES


@pytest.mark.parametrize("option", ["--only", "--from"])
def test_a_misspelt_step_gets_did_you_mean_and_exit_2(option: str) -> None:
    result = CliRunner().invoke(app, ["run", str(EXAMPLES / "wine" / "kale.yaml"), option, "lod"])
    assert result.exit_code == 2
    assert "unknown step `lod`; did you mean `load`?" in result.output


SCHEDULED = EXAMPLES.parent / "tests" / "render" / "scheduled" / "kale.yaml"


def _engine_parameters(monkeypatch: pytest.MonkeyPatch, *args: str) -> dict[str, object]:
    """What `kfg run` hands the engine; the stand-in stops before any step runs."""
    from kfg.engine import runner

    seen: dict[str, object] = {}

    class Stop(runner.Engine):
        def __init__(self, *positional: object, parameters: dict[str, object], **rest: object):
            seen.update(parameters)

        def run(self) -> runner.RunSummary:
            raise runner.EngineError("stopped by the test")

    monkeypatch.setattr(runner, "Engine", Stop)
    result = CliRunner().invoke(app, ["run", str(SCHEDULED), *args])
    assert "stopped by the test" in result.output, result.output
    return seen


def test_schedule_runs_with_that_schedules_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _engine_parameters(monkeypatch, "--schedule", "nightly") == {
        "max_depth": 4,
        "n_estimators": 50,
    }
    # --param still wins, so a user can try a variation of the schedule.
    assert _engine_parameters(monkeypatch, "--schedule", "weekly-full", "-p", "test_size=0.3") == {
        "C": 2.0,
        "test_size": 0.3,
    }
    # `C: 2` in kale.yaml is the float parameter's 2.0, as KFP receives it.
    assert isinstance(_engine_parameters(monkeypatch, "--schedule", "weekly-full")["C"], float)


def test_an_unknown_schedule_gets_did_you_mean_and_exit_2() -> None:
    result = CliRunner().invoke(app, ["run", str(SCHEDULED), "--schedule", "nighty"])
    assert result.exit_code == 2
    assert "unknown schedule `nighty`; did you mean `nightly`?" in result.output
