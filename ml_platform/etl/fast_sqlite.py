"""SQLite's fast path: ADBC's SQLite driver, with every value's storage class checked in SQL.

ADBC reads SQLite into Arrow in C, several times faster than pysqlite's Python rows, but it
types each column by the values of the first batch and then either fails the read on a value
of another storage class or silently converts it (an integer in a REAL column becomes 1.0, in
a TEXT column '5', a text in a BLOB column its bytes), where the generic path would see the
value as it is stored. So the fast SELECT asks SQLite itself, row by row, whether each value
has the storage class its column is read as (`_odd`: how many do not), and:
- a batch whose values all have their column's class is what the generic path makes of it:
  int64, float64, string or binary arrays, and a column NULL in the whole batch is Arrow's
  null type, as the generic path makes it; DECIMAL columns (integers and reals: SQLite's
  NUMERIC affinity stores 12.0 as 12) are read as two columns, its reals and its integers, and
  go through the generic path's own reading (etl/values.py: a real is the decimal it was written as);
- from the first batch that holds another class, or that ADBC fails on (a column NULL in
  the whole first batch is typed INT64), the rest of the read is the exact reader below: the
  same statement from that row on (OFFSET, in the same read transaction, so the same
  snapshot), each column as its storage class plus one typed column per class, rebuilt into
  the values pysqlite returns and read by the generic path's own conversion
  (`extract.column_array`). Slower, exact.
Used only with the read-only URI connection_manager builds and bound values ADBC binds as
pysqlite does (integers, reals, text, bytes); anything else keeps the pysqlite reader.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine, literal_column

from ml_platform.etl.types import Family, SourceColumn

__all__ = ["adbc_sqlite_batches", "sqlite_read_class"]

# The storage class each family is read as on the fast path (DECIMAL: integers and reals, read as reals).
_CLASS = {
    Family.INTEGER: "integer",
    Family.BOOLEAN: "integer",
    Family.FLOAT: "real",
    Family.DECIMAL: "decimal",
    Family.STRING: "text",
    Family.JSON: "text",
    Family.DATE: "text",
    Family.TIME: "text",
    Family.TIMESTAMP: "text",
    Family.BYTES: "blob",
}
_SIMPLE_PARAMS = (int, float, str, bytes, type(None))
_ZERO = {"integer": "0", "real": "0.0", "text": "''", "blob": "x''"}


def sqlite_read_class(col: SourceColumn) -> str | None:
    """The storage class the fast path reads `col` as; None: it cannot read such a column."""
    return _CLASS.get(col.type.family)


def adbc_sqlite_batches(
    engine: Engine, query: Any, statement: Any, chunk_rows: int, *, busy_timeout: float = 5.0
) -> Iterator[pa.RecordBatch] | None:
    """`statement` read through ADBC (see the module notes), or None when this reader cannot be used."""
    url = engine.url
    classes = [sqlite_read_class(c) for c in query.columns]
    if None in classes or not _available():
        return None
    if not str(url.database or "").startswith("file:") or dict(url.query) != {"mode": "ro", "uri": "true"}:
        return None  # only the read-only URI connection_manager builds
    _, params = _driver_sql(engine, statement)
    if not all(type(v) in _SIMPLE_PARAMS for v in params):
        return None  # dates, booleans...: ADBC might bind them unlike pysqlite
    return _read(engine, query, statement, classes, max(1, chunk_rows), busy_timeout)  # type: ignore[arg-type]


def _available() -> bool:
    try:
        import adbc_driver_sqlite.dbapi  # noqa: F401 - lazy: an optional driver; only whether it imports
    except ImportError:
        return False
    return True


def _q(engine: Engine, name: str) -> str:
    return engine.dialect.identifier_preparer.quote(name)


def _fast_statement(engine: Engine, query: Any, statement: Any, classes: Sequence[str]) -> Any:
    items, extra, odd = [], [], []
    for i, (col, cls) in enumerate(zip(query.columns, classes, strict=True)):
        q = _q(engine, col.name)
        if cls == "decimal":
            # Its reals and its integers apart: ADBC would turn integers into reals in a REAL-typed column.
            items.append(literal_column(f"CASE WHEN typeof({q}) = 'integer' THEN NULL ELSE {q} END").label(col.name))
            extra.append(literal_column(f"CASE WHEN typeof({q}) = 'integer' THEN {q} END").label(f"_i{i}"))
            odd.append(f"(typeof({q}) NOT IN ('real', 'integer', 'null'))")
        else:
            items.append(literal_column(q).label(col.name))
            odd.append(f"(typeof({q}) NOT IN ('{cls}', 'null'))")
    items += [*extra, literal_column(" + ".join(odd)).label("_odd")]
    return statement.with_only_columns(*items, maintain_column_froms=True)


def _exact_statement(engine: Engine, query: Any, statement: Any, offset: int) -> Any:
    items = []
    for i, col in enumerate(query.columns):
        q = _q(engine, col.name)
        items.append(literal_column(f"typeof({q})").label(f"k{i}"))
        for cls, zero in _ZERO.items():
            items.append(literal_column(f"CASE WHEN typeof({q}) = '{cls}' THEN {q} ELSE {zero} END").label(f"{cls}{i}"))
    exact = statement.with_only_columns(*items, maintain_column_froms=True)
    if query.limit is not None:
        exact = exact.limit(max(0, query.limit - offset))
    return exact.offset(offset) if offset else exact


def _driver_sql(engine: Engine, statement: Any) -> tuple[str, tuple[Any, ...]]:
    """`statement` in SQLite's qmark style and its bound values, in order."""
    compiled = statement.compile(dialect=engine.dialect)
    bound = compiled.construct_params()
    return str(compiled), tuple(bound[name] for name in compiled.positiontup or ())


