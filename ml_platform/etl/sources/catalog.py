"""The tables and views of a source database, and the one row estimate.

`estimate_rows` / `table_estimate` are the only place a row count is guessed: the table
list, the validation scan (sample or not) and a run's progress all use them, so they
cannot disagree. Catalog statistics only, never a COUNT(*):
- PostgreSQL: `pg_class.reltuples` (a partitioned table: the sum over its leaf
  partitions), unknown (-1) until the table is first vacuumed/analysed; views have none;
- MySQL/MariaDB: `information_schema.TABLES.TABLE_ROWS` (all partitions), none for views;
- SQLite: ANALYZE's count in `sqlite_stat1` when present, else `max(rowid)` (one b-tree
  seek; it overestimates after deletes), none for views and WITHOUT ROWID tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Engine, bindparam, column, func, select, text
from sqlalchemy import table as sa_table
from sqlalchemy.exc import SQLAlchemyError

from ml_platform.etl.sources.engines import ConnectionParams, connect, guard, text_value

__all__ = ["RowEstimate", "TableInfo", "estimate_rows", "list_tables", "table_estimate"]

_PG_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")
_MYSQL_SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")

# Rows and pages of pg_class `c`, summed over the leaf partitions of a partitioned table.
_PG_ESTIMATE = """
    CASE WHEN c.relkind = 'p' THEN (
             SELECT sum(leaf.reltuples) FILTER (WHERE leaf.reltuples >= 0)
             FROM pg_partition_tree(c.oid) tree JOIN pg_class leaf ON leaf.oid = tree.relid
             WHERE tree.isleaf)
         WHEN c.relkind = 'v' THEN NULL
         ELSE c.reltuples END AS est_rows,
    CASE WHEN c.relkind = 'p' THEN (
             SELECT sum(leaf.relpages)
             FROM pg_partition_tree(c.oid) tree JOIN pg_class leaf ON leaf.oid = tree.relid
             WHERE tree.isleaf)
         ELSE c.relpages END AS est_pages
"""

_PG_TABLES = f"""    SELECT n.nspname, c.relname, c.relkind, {_PG_ESTIMATE}
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND NOT c.relispartition
      AND n.nspname NOT IN :system
      AND n.nspname !~ '^pg_(toast|temp_)'
      AND has_schema_privilege(n.oid, 'USAGE')
      AND has_table_privilege(c.oid, 'SELECT')
    ORDER BY n.nspname, c.relname
    """  # noqa: S608 - constant fragments, every value is bound


@dataclass(frozen=True)
class TableInfo:
    schema: str | None
    name: str
    estimated_rows: int | None
    kind: Literal["table", "view"]


@dataclass(frozen=True)
class RowEstimate:
    """A table's estimated row count (None: unknown) and, on PostgreSQL, what block sampling needs."""

    rows: int | None
    pages: int | None = None
    block_sampling: bool = False  # TABLESAMPLE SYSTEM applies (a PostgreSQL table or materialized view)


# --- one table ----------------------------------------------------------------------


def estimate_rows(engine: Engine, schema: str | None, table: str) -> int | None:
    """The estimate for a run's progress; None when unknown or when the catalog cannot be read."""
    try:
        with engine.connect() as conn:
            return table_estimate(conn, engine.dialect.name, schema, table).rows
    except SQLAlchemyError:
        return None  # an estimate is a nicety; the run itself reports real failures


def table_estimate(conn: Connection, dialect: str, schema: str | None, name: str) -> RowEstimate:
    """The estimate for `schema.name` (None: the connection's current schema/database)."""
    if dialect == "postgresql":
        row = conn.execute(
            text(
                f"SELECT c.relkind, {_PG_ESTIMATE} FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "  # noqa: S608 - constant
                "WHERE c.relname = :name AND n.nspname = COALESCE(:schema, current_schema())"
            ),
            {"schema": schema, "name": name},
        ).first()
        if row is None:
            return RowEstimate(None)
        relkind, rows, pages = row
        return RowEstimate(_pg_rows(rows), int(pages or 0), relkind in ("r", "m", "p"))
    if dialect in ("mysql", "mariadb"):
        tables = sa_table("TABLES", *map(column, ("TABLE_SCHEMA", "TABLE_NAME", "TABLE_TYPE", "TABLE_ROWS")),
                          schema="information_schema")
        where = (tables.c.TABLE_NAME == name, tables.c.TABLE_SCHEMA == (schema if schema else func.database()))
        row = conn.execute(select(tables.c.TABLE_TYPE, tables.c.TABLE_ROWS).where(*where)).first()
        return RowEstimate(_mysql_rows(row[0], row[1]) if row else None)
    master = sa_table("sqlite_master", column("type"), column("name"), schema=schema or "main")
    if conn.execute(select(master.c.type).where(master.c.name == name)).scalar() != "table":
        return RowEstimate(None)
    return RowEstimate(_sqlite_rows(conn, schema, name, _sqlite_stat1(conn, schema)))


