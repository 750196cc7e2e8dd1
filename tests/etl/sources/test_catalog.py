"""The one row estimate (`etl.sources.catalog`): the table list, a run's progress and the validation scan agree.

Catalog statistics only: a partitioned PostgreSQL table is the sum of its analysed leaves, a
never-analysed table is unknown (not empty), a SQLite table is ANALYZE's count or max(rowid),
never a COUNT(*).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ml_platform.etl.sources import ConnectionParams, estimate_rows, get_engine, list_tables
from ml_platform.etl.sources.catalog import table_estimate

integration = pytest.mark.integration


def params_of(source) -> ConnectionParams:
    return ConnectionParams(engine=source.engine, host=source.host, port=source.port, database=source.database,
                            username=source.username, password=source.password)


def listed(params: ConnectionParams, name: str) -> int | None:
    return next(t.estimated_rows for t in list_tables(params) if t.name == name)


@integration
def test_a_partitioned_postgresql_table_is_estimated_as_the_sum_of_its_partitions(pg_source) -> None:
    pg_source.execute(
        "CREATE TABLE events (id int, region text) PARTITION BY LIST (region)",
        "CREATE TABLE events_eu PARTITION OF events FOR VALUES IN ('eu')",
        "CREATE TABLE events_us PARTITION OF events FOR VALUES IN ('us')",
        "INSERT INTO events SELECT g, CASE WHEN g % 3 = 0 THEN 'us' ELSE 'eu' END FROM generate_series(1, 3000) g",
        "ANALYZE events",
        "CREATE TABLE never_analyzed (id int)",
    )
    params = params_of(pg_source)

    # The run's progress and the table list give the same answer: every row of both partitions.
    assert estimate_rows(get_engine(params), None, "events") == listed(params, "events") == 3000
    assert estimate_rows(get_engine(params), "public", "events") == 3000
    # Unknown until analysed (reltuples = -1), not "empty".
    assert estimate_rows(get_engine(params), None, "never_analyzed") is None
    with get_engine(params).connect() as conn:
        estimate = table_estimate(conn, "postgresql", "public", "events")
    assert estimate.rows == 3000 and estimate.block_sampling and estimate.pages and estimate.pages > 0


@integration
def test_a_mariadb_table_and_view_are_estimated_from_the_catalog(mysql_source) -> None:
    mysql_source.execute(
        "CREATE TABLE t (id int PRIMARY KEY)",
        "INSERT INTO t VALUES " + ", ".join(f"({i})" for i in range(1, 201)),
        "ANALYZE TABLE t",
        "CREATE VIEW v AS SELECT id FROM t",
    )
    params = params_of(mysql_source)

    assert estimate_rows(get_engine(params), None, "t") == listed(params, "t")
    assert isinstance(listed(params, "t"), int)
    assert estimate_rows(get_engine(params), None, "v") is None and listed(params, "v") is None


@integration
def test_a_sqlite_table_is_estimated_without_counting_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "est.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    db.executemany("INSERT INTO t (id, v) VALUES (?, ?)", [(i, str(i)) for i in range(1, 11)])
    db.execute("DELETE FROM t WHERE id < 10")  # one row left; max(rowid) is still 10
    db.execute("CREATE VIEW v AS SELECT * FROM t")
    db.commit()
    db.close()
    params = ConnectionParams(engine="sqlite", database=str(path))

    # A COUNT(*) would say 1: the estimate is the rowid high-water mark, the same for every caller.
    assert estimate_rows(get_engine(params), None, "t") == listed(params, "t") == 10
    assert estimate_rows(get_engine(params), None, "v") is None and listed(params, "v") is None
