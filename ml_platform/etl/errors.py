"""Run failures, each knowing whether retrying later can help.

The worker retries a transient failure (a database restarting, a BigQuery 5xx)
and stops on a permanent one (a value that cannot be cast, an incompatible
schema, a rejected password): retrying those only repeats the same error.
Every message is scrubbed of secrets before it is built, because messages end
up in the run history the user sees.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote, quote_plus

__all__ = [
    "RECONNECT_FIX",
    "CastError",
    "ConnectFailure",
    "ConnectTarget",
    "RunError",
    "SchemaMismatchError",
    "SourceError",
    "SourceUnavailable",
    "TableNotFoundError",
    "WarehouseError",
    "WarehouseUnavailable",
    "classify_source_error",
    "classify_warehouse_error",
    "connect_failure",
    "driver_message",
    "failure_headline",
    "scrub",
    "source_error",
]


class RunError(Exception):
    """A failure with a message fit for the user (and the fix, if any).

    Whether retrying later can help is decided by the exception's type: `transient` is a
    class attribute, True only for the `...Unavailable` classes. Classifiers (below) choose
    the class; nobody matches on a message to decide it.
    """

    transient: ClassVar[bool] = False

    def __init__(self, message: str, *, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        # What the user should do about it (shown after the message in the run history).
        self.fix = fix

    def __str__(self) -> str:
        return self.message


class SourceError(RunError):
    """Talking to a source database failed for good: a refused login, a missing table, a query error."""


class SourceUnavailable(SourceError):
    """The source database cannot be reached, or is busy, for now: a later try may succeed."""

    transient = True


class TableNotFoundError(SourceError):
    """The schema/table named by the caller does not exist (or is not visible to this user)."""


class WarehouseError(RunError):
    """BigQuery refused a request (load, query, table change)."""


class WarehouseUnavailable(WarehouseError):
    """BigQuery failed a request in a way a later try may not (5xx, 429, timeouts, aborted transactions)."""

    transient = True


def source_error(message: str, *, transient: bool, fix: str = "") -> SourceError:
    """The source error class for a classifier's verdict."""
    return (SourceUnavailable if transient else SourceError)(message, fix=fix)


class SchemaMismatchError(RunError):
    """The destination cannot take what the job sends (missing key, REQUIRED column nobody fills...)."""


class CastError(RunError):
    """A source value does not fit its destination column.

    Raised while conforming a chunk, so before anything of the run is committed
    (or, for a checkpointed load, before the checkpoint holding the row is).
    """

    def __init__(self, *, column: str, value: Any, key: Any, target: str, reason: str = "") -> None:
        self.column = column
        self.value = value
        self.key = key
        self.target = target
        self.reason = reason
        shown = _short_repr(value)
        where = f" (source key {key})" if key is not None else ""
        why = f": {reason}" if reason else ""
        super().__init__(f"Column {column!r}: value {shown}{where} cannot be stored as {target}{why}")


def _short_repr(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- scrubbing --------------------------------------------------------------------

_URL_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)
_KEY_VALUE_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd)(\s*=\s*)('[^']*'|\"[^\"]*\"|[^\s&;,)]+)")


def scrub(text: str, secrets: Sequence[str] = ()) -> str:
    """`text` without any of `secrets` (raw or URL-encoded) or a DSN password."""
    variants: set[str] = set()
    for secret in secrets:
        if secret:
            variants.update({secret, quote(secret, safe=""), quote_plus(secret)})
    # Longest first so a secret containing another one is masked whole.
    for variant in sorted(variants, key=len, reverse=True):
        text = text.replace(variant, "***")
    text = _URL_USERINFO.sub(r"\1***@", text)
    return _KEY_VALUE_PASSWORD.sub(r"\1\2***", text)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)  # SQLAlchemy wraps the driver's exception here
        if isinstance(orig, BaseException) and id(orig) not in seen:
            yield orig
            seen.add(id(orig))
        current = current.__cause__ or current.__context__


# --- source errors ----------------------------------------------------------------

_AUTH = ("password authentication failed", "authentication failed", "access denied for user", "no password supplied")
_TRANSIENT_HINTS = (
    "connection refused",
    "could not connect",
    "can't connect",
    "could not translate host name",
    "name or service not known",
    "temporary failure in name resolution",
    "no route to host",
    "network is unreachable",
    "timeout expired",
    "timed out",
    "lost connection",
    "server closed the connection",
    "connection reset",
    "terminating connection",
    "the database system is starting up",
    "the database system is shutting down",
    "too many connections",
    "database is locked",
    "deadlock",
    "could not serialize",
)
# SQLSTATE classes: 08 connection, 40 rollback (serialization), 53 resources, 57 operator intervention.
_TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57")
# MySQL client/server codes for "cannot reach / lost the server / too busy".
_TRANSIENT_MYSQL_CODES = {1040, 1205, 1213, 2002, 2003, 2005, 2006, 2013, 2055}
_AUTH_MYSQL_CODES = {1044, 1045, 1698}


