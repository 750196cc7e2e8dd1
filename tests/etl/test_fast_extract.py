"""The MySQL/MariaDB and SQLite fast extraction paths read exactly what the generic path reads.

Every test extracts the same real table through both paths (`method="fast"` and
`method="sqlalchemy"`) with the same chunk size, so the batches line up, and compares
the values batch by batch and what the runner would load after conforming them to the
table a new job creates.
"""

from __future__ import annotations

import os
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from ml_platform.etl.compatibility import schema_for_new_table
from ml_platform.etl.conform import ColumnSource, Conformer
from ml_platform.etl.errors import RunError
from ml_platform.etl.extract import ExtractQuery, extract_batches
from ml_platform.etl.fast_extract import (
    _connect_args,
    fast_batches,
    mysql_fast_columns,
    mysql_url,
    pymysql_read_columns,
    remember_connect_args,
)
from ml_platform.etl.fast_sqlite import adbc_sqlite_batches
from ml_platform.etl.sources import ConnectionParams, get_columns, get_engine
from ml_platform.etl.types import CanonicalType, Family, SourceColumn

pytestmark = pytest.mark.integration

MARIADB_TABLE = """
CREATE TABLE t (
  id int PRIMARY KEY, ti tinyint, flag tinyint(1), si smallint unsigned, mi mediumint, bi bigint,
  iu int unsigned, d decimal(28,10), money decimal(12,2), db double, c char(3), vc varchar(20),
  tx text, e enum('a','b'), st set('x','y'), j json, bn binary(4), vb varbinary(10), bl blob,
  dt date, dtt datetime(6), dt0 datetime, ts timestamp(6) NULL
)"""
MARIADB_ROWS = [
    "(1, -128, 1, 65535, -8388608, -9223372036854775808, 4294967295, '123456789012345678.1234567891',"
    " '-9999999999.99', -1.7976931348623157e308, 'abc', 'héllo ✓ 𝄞', 'a\\nb\\tc', 'b', 'x,y', '{\"a\": [1, 2]}',"
    " X'00FF0102', X'DEAD', X'BEEF', '1000-01-01', '9999-12-31 23:59:59.999999', '2024-02-29 12:00:00',"
    " '1970-01-01 00:00:01')",
    "(2, 127, 0, 0, 8388607, 9223372036854775807, 0, '-0.0000000001', '0.00', 5e-324, '', '', '', 'a', '',"
    " '[]', X'00000000', X'', X'', '2024-02-29', '2000-01-01 00:00:00.000001', '2000-01-01 00:00:00',"
    " '2038-01-19 03:14:07.999999')",
    "(3, NULL, 2, NULL, NULL, NULL, NULL, NULL, NULL, 0.1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    " NULL, NULL, NULL, NULL)",
    "(4, 0, NULL, 1, 0, 0, 1, '0', '12.30', NULL, 'z', 'x', 'y', NULL, 'y', 'null', NULL, NULL, NULL,"
    " '2020-01-01', '2020-01-01 10:00:00.5', '2020-01-01 10:00:00', '2020-01-01 10:00:00.5')",
    "(5, 1, 1, 2, 3, 4, 5, '1', '1', 1.5, 'q', 'w', 'e', 'a', 'x', '{}', X'01020304', X'FF', X'00',"
    " '2020-01-02', '2020-01-02 00:00:00', '2020-01-02 00:00:00', '2020-01-02 00:00:00')",
]
# What Arrow cannot parse as the generic path reads it: the PyMySQL reader reads these value by value through
# the generic path's own reading (etl/values.py); connectorx leaves the read to the PyMySQL reader.
MARIADB_READ_COLUMNS = (
    "f float, tm time(6), yr year, bt bit(8), b12 bit(12), b1 bit(1), bu bigint unsigned, d65 decimal(65,30)"
)
MARIADB_READ_ROWS = [
    "(1, 0.1, '-838:59:59', 1901, b'10101010', b'000000001100', b'1', 18446744073709551615,"
    " '12345678901234567890123456789012345.123456789012345678901234567891')",
    "(2, NULL, '10:00:00.5', 2155, b'00000000', b'111111111111', b'0', 1, '-0.000000000000000000000000000001')",
    "(3, -1.5, '100:00:00', NULL, NULL, NULL, NULL, NULL, NULL)",
    "(4, 3.25, '-00:00:01.250000', 2000, b'1', b'1', b'1', 9223372036854775808, '1')",
]