def _pg_rows(value: Any) -> int | None:
    # reltuples is -1 until the table is first vacuumed/analysed: unknown, not empty.
    return int(value) if value is not None and value >= 0 else None


def _mysql_rows(table_type: Any, rows: Any) -> int | None:
    return int(rows) if rows is not None and "VIEW" not in text_value(table_type).upper() else None


def _sqlite_stat1(conn: Connection, schema: str | None) -> dict[str, int]:
    """ANALYZE's row count per table: the first integer of every sqlite_stat1 row."""
    master = sa_table("sqlite_master", column("type"), column("name"), schema=schema or "main")
    present = conn.execute(
        select(master.c.name).where(master.c.type == "table", master.c.name == "sqlite_stat1")
    ).first()
    if not present:
        return {}
    stat1 = sa_table("sqlite_stat1", column("tbl"), column("stat"), schema=schema or "main")
    estimates: dict[str, int] = {}
    for tbl, stat in conn.execute(select(stat1.c.tbl, stat1.c.stat)):
        head = str(stat or "").split(" ", 1)[0]
        if head.isdigit():
            estimates[tbl] = max(estimates.get(tbl, 0), int(head))
    return estimates


def _sqlite_rows(conn: Connection, schema: str | None, name: str, stats: dict[str, int]) -> int | None:
    if name in stats:
        return stats[name]
    # max(rowid) is one b-tree seek, unlike count(*). WITHOUT ROWID tables have no rowid at all.
    try:
        with guard(conn):
            value = conn.execute(select(func.max(column("rowid"))).select_from(sa_table(name, schema=schema))).scalar()
    except SQLAlchemyError:
        return None
    return int(value) if value is not None else 0


# --- every table --------------------------------------------------------------------


def list_tables(params: ConnectionParams) -> list[TableInfo]:
    """User tables and views with the catalog's row estimate (never a COUNT(*) on a server database)."""
    with connect(params) as conn:
        match params.dialect:
            case "postgresql":
                return _pg_tables(conn)
            case "mysql":
                return _mysql_tables(conn, params.database or None)
            case _:
                return _sqlite_tables(conn)


def _expanding(name: str, values: Sequence[str]) -> Any:
    return bindparam(name, value=list(values), expanding=True)


def _pg_tables(conn: Connection) -> list[TableInfo]:
    rows = conn.execute(
        text(_PG_TABLES).bindparams(_expanding("system", _PG_SYSTEM_SCHEMAS)),
    ).all()
    return [
        TableInfo(schema=schema, name=name, estimated_rows=_pg_rows(rows_),
                  kind="view" if kind in ("v", "m") else "table")
        for schema, name, kind, rows_, _pages in rows
    ]  # fmt: skip


def _mysql_tables(conn: Connection, database: str | None) -> list[TableInfo]:
    query = """
        SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, TABLE_ROWS
        FROM information_schema.TABLES
        WHERE TABLE_TYPE IN ('BASE TABLE', 'VIEW', 'SYSTEM VERSIONED')
          AND TABLE_SCHEMA NOT IN :system
    """
    binds: dict[str, Any] = {}
    if database:
        query += " AND TABLE_SCHEMA = :database"
        binds["database"] = database
    query += " ORDER BY TABLE_SCHEMA, TABLE_NAME"
    rows = conn.execute(text(query).bindparams(_expanding("system", _MYSQL_SYSTEM_SCHEMAS)), binds).all()
    return [
        TableInfo(schema=text_value(schema), name=text_value(name), estimated_rows=_mysql_rows(kind, rows_),
                  kind="view" if text_value(kind) == "VIEW" else "table")
        for schema, name, kind, rows_ in rows
    ]  # fmt: skip


def _sqlite_tables(conn: Connection) -> list[TableInfo]:
    rows = conn.exec_driver_sql(
        "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
        "AND substr(name, 1, 7) <> 'sqlite_' ORDER BY name"
    ).all()
    stats = _sqlite_stat1(conn, None)
    return [
        TableInfo(schema=None, name=name, kind="view" if kind == "view" else "table",
                  estimated_rows=_sqlite_rows(conn, None, name, stats) if kind == "table" else None)
        for name, kind in rows
    ]  # fmt: skip
