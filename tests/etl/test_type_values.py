"""Type and value defects, each reproduced against real sources, the report, the validation and the emulator.

Every test loads through the runner (or its extraction) and compares what landed with
what the report said: ok = unchanged, warning = exactly what the message says,
needs_validation = the validation counts exactly the values the load refuses.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pyarrow.parquet as pq
import pytest

from ml_platform.etl.compatibility import CompatibilityOptions, check_compatibility, narrowing_checks
from ml_platform.etl.runner import CastError, RunSpec, extract_to_parquet
from ml_platform.etl.sources import get_columns, get_engine, preview_rows, validate_columns
from ml_platform.etl.types import BigQueryField
from tests.etl.test_runner import Job, params_for

pytestmark = pytest.mark.integration

D = decimal.Decimal


def existing(job: Job, *fields: BigQueryField) -> Any:
    """Create the destination with `fields` and return the report for the job's source columns."""
    job.bq.create_table(job.dataset, "dest", list(fields))
    schema = job.bq.get_table_schema(job.dataset, "dest")
    return check_compatibility(job.columns, schema), schema


def validation(job: Job, schema: Any) -> dict:
    specs = narrowing_checks(job.columns, schema, CompatibilityOptions())
    return validate_columns(job.params, job.schema, job.table, specs)


# --------------------------------------------------------------------------- MySQL / MariaDB


def test_it_loads_mysql_bit_values_as_their_numbers_not_their_ascii_text(mysql_source, bq, bq_dataset, tmp_path):
    mysql_source.execute(
        "CREATE TABLE t (id int PRIMARY KEY, flags bit(16))",
        "INSERT INTO t VALUES (1, b'0000000000001100'), (2, b'0011000100110010'), (3, NULL)",
    )
    job = Job(mysql_source, bq, bq_dataset, tmp_path)
    job.create_destination()

    job.run()

    assert [r["flags"] for r in job.rows()] == [12, 0x3132, None]  # b'12' is 12594, not 12
    preview = preview_rows(job.params, None, "t", columns=["flags"])
    assert [row[0] for row in preview.rows[:2]] == [12, 0x3132]


def test_it_stores_mysql_time_in_a_string_column_as_mysql_writes_it(mysql_source, bq, bq_dataset, tmp_path):
    mysql_source.execute(
        "CREATE TABLE t (id int PRIMARY KEY, took time(6))",
        "INSERT INTO t VALUES (1, '01:00:00'), (2, '-01:30:00'), (3, '100:00:00.25'), (4, '00:00:01.5')",
    )
    job = Job(mysql_source, bq, bq_dataset, tmp_path)
    report, _ = existing(job, BigQueryField("id", "INT64"), BigQueryField("took", "STRING"))
    assert report.column("took").verdict == "warning"
    assert "'01:00:00'" in report.column("took").message

    job.run(load_strategy="append")

    landed = [r["took"] for r in job.rows()]
    assert landed == ["01:00:00", "-01:30:00", "100:00:00.250000", "00:00:01.500000"]
    preview = preview_rows(job.params, None, "t", columns=["id", "took"])
    shown = {row[0]: row[1] for row in preview.rows}
    assert shown[2] == "-01:30:00" and shown[1] == dt.time(1)


def test_it_asks_to_validate_mysql_time_into_time_and_counts_the_durations(mysql_source, bq, bq_dataset, tmp_path):
    mysql_source.execute(
        "CREATE TABLE t (id int PRIMARY KEY, took time)",
        "INSERT INTO t VALUES (1, '01:00:00'), (2, '25:00:00'), (3, '-00:00:01')",
    )
    job = Job(mysql_source, bq, bq_dataset, tmp_path)
    report, schema = existing(job, BigQueryField("id", "INT64"), BigQueryField("took", "TIME"))
    assert report.column("took").verdict == "needs_validation"

    assert validation(job, schema)["took"].failures == 2
    with pytest.raises(CastError) as failed:
        job.run(load_strategy="append")
    assert "25:00:00" in str(failed.value) or "-00:00:01" in str(failed.value)


