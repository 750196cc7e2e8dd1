"""The type rules table: one entry gives the report's verdict and the conformer's cast.

Pure tests (Arrow only): the table is walked against the conformer, the engine is checked
to read the same entry, and each warning's promise is checked on the landed value.
"""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa
import pytest

from ml_platform.etl.compatibility import check_compatibility
from ml_platform.etl.conform import CASTS, ColumnSource, Conformer
from ml_platform.etl.errors import CastError, SchemaMismatchError
from ml_platform.etl.type_rules import LOADABLE_TYPES, RULES, rule_for
from ml_platform.etl.types import BigQueryField, CanonicalType, Family, SourceColumn, TableSchema

D = decimal.Decimal
F = Family


def conform(values: pa.Array, source_type: CanonicalType, field: BigQueryField) -> list:
    conformer = Conformer([field], {field.name: ColumnSource(source="c", source_type=source_type)})
    batch = pa.RecordBatch.from_arrays([values], names=["c"])
    return conformer.conform(batch).column(0).to_pylist()


def test_it_names_only_casts_the_conformer_has() -> None:
    for key, rule in RULES.items():
        if rule.verdict == "error":
            assert rule.cast is None, key
        else:
            assert rule.cast in CASTS, f"{key} names cast {rule.cast!r}, which the conformer lacks"


def test_it_points_every_needs_validation_entry_at_the_validation() -> None:
    for key, rule in RULES.items():
        if rule.verdict == "needs_validation":
            assert rule.fix == "Validate the source data.", key


def test_it_has_an_entry_for_every_source_family_into_its_own_new_table_type() -> None:
    from ml_platform.etl.types import bigquery_type_for

    for family in Family:
        if family is F.ARRAY:
            continue
        t = CanonicalType(
            family, precision=12 if family is F.DECIMAL else None, scale=2 if family is F.DECIMAL else None
        )
        dest, _ = bigquery_type_for(t)
        match = rule_for(t, dest)
        assert match.key in RULES, (family, dest)
        assert match.verdict in ("ok", "warning"), (family, dest, match.message)


@pytest.mark.parametrize("dest", sorted(LOADABLE_TYPES))
@pytest.mark.parametrize(
    "source",
    [
        CanonicalType(F.INTEGER),
        CanonicalType(F.INTEGER, detail="unsigned64"),
        CanonicalType(F.DECIMAL, precision=13, scale=12),
        CanonicalType(F.DECIMAL),
        CanonicalType(F.FLOAT),
        CanonicalType(F.STRING),
        CanonicalType(F.BOOLEAN),
        CanonicalType(F.BOOLEAN, detail="int"),
        CanonicalType(F.DATE),
        CanonicalType(F.TIME),
        CanonicalType(F.TIME, detail="tz"),
        CanonicalType(F.TIME, detail="duration"),
        CanonicalType(F.TIMESTAMP, tz=True),
        CanonicalType(F.TIMESTAMP),
        CanonicalType(F.JSON),
        CanonicalType(F.BYTES),
        CanonicalType(F.INTERVAL),
        CanonicalType(F.UNKNOWN),
    ],
    ids=str,
)
def test_it_gives_the_engine_and_the_conformer_the_same_entry(source: CanonicalType, dest: str) -> None:
    match = rule_for(source, dest, label="x" if source.family is F.UNKNOWN else "")
    report = check_compatibility([SourceColumn("c", "x", source)], TableSchema("ds", "t", (BigQueryField("c", dest),)))

    assert report.column("c").verdict == match.verdict
    assert match.message in report.column("c").message
    conformer = Conformer([BigQueryField("c", dest)], {"c": ColumnSource(source="c", source_type=source)})
    empty = pa.RecordBatch.from_arrays([pa.nulls(1)], names=["c"])
    if match.verdict == "error":
        with pytest.raises(SchemaMismatchError):
            conformer.conform(empty)
    else:
        assert conformer.conform(empty).column(0).to_pylist() == [None]


# --------------------------------------------------------------------------- warnings keep their word


