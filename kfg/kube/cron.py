"""CronJob schedules as Kubernetes reads them, and the times they fire.

Kubernetes validates `spec.schedule` and fires CronJobs with robfig/cron v3's standard
parser (`cron.ParseStandard`; kubernetes pkg/apis/batch/validation/validation.go and
pkg/controller/cronjob/utils.go): five fields (minute, hour, day of month, month, day of
week), each a `,`-list of `*`, `?`, `N`, `N-M`, with an optional `/step`; month and weekday
names (`jan`, `mon`, any case); or one of the descriptors `@yearly`, `@annually`,
`@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`. The time zone belongs in
`spec.timeZone`, never as `TZ=`/`CRON_TZ=` inside the schedule, which the API server
refuses. kfg refuses `@every`: its firings depend on when the controller last ran, not on
the clock, so kfg could neither name a run after its fire time nor say when the next comes.

Rendering never calls `next_fire`: it needs the clock, which only `kfg status` reads.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

# (name, minimum, maximum, names) of robfig/cron's standard fields.
FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    (
        "month",
        1,
        12,
        {
            m: i + 1
            for i, m in enumerate(
                ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
            )
        },
    ),
    (
        "day of week",
        0,
        6,
        {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
    ),
)
DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Jobs a CronJob creates are named `<cronjob>-<scheduled time in minutes since the epoch>`
# (kubernetes pkg/controller/cronjob/utils.go getJobName), so its name leaves 11 characters.
CRONJOB_NAME_MAX = 52
SEARCH_YEARS = 5  # a schedule like `0 0 30 2 *` parses but never fires


class CronError(ValueError):
    """A schedule Kubernetes would refuse; the message says which part and why."""


@dataclass(frozen=True)
class Cron:
    """The values each field matches; `dom_star`/`dow_star` as robfig/cron's star bit."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    dom_star: bool
    dow_star: bool

    def day_matches(self, day: datetime.date) -> bool:
        # robfig/cron dayMatches: either restricted day field may match, unless one is `*`.
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow


def _number(text: str, field: str, names: dict[str, int]) -> int:
    if text.lower() in names:
        return names[text.lower()]
    digits = text[1:] if text.startswith("+") else text  # Go's strconv.Atoi takes a sign
    if not digits.isdigit():
        raise CronError(f"{field}: `{text}` is not a number")
    return int(digits)


def _field(
    text: str, field: str, low: int, high: int, names: dict[str, int]
) -> tuple[set[int], bool]:
    values: set[int] = set()
    star = False
    for part in text.split(","):
        range_text, slash, step_text = part.partition("/")
        if "/" in step_text:
            raise CronError(f"{field}: `{part}` has too many slashes")
        bounds = range_text.split("-")
        if bounds[0] in ("*", "?"):  # robfig/cron reads `*-5` as `*` too
            start, end, part_star = low, high, True
        elif len(bounds) == 1:
            start = end = _number(bounds[0], field, names)
            part_star = False
        elif len(bounds) == 2:
            start, end = (_number(b, field, names) for b in bounds)
            part_star = False
        else:
            raise CronError(f"{field}: `{part}` has too many hyphens")
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field}: the step of `{part}` must be a positive number")
            step = int(step_text)
            if len(bounds) == 1 and not part_star:
                end = high  # `N/step` means from N to the field's maximum
            if step > 1:
                part_star = False
        else:
            step = 1
        if start < low:
            raise CronError(f"{field}: {start} is below the minimum ({low})")
        if end > high:
            raise CronError(f"{field}: {end} is above the maximum ({high})")
        if start > end:
            raise CronError(f"{field}: the range `{range_text}` starts after it ends")
        values.update(range(start, end + 1, step))
        star = star or part_star
    return values, star


def parse(schedule: str) -> Cron:
    """The schedule as Kubernetes' CronJob controller reads it, or `CronError`."""
    text = schedule.strip()
    if not text:
        raise CronError("the schedule is empty")
    if "TZ" in text:
        raise CronError("the time zone goes in `timeZone`, not in the schedule (TZ=/CRON_TZ=)")
    if text.startswith("@"):
        if text.split()[0] == "@every":
            raise CronError(
                "`@every` fires relative to the controller's last run; kfg needs a clock-based"
                " schedule such as `0 * * * *`"
            )
        if text not in DESCRIPTORS:
            known = ", ".join(sorted(DESCRIPTORS))
            raise CronError(f"unknown descriptor `{text}` (descriptors: {known})")
        text = DESCRIPTORS[text]
    parts = text.split()
    if len(parts) != len(FIELDS):
        raise CronError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), found {len(parts)}"
        )
    found = [
        _field(part, name, low, high, names)
        for part, (name, low, high, names) in zip(parts, FIELDS, strict=True)
    ]
    return Cron(
        minutes=frozenset(found[0][0]),
        hours=frozenset(found[1][0]),
        days=frozenset(found[2][0]),
        months=frozenset(found[3][0]),
        weekdays=frozenset(found[4][0]),
        dom_star=found[2][1],
        dow_star=found[4][1],
    )


# kubernetes pkg/apis/batch/validation/validation.go validateTimeZone: each `/`-separated
# part of the name, then time.LoadLocation.
_ZONE_PART = re.compile(r"^[A-Za-z.\-_0-9+]{1,14}$")


def zone(name: str) -> ZoneInfo:
    """An IANA time zone as the API server validates it and the controller loads it (Go's
    time.LoadLocation), or `CronError`."""
    for part in name.split("/"):
        if part in (".", "..") or part.startswith("-") or not _ZONE_PART.match(part):
            raise CronError(f"unknown time zone `{name}`")
    if name.lower() == "local":
        raise CronError("`Local` is not an explicit time zone; name one, such as `Europe/Berlin`")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown time zone `{name}`") from None


def zone_names() -> set[str]:
    return set(available_timezones())


def next_fire(
    cron: Cron, tz: datetime.tzinfo, after: datetime.datetime
) -> datetime.datetime | None:
    """The first firing strictly after `after` (aware), in `tz`; None if none in 5 years.

    Wall-clock minutes that do not exist in `tz` (a spring-forward gap) are skipped.
    """
    local = after.astimezone(tz).replace(second=0, microsecond=0, tzinfo=None)
    day = local.date()
    last = day.replace(year=day.year + SEARCH_YEARS)
    while day <= last:
        if day.month in cron.months and cron.day_matches(day):
            for hour in sorted(cron.hours):
                for minute in sorted(cron.minutes):
                    wall = datetime.datetime.combine(day, datetime.time(hour, minute))
                    if wall <= local:
                        continue
                    aware = wall.replace(tzinfo=tz)
                    back = aware.astimezone(datetime.timezone.utc).astimezone(tz)
                    if back.replace(tzinfo=None) != wall:
                        continue  # not a time on this day's clocks
                    return aware
        day += datetime.timedelta(days=1)
    return None
