"""Fault injection on real services: a run meets a fault of real operations mid-way.

Each test injects one fault while a run is under way (a terminated source backend, a
BigQuery outage, a worker killed mid-commit, a Django database outage), then checks the
three things an operator relies on:

- the run ends in a clear state, with the reason in `JobRun.error`;
- the destination was either left unchanged or holds whole committed checkpoints only
  (checksums: rows, distinct ids, sums), never a part of one and never a duplicate;
- the next run leaves the table exactly equal to the source.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from ml_platform.etl import staging
from ml_platform.etl.bigquery import BigQuery
from ml_platform.etl.runner import RunProgress
from ml_platform.models import EtlJob, JobRun
from ml_platform.runs import lifecycle, records
from ml_platform.runs.lifecycle import execute_run, run_sync
from ml_platform.services import connections, workspaces
from tests.ops.test_background import make_job
from tests.plugins.harness import (
    ROOT,
    django_subprocess_env,
    free_port,
    prepare_emulator_offline,
    service_missing,
    unique_name,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

Checksum = tuple[int, int, int, Decimal]


# --------------------------------------------------------------------------- helpers


def create_orders(source, rows: int) -> None:
    source.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, note text)",
        f"INSERT INTO orders SELECT g, g * 1.5, md5(g::text) FROM generate_series(1, {rows}) g",
        "ANALYZE",
    )


def checksum(bq: BigQuery, dataset: str, table: str = "orders") -> Checksum:
    row = bq.query(
        f"SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d, IFNULL(SUM(id), 0) AS s, "
        f"IFNULL(SUM(amount), 0) AS a FROM `{dataset}.{table}`"
    )[0]
    return int(row["n"]), int(row["d"]), int(row["s"]), Decimal(row["a"])


def source_checksum(source, through: int | None = None) -> Checksum:
    where = f" WHERE id <= {int(through)}" if through is not None else ""
    ((n, s, a),) = source.query(f"SELECT COUNT(*), COALESCE(SUM(id), 0), COALESCE(SUM(amount), 0) FROM orders{where}")
    return int(n), int(n), int(s), Decimal(a)


def max_id(bq: BigQuery, dataset: str) -> int:
    value = bq.query(f"SELECT MAX(id) AS m FROM `{dataset}.orders`")[0]["m"]
    return int(value or 0)


def assert_unchanged_or_whole_checkpoints(bq: BigQuery, dataset: str, source, before: Checksum) -> int:
    """The destination is as it was, or holds exactly the source's rows up to its top id (whole keyset
    checkpoints), with no duplicates. Returns that top id (0 when unchanged and empty)."""
    after = checksum(bq, dataset)
    if after == before:
        return max_id(bq, dataset)
    top = max_id(bq, dataset)
    assert after == source_checksum(source, through=top), f"partial or duplicated load: {after} (top id {top})"
    return top


def watermark(job: EtlJob) -> int | None:
    value = EtlJob.objects.get(pk=job.pk).watermark
    return int(value["value"]) if value else None


def wait_for(predicate, timeout: float = 90.0, what: str = "condition", interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def latest_run(job: EtlJob) -> JobRun | None:
    return JobRun.objects.filter(job=job).order_by("-pk").first()


class BackgroundRun:
    """`run_sync` on a thread (with its own database connection), so a fault can be injected meanwhile.

    `phase` is the runner's latest progress phase (the `echo` of run_sync: extracting, loading, committing...).
    """

    def __init__(self, job: EtlJob) -> None:
        self.run: JobRun | None = None
        self.error: BaseException | None = None
        self.phase = ""
        self.thread = threading.Thread(target=self._main, args=(job,), daemon=True)
        self.thread.start()

    def _echo(self, progress: RunProgress) -> None:
        self.phase = progress.phase

    def _main(self, job: EtlJob) -> None:
        try:
            self.run = run_sync(job=job, echo=self._echo)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            self.error = exc
        finally:
            connection.close()

    def result(self, timeout: float) -> JobRun:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the run did not end within {timeout:.0f} s"
        if self.error is not None:
            raise self.error
        assert self.run is not None
        return self.run


def start_worker(env: dict, log: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay", "--interval", "0.1", *extra],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,  # noqa: SIM115
    )


# --------------------------------------------------------------------------- 1. source backend terminated


def terminate_extraction(source, timeout: float = 15.0) -> list[str]:
    """pg_terminate_backend on the backend that is reading `orders` (not on idle pooled sessions)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        killed = source.query(
            "SELECT left(query, 120), pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{source.database}' AND pid <> pg_backend_pid() AND state = 'active' "
            # The extraction itself (the fast path streams it with COPY), not the cursor-range query before it.
            "AND query ILIKE '%orders%' AND query ILIKE 'COPY%'"
        )
        if killed:
            return [q for q, ok in killed if ok]
        time.sleep(0.01)
    raise AssertionError("no backend was reading orders")