def test_it_validates_a_tinyint_1_boolean_that_holds_2(mysql_source, bq, bq_dataset, tmp_path):
    mysql_source.execute(
        "CREATE TABLE t (id int PRIMARY KEY, active tinyint(1))",
        "INSERT INTO t VALUES (1, 1), (2, 0), (3, 2), (4, NULL)",
    )
    job = Job(mysql_source, bq, bq_dataset, tmp_path)
    report, schema = existing(job, BigQueryField("id", "INT64"), BigQueryField("active", "BOOL"))

    assert report.column("active").verdict == "needs_validation"
    result = validation(job, schema)["active"]
    assert (result.failures, result.examples) == (1, ("2",))
    with pytest.raises(CastError) as failed:
        job.run(load_strategy="append")
    assert "2" in str(failed.value) and "id=3" in str(failed.value)


def test_it_loads_a_tinyint_1_holding_2_into_int64_unchanged(mysql_source, bq, bq_dataset, tmp_path):
    mysql_source.execute(
        "CREATE TABLE t (id int PRIMARY KEY, active tinyint(1))", "INSERT INTO t VALUES (1, 1), (2, 2)"
    )
    job = Job(mysql_source, bq, bq_dataset, tmp_path)
    report, _ = existing(job, BigQueryField("id", "INT64"), BigQueryField("active", "INT64"))
    assert report.column("active").verdict == "ok"

    job.run(load_strategy="append")

    assert [r["active"] for r in job.rows()] == [1, 2]


# --------------------------------------------------------------------------- SQLite


def test_it_reads_sqlite_datetime_epoch_integers_as_unix_seconds(sqlite_source, bq, bq_dataset, tmp_path):
    sqlite_source.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, at DATETIME, day DATE)",
        "INSERT INTO t VALUES (1, 1714550400, 1714521600), (2, '2024-05-01 08:00:00', '2024-05-01'), (3, NULL, NULL)",
    )
    job = Job(sqlite_source, bq, bq_dataset, tmp_path)
    job.create_destination()

    job.run()

    rows = job.rows()
    assert [r["at"] for r in rows] == [dt.datetime(2024, 5, 1, 8), dt.datetime(2024, 5, 1, 8), None]
    assert [r["day"] for r in rows] == [dt.date(2024, 5, 1), dt.date(2024, 5, 1), None]


def test_it_reads_sqlite_numeric_reals_as_the_decimals_written(sqlite_source, tmp_path):
    sqlite_source.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, price NUMERIC, amount DECIMAL(10,2))",
        "INSERT INTO t VALUES (1, 19.99, 0.1), (2, 7, 3), (3, NULL, NULL)",
    )
    params = params_for(sqlite_source)
    columns = tuple(get_columns(params, None, "t"))
    spec = RunSpec(None, "t", columns, destination_dataset="ds", destination_table="dest")

    spool = extract_to_parquet(spec, engine=get_engine(params), directory=tmp_path / "out")

    table = pq.read_table(spool.paths[0])
    assert table.schema.field("price").type.scale == 38  # BIGNUMERIC: unconstrained NUMERIC
    assert table.column("price").to_pylist() == [D("19.99"), D(7), None]
    assert table.column("amount").to_pylist() == [D("0.1"), D(3), None]
    preview = preview_rows(params, None, "t", columns=["price"])
    assert preview.rows[0][0] == D("19.99")


# --------------------------------------------------------------------------- PostgreSQL


def test_it_rounds_decimal_13_12_into_numeric_as_the_warning_says(pg_source, bq, bq_dataset, tmp_path):
    pg_source.execute(
        "CREATE TABLE t (id int PRIMARY KEY, rate numeric(13,12))",
        "INSERT INTO t VALUES (1, 1.234567890500), (2, -1.234567890500), (3, 0.123456789499), (4, 1)",
    )
    job = Job(pg_source, bq, bq_dataset, tmp_path)
    report, _ = existing(job, BigQueryField("id", "INT64"), BigQueryField("rate", "NUMERIC"))
    assert report.column("rate").verdict == "warning"
    assert "rounded half away from zero from 12 to 9 decimal places" in report.column("rate").message

    job.run(load_strategy="append")

    assert [r["rate"] for r in job.rows()] == [D("1.234567891"), D("-1.234567891"), D("0.123456789"), D(1)]


