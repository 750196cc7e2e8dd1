"""validation.validate_columns against real PostgreSQL, MariaDB and SQLite: no mocks, no Django.

Every test builds its own table in a throw-away database (the harness plugin's `pg_source`,
`mysql_source` and `sqlite_source` fixtures). The agreement tests run the product's own
cast step (`ml_platform.etl.conform`) on each value and require the SQL verdict to match
it value by value, so "validated" keeps meaning "the load will accept it".
"""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest
from sqlalchemy.dialects import postgresql

from ml_platform.etl.compatibility import ValidationResult, ValidationSpec
from ml_platform.etl.conform import ColumnSource, Conformer
from ml_platform.etl.sources import ConnectionParams, SourceError, TableNotFoundError, validate_columns, validate_sql
from ml_platform.etl.types import BigQueryField, CanonicalType, Family
from tests.plugins.harness import SourceDatabase

pytestmark = pytest.mark.integration

ENGINES = ["postgresql", "mysql", "sqlite"]
_FIXTURES = {"postgresql": "pg_source", "mysql": "mysql_source", "sqlite": "sqlite_source"}
FLOAT_TYPE = {"postgresql": "double precision", "mysql": "DOUBLE", "sqlite": "REAL"}


@pytest.fixture(params=ENGINES)
def source(request: pytest.FixtureRequest) -> SourceDatabase:
    return request.getfixturevalue(_FIXTURES[request.param])


def params_of(src: SourceDatabase, **overrides: object) -> ConnectionParams:
    return ConnectionParams(**{**src.as_connection_fields(), **overrides})