def _params(source: Any) -> ConnectionParams:
    fields = source.as_connection_fields()
    if fields["engine"] == "sqlite":
        fields["options"] = {"read_only": True}
    return ConnectionParams(**fields)


def _extract(engine: Any, query: ExtractQuery, method: str, chunk_rows: int) -> list[pa.RecordBatch]:
    return list(extract_batches(engine, query, chunk_rows=chunk_rows, method=method))  # type: ignore[arg-type]


def _conformed(query: ExtractQuery, batches: list[pa.RecordBatch], dialect: str) -> tuple[str, Any]:
    """What the runner would load into a new table: the conformed table, or the error it would fail with."""
    fields = schema_for_new_table(query.columns)
    sources = {
        f.name: ColumnSource(source=c.name, validate_json=c.type.family is not Family.JSON or dialect == "sqlite")
        for c, f in zip(query.columns, fields, strict=True)
    }
    conformer = Conformer(fields, sources, key_columns=("id",))
    try:
        return "ok", pa.Table.from_batches([conformer.conform(b) for b in batches], schema=conformer.schema)
    except RunError as exc:
        return "error", str(exc)


def assert_same_as_generic(engine: Any, query: ExtractQuery, dialect: str, chunk_rows: int = 2) -> int:
    fast = _extract(engine, query, "fast", chunk_rows)
    generic = _extract(engine, query, "sqlalchemy", chunk_rows)
    assert [b.num_rows for b in fast] == [b.num_rows for b in generic]
    for got, want in zip(fast, generic, strict=True):
        assert got.schema.names == want.schema.names
        assert got.to_pylist() == want.to_pylist()
    assert _conformed(query, fast, dialect) == _conformed(query, generic, dialect)
    return sum(b.num_rows for b in fast)


# --------------------------------------------------------------------------- MariaDB


@pytest.fixture(params=["pymysql", "connectorx"])
def mysql_reader(request, monkeypatch) -> str:
    """Both MySQL fast readers: connectorx in its own process (default) and PyMySQL's text rows parsed by Arrow."""
    monkeypatch.setenv("ETL_MYSQL_CONNECTORX", "1" if request.param == "connectorx" else "0")
    return request.param


@pytest.fixture
def mariadb_types(mysql_source: Any, mysql_reader: str) -> tuple[Any, tuple[Any, ...]]:
    mysql_source.execute(
        "SET SESSION sql_mode = 'STRICT_TRANS_TABLES'",  # per connection: the zero-date rows below need it off
        MARIADB_TABLE,
        f"INSERT INTO t VALUES {', '.join(MARIADB_ROWS)}",
    )
    params = _params(mysql_source)
    return get_engine(params), tuple(get_columns(params, None, "t"))


def test_it_reads_every_mariadb_type_family_as_the_generic_path_does(mariadb_types) -> None:
    engine, columns = mariadb_types
    assert mysql_fast_columns(columns) == []
    query = ExtractQuery(None, "t", columns, order_by=("id",))
    assert fast_batches(engine, query, None, 2) is not None
    assert assert_same_as_generic(engine, query, "mysql") == len(MARIADB_ROWS)


def test_it_reads_mariadb_keyset_ranges_as_the_generic_path_does(mariadb_types) -> None:
    engine, columns = mariadb_types
    for bounds in ({"after": 1, "before": 5}, {"after": 2, "through": 4}, {"after": None, "through": 3}):
        query = ExtractQuery(None, "t", columns, cursor="id", order_by=("id",), **bounds)
        assert assert_same_as_generic(engine, query, "mysql") > 0
    by_time = ExtractQuery(None, "t", columns, cursor="dtt", after=_dt("2000-01-01 00:00:00"), order_by=("id",))
    assert assert_same_as_generic(engine, by_time, "mysql") == 4


def _dt(text: str) -> Any:
    import datetime as dt

    return dt.datetime.fromisoformat(text)