def test_it_rounds_decimal_5_3_into_numeric_10_2_half_away_from_zero() -> None:
    source = CanonicalType(F.DECIMAL, precision=5, scale=3)
    field = BigQueryField("c", "NUMERIC", precision=10, scale=2)
    values = pa.array([D("1.235"), D("-1.235"), D("1.234"), D("99.995"), None], pa.decimal128(5, 3))

    assert rule_for(source, "NUMERIC", 10, 2).verdict == "warning"
    assert conform(values, source, field) == [D("1.24"), D("-1.24"), D("1.23"), D("100.00"), None]


def test_it_refuses_a_value_that_rounding_pushes_past_the_whole_digits() -> None:
    source = CanonicalType(F.DECIMAL, precision=4, scale=2)
    field = BigQueryField("c", "NUMERIC", precision=3, scale=1)

    assert rule_for(source, "NUMERIC", 3, 1).verdict == "needs_validation"
    assert conform(pa.array([D("9.94")], pa.decimal128(4, 2)), source, field) == [D("9.9")]
    with pytest.raises(CastError, match="whole digits"):
        conform(pa.array([D("99.95")], pa.decimal128(4, 2)), source, field)


def test_it_rounds_text_decimals_beyond_38_places_into_bignumeric() -> None:
    source = CanonicalType(F.DECIMAL)
    text = pa.array(["0." + "0" * 37 + "15", "-0." + "0" * 37 + "15", "NaN"])

    assert conform(text.slice(0, 2), source, BigQueryField("c", "BIGNUMERIC")) == [
        D("0." + "0" * 37 + "2"),
        D("-0." + "0" * 37 + "2"),
    ]
    with pytest.raises(CastError, match="not a finite number"):
        conform(text, source, BigQueryField("c", "BIGNUMERIC"))


def test_it_reads_a_float_into_numeric_by_its_shortest_text() -> None:
    out = conform(
        pa.array([0.1, 19.99, float("nan")]).slice(0, 2), CanonicalType(F.FLOAT), BigQueryField("c", "NUMERIC")
    )

    assert out == [D("0.1"), D("19.99")]


def test_it_stores_decimals_in_float64_as_the_nearest_double() -> None:
    values = pa.array([D("1234567890.123456789"), D("0.1")], pa.decimal128(19, 9))

    out = conform(values, CanonicalType(F.DECIMAL, precision=19, scale=9), BigQueryField("c", "FLOAT64"))

    assert out == [float("1234567890.123456789"), 0.1]


def test_it_writes_time_and_timestamps_as_iso_text() -> None:
    times = pa.array([dt.time(1), dt.time(1, 0, 0, 250000)], pa.time64("us"))
    stamps = pa.array([dt.datetime(2024, 1, 31, 10)], pa.timestamp("us"))

    assert conform(times, CanonicalType(F.TIME), BigQueryField("c", "STRING")) == ["01:00:00", "01:00:00.250000"]
    assert conform(stamps, CanonicalType(F.TIMESTAMP), BigQueryField("c", "STRING")) == ["2024-01-31T10:00:00"]


def test_it_refuses_a_pairing_the_report_refuses_at_run_time_too() -> None:
    with pytest.raises(SchemaMismatchError, match="cannot be loaded"):
        conform(pa.array([b"x"]), CanonicalType(F.BYTES), BigQueryField("c", "INT64"))


def test_it_writes_a_bit_1_boolean_as_true_and_false() -> None:
    out = conform(pa.array([1, 0, None]), CanonicalType(F.BOOLEAN, detail="bit"), BigQueryField("c", "STRING"))

    assert out == ["true", "false", None]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.timedelta(hours=1), dt.time(1)),
        (dt.timedelta(hours=-1, minutes=-30), "-01:30:00"),
        (dt.timedelta(hours=100, microseconds=250000), "100:00:00.250000"),
        (dt.timedelta(days=1), "24:00:00"),
    ],
)
def test_it_reads_mysql_time_as_a_time_of_day_or_mysql_text(value: dt.timedelta, expected: object) -> None:
    from ml_platform.etl.values import read_value

    column = SourceColumn("t", "time(6)", CanonicalType(F.TIME, detail="duration"))

    assert read_value(value, column, "mysql") == expected