def _sqlstate(exc: BaseException) -> str | None:
    for attr in ("sqlstate", "pgcode"):
        value = getattr(exc, attr, None)
        if isinstance(value, str) and len(value) == 5:
            return value
    diag = getattr(exc, "diag", None)
    value = getattr(diag, "sqlstate", None)
    return value if isinstance(value, str) else None


def classify_source_error(
    exc: BaseException,
    *,
    secrets: Sequence[str] = (),
    context: str = "",
    connecting: ConnectTarget | None = None,
) -> SourceError:
    """A `SourceError` (or `SourceUnavailable`) for a driver/SQLAlchemy/ADBC failure, transient when retrying can help.

    A failure to connect (`connecting` given, or a refused login wherever it surfaces) is
    reported with the same fixed sentence as "Test connection" (`connect_failure`), and the
    fix for a refused login; anything else in the database's own words after `context`.
    """
    innermost = exc
    for link in _chain(exc):
        innermost = link
        if _sqlstate(link) or (link.args and isinstance(link.args[0], int)):
            break
    state = _sqlstate(innermost) or ""
    code = innermost.args[0] if innermost.args and isinstance(innermost.args[0], int) else None
    message = driver_message(innermost)
    lowered = message.lower()
    if code is not None:
        message = f"({code}) {message}"  # MySQL's error number, as its own client prints it
    refused_login = state.startswith("28") or code in _AUTH_MYSQL_CODES or any(h in lowered for h in _AUTH)
    if refused_login:
        transient = False
    elif state[:2] in _TRANSIENT_SQLSTATE_CLASSES or code in _TRANSIENT_MYSQL_CODES:
        transient = True
    elif state:
        transient = False  # data, syntax and permission classes do not heal by themselves
    else:
        transient = any(h in lowered for h in _TRANSIENT_HINTS) or isinstance(
            innermost, (TimeoutError, ConnectionError)
        )
    if connecting is not None or refused_login:
        failure = connect_failure(innermost, connecting or ConnectTarget(""), secrets=secrets, transient=transient)
        return source_error(failure.message, transient=failure.transient, fix=failure.fix)
    prefix = f"{context}: " if context else ""
    return source_error(scrub(f"{prefix}{message}", secrets), transient=transient)


# --- connect failures: one rule for "Test connection", introspection and runs -----

RECONNECT_FIX = "Reconnect the job to a connection with the new credentials."

_ENGINE_NAMES = {"postgresql": "PostgreSQL", "mysql": "MySQL/MariaDB", "sqlite": "SQLite"}
_DIALECTS = {"postgresql": "postgresql", "postgres": "postgresql", "mysql": "mysql", "mariadb": "mysql",
             "sqlite": "sqlite", "sqlite3": "sqlite"}  # fmt: skip


@dataclass(frozen=True)
class ConnectTarget:
    """Where a connection was going: enough to name it in a message, nothing secret."""

    dialect: str  # postgresql | mysql | sqlite ("" when unknown)
    host: str = ""
    port: int | None = None
    database: str = ""

    @property
    def where(self) -> str:
        if _DIALECTS.get(self.dialect) == "sqlite":
            return self.database
        return f"{self.host or 'localhost'}:{self.port or 'default port'}"


@dataclass(frozen=True)
class ConnectFailure:
    """Why connecting failed: a fixed sentence, whether retrying later can help, and what to do."""

    message: str
    transient: bool
    fix: str = ""


# The connection never reached a server (as opposed to reaching something that is not one).
_REFUSED_HINTS = (
    "connection refused",
    "could not translate host name",
    "failed to resolve host",
    "name or service not known",
    "temporary failure in name resolution",
    "no route to host",
    "network is unreachable",
    "nodename nor servname",
)
_AUTH_HINTS = (
    "pg_hba.conf",
    "password authentication failed",
    "authentication failed",
    "no password supplied",
    "access denied for user",
)
_UNREACHABLE_HINTS = (
    "connection refused",
    "could not translate host name",
    "name or service not known",
    "no route to host",
    "network is unreachable",
    "timeout expired",
    "timed out",
    "can't connect to",
    "lost connection",
    "server closed the connection",
)
# The server is there but takes no new sessions for now.
_BUSY_HINTS = (
    "too many clients",
    "too many connections",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
)


def driver_message(exc: BaseException) -> str:
    """The driver's words for `exc` on one line, without SQLAlchemy's and libpq's wrapping."""
    args = getattr(exc, "args", ())
    # PyMySQL errors are (code, message) tuples; str() would print the tuple.
    if len(args) >= 2 and isinstance(args[0], int) and isinstance(args[1], str):
        raw = args[1]
    else:
        raw = str(exc) or type(exc).__name__
    raw = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", raw)
    # ADBC wraps libpq's words: "IO: [libpq] Failed to connect: connection to server ... failed: FATAL: ...".
    raw = re.sub(r"^(?:[A-Z_]+: )?\[libpq\][^:]*:\s*", "", raw)
    raw = re.sub(r"\b(FATAL|ERROR):\s+", "", raw)
    raw = re.sub(r"^connection failed:\s*", "", raw)
    return " ".join(raw.split())


