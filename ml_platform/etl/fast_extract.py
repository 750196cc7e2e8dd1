"""Fast extraction paths for MySQL/MariaDB and SQLite, chosen by measurement (bench/bench_sources.py).

- MySQL/MariaDB (default): connectorx reads the result straight into Arrow in a child process
  (etl/cx_child.py), which hands each batch over as Arrow IPC on a pipe. A process, not a
  thread: connectorx holds the GIL while it connects and waits for the first rows, so in the
  worker's own process a silent server would freeze every thread (the heartbeat included). Here
  the worker waits at most the connection's read timeout for each batch and kills the child on
  timeout or when the consumer stops. Its URL pins TCP (`prefer_socket=false`) and refuses the
  cleartext plugin; connectorx refuses LOCAL INFILE requests (tests/security/
  test_fast_extract_security.py); the session is UTC and read-only; the password goes to the
  child on stdin, never on its command line. Taken only when every column reads exactly
  (`mysql_fast_columns`) and the connection has no TLS options (connectorx's TLS settings are not
  the engine's); ETL_MYSQL_CONNECTORX=0 turns it off.
- MySQL/MariaDB otherwise: the engine's own PyMySQL connection and server-side cursor with
  PyMySQL's per-value converters switched off, so rows arrive as the server's text and Arrow
  parses each column in C++ (integers, decimals at their declared precision, floats, dates,
  TIMESTAMP as the UTC instant the shared reader etl/values.py makes it). The few columns Arrow
  cannot parse as the generic path reads them (BIT, TIME, BIGINT UNSIGNED, DECIMAL beyond 38
  digits, spatial types) get PyMySQL's converter and the generic path's own reading
  (`extract.column_array`: etl/values.py, then its Arrow conversion), value by value.
  Same connection, so every safety setting is the generic path's own (no LOCAL INFILE, no
  cleartext password plugin, TLS options, connect/read/write timeouts, the UTC session).
- SQLite (default): ADBC's SQLite driver with each value's storage class checked in SQL and an
  exact reader from the first batch it cannot read as the generic path does (etl/fast_sqlite.py).
  Tables with a column of another family, connections not built by connection_manager and bound
  values ADBC might bind differently keep the pysqlite reader below.
- SQLite otherwise: the engine's own pysqlite connection (read-only URI, the path the source policy
  resolved, its busy timeout) read with `fetchmany` into the generic path's own Arrow
  conversion and value reader (etl/values.py), without SQLAlchemy's per-row result machinery:
  the generic path's values by construction.

All use the generic path's statement (same columns, keyset filters and order), so checkpoints
and resume behave exactly as on the generic path. A column type connectorx would map lossily
sends the whole read to the PyMySQL reader, which reads every MySQL type as the generic path does.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import queue
import re
import subprocess
import sys
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
from sqlalchemy import Engine, cast, literal_column
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import CHAR

from ml_platform.etl.cx_child import TEMPORAL_TYPES, read_batch
from ml_platform.etl.cx_child import UTC as _UTC
from ml_platform.etl.cx_child import temporal as _temporal
from ml_platform.etl.errors import SourceUnavailable, classify_source_error
from ml_platform.etl.fast_sqlite import adbc_sqlite_batches
from ml_platform.etl.types import Family, SourceColumn
from ml_platform.etl.values import needs_reading

__all__ = [
    "FAST_FETCH_ROWS",
    "fast_batches",
    "mysql_fast_columns",
    "pymysql_read_columns",
    "mysql_url",
    "remember_connect_args",
]

# Rows per batch on the fast paths: big enough to amortise per-batch work, small enough that
# a batch of the bench's 10 columns stays under ~10 MB of Arrow data.
FAST_FETCH_ROWS = 50_000
# Batches read ahead of the consumer on the MySQL path (memory: this many batches at most).
_READ_AHEAD = 2

_connect_args: weakref.WeakKeyDictionary[Engine, dict[str, Any]] = weakref.WeakKeyDictionary()


def remember_connect_args(engine: Engine, args: Mapping[str, Any]) -> None:
    """Record the driver arguments `engine` connects with (safety settings applied), for the fast paths.

    An engine whose arguments were never recorded always takes the generic path: the fast
    MySQL path opens its own connection and must know every setting it has to honour.
    """
    _connect_args[engine] = dict(args)


# --- which columns the MySQL fast path reads exactly ------------------------------------

_MYSQL_INTEGERS = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint"}
_MYSQL_TEXT = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json"}
_MYSQL_BINARY = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_MYSQL_TEMPORAL = {"date": pa.date32(), "datetime": pa.timestamp("us"), "timestamp": pa.timestamp("us")}
_DECIMAL_ARGS = re.compile(r"\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")
# connectorx decodes DECIMAL through a 96-bit decimal into decimal128(38, 10).
_CX_DECIMAL_DIGITS = 28
_CX_DECIMAL_SCALE = 10


def _mysql_base(source_type: str) -> str:
    return source_type.strip().lower().split("(")[0].split(" ")[0]


def _temporal_target(col: SourceColumn) -> pa.DataType:
    """The Arrow type of a MySQL DATE/DATETIME/TIMESTAMP column's values, as the generic path's reader gives them."""
    target = _MYSQL_TEMPORAL[_mysql_base(col.source_type)]
    return _UTC if target == pa.timestamp("us") and col.type.family is Family.TIMESTAMP and col.type.tz else target


def _vector_reads_like_reader(col: SourceColumn) -> bool:
    """Whether parsing `col`'s text with Arrow gives what `etl.values.read_value` makes of PyMySQL's value.

    Only two kinds of column the reader looks at are parsed here: DATE/DATETIME/TIMESTAMP (the reader
    makes a TIMESTAMP a UTC instant, `_temporal_target` does the same) and TINYINT(1) booleans (the
    reader keeps MySQL's integers). Every other column it may change (BIT, TIME, BIGINT UNSIGNED...)
    goes through the reader itself (`_read_like_generic`) or to the generic path.
    """
    if not needs_reading(col, "mysql"):
        return True
    base = _mysql_base(col.source_type)
    return base in _MYSQL_TEMPORAL or (col.type.family is Family.BOOLEAN and base in _MYSQL_INTEGERS)


def _mysql_exact(col: SourceColumn) -> bool:
    declared = col.source_type.strip().lower()
    base = _mysql_base(declared)
    if not _vector_reads_like_reader(col):
        return False
    if base in _MYSQL_INTEGERS:
        # BIGINT UNSIGNED above 2^63 does not fit the int64 the generic path produces.
        return not (base == "bigint" and "unsigned" in declared)
    if base in ("decimal", "numeric", "dec", "fixed"):
        match = _DECIMAL_ARGS.search(declared)
        precision, scale = (int(match.group(1)), int(match.group(2) or 0)) if match else (10, 0)
        return precision <= _CX_DECIMAL_DIGITS and scale <= _CX_DECIMAL_SCALE
    # FLOAT is decoded as float32 (0.1 -> 0.10000000149...), TIME as a time of day (no -838:59:59),
    # YEAR, BIT and spatial types differently from PyMySQL: those stay on the generic path.
    return base in ("double", "real") or base in _MYSQL_TEXT or base in _MYSQL_BINARY or base in _MYSQL_TEMPORAL


def mysql_fast_columns(columns: Sequence[SourceColumn]) -> list[str]:
    """The columns the MySQL fast path cannot read exactly (empty: it can read them all)."""
    return [c.name for c in columns if not _mysql_exact(c)]


# --- the MySQL connection, with the engine's safety settings -----------------------------

_TLS_OPTIONS = ("ssl", "ssl_ca", "ssl_cert", "ssl_key", "ssl_verify_cert", "ssl_verify_identity")
_UTF8 = ("utf8mb4", "utf8", "utf8mb3")


def mysql_url(engine: Engine) -> str | None:
    """The connectorx URL for `engine`, or None when a setting of its connection cannot be honoured."""
    args = _connect_args.get(engine)
    url = engine.url
    if args is None or not url.host:
        return None
    if args.get("local_infile") or args.get("unix_socket") or args.get("init_command"):
        return None  # never the case with etl.sources.engines. settings; refuse rather than guess
    if args.get("read_default_file") or args.get("read_default_group") or args.get("client_flag"):
        return None
    if any(args.get(k) for k in _TLS_OPTIONS) and not args.get("ssl_disabled"):
        return None  # TLS settings are not translated: the generic path honours them
    if str(args.get("charset", "utf8mb4")).lower() not in _UTF8:
        return None
    plugins = args.get("auth_plugin_map") or {}
    if b"mysql_clear_password" not in plugins:
        return None  # the engine was not built with the cleartext refusal: do not be the one that sends it
    user = quote(url.username or "", safe="")
    password = f":{quote(url.password, safe='')}" if url.password else ""
    port = url.port or 3306
    database = quote(url.database or "", safe="")
    timeout_ms = int(float(args.get("connect_timeout", 10)) * 1000)
    query = f"prefer_socket=false&enable_cleartext_plugin=false&tcp_connect_timeout_ms={timeout_ms}"
    return f"mysql://{user}{password}@{url.host}:{port}/{database}?{query}"


def _read_timeout(engine: Engine) -> float:
    args = _connect_args.get(engine) or {}
    return float(args.get("read_timeout") or 600)


# --- dispatch -----------------------------------------------------------------------------


def fast_batches(
    engine: Engine, query: Any, statement: Any, chunk_rows: int, *, connectorx: bool | None = None
) -> Iterator[pa.RecordBatch] | None:
    """Batches of `statement` (the generic path's SELECT for `query`) on a fast path, or None for the generic path.

    `connectorx` (default: on, unless the ETL_MYSQL_CONNECTORX environment variable is 0) reads MySQL
    sources through connectorx in a child process when every column and setting allows it.
    """
    kind = engine.dialect.name
    if engine not in _connect_args:
        return None
    if kind == "sqlite":
        busy = float(_connect_args[engine].get("timeout", 5))
        adbc = adbc_sqlite_batches(engine, query, statement, chunk_rows, busy_timeout=busy)
        return adbc if adbc is not None else _sqlite_batches(engine, query, statement, chunk_rows)
    if kind not in ("mysql", "mariadb"):
        return None
    if connectorx is None:
        connectorx = os.environ.get("ETL_MYSQL_CONNECTORX", "1").lower() not in ("0", "false", "no")
    if connectorx and not mysql_fast_columns(query.columns):
        url = mysql_url(engine)
        if url is not None and _connectorx_available():
            return _mysql_batches(engine, url, query, statement, chunk_rows)
    return _pymysql_batches(engine, query, statement, chunk_rows)


def _connectorx_available() -> bool:
    # Only whether it is installed: the child process loads it, this one never does.
    return importlib.util.find_spec("connectorx") is not None


def _secrets(engine: Engine) -> list[str]:
    password = engine.url.password
    return [str(password), quote(str(password), safe="")] if password else []


def _driver_sql(engine: Engine, statement: Any) -> tuple[str, Any]:
    """`statement` as the DB-API driver takes it: SQL in its paramstyle and the bound values."""
    compiled = statement.compile(dialect=engine.dialect)
    bound = compiled.construct_params()
    if compiled.positiontup is not None:
        return str(compiled), tuple(bound[name] for name in compiled.positiontup)
    return str(compiled), bound


# --- SQLite -------------------------------------------------------------------------------


def _sqlite_batches(engine: Engine, query: Any, statement: Any, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    # lazy: extract imports this module at load (a cycle until the shared helpers move out)
    from ml_platform.etl.extract import rows_to_batch

    sql, params = _driver_sql(engine, statement)
    fetch = max(1, min(chunk_rows, FAST_FETCH_ROWS))
    try:
        conn = engine.connect()
    except SQLAlchemyError as exc:
        raise _sqlite_error(engine, exc, connecting=True) from None
    try:
        with conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(sql, params)
                while rows := cursor.fetchmany(fetch):
                    yield rows_to_batch(rows, query.columns, dialect=engine.dialect.name)
            finally:
                cursor.close()
    except (SQLAlchemyError, OSError) as exc:
        raise _sqlite_error(engine, exc, context=f"reading {query.table}") from None
    except Exception as exc:
        if type(exc).__module__ == "sqlite3":
            raise _sqlite_error(engine, exc, context=f"reading {query.table}") from None
        raise


def _sqlite_error(engine: Engine, exc: BaseException, *, connecting: bool = False, context: str = "") -> Any:
    # lazy: extract imports this module at load (a cycle until the shared helpers move out)
    from ml_platform.etl.extract import _connect_error, _source_error

    return _connect_error(engine, exc) if connecting else _source_error(engine, exc, context)


# --- MySQL / MariaDB through the engine's own PyMySQL connection ---------------------------

# What the server sends as text, parsed by Arrow instead of PyMySQL's per-value Python converters.
_PYMYSQL_NUMBERS: dict[str, pa.DataType] = {
    **{name: pa.int64() for name in ("tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year")},
    **{name: pa.float64() for name in ("float", "double", "real")},
}
_DECIMAL_BASES = ("decimal", "numeric", "dec", "fixed")


# A column read value by value exactly as the generic path reads it (`_read_like_generic`).
_READ = "read"  # compared by identity


def _pymysql_type(col: SourceColumn) -> pa.DataType | None | str:
    """The Arrow type to parse `col`'s text into; None to keep PyMySQL's str/bytes; `_READ`: the generic reading."""
    declared = col.source_type.strip().lower()
    base = _mysql_base(declared)
    if not _vector_reads_like_reader(col):
        return _READ  # BIT, TIME (a duration), BIGINT UNSIGNED: what etl/values.py makes of PyMySQL's value
    if base in _PYMYSQL_NUMBERS:
        return _PYMYSQL_NUMBERS[base]
    if base in _DECIMAL_BASES:
        match = _DECIMAL_ARGS.search(declared)
        precision, scale = (int(match.group(1)), int(match.group(2) or 0)) if match else (10, 0)
        return pa.decimal128(precision, scale) if precision <= 38 else _READ
    if base in _MYSQL_TEMPORAL:
        return _temporal_target(col)
    if base in _MYSQL_TEXT or base in _MYSQL_BINARY:
        return None
    return _READ  # spatial and other types: PyMySQL's own conversion, then the generic path's


def pymysql_read_columns(columns: Sequence[SourceColumn]) -> list[str]:
    """The columns the PyMySQL fast path reads value by value, through the generic path's own reading."""
    return [c.name for c in columns if _pymysql_type(c) is _READ]


def _pymysql_batches(engine: Engine, query: Any, statement: Any, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """The generic path's server-side cursor with PyMySQL's value converters off: rows of text, parsed by Arrow.

    Same engine, same connection, so every safety setting (no LOCAL INFILE, no cleartext password,
    timeouts, TLS, the UTC session) is the generic path's own. The few columns Arrow cannot parse
    as the generic path reads them get PyMySQL's converter and the generic reading, value by value.
    """
    # lazy: extract imports this module at load (a cycle until the shared helpers move out)
    from ml_platform.etl.extract import _connect_error, _source_error

    types = [_pymysql_type(c) for c in query.columns]
    fetch = max(1, min(chunk_rows, FAST_FETCH_ROWS))
    sql, params = _driver_sql(engine, statement)
    try:
        conn = engine.connect()
    except SQLAlchemyError as exc:
        raise _connect_error(engine, exc) from None
    try:
        with conn:
            raw = conn.connection.driver_connection
            decoders = raw.decoders  # type: ignore[union-attr]
            raw.decoders = {}  # type: ignore[union-attr]
            cursor = raw.cursor(_ss_cursor())  # type: ignore[union-attr]
            try:
                cursor.execute(sql, params)
                # PyMySQL's own converter of each column's wire type, for the columns read value by value.
                convert = [_converter(decoders, d[1]) if t is _READ else None
                           for d, t in zip(cursor.description, types, strict=True)]  # fmt: skip
                while rows := cursor.fetchmany(fetch):
                    yield _text_batch(rows, query.columns, types, convert, engine.dialect.name)
            finally:
                cursor.close()
                raw.decoders = decoders  # type: ignore[union-attr]
    except SQLAlchemyError as exc:
        raise _source_error(engine, exc, f"reading {query.table}") from None
    except Exception as exc:
        if type(exc).__module__.startswith("pymysql"):
            raise _source_error(engine, exc, f"reading {query.table}") from None
        raise


def _converter(decoders: Mapping[int, Any], type_code: int) -> Any:
    import pymysql.converters  # lazy: the MySQL driver is loaded only for a MySQL source

    found = decoders.get(type_code)
    return None if found is pymysql.converters.through else found


def _ss_cursor() -> Any:
    import pymysql.cursors  # lazy: the MySQL driver is loaded only for a MySQL source

    return pymysql.cursors.SSCursor


def _text_batch(
    rows: Sequence[Sequence[Any]],
    columns: Sequence[SourceColumn],
    types: Sequence[Any],
    convert: Sequence[Any],
    dialect: str,
) -> Any:
    arrays = []
    for values, col, target, converter in zip(zip(*rows, strict=True), columns, types, convert, strict=True):
        if target is None:
            arrays.append(pa.array(values))  # str -> string, bytes (binary collation) -> binary, as the generic path
        elif target is _READ:
            arrays.append(_read_like_generic(values, col, converter, dialect))
        elif _mysql_base(col.source_type) in _MYSQL_TEMPORAL:
            arrays.append(_temporal(pa.array(values, pa.string()), target))
        else:
            arrays.append(pa.array(values, pa.string()).cast(target))
    return pa.RecordBatch.from_arrays(arrays, names=[c.name for c in columns])


def _read_like_generic(values: Sequence[Any], col: SourceColumn, converter: Any, dialect: str) -> pa.Array:
    """PyMySQL's value (its converter applied to the wire text, as it would have), read as the generic path reads it."""
    # lazy: extract imports this module at load (a cycle until the shared helpers move out)
    from ml_platform.etl.extract import column_array

    if converter is not None:
        values = [None if v is None else converter(v) for v in values]
    return column_array(list(values), col, dialect)


# --- MySQL / MariaDB through connectorx (the default) -----------------------------------


def _mysql_sql(engine: Engine, statement: Any, query: Any) -> str:
    """The SELECT with bounds as literals (connectorx takes no parameters) and dates read as text.

    DATE/DATETIME/TIMESTAMP are read as text and parsed here: connectorx aborts the whole read on
    a zero date ('0000-00-00'), which PyMySQL hands over as text (see `_temporal`).
    """
    from sqlalchemy.dialects import mysql  # lazy: the MySQL dialect is loaded only for a MySQL source

    temporal = {c.name for c in query.columns if _mysql_base(c.source_type) in _MYSQL_TEMPORAL}
    if temporal:
        replaced = [
            cast(literal_column(_quote(engine, c.name)), CHAR).label(c.name) if c.name in temporal else col
            for c, col in zip(query.columns, statement.selected_columns, strict=True)
        ]
        statement = statement.with_only_columns(*replaced, maintain_column_froms=True)
    return str(statement.compile(dialect=mysql.dialect(), compile_kwargs={"literal_binds": True}))


def _quote(engine: Engine, name: str) -> str:
    return engine.dialect.identifier_preparer.quote(name)


def _mysql_batches(engine: Engine, url: str, query: Any, statement: Any, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """connectorx's read in its own process (etl/cx_child.py), its batches handed over as Arrow IPC."""
    kinds = {c.name: _temporal_kind(c) for c in query.columns if _mysql_base(c.source_type) in _MYSQL_TEMPORAL}
    request = {
        "url": url,
        "sql": _mysql_sql(engine, statement, query),
        "batch_rows": max(1, min(chunk_rows, FAST_FETCH_ROWS)),
        # The generic path's session: UTC wall time for TIMESTAMP, and nothing it could write.
        "pre": ["SET time_zone = '+00:00'", "SET SESSION TRANSACTION READ ONLY"],
        "columns": [c.name for c in query.columns],
        "temporal": kinds,
    }
    timeout = _read_timeout(engine)
    context = f"reading {query.table}"
    _check_login(engine)
    reader = _ChildRead(request)
    try:
        while True:
            try:
                item = reader.items.get(timeout=timeout)
            except queue.Empty:
                raise SourceUnavailable(f"{context}: the server sent no data for {timeout:.0f} s (read timeout)") from None
            if item is None:
                return
            if isinstance(item, BaseException):
                raise classify_source_error(item, secrets=_secrets(engine), context=context) from None
            yield item
    finally:
        reader.stop()


def _check_login(engine: Engine) -> None:
    """Log in once with the engine's own driver and settings (no query): its errors, as the generic path reports them.

    connectorx retries a refused login until its pool's 30 s timeout, so a wrong password
    would surface as a read timeout (transient, retried) instead of a refused login (permanent).
    """
    from ml_platform.etl.extract import _connect_error  # lazy: extract imports this module

    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    cparams.update(_connect_args[engine])
    try:
        engine.dialect.connect(*cargs, **cparams).close()
    except Exception as exc:
        if type(exc).__module__.startswith("pymysql"):
            raise _connect_error(engine, exc) from None
        raise


def _temporal_kind(col: SourceColumn) -> str:
    target = _temporal_target(col)
    return next(kind for kind, t in TEMPORAL_TYPES.items() if t == target)


def _widen_pipe(pipe: Any) -> None:
    """A 1 MiB pipe instead of Linux's 64 KiB: a batch crosses in fewer wake-ups of either process."""
    try:
        fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except OSError:
        pass  # the system's limit (/proc/sys/fs/pipe-max-size) is lower: the default pipe works, a little slower


class _ChildRead:
    """etl/cx_child.py in a child process; its frames read on a thread, at most `_READ_AHEAD` batches ahead.

    The consumer waits at most the connection's read timeout for each batch, so a server that
    goes silent fails the read in time (the generic path's PyMySQL `read_timeout`); `stop` kills
    the child, whatever it is waiting for. The request (the URL holds the password) goes on
    stdin, never on the command line; the child's stderr is discarded (its errors come as frames).
    """

    def __init__(self, request: Mapping[str, Any]) -> None:
        self.items: queue.Queue[Any] = queue.Queue(maxsize=_READ_AHEAD)
        self._stopped = threading.Event()
        self._proc = subprocess.Popen(  # noqa: S603 - our own module, run by this interpreter
            [sys.executable, "-I", str(Path(__file__).with_name("cx_child.py"))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _widen_pipe(self._proc.stdout)
        self._thread = threading.Thread(target=self._run, args=(json.dumps(request).encode(),), daemon=True,
                                        name="etl-fast-read")  # fmt: skip
        self._thread.start()

    def _run(self, request: bytes) -> None:
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            with proc.stdin:
                proc.stdin.write(request)
            while True:
                head = proc.stdout.read(9)
                payload = proc.stdout.read(int.from_bytes(head[1:], "big")) if len(head) == 9 else b""
                tag = head[:1]
                if tag == b"B":
                    if not self._put(read_batch(payload)):
                        return
                    continue
                if tag == b"Z":
                    self._put(None)
                elif tag == b"E":
                    self._put(RuntimeError(json.loads(payload)["error"]))
                elif not self._stopped.is_set():
                    self._put(RuntimeError(f"the connectorx reader process ended unexpectedly (exit {proc.wait()})"))
                return
        except (OSError, ValueError, pa.ArrowException) as exc:
            if not self._stopped.is_set():
                self._put(RuntimeError(f"the connectorx reader process failed: {exc}"))

    def _put(self, item: Any) -> bool:
        while not self._stopped.is_set():
            try:
                self.items.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def stop(self) -> None:
        self._stopped.set()
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._thread.join(timeout=5)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
