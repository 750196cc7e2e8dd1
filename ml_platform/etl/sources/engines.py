"""Engines, connect options, read-only sessions and "Test connection" for source databases.

Deliberately free of Django: the web layer, the worker and the tests all hand in a
plain `ConnectionParams`, so the source layer can be exercised against real databases
without a settings module.

Rules every module of `etl/sources/` keeps:
- identifiers are never pasted into SQL: catalogs are queried with bound parameters,
  and data is read through `sqlalchemy.table()/column()` so the dialect quotes names;
- the password never leaves: not in a repr, not in a returned error, not in a raised one;
- reads run in read-only transactions with a statement timeout where the database has one;
- a `SourceError` (`etl/errors.py`) carries a message fit for the user, in the database's
  own words; its class says whether a later try may succeed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sqlalchemy import URL, Connection, Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from ml_platform.etl import errors as run_errors
from ml_platform.etl.errors import SourceError, scrub, source_error
from ml_platform.etl.fast_extract import remember_connect_args
from ml_platform.etl.sources.policy import PolicyViolation, driver_options

__all__ = [
    "ConnectionParams",
    "TestResult",
    "build_url",
    "connect",
    "connect_args",
    "connect_failed",
    "describe_error",
    "dispose_engines",
    "get_engine",
    "guard",
    "scrub_secrets",
    "test_connection",
    "text_value",
]

CONNECT_TIMEOUT_S = 5
TEST_CONNECTION_DEADLINE_S = 10.0
# Introspection and previews are interactive: a wizard step must not hang on a slow view.
STATEMENT_TIMEOUT_S = 30
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
_SECRET_OPTION = re.compile(r"(?i)pass|secret|token|key$")


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
        args = driver_options(kind, params.options)
    except PolicyViolation as exc:
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
        import pymysql  # lazy: only a MySQL server asking for a cleartext password gets here

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
    message = run_errors.driver_message(original)
    headline = run_errors.failure_headline(original, message)
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


@contextmanager
def connect(params: ConnectionParams) -> Iterator[Connection]:
    """A freshly authenticated connection inside a read-only transaction, SQLAlchemy errors turned into SourceError."""
    try:
        engine = get_engine(params)
        conn = engine.connect()
    except SourceError:
        raise
    except (SQLAlchemyError, OSError) as exc:
        # `from None`: the chained driver exception may quote the DSN in a traceback.
        failure = connect_failed(exc, params)
        raise source_error(failure.message, transient=failure.transient, fix=failure.fix) from None
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
        raise query_failed(exc, params) from None


def query_failed(exc: BaseException, params: ConnectionParams) -> SourceError:
    """A failed statement as a SourceError: `describe_error`'s words, transient as the runs' rule says."""
    transient = run_errors.classify_source_error(exc).transient
    return source_error(describe_error(exc, params), transient=transient)


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


def guard(conn: Connection) -> AbstractContextManager[Any]:
    """A savepoint around a statement allowed to fail.

    Only PostgreSQL needs it (any error aborts its whole transaction); pysqlite's
    SAVEPOINT handling is unreliable and MySQL carries on after an error anyway.
    """
    return conn.begin_nested() if conn.dialect.name == "postgresql" else nullcontext()


def text_value(value: Any) -> str:
    """A catalog value as text (some MySQL servers hand information_schema text back as bytes)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)
