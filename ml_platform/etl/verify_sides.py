"""The two sides Verify compares: a source table (PostgreSQL, MySQL/MariaDB, SQLite) and the job's rows in BigQuery.

Each side runs `verify_sql.Queries` in its own database; only counts, checksums and, for small
differing ranges, (key, row hash) pairs come back. Every query is counted for the report.
"""

from __future__ import annotations

import decimal
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from ml_platform.etl.bqsql import bq_literal, partition_filter, table_ref
from ml_platform.etl.errors import SchemaMismatchError
from ml_platform.etl.types import BigQueryField, SourceColumn
from ml_platform.etl.verify_sql import Dialect, Queries, VerifyColumn, kind_for, quote, register_sqlite, scale_for

if TYPE_CHECKING:
    from ml_platform.etl.bigquery import BigQuery


def _int(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, decimal.Decimal | float):
        return int(value)
    return int(value)


def _checksum(row: Sequence[Any]) -> tuple[int, int]:
    """(rows, checksum) from a (n, s1, s2) row: the two hash halves recombined."""
    n, s1, s2 = row
    return _int(n), (_int(s1) << 32) + _int(s2)


@dataclass(frozen=True)
class Compared:
    """What is compared: the columns (source name, destination name, normalisation) and the key."""

    columns: tuple[VerifyColumn, ...]
    key: VerifyColumn | None


def compared_columns(
    columns: Sequence[SourceColumn], dest_names: Mapping[str, str], fields: Sequence[BigQueryField],
    key_names: Sequence[str],
) -> Compared:
    """The job's columns as normalised by their destination types; the key if it is one integer column."""
    by_name = {f.name.lower(): f for f in fields}
    out: list[VerifyColumn] = []
    for c in columns:
        dest = dest_names[c.name]
        f = by_name.get(dest.lower())
        field_type = f.field_type if f else "STRING"
        out.append(VerifyColumn(c.name, f.name if f else dest, kind_for(field_type),
                                scale_for(field_type, f.scale if f else None)))
    key = None
    if len(key_names) == 1:
        match = [v for v in out if v.source.lower() == key_names[0].lower()]
        if match and match[0].kind == "int":
            key = match[0]
    return Compared(tuple(out), key)


class SqlSide:
    """A source table over a SQLAlchemy engine (raw driver cursors: no bind-parameter parsing of the SQL)."""

    def __init__(self, engine: Engine, schema: str | None, table: str, compared: Compared) -> None:
        name = engine.dialect.name
        self.dialect: Dialect = "mysql" if name in ("mysql", "mariadb") else name  # type: ignore[assignment]
        ref = quote(self.dialect, table)
        if schema and self.dialect == "postgresql":
            ref = f"{quote(self.dialect, schema)}.{ref}"
        self.engine = engine
        self.compared = compared
        self.queries = Queries(self.dialect, ref, compared.columns, compared.key, dest=False)
        self._local = threading.local()
        self._connections: list[Any] = []

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.engine.raw_connection()
            cur = conn.cursor()
            if self.dialect == "mysql":
                cur.execute("SET time_zone = '+00:00'")
            elif self.dialect == "postgresql":
                cur.execute("SET TIME ZONE 'UTC'")
                # A handful of groups: hash them (the planner cannot estimate the bucket expression and
                # would otherwise sort every row's hash by bucket).
                cur.execute("SET enable_sort = off")
            elif self.dialect == "sqlite":
                register_sqlite(conn.driver_connection, self.compared.columns)
            cur.close()
            self._local.conn = conn
            self._connections.append(conn)
        return conn

    def _fetch(self, sql: str) -> list[tuple[Any, ...]]:
        cur = self._conn().cursor()
        try:
            cur.execute(sql)
            return [tuple(r) for r in cur.fetchall()]
        finally:
            cur.close()

    def close(self) -> None:
        for conn in self._connections:
            try:
                conn.close()
            except Exception:  # noqa: BLE001,S110 - closing after use; nothing to report
                pass
        self._connections.clear()

    def bounds(self) -> tuple[int | None, int | None, int]:
        kmin, kmax, n = self._fetch(self.queries.bounds())[0]
        return (None if kmin is None else int(kmin)), (None if kmax is None else int(kmax)), _int(n)

    def total(self) -> tuple[int, int]:
        return _checksum(self._fetch(self.queries.total())[0])

    def buckets(self, lo: int, width: int, within: tuple[int, list[int]] | None) -> dict[int, tuple[int, int]]:
        return {int(r[0]): _checksum(r[1:]) for r in self._fetch(self.queries.buckets(lo, width, within))}

    def rows(self, lo: int, width: int, buckets: list[int]) -> list[tuple[int, str]]:
        return [(int(k), str(h)) for k, h in self._fetch(self.queries.rows(lo, width, buckets))]