def test_it_reads_zero_dates_as_the_generic_path_does(mysql_source, mysql_reader) -> None:
    mysql_source.execute(
        "CREATE TABLE z (id int PRIMARY KEY, d date, t datetime, ts timestamp NULL)",
        "SET SESSION sql_mode = ''",
    )
    # sql_mode is per session: insert in the session that relaxed it.
    import pymysql

    conn = pymysql.connect(host=mysql_source.host, port=mysql_source.port, user=mysql_source.username,
                           password=mysql_source.password, database=mysql_source.database, autocommit=True)  # fmt: skip
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("INSERT INTO z VALUES (1, '2020-01-01', '2020-01-01 10:00:00', '2020-01-01 10:00:00'), "
                    "(2, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00'), (3, NULL, NULL, NULL)")  # fmt: skip
    conn.close()
    params = _params(mysql_source)
    query = ExtractQuery(None, "z", tuple(get_columns(params, None, "z")), order_by=("id",))
    # One batch holding a zero date and valid dates, then one holding only a NULL.
    assert assert_same_as_generic(get_engine(params), query, "mysql", chunk_rows=2) == 3
    first = _extract(get_engine(params), query, "fast", 2)[0].to_pylist()
    # A TIMESTAMP is a UTC instant (etl/values.py), in text too when a zero date sends its batch on as text.
    assert [row["ts"] for row in first] == ["2020-01-01T10:00:00+00:00", "0000-00-00 00:00:00"]


@pytest.mark.parametrize("connectorx", [False, True])
def test_it_reads_bit_time_and_unsigned_columns_as_the_generic_path_does(mysql_source, connectorx) -> None:
    """BIT(n) as its number, TIME as MySQL's text beyond a day, BIGINT UNSIGNED beyond 2^63: the generic reading."""
    mysql_source.execute(
        f"CREATE TABLE g (id int PRIMARY KEY, {MARIADB_READ_COLUMNS})",
        f"INSERT INTO g VALUES {', '.join(MARIADB_READ_ROWS)}",
    )
    params = _params(mysql_source)
    columns = tuple(get_columns(params, None, "g"))
    assert pymysql_read_columns(columns) == ["tm", "bt", "b12", "b1", "bu", "d65"]
    assert mysql_fast_columns(columns) == ["f", "tm", "yr", "bt", "b12", "b1", "bu", "d65"]
    engine = get_engine(params)
    whole = ExtractQuery(None, "g", columns, order_by=("id",))
    for chunk_rows in (1, 2, 10):
        assert fast_batches(engine, whole, query_statement(engine, whole), chunk_rows, connectorx=connectorx)
        assert assert_same_as_generic(engine, whole, "mysql", chunk_rows) == len(MARIADB_READ_ROWS)
    got = {row["id"]: row for b in _extract(engine, whole, "fast", 10) for row in b.to_pylist()}
    # What the user would notice (issue 13): numbers, not the bytes' text; MySQL's text for a duration.
    assert (got[1]["bt"], got[1]["b12"], got[2]["b12"]) == (170, 12, 4095)
    assert (got[1]["tm"], got[3]["tm"], got[4]["tm"]) == ("-838:59:59", "100:00:00", "-00:00:01.250000")
    assert got[1]["bu"] == "18446744073709551615"  # beyond INT64: the whole batch goes on as text, as generic
    for col in columns[1:]:
        one = ExtractQuery(None, "g", (columns[0], col), order_by=("id",))
        assert fast_batches(engine, one, query_statement(engine, one), 10, connectorx=connectorx) is not None
        assert assert_same_as_generic(engine, one, "mysql", 10) == len(MARIADB_READ_ROWS)


def test_it_keeps_tls_connections_on_the_generic_path(mysql_source) -> None:
    plain = get_engine(_params(mysql_source))
    assert mysql_url(plain) is not None
    tls = ConnectionParams(**mysql_source.as_connection_fields(), options={"ssl_verify_cert": True})
    assert mysql_url(get_engine(tls)) is None


def test_it_never_uses_the_fast_path_for_an_engine_built_without_the_safety_settings(mysql_source) -> None:
    from sqlalchemy import create_engine

    from ml_platform.etl.sources.engines import build_url

    bare = create_engine(build_url(_params(mysql_source)))
    try:
        assert mysql_url(bare) is None
    finally:
        bare.dispose()


