"""`spec.schedules` mistakes are reported on their kale.yaml line, before anything renders."""

from __future__ import annotations

from pathlib import Path

import pytest

from kfg.core.load import load_pipeline
from kfg.diagnostics import Severity


def _with_schedules(wine: Path, block: str) -> Path:
    wine.write_text(wine.read_text() + "  schedules:\n" + block)
    return wine


def _line_of(path: Path, text: str) -> int:
    (line,) = [i for i, row in enumerate(path.read_text().splitlines(), 1) if text in row]
    return line


def _errors(config: Path) -> list[tuple[int, str, str]]:
    result = load_pipeline(config)
    return [(d.line, d.code, d.message) for d in result.diagnostics if d.severity is Severity.ERROR]


def test_a_valid_schedule_reaches_the_model(wine: Path) -> None:
    _with_schedules(
        wine,
        "    - name: nightly\n"
        '      cron: "0 3 * * *"\n'
        "      timeZone: Europe/Berlin\n"
        "      parameters: {n_estimators: 50, C: 2, test_size: 0.3}\n",
    )
    result = load_pipeline(wine)
    assert result.ok, result.diagnostics
    assert result.pipeline is not None
    [schedule] = result.pipeline.schedules
    assert (schedule.name, schedule.cron, schedule.time_zone) == (
        "nightly",
        "0 3 * * *",
        "Europe/Berlin",
    )
    assert (schedule.concurrency, schedule.suspend) == ("Forbid", False)
    assert (schedule.successful_history, schedule.failed_history) == (3, 1)
    assert schedule.parameters == {"n_estimators": 50, "C": 2, "test_size": 0.3}


@pytest.mark.parametrize(
    ("entry", "marker", "code", "message"),
    [
        ('      cron: "0 25 * * *"\n', "0 25", "bad-cron", "hour: 25 is above the maximum (23)"),
        ('      cron: "0 3 * *"\n', "0 3 * *", "bad-cron", "expected 5 fields"),
        (
            '      cron: "0 3 * * *"\n      timeZone: Europe/Berln\n',
            "Berln",
            "bad-time-zone",
            "unknown time zone `Europe/Berln`; did you mean `Europe/Berlin`?",
        ),
        (
            '      cron: "0 3 * * *"\n      timeZone: Europe/Atlantis\n',
            "Atlantis",
            "bad-time-zone",
            "unknown time zone `Europe/Atlantis`",
        ),
        (
            '      cron: "0 3 * * *"\n      parameters: {n_estimator: 5}\n',
            "n_estimator:",
            "unknown-parameter",
            "`n_estimator` is not a pipeline parameter; did you mean `n_estimators`?",
        ),
        (
            '      cron: "0 3 * * *"\n      parameters: {n_estimators: "50"}\n',
            "n_estimators:",
            "parameter-type",
            "`n_estimators` is an int parameter (default 200); '50' is a str",
        ),
        (
            '      cron: "0 3 * * *"\n      parameters: {n_estimators: 100000000000000000000}\n',
            "n_estimators:",
            "bad-parameter",
            "beyond ±(2**53 - 1)",
        ),
        (
            '      cron: "0 3 * * *"\n      parameters: {max_depth: 2.5}\n',
            "max_depth:",
            "parameter-type",
            "`max_depth` is an int parameter (default 6); 2.5 is a float",
        ),
    ],
)
def test_mistakes_are_reported_on_their_line(
    wine: Path, entry: str, marker: str, code: str, message: str
) -> None:
    _with_schedules(wine, "    - name: nightly\n" + entry)
    errors = _errors(wine)
    assert [(line, c) for line, c, _ in errors] == [(_line_of(wine, marker), code)]
    assert message in errors[0][2]


def test_duplicate_names_point_at_the_first(wine: Path) -> None:
    _with_schedules(
        wine,
        '    - {name: nightly, cron: "0 3 * * *"}\n    - {name: nightly, cron: "0 4 * * *"}\n',
    )
    [(line, code, message)] = _errors(wine)
    assert code == "duplicate-schedule"
    assert line == _line_of(wine, '"0 4')
    assert f"first used on line {_line_of(wine, '0 3')}" in message


def test_the_schema_refuses_an_unknown_policy_and_a_bad_name(wine: Path) -> None:
    _with_schedules(
        wine,
        '    - {name: Nightly, cron: "0 3 * * *"}\n'
        '    - {name: ok, cron: "0 3 * * *", concurrencyPolicy: forbid}\n',
    )
    lines = sorted(line for line, _, _ in _errors(wine))
    assert lines == [_line_of(wine, "Nightly"), _line_of(wine, "forbid")]


def test_a_cronjob_name_too_long_for_its_jobs(wine: Path) -> None:
    # The CronJob controller appends `-<minutes>` (11 characters) to name each Job.
    name = "a" * 40
    _with_schedules(wine, f'    - {{name: {name}, cron: "@daily"}}\n')
    [(line, code, message)] = _errors(wine)
    assert (line, code) == (_line_of(wine, name), "schedule-name")
    assert "52" in message
