"""Background execution: the real worker, two concurrent schedulers, dead workers, retries, Celery."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from ml_platform.models import EtlJob, JobRun
from ml_platform.runs import lifecycle, records
from ml_platform.services import connections, jobs
from tests.plugins.harness import ROOT, django_subprocess_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _emulator(bq_settings):
    return bq_settings


@pytest.fixture
def orders(pg_source):
    pg_source.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, note text)",
        "INSERT INTO orders SELECT g, g * 1.5, CASE WHEN g % 7 = 0 THEN NULL ELSE 'n' || g END "
        "FROM generate_series(1, 3000) g",
        "ANALYZE",
    )
    return pg_source


def make_job(user, connection, dataset: str, name: str = "orders", **extra) -> EtlJob:
    from ml_platform.services.sources import get_columns

    columns = get_columns(connection, "public", "orders")
    return jobs.job_create(owner=user, name=name, connection=connection, source_schema="public",
                           source_table="orders", source_columns=columns, destination_dataset=dataset,
                           destination_table=extra.pop("table", name), use_existing_table=False,
                           load_strategy=extra.pop("load_strategy", "incremental"),
                           cursor_column=extra.pop("cursor_column", "id"), **extra)


def wait_for(predicate, timeout: float = 90.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def run_status(run_id: int) -> str:
    return JobRun.objects.get(pk=run_id).status


def assert_table_equals_source(bq, dataset: str, table: str, source) -> None:
    rows = bq.query(f"SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d, SUM(id) AS s, SUM(amount) AS a "
                    f"FROM `{dataset}.{table}`")[0]
    (n, s, a), = source.query("SELECT COUNT(*), SUM(id), SUM(amount) FROM orders")
    assert (rows["n"], rows["d"], int(rows["s"]), rows["a"]) == (n, n, int(s), a)


def scheduler_once(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "manage.py", "etl_scheduler", "--once"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_it_runs_a_queued_job_on_the_real_worker(user, orders, bq, bq_dataset, task_worker) -> None:
    conn = connections.connection_create(owner=user, name="pg", **orders.as_connection_fields())
    job = make_job(user, conn, bq_dataset)
    run = lifecycle.run_enqueue(job=job)
    wait_for(lambda: run_status(run.pk) in ("succeeded", "failed"), what="the run to finish")
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert run.rows_loaded == 3000 and run.watermark_after == {"type": "int", "value": "3000"}
    assert_table_equals_source(bq, bq_dataset, "orders", orders)


def test_it_enqueues_each_due_job_once_with_two_concurrent_schedulers(user, orders, bq, bq_dataset) -> None:
    conn = connections.connection_create(owner=user, name="pg", **orders.as_connection_fields())
    scheduled = [make_job(user, conn, bq_dataset, name=f"job{i}", schedule="* * * * *") for i in range(12)]
    paused = make_job(user, conn, bq_dataset, name="paused", schedule="* * * * *")
    jobs.job_pause(job=paused)
    past = timezone.now() - timedelta(minutes=1)
    EtlJob.objects.update(next_run_at=past)
    env = django_subprocess_env()
    for _ in range(3):  # three rounds of two racing schedulers
        first, second = scheduler_once(env), scheduler_once(env)
        for proc in (first, second):
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0, out
        EtlJob.objects.exclude(pk=paused.pk).update(next_run_at=past)  # due again, but the run is still queued
    for job in scheduled:
        assert JobRun.objects.filter(job=job).count() == 1, job.name
        job.refresh_from_db()
    assert not JobRun.objects.filter(job=paused).exists()


def test_it_fails_a_dead_workers_run_and_the_next_run_has_no_duplicates(user, pg_source, bq, bq_dataset, settings,
                                                                        tmp_path) -> None:
    pg_source.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, note text)",
        "INSERT INTO orders SELECT g, g * 1.5, md5(g::text) FROM generate_series(1, 400000) g",
        "ANALYZE",
    )
    conn = connections.connection_create(owner=user, name="pg", **pg_source.as_connection_fields())
    job = make_job(user, conn, bq_dataset)
    run = lifecycle.run_enqueue(job=job)
    env = django_subprocess_env({"BIGQUERY_EMULATOR_HOST": settings.BIGQUERY_EMULATOR_HOST,
                                 "ETL_SPOOL_DIR": str(tmp_path), "ETL_CHECKPOINT_ROWS": "50000",
                                 "ETL_CHUNK_ROWS": "10000"})
    worker = subprocess.Popen([sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay",
                               "--interval", "0.1"], cwd=ROOT, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Kill the worker after its first committed checkpoint, while the run is still going.
        wait_for(lambda: EtlJob.objects.get(pk=job.pk).watermark is not None, timeout=120,
                 what="the first checkpoint")
        os.killpg(worker.pid, signal.SIGKILL)
    finally:
        worker.wait(timeout=10)
    assert run_status(run.pk) == "running"
    committed = int(EtlJob.objects.get(pk=job.pk).watermark["value"])
    assert 0 < committed < 400000
    assert records.runs_fail_stale() == 0  # its heartbeat is still fresh
    JobRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert records.runs_fail_stale() == 1
    run.refresh_from_db()
    assert run.status == "failed" and "stopped responding" in run.error
    # The job can run again: it resumes after the checkpoint and ends exactly equal to the source.
    from ml_platform.runs.lifecycle import run_sync

    # The killed worker may have committed a further checkpoint to BigQuery after the one the app database
    # recorded: the resume counts from what the table holds, not from the app database's last note.
    landed = bq.query(f"SELECT COUNT(*) AS n FROM `{bq_dataset}.orders`")[0]["n"]
    assert committed <= landed < 400000 and landed % 50000 == 0
    again = run_sync(job=EtlJob.objects.get(pk=job.pk))
    assert again.status == "succeeded", again.error
    assert again.rows_loaded == 400000 - landed
    assert_table_equals_source(bq, bq_dataset, "orders", pg_source)


class FlakyProxy:
    """A TCP port that refuses connections until opened, then forwards to PostgreSQL."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()  # nothing listens yet: connection refused
        self.server: socket.socket | None = None

    def open(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.server is not None:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
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

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


def test_it_retries_a_transient_failure_and_succeeds(user, orders, bq, bq_dataset, settings) -> None:
    settings.ETL_RETRY_BASE_SECONDS = 1
    conn = connections.connection_create(owner=user, name="pg", **orders.as_connection_fields())
    job = make_job(user, conn, bq_dataset)
    proxy = FlakyProxy((orders.host, orders.port))
    connections.connection_update(connection=conn, port=proxy.port)
    from ml_platform.runs.lifecycle import execute_run

    run = records.run_enqueue_record(job=EtlJob.objects.get(pk=job.pk))
    first = execute_run(run_id=run.pk)
    assert first.status == "queued" and first.attempt == 2
    assert "will retry" in first.error and "refused" in first.error.lower()
    proxy.open()
    try:
        second = execute_run(run_id=run.pk)
    finally:
        proxy.close()
    assert second.status == "succeeded", second.error
    assert_table_equals_source(bq, bq_dataset, "orders", orders)


def test_it_does_not_retry_a_permanent_failure(user, orders, bq, bq_dataset, pg_password_role) -> None:
    role, password = pg_password_role
    orders.execute(f"GRANT SELECT ON orders TO {role}")
    conn = connections.connection_create(owner=user, name="pg", **{**orders.as_connection_fields(),
                                                                    "username": role, "password": password})
    job = make_job(user, conn, bq_dataset)
    connections.connection_update(connection=conn, password="rotated-away")
    from ml_platform.runs.lifecycle import execute_run

    run = records.run_enqueue_record(job=EtlJob.objects.get(pk=job.pk))
    done = execute_run(run_id=run.pk)
    assert done.status == "failed" and done.attempt == 1
    assert "authentication" in done.error.lower() and "rotated-away" not in done.error
    assert bq.row_count(bq_dataset, "orders") == 0


def test_it_runs_a_job_through_celery_on_redis(user, orders, bq, bq_dataset, settings, tmp_path) -> None:
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=3).ping()
    except redis.exceptions.ConnectionError as exc:
        from tests.plugins.harness import service_missing

        service_missing(f"Redis is not answering: {exc}")
    broker = "redis://127.0.0.1:6379/15"
    redis.Redis.from_url(broker).flushdb()
    conn = connections.connection_create(owner=user, name="pg", **orders.as_connection_fields())
    job = make_job(user, conn, bq_dataset)
    env = django_subprocess_env({"TASKS_BACKEND": "django_tasks_celery.CeleryBackend", "CELERY_BROKER_URL": broker,
                                 "BIGQUERY_EMULATOR_HOST": settings.BIGQUERY_EMULATOR_HOST,
                                 "ETL_SPOOL_DIR": str(tmp_path)})
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "ml_platform.celery_app", "worker",
                               "--pool", "solo", "--concurrency", "1", "--loglevel", "INFO"],
                              cwd=ROOT, env=env, stdout=open(tmp_path / "celery.log", "w"), stderr=subprocess.STDOUT)
    try:
        # Enqueue from a separate process configured for Celery, as the web app would be.
        enqueue = subprocess.run(
            [sys.executable, "-c", "import django; django.setup(); from ml_platform.runs import lifecycle; "
             f"from ml_platform.models import EtlJob; lifecycle.run_enqueue(job=EtlJob.objects.get(pk={job.pk}))"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert enqueue.returncode == 0, enqueue.stderr
        wait_for(lambda: JobRun.objects.filter(job=job, status__in=["succeeded", "failed"]).exists(), timeout=120,
                 what=f"the Celery worker to run the job: {(tmp_path / 'celery.log').read_text()[-3000:]}")
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    run = JobRun.objects.get(job=job)
    assert run.status == "succeeded", run.error
    assert_table_equals_source(bq, bq_dataset, "orders", orders)
