"""Cron validation and next runs (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ml_platform.etl.schedule import is_valid_cron, next_runs


@pytest.mark.parametrize("expression", ["0 0 30 2 *", "0 0 31 2 *", "0 0 31 4 *", "0 0 31 6,9,11 *"])
def test_it_refuses_a_cron_that_never_runs(expression: str) -> None:
    assert not is_valid_cron(expression)


@pytest.mark.parametrize("expression", ["0 0 29 2 *", "*/5 * * * *", "0 6 * * 1-5", "0 0 31 1-12 *", "0 0 31 2 1"])
def test_it_accepts_a_cron_that_runs(expression: str) -> None:
    assert is_valid_cron(expression)


@pytest.mark.parametrize("expression", ["whenever", "61 * * * *", "* * * *", "0 0 * * * 2030"])
def test_it_refuses_malformed_expressions(expression: str) -> None:
    assert not is_valid_cron(expression)


def test_it_finds_the_next_leap_day() -> None:
    runs = next_runs("0 0 29 2 *", "UTC", after=datetime(2097, 3, 1, tzinfo=UTC), count=2)
    assert runs == [datetime(2104, 2, 29, tzinfo=UTC), datetime(2108, 2, 29, tzinfo=UTC)]
