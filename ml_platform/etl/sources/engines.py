"""Engines, introspection, preview and "Test connection" for source databases.

Deliberately free of Django: the web layer, the worker and the tests all hand in a
plain `ConnectionParams`, so this module can be exercised against real databases
without a settings module.

Rules every function here keeps:
- identifiers are never pasted into SQL: catalogs are queried with bound parameters,
  and data is read through `sqlalchemy.table()/column()` so the dialect quotes names;
- the password never leaves: not in a repr, not in a returned error, not in a raised one;
- reads run in read-only transactions with a statement timeout where the database has one;
- a `SourceError` carries a message fit for the user, in the database's own words.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import enum
import hashlib
import ipaddress
import json
import math
import os
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from sqlalchemy import (
    URL,
    Connection,
    Engine,
    bindparam,
    column,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy import table as sa_table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from ml_platform.etl import errors as run_errors
from ml_platform.etl.errors import scrub
from ml_platform.etl.fast_extract import remember_connect_args
from ml_platform.etl.source_types import parse_source_type
from ml_platform.etl.sources import policy as source_policy
from ml_platform.etl.types import Family, SourceColumn
from ml_platform.etl.values import read_value

__all__ = [
    "ConnectionParams",
    "Preview",
    "SourceError",
    "TableInfo",
    "TableNotFoundError",
    "TestResult",
    "build_url",
    "connect_args",
    "describe_error",
    "dispose_engines",
    "display_value",
    "get_columns",
    "get_engine",
    "json_safe",
    "list_tables",
    "preview_rows",
    "scrub_secrets",
    "test_connection",
]

CONNECT_TIMEOUT_S = 5
TEST_CONNECTION_DEADLINE_S = 10.0
# Introspection and previews are interactive: a wizard step must not hang on a slow view.
STATEMENT_TIMEOUT_S = 30
MAX_PREVIEW_ROWS = 1000
# A path that can never exist (/dev/null is no directory): libpq then reads no ~/.pgpass, and unlike
# passfile=/dev/null it does not warn "password file is not a plain file" on every connect.
NO_PASSFILE = os.path.join(os.devnull, "no-pgpass")
ENGINE_CACHE_SIZE = 32

_DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql", "sqlite": "sqlite+pysqlite"}
_ENGINE_ALIASES = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlite": "sqlite",
    "sqlite3": "sqlite",
}
_PG_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")
_MYSQL_SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
_SECRET_OPTION = re.compile(r"(?i)pass|secret|token|key$")


class SourceError(Exception):
    """A failure talking to a source database, with a message safe to show the user."""

    def __init__(self, message: str, *, transient: bool | None = None, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix  # what a job's owner should do about it (a run shows it after the message)
        self._transient = transient

    def __str__(self) -> str:
        return self.message

    @property
    def transient(self) -> bool:
        """Whether trying again later can help (an unreachable or overloaded server), not a wrong password."""
        if self._transient is not None:
            return self._transient
        return self.message.startswith(TRANSIENT_HEADLINES)


# Headlines of `describe_error` for failures that heal by themselves.
TRANSIENT_HEADLINES = ("Cannot reach the database server", "Timed out", "Server busy")


class TableNotFoundError(SourceError):
    """The schema/table named by the caller does not exist (or is not visible to this user)."""


@dataclass
class ConnectionParams:
    """Everything needed to reach one source database; `engine` is postgresql | mysql | sqlite.

    For SQLite `database` is the file path. `options` go to the driver as connect
    arguments (e.g. `sslmode`, `ssl`, `application_name`), except `read_only`
    (SQLite, default True).
    """

    engine: str
    host: str = ""
    port: int | None = None
    database: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    options: dict[str, Any] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        # Option values may hold SSL key passwords: show which options are set, not their values.
        return (
            f"ConnectionParams(engine={self.engine!r}, host={self.host!r}, port={self.port!r}, "
            f"database={self.database!r}, username={self.username!r}, "
            f"password={'***' if self.password else ''!r}, options={sorted(self.options)!r})"
        )

    __str__ = __repr__

    @property
    def dialect(self) -> str:
        """The canonical engine name: postgresql | mysql | sqlite."""
        kind = _ENGINE_ALIASES.get((self.engine or "").strip().lower())
        if kind is None:
            raise SourceError(f"Unsupported database engine {self.engine!r}: use postgresql, mysql or sqlite.")
        return kind

    def secrets(self) -> list[str]:
        """Every value that must never appear in a message."""
        found = [self.password] if self.password else []
        found += [str(v) for k, v in self.options.items() if v and _SECRET_OPTION.search(str(k))]
        return found


@dataclass(frozen=True)
class TestResult:
    """Outcome of "Test connection"; `error` is already scrubbed of secrets."""

    __test__ = False  # not a pytest test class despite the name

    ok: bool
    server_version: str | None = None
    round_trip_ms: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class TableInfo:
    schema: str | None
    name: str
    estimated_rows: int | None
    kind: Literal["table", "view"]


@dataclass(frozen=True)
class Preview:
    """First rows of a table: raw Python values, one list per row, in `columns` order."""

    columns: list[SourceColumn]
    rows: list[list[Any]]

    def json_rows(self) -> list[list[Any]]:
        return [[json_safe(v) for v in row] for row in self.rows]

    def display_rows(self) -> list[list[str]]:
        return [[display_value(v) for v in row] for row in self.rows]


# --- URLs and engines -------------------------------------------------------------


def build_url(params: ConnectionParams) -> URL:
    """The SQLAlchemy URL for `params` (its str/repr masks the password)."""
    kind = params.dialect
    if kind == "sqlite":
        path = params.database.strip()
        if not path:
            # An empty path would give SQLite's empty in-memory database: never what a user means.
            raise SourceError("A SQLite connection needs the path of the database file.")
        if path == ":memory:":
            return URL.create(_DRIVERS[kind], database=":memory:")
        # Always read-only: "ro" also makes a mistyped path fail instead of creating an empty
        # database. The path is percent-encoded because "?" and "#" are URI syntax.
        return URL.create(
            _DRIVERS[kind],
            database="file:" + quote(path, safe="/"),
            query={"mode": "ro", "uri": "true"},
        )
    return URL.create(
        _DRIVERS[kind],
        username=params.username or None,
        password=params.password or None,
        host=params.host or None,
        port=int(params.port) if params.port else None,
        database=params.database or None,
    )


def connect_args(params: ConnectionParams) -> dict[str, Any]:
    """Driver keyword arguments: the allow-listed options, then the safety settings no option overrides."""
    kind = params.dialect
    try:
        args = source_policy.driver_options(kind, params.options)
    except source_policy.PolicyViolation as exc:
        raise SourceError(exc.message) from None
    args.pop("read_only", None)
    args.setdefault("connect_timeout" if kind != "sqlite" else "timeout", CONNECT_TIMEOUT_S)
    if kind == "postgresql":
        args.setdefault("application_name", "ml_platform")
        args.update(
            # Never the service's own ~/.pgpass or client certificate, never its Kerberos ticket.
            passfile=NO_PASSFILE,
            sslcertmode="allow" if "sslcert" in args else "disable",
            gssencmode="disable",
            # A stored password is never sent in clear text (a fake server asking for it gets nothing).
            require_auth="!password,!gss,!sspi",
            # Every session is read-only on the server side, whatever a caller forgets.
            options="-c default_transaction_read_only=on",
        )
    elif kind == "mysql":
        args.setdefault("read_timeout", STATEMENT_TIMEOUT_S)
        args.setdefault("write_timeout", STATEMENT_TIMEOUT_S)
        args.setdefault("charset", "utf8mb4")
        args.update(
            local_infile=False,
            client_flag=0,
            init_command=None,
            read_default_file=None,
            read_default_group=None,
            unix_socket=None,
            # Plugins that would send the stored password in clear text are refused.
            auth_plugin_map={b"mysql_clear_password": _RefusePlugin, b"dialog": _RefusePlugin},
        )
    return args


class _RefusePlugin:
    """A PyMySQL auth plugin handler that refuses to authenticate (cleartext password plugins)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def authenticate(self, packet: Any) -> Any:
        import pymysql

        raise pymysql.err.OperationalError(2059, "Authentication failed: the server asked for the password in "
                                                 "clear text, which this application never sends")


