"""The runner against real sources (PostgreSQL, MariaDB, SQLite) and the BigQuery emulator."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ml_platform.etl.compatibility import schema_for_new_table
from ml_platform.etl.runner import (
    CastError,
    RunError,
    RunProgress,
    RunResult,
    RunSpec,
    SourceError,
    bq_literal,
    run_job,
    staging_prefix,
    watermark_from_json,
    watermark_to_json,
)
from ml_platform.etl.sources import ConnectionParams, get_columns, get_engine
from ml_platform.etl.types import BigQueryField

pytestmark = pytest.mark.integration

EU, US = "eu", "us"


# --------------------------------------------------------------------------- helpers


def params_for(source: Any, **overrides: Any) -> ConnectionParams:
    fields = source.as_connection_fields() | overrides
    if fields["engine"] == "sqlite":
        fields["options"] = {"read_only": True}
    return ConnectionParams(**fields)


class Job:
    """One source table wired to one destination table, run the way the worker runs it."""

    def __init__(self, source: Any, bq: Any, dataset: str, tmp_path: Path, table: str = "t", **spec: Any) -> None:
        self.source, self.bq, self.dataset, self.tmp_path = source, bq, dataset, tmp_path
        self.params = params_for(source)
        self.table = table
        self.schema = "public" if source.engine == "postgresql" else None
        self.columns = tuple(get_columns(self.params, self.schema, table))
        self.spec_args = {"destination_table": "dest", "job_id": "job1", **spec}

    def spec(self, **overrides: Any) -> RunSpec:
        args = {**self.spec_args, **overrides}
        return RunSpec(self.schema, self.table, self.columns, destination_dataset=self.dataset, **args)

    def create_destination(self, tag_column: str | None = None) -> None:
        fields = schema_for_new_table(self.columns, tag_column=tag_column)
        self.bq.create_table(self.dataset, self.spec_args["destination_table"], fields)

    runs = 0

    def run(self, progress: Callable[[RunProgress], None] | None = None, **overrides: Any) -> RunResult:
        # Each call is a new run (its own ledger units and a larger fencing token), as the worker does it.
        Job.runs += 1
        overrides = {"run_id": f"r{Job.runs}", "fence": Job.runs, **overrides}
        return run_job(
            self.spec(**overrides),
            bq=self.bq,
            engine=get_engine(self.params),
            progress=progress,
            spool_dir=self.tmp_path / "spool",
        )

    def rows(self, columns: str = "*", where: str = "TRUE", order: str = "id") -> list[dict[str, Any]]:
        table = self.spec_args["destination_table"]
        return self.bq.query(f"SELECT {columns} FROM `{self.dataset}`.`{table}` WHERE {where} ORDER BY {order}")

    def tables(self) -> list[str]:
        return sorted(t.table_id for t in self.bq.list_tables(self.dataset))


def accounts_table(source: Any, rows: int, *, name: str = "t", start: int = 1, offset: int = 0) -> None:
    """`rows` rows of (id, amount, note, updated) on any engine; `updated` is the cursor."""
    if source.engine == "postgresql":
        source.execute(
            f"CREATE TABLE IF NOT EXISTS {name} (id bigint PRIMARY KEY, amount numeric(12,2), note text, updated bigint)",
            f"INSERT INTO {name} SELECT g, g * 1.25 + {offset}, 'note ' || g, g * 10 "
            f"FROM generate_series({start}, {start + rows - 1}) g",
        )
    else:
        values = ", ".join(f"({i}, {i * 1.25 + offset:.2f}, 'note {i}', {i * 10})" for i in range(start, start + rows))
        source.execute(
            f"CREATE TABLE IF NOT EXISTS {name} (id bigint PRIMARY KEY, amount decimal(12,2), note text, updated bigint)",
            f"INSERT INTO {name} VALUES {values}",
        )


def source_rows(source: Any, name: str = "t") -> list[tuple]:
    return [
        (int(r[0]), decimal.Decimal(str(r[1])).quantize(decimal.Decimal("0.01")), r[2])
        for r in source.query(f"SELECT id, amount, note FROM {name} ORDER BY id")
    ]


def dest_rows(job: Job, where: str = "TRUE") -> list[tuple]:
    return [
        (r["id"], r["amount"].quantize(decimal.Decimal("0.01")), r["note"])
        for r in job.rows("id, amount, note", where=where)
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- strategies


def test_it_replaces_the_destination_with_the_source(pg_source, bq, bq_dataset, tmp_path) -> None:
    accounts_table(pg_source, 500)
    job = Job(pg_source, bq, bq_dataset, tmp_path, load_strategy="replace")
    job.create_destination()

    first = job.run()
    pg_source.execute("DELETE FROM t WHERE id > 400", "UPDATE t SET note = 'changed' WHERE id = 7")
    second = job.run()

    assert (first.rows_loaded, second.rows_loaded) == (500, 400)
    assert dest_rows(job) == source_rows(pg_source)
    assert job.tables() == ["_etl_ledger", "dest"]


def test_it_appends_every_extracted_row(mysql_source, bq, bq_dataset, tmp_path) -> None:
    accounts_table(mysql_source, 120)
    job = Job(mysql_source, bq, bq_dataset, tmp_path, load_strategy="append")
    job.create_destination()

    job.run()
    job.run()

    rows = dest_rows(job)
    assert len(rows) == 240
    assert sorted(set(rows)) == source_rows(mysql_source)


def test_it_loads_only_rows_past_the_watermark(sqlite_source, bq, bq_dataset, tmp_path) -> None:
    accounts_table(sqlite_source, 300)
    job = Job(sqlite_source, bq, bq_dataset, tmp_path, load_strategy="incremental", cursor_column="updated")
    job.create_destination()

    first = job.run()
    accounts_table(sqlite_source, 50, start=301)
    second = job.run(watermark=watermark_from_json(watermark_to_json(first.watermark_after)))

    assert (first.watermark_before, first.watermark_after) == (None, 3000)
    # The default re-read window (1,000 below the watermark, ties included) reads ids 200..350 again;
    # only the 50 new ones are committed.
    assert (second.rows_extracted, second.rows_loaded) == (151, 50)
    assert (second.watermark_before, second.watermark_after) == (3000, 3500)
    assert dest_rows(job) == source_rows(sqlite_source)


def test_it_orders_a_numeric_cursor_as_numbers(pg_source, bq, bq_dataset, tmp_path) -> None:
    # ADBC reads numeric as text, where '9.50' > '10.00': the watermark must still be 10.00.
    accounts_table(pg_source, 40)
    job = Job(pg_source, bq, bq_dataset, tmp_path, load_strategy="incremental", cursor_column="amount",
              checkpoint_rows=7)  # fmt: skip
    job.create_destination()

    result = job.run()

    assert result.checkpoints == 6 and result.watermark_after == decimal.Decimal("50.00")
    assert dest_rows(job) == source_rows(pg_source)


def test_it_never_duplicates_rows_when_given_a_stale_watermark(pg_source, bq, bq_dataset, tmp_path) -> None:
    accounts_table(pg_source, 100)
    job = Job(pg_source, bq, bq_dataset, tmp_path, load_strategy="incremental", cursor_column="updated")
    job.create_destination()
    job.run()
    accounts_table(pg_source, 10, start=101)

    # As if the last commit landed but the worker died before persisting its watermark.
    result = job.run(watermark=0)

    assert (result.rows_extracted, result.rows_loaded, result.watermark_after) == (110, 10, 1100)
    assert dest_rows(job) == source_rows(pg_source)


def test_it_merges_updates_and_new_rows_on_the_key(pg_source, bq, bq_dataset, tmp_path) -> None:
    accounts_table(pg_source, 200)
    job = Job(pg_source, bq, bq_dataset, tmp_path, load_strategy="merge", merge_key=("id",))
    job.create_destination()

    job.run()
    pg_source.execute("UPDATE t SET note = 'updated', amount = 1 WHERE id <= 10")
    accounts_table(pg_source, 20, start=201)
    result = job.run()

    assert result.rows_loaded == 220
    assert dest_rows(job) == source_rows(pg_source)
    assert job.rows("COUNT(*) AS n, COUNT(DISTINCT id) AS k", order="1") == [{"n": 220, "k": 220}]


def test_it_fills_only_the_columns_the_job_feeds(pg_source, bq, bq_dataset, tmp_path) -> None:
    accounts_table(pg_source, 5)
    job = Job(pg_source, bq, bq_dataset, tmp_path, load_strategy="merge", merge_key=("id",))
    fields = list(schema_for_new_table(job.columns)) + [BigQueryField("owner_note", "STRING")]
    bq.create_table(bq_dataset, "dest", fields)
    bq.query(f"INSERT INTO `{bq_dataset}`.`dest` (id, note, owner_note) VALUES (1, 'old', 'kept')")

    job.run()

    assert job.rows("id, note, owner_note", where="id <= 2") == [
        {"id": 1, "note": "note 1", "owner_note": "kept"},
        {"id": 2, "note": "note 2", "owner_note": None},
    ]


# --------------------------------------------------------------------------- types


PG_TYPED = """
CREATE TABLE typed (
  id bigint PRIMARY KEY, i integer, n numeric(12,2), f double precision, s text, b boolean, d date,
  ts timestamp, tstz timestamptz, j json, jb jsonb, by bytea, arr integer[], tm time
)"""
PG_TYPED_ROWS = """
INSERT INTO typed VALUES
 (1, 42, 12345.67, 1.5, 'héllo ''quoted''', true, '2024-02-29', '2024-01-02 03:04:05.123456',
  '2024-01-02 03:04:05.123456+02', '{"a": [1, 2]}', '{"b": {"c": null}}', '\\x00ff', '{1,2,3}', '12:34:56.789'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, -2147483648, -9999999999.99, -1e300, '', false, '0001-01-01', '9999-12-31 23:59:59.999999',
  '1970-01-01 00:00:00+00', '[]', '"text"', '', '{}', '00:00:00')