class BigQuerySide:
    """The job's rows in its BigQuery table: only its source tag's, when it has one."""

    def __init__(self, bq: BigQuery, dataset: str, table: str, compared: Compared,
                 tag: tuple[str, str | None] | None, partition: str = "") -> None:
        # Exactly the rows the runner's statements treat as the job's: its tag's (an untagged job on
        # a table with a tag column: `tag IS NULL`), with the partition filter the runner adds.
        parts = [partition] if partition else []
        if tag is not None:
            column = quote("bigquery", tag[0])
            parts.insert(0, f"{column} IS NULL" if tag[1] is None else f"{column} = {bq_literal(tag[1], 'STRING')}")
        scope = " AND ".join(parts) or "TRUE"
        self.bq = bq
        self.queries = Queries("bigquery", table_ref(dataset, table), compared.columns, compared.key, dest=True,
                               scope=scope)

    def _fetch(self, sql: str, names: tuple[str, ...]) -> list[tuple[Any, ...]]:
        return [tuple(r[n] for n in names) for r in self.bq.query(sql)]

    def bounds(self) -> tuple[int | None, int | None, int]:
        kmin, kmax, n = self._fetch(self.queries.bounds(), ("kmin", "kmax", "n"))[0]
        return (None if kmin is None else int(kmin)), (None if kmax is None else int(kmax)), _int(n)

    def total(self) -> tuple[int, int]:
        return _checksum(self._fetch(self.queries.total(), ("n", "s1", "s2"))[0])

    def buckets(self, lo: int, width: int, within: tuple[int, list[int]] | None) -> dict[int, tuple[int, int]]:
        rows = self._fetch(self.queries.buckets(lo, width, within), ("b", "n", "s1", "s2"))
        return {int(r[0]): _checksum(r[1:]) for r in rows}

    def rows(self, lo: int, width: int, buckets: list[int]) -> list[tuple[int, str]]:
        return [(int(k), str(h)) for k, h in self._fetch(self.queries.rows(lo, width, buckets), ("k", "h"))]

    def close(self) -> None:
        return None


def job_key(spec: Any) -> tuple[str, ...]:
    """The job's row key (source names): its merge key, else the source primary key."""
    if spec.merge_key:
        return tuple(spec.merge_key)
    return spec.key_columns or tuple(c.name for c in spec.columns if c.primary_key)


def sides_for(spec: Any, *, bq: BigQuery, engine: Engine) -> tuple[SqlSide, BigQuerySide, Compared]:
    """Both sides of a job (a `RunSpec`): its source table and its tag's rows in its BigQuery table."""
    schema = bq.get_table_schema(spec.destination_dataset, spec.destination_table)
    dest_names = spec.destination_names()
    present = {f.name.lower() for f in schema.fields}
    absent = [d for d in dest_names.values() if d.lower() not in present]
    if absent:
        raise SchemaMismatchError(f"The BigQuery table has no column(s) {', '.join(absent)} yet: run the job first")
    compared = compared_columns(spec.columns, dest_names, schema.fields, job_key(spec))
    tag = None
    if spec.source_tag is not None:
        if spec.tag_column.lower() not in present:
            raise SchemaMismatchError("The BigQuery table has no source tag column yet: run the job first")
        tag = (spec.tag_column, spec.source_tag)
    elif spec.tag_column.lower() in present:
        tag = (next(f.name for f in schema.fields if f.name.lower() == spec.tag_column.lower()), None)
    partition = partition_filter(schema.partitioning, {f.name: f.field_type for f in schema.fields})
    source = SqlSide(engine, spec.source_schema, spec.source_table, compared)
    dest = BigQuerySide(bq, spec.destination_dataset, spec.destination_table, compared, tag, partition)
    return source, dest, compared