_engine_cache: OrderedDict[tuple[Any, ...], tuple[str, Engine]] = OrderedDict()
_engine_lock = threading.Lock()


def get_engine(params: ConnectionParams) -> Engine:
    """The engine for `params`, shared by every caller with the same parameters.

    Its connections are not pooled: every `connect()` logs in afresh, so a password
    rotated on the server fails introspection, previews and runs alike at once
    (a pooled session opened before the rotation would keep answering for the old
    password). A log-in costs a few milliseconds next to the round trips of the
    catalog queries (see README, "Errors"); what the cache saves is the dialect's
    first-connect initialisation. The cache is keyed on where the connection goes;
    a change of password or options for the same place replaces the engine.
    """
    identity = (params.dialect, params.host, params.port, params.database, params.username)
    fingerprint = _fingerprint(params)
    with _engine_lock:
        cached = _engine_cache.get(identity)
        if cached and cached[0] == fingerprint:
            _engine_cache.move_to_end(identity)
            return cached[1]
        if cached:
            cached[1].dispose()
        engine = _create_engine(params)
        _engine_cache[identity] = (fingerprint, engine)
        while len(_engine_cache) > ENGINE_CACHE_SIZE:
            _, (_, evicted) = _engine_cache.popitem(last=False)
            evicted.dispose()
        return engine


