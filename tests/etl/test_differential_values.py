"""The differential suite's own comparison and oracle: a disagreement it reports must be real, not an artefact."""

from __future__ import annotations

import datetime as dt
import decimal
import math

from tests.etl.differential_values import (
    REJECT,
    AsText,
    Dest,
    Json,
    Kind,
    Raw,
    TextInstant,
    expected,
    parse_duration_text,
    same,
)

D = decimal.Decimal
UTC = dt.UTC


def kind(family: str, engine: str = "postgresql") -> Kind:
    return Kind(engine, family, family, None)  # the strategy is not used by the oracle


def test_it_treats_nan_as_equal_to_nan_and_keeps_the_sign_of_zero() -> None:
    assert same(math.nan, math.nan)
    assert same(math.inf, math.inf) and not same(math.inf, -math.inf)
    assert not same(-0.0, 0.0)
    assert not same(1.0, None) and not same(1.0, True)


def test_it_compares_numeric_as_numbers_whatever_the_scale() -> None:
    assert same(D("1.5"), D("1.500000000"))
    assert not same(D("0.125"), D("0.13"))
    assert not same(D("1"), 1.0)


def test_it_compares_timestamps_as_utc_instants_and_never_mixes_naive_and_aware() -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert same(dt.datetime(2024, 3, 31, 1, 30, tzinfo=plus2), dt.datetime(2024, 3, 30, 23, 30, tzinfo=UTC))
    assert not same(dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1, tzinfo=UTC))
    assert not same(dt.date(2024, 1, 1), dt.datetime(2024, 1, 1))


def test_it_compares_json_by_meaning_but_tells_booleans_from_numbers() -> None:
    assert same(Json({"a": [1, {"b": None}], "c": 2.5}), {"c": 2.5, "a": [1, {"b": None}]})
    assert same(Json({"a": 1}, parsed=False), '{ "a" : 1 }')
    assert not same(Json({"a": 1}, parsed=False), '{"a": true}')
    assert not same(Json([1]), [True])
    assert not same(Json("x", parsed=False), "x")  # JSON text of a string is quoted


def test_it_accepts_any_text_that_parses_back_to_the_value() -> None:
    one_hour = dt.timedelta(hours=1)
    assert same(AsText(one_hour, parse_duration_text), "01:00:00")
    assert same(AsText(one_hour, parse_duration_text), "01:00:00.000000")
    assert not same(AsText(one_hour, parse_duration_text), "3600000000")  # a microsecond count is not a time
    assert same(AsText(D("1.50"), D), "1.5")


def test_it_matches_instant_text_even_before_year_one_utc() -> None:
    early = dt.datetime(1, 1, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))
    assert same(TextInstant(early), "0000-12-31 19:30:00.000000Z")
    assert same(TextInstant(early), "0001-01-01T01:00:00+05:30")
    assert not same(TextInstant(early), "0001-01-01 01:00:00")


def test_it_expects_half_away_from_zero_rounding_and_rejects_what_does_not_fit() -> None:
    numeric = Dest("NUMERIC")
    assert expected(kind("decimal"), numeric, D("0.0000000015"), "warning") == D("0.000000002")
    assert expected(kind("decimal"), numeric, D("-0.0000000025"), "warning") == D("-0.000000003")
    assert expected(kind("decimal"), numeric, D("1" * 30), "needs_validation") is REJECT
    assert expected(kind("float"), numeric, math.nan, "needs_validation") is REJECT
    assert expected(kind("float"), numeric, 1e300, "needs_validation") is REJECT


def test_it_expects_floats_in_numeric_from_their_shortest_text_not_their_binary_value() -> None:
    numeric = Dest("NUMERIC")
    # The exact binary value of -21929227.04 is -21929227.03999999910593032836914062500: the rule reads '-21929227.04'.
    assert expected(kind("float"), numeric, -21929227.04, "needs_validation") == D("-21929227.040000000")
    assert expected(kind("float"), numeric, 0.1, "needs_validation") == D("0.1")
    assert expected(kind("float"), numeric, 1.0000000005, "needs_validation") == D("1.000000001")  # half away


def test_it_expects_the_nearest_double_for_integers_and_decimals_in_float64() -> None:
    assert expected(kind("int"), Dest("FLOAT64"), 2**53 + 1, "warning") == 9007199254740992.0
    assert same(expected(kind("decimal"), Dest("FLOAT64"), D("-19.40"), "warning"), -19.4)
    assert not same(expected(kind("decimal"), Dest("FLOAT64"), D("-19.40"), "warning"), -19.400000000000002)


def test_it_rejects_values_outside_bigquery_ranges_and_null_array_elements() -> None:
    assert expected(kind("date"), Dest("DATE"), Raw("'infinity'", "infinity"), "ok") is REJECT
    assert same(expected(kind("date"), Dest("STRING"), Raw("'infinity'", "infinity"), "warning"), "infinity")
    early = dt.datetime(1, 1, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    assert expected(kind("tstz"), Dest("TIMESTAMP"), early, "ok") is REJECT
    assert expected(kind("tstz", "mysql"), Dest("TIMESTAMP"), early, "warning") is REJECT
    assert expected(kind("int_array"), Dest("INT64", "REPEATED"), [1, None], "warning") is REJECT
    assert expected(kind("int_array"), Dest("INT64", "REPEATED"), None, "ok") == []
    assert expected(kind("mytime", "mysql"), Dest("TIME"), dt.timedelta(hours=25), "ok") is REJECT


def test_it_expects_postgresql_values_beyond_bigquery_ranges_clamped_when_the_warning_says_so() -> None:
    infinity, minus = Raw("'infinity'", "infinity"), Raw("'-infinity'", "-infinity")
    assert expected(kind("date"), Dest("DATE"), infinity, "warning") == dt.date(9999, 12, 31)
    assert expected(kind("date"), Dest("DATE"), minus, "warning") == dt.date(1, 1, 1)
    assert expected(kind("date"), Dest("DATETIME"), infinity, "warning") == dt.datetime(
        9999, 12, 31, 23, 59, 59, 999999
    )
    assert expected(kind("ts"), Dest("TIMESTAMP"), minus, "warning") == dt.datetime(1, 1, 1, tzinfo=UTC)
    early = dt.datetime(1, 1, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))
    assert expected(kind("tstz"), Dest("TIMESTAMP"), early, "warning") == dt.datetime(1, 1, 1, tzinfo=UTC)
    assert expected(kind("tstz"), Dest("DATETIME"), early, "warning") == dt.datetime(1, 1, 1)
    assert expected(kind("ts"), Dest("DATE"), infinity, "needs_validation") is REJECT


def test_it_reads_postgresql_bc_text_as_the_instant_it_names() -> None:
    early = dt.datetime(1, 1, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))
    assert same(TextInstant(early), "0001-12-31 19:30:00+00 BC")  # 1 BC is year 0
    assert not same(TextInstant(early), "0001-12-31 19:30:00+00")


def test_it_generates_decimals_that_fit_their_declared_precision_at_both_ends() -> None:
    from tests.etl.differential_values import decimals

    assert "min_value=Decimal('-" + "9" * 29 + "." + "9" * 9 + "')" in repr(decimals(38, 9))  # not -1E+29


def test_it_compares_sqlite_reals_with_the_double_sqlite_stores_for_the_literal() -> None:
    from tests.etl.differential_values import sqlite_stored_float

    assert sqlite_stored_float(0.1) == 0.1 and sqlite_stored_float(math.inf) == math.inf
    assert sqlite_stored_float(-3.5119967003102123e-307) == -3.5119967003102127e-307  # SQLite's own reading
