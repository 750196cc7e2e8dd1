"""The SQLite fast path (etl/fast_sqlite.py): its DECIMAL reading, value by value; a two-halves read stopped early.

The comparisons with the generic path on real tables are in test_fast_extract.py."""

from __future__ import annotations

import random
import struct
import threading
from decimal import Decimal
from typing import Any

import pyarrow as pa

from ml_platform.etl.extract import ExtractQuery, _statement
from ml_platform.etl.fast_sqlite import _decimals, adbc_sqlite_batches
from ml_platform.etl.sources import ConnectionParams, get_columns, get_engine

TRICKY = [0.1, 0.2, 0.3, 0.1 + 0.2, 1e-7, 1.5e-7, 9.99e10, 2**50 / 100, 2**50 / 100 + 0.01, 2**53, 1e15, 1e16,
          123456789012.34, -0.0, 5e-324, 1.7976931348623157e308, -12.5, 4.25, 12.0, 99999999999.99]  # fmt: skip


def _reals() -> list[float]:
    rng = random.Random(7)
    values = list(TRICKY)
    for _ in range(5_000):
        pick = rng.random()
        if pick < 0.4:
            values.append(round(rng.uniform(-1e6, 1e6), rng.randint(0, 6)))
        elif pick < 0.7:
            values.append(rng.randint(-(2**53), 2**53) / 10 ** rng.randint(0, 16))
        else:
            bits = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
            values.append(bits if bits == bits and abs(bits) != float("inf") else 0.5)
    return values


def test_each_real_reads_as_the_decimal_repr_writes() -> None:
    """Alone and in batches: a batch either reads exactly as `Decimal(repr(x))` or is left to the exact reader."""
    reals = _reals()
    read = 0
    for size in (1, 50):
        for start in range(0, len(reals), size):
            part = reals[start : start + size]
            got = _decimals(pa.array([*part, None]))
            if got is not None:
                read += 1
                assert got.to_pylist() == [*(Decimal(repr(x)) for x in part), None]
    assert read > len(reals) // 2  # most batches of written decimals are read here, not sent to the exact reader


def _halves() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "etl-sqlite-half"]


def test_a_two_halves_read_stopped_early_leaves_no_thread_behind(sqlite_source: Any) -> None:
    """A run that stops reading (a failed upload, a cancelled run) ends both halves' threads and connections."""
    sqlite_source.execute(
        "CREATE TABLE x (id INTEGER PRIMARY KEY, n INTEGER)",
        "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 1000) INSERT INTO x SELECT g, g FROM s",
    )
    params = ConnectionParams(engine="sqlite", database=sqlite_source.database, options={"read_only": True})
    engine = get_engine(params)
    query = ExtractQuery(None, "x", tuple(get_columns(params, None, "x")))
    batches = adbc_sqlite_batches(engine, query, _statement(engine, query, fast=False), 10, split_rows=100)
    assert batches is not None
    assert next(batches).num_rows == 5  # half the batch size in each half
    assert len(_halves()) == 2
    batches.close()
    assert _halves() == []


def test_a_table_without_rowid_or_a_view_is_read_with_one_connection(sqlite_source: Any) -> None:
    """No rowid to split on (a column named rowid, _rowid_ and oid, WITHOUT ROWID, a view): every row, once."""
    rows = (
        "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 300) INSERT INTO {} SELECT {} FROM s"
    )
    sqlite_source.execute(
        "CREATE TABLE w (id INTEGER PRIMARY KEY, n TEXT) WITHOUT ROWID",
        rows.format("w", "g, 'n' || g"),
        "CREATE TABLE h (id INTEGER, rowid INTEGER, _rowid_ INTEGER, oid INTEGER)",
        rows.format("h", "g, " + ", ".join(["CASE WHEN g % 10 THEN g * 100 END"] * 3)),  # a split on them loses NULLs
        "CREATE VIEW v AS SELECT id, n FROM w",
    )
    params = ConnectionParams(engine="sqlite", database=sqlite_source.database, options={"read_only": True})
    engine = get_engine(params)
    for table in ("w", "h", "v"):
        query = ExtractQuery(None, table, tuple(get_columns(params, None, table)))
        batches = adbc_sqlite_batches(engine, query, _statement(engine, query, fast=False), 10, split_rows=100)
        assert batches is not None
        got = [b for b in batches]
        assert sorted(r["id"] for b in got for r in b.to_pylist()) == list(range(1, 301))
        assert {b.num_rows for b in got} == {10}  # one reader, at the full batch size
