"""Verify and Repair (etl/verify.py, verify_sides.py, repair.py) on real PostgreSQL, MariaDB, SQLite and the emulator."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path
from typing import Any

import pytest

from ml_platform.etl.repair import repair_keys, repair_ranges
from ml_platform.etl.runner import RunSpec, run_job
from ml_platform.etl.sources import ConnectionParams, get_columns, get_engine
from ml_platform.etl.verify import VerifyResult, ranges_of, verify
from ml_platform.etl.verify_sides import BigQuerySide, sides_for
from ml_platform.etl.verify_sql import VerifyColumn, py_row_text

pytestmark = pytest.mark.integration

ROWS = 300
DDL = {
    "postgresql": "CREATE TABLE {t} (id bigint PRIMARY KEY, amount numeric(12,2), happened timestamptz, "
                  "doc jsonb, name text, note text, ok boolean, day date, ratio double precision)",
    "mysql": "CREATE TABLE {t} (id bigint PRIMARY KEY, amount decimal(12,2), happened datetime(6), "
             "doc json, name varchar(100), note text, ok boolean, day date, ratio double)",
    "sqlite": "CREATE TABLE {t} (id INTEGER PRIMARY KEY, amount NUMERIC(12,2), happened DATETIME, "
              "doc JSON, name TEXT, note TEXT, ok BOOLEAN, day DATE, ratio REAL)",
}


def _rows(engine: str, first: int, count: int, prefix: str) -> list[str]:
    out = []
    for i in range(first, first + count):
        ts = dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=i * 3607, microseconds=i * 7)
        stamp = ts.strftime("%Y-%m-%d %H:%M:%S.%f") + ("+00" if engine == "postgresql" else "")
        note = "NULL" if i % 4 == 0 else f"'n{i}'"
        ok = ("TRUE" if i % 2 else "FALSE") if engine != "sqlite" else str(i % 2)
        doc = f'{{"k": {i}, "tags": ["a", "b"], "s": "x y"}}'
        # Decimals on both sides of ±10^6 (hashed as integers inside, as text outside), some negative;
        # dates before and after 1970.
        amount = i * 1000003.17 if i % 50 == 7 else (-i * 1.25 if i % 11 == 0 else i * 1.25)
        day = f"1969-12-{1 + i % 28:02d}" if i % 13 == 0 else f"2024-02-{1 + i % 28:02d}"
        out.append(f"({i}, {amount:.2f}, '{stamp}', '{doc}', '{prefix}-{i}', {note}, {ok}, '{day}', {i / 3:.6f})")
    return out


def _params(source: Any) -> ConnectionParams:
    fields = source.as_connection_fields()
    if fields["engine"] == "sqlite":
        fields["options"] = {"read_only": True}
    return ConnectionParams(**fields)


class Shared:
    """Two tagged jobs (eu from table `eu`, us from table `us`) loading one BigQuery table."""

    def __init__(self, source: Any, bq: Any, dataset: str, tmp_path: Path) -> None:
        self.source, self.bq, self.dataset, self.tmp = source, bq, dataset, tmp_path
        for table, prefix, first in (("eu", "eu", 1), ("us", "us", 5001)):
            source.execute(DDL[source.engine].format(t=table))
            rows = _rows(source.engine, first, ROWS, prefix)
            source.execute(f"INSERT INTO {table} VALUES " + ", ".join(rows))
        self.params = _params(source)
        self.engine = get_engine(self.params)
        self.schema = "public" if source.engine == "postgresql" else None

    def spec(self, table: str) -> RunSpec:
        columns = tuple(get_columns(self.params, self.schema, table))
        return RunSpec(self.schema, table, columns, destination_dataset=self.dataset, destination_table="shared",
                       source_tag=table, job_id=f"job_{table}")

    def load(self, table: str) -> None:
        run_job(self.spec(table), bq=self.bq, engine=self.engine, spool_dir=self.tmp / "spool")

    def verify(self, table: str) -> VerifyResult:
        source, dest, compared = sides_for(self.spec(table), bq=self.bq, engine=self.engine)
        try:
            return verify(source, dest, key=compared.key.source if compared.key else None)
        finally:
            source.close()

    def bq_rows(self, tag: str) -> list[dict]:
        return self.bq.query(f"SELECT * FROM `{self.dataset}`.`shared` WHERE _source_tag = '{tag}' ORDER BY id")

    def checksum(self, tag: str) -> tuple[int, int]:
        _, dest, _ = sides_for(self.spec(tag), bq=self.bq, engine=self.engine)
        return dest.total()

    def damage(self) -> tuple[list[int], list[int], list[int]]:
        """Delete 17 eu rows, change 5 values (decimal, timestamp, JSON, string, NULL -> value), add 3 rows."""
        t = f"`{self.dataset}`.`shared`"
        deleted = [3, 4, 5, 40, 41, 77, 90, 120, 121, 122, 150, 199, 200, 230, 260, 299, 300]
        self.bq.query(f"DELETE FROM {t} WHERE _source_tag = 'eu' AND id IN ({', '.join(map(str, deleted))})")
        changes = {
            10: "amount = NUMERIC '999.99'",
            20: "happened = TIMESTAMP_ADD(happened, INTERVAL 1 MICROSECOND)",
            30: """doc = JSON '{"k": 30, "tags": ["a"], "s": "x y"}'""",
            50: "name = 'eu-fifty'",
            60: "note = 'was null'",  # 60 % 4 == 0: NULL in the source
        }
        for key, assignment in changes.items():
            self.bq.query(f"UPDATE {t} SET {assignment} WHERE _source_tag = 'eu' AND id = {key}")
        extra = [1001, 1002, 1003]
        for key in extra:
            self.insert_extra(key)
        return deleted, sorted(changes), extra

    def insert_extra(self, key: int) -> None:
        self.bq.query(f"INSERT INTO `{self.dataset}`.`shared` (id, amount, name, _source_tag) "
                      f"VALUES ({key}, NUMERIC '1', 'x', 'eu')")


@pytest.fixture(params=["postgresql", "mysql", "sqlite"])
def source(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue({"postgresql": "pg_source", "mysql": "mysql_source",
                                    "sqlite": "sqlite_source"}[request.param])


def test_it_finds_exactly_the_damaged_rows_and_repairs_only_them(source, bq, bq_dataset, tmp_path) -> None:
    shared = Shared(source, bq, bq_dataset, tmp_path)
    shared.load("eu")
    shared.load("us")

    fresh = shared.verify("eu")
    assert fresh.in_sync, fresh
    assert (fresh.source_rows, fresh.dest_rows, fresh.rows_fetched) == (ROWS, ROWS, 0)
    assert shared.verify("us").in_sync

    us_before, us_sum_before = shared.bq_rows("us"), shared.checksum("us")
    deleted, changed, extra = shared.damage()
    result = shared.verify("eu")
    assert not result.in_sync
    assert (result.missing, result.changed, result.extra) == (17, 5, 3)
    assert result.missing_keys == deleted
    assert result.changed_keys == changed
    assert result.extra_keys == extra
    assert result.rows_fetched < 2 * ROWS
    assert sum(s.differing for s in result.segments) == 25

    key = "id"
    repaired = repair_ranges(shared.spec("eu"), result.repair_ranges, key=key, bq=bq, engine=shared.engine,
                             spool_dir=tmp_path / "spool")
    assert repaired.rows_loaded == 22  # the 17 deleted and the 5 changed; the 3 extra are only deleted
    again = shared.verify("eu")
    assert again.in_sync, again
    assert shared.bq_rows("us") == us_before
    assert shared.checksum("us") == us_sum_before


# Text and composite keys: rows are bucketed by the hash of the key, and Repair reloads the keys themselves.
KEY_SHAPES = {
    # shape: (the added column's DDL, primary key, its value in row i, row i's key as Verify reports it: the
    # key columns in the table's order)
    "text": ("code varchar(20) NOT NULL", "code", lambda i: f"c{i:05d}", lambda i: (f"c{i:05d}",)),
    "composite": ("region varchar(10) NOT NULL", "region, id", lambda i: f"r{i % 3}", lambda i: (str(i), f"r{i % 3}")),
}


class KeyedShared(Shared):
    """As `Shared`, with the tables keyed by a text column or by (text, integer) instead of `id`."""

    def __init__(self, source: Any, bq: Any, dataset: str, tmp_path: Path, shape: str) -> None:
        self.source, self.bq, self.dataset, self.tmp = source, bq, dataset, tmp_path
        column, pk, self.value_of, self.key_of = KEY_SHAPES[shape]
        self.column = column.split()[0]
        ddl = DDL[source.engine].replace(" PRIMARY KEY", " NOT NULL").replace("INTEGER NOT NULL", "INTEGER")
        for table, prefix, first in (("eu", "eu", 1), ("us", "us", 5001)):
            source.execute(ddl.format(t=table)[:-1] + f", {column}, PRIMARY KEY ({pk}))")
            rows = [f"{r[:-1]}, '{self.value_of(i)}')"
                    for i, r in zip(range(first, first + ROWS), _rows(source.engine, first, ROWS, prefix), strict=True)]
            source.execute(f"INSERT INTO {table} VALUES " + ", ".join(rows))
        self.params = _params(source)
        self.engine = get_engine(self.params)
        self.schema = "public" if source.engine == "postgresql" else None

    def shown(self, ids: list[int]) -> list[Any]:
        keys = sorted(self.key_of(i) for i in ids)
        return [k[0] if len(k) == 1 else list(k) for k in keys]

    def insert_extra(self, key: int) -> None:
        self.bq.query(f"INSERT INTO `{self.dataset}`.`shared` (id, {self.column}, amount, name, _source_tag) "
                      f"VALUES ({key}, '{self.value_of(key)}', NUMERIC '1', 'x', 'eu')")


@pytest.mark.parametrize("shape", sorted(KEY_SHAPES))
def test_it_finds_and_repairs_rows_by_a_text_or_composite_key(source, shape, bq, bq_dataset, tmp_path) -> None:
    shared = KeyedShared(source, bq, bq_dataset, tmp_path, shape)
    shared.load("eu")
    shared.load("us")

    fresh = shared.verify("eu")
    assert fresh.in_sync and fresh.keyed and fresh.hashed, fresh
    assert (fresh.source_rows, fresh.dest_rows, fresh.rows_fetched) == (ROWS, ROWS, 0)
    us_before, us_sum_before = shared.bq_rows("us"), shared.checksum("us")
    deleted, changed, extra = shared.damage()

    result = shared.verify("eu")
    assert (result.missing, result.changed, result.extra) == (17, 5, 3)
    assert result.missing_keys == shared.shown(deleted)
    assert result.changed_keys == shared.shown(changed)
    assert result.extra_keys == shared.shown(extra)
    assert result.rows_fetched < 2 * ROWS
    assert sum(s.differing for s in result.segments) == 25

    repaired = repair_keys(shared.spec("eu"), result.repair_keys, key_columns=result.key_columns, bq=bq,
                           engine=shared.engine, spool_dir=tmp_path / "spool")
    assert repaired.rows_loaded == 22  # the 17 deleted and the 5 changed; the 3 extra are only deleted
    assert shared.verify("eu").in_sync
    assert shared.bq_rows("us") == us_before
    assert shared.checksum("us") == us_sum_before


def test_it_compares_counts_and_one_checksum_without_a_key(sqlite_source, bq, bq_dataset, tmp_path) -> None:
    sqlite_source.execute("CREATE TABLE nokey (name TEXT, amount REAL)",
                          "INSERT INTO nokey VALUES ('a', 1.5), ('b', NULL), ('a', 1.5)")
    params = _params(sqlite_source)
    engine = get_engine(params)
    spec = RunSpec(None, "nokey", tuple(get_columns(params, None, "nokey")), destination_dataset=bq_dataset,
                   destination_table="nokey", job_id="nk")
    run_job(spec, bq=bq, engine=engine, spool_dir=tmp_path)
    source, dest, compared = sides_for(spec, bq=bq, engine=engine)
    assert compared.key is None
    assert verify(source, dest, key=None).in_sync
    bq.query(f"UPDATE `{bq_dataset}`.`nokey` SET amount = 2.5 WHERE name = 'b'")
    result = verify(source, dest, key=None)
    assert not result.in_sync and not result.keyed
    assert (result.source_rows, result.dest_rows) == (3, 3)
    assert "needs a key" in result.message


def test_it_hashes_equal_values_equally_in_python_and_bigquery(bq, bq_dataset) -> None:
    """The SQLite normalisation (Python) agrees with BigQuery's SQL on the awkward values."""
    from ml_platform.etl.types import BigQueryField as F

    fields = [F("id", "INT64"), F("n", "NUMERIC"), F("ts", "TIMESTAMP"), F("j", "JSON"), F("b", "BOOL"),
              F("f", "FLOAT64"), F("d", "DATE"), F("s", "STRING")]
    bq.create_table(bq_dataset, "h", fields)
    bq.query(f"""INSERT INTO `{bq_dataset}`.`h` VALUES (1, NUMERIC '-12.50', TIMESTAMP '1969-12-31 23:59:59.5+00',
                 JSON '{{"a": [1, 2]}}', FALSE, 0.1, DATE '2024-02-29', 'ü|x'), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
                 (3, NUMERIC '-1234567.000000001', NULL, JSON '{{"b": "x y", "a": {{"c": null}}}}', TRUE, NULL,
                  DATE '1969-12-31', '')""")
    kinds = {"id": "int", "n": "numeric", "ts": "timestamp", "j": "json", "b": "bool", "f": "float", "d": "date",
             "s": "text"}
    columns = tuple(VerifyColumn(n, n, k) for n, k in kinds.items())  # type: ignore[arg-type]
    from ml_platform.etl.verify_sides import Compared

    side = BigQuerySide(bq, bq_dataset, "h", Compared(columns, columns[0]), None)
    got = {k: h for _, k, h in side.rows(0, 1, [1, 2, 3])}
    values = [(1, decimal.Decimal("-12.5"), "1969-12-31 23:59:59.5", '{"a":[1,2]}', 0, 0.1, "2024-02-29", "ü|x"),
              (2, None, None, None, None, None, None, None),
              (3, decimal.Decimal("-1234567.000000001"), None, '{"b": "x y", "a": {"c": null}}', 1, None,
               "1969-12-31", "")]
    from ml_platform.etl.verify_sql import py_hash

    assert got == {v[0]: py_hash(py_row_text(columns, v)) for v in values}


def test_it_merges_consecutive_keys_into_ranges() -> None:
    assert ranges_of({5, 6, 7, 100, 9}) == [(5, 8), (9, 10), (100, 101)]
    assert ranges_of(set()) == []