def dispose_engines() -> None:
    """Close every engine (with NullPool only an in-memory SQLite database holds a connection) (shutdown, tests, before dropping a database)."""
    with _engine_lock:
        for _, engine in _engine_cache.values():
            engine.dispose()
        _engine_cache.clear()


def _fingerprint(params: ConnectionParams) -> str:
    payload = json.dumps(
        [params.dialect, params.host, params.port, params.database, params.username, params.password, params.options],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _create_engine(params: ConnectionParams) -> Engine:
    url = build_url(params)
    kwargs: dict[str, Any] = {"connect_args": connect_args(params)}
    if not (params.dialect == "sqlite" and url.database == ":memory:"):
        # A fresh, authenticated session for every connect() (see get_engine); an in-memory
        # SQLite database lives only as long as its one connection, so it keeps SQLAlchemy's default.
        kwargs["poolclass"] = NullPool
    engine = create_engine(url, **kwargs)
    remember_connect_args(engine, kwargs["connect_args"])  # the fast extraction paths honour the same settings
    if params.dialect == "mysql":
        # MySQL TIMESTAMP values are stored in UTC but handed back in the session zone;
        # pinning the session to UTC makes a naive value mean UTC everywhere downstream.
        event.listen(engine, "connect", _mysql_session_utc)
    return engine


def _mysql_session_utc(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SET time_zone = '+00:00'")
    finally:
        cursor.close()


# --- errors -----------------------------------------------------------------------


def scrub_secrets(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret (raw or URL-encoded) and any DSN password replaced by ***."""
    return scrub(text, secrets) if text else text


def describe_error(exc: BaseException, params: ConnectionParams) -> str:
    """A one-line, secret-free explanation of `exc`: a plain headline, then the database's words."""
    original = getattr(exc, "orig", None) or exc
    message = _driver_message(original)
    headline = _classify(original, message)
    if headline and not message.lower().startswith(headline.lower()):
        message = f"{headline}: {message}"
    return scrub_secrets(message, params.secrets())


def connect_target(params: ConnectionParams) -> run_errors.ConnectTarget:
    return run_errors.ConnectTarget(params.dialect, params.host, params.port, params.database)


def connect_failed(exc: BaseException, params: ConnectionParams) -> run_errors.ConnectFailure:
    """Why connecting failed: the one rule shared with runs (`etl.errors.connect_failure`).

    A failure no sentence classifies is transient by the runs' rule (e.g. a server that
    closed the connection while restarting), so a run failing at its first connect is
    retried exactly when its extraction would be.
    """
    transient = run_errors.classify_source_error(exc).transient
    return run_errors.connect_failure(exc, connect_target(params), secrets=params.secrets(),
                                      timeout_s=CONNECT_TIMEOUT_S, transient=transient)


def connect_failure(exc: BaseException, params: ConnectionParams) -> str:
    """Why connecting failed, in one of a few fixed sentences: never the peer's own bytes.

    Whatever answers at host:port (a web server, Redis, a fake database) chooses the
    bytes of a driver's error; echoing them would make "Test connection" a port scanner
    and a banner grabber. Only the class of failure is reported; a run that cannot
    connect reports the same sentence (see `etl.errors.connect_failure`).
    """
    return connect_failed(exc, params).message


_driver_message = run_errors.plain_driver_message
_classify = run_errors.failure_headline


@contextmanager
def _connect(params: ConnectionParams) -> Iterator[Connection]:
    """A freshly authenticated connection inside a read-only transaction, SQLAlchemy errors turned into SourceError."""
    try:
        engine = get_engine(params)
        conn = engine.connect()
    except SourceError:
        raise
    except (SQLAlchemyError, OSError) as exc:
        # `from None`: the chained driver exception may quote the DSN in a traceback.
        failure = connect_failed(exc, params)
        raise SourceError(failure.message, transient=failure.transient, fix=failure.fix) from None
    try:
        with conn:
            if params.dialect == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_S * 1000}")
            elif params.dialect == "mysql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            yield conn
    except SourceError:
        raise
    except (SQLAlchemyError, OSError) as exc:
        raise SourceError(describe_error(exc, params)) from None


# --- test connection --------------------------------------------------------------


def test_connection(params: ConnectionParams, *, deadline_s: float = TEST_CONNECTION_DEADLINE_S) -> TestResult:
    """Connect once with fresh credentials (never a pooled session) and report.

    Returns within `deadline_s` whatever the network does: the driver's own timeouts
    do not cover every stall (DNS, a half-open TLS handshake), so the probe runs in a
    daemon thread that is abandoned at the deadline.
    """
    try:
        params.dialect  # noqa: B018 - validates the engine name before spawning anything
    except SourceError as exc:
        return TestResult(ok=False, error=exc.message)
    outcome: list[TestResult] = []
    worker = threading.Thread(target=lambda: outcome.append(_probe(params)), name="test-connection", daemon=True)
    worker.start()
    worker.join(deadline_s)
    if outcome:
        return outcome[0]
    where = (
        params.database
        if params.dialect == "sqlite"
        else f"{params.host or 'localhost'}:{params.port or 'default port'}"
    )
    message = f"Timed out: no answer from {where} within {deadline_s:g} s"
    return TestResult(ok=False, error=scrub_secrets(message, params.secrets()))


test_connection.__test__ = False  # type: ignore[attr-defined]  # keeps pytest from collecting it


def _probe(params: ConnectionParams) -> TestResult:
    engine: Engine | None = None
    try:
        engine = _create_engine(params)
        try:
            conn = engine.connect()
        except (SQLAlchemyError, OSError) as exc:
            return TestResult(ok=False, error=connect_failure(exc, params))
        with conn:
            version = _server_version(conn, params.dialect)
            # SQLite opens any file lazily: reading the schema proves it is a database.
            probe = "SELECT count(*) FROM sqlite_master" if params.dialect == "sqlite" else "SELECT 1"
            started = time.perf_counter()
            conn.exec_driver_sql(probe).scalar()
            round_trip = (time.perf_counter() - started) * 1000
        return TestResult(ok=True, server_version=version, round_trip_ms=round(round_trip, 3))
    except Exception as exc:  # noqa: BLE001 - every failure is a result here, not a crash
        return TestResult(ok=False, error=describe_error(exc, params))
    finally:
        if engine is not None:
            engine.dispose()


def _server_version(conn: Connection, kind: str) -> str:
    if kind == "postgresql":
        return f"PostgreSQL {conn.exec_driver_sql('SHOW server_version').scalar()}"
    if kind == "mysql":
        version = str(conn.exec_driver_sql("SELECT VERSION()").scalar())
        product = "MariaDB" if getattr(conn.dialect, "is_mariadb", False) else "MySQL"
        return f"{product} {version}"
    return f"SQLite {conn.exec_driver_sql('SELECT sqlite_version()').scalar()}"


# --- list tables ------------------------------------------------------------------


def list_tables(params: ConnectionParams) -> list[TableInfo]:
    """User tables and views with the catalog's row estimate (never a COUNT(*) on a server database)."""
    with _connect(params) as conn:
        match params.dialect:
            case "postgresql":
                return _pg_tables(conn)
            case "mysql":
                return _mysql_tables(conn, params.database or None)
            case _:
                return _sqlite_tables(conn)


def _pg_tables(conn: Connection) -> list[TableInfo]:
    rows = conn.execute(
        text(
            """
            SELECT n.nspname, c.relname, c.relkind,
                   CASE WHEN c.relkind = 'p' THEN (
                            SELECT sum(leaf.reltuples) FILTER (WHERE leaf.reltuples >= 0)
                            FROM pg_partition_tree(c.oid) tree JOIN pg_class leaf ON leaf.oid = tree.relid
                            WHERE tree.isleaf)
                        WHEN c.relkind = 'v' THEN NULL
                        ELSE c.reltuples END
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
              AND NOT c.relispartition
              AND n.nspname NOT IN :system
              AND n.nspname !~ '^pg_(toast|temp_)'
              AND has_schema_privilege(n.oid, 'USAGE')
              AND has_table_privilege(c.oid, 'SELECT')
            ORDER BY n.nspname, c.relname
            """
        ).bindparams(_expanding("system", _PG_SYSTEM_SCHEMAS)),
    ).all()
    # reltuples is -1 until the table is first vacuumed/analysed: unknown, not empty.
    return [
        TableInfo(
            schema=schema,
            name=name,
            estimated_rows=int(rows_) if rows_ is not None and rows_ >= 0 else None,
            kind="view" if kind in ("v", "m") else "table",
        )
        for schema, name, kind, rows_ in rows
    ]


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
        TableInfo(
            schema=_str(schema),
            name=_str(name),
            estimated_rows=int(rows_) if rows_ is not None and _str(kind) != "VIEW" else None,
            kind="view" if _str(kind) == "VIEW" else "table",
        )
        for schema, name, kind, rows_ in rows
    ]


def _sqlite_tables(conn: Connection) -> list[TableInfo]:
    rows = conn.exec_driver_sql(
        "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
        "AND substr(name, 1, 7) <> 'sqlite_' ORDER BY name"
    ).all()
    stats = _sqlite_stat1(conn)
    tables = []
    for name, kind in rows:
        estimate = None
        if kind == "table":
            estimate = stats.get(name)
            if estimate is None:
                estimate = _sqlite_max_rowid(conn, name)
        tables.append(
            TableInfo(schema=None, name=name, estimated_rows=estimate, kind="view" if kind == "view" else "table")
        )
    return tables


def _sqlite_stat1(conn: Connection) -> dict[str, int]:
    present = conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'").first()
    if not present:
        return {}
    estimates: dict[str, int] = {}
    for tbl, stat in conn.exec_driver_sql("SELECT tbl, stat FROM sqlite_stat1").all():
        # The first integer of every stat row is ANALYZE's row count of the table.
        head = str(stat or "").split(" ", 1)[0]
        if head.isdigit():
            estimates[tbl] = max(estimates.get(tbl, 0), int(head))
    return estimates


def _sqlite_max_rowid(conn: Connection, name: str) -> int | None:
    # max(rowid) is one b-tree seek, unlike count(*); it overestimates after deletes,
    # which is acceptable for an estimate. WITHOUT ROWID tables have no rowid at all.
    try:
        with _guard(conn):
            value = conn.execute(select(func.max(column("rowid"))).select_from(sa_table(name))).scalar()
    except SQLAlchemyError:
        return None
    return int(value) if value is not None else 0


# --- columns ----------------------------------------------------------------------


def get_columns(params: ConnectionParams, schema: str | None, table: str) -> list[SourceColumn]:
    """The columns of `schema.table` in declaration order, typed as the database names them."""
    with _connect(params) as conn:
        _, _, columns = _describe(conn, params.dialect, schema, table)
        return columns


def _describe(conn: Connection, kind: str, schema: str | None, name: str) -> tuple[str | None, str, list[SourceColumn]]:
    """(resolved schema, resolved table name, columns) or TableNotFoundError."""
    if "\x00" in name or "\x00" in (schema or ""):
        # No database names a table with NUL, and the drivers refuse to send one: it cannot exist.
        raise _not_found(schema, name)
    match kind:
        case "postgresql":
            return _pg_describe(conn, schema, name)
        case "mysql":
            return _mysql_describe(conn, schema, name)
        case _:
            return _sqlite_describe(conn, schema, name)


def _not_found(schema: str | None, name: str) -> TableNotFoundError:
    where = f" in schema {schema!r}" if schema else ""
    return TableNotFoundError(f"Table {name!r} not found{where}")


def _primary_key(conn: Connection, schema: str | None, name: str) -> list[str] | None:
    """PK columns per SQLAlchemy's Inspector; None when it cannot tell (views, odd DDL)."""
    try:
        with _guard(conn):
            constraint = inspect(conn).get_pk_constraint(name, schema=schema)
    except SQLAlchemyError:
        return None
    return list(constraint.get("constrained_columns") or [])


def _guard(conn: Connection) -> AbstractContextManager[Any]:
    """A savepoint around a statement allowed to fail.

    Only PostgreSQL needs it (any error aborts its whole transaction); pysqlite's
    SAVEPOINT handling is unreliable and MySQL carries on after an error anyway.
    """
    return conn.begin_nested() if conn.dialect.name == "postgresql" else nullcontext()


def _pg_describe(conn: Connection, schema: str | None, name: str) -> tuple[str | None, str, list[SourceColumn]]:
    if schema is None:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
    oid = conn.execute(
        text(
            """
            SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = :schema AND c.relname = :name AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
            """
        ),
        {"schema": schema, "name": name},
    ).scalar()
    if oid is None:
        raise _not_found(schema, name)
    rows = conn.execute(
        text(
            """
            SELECT a.attname,
                   format_type(a.atttypid, a.atttypmod),
                   a.attnotnull,
                   pg_get_expr(d.adbin, d.adrelid),
                   a.attidentity,
                   a.attgenerated,
                   t.typtype,
                   elem.typtype,
                   CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END
            FROM pg_attribute a
            JOIN pg_type t ON t.oid = a.atttypid
            LEFT JOIN pg_type elem ON elem.oid = t.typelem AND t.typcategory = 'A'
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = CAST(:oid AS oid) AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """
        ),
        {"oid": int(oid)},
    ).all()
    pk = set(_primary_key(conn, schema, name) or ())
    columns = []
    for attname, type_text, notnull, default, identity, generated, typtype, elem_typtype, domain_base in rows:
        is_enum = typtype == "e" or elem_typtype == "e"
        # A domain is named by the user but behaves as its base type.
        parse_text = domain_base if typtype == "d" and domain_base else type_text
        if identity in ("a", "d"):
            default = f"generated {'always' if identity == 'a' else 'by default'} as identity"
        elif generated == "s" and default:
            default = f"generated always as ({default}) stored"
        columns.append(
            SourceColumn(
                name=attname,
                source_type=type_text,
                type=parse_source_type(parse_text, "postgresql", is_enum=is_enum),
                nullable=not notnull,
                primary_key=attname in pk,
                default=default,
            )
        )
    return schema, name, columns


_MARIADB_JSON_CHECK = re.compile(r"json_valid\s*\(\s*`((?:[^`]|``)+)`\s*\)", re.IGNORECASE)


def _mysql_describe(conn: Connection, schema: str | None, name: str) -> tuple[str | None, str, list[SourceColumn]]:
    if schema is None:
        schema = conn.exec_driver_sql("SELECT DATABASE()").scalar()
        if not schema:
            raise SourceError("No database selected: set the connection's database or pass a schema.")
    found = conn.execute(
        text("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = :schema AND TABLE_NAME = :name"),
        {"schema": schema, "name": name},
    ).all()
    names = [_str(r[0]) for r in found]
    if not names:
        raise _not_found(schema, name)
    # information_schema may compare case-insensitively: prefer the exact spelling.
    name = name if name in names else names[0]
    rows = conn.execute(
        text(
            """
            SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, COLUMN_KEY
            FROM information_schema.COLUMNS
            WHERE TABLE_SCHEMA = :schema AND TABLE_NAME = :name
            ORDER BY ORDINAL_POSITION
            """
        ),
        {"schema": schema, "name": name},
    ).all()
    is_mariadb = bool(getattr(conn.dialect, "is_mariadb", False))
    json_columns = _mariadb_json_columns(conn, schema, name) if is_mariadb else set()
    pk = _primary_key(conn, schema, name)
    columns = []
    for col_name, col_type, nullable, default, extra, key in rows:
        col_name, col_type, extra = _str(col_name), _str(col_type), _str(extra or "")
        default = _str(default) if default is not None else None
        # MariaDB spells a NULL default as the bare word NULL (string literals come quoted).
        if is_mariadb and default == "NULL":
            default = None
        if default is None and "auto_increment" in extra.lower():
            default = "auto_increment"
        columns.append(
            SourceColumn(
                name=col_name,
                source_type=col_type,
                type=parse_source_type(col_type, "mysql", is_json=col_name in json_columns),
                nullable=_str(nullable).upper() == "YES",
                primary_key=col_name in pk if pk is not None else _str(key) == "PRI",
                default=default,
            )
        )
    return schema, name, columns


def _mariadb_json_columns(conn: Connection, schema: str, name: str) -> set[str]:
    """Columns MariaDB guards with CHECK (json_valid(col)), which is how its JSON alias is stored."""
    try:
        with _guard(conn):
            clauses = conn.execute(
                text(
                    "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                    "WHERE CONSTRAINT_SCHEMA = :schema AND TABLE_NAME = :name"
                ),
                {"schema": schema, "name": name},
            ).scalars()
            found = set()
            for clause in clauses:
                found.update(m.replace("``", "`") for m in _MARIADB_JSON_CHECK.findall(_str(clause)))
            return found
    except SQLAlchemyError:
        return set()  # servers before 10.3.10 have no CHECK_CONSTRAINTS view


_SQLITE_IDENT = r'(?:"((?:[^"]|"")+)"|`((?:[^`]|``)+)`|\[([^\]]+)\]|([A-Za-z_][A-Za-z0-9_$]*))'
_SQLITE_JSON_CHECK = re.compile(r"json_valid\s*\(\s*" + _SQLITE_IDENT + r"\s*\)", re.IGNORECASE)


def _sqlite_describe(conn: Connection, schema: str | None, name: str) -> tuple[str | None, str, list[SourceColumn]]:
    schema_name = schema or "main"
    master = sa_table("sqlite_master", column("type"), column("name"), column("sql"), schema=schema_name)
    try:
        found = conn.execute(
            select(master.c.name, master.c.sql).where(master.c.type.in_(["table", "view"]), master.c.name == name)
        ).first()
    except SQLAlchemyError:  # an unknown schema (not attached) is just "not found" here
        raise _not_found(schema, name) from None
    if found is None:
        raise _not_found(schema, name)
    create_sql = found[1] or ""
    rows = conn.execute(
        text('SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(:name, :schema) ORDER BY cid'),
        {"name": name, "schema": schema_name},
    ).all()
    json_columns = {next(g for g in m if g) for m in _SQLITE_JSON_CHECK.findall(create_sql)}
    pk_from_pragma = [r[0] for r in sorted((r for r in rows if r[4]), key=lambda r: r[4])]
    pk = _primary_key(conn, schema, name)
    if pk is None:
        pk = pk_from_pragma
    # An INTEGER PRIMARY KEY is the rowid and can never be NULL, though the pragma says "nullable".
    rowid_alias = (
        len(pk_from_pragma) == 1
        and not re.search(r"\bwithout\s+rowid\b", create_sql, re.IGNORECASE)
        and next(str(r[1]).strip().upper() for r in rows if r[0] == pk_from_pragma[0]) == "INTEGER"
    )
    columns = []
    for col_name, declared, notnull, default, _pk in rows:
        declared = declared or ""
        columns.append(
            SourceColumn(
                name=col_name,
                source_type=declared,
                type=parse_source_type(declared, "sqlite", is_json=col_name in json_columns),
                nullable=not notnull and not (rowid_alias and col_name == pk_from_pragma[0]),
                primary_key=col_name in pk,
                default=default,
            )
        )
    return schema, name, columns


# --- preview ----------------------------------------------------------------------


def preview_rows(
    params: ConnectionParams,
    schema: str | None,
    table: str,
    limit: int = 20,
    columns: list[str] | None = None,
) -> Preview:
    """The first `limit` rows (capped at MAX_PREVIEW_ROWS) of the chosen columns, in no particular order."""
    limit = max(0, min(int(limit), MAX_PREVIEW_ROWS))
    with _connect(params) as conn:
        resolved_schema, resolved_name, available = _describe(conn, params.dialect, schema, table)
        selected = _select_columns(available, columns)
        if not selected:
            return Preview(columns=[], rows=[])
        qualified_schema = resolved_schema if params.dialect != "sqlite" or schema not in (None, "main") else None
        source = sa_table(resolved_name, *(column(c.name) for c in selected), schema=qualified_schema)
        statement = select(*source.c).limit(limit)
        arrays = [c.source_type for c in selected if c.type.family is Family.ARRAY]
        raw_rows = _fetch(conn, statement, arrays)
    return Preview(
        columns=selected,
        rows=[
            [_conform(value, col, params.dialect) for value, col in zip(row, selected, strict=True)] for row in raw_rows
        ],
    )


def _select_columns(available: list[SourceColumn], wanted: list[str] | None) -> list[SourceColumn]:
    if wanted is None:
        return list(available)
    by_name = {c.name: c for c in available}
    chosen: list[SourceColumn] = []
    missing = []
    for name in dict.fromkeys(wanted):  # keeps order, drops repeats
        if name in by_name:
            chosen.append(by_name[name])
        else:
            missing.append(name)
    if missing:
        raise SourceError(f"Column{'s' if len(missing) > 1 else ''} not found: {', '.join(repr(m) for m in missing)}")
    return chosen


def _fetch(conn: Connection, statement: Any, array_types: Sequence[str] = ()) -> list[Sequence[Any]]:
    if conn.dialect.name != "postgresql":
        return [tuple(row) for row in conn.execute(statement)]
    # PostgreSQL dates and timestamps may be 'infinity', which Python's datetime cannot
    # hold and psycopg refuses to load. A cursor-scoped loader turns those into strings,
    # so one sentinel value cannot break a preview, without touching the pooled
    # connection's loaders that extraction relies on.
    compiled = statement.compile(dialect=conn.dialect)
    driver_connection = conn.connection.driver_connection
    with driver_connection.cursor() as cursor:
        _register_lenient_datetime_loaders(cursor)
        _register_array_loaders(conn, cursor, array_types)
        cursor.execute(str(compiled), compiled.params)
        return list(cursor.fetchall())


def _register_array_loaders(conn: Connection, cursor: Any, array_types: Sequence[str]) -> None:
    """Teach the cursor arrays psycopg does not know (of enums, domains, extension types).

    Without this such arrays arrive as their text literal ('{sad,ok}') instead of a list.
    """
    if not array_types:
        return
    from psycopg.types import TypeInfo
    from psycopg.types.array import register_array

    for type_text in dict.fromkeys(array_types):
        element = re.sub(r"(\s*\[\d*\])+$", "", type_text)
        try:
            with _guard(conn):
                info = TypeInfo.fetch(cursor.connection, element)
        except Exception:  # noqa: BLE001 - a preview without typed arrays beats no preview
            continue
        if info is not None and info.array_oid and cursor.adapters.types.get(info.array_oid) is None:
            register_array(info, cursor)


def _register_lenient_datetime_loaders(cursor: Any) -> None:
    import psycopg
    from psycopg.types import datetime as pg_datetime

    for type_name, base in (
        ("date", pg_datetime.DateLoader),
        ("timestamp", pg_datetime.TimestampLoader),
        ("timestamptz", pg_datetime.TimestamptzLoader),
    ):

        class Lenient(base):  # type: ignore[misc,valid-type]
            def load(self, data: Any) -> Any:
                try:
                    return super().load(data)
                except psycopg.DataError:
                    return bytes(data).decode()

        cursor.adapters.register_loader(type_name, Lenient)


def _conform(value: Any, col: SourceColumn, kind: str) -> Any:
    """Make a raw driver value look like its canonical family, where the driver does not.

    Only lossless conversions: a tinyint(1) holding 2 stays 2.
    """
    if value is None:
        return None
    family = col.type.family
    if isinstance(value, memoryview):
        value = value.tobytes()
    # The reading the load uses too (MySQL BIT and TIME, SQLite epoch DATETIME, SQLite NUMERIC REAL).
    value = read_value(value, col, kind)
    if kind == "mysql":
        if family is Family.BOOLEAN:
            if value in (0, 1) and not isinstance(value, bool):
                return bool(value)
    if kind == "sqlite" and family is Family.BOOLEAN and value in (0, 1) and not isinstance(value, bool):
        return bool(value)
    if family is Family.JSON and isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# --- rendering --------------------------------------------------------------------

# Beyond 2**53 a JSON number loses digits in JavaScript: send such integers as strings.
_JS_SAFE_INTEGER = 2**53 - 1


def json_safe(value: Any) -> Any:
    """`value` as something `json.dumps` writes without loss of meaning."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -_JS_SAFE_INTEGER <= value <= _JS_SAFE_INTEGER else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)  # exact, unlike float
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "base64:" + base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return iso_duration(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((json_safe(v) for v in value), key=str)
    if isinstance(value, enum.Enum):
        return json_safe(value.value)
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return str(value)
    return str(value)  # ranges, geometry objects, anything a driver invents


def display_value(value: Any) -> str:
    """`value` as text for a preview cell: NULL for None, pretty JSON for objects."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(json_safe(value), indent=2, ensure_ascii=False)
    if isinstance(value, int):
        return str(value)  # json_safe would turn big ones into strings anyway
    safe = json_safe(value)
    return safe if isinstance(safe, str) else json.dumps(safe, ensure_ascii=False)


def iso_duration(value: dt.timedelta) -> str:
    """ISO-8601 duration: timedelta(days=1, hours=2, seconds=3.5) -> 'P1DT2H0M3.5S' minus zero parts."""
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    hours, remainder = divmod(value.seconds, 3600)
    minutes, seconds = divmod(remainder, 60)
    out = f"P{value.days}D" if value.days else "P"
    clock = ""
    if hours:
        clock += f"{hours}H"
    if minutes:
        clock += f"{minutes}M"
    if seconds or value.microseconds:
        clock += (f"{seconds}.{value.microseconds:06d}".rstrip("0") if value.microseconds else str(seconds)) + "S"
    if clock:
        out += "T" + clock
    return sign + (out if out != "P" else "PT0S")


# --- small helpers ----------------------------------------------------------------


def _str(value: Any) -> str:
    # Some MySQL servers hand information_schema text back as bytes.
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)


def _expanding(name: str, values: Sequence[str]) -> Any:
    return bindparam(name, value=list(values), expanding=True)