def test_it_retries_a_run_whose_source_connection_is_terminated_mid_extraction(
    user, pg_source, bq, bq_dataset, bq_settings, settings
) -> None:
    # The PostgreSQL fast path reads ~500k rows/s and progress is written once a second:
    # 1.5M rows keep the extraction going for ~3 s, long enough to be caught mid-way.
    create_orders(pg_source, 1_500_000)
    settings.ETL_CHUNK_ROWS = 5_000
    conn = connections.connection_create(owner=user, name="pg", **pg_source.as_connection_fields())
    job = make_job(user, conn, bq_dataset)
    before = checksum(bq, bq_dataset)

    background = BackgroundRun(job)
    # Kill the reading backend the moment it shows up: waiting for the first progress note first lost the race
    # on a busy machine (the note can come after the last row was read).
    killed = terminate_extraction(pg_source, timeout=60)
    run = background.result(timeout=120)

    assert killed and "orders" in killed[0].lower()
    assert run.status == "queued" and run.attempt == 2, (run.status, run.error)
    # libpq reports the server's FATAL message, or only the closed socket when that came first.
    reason = run.error.lower()
    assert "will retry" in reason and "reading orders" in reason, run.error
    assert "terminating connection" in reason or "server closed the connection" in reason, run.error
    assert checksum(bq, bq_dataset) == before  # one commit per run: nothing of it landed
    assert watermark(job) is None
    # The retry (what the worker runs after the backoff) loads everything, once.
    again = execute_run(run_id=run.pk)
    assert again.status == "succeeded", again.error
    assert checksum(bq, bq_dataset) == source_checksum(pg_source)
    assert watermark(job) == 1_500_000


# --------------------------------------------------------------------------- 2. BigQuery goes away


BIGQUERY_RETRY_DEADLINE = BigQuery("test-project").retry_deadline  # what the product's wrapper uses


class PersistentEmulator:
    """A bqemulator of this test only, file-backed, restartable on the same ports."""

    def __init__(self, data_dir: Path) -> None:
        self.binary = Path(sys.executable).with_name("bqemulator")
        self.data_dir = data_dir
        self.rest, self.grpc = free_port(), free_port()
        self.host = f"http://127.0.0.1:{self.rest}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                str(self.binary),
                "start",
                "--rest-port",
                str(self.rest),
                "--grpc-port",
                str(self.grpc),
                "--persistent",
                "--data-dir",
                str(self.data_dir),
                "--project",
                "test-project",
                "--log-level",
                "warning",
            ],
            stdout=open(self.data_dir / "emulator.log", "a"),
            stderr=subprocess.STDOUT,  # noqa: SIM115
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.host}/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"bqemulator did not start: {(self.data_dir / 'emulator.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def own_emulator(tmp_path: Path, settings) -> Iterator[PersistentEmulator]:
    if not Path(sys.executable).with_name("bqemulator").exists():
        service_missing("bqemulator is not installed in this environment")
    prepare_emulator_offline()
    emulator = PersistentEmulator(tmp_path / "bigquery")
    emulator.start()
    settings.BIGQUERY_EMULATOR_HOST = emulator.host
    settings.BIGQUERY_PROJECT = "test-project"
    try:
        yield emulator
    finally:
        emulator.stop()


