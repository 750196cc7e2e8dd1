"""Cron schedules: validation and next run times (pure, croniter-based)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter


def is_valid_cron(expression: str) -> bool:
    """Five fields (minute hour day month weekday); croniter's extensions (seconds, years) are refused."""
    return len(expression.split()) == 5 and croniter.is_valid(expression)


def is_valid_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def next_runs(expression: str, timezone_name: str, *, after: datetime, count: int = 1) -> list[datetime]:
    """The next `count` run times after `after`, as aware UTC datetimes (cron evaluated in the job's zone)."""
    it = croniter(expression, after.astimezone(ZoneInfo(timezone_name)))
    return [it.get_next(datetime).astimezone(UTC) for _ in range(count)]