def test_it_reports_a_failed_fast_read_like_the_generic_path(mysql_source) -> None:
    mysql_source.execute("CREATE TABLE t (id int PRIMARY KEY)")
    params = _params(mysql_source)
    columns = tuple(get_columns(params, None, "t"))
    mysql_source.execute("DROP TABLE t")
    query = ExtractQuery(None, "t", columns)
    with pytest.raises(RunError) as fast:
        _extract(get_engine(params), query, "fast", 10)
    assert "reading t" in str(fast.value) and "doesn't exist" in str(fast.value)


def _reader_processes() -> list[int]:
    """This process's children running the connectorx reader (etl/cx_child.py)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"cx_child.py" in cmdline:
            found.append(int(entry.name))
    return found


def test_a_silent_server_fails_the_read_in_time_and_freezes_nothing(mysql_source, monkeypatch) -> None:
    """connectorx waits for the first rows in its own process: this one (heartbeat included) keeps running."""
    monkeypatch.setenv("ETL_MYSQL_CONNECTORX", "1")
    # The server sends nothing for 20 s after the query: a silent server, after a normal login.
    mysql_source.execute("CREATE VIEW slow AS SELECT 1 AS id FROM DUAL WHERE SLEEP(20) = 0")
    ticks: list[float] = []
    stop = threading.Event()

    def tick() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.05)

    engine = get_engine(_params(mysql_source))
    remember_connect_args(engine, {**_connect_args[engine], "read_timeout": 2})
    query = ExtractQuery(None, "slow", (SourceColumn("id", "int", CanonicalType(Family.INTEGER)),))
    assert fast_batches(engine, query, query_statement(engine, query), 10) is not None
    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    started = time.monotonic()
    try:
        with pytest.raises(RunError, match="read timeout"):
            _extract(engine, query, "fast", 10)
    finally:
        stop.set()
        ticker.join()
    assert time.monotonic() - started < 15
    assert len([t for t in ticks if t > started + 0.5]) >= 10, "the process froze while connectorx waited"
    assert _reader_processes() == []


def test_a_refused_login_is_reported_as_the_generic_path_reports_it(mysql_source, monkeypatch) -> None:
    """Not a read timeout: connectorx would retry a refused login for 30 s; the engine's own login fails at once."""
    monkeypatch.setenv("ETL_MYSQL_CONNECTORX", "1")
    mysql_source.execute("CREATE TABLE t (id int PRIMARY KEY)")
    params = _params(mysql_source)
    columns = tuple(get_columns(params, None, "t"))
    wrong = ConnectionParams(**{**mysql_source.as_connection_fields(), "username": "nobody", "password": "wr0ng"})
    query = ExtractQuery(None, "t", columns)
    started = time.monotonic()
    with pytest.raises(RunError) as fast:
        _extract(get_engine(wrong), query, "fast", 10)
    assert time.monotonic() - started < 10
    with pytest.raises(RunError) as generic:
        _extract(get_engine(wrong), query, "sqlalchemy", 10)
    assert (str(fast.value), fast.value.transient) == (str(generic.value), generic.value.transient)
    assert not fast.value.transient and "wr0ng" not in str(fast.value)


def test_a_read_stopped_early_leaves_no_reader_process(mysql_source, monkeypatch) -> None:
    monkeypatch.setenv("ETL_MYSQL_CONNECTORX", "1")
    mysql_source.execute("CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t SELECT seq FROM seq_1_to_1000")
    params = _params(mysql_source)
    query = ExtractQuery(None, "t", tuple(get_columns(params, None, "t")), order_by=("id",))
    batches = extract_batches(get_engine(params), query, chunk_rows=10, method="fast")
    assert next(batches).column("id").to_pylist() == list(range(1, 11))
    assert len(_reader_processes()) == 1
    batches.close()  # the consumer stops (a failed upload, a cancelled run): the child is killed
    assert _reader_processes() == []


# --------------------------------------------------------------------------- SQLite

