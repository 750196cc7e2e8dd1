"""Cron schedules: validation and next run times (pure, croniter-based)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterError, croniter

# Syntax alone is not enough: `0 0 31 2 *` (31 February) parses but never fires, and croniter
# then raises from get_next() wherever next_run_at is computed. The longest real gap between
# matches is a leap day across a skipped leap year (2096-02-29 -> 2104-02-29): 8 years.
HORIZON_YEARS = 10


def cron_error(expression: str) -> str | None:
    """Why `expression` is not a usable schedule, or None when it is.

    Five fields (minute hour day month weekday), croniter's extensions (seconds, years) refused,
    and at least one run within HORIZON_YEARS of now.
    """
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        return f"{expression!r} is not a valid cron expression (5 fields: minute hour day month weekday)."
    try:
        croniter(expression, datetime.now(UTC), max_years_between_matches=HORIZON_YEARS).get_next(datetime)
    except (CroniterError, ValueError, OverflowError):
        return f"{expression!r} never runs: it names a date that does not exist (such as 31 February)."
    return None


def is_valid_cron(expression: str) -> bool:
    return cron_error(expression) is None


def is_valid_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


# Area/Location names only (plus UTC): "Factory", "localtime", "posixrules", "Etc/GMT+5" and the
# POSIX-style leftovers ("EST5EDT", "GMT0") name no place a user lives in, and Etc/GMT+5 means UTC-5.
_NON_GEOGRAPHIC_PREFIXES = ("Etc/", "posix/", "right/", "SystemV/")


def timezone_names() -> list[str]:
    """The time zones to offer: UTC and the geographic Area/Location names, sorted."""
    names = {n for n in available_timezones() if "/" in n and not n.startswith(_NON_GEOGRAPHIC_PREFIXES)}
    return ["UTC", *sorted(names)]


def next_runs(expression: str, timezone_name: str, *, after: datetime, count: int = 1) -> list[datetime]:
    """The next `count` run times after `after`, as aware UTC datetimes (cron evaluated in the job's zone)."""
    it = croniter(expression, after.astimezone(ZoneInfo(timezone_name)), max_years_between_matches=HORIZON_YEARS)
    return [it.get_next(datetime).astimezone(UTC) for _ in range(count)]
