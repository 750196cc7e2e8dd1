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
from ml_platform.etl.verify_sql import (
    Dialect,
    Queries,
    VerifyColumn,
    kind_for,
    py_normalise,
    quote,
    register_sqlite,
    scale_for,
)

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
    """What is compared: the columns (source name, destination name, normalisation) and the key.

    `key` is the key rows are localised by (None: counts and one checksum only): one integer column
    (bucketed by key ranges), or with `keys` set, string / integer columns bucketed by the hash of their
    values; `key.source` then names them all ("region, code").
    """

    columns: tuple[VerifyColumn, ...]
    key: VerifyColumn | None
    keys: tuple[VerifyColumn, ...] = ()


HASHABLE_KEY_KINDS = ("int", "text")


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
                                scale_for(field_type, f.scale if f else None), c.source_type.strip().lower()))
    by_source = {v.source.lower(): v for v in out}
    key_cols = [by_source.get(k.lower()) for k in key_names]
    if not key_cols or any(k is None or k.kind not in HASHABLE_KEY_KINDS for k in key_cols):
        return Compared(tuple(out), None)
    found = tuple(k for k in key_cols if k is not None)
    if len(found) == 1 and found[0].kind == "int":
        return Compared(tuple(out), found[0])
    name = VerifyColumn(", ".join(k.source for k in found), ", ".join(k.dest for k in found), "text")
    return Compared(tuple(out), name, found)


def _key_of(compared: Compared, values: Sequence[Any]) -> Any:
    """A fetched row's key: the integer, or the tuple of the key columns' canonical texts."""
    if not compared.keys:
        return int(values[0])
    return tuple(py_normalise(c.kind, c.scale, v) for c, v in zip(compared.keys, values, strict=True))


def _bounds(compared: Compared, row: Sequence[Any]) -> tuple[int | None, int | None, int]:
    kmin, kmax, n = row
    if compared.keys and not _int(n):
        return None, None, 0
    return (None if kmin is None else int(kmin)), (None if kmax is None else int(kmax)), _int(n)


def _queries(dialect: Dialect, table: str, compared: Compared, *, dest: bool, scope: str = "TRUE") -> Queries:
    key = None if compared.keys else compared.key
    return Queries(dialect, table, compared.columns, key, dest=dest, scope=scope, keys=compared.keys)


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
        self.queries = _queries(self.dialect, ref, compared, dest=False)
        self.hashed_keys = bool(compared.keys)
        self.key_columns = tuple(c.source for c in compared.keys)
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
                register_sqlite(conn.driver_connection, self.compared.columns, self.compared.keys)
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
        return _bounds(self.compared, self._fetch(self.queries.bounds())[0])

    def total(self) -> tuple[int, int]:
        return _checksum(self._fetch(self.queries.total())[0])

    def buckets(self, lo: int, width: int, within: tuple[int, list[int]] | None) -> dict[int, tuple[int, int]]:
        return {int(r[0]): _checksum(r[1:]) for r in self._fetch(self.queries.buckets(lo, width, within))}

    def rows(self, lo: int, width: int, buckets: list[int]) -> list[tuple[int, Any, int]]:
        return [(int(r[0]), _key_of(self.compared, r[1:-1]), int(r[-1]))
                for r in self._fetch(self.queries.rows(lo, width, buckets))]


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
        self.compared = compared
        self.hashed_keys = bool(compared.keys)
        self.key_columns = tuple(c.source for c in compared.keys)
        self.queries = _queries("bigquery", table_ref(dataset, table), compared, dest=True, scope=scope)

    def _fetch(self, sql: str, names: tuple[str, ...]) -> list[tuple[Any, ...]]:
        return [tuple(r[n] for n in names) for r in self.bq.query(sql)]

    def bounds(self) -> tuple[int | None, int | None, int]:
        return _bounds(self.compared, self._fetch(self.queries.bounds(), ("kmin", "kmax", "n"))[0])

    def total(self) -> tuple[int, int]:
        return _checksum(self._fetch(self.queries.total(), ("n", "s1", "s2"))[0])

    def buckets(self, lo: int, width: int, within: tuple[int, list[int]] | None) -> dict[int, tuple[int, int]]:
        rows = self._fetch(self.queries.buckets(lo, width, within), ("b", "n", "s1", "s2"))
        return {int(r[0]): _checksum(r[1:]) for r in rows}

    def rows(self, lo: int, width: int, buckets: list[int]) -> list[tuple[int, Any, int]]:
        names = ("b", *(f"k{i}" for i in range(max(1, len(self.compared.keys)))), "h")
        return [(int(r[0]), _key_of(self.compared, r[1:-1]), int(r[-1]))
                for r in self._fetch(self.queries.rows(lo, width, buckets), names)]

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