SQLITE_TABLE = """
CREATE TABLE t (
  id INTEGER PRIMARY KEY, n INTEGER, amount NUMERIC(12,2), ratio REAL, flag BOOLEAN, name TEXT, code VARCHAR(3),
  created DATETIME, ts TIMESTAMP, day DATE, doc JSON, raw BLOB, anything
)"""
SQLITE_ROWS = [
    "(1, 9223372036854775807, 12.5, 0.1, 1, 'héllo ✓ 𝄞', 'EUR', '2020-01-01 10:00:00', '2020-01-01T10:00:00.123456',"
    " '2020-01-01', '{\"a\": 1}', X'00FF', 1)",
    "(2, -9223372036854775808, 12, 1e308, 0, '', '', 1577836800, 1577836800.5, '1000-01-01', '[]', X'', 'text')",
    "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "(4, 'not a number', '1.50', 5, 2, 42, 7, 'yesterday', NULL, 20200101, 'not json', 'text in a blob', X'01')",
    "(5, 3.5, 99999999999.99, -0.0, 1, 'x', 'USD', '2024-02-29 23:59:59', '2024-02-29 23:59:59', '2024-02-29',"
    " '{}', X'DEADBEEF', 2.5)",
]


@pytest.fixture
def sqlite_types(sqlite_source: Any) -> tuple[Any, tuple[Any, ...]]:
    sqlite_source.execute(SQLITE_TABLE, f"INSERT INTO t VALUES {', '.join(SQLITE_ROWS)}")
    params = _params(sqlite_source)
    return get_engine(params), tuple(get_columns(params, None, "t"))


@pytest.mark.parametrize("chunk_rows", [1, 2, 100])
def test_it_reads_every_sqlite_storage_class_as_the_generic_path_does(sqlite_types, chunk_rows) -> None:
    engine, columns = sqlite_types
    query = ExtractQuery(None, "t", columns, order_by=("id",))
    assert fast_batches(engine, query, query_statement(engine, query), chunk_rows) is not None
    assert assert_same_as_generic(engine, query, "sqlite", chunk_rows) == len(SQLITE_ROWS)


def _adbc_reads(engine: Any, query: ExtractQuery, chunk_rows: int) -> bool:
    return adbc_sqlite_batches(engine, query, query_statement(engine, query), chunk_rows) is not None


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 100])
def test_the_adbc_reader_reads_every_sqlite_storage_class_as_the_generic_path_does(sqlite_types, chunk_rows) -> None:
    """Mixed storage classes in one column (integers, reals, text, blobs) send the rest of the read to the exact reader."""
    engine, columns = sqlite_types
    typed = tuple(c for c in columns if c.name != "anything")  # a column without a type stays on pysqlite
    query = ExtractQuery(None, "t", typed, order_by=("id",))
    assert _adbc_reads(engine, query, chunk_rows)
    assert not _adbc_reads(engine, ExtractQuery(None, "t", columns, order_by=("id",)), chunk_rows)
    assert assert_same_as_generic(engine, query, "sqlite", chunk_rows) == len(SQLITE_ROWS)
    for col in typed[1:]:
        one = ExtractQuery(None, "t", (typed[0], col), order_by=("id",))
        assert _adbc_reads(engine, one, chunk_rows)
        assert assert_same_as_generic(engine, one, "sqlite", chunk_rows) == len(SQLITE_ROWS)
    bounded = ExtractQuery(None, "t", typed, cursor="id", after=1, through=4, order_by=("id",), limit=2)
    assert _adbc_reads(engine, bounded, chunk_rows)
    assert assert_same_as_generic(engine, bounded, "sqlite", chunk_rows) == 2