def q(src: SourceDatabase, name: str) -> str:
    """Quote an identifier for test set-up SQL."""
    if src.engine == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def lit(src: SourceDatabase, value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if src.engine == "mysql":
        text = text.replace("\\", "\\\\")
    return "'" + text.replace("'", "''") + "'"


def make_table(src: SourceDatabase, name: str, columns: dict[str, str], rows: list[tuple]) -> None:
    ddl = ", ".join(f"{q(src, c)} {t}" for c, t in columns.items())
    statements = [f"CREATE TABLE {q(src, name)} ({ddl})"]
    if rows:
        values = ", ".join("(" + ", ".join(lit(src, v) for v in row) + ")" for row in rows)
        statements.append(f"INSERT INTO {q(src, name)} VALUES {values}")
    src.execute(*statements)


def analyze(src: SourceDatabase, name: str) -> None:
    src.execute(f"ANALYZE TABLE {q(src, name)}" if src.engine == "mysql" else f"ANALYZE {q(src, name)}")


def spec(column: str, target: str, *, nulls: bool = False, **kw: object) -> ValidationSpec:
    return ValidationSpec(column=column, target_type=target, check_nulls=nulls, **kw)


def one_text_column(src: SourceDatabase, values: list[str | None], name: str = "t") -> None:
    make_table(src, name, {"v": "TEXT"}, [(v,) for v in values])


# --------------------------------------------------------------------------- the basics


def test_it_reports_text_that_is_not_an_integer(source: SourceDatabase) -> None:
    one_text_column(source, ["12", "7", "abc"])

    result = validate_columns(params_of(source), None, "t", [spec("v", "INT64")])

    assert result == {
        "v": ValidationResult(column="v", checked_rows=3, failures=1, null_failures=0, examples=("abc",), sampled=False)
    }


def test_it_counts_nulls_only_for_a_required_destination(source: SourceDatabase) -> None:
    one_text_column(source, ["1", None, "2", None, "x"])
    make_table(source, "u", {"a": "TEXT", "b": "TEXT"}, [("1", None), (None, None)])

    required = validate_columns(params_of(source), None, "t", [spec("v", "INT64", nulls=True)])["v"]
    nullable = validate_columns(params_of(source), None, "t", [spec("v", "INT64", nulls=False)])["v"]
    nulls_only = validate_columns(
        params_of(source), None, "u", [spec("a", "STRING", nulls=True, check_cast=False), spec("b", "STRING")]
    )

    assert (required.failures, required.null_failures, required.examples) == (1, 2, ("x",))
    assert (nullable.failures, nullable.null_failures) == (1, 0)
    assert nulls_only["a"] == ValidationResult("a", checked_rows=2, failures=0, null_failures=1)
    assert nulls_only["b"].failures == 0 and nulls_only["b"].null_failures == 0


def test_it_rejects_fractional_floats_for_int64_but_accepts_whole_ones(source: SourceDatabase) -> None:
    # Decision: 2.0 converts (the cast step turns it into 2); 1.5 would lose its fraction.
    make_table(source, "f", {"x": FLOAT_TYPE[source.engine]}, [(1.5,), (2.0,), (-3.0,), (None,), (1e19,), (-0.25,)])

    result = validate_columns(params_of(source), None, "f", [spec("x", "INT64", nulls=True)])["x"]

    assert (result.checked_rows, result.failures, result.null_failures) == (6, 3, 1)
    assert "1.5" in result.examples and "-0.25" in result.examples
    assert len(result.examples) == 3 and not any(e in ("2", "2.0", "-3") for e in result.examples)


def test_it_checks_text_against_date_timestamp_time_and_bool(source: SourceDatabase) -> None:
    rows = [
        ("2024-02-29", "2024-01-31 10:11:12", "true", "10:11"),
        ("2023-02-29", "2024-01-31T10:11:12.123456Z", "No", "23:59:59.5"),
        (" 2024-01-31 ", "2024-01-31 10:11:12+02:00", " 1 ", "24:00"),
        ("2024-1-5", "2024-01-31 25:00:00", "maybe", "1:2"),
        ("31/01/2024", "yesterday", "2", None),
        (None, "2024-01-31", None, "07"),
    ]
    make_table(source, "mixed", {"d": "TEXT", "ts": "TEXT", "b": "TEXT", "tm": "TEXT"}, rows)

    result = validate_columns(
        params_of(source),
        None,
        "mixed",
        [spec("d", "DATE"), spec("ts", "TIMESTAMP"), spec("b", "BOOL"), spec("tm", "TIME")],
    )

    assert (result["d"].failures, result["d"].examples) == (3, ("2023-02-29", "2024-1-5", "31/01/2024"))
    assert (result["ts"].failures, result["ts"].examples) == (2, ("2024-01-31 25:00:00", "yesterday"))
    assert (result["b"].failures, result["b"].examples) == (2, ("2", "maybe"))
    assert (result["tm"].failures, result["tm"].examples) == (2, ("1:2", "24:00"))
    assert all(r.checked_rows == 6 and not r.sampled for r in result.values())


def test_it_returns_at_most_five_distinct_examples(source: SourceDatabase) -> None:
    one_text_column(source, ["bad"] * 4 + [f"x{i}" for i in range(8)] + ["1"])

    result = validate_columns(params_of(source), None, "t", [spec("v", "INT64")])["v"]

    assert result.failures == 12
    assert result.examples == ("bad", "x0", "x1", "x2", "x3")


def test_it_checks_decimal_digits_against_numeric(source: SourceDatabase) -> None:
    # Decision: more than 29 whole digits fail; places beyond 9 fail only when they would lose digits.
    decimal_type = {"postgresql": "numeric", "mysql": "DECIMAL(45,12)", "sqlite": "TEXT"}[source.engine]
    values = [
        "1.123456789",
        "1.123456789000",  # trailing zeros: nothing is lost
        "1.123456789100",  # a tenth place: would be lost
        "99999999999999999999999999999",  # 29 whole digits
        "100000000000000000000000000000",  # 30 whole digits
        "-0.5",
    ]
    make_table(source, "n", {"x": decimal_type}, [(v,) for v in values])

    numeric = validate_columns(params_of(source), None, "n", [spec("x", "NUMERIC")])["x"]
    bignumeric = validate_columns(params_of(source), None, "n", [spec("x", "BIGNUMERIC")])["x"]
    narrow = validate_columns(params_of(source), None, "n", [spec("x", "NUMERIC", precision=4, scale=2)])["x"]

    assert numeric.failures == 2
    assert sorted(Decimal(e) for e in numeric.examples) == [Decimal("1.1234567891"), Decimal(10**29)]
    assert bignumeric.failures == 0
    assert narrow.failures == 5  # only -0.5 fits NUMERIC(4, 2)


def test_it_checks_decimals_are_whole_and_in_range_for_int64(source: SourceDatabase) -> None:
    decimal_type = {"postgresql": "numeric(30,2)", "mysql": "DECIMAL(30,2)", "sqlite": "NUMERIC"}[source.engine]
    make_table(source, "d", {"x": decimal_type}, [("42",), ("2.00",), ("1.50",), ("9223372036854775808",), (None,)])

    result = validate_columns(params_of(source), None, "d", [spec("x", "INT64", nulls=True)])["x"]

    assert (result.failures, result.null_failures) == (2, 1)
    # SQLite's NUMERIC affinity stores 2**63 as a REAL, shown as 9.22337203685478e+18.
    low, high = sorted(Decimal(e) for e in result.examples)
    assert low == Decimal("1.5") and abs(high - 2**63) < 10**5


def test_it_checks_integer_and_float_sources_against_bool(source: SourceDatabase) -> None:
    make_table(
        source, "nb", {"i": "INTEGER", "f": FLOAT_TYPE[source.engine]}, [(0, 0.0), (1, 1.0), (2, 0.5), (-1, None)]
    )

    result = validate_columns(params_of(source), None, "nb", [spec("i", "BOOL"), spec("f", "BOOL")])

    assert (result["i"].failures, result["i"].examples) == (2, ("-1", "2"))
    assert (result["f"].failures, result["f"].examples) == (1, ("0.5",))


def test_it_checks_text_against_json(source: SourceDatabase) -> None:
    one_text_column(source, ['{"a": [1, 2]}', "[1, 2", "null", "abc", ' "quoted" ', "-1.5e3", None])

    result = validate_columns(params_of(source), None, "t", [spec("v", "JSON")])["v"]

    assert (result.failures, result.examples) == (2, ("[1, 2", "abc"))


def test_it_checks_timestamps_have_no_time_of_day_for_date(source: SourceDatabase) -> None:
    ts_type = {"postgresql": "timestamp", "mysql": "DATETIME(6)", "sqlite": "DATETIME"}[source.engine]
    rows = [("2024-01-01 00:00:00",), ("2024-01-01 10:30:00",), ("2024-03-05 00:00:00.5",), (None,)]
    make_table(source, "ts", {"at": ts_type}, rows)

    result = validate_columns(params_of(source), None, "ts", [spec("at", "DATE")])["at"]

    assert result.failures == 2
    assert [e[:19] for e in result.examples] == ["2024-01-01 10:30:00", "2024-03-05 00:00:00"]


def test_it_checks_bytes_are_utf8_for_string(source: SourceDatabase) -> None:
    blob_type = {"postgresql": "bytea", "mysql": "BLOB", "sqlite": "BLOB"}[source.engine]
    literal = {
        "postgresql": lambda h: f"'\\x{h}'::bytea",
        "mysql": lambda h: f"x'{h}'",
        "sqlite": lambda h: f"x'{h}'",
    }[source.engine]
    source.execute(
        f"CREATE TABLE b (x {blob_type})",
        "INSERT INTO b VALUES " + ", ".join(f"({literal(h)})" for h in ("616263", "ff41", "c3")),
    )

    result = validate_columns(params_of(source), None, "b", [spec("x", "STRING")])["x"]

    assert (result.checked_rows, result.failures) == (3, 2)


# --------------------------------------------------------------------------- agreement with the cast step

CORPUS: dict[str, list[str]] = {
    "INT64": [
        "12", " 12 ", "\t5\n", "-12", "+12", "007", "-0", "1.0", "1e3", "", "abc", "12abc",
        "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
        "00000000000000000000009", "99999999999999999999",
    ],
    "FLOAT64": [
        "1.5", "+1.5", ".5", "5.", "1e5", "1E+5", "nan", "NaN", "-inf", "Infinity", "1e400", "", ".", "-",
        "e5", "1e", "1,5", " 2.5 ", "abc", "0x10", "1.5.5",
    ],
    "NUMERIC": [
        "1.5", " 1.5 ", "+.5", "5.", "1e3", "1e-10", "1.0e-9", "1E+28", "1E+29", "1.1234567890", "1.1234567891",
        "12345678901234567890123456789", "123456789012345678901234567890", "-12345678901234567890123456789.123456789",
        "nan", "Infinity", "", "1.5e", "0.0000000001", "0", "000000000000000000000000000000001", "0.000e5",
        "12e-2", "1.23e1",
    ],
    "BIGNUMERIC": ["1.5", "1e-38", "1e-39", "1" + "0" * 38, "1" + "0" * 37, "nan", "-0.5e2"],
    "BOOL": ["true", " TRUE ", "Yes", "y", "On", "off", "N", "f", "0", "1", "2", "", "tru", "maybe"],
    "DATE": [
        "2024-01-31", " 2024-01-31 ", "2024-02-29", "2023-02-29", "2024-04-31", "2024-13-01", "2024-00-10",
        "2024-1-5", "20240105", "2024-01-31 00:00:00", "0000-01-01", "0001-01-01", "9999-12-31", "+2024-01-01",
        "1900-02-29", "2000-02-29", "2024-01-00",
    ],
    "DATETIME": [
        "2024-01-31", "2024-01-31 10:11:12", "2024-01-31T10:11:12", "2024-01-31 10:11", "2024-01-31 10",
        "2024-01-31T10:11:12.5", "2024-01-31 10:11:12.123456", "2024-01-31 10:11:12.1234567",
        "2024-01-31 10:11:12Z", "2024-01-31 10:11:12+02:00", "2024-01-31 10:11:12+0230", "2024-01-31 10:11:12-05",
        "2024-01-31 24:00:00", "2024-01-31 10:11:60", "2024-02-30 10:11:12", "2024-01-31t10:11:12",
        "2024-01-31 10:11:12z", "2024-01-31Z", "2024-01-31 10:11:12.", "2024-01-31 1:2:3", "2024-01-31  10:11:12",
        "2024-01-31 10:11:12 UTC", "2024-01-31 10:11:12+24:00", "2024-01-31 10:11:12+02:60", "2024-01-31T1011",
        " 2024-01-31 10:11:12 ", "2024-01-31 10:11:12+2",
    ],
    "TIME": [
        "10:11:12", "10:11", "10", "10:11:12.123456", "10:11:12.1234567", "24:00:00", "1:2:3", "10:11:12Z",
        "T10:11", "00:00", " 10:11 ", "23:59:59.999999", "1011", "10:11:12.", "10:60", "10:11:12+02:00",
    ],
}  # fmt: skip
CORPUS["TIMESTAMP"] = CORPUS["DATETIME"]
# Deliberately stricter than the Arrow cast: BigQuery's DATE starts at year 1, so the load would fail anyway.
STRICTER = {("DATE", "0000-01-01")}


def cast_step_rejects(value: str, target: str) -> bool:
    conformer = Conformer([BigQueryField("c", target)], {"c": ColumnSource(source="c")})
    try:
        conformer.conform(pa.record_batch([pa.array([value], pa.string())], names=["c"]))
    except Exception:  # noqa: BLE001 - any refusal is a refusal
        return True
    return False


@pytest.mark.parametrize("target", sorted(CORPUS))
def test_it_agrees_with_the_cast_step_on_tricky_text(source: SourceDatabase, target: str) -> None:
    values = CORPUS[target]
    names = [f"v{i}" for i in range(len(values))]
    make_table(source, "corpus", dict.fromkeys(names, "TEXT"), [tuple(values)])

    result = validate_columns(params_of(source), None, "corpus", [spec(n, target) for n in names])

    disagreements = {
        value: {"sql": bool(result[name].failures), "cast step": cast_step_rejects(value, target)}
        for name, value in zip(names, values, strict=True)
        if bool(result[name].failures) != (cast_step_rejects(value, target) or (target, value) in STRICTER)
    }
    assert disagreements == {}
    assert all(r.checked_rows == 1 for r in result.values())


# --------------------------------------------------------------------------- names, dialect specifics


def test_it_quotes_hostile_table_and_column_names(source: SourceDatabase) -> None:
    table = "we\"ird; DROP TABLE x; -- 't"
    col = "co\"l 'a; b`"
    make_table(source, table, {col: "TEXT", "select": "TEXT"}, [("1", "x"), ("two", None)])

    result = validate_columns(
        params_of(source), None, table, [spec(col, "INT64", nulls=True), spec("select", "STRING", nulls=True)]
    )

    assert result[col] == ValidationResult(col, checked_rows=2, failures=1, null_failures=0, examples=("two",))
    assert result["select"].null_failures == 1


def test_it_validates_a_table_in_a_hostile_postgresql_schema(pg_source: SourceDatabase) -> None:
    schema = 'sch"em a;'
    pg_source.execute(f"CREATE SCHEMA {q(pg_source, schema)}")
    pg_source.execute(
        f"CREATE TABLE {q(pg_source, schema)}.t (v text)", f"INSERT INTO {q(pg_source, schema)}.t VALUES ('x')"
    )

    result = validate_columns(params_of(pg_source), schema, "t", [spec("v", "INT64")])["v"]

    assert (result.checked_rows, result.failures) == (1, 1)


def test_it_checks_postgresql_array_elements_for_a_repeated_destination(pg_source: SourceDatabase) -> None:
    pg_source.execute(
        "CREATE TABLE arr (tags text[], nums double precision[])",
        "INSERT INTO arr VALUES (ARRAY['1', 'x', NULL], ARRAY[1.0, 2.5]), (ARRAY['2'], NULL), (NULL, ARRAY[3.0])",
    )

    result = validate_columns(
        params_of(pg_source),
        None,
        "arr",
        [spec("tags", "INT64", repeated=True), spec("nums", "INT64", repeated=True)],
    )

    # One array holds both bad elements: the load refuses that one row, so it counts once.
    assert (result["tags"].failures, result["tags"].examples) == (1, ("NULL", "x"))
    assert (result["nums"].failures, result["nums"].examples) == (1, ("2.5",))


def test_it_checks_postgresql_float_specials(pg_source: SourceDatabase) -> None:
    pg_source.execute(
        "CREATE TABLE sp (x double precision, n numeric)",
        "INSERT INTO sp VALUES ('NaN', 'NaN'), ('Infinity', 1.5), ('-Infinity', 2), (4, 1e30)",
    )

    result = validate_columns(params_of(pg_source), None, "sp", [spec("x", "INT64"), spec("n", "NUMERIC")])
    as_json = validate_columns(params_of(pg_source), None, "sp", [spec("x", "JSON"), spec("n", "INT64")])

    assert (result["x"].failures, result["x"].examples) == (3, ("-Infinity", "Infinity", "NaN"))
    assert (result["n"].failures, result["n"].examples) == (2, ("1000000000000000000000000000000", "NaN"))
    assert as_json["x"].failures == 3
    assert (as_json["n"].failures, as_json["n"].examples) == (3, ("1.5", "1000000000000000000000000000000", "NaN"))


def test_it_checks_postgresql_infinite_dates_and_zoned_timestamps(pg_source: SourceDatabase) -> None:
    pg_source.execute(
        "SET TIME ZONE 'UTC'",
        "CREATE TABLE dts (d date, at timestamptz, t time)",
        "INSERT INTO dts VALUES ('infinity', '2024-01-01 00:00:00+00', '24:00:00'), "
        "('2024-01-01', '2024-01-01 00:00:00+02', '23:59:59'), ('-infinity', 'infinity', NULL)",
    )

    result = validate_columns(
        params_of(pg_source), None, "dts", [spec("d", "DATETIME"), spec("at", "DATE"), spec("t", "TIME")]
    )

    assert (result["d"].failures, result["d"].examples) == (2, ("-infinity", "infinity"))
    assert result["at"].failures == 2  # +02 is 22:00 UTC the day before; infinity is no date
    assert (result["t"].failures, result["t"].examples) == (1, ("24:00:00",))


def test_it_checks_mysql_unsigned_bigints_booleans_and_durations(mysql_source: SourceDatabase) -> None:
    mysql_source.execute(
        "CREATE TABLE m (u BIGINT UNSIGNED, flag TINYINT(1), d TIME, z DATE)",
        "INSERT INTO m VALUES (9223372036854775807, 1, '10:00:00', '2024-01-01'), "
        "(9223372036854775808, 2, '-01:00:00', '2024-02-29'), (18446744073709551615, 0, '30:00:00', NULL)",
    )

    result = validate_columns(
        params_of(mysql_source),
        None,
        "m",
        [spec("u", "INT64"), spec("flag", "BOOL"), spec("d", "TIME"), spec("z", "DATE", nulls=True)],
    )

    assert (result["u"].failures, result["u"].examples) == (2, ("18446744073709551615", "9223372036854775808"))
    assert (result["flag"].failures, result["flag"].examples) == (1, ("2",))
    assert (result["d"].failures, result["d"].examples) == (2, ("-01:00:00", "30:00:00"))
    assert (result["z"].failures, result["z"].null_failures) == (0, 1)


def test_it_checks_sqlite_values_by_their_storage_class(sqlite_source: SourceDatabase) -> None:
    # SQLite keeps whatever was stored: an INTEGER column can hold text, a TEXT column numbers.
    sqlite_source.execute(
        "CREATE TABLE s (n INTEGER, x)",
        "INSERT INTO s VALUES (1, 2.0), ('abc', 2.5), (3, 'seven'), (4, x'00'), (5, 9223372036854775807)",
    )

    result = validate_columns(params_of(sqlite_source), None, "s", [spec("n", "INT64"), spec("x", "INT64")])

    assert (result["n"].failures, result["n"].examples) == (1, ("abc",))
    assert (result["x"].failures, result["x"].examples) == (3, ("2.5", "seven", "x'00'"))


# --------------------------------------------------------------------------- sampling


def test_it_samples_tables_estimated_above_the_threshold(source: SourceDatabase) -> None:
    one_text_column(source, [str(i) for i in range(9)] + ["bad"])
    analyze(source, "t")

    everything = validate_columns(params_of(source), None, "t", [spec("v", "INT64")])["v"]
    sample = validate_columns(params_of(source), None, "t", [spec("v", "INT64")], sample_above=3)["v"]

    assert (everything.checked_rows, everything.sampled, everything.failures) == (10, False, 1)
    assert (sample.checked_rows, sample.sampled) == (3, True)
    assert sample.failures <= 1


def test_it_caps_the_scan_when_the_table_has_no_estimate(pg_source: SourceDatabase) -> None:
    # Never analysed: reltuples is -1, so the scan is capped and reports whether it hit the cap.
    one_text_column(pg_source, ["1", "2", "3", "4"])

    capped = validate_columns(params_of(pg_source), None, "t", [spec("v", "INT64")], sample_above=2)["v"]
    whole = validate_columns(params_of(pg_source), None, "t", [spec("v", "INT64")], sample_above=10)["v"]

    assert (capped.checked_rows, capped.sampled) == (2, True)
    assert (whole.checked_rows, whole.sampled) == (4, False)


def test_it_block_samples_a_large_postgresql_table(pg_source: SourceDatabase) -> None:
    pg_source.execute(
        "CREATE TABLE big AS SELECT CASE WHEN g % 10 = 0 THEN 'bad' || g ELSE g::text END AS v "
        "FROM generate_series(1, 200000) g",
        "ANALYZE big",
    )

    result = validate_columns(params_of(pg_source), None, "big", [spec("v", "INT64")], sample_above=10_000)["v"]

    assert result.sampled
    assert 0 < result.checked_rows <= 10_000
    # About a tenth of the sampled rows are bad: block sampling keeps the mix.
    assert 0.05 * result.checked_rows < result.failures < 0.15 * result.checked_rows
    assert len(result.examples) == 5 and all(e.startswith("bad") for e in result.examples)


# --------------------------------------------------------------------------- errors and edges


def test_it_raises_not_found_for_a_missing_table_or_column(source: SourceDatabase) -> None:
    one_text_column(source, ["1"])

    with pytest.raises(TableNotFoundError):
        validate_columns(params_of(source), None, "nope", [spec("v", "INT64")])
    with pytest.raises(SourceError, match="Column not found: 'w'"):
        validate_columns(params_of(source), None, "t", [spec("w", "INT64")])


def test_it_raises_a_source_error_without_the_password(mysql_source: SourceDatabase) -> None:
    secret = "hunter2-Sekr1t"
    bad = params_of(mysql_source, username="no_such_user", password=secret)

    with pytest.raises(SourceError) as caught:
        validate_columns(bad, None, "t", [spec("v", "INT64")])

    assert secret not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_it_leaves_out_specs_it_cannot_check(source: SourceDatabase) -> None:
    one_text_column(source, ["POINT(1 2)", None])

    geography = validate_columns(params_of(source), None, "t", [spec("v", "GEOGRAPHY", nulls=True)])
    interval = validate_columns(params_of(source), None, "t", [spec("v", "INTERVAL")])

    assert geography == {} and interval == {}
    assert validate_columns(params_of(source), None, "t", []) == {}


def test_it_rejects_a_nonpositive_sample_threshold_and_repeated_columns(source: SourceDatabase) -> None:
    with pytest.raises(ValueError):
        validate_columns(params_of(source), None, "t", [spec("v", "INT64")], sample_above=0)
    with pytest.raises(ValueError):
        validate_columns(params_of(source), None, "t", [spec("v", "INT64"), spec("v", "BOOL")])


def test_it_uses_pg_input_is_valid_from_postgresql_16() -> None:
    # The server here is PostgreSQL 15, so this path is checked by compiling it.
    from sqlalchemy import column

    text_type = CanonicalType(Family.STRING)
    date = validate_sql.Target("DATE")
    old = validate_sql._Postgres((15, 20)).value_ok(column("v"), text_type, date)
    new = validate_sql._Postgres((16, 1)).value_ok(column("v"), text_type, date)
    json_new = validate_sql._Postgres((16, 1)).value_ok(column("v"), text_type, validate_sql.Target("JSON"))

    dialect = postgresql.dialect()
    assert "pg_input_is_valid" not in str(old.compile(dialect=dialect))
    assert "pg_input_is_valid" in str(new.compile(dialect=dialect))
    assert "pg_input_is_valid" in str(json_new.compile(dialect=dialect))
