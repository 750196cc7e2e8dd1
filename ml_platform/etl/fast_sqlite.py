"""SQLite's fast path: ADBC's SQLite driver, with what ADBC would misread checked in SQL.

ADBC reads SQLite into Arrow in C, several times faster than pysqlite's Python rows, but it types
each column by the values of its whole first batch (integers and reals: double; integers and
text: string; text and blobs: binary; all NULL: int64) and then either fails the read on a value
it cannot put in that type or silently converts it (an integer in a double column becomes 5.0,
in a string column '5', a text in a binary column its bytes), where the generic path sees the
value as stored. So the fast SELECT adds one column, `_odd`, that counts per row the values not
read here as the generic path reads them, each checked only as far as needed:
- INTEGER/BOOLEAN columns: nothing in SQL. ADBC fails on anything but an integer in an int64
  column, and a batch whose column ADBC typed otherwise (its first batch held reals) is refused here;
- REAL columns: reals (`CASE typeof(c) WHEN 'real' ...`); TEXT-like and BLOB columns likewise;
- DECIMAL columns (SQLite's NUMERIC affinity stores 12.0 as 12) are read as `c * 1.0`: reals, and
  integers up to 2^53, which a double holds exactly (larger ones are odd). The batch's doubles become
  decimal128 as the generic path makes them (etl/values.py: `Decimal(repr(real))`, `Decimal(int)`):
  by exact arithmetic where it tells, else through the shortest round-trip text (`_decimals`);
- JSON columns: SQLite's one-argument json_valid (RFC 8259 only: it refuses NaN, comments, single
  quotes... that Python's json.loads may accept) and no NUL (json_valid reads text only up to one).
  Fast batches carry the mark of etl/batch_meta.py, so the conform step skips its own per-value
  check of those columns in those batches; a value json_valid refuses goes to the exact reader,
  whose batches keep that check (its error names the row, as on the generic path).
From the first batch with an odd value, that ADBC fails on, or that this reading refuses, the rest
of the read is the exact reader: the same statement from that row on (OFFSET, in the same read
transaction, so the same database state), each column as its storage class plus one typed column per
class, rebuilt into pysqlite's values and read by the generic path's own conversion
(`extract.column_array`). Slower, exact.

Two halves at once: a read without LIMIT or ORDER BY spanning at least `SPLIT_ROWS` rowids (under
the statement's filters) is read as two rowid ranges on two connections, on two threads (ADBC
releases the GIL), each with its own exact reader, merged as batches come (the runner's units need
no order: a keyset checkpoint commits a whole range; the largest cursor value is taken over all
batches), each at half the batch size so the batches in flight weigh what one reader's would. Both
read one database state: the first connection holds its read transaction's SHARED lock (the rowid
query took it) before the second takes its own, so no commit can complete in between (rollback
journal). A database in WAL mode (one snapshot per connection), a table without rowid, or a second
connection that cannot start at once (a writer is waiting to commit) is read with one connection.

Used only with the read-only URI etl.sources.engines builds and bound values ADBC binds as
pysqlite does (integers, reals, text, bytes); anything else keeps the pysqlite reader.
Measured figures: README, "MariaDB and SQLite sources".
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine, literal_column

from ml_platform.etl.batch_meta import mark_json_checked
from ml_platform.etl.types import Family, SourceColumn

__all__ = ["SPLIT_ROWS", "adbc_sqlite_batches", "sqlite_read_class"]

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
# Integers a double holds exactly: a DECIMAL column's integers up to this size are read as reals.
_EXACT_INT = 2**53
# A read of at least this many rowids (under the statement's filters) is read in two halves at once.
SPLIT_ROWS = 200_000
# Batches the two halves may hold ahead of the consumer, together.
_SPLIT_AHEAD = 1
_STOP_POLL_SECONDS = 0.2
_ROWID_NAMES = ("rowid", "_rowid_", "oid")


def sqlite_read_class(col: SourceColumn) -> str | None:
    """The storage class the fast path reads `col` as; None: it cannot read such a column."""
    return _CLASS.get(col.type.family)


def adbc_sqlite_batches(
    engine: Engine,
    query: Any,
    statement: Any,
    chunk_rows: int,
    *,
    busy_timeout: float = 5.0,
    split_rows: int = SPLIT_ROWS,
) -> Iterator[pa.RecordBatch] | None:
    """`statement` read through ADBC (see the module notes), or None when this reader cannot be used.

    `split_rows`: reads spanning at least this many rowids are read in two halves at once (0: never).
    """
    url = engine.url
    classes = [sqlite_read_class(c) for c in query.columns]
    if None in classes or not _available():
        return None
    if not str(url.database or "").startswith("file:") or dict(url.query) != {"mode": "ro", "uri": "true"}:
        return None  # only the read-only URI etl.sources.engines builds
    _, params = _driver_sql(engine, statement)
    if not all(type(v) in _SIMPLE_PARAMS for v in params):
        return None  # dates, booleans...: ADBC might bind them unlike pysqlite
    reader = _Reader(engine, query, classes, max(1, chunk_rows))  # type: ignore[arg-type]
    return _read(reader, statement, busy_timeout, split_rows)


def _available() -> bool:
    try:
        import adbc_driver_sqlite.dbapi  # noqa: F401  # lazy: an optional driver; its absence is the answer
    except ImportError:
        return False
    return True


def _q(engine: Engine, name: str) -> str:
    return engine.dialect.identifier_preparer.quote(name)


def _odd_term(q: str, cls: str, family: Family) -> str | None:
    """SQL that is 1 where `q`'s value is not read on the fast path as the generic path reads it; None: nothing to check.

    INTEGER columns need no check: ADBC fails the read on anything but an integer in an int64
    column, and a first batch it typed otherwise is refused by `_fast_batch`.
    """
    if cls == "integer":
        return None
    if cls == "decimal":  # integers up to 2^53 are exact as reals; larger ones would not be
        return (f"CASE typeof({q}) WHEN 'real' THEN 0 WHEN 'null' THEN 0 "
                f"WHEN 'integer' THEN {q} NOT BETWEEN -{_EXACT_INT} AND {_EXACT_INT} ELSE 1 END")  # fmt: skip
    if family is Family.JSON:  # json_valid: RFC 8259 only; text after a NUL it never looks at
        return (f"CASE typeof({q}) WHEN 'text' THEN (CASE WHEN json_valid({q}) THEN instr({q}, char(0)) > 0 ELSE 1 END) "
                f"WHEN 'null' THEN 0 ELSE 1 END")  # fmt: skip
    return f"CASE typeof({q}) WHEN '{cls}' THEN 0 WHEN 'null' THEN 0 ELSE 1 END"


def _fast_statement(engine: Engine, query: Any, statement: Any, classes: Sequence[str]) -> Any:
    items, odd = [], []
    for col, cls in zip(query.columns, classes, strict=True):
        q = _q(engine, col.name)
        # A DECIMAL column's integers as reals (SQLite's NUMERIC affinity stores 12.0 as 12): always a double column.
        items.append(literal_column(f"{q} * 1.0" if cls == "decimal" else q).label(col.name))
        term = _odd_term(q, cls, col.type.family)
        if term is not None:
            odd.append(f"({term})")
    items.append(literal_column(" + ".join(odd) or "0").label("_odd"))
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


class _Reader:
    """What every read of one query shares: the engine, the query, its columns' classes, the batch size."""

    def __init__(self, engine: Engine, query: Any, classes: Sequence[str], chunk: int) -> None:
        self.engine, self.query, self.classes, self.chunk = engine, query, classes, chunk
        self.json = [c.name for c in query.columns if c.type.family is Family.JSON]

    def connect(self, busy_ms: int) -> Any:
        import adbc_driver_manager  # lazy: an optional driver, imported only when this reader runs
        import adbc_driver_sqlite.dbapi  # lazy: as above

        from ml_platform.etl.extract import _connect_error  # lazy: extract imports this module's caller

        try:
            conn = adbc_driver_sqlite.dbapi.connect(str(self.engine.url.database) + "?mode=ro", autocommit=False)
        except (adbc_driver_manager.Error, OSError) as exc:
            raise _connect_error(self.engine, exc) from None
        try:
            _run(conn, f"PRAGMA busy_timeout = {busy_ms}", (), 1).close()
        except BaseException:
            conn.close()
            raise
        return conn

    def batches(self, conn: Any, statement: Any) -> Iterator[pa.RecordBatch]:
        """`statement` read on `conn` (its read transaction), closing `conn` at the end."""
        import adbc_driver_manager  # lazy: as in `connect`

        from ml_platform.etl.extract import _source_error  # lazy: extract imports this module's caller

        try:
            with conn:
                yield from self._batches(conn, statement)
        except (adbc_driver_manager.Error, OSError) as exc:
            raise _source_error(self.engine, exc, f"reading {self.query.table}") from None

    def _batches(self, conn: Any, statement: Any) -> Iterator[pa.RecordBatch]:
        import adbc_driver_manager  # lazy: as in `connect`

        engine, query, chunk = self.engine, self.query, self.chunk
        done = 0
        cursor = _run(conn, *_driver_sql(engine, _fast_statement(engine, query, statement, self.classes)), chunk)
        batches = cursor.fetch_record_batch()
        while True:
            try:
                batch = batches.read_next_batch()
            except StopIteration:
                return
            except (adbc_driver_manager.Error, OSError):
                break  # a storage class ADBC could not put in the column's first type: the exact reader
            fast = _fast_batch(batch, query.columns, self.classes)
            if fast is None:
                break
            yield mark_json_checked(fast, self.json)
            done += batch.num_rows
        cursor.close()
        exact = _run(conn, *_driver_sql(engine, _exact_statement(engine, query, statement, done)), chunk)
        for batch in exact.fetch_record_batch():
            yield _exact_batch(batch, query.columns)