def test_the_adbc_reader_switches_to_the_exact_reader_where_a_column_changes_class(sqlite_source) -> None:
    """Clean batches first, then a text in an INTEGER column, a column NULL in the whole first batch, a
    NUMERIC column of integers and reals (SQLite stores 12.0 as 12): every value as the generic path reads it."""
    sqlite_source.execute(
        "CREATE TABLE m (id INTEGER PRIMARY KEY, n INTEGER, late REAL, amount NUMERIC(12,2), note TEXT, raw BLOB)",
        "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 60) "
        "INSERT INTO m SELECT g, g * 10, CASE WHEN g > 25 THEN g / 4.0 END, CASE WHEN g % 3 = 0 THEN g ELSE g + 0.25 END,"
        " 'note ' || g, CASE WHEN g % 7 = 0 THEN NULL ELSE x'00ff' END FROM s",
        "UPDATE m SET n = 'forty-five' WHERE id = 45",
        "UPDATE m SET note = 12.5, raw = 'text in a blob' WHERE id = 52",
    )
    params = _params(sqlite_source)
    columns = tuple(get_columns(params, None, "m"))
    engine = get_engine(params)
    for chunk_rows in (10, 20, 100):
        whole = ExtractQuery(None, "m", columns, order_by=("id",))
        assert _adbc_reads(engine, whole, chunk_rows)
        assert assert_same_as_generic(engine, whole, "sqlite", chunk_rows) == 60
    got = {r["id"]: r for b in _extract(engine, ExtractQuery(None, "m", columns, order_by=("id",)), "fast", 20)
           for r in b.to_pylist()}  # fmt: skip
    assert (got[3]["amount"], got[4]["amount"]) == (Decimal(3), Decimal("4.25"))  # as written, not 4.2500000001...
    assert (got[44]["n"], got[45]["n"], got[52]["note"]) == ("440", "forty-five", "12.5")  # that batch as text


def test_the_exact_reader_resumes_in_the_snapshot_the_read_began_in(sqlite_source) -> None:
    """Rows deleted and changed by another connection mid-read (WAL) are neither skipped nor seen."""
    import sqlite3

    sqlite_source.execute(
        "PRAGMA journal_mode = WAL",
        "CREATE TABLE w (id INTEGER PRIMARY KEY, n INTEGER)",
        "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 30) INSERT INTO w SELECT g, g FROM s",
        "UPDATE w SET n = 'twenty-five' WHERE id = 25",  # the third batch of 10 goes to the exact reader
    )
    params = _params(sqlite_source)
    query = ExtractQuery(None, "w", tuple(get_columns(params, None, "w")), order_by=("id",))
    engine = get_engine(params)
    assert _adbc_reads(engine, query, 10)
    batches = extract_batches(engine, query, chunk_rows=10, method="fast")
    first = next(batches)
    writer = sqlite3.connect(sqlite_source.database)
    writer.execute("DELETE FROM w WHERE id <= 5")  # an OFFSET in a newer snapshot would skip 5 rows
    writer.execute("UPDATE w SET n = -1 WHERE id > 20")
    writer.commit()
    writer.close()
    rows = [r for b in [first, *batches] for r in b.to_pylist()]
    assert [r["id"] for r in rows] == list(range(1, 31))
    assert [r["n"] for r in rows[20:]] == ["21", "22", "23", "24", "twenty-five", "26", "27", "28", "29", "30"]


def query_statement(engine: Any, query: ExtractQuery) -> Any:
    from ml_platform.etl.extract import _statement

    return _statement(engine, query, fast=False)


def test_it_reads_sqlite_keyset_ranges_as_the_generic_path_does(sqlite_types) -> None:
    engine, columns = sqlite_types
    for bounds in ({"after": 1, "before": 5}, {"after": 2, "through": 4}, {"through": 3}):
        query = ExtractQuery(None, "t", columns, cursor="id", order_by=("id",), **bounds)
        assert assert_same_as_generic(engine, query, "sqlite") > 0
    by_text = ExtractQuery(None, "t", columns, cursor="day", after=_dt("2000-01-01 00:00:00").date(), order_by=("id",))
    assert assert_same_as_generic(engine, by_text, "sqlite") == 2


def test_it_opens_sqlite_read_only_on_the_fast_path(sqlite_source, tmp_path) -> None:
    sqlite_source.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    params = _params(sqlite_source)
    columns = tuple(get_columns(params, None, "t"))
    missing = ConnectionParams(engine="sqlite", database=str(tmp_path / "missing.sqlite3"), options={"read_only": True})
    with pytest.raises(RunError):
        _extract(get_engine(missing), ExtractQuery(None, "t", columns), "fast", 10)
    assert not (tmp_path / "missing.sqlite3").exists()


# --------------------------------------------------------------------------- SQLite: what the SQL checks stand for