def test_it_stores_integers_beyond_2_53_as_the_nearest_float64(pg_source, bq, bq_dataset, tmp_path):
    big = 2**53 + 1
    pg_source.execute("CREATE TABLE t (id int PRIMARY KEY, n bigint)", f"INSERT INTO t VALUES (1, {big}), (2, -{big})")
    job = Job(pg_source, bq, bq_dataset, tmp_path)
    report, _ = existing(job, BigQueryField("id", "INT64"), BigQueryField("n", "FLOAT64"))
    assert report.column("n").verdict == "warning"
    assert "9,007,199,254,740,993 → 9,007,199,254,740,992" in report.column("n").message

    job.run(load_strategy="append")

    assert [r["n"] for r in job.rows()] == [float(2**53), -float(2**53)]


def test_it_stores_timetz_as_its_utc_time_of_day(pg_source, bq, bq_dataset, tmp_path):
    pg_source.execute(
        "CREATE TABLE t (id int PRIMARY KEY, opens timetz)",
        "INSERT INTO t VALUES (1, '12:00:00+02'), (2, '00:30:00+01'), (3, '23:15:00.5-05:30'), (4, NULL)",
    )
    job = Job(pg_source, bq, bq_dataset, tmp_path)
    report, _ = existing(job, BigQueryField("id", "INT64"), BigQueryField("opens", "TIME"))
    assert report.column("opens").verdict == "warning"
    assert "12:00:00+02 → 10:00:00" in report.column("opens").message

    job.run(load_strategy="append")

    assert [r["opens"] for r in job.rows()] == [dt.time(10), dt.time(23, 30), dt.time(4, 45, 0, 500000), None]


def test_it_loads_an_interval_source_into_a_new_string_column_as_the_preview_shows_it(
    pg_source, bq, bq_dataset, tmp_path
):
    pg_source.execute(
        "CREATE TABLE t (id int PRIMARY KEY, span interval, addr inet)",
        "INSERT INTO t VALUES (1, '1 day 2 hours', '10.0.0.1')",
    )
    job = Job(pg_source, bq, bq_dataset, tmp_path)
    job.create_destination()

    job.run()

    loaded = job.rows()[0]
    assert (loaded["span"], loaded["addr"]) == ("1 day 02:00:00", "10.0.0.1/32")
    preview = preview_rows(job.params, None, "t", columns=["span", "addr"])
    assert preview.json_rows() == [[loaded["span"], loaded["addr"]]]  # the wizard shows what is loaded


def test_it_refuses_interval_destination_columns_in_the_report(pg_source, bq, bq_dataset, tmp_path):
    pg_source.execute("CREATE TABLE t (id int PRIMARY KEY, span interval)")
    job = Job(pg_source, bq, bq_dataset, tmp_path)
    schema_fields = [BigQueryField("id", "INT64"), BigQueryField("span", "INTERVAL")]
    from ml_platform.etl.types import TableSchema

    report = check_compatibility(job.columns, TableSchema(bq_dataset, "dest", tuple(schema_fields)))

    assert report.column("span").verdict == "error"
    assert "STRING" in report.column("span").fix


def test_it_counts_unconstrained_numerics_beyond_bignumeric_and_rounds_long_fractions(pg_source, tmp_path):
    long_fraction = "0." + "0" * 37 + "15"  # 39 decimals: rounds to 0.(37 zeros)2
    pg_source.execute(
        "CREATE TABLE t (id int PRIMARY KEY, v numeric)",
        f"INSERT INTO t VALUES (1, {long_fraction}), (2, 1{'0' * 38}), (3, 12.5)",
    )
    params = params_for(pg_source)
    columns = tuple(get_columns(params, "public", "t"))
    from ml_platform.etl.compatibility import schema_for_new_table
    from ml_platform.etl.types import TableSchema

    destination = TableSchema("ds", "dest", schema_for_new_table(columns))
    report = check_compatibility(columns, destination)
    assert report.column("v").verdict == "needs_validation"
    specs = narrowing_checks(columns, destination)
    result = validate_columns(params, "public", "t", specs)["v"]
    assert result.failures == 1  # only the 39-digit integer; the long fraction is rounded, as said

    spec = RunSpec(
        "public", "t", columns, destination_dataset="ds", destination_table="dest", extract_method="sqlalchemy"
    )
    with pytest.raises(CastError) as failed:
        extract_to_parquet(spec, engine=get_engine(params), directory=tmp_path / "a")
    assert "id=2" in str(failed.value)
    pg_source.execute("DELETE FROM t WHERE id = 2")
    spool = extract_to_parquet(spec, engine=get_engine(params), directory=tmp_path / "b")
    landed = pq.read_table(spool.paths[0]).column("v").to_pylist()
    assert sorted(landed) == [D("0." + "0" * 37 + "2"), D("12.5")]