def _read(reader: _Reader, statement: Any, busy_timeout: float, split_rows: int) -> Iterator[pa.RecordBatch]:
    conn = reader.connect(int(busy_timeout * 1000))
    try:
        halves = _split(reader, conn, statement, split_rows)
    except BaseException:
        conn.close()
        raise
    if halves is None:
        yield from reader.batches(conn, statement)
        return
    first, second, other = halves
    # Half the batch size each: the batches in flight weigh what one reader's would.
    reader.chunk = max(1, reader.chunk // 2)
    yield from _merged([reader.batches(conn, first), reader.batches(other, second)])


def _split(reader: _Reader, conn: Any, statement: Any, split_rows: int) -> tuple[Any, Any, Any] | None:
    """Two halves of `statement` by rowid and a second connection in the same database state, or None.

    Both connections read in one state because `conn` holds its read transaction's SHARED lock
    (taken by the rowid query) before the second one takes its own: no commit can complete in
    between (rollback journal). In WAL mode each connection would read its own snapshot: no split.
    A second connection that cannot start at once (a writer is waiting to commit) means no split.
    """
    import adbc_driver_manager  # lazy: as in `_Reader.connect`

    query, engine = reader.query, reader.engine
    if split_rows <= 0 or query.limit is not None or query.order_by:
        return None  # a LIMIT or an order across the halves is one statement's
    try:
        rowid = _rowid_name(conn, query)
        bounds = statement.with_only_columns(
            literal_column(f"min({rowid})"), literal_column(f"max({rowid})"), maintain_column_froms=True
        )
        low, high = _fetch_one(conn, *_driver_sql(engine, bounds))
        if _fetch_one(conn, "PRAGMA journal_mode", ())[0] == "wal":
            return None
    except (adbc_driver_manager.Error, LookupError):
        return None  # a WITHOUT ROWID table, a view...: one connection
    if low is None or high - low + 1 < split_rows:
        return None
    middle = (low + high) // 2
    try:
        other = reader.connect(0)
    except Exception:  # noqa: BLE001 - whatever stops a second connection, the first reads alone
        return None
    try:
        _fetch_one(other, "SELECT count(*) FROM (SELECT 1 FROM sqlite_schema LIMIT 1)", ())  # its SHARED lock
    except adbc_driver_manager.Error:
        other.close()
        return None
    column = literal_column(rowid)
    return statement.where(column <= middle), statement.where(column > middle), other


def _rowid_name(conn: Any, query: Any) -> str:
    """A name of the table's rowid no column of it hides; LookupError when there is none."""
    rows = _fetch_all(conn, "SELECT name FROM pragma_table_info(?, ?)", (query.table, query.schema or "main"))
    names = {str(row[0]).lower() for row in rows}
    free = [name for name in _ROWID_NAMES if name not in names]
    if not names or not free:
        raise LookupError(f"no rowid to split {query.table} on")
    return free[0]


def _fetch_all(conn: Any, sql: str, params: Any) -> list[tuple[Any, ...]]:
    cursor = _run(conn, sql, params, 1024)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


def _fetch_one(conn: Any, sql: str, params: Any) -> tuple[Any, ...]:
    rows = _fetch_all(conn, sql, params)
    if not rows:
        raise LookupError(sql)
    return rows[0]


def _merged(halves: Sequence[Iterator[pa.RecordBatch]]) -> Iterator[pa.RecordBatch]:
    """The batches of `halves`, each read on its own thread, as they come (at most `_SPLIT_AHEAD` waiting).

    Each half's generator ends (its cursor and connection closed) on its own thread; closing this
    generator stops both and waits for them.
    """
    items: queue.Queue[Any] = queue.Queue(maxsize=_SPLIT_AHEAD)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=_STOP_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def run(half: Iterator[pa.RecordBatch]) -> None:
        try:
            for batch in half:
                if not put(batch):
                    break
        except BaseException as exc:  # noqa: BLE001 - raised on the consumer's thread, as it was
            put(_Failed(exc))
        finally:
            half.close()  # type: ignore[attr-defined]
        put(None)

    threads = [threading.Thread(target=run, args=(h,), name="etl-sqlite-half", daemon=True) for h in halves]
    for thread in threads:
        thread.start()
    try:
        running = len(threads)
        while running:
            item = items.get()
            if item is None:
                running -= 1
            elif isinstance(item, _Failed):
                raise item.error
            else:
                yield item
    finally:
        stop.set()
        for thread in threads:
            while thread.is_alive():
                try:  # room for a half blocked on a full queue
                    items.get(timeout=_STOP_POLL_SECONDS)
                except queue.Empty:
                    pass
            thread.join()


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _run(conn: Any, sql: str, params: Any, chunk: int) -> Any:
    cursor = conn.cursor()
    cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(chunk)})
    cursor.execute(sql, params or None)
    return cursor


