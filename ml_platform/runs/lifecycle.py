"""An ETL run's lifecycle: queued (Run Now, the scheduler), executed by the worker's task, recorded.

The task entry point `run_etl_job` (and `manage.py etl_run`) executes one JobRun: the bridge between the
run record and the pure runner. The run record is the source of truth for the UI: status, progress and
heartbeat are written here; the job's watermark moves only after a committed checkpoint.

These bookkeeping writes survive a short outage of the Django database: each is
retried on a fresh connection with a short backoff (a heartbeat is simply skipped,
the next one comes a second later), and a committed checkpoint's watermark is kept
until a write succeeds. A watermark only moves forward, so a late write never undoes
a newer one; and should one be lost anyway, the runner's commits are idempotent
(rows past the destination's own MAX(cursor)), so the next run re-reads, never duplicates.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import InterfaceError, OperationalError, transaction
from django.tasks import task
from django.utils import timezone

from ml_platform import selectors
from ml_platform.etl import sources as cm
from ml_platform.etl.errors import RunError, scrub
from ml_platform.etl.runner import RunProgress, RunResult, run_job, watermark_from_json, watermark_to_json
from ml_platform.models import EtlJob, JobRun
from ml_platform.runs import bookkeeping, key_ranges, records, specs, verify
from ml_platform.runs.bookkeeping import (
    DB_RETRY_DELAYS,
    HEARTBEAT_EVERY_S,
    HeartbeatThread,
    RunAborted,
    db_retry,
    run_error_text,
    storable_text,
)
from ml_platform.services import audit, sources
from ml_platform.services.warehouse import warehouse

logger = logging.getLogger(__name__)

def _save_watermark(job_id: int, value: Any) -> None:
    """Persist a committed watermark; it only moves forward (a late writer never undoes a newer one)."""
    job = EtlJob.objects.select_for_update().only("watermark").filter(pk=job_id).first()
    if job is None:
        return
    current = watermark_from_json(job.watermark)
    try:
        if current is not None and not value > current:
            return
    except TypeError:
        pass  # not comparable (the cursor column changed): the newest commit wins
    EtlJob.objects.filter(pk=job_id).update(watermark=watermark_to_json(value))


_UNSAVED = object()


class _Recorder:
    """Writes progress to the run row at most once a second, and persists committed watermarks.

    A write that fails because the Django database is unreachable does not stop the run:
    a heartbeat is skipped, a committed watermark is retried with backoff and kept until
    a later write gets through.
    """

    def __init__(self, run: JobRun, echo: Callable[[RunProgress], None] | None = None) -> None:
        self.run = run
        self.echo = echo
        self.last_write = 0.0
        self.unsaved: Any = _UNSAVED  # a committed watermark not yet in the database

    def __call__(self, p: RunProgress) -> None:
        if settings.ETL_TEST_PROGRESS_DELAY_MS:
            # TEST ONLY: slow a run down per progress report, so a browser test can watch it move.
            time.sleep(settings.ETL_TEST_PROGRESS_DELAY_MS / 1000)
        if self.echo is not None:
            self.echo(p)
        now = time.monotonic()
        committed = p.phase == "checkpoint"
        if committed and p.watermark is not None:
            self.unsaved = p.watermark
        if not committed and now - self.last_write < HEARTBEAT_EVERY_S:
            return
        self.last_write = now
        delays = DB_RETRY_DELAYS if self.unsaved is not _UNSAVED else ()
        try:
            updated = db_retry(f"recording the progress of run {self.run.pk}", lambda: self._write(p), delays)
        except (OperationalError, InterfaceError) as exc:
            logger.warning("run %s: could not record progress (%s); the next report tries again", self.run.pk, exc)
            return
        if not updated:
            raise RunAborted("the run was closed while it was running")

    def _write(self, p: RunProgress) -> int:
        with transaction.atomic():
            if self.unsaved is not _UNSAVED:
                # The checkpoint is in BigQuery: a crash from here on resumes after it.
                _save_watermark(self.run.job_id, self.unsaved)
            updated = JobRun.objects.filter(pk=self.run.pk, status=JobRun.Status.RUNNING).update(
                progress_rows=p.rows_extracted,
                progress_total=p.rows_estimate,
                rows_extracted=p.rows_extracted,
                rows_loaded=p.rows_loaded,
                heartbeat_at=timezone.now(),
            )
        self.unsaved = _UNSAVED
        return updated


def execute_run(*, run_id: int, echo: Callable[[RunProgress], None] | None = None, split: bool = True) -> JobRun:
    # Claim the run: a redelivered task for a run that already started does nothing.
    claimed = db_retry(
        f"claiming run {run_id}",
        lambda: JobRun.objects.filter(pk=run_id, status=JobRun.Status.QUEUED).update(
            status=JobRun.Status.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now(), error=""
        ),
    )
    run = db_retry(f"reading run {run_id}", lambda: JobRun.objects.select_related("job", "job__connection").get(pk=run_id))
    if not claimed:
        logger.info("run %s is %s; nothing to do", run_id, run.status)
        return run
    job = run.job
    secrets = cm.ConnectionParams(engine=job.connection.engine, password=job.connection.password).secrets()
    if not selectors.workspace_owns_dataset(workspace=job.workspace, dataset=job.destination_dataset):
        return _fail(run, f"The BigQuery dataset {job.destination_dataset!r} does not belong to this job's workspace "
                          "any more: ask a site administrator to assign it, or reconnect the job to a new table.",
                     transient=False)
    try:
        # The run's id names its ledger units and commit jobs; run ids only grow, so it is also the
        # fencing token: once a later run of the job has claimed the table, this one cannot commit.
        spec = dataclasses.replace(specs.spec_for(job), run_id=run.pk, fence=run.pk)
        engine = cm.get_engine(sources.params_for(job.connection))
        if split and key_ranges.split_run(run, spec, engine):
            return run  # a large first load: its key ranges run as tasks of their own, the last finishes it
        spool = Path(settings.ETL_SPOOL_DIR)
        spool.mkdir(parents=True, exist_ok=True)
        with HeartbeatThread(run.pk):
            result = run_job(spec, bq=warehouse(), engine=engine, progress=_Recorder(run, echo), spool_dir=spool,
                             fault=bookkeeping.FAULT_HOOK)
    except RunAborted:
        logger.warning("run %s was aborted", run_id)
        db_retry(f"reading run {run_id}", run.refresh_from_db)
        return run
    except (RunError, cm.SourceError) as exc:
        transient = getattr(exc, "transient", False)
        return _fail(run, scrub(run_error_text(exc), secrets), transient=transient)
    except Exception as exc:  # noqa: BLE001 - a run must end with a record, whatever broke
        logger.exception("run %s crashed", run_id)
        return _fail(run, f"Unexpected error: {scrub(str(exc), secrets) or type(exc).__name__}", transient=False)
    return _succeed(run, result)


def _succeed(run: JobRun, result: RunResult) -> JobRun:
    def write() -> None:
        with transaction.atomic():
            JobRun.objects.filter(pk=run.pk).update(
                status=JobRun.Status.SUCCEEDED,
                finished_at=timezone.now(),
                heartbeat_at=timezone.now(),
                rows_extracted=result.rows_extracted,
                rows_loaded=result.rows_loaded,
                bytes_processed=result.bytes,
                progress_rows=result.rows_extracted,
                watermark_before=watermark_to_json(result.watermark_before),
                watermark_after=watermark_to_json(result.watermark_after),
            )
            if result.watermark_after is not None:
                _save_watermark(run.job_id, result.watermark_after)

    db_retry(f"recording the success of run {run.pk}", write)
    db_retry(f"reading run {run.pk}", run.refresh_from_db)
    return run


def _fail(run: JobRun, message: str, *, transient: bool) -> JobRun:
    """Fail the run, or put it back in the queue with backoff when the error is transient."""
    message = storable_text(message)  # PostgreSQL text cannot hold NUL: saving the failure would fail

    # Only a run that is still ours: one declared dead meanwhile (runs_fail_stale) stays as it is,
    # and a job may already have a new active run.
    mine = JobRun.objects.filter(pk=run.pk, status=JobRun.Status.RUNNING)
    if transient and run.attempt < settings.ETL_MAX_ATTEMPTS:
        delay = settings.ETL_RETRY_BASE_SECONDS * (2 ** (run.attempt - 1))
        requeued = db_retry(
            f"requeueing run {run.pk}",
            lambda: mine.update(
                status=JobRun.Status.QUEUED,
                attempt=run.attempt + 1,
                error=f"Attempt {run.attempt} failed (will retry in {delay:g} s): {message}"[:10_000],
            ),
        )
        if requeued:
            when = timezone.now() + timedelta(seconds=delay)
            transaction.on_commit(
                lambda: db_retry(f"enqueueing run {run.pk}", lambda: run_etl_job.using(run_after=when).enqueue(run.pk))
            )
    else:
        prefix = f"Failed after {run.attempt} attempts: " if transient else ""
        db_retry(
            f"failing run {run.pk}",
            lambda: mine.update(
                status=JobRun.Status.FAILED, finished_at=timezone.now(), error=f"{prefix}{message}"[:10_000]
            ),
        )
    db_retry(f"reading run {run.pk}", run.refresh_from_db)
    return run


def run_sync(*, job: EtlJob, echo: Callable[[RunProgress], None] | None = None) -> JobRun:
    """Run a job in the foreground (manage.py etl_run): the same path as the worker, minus the queue."""
    run = records.run_enqueue_record(job=job)
    audit.record(workspace=job.workspace, actor=None, action="command-line run", target=job,
                 changes={"run": {"before": None, "after": run.pk},
                          "connection": {"before": None, "after": run.connection_name}})
    return execute_run(run_id=run.pk, echo=echo, split=False)  # in the foreground: no workers to hand ranges to


def run_enqueue(*, job: EtlJob, trigger: str = JobRun.Trigger.MANUAL,
                actor: AbstractBaseUser | None = None) -> JobRun:
    """Create a queued run and hand its id to the task backend once the row is committed.

    Audited as "ran" (Run Now, by `actor`) or "scheduled run" (the scheduler, actor None = system).
    """
    with transaction.atomic():
        run = records.run_enqueue_record(job=job, trigger=trigger)
        audit.record(workspace=job.workspace, actor=actor, target=job,
                     action="scheduled run" if trigger == JobRun.Trigger.SCHEDULE else "ran",
                     changes={"run": {"before": None, "after": run.pk},
                              "connection": {"before": None, "after": run.connection_name}})
        transaction.on_commit(lambda: run_etl_job.enqueue(run.pk))
    return run


def enqueue_due_jobs(*, now: datetime | None = None) -> list[JobRun]:
    """Enqueue every due, active, scheduled job exactly once.

    Row locks with SKIP LOCKED make concurrent schedulers take disjoint jobs;
    the unique "one active run" constraint is the backstop.
    """
    now = now or timezone.now()
    enqueued: list[JobRun] = []
    with transaction.atomic():
        due = (
            EtlJob.objects.select_for_update(skip_locked=True)
            .filter(status=EtlJob.Status.ACTIVE, next_run_at__lte=now)
            .exclude(schedule="")
            .select_related("connection")
        )
        for job in due:
            job.next_run_at = records.next_run_time(schedule=job.schedule, timezone_name=job.schedule_timezone,
                                                    after=now)
            job.save(update_fields=["next_run_at", "updated_at"])
            try:
                enqueued.append(run_enqueue(job=job, trigger=JobRun.Trigger.SCHEDULE))
            except records.RunAlreadyActive:
                logger.info("job %s is still running; skipping this slot", job.pk)
    return enqueued


@task()
def run_etl_job(run_id: int) -> None:
    """The task entry point: a run id in (the queue never holds a secret), the run executed, then the
    verification the job asks for after a successful run is queued."""
    execute_run(run_id=run_id)
    verify.after_run(run_id=run_id)