def test_it_resumes_a_sqlite_cursor_that_mixes_epoch_integers_and_text(sqlite_source, bq, bq_dataset, tmp_path):
    sqlite_source.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, at DATETIME NOT NULL)",
        "INSERT INTO t VALUES (1, 1714550400), (2, '2024-05-01 09:00:00')",
    )
    job = Job(sqlite_source, bq, bq_dataset, tmp_path, load_strategy="incremental", cursor_column="at")
    job.create_destination()
    job.run()
    sqlite_source.execute("INSERT INTO t VALUES (3, 1714561200), (4, '2024-05-01 07:00:00')")  # 11:00 and 07:00

    job.run()

    assert [(r["id"], r["at"]) for r in job.rows()] == [
        (1, dt.datetime(2024, 5, 1, 8)),
        (2, dt.datetime(2024, 5, 1, 9)),
        (3, dt.datetime(2024, 5, 1, 11)),
    ]  # 07:00 is before the watermark: incremental never loads it (the cursor warning says so)


def test_it_loads_whole_numerics_with_a_zero_fraction_into_int64(pg_source, bq, bq_dataset, tmp_path):
    pg_source.execute(
        "CREATE TABLE t (id int PRIMARY KEY, n numeric(38,9))", "INSERT INTO t VALUES (1, 0), (2, -12), (3, 4.5)"
    )
    job = Job(pg_source, bq, bq_dataset, tmp_path)
    report, schema = existing(job, BigQueryField("id", "INT64"), BigQueryField("n", "INT64"))
    assert report.column("n").verdict == "needs_validation"
    assert validation(job, schema)["n"].failures == 1
    pg_source.execute("DELETE FROM t WHERE id = 3")

    job.run(load_strategy="append")

    assert [r["n"] for r in job.rows()] == [0, -12]


@pytest.mark.parametrize("method", ["adbc", "sqlalchemy"])
def test_it_loads_postgresql_infinity_and_bc_values_as_the_ends_of_bigquery_ranges(
    pg_source, bq, bq_dataset, tmp_path, method
):
    pg_source.execute(
        "CREATE TABLE t (id int PRIMARY KEY, d date, ts timestamp, tz timestamptz)",
        "INSERT INTO t VALUES (1, '2024-01-01', '2024-01-01 10:00', '2024-01-01 00:00+00'), "
        "(2, 'infinity', 'infinity', 'infinity'), (3, '-infinity', '-infinity', '-infinity'), "
        "(4, '0044-03-15 BC', '0044-03-15 12:00 BC', '0001-01-01 01:00+05:30'), "
        "(5, '10000-01-01', '10000-01-01 00:00', '10000-01-01 00:00+00')",
    )
    job = Job(pg_source, bq, bq_dataset, tmp_path, extract_method=method)
    report, _ = existing(
        job,
        BigQueryField("id", "INT64"),
        BigQueryField("d", "DATE"),
        BigQueryField("ts", "DATETIME"),
        BigQueryField("tz", "TIMESTAMP"),
    )
    for name in ("d", "ts", "tz"):  # the report says what happens to them
        assert report.column(name).verdict == "warning"
        assert "'infinity' and values after 9999-12-31 as 9999-12-31" in report.column(name).message

    job.run(load_strategy="append")

    late, early = dt.datetime(9999, 12, 31, 23, 59, 59, 999999), dt.datetime(1, 1, 1)
    assert [(r["d"], r["ts"], r["tz"]) for r in job.rows()] == [
        (dt.date(2024, 1, 1), dt.datetime(2024, 1, 1, 10), dt.datetime(2024, 1, 1, tzinfo=dt.UTC)),
        (dt.date(9999, 12, 31), late, late.replace(tzinfo=dt.UTC)),
        (dt.date(1, 1, 1), early, early.replace(tzinfo=dt.UTC)),
        (dt.date(1, 1, 1), early, early.replace(tzinfo=dt.UTC)),
        (dt.date(9999, 12, 31), late, late.replace(tzinfo=dt.UTC)),
    ]