def failure_headline(exc: BaseException, message: str) -> str | None:
    """The class of a database failure as a plain headline ("Authentication failed"...), or None."""
    lowered = message.lower()
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    sqlstate = getattr(exc, "sqlstate", None)
    if code in (1045, 1698) or sqlstate in ("28P01", "28000") or any(h in lowered for h in _AUTH_HINTS):
        return "Authentication failed"
    if code == 1049 or sqlstate == "3D000" or re.search(r"database .* does not exist", lowered):
        return "Database not found"
    if code in (1044, 1142, 1143) or sqlstate == "42501" or "permission denied" in lowered:
        return "Permission denied"
    if sqlstate == "57014" or "statement timeout" in lowered:
        return "Timed out"
    if code in (2002, 2003, 2005, 2006, 2013) or any(h in lowered for h in _UNREACHABLE_HINTS):
        return "Cannot reach the database server"
    if "unable to open database file" in lowered or "file is not a database" in lowered:
        return "Cannot open the SQLite database file"
    return None


def connect_failure(
    exc: BaseException, target: ConnectTarget, *, secrets: Sequence[str] = (), timeout_s: float = 5,
    transient: bool = False,
) -> ConnectFailure:
    """Why connecting failed, in one of a few fixed sentences: never the peer's own bytes.

    Whatever answers at host:port (a web server, Redis, a fake database) chooses the
    bytes of a driver's error; echoing them would make "Test connection" a port scanner
    and a banner grabber. Only the class of failure is reported. `transient` is the
    caller's verdict for a failure no sentence here classifies.
    """
    original = getattr(exc, "orig", None) or exc
    text = driver_message(original).lower()
    headline = failure_headline(original, text)
    where = target.where
    code = original.args[0] if original.args and isinstance(original.args[0], int) else None
    if "cleartext" in text or "clear text" in text:
        failure = ConnectFailure(f"Refused to send the password: the server at {where} asked for it in clear "
                                 "text (use a server that asks for SCRAM or a hashed password)", False)
    elif headline == "Authentication failed":
        failure = ConnectFailure("Authentication failed: the server refused the user name or password", False,
                                 RECONNECT_FIX)
    elif headline == "Database not found":
        failure = ConnectFailure(f"Database not found: the server has no database {target.database!r}", False)
    elif headline == "Permission denied":
        failure = ConnectFailure("Permission denied: the user may not connect to this database", False)
    elif code == 1040 or any(hint in text for hint in _BUSY_HINTS):
        failure = ConnectFailure(f"Server busy: {where} takes no new connections right now (too many "
                                 "connections, or starting up or shutting down)", True)
    elif "timeout expired" in text or "timed out" in text:
        failure = ConnectFailure(f"Timed out: no answer from {where} within {timeout_s:g} s", True)
    elif any(hint in text for hint in _REFUSED_HINTS):
        failure = ConnectFailure(f"Cannot reach the database server at {where} (connection refused, or no "
                                 "such host)", True)
    elif headline == "Cannot open the SQLite database file":
        failure = ConnectFailure("Cannot open the SQLite database file", False)
    else:
        engine = _ENGINE_NAMES.get(_DIALECTS.get(target.dialect, ""), "database")
        failure = ConnectFailure(f"Not a {engine} server: {where} did not answer like one", transient)
    return ConnectFailure(scrub(failure.message, secrets), failure.transient, failure.fix)


# --- BigQuery errors --------------------------------------------------------------

_BQ_TRANSIENT_REASONS = ("backenderror", "internalerror", "ratelimitexceeded", "jobratelimitexceeded")


def classify_warehouse_error(exc: BaseException, *, context: str = "") -> RunError:
    """A `WarehouseError` for a BigQuery failure; 5xx, 429, timeouts and aborted transactions are transient."""
    if isinstance(exc, RunError):
        return exc
    transient = False
    message = ""
    for link in _chain(exc):
        code = getattr(link, "code", None)
        if isinstance(code, int) and 100 <= code < 600:
            message = message or getattr(link, "message", "") or str(link)
            reasons = " ".join(
                str(e.get("reason", "")) for e in getattr(link, "errors", None) or [] if isinstance(e, dict)
            )
            # 501 is "not implemented" (the emulator's answer to BIGNUMERIC): retrying cannot help.
            transient = (code >= 500 and code != 501) or code in (408, 412, 429)
            transient = transient or any(r in reasons.lower() for r in _BQ_TRANSIENT_REASONS)
            break
        name = type(link).__name__.lower()
        if isinstance(link, (TimeoutError, ConnectionError)) or "timeout" in name or "connectionerror" in name:
            transient = True
            message = message or str(link) or type(link).__name__
            break
    message = " ".join((message or str(exc) or type(exc).__name__).split())
    lowered = message.lower()
    if "concurrent update" in lowered or "transaction is aborted" in lowered or "could not serialize" in lowered:
        transient = True
    prefix = f"{context}: " if context else ""
    return (WarehouseUnavailable if transient else WarehouseError)(scrub(f"{prefix}{message}"))
