"""Django-side glue between saved Connections and the pure introspection code.

Views and services call these; `ml_platform/etl/sources/` never sees a model.
Two rules live here because they need settings:
- every connection goes through the source policy (`etl/sources/policy.py`) before
  anything is opened: allow-listed options, SQLite files only under ETL_SQLITE_ROOT,
  no sockets, the host lists;
- a source call made for a web request (`interactive=True`) runs under a hard deadline
  and a per-user and per-process cap, so a silent or slow database cannot pin the web
  server's threads: the request answers "Timed out" at the deadline while the call
  finishes (bounded by the driver's own timeouts) in the background.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import defaultdict
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from ml_platform.etl import sources as cm
from ml_platform.etl.sources import policy as source_policy
from ml_platform.etl.types import SourceColumn
from ml_platform.models import Connection


def policy() -> source_policy.SourcePolicy:
    """The deployment's source policy, from settings."""
    protected = []
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith(("postgresql", "mysql")):
        engine = "postgresql" if db["ENGINE"].endswith("postgresql") else "mysql"
        protected.append(source_policy.ProtectedDatabase(
            engine=engine, host=db.get("HOST") or "localhost",
            port=int(db.get("PORT") or source_policy.DEFAULT_PORTS[engine]), database=db.get("NAME") or ""))
    forbidden = [Path(db["NAME"])] if db["ENGINE"].endswith("sqlite3") else []
    return source_policy.SourcePolicy(
        sqlite_root=settings.ETL_SQLITE_ROOT,
        forbidden_files=tuple(forbidden),
        forbidden_dirs=(Path(settings.DATA_DIR),),
        ssl_dir=settings.ETL_SSL_DIR,
        allow_unix_sockets=settings.ETL_ALLOW_UNIX_SOCKETS,
        host_rules=settings.ETL_SOURCE_HOSTS,
        protected=tuple(protected),
    )


def checked_params(params: cm.ConnectionParams) -> cm.ConnectionParams:
    """`params` as the policy allows them, or SourceError with the policy's reason."""
    try:
        return source_policy.enforce(params, policy())
    except source_policy.PolicyViolation as exc:
        raise cm.SourceError(exc.message) from None


def _raw_params(connection: Connection) -> cm.ConnectionParams:
    """The connection's fields of the same names as the parameters' (engine, host, ..., password, options)."""
    values = {f.name: getattr(connection, f.name) for f in dataclasses.fields(cm.ConnectionParams)}
    return cm.ConnectionParams(**values | {"options": dict(connection.options or {})})


def params_for(connection: Connection) -> cm.ConnectionParams:
    return checked_params(_raw_params(connection))


# --------------------------------------------------------------------------- deadlines


class SourceBusy(cm.SourceError):
    """Too many source calls in progress for this user or this server process; try again shortly."""


_user_calls: defaultdict[Any, int] = defaultdict(int)
_process_calls = 0
_calls_changed = threading.Condition()


def _acquire(user_key: Any) -> None:
    """A slot for one call, waiting briefly (a burst of quick calls queues; a stuck source is refused)."""
    global _process_calls

    def free() -> bool:
        return (_user_calls[user_key] < settings.ETL_SOURCE_CALLS_PER_USER
                and _process_calls < settings.ETL_SOURCE_CALLS_PER_PROCESS)

    with _calls_changed:
        if not _calls_changed.wait_for(free, timeout=settings.ETL_SOURCE_CALL_QUEUE_WAIT):
            if _user_calls[user_key] >= settings.ETL_SOURCE_CALLS_PER_USER:
                raise SourceBusy(f"You already have {_user_calls[user_key]} database requests in progress: wait "
                                 f"for them to finish (they time out after {settings.ETL_SOURCE_CALL_TIMEOUT:g} s) "
                                 "and try again.")
            raise SourceBusy("The server is busy with other database requests: try again in a few seconds.")
        _user_calls[user_key] += 1
        _process_calls += 1


def _release(user_key: Any) -> None:
    global _process_calls
    with _calls_changed:
        _process_calls -= 1
        _user_calls[user_key] -= 1
        if _user_calls[user_key] <= 0:
            del _user_calls[user_key]
        _calls_changed.notify_all()


def call_with_deadline[T](user_key: Any, fn: Callable[[], T], *, timeout: float | None = None,
                       what: str = "The database") -> T:
    """`fn()` under a hard deadline, counted against `user_key`'s and this process's caps.

    A call still running at the deadline is abandoned (a daemon thread the driver's own
    timeouts end) and keeps its slot until it really ends, so a user cannot pile up
    abandoned calls either.
    """
    deadline = settings.ETL_SOURCE_CALL_TIMEOUT if timeout is None else timeout
    _acquire(user_key)
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting request below
            outcome["error"] = exc
        finally:
            _release(user_key)

    worker = threading.Thread(target=work, name="source-call", daemon=True)
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        raise cm.SourceUnavailable(f"Timed out: {what} did not answer within {deadline:g} s.")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# --------------------------------------------------------------------------- calls


def split_table(qualified: str) -> tuple[str | None, str]:
    """'schema.table' -> (schema, table); a bare name has no schema.

    Only the first dot separates: table names may contain dots themselves.
    """
    if "." in qualified:
        schema, table = qualified.split(".", 1)
        return (schema or None), table
    return None, qualified


def qualified_name(schema: str | None, table: str) -> str:
    return f"{schema}.{table}" if schema else table


# Set by `SourceCallScope` for the length of a web request: whose calls these are.
_requester: ContextVar[Any] = ContextVar("source_requester", default=None)


class SourceCallScope:
    """Middleware: every source call made while serving a request gets the deadline and the caps."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        token = _requester.set(("user", user.pk) if user is not None and user.pk else ("ip", request.META.get(
            "REMOTE_ADDR")))
        try:
            return self.get_response(request)
        finally:
            _requester.reset(token)


def interactive[T](fn: Callable[[], T], *, timeout: float | None = None, what: str = "The database") -> T:
    """`fn()` with the deadline when a web request is waiting for it; as is in the worker."""
    requester = _requester.get()
    if requester is None:
        return fn()
    return call_with_deadline(requester, fn, timeout=timeout, what=what)


def list_tables(connection: Connection) -> list[cm.TableInfo]:
    params = params_for(connection)
    return interactive(lambda: cm.list_tables(params))


def get_columns(connection: Connection, schema: str | None, table: str) -> list[SourceColumn]:
    params = params_for(connection)
    return interactive(lambda: cm.get_columns(params, schema, table))


def preview(connection: Connection, schema: str | None, table: str, *, limit: int = 20,
            columns: list[str] | None = None) -> cm.Preview:
    params = params_for(connection)
    return interactive(lambda: cm.preview_rows(params, schema, table, limit=limit, columns=columns))


def test_params(params: cm.ConnectionParams) -> cm.TestResult:
    """Test connection: the policy first, then one probe (under the caps when a user waits)."""
    try:
        params = checked_params(params)
        return interactive(lambda: cm.test_connection(params))
    except cm.SourceError as exc:
        return cm.TestResult(ok=False, error=exc.message)


def test_connection(connection: Connection) -> cm.TestResult:
    return test_params(_raw_params(connection))
