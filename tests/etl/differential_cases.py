"""The differential matrix: (source engine, source type) x BigQuery destination type.

Absent on purpose, because the emulator cannot hold them (the rules are covered by the
pure engine tests in tests/etl/test_compatibility.py): BIGNUMERIC destinations (the emulator
cannot create the column, DESIGN §7) and parameterized NUMERIC(P,S) destinations (the
emulator stores them as plain NUMERIC and drops P and S, so neither the report nor the
load can see them).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math

from hypothesis import strategies as st

from tests.etl.differential_values import (
    BYTES_BOUNDARY,
    DATE_MAX,
    DATE_MIN,
    DT_MAX,
    DT_MIN,
    FLOAT_BOUNDARY,
    FLOAT_SPECIAL,
    INT64_MAX,
    INT64_MIN,
    INT_BOUNDARY,
    JSON_BOUNDARY,
    NEGATIVE_ZERO,
    TEXT_BOUNDARY,
    TWO_53,
    UNCONSTRAINED_BOUNDARY,
    UTC,
    Dest,
    Kind,
    Raw,
    decimal_boundary,
    decimals,
    json_values,
    lit_bool,
    lit_bytes,
    lit_date,
    lit_json,
    lit_pg_array,
    lit_pg_float,
    lit_pg_numeric,
    lit_plain,
    lit_sqlite_float,
    lit_text,
    lit_time,
    lit_ts,
    offsets,
    sqlite_stored_float,
    texts,
    unconstrained_decimals,
)

PG, MY, LITE = "postgresql", "mysql", "sqlite"
INT64, NUMERIC, FLOAT64, STRING, BOOL, BYTES, JSON = (
    Dest(t) for t in ("INT64", "NUMERIC", "FLOAT64", "STRING", "BOOL", "BYTES", "JSON")
)
DATE, DATETIME, TIMESTAMP, TIME = Dest("DATE"), Dest("DATETIME"), Dest("TIMESTAMP"), Dest("TIME")

_ints = st.integers(INT64_MIN, INT64_MAX) | st.sampled_from([TWO_53 - 1, TWO_53, TWO_53 + 1, -TWO_53 - 1])
_floats = st.floats(allow_nan=True, allow_infinity=True)
_finite = st.floats(allow_nan=False, allow_infinity=False).map(lambda v: v + 0.0)  # no -0.0 (see NEGATIVE_ZERO)
_dates = st.dates(DATE_MIN, DATE_MAX)
_datetimes = st.datetimes(DT_MIN, DT_MAX)
_aware = st.datetimes(DT_MIN, DT_MAX, timezones=offsets())
_times = st.times()
_json = json_values()
DATE_EDGES = (DATE_MIN, DATE_MAX, dt.date(1970, 1, 1), dt.date(2000, 2, 29))
DT_EDGES = (
    DT_MIN,
    DT_MAX,
    dt.datetime(1970, 1, 1),
    dt.datetime(2024, 5, 1, 12, 30, 0, 123456),
    dt.datetime(2024, 5, 1),
)
AWARE_EDGES = (
    dt.datetime(2024, 3, 31, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    dt.datetime(2024, 1, 1, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=-14))),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    dt.datetime(1, 1, 1, 0, 0, tzinfo=UTC),
    dt.datetime(1, 1, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),  # before 0001 in UTC
    dt.datetime(2000, 1, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=-9, minutes=-30))),
)
TIME_EDGES = (dt.time(0), dt.time(23, 59, 59, 999999), dt.time(12, 0, 0, 1))


def pg_kinds() -> list[tuple[Kind, tuple[Dest, ...]]]:
    text, by = lit_text(PG), lit_bytes(PG)
    infinity = (Raw("'infinity'", "infinity"), Raw("'-infinity'", "-infinity"))
    nan = (decimal.Decimal("NaN"),)  # PostgreSQL numeric holds 'NaN' at any precision
    return [
        (Kind(PG, "bigint", "int", _ints, INT_BOUNDARY, lit_plain), (INT64, NUMERIC, FLOAT64, STRING, BOOL)),
        (
            Kind(PG, "numeric(38,9)", "decimal", decimals(38, 9), decimal_boundary(38, 9) + nan, lit_pg_numeric, 38, 9),
            (NUMERIC, FLOAT64, INT64, STRING),
        ),
        (
            Kind(
                PG,
                "numeric(13,12)",
                "decimal",
                decimals(13, 12),
                decimal_boundary(13, 12) + nan,
                lit_pg_numeric,
                13,
                12,
            ),
            (NUMERIC,),
        ),
        (
            Kind(PG, "numeric(5,3)", "decimal", decimals(5, 3), decimal_boundary(5, 3) + nan, lit_pg_numeric, 5, 3),
            (NUMERIC,),
        ),
        (
            Kind(PG, "numeric(18,0)", "decimal", decimals(18, 0), decimal_boundary(18, 0) + nan, lit_pg_numeric, 18, 0),
            (INT64,),
        ),
        (
            Kind(PG, "numeric", "decimal", unconstrained_decimals(), UNCONSTRAINED_BOUNDARY + nan, lit_pg_numeric),
            (NUMERIC,),
        ),
        (
            Kind(
                PG, "double precision", "float", _floats, FLOAT_BOUNDARY + FLOAT_SPECIAL + NEGATIVE_ZERO, lit_pg_float
            ),
            (FLOAT64, NUMERIC, INT64, STRING),
        ),
        (Kind(PG, "text", "text", texts(PG), TEXT_BOUNDARY, text), (STRING, BYTES, JSON, INT64)),
        (Kind(PG, "boolean", "bool", st.booleans(), (True, False), lit_bool(PG)), (BOOL, INT64, STRING, DATE)),
        (
            Kind(PG, "date", "date", _dates, DATE_EDGES + infinity, lit_date(PG)),
            (DATE, DATETIME, TIMESTAMP, STRING, INT64),
        ),
        (Kind(PG, "timestamp", "ts", _datetimes, DT_EDGES + infinity, lit_ts(PG)), (DATETIME, TIMESTAMP, DATE, STRING)),
        (Kind(PG, "timestamptz", "tstz", _aware, AWARE_EDGES + infinity, lit_ts(PG)), (TIMESTAMP, DATETIME, STRING)),
        (Kind(PG, "time", "time", _times, TIME_EDGES, lit_time), (TIME, STRING)),
        (
            Kind(
                PG,
                "timetz",
                "timetz",
                st.times(timezones=offsets()),
                (dt.time(23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2))), dt.time(1, 0, tzinfo=UTC)),
                lit_time,
            ),
            (TIME,),
        ),
        (Kind(PG, "jsonb", "json", _json, JSON_BOUNDARY, lit_json(PG)), (JSON, STRING, INT64)),
        (Kind(PG, "json", "json", _json, JSON_BOUNDARY, lit_json(PG)), (JSON,)),
        (Kind(PG, "bytea", "bytes", st.binary(max_size=24), BYTES_BOUNDARY, by), (BYTES, STRING, INT64)),
        (
            Kind(
                PG,
                "bigint[]",
                "int_array",
                st.lists(st.none() | _ints, max_size=4),
                ([], [1, 2, 3], [None], [1, None, 3], [INT64_MAX, INT64_MIN]),
                lit_pg_array("bigint", lit_plain),
            ),
            (Dest("INT64", "REPEATED"),),
        ),
        (
            Kind(
                PG,
                "text[]",
                "text_array",
                st.lists(st.none() | texts(PG), max_size=4),
                ([], ["", "ü🚀"], [None, "x"]),
                lit_pg_array("text", text),
            ),
            (Dest("STRING", "REPEATED"),),
        ),
    ]


def mysql_kinds() -> list[tuple[Kind, tuple[Dest, ...]]]:
    text = lit_text(MY)
    my_dt = st.datetimes(dt.datetime(1000, 1, 1), DT_MAX)
    my_ts = st.datetimes(dt.datetime(1970, 1, 2), dt.datetime(2038, 1, 18))
    return [
        (Kind(MY, "bigint", "int", _ints, INT_BOUNDARY, lit_plain), (INT64, FLOAT64, STRING)),
        (
            Kind(
                MY,
                "bigint unsigned",
                "uint64",
                st.integers(0, 2**64 - 1),
                (0, INT64_MAX, INT64_MAX + 1, 2**64 - 1, TWO_53 + 1),
                lit_plain,
            ),
            (NUMERIC, INT64),
        ),
        (Kind(MY, "tinyint(1)", "tinyint1", st.integers(-128, 127), (0, 1, 2, -1, 127), lit_plain), (BOOL, INT64)),
        (Kind(MY, "bit(8)", "bit", st.integers(0, 255), (0, 1, 12, 49, 255), lambda v: f"b'{v:b}'"), (INT64,)),
        (
            Kind(MY, "decimal(65,30)", "decimal", decimals(65, 30), decimal_boundary(65, 30), lit_plain, 65, 30),
            (NUMERIC,),
        ),
        (
            Kind(MY, "decimal(10,2)", "decimal", decimals(10, 2), decimal_boundary(10, 2), lit_plain, 10, 2),
            (NUMERIC, FLOAT64),
        ),
        (Kind(MY, "double", "float", _finite, FLOAT_BOUNDARY, repr), (FLOAT64, NUMERIC)),
        (Kind(MY, "varchar(255)", "text", texts(MY), TEXT_BOUNDARY, text), (STRING, JSON, BYTES)),
        (
            Kind(
                MY,
                "date",
                "date",
                st.dates(dt.date(1000, 1, 1), DATE_MAX),
                (dt.date(1000, 1, 1), DATE_MAX, dt.date(2000, 2, 29)),
                lit_date(MY),
            ),
            (DATE, TIMESTAMP),
        ),
        (
            Kind(
                MY, "datetime(6)", "ts", my_dt, (dt.datetime(1000, 1, 1), DT_MAX, dt.datetime(2024, 5, 1)), lit_ts(MY)
            ),
            (DATETIME, TIMESTAMP, STRING),
        ),
        (
            Kind(
                MY,
                "timestamp(6) NULL",
                "tstz",
                my_ts.map(lambda v: v.replace(tzinfo=UTC)),
                (dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC), dt.datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC)),
                lambda v: lit_ts(MY)(v.replace(tzinfo=None)),
            ),
            (TIMESTAMP, DATETIME),
        ),
        (
            Kind(
                MY,
                "time(6)",
                "mytime",
                st.timedeltas(
                    -dt.timedelta(hours=838, minutes=59, seconds=59), dt.timedelta(hours=838, minutes=59, seconds=59)
                ),
                (
                    dt.timedelta(0),
                    dt.timedelta(hours=1),
                    dt.timedelta(hours=23, minutes=59, seconds=59),
                    dt.timedelta(hours=25),
                    -dt.timedelta(minutes=1),
                    dt.timedelta(hours=838, minutes=59, seconds=59),
                ),
                lit_time,
            ),
            (TIME, STRING),
        ),
        (Kind(MY, "json", "json", _json, JSON_BOUNDARY, lit_json(MY)), (JSON, STRING, FLOAT64)),
        (Kind(MY, "varbinary(255)", "bytes", st.binary(max_size=24), BYTES_BOUNDARY, lit_bytes(MY)), (BYTES, STRING)),
    ]


def sqlite_kinds() -> list[tuple[Kind, tuple[Dest, ...]]]:
    text = lit_text(LITE)
    # SQLite: NaN is NULL, -0.0 is 0, and a literal is not always read as the nearest double (sqlite_stored_float).
    floats = st.floats(allow_nan=False, allow_infinity=True).map(lambda v: sqlite_stored_float(v + 0.0))
    epoch = st.integers(-62135596800, 253402300799) | _datetimes
    return [
        (Kind(LITE, "INTEGER", "int", _ints, INT_BOUNDARY, lit_plain), (INT64, FLOAT64)),
        (
            Kind(LITE, "REAL", "float", floats, FLOAT_BOUNDARY + (math.inf, -math.inf), lit_sqlite_float),
            (FLOAT64, NUMERIC),
        ),
        (
            Kind(
                LITE,
                "NUMERIC",
                "decimal",
                st.decimals(-(10**12), 10**12, places=2),
                tuple(UNCONSTRAINED_BOUNDARY[:3]),
                lambda v: repr(float(v)),
            ),
            (NUMERIC,),
        ),
        (Kind(LITE, "TEXT", "text", texts(LITE), TEXT_BOUNDARY, text), (STRING, JSON)),
        (Kind(LITE, "BLOB", "bytes", st.binary(max_size=24), BYTES_BOUNDARY, lit_bytes(LITE)), (BYTES,)),
        (Kind(LITE, "BOOLEAN", "bool", st.booleans(), (True, False), lit_bool(LITE)), (BOOL,)),
        (Kind(LITE, "DATE", "date", _dates, DATE_EDGES, lit_date(LITE)), (DATE, BOOL)),
        (
            Kind(LITE, "DATETIME", "epoch_ts", epoch, (1714550400, 0, DT_EDGES[3], DT_EDGES[4]), lit_ts(LITE)),
            (DATETIME, TIMESTAMP),
        ),
        (Kind(LITE, "JSON", "json", _json, JSON_BOUNDARY, lit_json(LITE)), (JSON,)),
    ]


def all_cases() -> list[tuple[Kind, Dest]]:
    return [
        (kind, dest) for kinds in (pg_kinds(), mysql_kinds(), sqlite_kinds()) for kind, dests in kinds for dest in dests
    ]


CASES = all_cases()


def case_id(case: tuple[Kind, Dest]) -> str:
    kind, dest = case
    return f"{kind.engine}-{kind.ddl}->{dest.label}".replace(" ", "_")
