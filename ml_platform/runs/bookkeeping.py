"""What a worker does around a run, whatever the run is (a whole run, a key range): the heartbeat thread,
bookkeeping writes retried through a short outage of the Django database, and the failure text it records."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from ml_platform.etl.errors import RunError
from ml_platform.models import JobRun

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 1.0
# Backoff for a bookkeeping write while the Django database is unreachable (~31 s in all,
# well inside ETL_HEARTBEAT_TIMEOUT).
DB_RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0)


# TEST SEAM: fault-injection tests set this to a callable taking the runner's point names
# (etl.runspec.FaultHook); production never sets it.
FAULT_HOOK: Callable[[str], None] | None = None
HEARTBEAT_THREAD_EVERY_S = 5.0


class HeartbeatThread:
    """Writes the run's heartbeat from a background thread for the whole run.

    Progress reports beat too, but a slow source query (a keyset boundary with a large OFFSET,
    the wait for a first batch) reports nothing: without this the scheduler would reap a run
    that is still working, and start a second one.
    """

    def __init__(self, run_id: int, every: float = HEARTBEAT_THREAD_EVERY_S) -> None:
        self.run_id, self.every = run_id, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"etl-heartbeat-{run_id}", daemon=True)

    def __enter__(self) -> HeartbeatThread:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.every):
                self.beat()
        finally:
            connection.close()

    def beat(self) -> None:
        try:
            with transaction.atomic():
                # skip_locked: a row another transaction holds is simply not beaten this time.
                mine = JobRun.objects.select_for_update(skip_locked=True).filter(
                    pk=self.run_id, status=JobRun.Status.RUNNING
                )
                if mine.exists():
                    mine.update(heartbeat_at=timezone.now())
        except DatabaseError as exc:
            logger.warning("run %s: heartbeat not written (%s)", self.run_id, " ".join(str(exc).split())[:200])
            try:
                connection.close()
            except DatabaseError:
                pass


class RunAborted(Exception):
    """The run record was closed by someone else (e.g. declared dead by the scheduler)."""


def db_retry[T](what: str, write: Callable[[], T], delays: tuple[float, ...] = DB_RETRY_DELAYS) -> T:
    """`write()`, retried on a fresh connection while the Django database is unreachable.

    Inside a caller's transaction nothing can be retried (the transaction is gone with
    its connection): the error propagates at once, as before.
    """
    for delay in (*delays, None):
        try:
            return write()
        except (OperationalError, InterfaceError) as exc:
            if connection.in_atomic_block:
                raise
            try:
                connection.close()  # the next query reconnects
            except DatabaseError:
                pass
            if delay is None:
                raise
            logger.warning("%s failed (%s); retrying in %g s", what, " ".join(str(exc).split())[:300], delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def run_error_text(exc: RunError) -> str:
    """What the run history shows for a failure: the message, then what to do about it when known.

    A source that refuses to connect reads exactly as "Test connection" says it (the
    sentence comes from `etl.errors.connect_failure`, wherever the run was connecting).
    """
    fix = getattr(exc, "fix", "")
    return f"{exc}. {fix}" if fix else str(exc)


def storable_text(text: str) -> str:
    """`text` as PostgreSQL can store it: a NUL byte (a source value quoted in an error) spelled '\\x00'."""
    return text.replace("\x00", "\\x00")