def test_it_retries_a_run_whose_bigquery_goes_away_mid_load(
    user, pg_source, settings, own_emulator, monkeypatch
) -> None:
    total, checkpoint = 300_000, 100_000
    create_orders(pg_source, total)
    settings.ETL_CHUNK_ROWS = 5_000
    settings.ETL_CHECKPOINT_ROWS = checkpoint
    # One part per checkpoint (no smaller parts toward its end): the next checkpoint's first load starts
    # only once it is extracted, after the outage began, so it is a fresh request (see below).
    monkeypatch.setattr(staging, "TAIL_PART_ROWS", checkpoint)
    bq = BigQuery(project="test-project", emulator_host=own_emulator.host)
    dataset = unique_name("ds")
    bq.create_dataset(dataset)
    workspaces.dataset_assign(workspace=workspaces.personal_workspace(user), dataset=dataset)  # alice's dataset
    conn = connections.connection_create(owner=user, name="pg", **pg_source.as_connection_fields())
    job = make_job(user, conn, dataset)
    before = checksum(bq, dataset)

    background = BackgroundRun(job)
    # The first checkpoint is committed; the next one is being extracted and its load into staging starts
    # within a fraction of a second. That load, a fresh request, meets the outage for its whole retry
    # deadline. (A load job already submitted would keep being polled until the job timeout, 15 min,
    # and ride out an outage like this one: the emulator keeps its jobs across the restart.)
    wait_for(lambda: background.phase == "checkpoint", timeout=60, what="the first checkpoint", interval=0.01)
    own_emulator.stop()
    stopped = time.monotonic()
    # Down for longer than the client's retry deadline (30 s): the load gives up, and the run with it.
    # Then back on the same ports with the same data, while the failed run cleans up.
    time.sleep(max(0.0, stopped + BIGQUERY_RETRY_DEADLINE + 5 - time.monotonic()))
    own_emulator.start()
    run = background.result(timeout=90)

    assert run.status == "queued" and run.attempt == 2, (run.status, run.error)
    assert "will retry" in run.error and ("kept failing" in run.error or "cannot reach" in run.error), run.error
    # The committed checkpoint survived the restart; nothing of the interrupted one is there.
    top = assert_unchanged_or_whole_checkpoints(bq, dataset, pg_source, before)
    assert top == checkpoint == watermark(job)
    again = execute_run(run_id=run.pk)
    assert again.status == "succeeded", again.error
    assert again.rows_loaded == total - checkpoint
    assert checksum(bq, dataset) == source_checksum(pg_source)
    # No staging table is left behind (the failed run's, or the one it could not drop); the commit ledger stays.
    assert [t.table_id for t in bq.list_tables(dataset)] == ["_etl_ledger", "orders"]


# --------------------------------------------------------------------------- 3. worker killed mid-commit


class StagingWatch:
    """Polls the run's staging table: when it holds a whole checkpoint past the persisted watermark,
    that checkpoint's commit is starting."""

    def __init__(self, bq: BigQuery, dataset: str, job: EtlJob, rows: int) -> None:
        self.bq, self.dataset, self.job, self.rows = bq, dataset, job, rows
        self.table: str | None = None

    def commit_starting(self) -> bool:
        committed = watermark(self.job)
        if committed is None:
            return False
        if self.table is None:  # one staging table per run, created before the first checkpoint
            prefix = f"_stg_{self.job.pk}_"
            tables = self.bq.client.list_tables(f"{self.bq.project}.{self.dataset}")
            self.table = next((t.table_id for t in tables if t.table_id.startswith(prefix)), None)
            if self.table is None:
                return False
        sql = f"SELECT COUNT(*) AS n, MIN(id) AS lo FROM `{self.dataset}.{self.table}`"
        row = self.bq.query(sql)[0]
        return row["n"] == self.rows and row["lo"] is not None and row["lo"] > committed


def test_it_fails_a_worker_killed_mid_commit_and_the_next_run_has_no_duplicates(
    user, pg_source, bq, bq_dataset, bq_settings, tmp_path
) -> None:
    total, checkpoint = 240_000, 40_000
    create_orders(pg_source, total)
    conn = connections.connection_create(owner=user, name="pg", **pg_source.as_connection_fields())
    job = make_job(user, conn, bq_dataset)
    before = checksum(bq, bq_dataset)
    run = lifecycle.run_enqueue(job=job)
    env = django_subprocess_env(
        {
            "BIGQUERY_EMULATOR_HOST": bq_settings.BIGQUERY_EMULATOR_HOST,
            "ETL_SPOOL_DIR": str(tmp_path / "spool"),
            "ETL_CHECKPOINT_ROWS": str(checkpoint),
            "ETL_CHUNK_ROWS": "5000",
        }
    )
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        # After the first checkpoint, wait until the next one is wholly in staging: its commit is starting.
        wait_for(lambda: watermark(job) is not None, timeout=90, what="the first checkpoint")
        staging = StagingWatch(bq, bq_dataset, job, checkpoint)
        wait_for(staging.commit_starting, timeout=60, what="a staged checkpoint", interval=0.01)
        time.sleep(0.05)  # into the commit (a COUNT on staging, then the script: ~0.2 s here)
        os.killpg(worker.pid, signal.SIGKILL)
    finally:
        worker.wait(timeout=10)

    assert JobRun.objects.get(pk=run.pk).status == "running"
    top = assert_unchanged_or_whole_checkpoints(bq, bq_dataset, pg_source, before)
    persisted = watermark(job)
    assert persisted is not None and top % checkpoint == 0 and 0 < top < total
    # The kill may land before the commit or after it but before the watermark was written: never further.
    assert top - persisted in (0, checkpoint)

    assert records.runs_fail_stale() == 0  # its heartbeat is still fresh
    JobRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert records.runs_fail_stale() == 1
    dead = JobRun.objects.get(pk=run.pk)
    assert dead.status == "failed" and "stopped responding" in dead.error

    again = run_sync(job=EtlJob.objects.get(pk=job.pk))
    assert again.status == "succeeded", again.error
    assert checksum(bq, bq_dataset) == source_checksum(pg_source)  # count == distinct ids: no duplicates
    # It resumed from the commit ledger's watermark (not the app's cached one), re-reading the default
    # window of 1,000 ids below it, and committed only what the destination lacked.
    assert again.rows_extracted == total - top + 1001 and again.rows_loaded == total - top