def _sqlite_table(sqlite_source: Any, *statements: str, table: str = "x") -> tuple[Any, ExtractQuery]:
    sqlite_source.execute(*statements)
    params = _params(sqlite_source)
    return get_engine(params), ExtractQuery(None, table, tuple(get_columns(params, None, table)), order_by=("id",))


_SIXTY = "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 60) "


@pytest.mark.parametrize(
    ("late", "fails"),
    [("'{\"a\": nope}'", True), ("'1' || char(0)", True), ("'[NaN, -Infinity]'", False), ("'{\"a\": [1e999]}'", False)],
)
def test_json_the_fast_reader_does_not_check_itself_is_checked_as_on_the_generic_path(sqlite_source, late, fails):
    """json_valid refuses JSON Python's json accepts (NaN) and sees text only up to a NUL: such a value (late in the
    table) goes to the exact reader, whose batches the conform step checks: the same load, or the same error."""
    engine, query = _sqlite_table(
        sqlite_source,
        "CREATE TABLE x (id INTEGER PRIMARY KEY, doc JSON)",
        _SIXTY + "INSERT INTO x SELECT g, json_object('g', g) FROM s",
        f"UPDATE x SET doc = {late} WHERE id = 55",
    )
    for chunk_rows in (7, 100):
        assert _adbc_reads(engine, query, chunk_rows)
        assert assert_same_as_generic(engine, query, "sqlite", chunk_rows) == 60
    status, detail = _conformed(query, _extract(engine, query, "fast", 7), "sqlite")
    assert status == ("error" if fails else "ok")
    if fails:
        assert "id=55" in detail


def test_floats_and_decimals_beyond_2_53_read_as_on_the_generic_path(sqlite_source) -> None:
    """A NUMERIC column's integers are read as reals only where a real holds them exactly (up to 2^53)."""
    big = 2**53 + 1
    engine, query = _sqlite_table(
        sqlite_source,
        "CREATE TABLE x (id INTEGER PRIMARY KEY, f FLOAT, d DECIMAL(30,2))",
        _SIXTY + f"INSERT INTO x SELECT g, CASE g % 3 WHEN 0 THEN {big} ELSE g + 0.5 END,"
        f" CASE g % 4 WHEN 0 THEN {big} + g WHEN 1 THEN -9223372036854775808 WHEN 2 THEN g ELSE g + 0.25 END FROM s",
    )
    for chunk_rows in (1, 2, 5, 100):
        assert _adbc_reads(engine, query, chunk_rows)
        assert assert_same_as_generic(engine, query, "sqlite", chunk_rows) == 60
    got = {r["id"]: r["d"] for b in _extract(engine, query, "fast", 100) for r in b.to_pylist()}
    assert (got[4], got[5], got[6], got[7]) == (Decimal(big + 4), Decimal(-(2**63)), Decimal(6), Decimal("7.25"))


def test_an_integer_column_null_in_the_whole_first_batch_reads_as_on_the_generic_path(sqlite_source) -> None:
    engine, query = _sqlite_table(
        sqlite_source,
        "CREATE TABLE x (id INTEGER PRIMARY KEY, n INTEGER, b BOOLEAN)",
        _SIXTY + "INSERT INTO x SELECT g, CASE WHEN g > 10 THEN g * 1000 END, CASE WHEN g > 10 THEN g % 2 END FROM s",
        "UPDATE x SET n = 2.5 WHERE id = 40",
    )
    for chunk_rows in (10, 15, 100):
        assert _adbc_reads(engine, query, chunk_rows)
        assert assert_same_as_generic(engine, query, "sqlite", chunk_rows) == 60


# --------------------------------------------------------------------------- SQLite: two halves read at once


def _split_read(engine: Any, query: ExtractQuery, monkeypatch: Any, split_rows: int = 100) -> tuple[list[Any], int]:
    """The ADBC reader's rows with reads of `split_rows` rowids or more split, and how many halves it read."""
    import ml_platform.etl.fast_sqlite as fast_sqlite

    merged = fast_sqlite._merged
    halves: list[int] = []
    monkeypatch.setattr(fast_sqlite, "_merged", lambda parts: (halves.append(len(parts)), merged(parts))[1])
    reader = adbc_sqlite_batches(engine, query, query_statement(engine, query), 10, split_rows=split_rows)
    assert reader is not None
    return [r for b in reader for r in b.to_pylist()], sum(halves) or 1


