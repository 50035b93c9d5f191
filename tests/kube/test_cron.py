"""CronJob schedules read as Kubernetes reads them, and their next firing.

robfig/cron v3.0.1 (parser.go getRange, spec.go bounds and dayMatches) is what Kubernetes'
CronJob validation and controller call through `cron.ParseStandard`.
"""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

import pytest

from kfg.kube.cron import CronError, next_fire, parse, zone

UTC = datetime.timezone.utc


@pytest.mark.parametrize(
    "schedule",
    [
        "0 3 * * *",
        "*/15 9-17 * * mon-fri",
        "0 0 1,15 * *",
        "5 4 * JAN,jul Sun",
        "0 0 ? * *",  # `?` is `*` (getRange)
        "10/20 * * * *",  # N/step: N to the maximum
        "*-5 * * * *",  # getRange ignores what follows `*`
        "@daily",
        "@weekly",
        "@annually",
    ],
)
def test_accepts_what_the_standard_parser_accepts(schedule: str) -> None:
    parse(schedule)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("", "empty"),
        ("0 3 * *", "expected 5 fields"),
        ("0 0 3 * * *", "found 6"),  # seconds are not part of the standard parser
        ("60 * * * *", "minute: 60 is above the maximum"),
        ("0 24 * * *", "hour: 24 is above"),
        ("0 0 0 * *", "day of month: 0 is below the minimum"),
        ("0 0 * 13 *", "month: 13 is above"),
        ("0 0 * * 7", r"day of week: 7 is above the maximum \(6\)"),  # bounds{0, 6}
        ("*/0 * * * *", "step"),
        ("5-1 * * * *", "starts after it ends"),
        ("1-2-3 * * * *", "too many hyphens"),
        ("*/2/3 * * * *", "too many slashes"),
        ("0 0 * * funday", "not a number"),
        ("@fortnightly", "unknown descriptor"),
        ("@every 1h", "@every"),
        ("CRON_TZ=Europe/Berlin 0 3 * * *", "timeZone"),
    ],
)
def test_refuses_what_kubernetes_refuses(schedule: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        parse(schedule)


def test_time_zones_are_iana_names() -> None:
    assert zone("Europe/Berlin") == ZoneInfo("Europe/Berlin")
    # validateTimeZone: each part 1-14 of [A-Za-z.-_0-9+], no `..`, no leading `-`; not Local.
    for bad in (
        "Mars/Olympus",
        "",
        "local",
        "../etc/passwd",
        "/usr/share/zoneinfo/UTC",
        "Europe/-Berlin",
        "America/Very_Long_City_Name",
    ):
        with pytest.raises(CronError):
            zone(bad)


def test_next_fire_is_read_in_the_schedules_time_zone() -> None:
    now = datetime.datetime(2026, 12, 2, 1, 30, tzinfo=UTC)  # 02:30 in Berlin
    fire = next_fire(parse("0 3 * * *"), ZoneInfo("Europe/Berlin"), now)
    assert fire is not None
    assert fire.astimezone(UTC) == datetime.datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    # Strictly after: at the firing minute itself, the next one is tomorrow's.
    again = next_fire(parse("0 3 * * *"), ZoneInfo("Europe/Berlin"), fire)
    assert again is not None and again - fire == datetime.timedelta(days=1)


def test_restricted_day_of_month_and_week_match_either() -> None:
    # dayMatches: with neither field `*`, a day matching either fires.
    cron = parse("0 0 13 * fri")
    start = datetime.datetime(2026, 11, 1, tzinfo=UTC)
    fire = next_fire(cron, UTC, start)
    assert fire == datetime.datetime(2026, 11, 6, tzinfo=UTC)  # a Friday, not the 13th
    # With one of them `*` (or `*/1`), both must match.
    assert next_fire(parse("0 0 13 * *"), UTC, start) == datetime.datetime(2026, 11, 13, tzinfo=UTC)


def test_a_time_skipped_by_daylight_saving_does_not_fire() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    before = datetime.datetime(2027, 3, 27, 12, 0, tzinfo=berlin)
    fire = next_fire(parse("30 2 * * *"), berlin, before)
    assert fire is not None and fire.date() == datetime.date(2027, 3, 29)


def test_a_schedule_that_never_fires_has_no_next_time() -> None:
    assert next_fire(parse("0 0 30 2 *"), UTC, datetime.datetime(2026, 1, 1, tzinfo=UTC)) is None