"""


@pytest.mark.parametrize("method", ["adbc", "sqlalchemy"])
def test_it_carries_every_postgresql_type_family(pg_source, bq, bq_dataset, tmp_path, method) -> None:
    pg_source.execute(PG_TYPED, PG_TYPED_ROWS)
    job = Job(pg_source, bq, bq_dataset, tmp_path, table="typed", extract_method=method)
    job.create_destination()

    job.run()

    types = {f.name: (f.field_type, f.mode) for f in bq.get_table_schema(bq_dataset, "dest").fields}
    assert types["n"] == ("NUMERIC", "NULLABLE") and types["arr"] == ("INT64", "REPEATED")
    assert types["tstz"][0] == "TIMESTAMP" and types["ts"][0] == "DATETIME" and types["jb"][0] == "JSON"
    first, empty, edge = job.rows()
    utc = dt.UTC
    assert first == {
        "id": 1, "i": 42, "n": decimal.Decimal("12345.67"), "f": 1.5, "s": "héllo 'quoted'", "b": True,
        "d": dt.date(2024, 2, 29), "ts": dt.datetime(2024, 1, 2, 3, 4, 5, 123456),
        "tstz": dt.datetime(2024, 1, 2, 1, 4, 5, 123456, tzinfo=utc), "j": {"a": [1, 2]}, "jb": {"b": {"c": None}},
        "by": b"\x00\xff", "arr": [1, 2, 3], "tm": dt.time(12, 34, 56, 789000),
    }  # fmt: skip
    assert empty == {"id": 2, "arr": []} | {k: None for k in first if k not in ("id", "arr")}
    assert edge["i"] == -2147483648 and edge["n"] == decimal.Decimal("-9999999999.99") and edge["f"] == -1e300
    assert (edge["s"], edge["b"], edge["d"], edge["by"], edge["arr"]) == ("", False, dt.date(1, 1, 1), b"", [])
    assert edge["ts"] == dt.datetime(9999, 12, 31, 23, 59, 59, 999999)
    assert edge["tstz"] == dt.datetime(1970, 1, 1, tzinfo=utc)
    assert (edge["j"], edge["jb"], edge["tm"]) == ([], "text", dt.time(0, 0))


def test_it_carries_mariadb_types(mysql_source, bq, bq_dataset, tmp_path) -> None:
    mysql_source.execute(
        "SET time_zone = '+00:00'",
        "CREATE TABLE typed (id bigint PRIMARY KEY, i int, n decimal(12,2), f double, s varchar(40), b tinyint(1), "
        "d date, dt datetime(6), ts timestamp(6) NULL, j json, bl blob, tm time(6), u bigint unsigned)",
        "INSERT INTO typed VALUES (1, 7, 12345.67, 2.5, 'naïve', 1, '2024-02-29', '2024-01-02 03:04:05.123456', "
        "'2024-01-02 03:04:05.5', '{\"k\": [true, null]}', x'00ff', '23:59:59.25', 18446744073709551615), "
        "(2, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    job = Job(mysql_source, bq, bq_dataset, tmp_path, table="typed")
    job.create_destination()

    job.run()

    first, second = job.rows()
    assert first == {
        "id": 1, "i": 7, "n": decimal.Decimal("12345.67"), "f": 2.5, "s": "naïve", "b": True,
        "d": dt.date(2024, 2, 29), "dt": dt.datetime(2024, 1, 2, 3, 4, 5, 123456),
        "ts": dt.datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=dt.UTC), "j": {"k": [True, None]},
        "bl": b"\x00\xff", "tm": dt.time(23, 59, 59, 250000), "u": decimal.Decimal(18446744073709551615),
    }  # fmt: skip
    assert second["b"] is False and second["n"] is None and second["j"] is None


def test_it_carries_sqlite_types(sqlite_source, bq, bq_dataset, tmp_path) -> None:
    sqlite_source.execute(
        "CREATE TABLE typed (id INTEGER PRIMARY KEY, i INTEGER, n DECIMAL(12,2), f REAL, s TEXT, b BOOLEAN, "
        "d DATE, dt DATETIME, j JSON, bl BLOB)",
        "INSERT INTO typed VALUES (1, 9, 12345.67, 0.25, 'x', 1, '2024-02-29', '2024-01-02 03:04:05.5', "
        "'{\"a\": 1}', x'00ff'), (2, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL)",
    )
    job = Job(sqlite_source, bq, bq_dataset, tmp_path, table="typed")
    job.create_destination()

    job.run()

    first, second = job.rows()
    assert first == {
        "id": 1, "i": 9, "n": decimal.Decimal("12345.67"), "f": 0.25, "s": "x", "b": True,
        "d": dt.date(2024, 2, 29), "dt": dt.datetime(2024, 1, 2, 3, 4, 5, 500000), "j": {"a": 1}, "bl": b"\x00\xff",
    }  # fmt: skip
    assert second == {"id": 2, "b": False} | {k: None for k in first if k not in ("id", "b")}


# --------------------------------------------------------------------------- failures and resumption


class Crash(Exception):
    pass


def test_it_resumes_at_the_last_checkpoint_after_a_crash(pg_source, bq, bq_dataset, tmp_path) -> None:
    accounts_table(pg_source, 1000)
    job = Job(pg_source, bq, bq_dataset, tmp_path, load_strategy="incremental", cursor_column="updated",
              checkpoint_rows=300)  # fmt: skip
    job.create_destination()
    persisted: list[Any] = []

    def crash_after_first_checkpoint(p: RunProgress) -> None:
        if p.phase == "checkpoint":
            persisted.append(p.watermark)
            raise Crash

    with pytest.raises(Crash):
        job.run(progress=crash_after_first_checkpoint)
    assert persisted == [3000]
    assert len(dest_rows(job)) == 300
    assert job.tables() == ["_etl_ledger", "dest"]

    checkpoints: list[Any] = []
    resumed = job.run(progress=lambda p: p.phase == "checkpoint" and checkpoints.append(p.watermark))

    assert resumed.watermark_derived and resumed.watermark_before == 3000
    assert (resumed.rows_loaded, resumed.checkpoints, resumed.watermark_after) == (700, 3, 10000)
    # The resumed run starts 1,000 below the watermark (the re-read window), so its units shift.
    assert checkpoints == [4990, 7990, 10000]
    assert dest_rows(job) == source_rows(pg_source)
    assert job.rows("COUNT(*) AS n, COUNT(DISTINCT id) AS k, SUM(amount) AS s", order="1") == [
        {"n": 1000, "k": 1000, "s": sum(r[1] for r in source_rows(pg_source))}
    ]


def test_it_keeps_committed_checkpoints_when_the_source_fails_midway(pg_source, bq, bq_dataset, tmp_path) -> None:
    accounts_table(pg_source, 600, name="base")
    # A view that fails on row 450 (division by zero), like a source dying part-way through.
    pg_source.execute("CREATE VIEW t AS SELECT id, amount, note, updated, 1 / (id - 450) AS boom FROM base")
    # A view has no primary key: the job names its key, so the re-read window de-duplicates on it.
    job = Job(pg_source, bq, bq_dataset, tmp_path, load_strategy="incremental", cursor_column="updated",
              checkpoint_rows=200, key_columns=("id",))  # fmt: skip
    job.create_destination()

    with pytest.raises(SourceError) as failure:
        job.run()

    assert not failure.value.transient and "division by zero" in str(failure.value)
    assert len(dest_rows(job)) == 400  # checkpoints 1 and 2; the third never committed
    pg_source.execute("CREATE OR REPLACE VIEW t AS SELECT id, amount, note, updated, 1::bigint AS boom FROM base")

    job.run()

    assert dest_rows(job) == source_rows(pg_source, "base")
    assert job.tables() == ["_etl_ledger", "dest"]


def test_it_rejects_an_uncastable_value_and_leaves_the_table_unchanged(pg_source, bq, bq_dataset, tmp_path) -> None:
    pg_source.execute(
        "CREATE TABLE t (id bigint PRIMARY KEY, qty text)",
        "INSERT INTO t SELECT g, g::text FROM generate_series(1, 300) g",
        "UPDATE t SET qty = 'twelve' WHERE id = 142",
    )
    job = Job(pg_source, bq, bq_dataset, tmp_path, load_strategy="replace", source_tag=EU)
    bq.create_table(bq_dataset, "dest", [BigQueryField("id", "INT64"), BigQueryField("qty", "INT64")])
    bq.query(f"INSERT INTO `{bq_dataset}`.`dest` (id, qty) VALUES (1, 100), (2, 200)")

    with pytest.raises(CastError) as failure:
        job.run()

    error = failure.value
    assert (error.column, error.value, error.target, error.transient) == ("qty", "twelve", "INT64", False)
    assert error.key == "id=142" and "'twelve'" in str(error) and "id=142" in str(error)
    assert job.rows() == [{"id": 1, "qty": 100}, {"id": 2, "qty": 200}]
    assert [f.name for f in bq.get_table_schema(bq_dataset, "dest").fields] == ["id", "qty"]  # no tag column yet
    assert job.tables() == ["_etl_ledger", "dest"]


def test_it_rejects_null_array_elements(pg_source, bq, bq_dataset, tmp_path) -> None:
    pg_source.execute(
        "CREATE TABLE t (id int PRIMARY KEY, tags int[])", "INSERT INTO t VALUES (1, '{1}'), (2, '{1,NULL}')"
    )
    job = Job(pg_source, bq, bq_dataset, tmp_path)
    job.create_destination()

    with pytest.raises(CastError, match="NULL elements") as failure:
        job.run()

    assert failure.value.key == "id=2"
    assert job.rows() == []


def test_it_classifies_an_unreachable_source_as_transient_without_the_password(bq, bq_dataset, tmp_path) -> None:
    params = ConnectionParams(engine="postgresql", host="127.0.0.1", port=free_port(), database="x",
                              username="u", password="s3cret-Pa55")  # fmt: skip
    column = get_columns_stub()
    spec = RunSpec(None, "t", (column,), destination_dataset=bq_dataset, destination_table="dest")

    with pytest.raises(RunError) as failure:
        run_job(spec, bq=bq, engine=get_engine(params), progress=None, spool_dir=tmp_path)

    assert failure.value.transient
    assert "s3cret-Pa55" not in str(failure.value)
    # Not even the destination it would have created; only the (empty) commit ledger.
    assert [t.table_id for t in bq.list_tables(bq_dataset)] == ["_etl_ledger"]


def test_it_classifies_a_rejected_login_as_permanent(mysql_source, bq, bq_dataset, tmp_path) -> None:
    accounts_table(mysql_source, 1)
    job = Job(mysql_source, bq, bq_dataset, tmp_path)
    job.params = params_for(mysql_source, username="nobody_here", password="wr0ng-Secret")

    with pytest.raises(SourceError) as failure:
        job.run()

    assert not failure.value.transient
    assert "wr0ng-Secret" not in str(failure.value)


def get_columns_stub():
    from ml_platform.etl.types import CanonicalType, Family, SourceColumn

    return SourceColumn("id", "bigint", CanonicalType(Family.INTEGER), primary_key=True)


# --------------------------------------------------------------------------- several sources, one table


def test_it_keeps_tagged_sources_apart(pg_source, bq, bq_dataset, tmp_path) -> None:
    accounts_table(pg_source, 100, name="t")
    accounts_table(pg_source, 80, name="t_us", offset=1000)  # same ids, other amounts
    eu = Job(pg_source, bq, bq_dataset, tmp_path, load_strategy="replace", source_tag=EU, job_id="eu")
    us = Job(pg_source, bq, bq_dataset, tmp_path, table="t_us", load_strategy="replace", source_tag=US, job_id="us")
    eu.create_destination(tag_column="_source_tag")

    eu.run()
    us.run()
    pg_source.execute("DELETE FROM t WHERE id > 90")
    eu.run()

    assert dest_rows(eu, where="_source_tag = 'eu'") == source_rows(pg_source, "t")
    assert dest_rows(eu, where="_source_tag = 'us'") == source_rows(pg_source, "t_us")

    pg_source.execute("UPDATE t_us SET note = 'us merge' WHERE id = 5")
    us.run(load_strategy="merge", merge_key=("id",))
    assert eu.rows("note", where="id = 5", order="_source_tag") == [{"note": "note 5"}, {"note": "us merge"}]

    accounts_table(pg_source, 10, name="t", start=1001)
    accounts_table(pg_source, 5, name="t_us", start=2001)
    eu_inc = eu.run(load_strategy="incremental", cursor_column="updated")
    us_inc = us.run(load_strategy="incremental", cursor_column="updated")

    assert (eu_inc.watermark_before, eu_inc.rows_loaded) == (900, 10)
    assert (us_inc.watermark_before, us_inc.rows_loaded) == (800, 5)
    assert dest_rows(eu, where="_source_tag = 'eu'") == source_rows(pg_source, "t")
    assert dest_rows(eu, where="_source_tag = 'us'") == source_rows(pg_source, "t_us")


def test_it_adds_the_tag_column_when_the_destination_lacks_it(sqlite_source, bq, bq_dataset, tmp_path) -> None:
    accounts_table(sqlite_source, 3)
    job = Job(sqlite_source, bq, bq_dataset, tmp_path, source_tag="emea")
    job.create_destination()

    result = job.run()

    assert result.columns_added == ("_source_tag",)
    tag = bq.get_table_schema(bq_dataset, "dest").field_by_name("_source_tag")
    assert tag is not None and (tag.field_type, tag.mode) == ("STRING", "NULLABLE")
    assert [r["_source_tag"] for r in job.rows()] == ["emea"] * 3


def test_it_empties_only_its_own_rows_when_a_tagged_source_is_empty(sqlite_source, bq, bq_dataset, tmp_path) -> None:
    accounts_table(sqlite_source, 4)
    job = Job(sqlite_source, bq, bq_dataset, tmp_path, source_tag=EU)
    job.create_destination(tag_column="_source_tag")
    bq.query(f"INSERT INTO `{bq_dataset}`.`dest` (id, note, _source_tag) VALUES (1, 'us row', 'us')")
    job.run()
    sqlite_source.execute("DELETE FROM t")

    result = job.run()

    assert (result.rows_extracted, result.checkpoints) == (0, 1)
    assert job.rows("id, note, _source_tag") == [{"id": 1, "note": "us row", "_source_tag": "us"}]


def test_it_adds_new_source_columns_to_the_destination(pg_source, bq, bq_dataset, tmp_path) -> None:
    accounts_table(pg_source, 3)
    job = Job(pg_source, bq, bq_dataset, tmp_path, load_strategy="append")
    job.create_destination()
    job.run()
    pg_source.execute("ALTER TABLE t ADD COLUMN region text DEFAULT 'north'")
    job.columns = tuple(get_columns(job.params, "public", "t"))

    result = job.run()

    assert result.columns_added == ("region",)
    assert [(r["id"], r["region"]) for r in job.rows("id, region", order="id, region")] == [
        (1, None),
        (1, "north"),
        (2, None),
        (2, "north"),
        (3, None),
        (3, "north"),
    ]


def test_it_resumes_after_the_destination_maximum_without_a_watermark(pg_source, bq, bq_dataset, tmp_path) -> None:
    accounts_table(pg_source, 320)
    job = Job(pg_source, bq, bq_dataset, tmp_path, load_strategy="append")
    job.create_destination()
    job.run()  # an earlier migration that stopped at id 320
    accounts_table(pg_source, 180, start=321)

    result = job.run(load_strategy="incremental", cursor_column="updated", watermark=None)

    assert (result.watermark_derived, result.watermark_before, result.rows_loaded) == (True, 3200, 180)
    assert dest_rows(job) == source_rows(pg_source)


def test_it_drops_staging_tables_a_crashed_run_left_behind(sqlite_source, bq, bq_dataset, tmp_path) -> None:
    accounts_table(sqlite_source, 3)
    job = Job(sqlite_source, bq, bq_dataset, tmp_path, job_id=42)
    job.create_destination()
    leftover = f"{staging_prefix(42)}deadbeef"
    other_job = f"{staging_prefix(43)}cafe"
    for name in (leftover, other_job):
        bq.create_table(bq_dataset, name, [BigQueryField("id", "INT64")])

    result = job.run()

    assert result.staging_dropped == (leftover,)
    assert job.tables() == sorted([other_job, "dest", "_etl_ledger"])


def test_it_reports_progress_with_an_estimate(pg_source, bq, bq_dataset, tmp_path) -> None:
    accounts_table(pg_source, 2000)
    pg_source.execute("ANALYZE t")
    job = Job(pg_source, bq, bq_dataset, tmp_path, chunk_rows=500)
    job.create_destination()
    reports: list[RunProgress] = []

    job.run(progress=reports.append)

    phases = [r.phase for r in reports]
    assert phases[0] == "starting" and phases[-2:] == ["checkpoint", "done"]
    assert {"extracting", "loading", "committing"} <= set(phases)
    assert reports[-1].rows_extracted == reports[-1].rows_loaded == 2000
    assert reports[0].rows_estimate == 2000


def test_it_round_trips_watermarks_through_json() -> None:
    values = [None, 5, decimal.Decimal("1.50"), "b", dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 3, tzinfo=dt.UTC),
              dt.datetime(2024, 1, 2, 3), 2.5]  # fmt: skip
    for value in values:
        encoded = watermark_to_json(value)
        assert json.loads(json.dumps(encoded)) == encoded
        assert watermark_from_json(encoded) == value


def test_it_renders_typed_literals_for_commit_scripts() -> None:
    assert bq_literal("it's \\ a\nb", "STRING") == "'it\\'s \\\\ a\\nb'"
    assert bq_literal(dt.datetime(2024, 1, 2, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))), "TIMESTAMP") == (
        "TIMESTAMP '2024-01-02 03:00:00.000000+00:00'"
    )
    assert bq_literal(decimal.Decimal("1.50"), "NUMERIC") == "NUMERIC '1.50'"
    assert bq_literal(None, "INT64") == "NULL"
    with pytest.raises(RunError):
        bq_literal("tab\x00", "STRING")