def _read(
    engine: Engine, query: Any, statement: Any, classes: Sequence[str], chunk: int, busy_timeout: float
) -> Iterator[pa.RecordBatch]:
    import adbc_driver_manager  # lazy: an optional driver, imported only when this reader runs
    import adbc_driver_sqlite.dbapi  # lazy: as above

    from ml_platform.etl.extract import _connect_error, _source_error  # lazy: extract imports this module's caller

    busy_ms = int(busy_timeout * 1000)
    try:
        conn = adbc_driver_sqlite.dbapi.connect(str(engine.url.database) + "?mode=ro", autocommit=False)
    except (adbc_driver_manager.Error, OSError) as exc:
        raise _connect_error(engine, exc) from None
    try:
        with conn:
            _run(conn, f"PRAGMA busy_timeout = {busy_ms}", (), chunk).close()
            done = 0
            cursor = _run(conn, *_driver_sql(engine, _fast_statement(engine, query, statement, classes)), chunk)
            batches = cursor.fetch_record_batch()
            while True:
                try:
                    batch = batches.read_next_batch()
                except StopIteration:
                    return
                except (adbc_driver_manager.Error, OSError):
                    break  # a storage class ADBC could not put in the column's first type: the exact reader
                if pc.sum(batch.column("_odd")).as_py():
                    break
                yield _fast_batch(batch, query.columns, classes)
                done += batch.num_rows
            cursor.close()
            exact = _run(conn, *_driver_sql(engine, _exact_statement(engine, query, statement, done)), chunk)
            for batch in exact.fetch_record_batch():
                yield _exact_batch(batch, query.columns)
    except (adbc_driver_manager.Error, OSError) as exc:
        raise _source_error(engine, exc, f"reading {query.table}") from None


def _run(conn: Any, sql: str, params: Any, chunk: int) -> Any:
    cursor = conn.cursor()
    cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(chunk)})
    cursor.execute(sql, params or None)
    return cursor


def _fast_batch(batch: pa.RecordBatch, columns: Sequence[SourceColumn], classes: Sequence[str]) -> pa.RecordBatch:
    from ml_platform.etl.extract import column_array  # lazy: extract imports this module's caller

    arrays = []
    for i, (col, cls) in enumerate(zip(columns, classes, strict=True)):
        array = batch.column(i)
        if cls == "decimal":
            ints = batch.column(f"_i{i}")
            decimals = _decimals(array, ints)
            if decimals is None:
                # pysqlite's values (a real a float, an integer an int), read as the generic path reads them.
                values = [r if r is not None else n for r, n in zip(array.to_pylist(), ints.to_pylist(), strict=True)]
                decimals = column_array(values, col, "sqlite")
            arrays.append(decimals)
        elif array.null_count == len(array):
            arrays.append(pa.nulls(len(array)))  # the generic path's column of Nones
        else:
            arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, names=[c.name for c in columns])


# A number's shortest text as Arrow writes it ("12", "0.25", "1.5e-7", "9.99e+10"): its digits after the point, its exponent.
_NUMBER = r"^-?(?P<int>\d+)(?:\.(?P<frac>\d+))?(?:e\+?(?P<exp>-?\d+))?$"


def _decimals(reals: pa.Array, ints: pa.Array) -> pa.Array | None:
    """A DECIMAL column's reals as the decimals written and its integers as they are, in one decimal128 array.

    What the generic path makes of the batch (etl/values.py: `Decimal(repr(real))`, `Decimal(integer)`),
    value for value: Arrow writes a double as its shortest round-trip text, as `repr` does. None when
    the batch needs more than 38 digits or holds a value that is not a finite number (the caller then
    reads it value by value, as the generic path does).
    """
    if reals.null_count == len(reals) and ints.null_count == len(ints):
        return pa.nulls(len(reals))
    text = pc.coalesce(pc.cast(reals, pa.string()), pc.cast(ints, pa.string()))
    parts = pc.extract_regex(text, _NUMBER)
    if parts.null_count != text.null_count:
        return None  # inf, or a form this reading does not know: the generic reading decides
    frac = pc.utf8_length(parts.field("frac"))
    exp = pc.cast(pc.if_else(pc.equal(parts.field("exp"), ""), "0", parts.field("exp")), pa.int32())
    scale = pc.max(pc.max_element_wise(pc.subtract(frac, exp), 0)).as_py() or 0
    whole = pc.max(pc.max_element_wise(pc.add(pc.utf8_length(parts.field("int")), exp), 1)).as_py() or 1
    if scale + whole > 38:
        return None
    try:
        return pc.cast(text, pa.decimal128(38, scale))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _exact_batch(batch: pa.RecordBatch, columns: Sequence[SourceColumn]) -> pa.RecordBatch:
    """Each value as pysqlite returns it (by its storage class), read as the generic path reads it."""
    from ml_platform.etl.extract import column_array  # lazy: extract imports this module's caller

    arrays = []
    for i, col in enumerate(columns):
        kinds = batch.column(f"k{i}").to_pylist()
        parts = {cls: batch.column(f"{cls}{i}").to_pylist() for cls in _ZERO}
        values = [None if kind == "null" else parts[kind][row] for row, kind in enumerate(kinds)]
        arrays.append(column_array(values, col, "sqlite"))
    return pa.RecordBatch.from_arrays(arrays, names=[c.name for c in columns])