def test_it_turns_mysql_decimals_into_the_nearest_double_not_a_scaled_product() -> None:
    values = pa.array([D("-19.40"), D("-13.12"), D("19.99"), D("0.30")], pa.decimal128(10, 2))

    out = conform(values, CanonicalType(F.DECIMAL, precision=10, scale=2), BigQueryField("c", "FLOAT64"))

    assert out == [-19.4, -13.12, 19.99, 0.3]


# --------------------------------------------------------------------------- PostgreSQL numeric 'NaN'


def _pg_numeric(text: str) -> CanonicalType:
    from ml_platform.etl.source_types import parse_source_type

    return parse_source_type(text, "postgresql")


@pytest.mark.parametrize("dest", ["NUMERIC", "BIGNUMERIC", "INT64"])
def test_a_postgresql_numeric_nan_loads_as_null_and_the_report_warns_so(dest: str) -> None:
    source = _pg_numeric("numeric(18,0)")
    match = rule_for(source, dest)
    field = BigQueryField("c", dest)

    assert match.verdict == "warning"
    assert f"which BigQuery {dest} cannot: a NaN loads as NULL" in match.message
    # PostgreSQL numeric arrives as text when a NaN is among the values (extract._as_text).
    assert conform(pa.array(["NaN", "12", None], pa.string()), source, field) == [
        None,
        12 if dest == "INT64" else D("12"),
        None,
    ]


def test_a_postgresql_numeric_nan_keeps_its_value_in_float64_and_string() -> None:
    source = _pg_numeric("numeric(12,2)")

    assert rule_for(source, "FLOAT64").key == ("DECIMAL", "FLOAT64")
    landed = conform(pa.array(["NaN", "1.50"], pa.string()), source, BigQueryField("c", "FLOAT64"))
    assert landed[0] != landed[0] and landed[1] == 1.5
    assert conform(pa.array(["NaN"], pa.string()), source, BigQueryField("c", "STRING")) == ["NaN"]


def test_a_postgresql_numeric_nan_warning_keeps_the_other_promises_of_its_column() -> None:
    rounds = rule_for(_pg_numeric("numeric(5,3)"), "NUMERIC", 10, 2)
    unbounded = rule_for(_pg_numeric("numeric"), "NUMERIC")

    assert rounds.verdict == "warning" and "a NaN loads as NULL" in rounds.message and "rounded" in rounds.message
    assert unbounded.verdict == "needs_validation" and "a NaN loads as NULL" in unbounded.message
    assert "no declared precision" in unbounded.message and "NaN/Infinity" not in unbounded.message
    assert conform(
        pa.array(["NaN", "1.0000000005"], pa.string()), _pg_numeric("numeric"), BigQueryField("c", "NUMERIC")
    ) == [None, D("1.000000001")]


def test_a_postgresql_numeric_nan_into_a_required_column_needs_validation_and_is_refused() -> None:
    source = _pg_numeric("numeric(12,2)")
    field = BigQueryField("c", "NUMERIC", "REQUIRED")
    match = rule_for(source, "NUMERIC", required=True)

    assert match.verdict == "needs_validation" and "REQUIRED" in match.message
    assert conform(pa.array(["1.50"], pa.string()), source, field) == [D("1.50")]
    with pytest.raises(CastError):
        conform(pa.array(["NaN"], pa.string()), source, field)


def test_a_postgresql_numeric_array_keeps_refusing_nan_elements() -> None:
    element = _pg_numeric("numeric(12,2)[]").element

    assert element is not None and rule_for(element, "NUMERIC").verdict == "ok"


def test_mysql_and_sqlite_decimals_get_no_nan_warning() -> None:
    from ml_platform.etl.source_types import parse_source_type

    assert rule_for(parse_source_type("decimal(12,2)", "mysql"), "NUMERIC").verdict == "ok"
    assert rule_for(parse_source_type("NUMERIC(12,2)", "sqlite"), "NUMERIC").verdict == "ok"