@pytest.mark.parametrize("method", ["adbc", "sqlalchemy"])
def test_it_stores_postgresql_infinity_and_bc_values_in_string_columns_as_postgresql_writes_them(
    pg_source, bq, bq_dataset, tmp_path, method
):
    pg_source.execute(
        "CREATE TABLE t (id int PRIMARY KEY, d date, tz timestamptz)",
        "INSERT INTO t VALUES (1, '2024-01-01', '2024-01-01 00:00+00'), (2, 'infinity', '-infinity'), "
        "(3, '0044-03-15 BC', '0001-01-01 01:00+05:30')",
    )
    job = Job(pg_source, bq, bq_dataset, tmp_path, extract_method=method)
    existing(job, BigQueryField("id", "INT64"), BigQueryField("d", "STRING"), BigQueryField("tz", "STRING"))

    job.run(load_strategy="append")

    assert [(r["d"], r["tz"]) for r in job.rows()] == [
        ("2024-01-01", "2024-01-01T00:00:00+00:00"),
        ("infinity", "-infinity"),
        ("0044-03-15 BC", "0001-12-31 19:30:00+00 BC"),
    ]
    preview = preview_rows(job.params, "public", "t", columns=["d"])
    assert [row[0] for row in preview.rows][1:] == ["infinity", "0044-03-15 BC"]  # the preview reads them alike


def test_a_postgresql_numeric_nan_loads_as_null_unless_the_column_is_required(pg_source, tmp_path):
    pg_source.execute(
        "CREATE TABLE t (id int PRIMARY KEY, v numeric(12,2) NOT NULL, w numeric NOT NULL)",
        "INSERT INTO t VALUES (1, 'NaN', 'NaN'), (2, 12.50, 1e30), (3, 1.25, 0.5)",
    )
    params = params_for(pg_source)
    columns = tuple(get_columns(params, "public", "t"))
    from ml_platform.etl.types import TableSchema

    def dest(mode: str) -> TableSchema:
        fields = (
            BigQueryField("id", "INT64"),
            BigQueryField("v", "NUMERIC", mode),
            BigQueryField("w", "NUMERIC", mode),
        )
        return TableSchema("ds", "dest", fields)

    # NULLABLE: the warning says a NaN loads as NULL; the scan of unconstrained `w` counts only 1e30, not NaN.
    report = check_compatibility(columns, dest("NULLABLE"))
    assert report.column("v").verdict == "warning" and "a NaN loads as NULL" in report.column("v").message
    assert report.column("w").verdict == "needs_validation" and "a NaN loads as NULL" in report.column("w").message
    counted = validate_columns(params, "public", "t", narrowing_checks(columns, dest("NULLABLE")))
    assert "v" not in counted and counted["w"].failures == 1
    # REQUIRED: NULL cannot land, so both need validation and the scan counts the NaN.
    required = check_compatibility(columns, dest("REQUIRED"))
    assert required.column("v").verdict == "needs_validation" and "REQUIRED" in required.column("v").message
    counted = validate_columns(params, "public", "t", narrowing_checks(columns, dest("REQUIRED")))
    assert (counted["v"].failures, counted["w"].failures) == (1, 2)

    pg_source.execute("DELETE FROM t WHERE id = 2")
    spec = RunSpec(
        "public", "t", columns, destination_dataset="ds", destination_table="dest", extract_method="sqlalchemy"
    )
    fields = dest("NULLABLE").fields
    spool = extract_to_parquet(spec, engine=get_engine(params), directory=tmp_path / "a", fields=fields)
    landed = pq.read_table(spool.paths[0]).to_pylist()
    assert sorted((r["id"], r["v"], r["w"]) for r in landed) == [(1, None, None), (3, D("1.25"), D("0.5"))]