def _sorted(rows: list[Any]) -> list[Any]:
    return sorted(rows, key=lambda r: r["id"])


def test_a_big_read_is_read_in_two_halves_with_exactly_the_generic_paths_rows(sqlite_source, monkeypatch) -> None:
    engine, query = _sqlite_table(
        sqlite_source,
        "CREATE TABLE x (id INTEGER PRIMARY KEY, n INTEGER, amount NUMERIC(12,2), doc JSON, note TEXT)",
        "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 300) "
        "INSERT INTO x SELECT g * 3, g, g / 4.0, json_object('g', g), 'n' || g FROM s",
        f"UPDATE x SET note = 5, amount = {2**60} WHERE id IN (30, 810)",  # each half's exact reader
    )
    unordered = ExtractQuery(None, "x", query.columns)  # the runner's units: no ORDER BY, no LIMIT
    generic = [r for b in _extract(engine, unordered, "sqlalchemy", 10) for r in b.to_pylist()]
    rows, halves = _split_read(engine, unordered, monkeypatch)
    assert halves == 2
    assert _sorted(rows) == _sorted(generic) and len(rows) == 300
    ranged = ExtractQuery(None, "x", query.columns, cursor="id", after=300, through=700)
    rows, halves = _split_read(engine, ranged, monkeypatch)
    assert halves == 2
    assert _sorted(rows) == [r for r in _sorted(generic) if 300 < r["id"] <= 700]
    for one in (query, ExtractQuery(None, "x", query.columns, limit=250)):  # an order, a LIMIT: one statement
        rows, halves = _split_read(engine, one, monkeypatch)
        assert halves == 1 and len(rows) == min(300, one.limit or 300)
    assert _split_read(engine, unordered, monkeypatch, split_rows=10_000)[1] == 1


def test_a_database_in_wal_mode_is_read_with_one_connection(sqlite_source, monkeypatch) -> None:
    """In WAL mode each connection reads its own snapshot: two halves could see two states."""
    engine, query = _sqlite_table(
        sqlite_source,
        "PRAGMA journal_mode = WAL",
        "CREATE TABLE x (id INTEGER PRIMARY KEY, n INTEGER)",
        "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 300) INSERT INTO x SELECT g, g FROM s",
    )
    rows, halves = _split_read(engine, ExtractQuery(None, "x", query.columns), monkeypatch)
    assert halves == 1 and _sorted(rows) == [{"id": g, "n": g} for g in range(1, 301)]


def test_a_commit_while_the_halves_are_read_never_mixes_two_states(sqlite_source, monkeypatch) -> None:
    """Another process updates a row in each half once the first half is read and before the second starts
    reading: the second half's connection took its read lock with the first's, so the read sees one state."""
    import subprocess
    import sys

    import ml_platform.etl.fast_sqlite as fast_sqlite

    engine, query = _sqlite_table(
        sqlite_source,
        "CREATE TABLE x (id INTEGER PRIMARY KEY, n INTEGER)",
        "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 300) INSERT INTO x SELECT g, 0 FROM s",
    )
    writer = (
        "import sqlite3, sys; w = sqlite3.connect(sys.argv[1], timeout=1)\n"
        "w.execute('UPDATE x SET n = 1 WHERE id IN (10, 290)')\n"
        "try:\n    w.commit()\nexcept sqlite3.OperationalError:\n    pass"
    )  # fmt: skip
    first_done = threading.Event()
    batches = fast_sqlite._Reader.batches
    calls: list[int] = []

    def ordered(self: Any, conn: Any, statement: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            yield from batches(self, conn, statement)
            first_done.set()
            return
        assert first_done.wait(30)
        subprocess.run([sys.executable, "-c", writer, sqlite_source.database], check=True, timeout=60)  # noqa: S603
        yield from batches(self, conn, statement)

    monkeypatch.setattr(fast_sqlite._Reader, "batches", ordered)
    rows, halves = _split_read(engine, ExtractQuery(None, "x", query.columns), monkeypatch)
    assert halves == 2 and len(rows) == 300
    assert len({r["n"] for r in rows if r["id"] in (10, 290)}) == 1
