"""Executing one JobRun: the bridge between the run record and the pure runner.

Called by the task worker (and `manage.py etl_run`). The run record is the
source of truth for the UI: status, progress and heartbeat are written here;
the job's watermark moves only after a committed checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ml_platform import sources
from ml_platform.etl.errors import RunError, scrub
from ml_platform.etl.runner import RunProgress, RunResult, RunSpec, run_job, watermark_from_json, watermark_to_json
from ml_platform.models import EtlJob, JobRun
from ml_platform.utils import connection_manager as cm
from ml_platform.warehouse import warehouse

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 1.0


class RunAborted(Exception):
    """The run record was closed by someone else (e.g. declared dead by the scheduler)."""


def spec_for(job: EtlJob) -> RunSpec:
    """The runner's view of a job: the selected columns as the source has them now."""
    schema = job.source_schema or None
    available = {c.name.lower(): c for c in sources.get_columns(job.connection, schema, job.source_table)}
    missing = [c for c in job.selected_columns if c.lower() not in available]
    if missing:
        raise RunError(
            f"The source table {job.source_display} no longer has the column(s) {', '.join(missing)}: "
            "edit or reconnect the job.",
            transient=False,
        )
    columns = tuple(available[c.lower()] for c in job.selected_columns)
    mapping = {available[k.lower()].name: v for k, v in (job.column_mapping or {}).items() if k.lower() in available}
    return RunSpec(
        source_schema=schema,
        source_table=job.source_table,
        columns=columns,
        destination_dataset=job.destination_dataset,
        destination_table=job.destination_table,
        load_strategy=job.load_strategy,
        column_mapping=mapping,
        cursor_column=(available[job.cursor_column.lower()].name if job.cursor_column.lower() in available
                       else job.cursor_column) or None,
        merge_key=tuple(job.merge_key or ()),
        source_tag=job.source_tag or None,
        watermark=watermark_from_json(job.watermark),
        chunk_rows=settings.ETL_CHUNK_ROWS,
        checkpoint_rows=settings.ETL_CHECKPOINT_ROWS,
        job_id=job.pk,
    )


class _Recorder:
    """Writes progress to the run row at most once a second, and persists committed watermarks."""

    def __init__(self, run: JobRun, echo: Callable[[RunProgress], None] | None = None) -> None:
        self.run = run
        self.echo = echo
        self.last_write = 0.0

    def __call__(self, p: RunProgress) -> None:
        if self.echo is not None:
            self.echo(p)
        now = time.monotonic()
        committed = p.phase == "checkpoint"
        if not committed and now - self.last_write < HEARTBEAT_EVERY_S:
            return
        self.last_write = now
        with transaction.atomic():
            updated = JobRun.objects.filter(pk=self.run.pk, status=JobRun.Status.RUNNING).update(
                progress_rows=p.rows_extracted,
                progress_total=p.rows_estimate,
                rows_extracted=p.rows_extracted,
                rows_loaded=p.rows_loaded,
                heartbeat_at=timezone.now(),
            )
            if not updated:
                raise RunAborted("the run was closed while it was running")
            if committed and p.watermark is not None:
                # The checkpoint is in BigQuery: a crash from here on resumes after it.
                EtlJob.objects.filter(pk=self.run.job_id).update(watermark=watermark_to_json(p.watermark))


def execute_run(*, run_id: int, echo: Callable[[RunProgress], None] | None = None) -> JobRun:
    # Claim the run: a redelivered task for a run that already started does nothing.
    claimed = JobRun.objects.filter(pk=run_id, status=JobRun.Status.QUEUED).update(
        status=JobRun.Status.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now(), error=""
    )
    run = JobRun.objects.select_related("job", "job__connection").get(pk=run_id)
    if not claimed:
        logger.info("run %s is %s; nothing to do", run_id, run.status)
        return run
    job = run.job
    secrets = cm.ConnectionParams(engine=job.connection.engine, password=job.connection.password).secrets()
    try:
        spec = spec_for(job)
        engine = cm.get_engine(sources.params_for(job.connection))
        spool = Path(settings.ETL_SPOOL_DIR)
        spool.mkdir(parents=True, exist_ok=True)
        result = run_job(spec, bq=warehouse(), engine=engine, progress=_Recorder(run, echo), spool_dir=spool)
    except RunAborted:
        logger.warning("run %s was aborted", run_id)
        run.refresh_from_db()
        return run
    except (RunError, cm.SourceError) as exc:
        transient = getattr(exc, "transient", False)
        return _fail(run, scrub(str(exc), secrets), transient=transient)
    except Exception as exc:  # noqa: BLE001 - a run must end with a record, whatever broke
        logger.exception("run %s crashed", run_id)
        return _fail(run, f"Unexpected error: {scrub(str(exc), secrets) or type(exc).__name__}", transient=False)
    return _succeed(run, result)


def _succeed(run: JobRun, result: RunResult) -> JobRun:
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
            EtlJob.objects.filter(pk=run.job_id).update(watermark=watermark_to_json(result.watermark_after))
    run.refresh_from_db()
    return run


def _fail(run: JobRun, message: str, *, transient: bool) -> JobRun:
    """Fail the run, or put it back in the queue with backoff when the error is transient."""
    from ml_platform.tasks import run_etl_job

    if transient and run.attempt < settings.ETL_MAX_ATTEMPTS:
        delay = settings.ETL_RETRY_BASE_SECONDS * (2 ** (run.attempt - 1))
        JobRun.objects.filter(pk=run.pk).update(
            status=JobRun.Status.QUEUED,
            attempt=run.attempt + 1,
            error=f"Attempt {run.attempt} failed (will retry in {delay:g} s): {message}",
        )
        when = timezone.now() + timedelta(seconds=delay)
        transaction.on_commit(lambda: run_etl_job.using(run_after=when).enqueue(run.pk))
        run.refresh_from_db()
        return run
    prefix = f"Failed after {run.attempt} attempts: " if transient else ""
    JobRun.objects.filter(pk=run.pk).update(
        status=JobRun.Status.FAILED, finished_at=timezone.now(), error=f"{prefix}{message}"[:10_000]
    )
    run.refresh_from_db()
    return run


def run_sync(*, job: EtlJob, echo: Callable[[RunProgress], None] | None = None) -> JobRun:
    """Run a job in the foreground (manage.py etl_run): the same path as the worker, minus the queue."""
    from ml_platform.services import run_enqueue_record

    run = run_enqueue_record(job=job)
    return execute_run(run_id=run.pk, echo=echo)