# --------------------------------------------------------------------------- 4. the Django database goes away


class CuttableProxy:
    """A TCP proxy to PostgreSQL that can drop every connection and refuse new ones for a while."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.server: socket.socket | None = None
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()

    def open(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self.lock:
                self.sockets.difference_update((a, b))

    def close(self) -> None:
        """Stop listening (new connections are refused) and cut every open one."""
        if self.server is not None:
            try:
                self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the listening thread
            except OSError:
                pass
            self.server.close()
            self.server = None
        with self.lock:
            sockets, self.sockets = list(self.sockets), set()
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def cut(self, seconds: float) -> None:
        self.close()
        time.sleep(seconds)
        self.open()


def test_it_finishes_a_run_through_a_django_database_outage(
    user, pg_source, bq, bq_dataset, bq_settings, tmp_path
) -> None:
    total = 400_000
    create_orders(pg_source, total)
    conn = connections.connection_create(owner=user, name="pg", **pg_source.as_connection_fields())
    job = make_job(user, conn, bq_dataset)
    before = checksum(bq, bq_dataset)
    run = lifecycle.run_enqueue(job=job)
    db = connection.settings_dict
    proxy = CuttableProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
    proxy.open()
    env = django_subprocess_env(
        {
            "BIGQUERY_EMULATOR_HOST": bq_settings.BIGQUERY_EMULATOR_HOST,
            "ETL_SPOOL_DIR": str(tmp_path / "spool"),
            "ETL_CHECKPOINT_ROWS": "40000",
            "ETL_CHUNK_ROWS": "5000",
        }
    )
    env["DATABASE_URL"] = f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}"
    log = tmp_path / "worker.log"
    worker = start_worker(env, log, "--batch")  # exits once the queue is empty
    try:
        wait_for(lambda: watermark(job) is not None, timeout=90, what="the first checkpoint")
        cut_at = watermark(job)
        proxy.cut(3.0)  # every connection of the worker dropped, new ones refused for 3 s
        worker.wait(timeout=120)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
        proxy.close()

    output = log.read_text()
    run.refresh_from_db()
    assert cut_at < total, "the run ended before the outage"
    assert worker.returncode == 0, output[-3000:]
    assert run.status == "succeeded", (run.error, output[-3000:])
    assert "retrying" in output, output[-3000:]  # the outage did hit the run's bookkeeping
    # No committed watermark was lost, and the destination is the source.
    assert watermark(job) == total and run.rows_loaded == total
    assert assert_unchanged_or_whole_checkpoints(bq, bq_dataset, pg_source, before) == total
    assert checksum(bq, bq_dataset) == source_checksum(pg_source)

    pg_source.execute(
        f"INSERT INTO orders SELECT g, g * 1.5, md5(g::text) FROM generate_series({total + 1}, {total + 1000}) g"
    )
    again = run_sync(job=EtlJob.objects.get(pk=job.pk))
    assert again.status == "succeeded", again.error
    assert again.rows_extracted == 1000 + 1001 and again.rows_loaded == 1000  # + the re-read window
    assert checksum(bq, bq_dataset) == source_checksum(pg_source)


# --------------------------------------------------------------------------- 4b. the same outage, for each strategy

OUTAGE_ROWS = 30_000


def table_fingerprint(rows: list[tuple]) -> dict:
    """Count, distinct keys, duplicates and a checksum per column of (id, amount, note) rows."""
    import hashlib

    ids = [r[0] for r in rows]
    columns = list(zip(*rows, strict=True)) if rows else [(), (), ()]
    sums = [hashlib.sha256(repr(sorted(map(str, col))).encode()).hexdigest()[:16] for col in columns]
    return {"count": len(rows), "keys": len(set(ids)), "duplicates": len(ids) - len(set(ids)), "columns": sums}


def dest_fingerprint(bq: BigQuery, dataset: str) -> dict:
    rows = bq.query(f"SELECT id, amount, note FROM `{dataset}.orders`")
    return table_fingerprint([(int(r["id"]), Decimal(r["amount"]).quantize(Decimal("0.01")), r["note"]) for r in rows])


def source_fingerprint(source) -> dict:
    rows = source.query("SELECT id, amount, note FROM orders")
    return table_fingerprint([(int(i), Decimal(a).quantize(Decimal("0.01")), n) for i, a, n in rows])


def ledger_rows(bq: BigQuery, dataset: str, run: JobRun, kind: str) -> int:
    try:
        found = bq.query(
            f"SELECT COUNT(*) AS n FROM `{dataset}._etl_ledger` "  # noqa: S608 - test ids
            f"WHERE job = '{run.job_id}' AND run = '{run.pk}' AND kind = '{kind}'"
        )
    except Exception:  # noqa: BLE001 - the ledger table does not exist before the run's first claim
        return 0
    return int(found[0]["n"])


@pytest.mark.parametrize("strategy", ["replace", "append", "incremental", "merge"])
def test_it_finishes_each_strategys_run_through_a_django_database_outage(
    strategy, user, pg_source, bq, bq_dataset, bq_settings, tmp_path
) -> None:
    """The Django database is unreachable (every connection cut, new ones refused) from the run's claim on
    BigQuery until after its commit landed: the run's bookkeeping waits it out, nothing is loaded twice."""
    create_orders(pg_source, OUTAGE_ROWS)
    conn = connections.connection_create(owner=user, name="pg", **pg_source.as_connection_fields())
    cursor = "id" if strategy in ("incremental", "merge") else ""
    job = make_job(user, conn, bq_dataset, load_strategy=strategy, cursor_column=cursor,
                   merge_key=["id"] if strategy == "merge" else None, confirm_replace=strategy == "replace")
    run = lifecycle.run_enqueue(job=job)
    db = connection.settings_dict
    proxy = CuttableProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
    proxy.open()
    env = django_subprocess_env(
        {
            "BIGQUERY_EMULATOR_HOST": bq_settings.BIGQUERY_EMULATOR_HOST,
            "ETL_SPOOL_DIR": str(tmp_path / "spool"),
            "ETL_CHECKPOINT_ROWS": "10000",
            "ETL_CHUNK_ROWS": "5000",
        }
    )
    env["DATABASE_URL"] = f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}"
    log = tmp_path / "worker.log"
    worker = start_worker(env, log, "--batch")  # exits once the queue is empty
    try:
        # The run's claim on BigQuery comes after every read of the app database that starts a run.
        wait_for(lambda: ledger_rows(bq, bq_dataset, run, "claim") > 0, timeout=90, what="the run's claim")
        proxy.close()
        committed_before_outage = ledger_rows(bq, bq_dataset, run, "unit")
        wait_for(lambda: ledger_rows(bq, bq_dataset, run, "unit") > 0, timeout=90, what="the run's commit")
        time.sleep(1.5)  # the run's records of its commit meet the outage too
        proxy.open()
        worker.wait(timeout=120)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
        proxy.close()

    output = log.read_text()
    run.refresh_from_db()
    assert committed_before_outage == 0, "the run committed before the outage"
    assert worker.returncode == 0, output[-3000:]
    assert run.status == "succeeded", (run.error, output[-3000:])
    assert "retrying" in output, output[-3000:]  # the outage did hit the run's bookkeeping
    assert run.rows_loaded == OUTAGE_ROWS
    expected = source_fingerprint(pg_source)
    assert expected["duplicates"] == 0 and dest_fingerprint(bq, bq_dataset) == expected
    if cursor:
        assert watermark(job) == OUTAGE_ROWS  # no committed watermark was lost

    if strategy == "append":
        return  # an append run copies the whole source again, by design
    # The next run carries the source's changes exactly once.
    pg_source.execute(f"INSERT INTO orders SELECT g, g * 1.5, md5(g::text) FROM generate_series("
                      f"{OUTAGE_ROWS + 1}, {OUTAGE_ROWS + 500}) g")
    if strategy == "replace":
        pg_source.execute("UPDATE orders SET note = 'changed' WHERE id <= 10", "DELETE FROM orders WHERE id BETWEEN 11 AND 20")
    again = run_sync(job=EtlJob.objects.get(pk=job.pk))
    assert again.status == "succeeded", again.error
    assert dest_fingerprint(bq, bq_dataset) == source_fingerprint(pg_source)