def _fast_batch(
    batch: pa.RecordBatch, columns: Sequence[SourceColumn], classes: Sequence[str]
) -> pa.RecordBatch | None:
    """`batch` as the generic path reads it, or None when it is not read so here (the exact reader then)."""
    if pc.sum(batch.column("_odd")).as_py():
        return None  # a value of another storage class (or JSON that json_valid refuses)
    arrays = []
    for i, cls in enumerate(classes):
        array = batch.column(i)
        if array.null_count == len(array):
            arrays.append(pa.nulls(len(array)))  # the generic path's column of Nones
        elif cls == "integer" and not pa.types.is_int64(array.type):
            return None  # ADBC typed the first batch by its reals or text: not integers only
        elif cls == "decimal":
            decimals = _decimals(array)
            if decimals is None:
                return None
            arrays.append(decimals)
        else:
            arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, names=[c.name for c in columns])


# The largest |real x 10^scale| `_scaled` takes: below it a double is closer to one decimal of `scale`
# digits after the point than half their spacing, so that decimal is the one `repr` writes.
_SCALED_LIMIT = 2.0**50
_MAX_SCALE = 15


def _scaled(reals: pa.Array) -> pa.Array | None:
    """`reals` as decimal128 by arithmetic, or None where this reading cannot tell (the text reading then).

    For the smallest `scale` at which every value x is the double nearest to round(x * 10^scale) / 10^scale
    (IEEE division of two exact doubles rounds correctly), that decimal is the shortest text that reads
    back as x, i.e. `repr(x)`, as long as round(x * 10^scale) stays under `_SCALED_LIMIT`.
    """
    for scale in range(_MAX_SCALE + 1):
        factor = 10.0**scale
        units = pc.round(pc.multiply(reals, factor))
        largest = pc.max(pc.abs(units)).as_py()
        if largest is None:
            return pa.nulls(len(reals))
        if not largest <= _SCALED_LIMIT:  # also inf
            return None
        if pc.all(pc.equal(pc.divide(units, factor), reals)).as_py():
            return pc.cast(pc.cast(units, pa.int64()), pa.decimal128(38, 0)).view(pa.decimal128(38, scale))
    return None


# A number's shortest text as Arrow writes it ("12", "0.25", "1.5e-7", "9.99e+10"): its digits after the point, its exponent.
_NUMBER = r"^-?(?P<int>\d+)(?:\.(?P<frac>\d+))?(?:e\+?(?P<exp>-?\d+))?$"


def _decimals(reals: pa.Array) -> pa.Array | None:
    """A DECIMAL column's values (reals, and integers up to 2^53 as reals) as the decimals written, in decimal128.

    What the generic path makes of the batch (etl/values.py: `Decimal(repr(real))`, `Decimal(integer)`),
    value for value, at the fewest digits after the point the batch needs: by arithmetic where it is
    exact (`_scaled`), else by the shortest round-trip text Arrow writes, as `repr` does. None when the
    batch needs more than 38 digits or holds a value that is not a finite number (the exact reader then).
    """
    scaled = _scaled(reals)
    if scaled is not None:
        return scaled
    text = pc.cast(reals, pa.string())
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
