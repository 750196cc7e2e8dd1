"""A large first load split into key ranges that run as separate tasks (issue 18), on the app's side.

`split_run` (called by `runs.execute_run` once the run is claimed) decides whether a run splits
(`etl.ranges.split_refusal`), plans the ranges from the cursor's MIN/MAX, records one `RunRange`
row per range and queues one `run_etl_range` task each; the parent `JobRun` stays *running*.
Each range runs through the runner's ordinary commit path (`execute_range` below). When one
commits, `record_commit` — under a row lock on the parent run, so ranges finishing together take
turns — moves the job's watermark over the contiguous prefix of committed ranges (a fenced ledger
row in BigQuery, then the app's cached copy), and the last range to commit finishes the parent.
`record_failure` requeues a range alone after a transient error, or fails the parent.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.tasks import task
from django.utils import timezone
from sqlalchemy import Engine

from ml_platform.etl import ledger, ranges
from ml_platform.etl import sources as cm
from ml_platform.etl.errors import RunError, scrub
from ml_platform.etl.runner import RunProgress, run_job
from ml_platform.etl.runspec import RunResult, RunSpec
from ml_platform.etl.sources import estimate_rows
from ml_platform.etl.staging import Warehouse
from ml_platform.etl.watermark import watermark_from_json, watermark_to_json
from ml_platform.models import EtlJob, JobRun, RunRange
from ml_platform.runs import bookkeeping, specs, verify
from ml_platform.services import sources
from ml_platform.services.warehouse import warehouse

logger = logging.getLogger(__name__)


def split_run(run: JobRun, spec: RunSpec, engine: Engine) -> bool:
    """Split `run` into key ranges queued as tasks; False when it runs as one task, as before."""
    cursor = next((c for c in spec.columns if c.name == spec.cursor_column), None)
    has_key = bool(spec.merge_key) or any(c.primary_key for c in spec.columns)
    first_run = run.job.watermark is None
    estimate = None
    if settings.ETL_SPLIT_MIN_ROWS > 0 and cursor is not None:
        estimate = estimate_rows(engine, spec.source_schema, spec.source_table)
    refusal = ranges.split_refusal(
        strategy=spec.load_strategy,
        cursor_family=cursor.type.family if cursor is not None else None,
        has_key=has_key,
        first_run=first_run,
        estimated_rows=estimate,
        min_rows=settings.ETL_SPLIT_MIN_ROWS,
        workers=settings.ETL_TASK_WORKERS,
    )
    if refusal is not None or cursor is None or estimate is None:
        logger.debug("run %s is not split: %s", run.pk, refusal)
        return False
    low, high = ranges.cursor_span(engine, spec.source_schema, spec.source_table, cursor.name)
    if low is None or high is None:
        return False
    parts = ranges.range_count(
        estimate, range_rows=settings.ETL_SPLIT_RANGE_ROWS, max_ranges=settings.ETL_SPLIT_MAX_RANGES
    )
    planned = ranges.plan_ranges(int(low), int(high), parts)
    if len(planned) < 2:
        return False
    # Before any range commits, the ledger says "everything from MIN on is still to read": a later run
    # then never falls back to the destination's MAX(cursor), which may lie past a range that failed.
    _ensure_ledger(spec.destination_dataset)
    _write_prefix(run, spec, 0, planned[0].after)
    with transaction.atomic():
        made = RunRange.objects.bulk_create(
            RunRange(run=run, index=r.index, after=r.after, through=r.through) for r in planned
        )
        JobRun.objects.filter(pk=run.pk).update(progress_total=estimate, heartbeat_at=timezone.now())
        ids = [r.pk for r in made]
        transaction.on_commit(lambda: _enqueue(ids))
    logger.info("run %s split into %d ranges of %s (%s..%s)", run.pk, len(planned), cursor.name, low, high)
    return True


def _enqueue(range_ids: list[int], when: Any = None) -> None:
    task = run_etl_range if when is None else run_etl_range.using(run_after=when)
    for range_id in range_ids:
        task.enqueue(range_id)


def claim(range_id: int) -> RunRange | None:
    """Take a queued range (a redelivered task for a taken one does nothing); None when not ours to run."""
    claimed = RunRange.objects.filter(pk=range_id, status=RunRange.Status.QUEUED).update(
        status=RunRange.Status.RUNNING, started_at=timezone.now(), error=""
    )
    if not claimed:
        return None
    rng = RunRange.objects.select_related("run", "run__job", "run__job__connection").get(pk=range_id)
    if rng.run.status != JobRun.Status.RUNNING:
        RunRange.objects.filter(pk=range_id).update(
            status=RunRange.Status.FAILED,
            finished_at=timezone.now(),
            error=f"Not run: the run ended ({rng.run.status}) before this range started.",
        )
        return None
    return rng


def record_progress(rng: RunRange, rows_extracted: int, rows_loaded: int) -> bool:
    """The range's counters, and the parent's progress as the sum over its ranges; False once the run closed."""
    RunRange.objects.filter(pk=rng.pk).update(rows_extracted=rows_extracted, rows_loaded=rows_loaded)
    total = RunRange.objects.filter(run_id=rng.run_id).aggregate(e=Sum("rows_extracted"), n=Sum("rows_loaded"))
    return bool(
        JobRun.objects.filter(pk=rng.run_id, status=JobRun.Status.RUNNING).update(
            progress_rows=total["e"] or 0,
            rows_extracted=total["e"] or 0,
            rows_loaded=total["n"] or 0,
            heartbeat_at=timezone.now(),
        )
    )


def _lock_run(run_id: int) -> None:
    """Ranges of one run finishing together take turns. A write, not SELECT FOR UPDATE: on PostgreSQL it
    locks the row, on SQLite (no row locks) it takes the write lock first, so the reads after it are current."""
    JobRun.objects.filter(pk=run_id).update(heartbeat_at=timezone.now())


def record_commit(rng: RunRange, spec: RunSpec, result: RunResult) -> JobRun:
    """A range committed: move the watermark over the contiguous committed prefix; the last one finishes the run."""
    with transaction.atomic():
        _lock_run(rng.run_id)
        parent = JobRun.objects.select_related("job").get(pk=rng.run_id)
        RunRange.objects.filter(pk=rng.pk).update(
            status=RunRange.Status.COMMITTED,
            finished_at=timezone.now(),
            rows_extracted=result.rows_extracted,
            rows_loaded=result.rows_loaded,
            max_cursor=watermark_to_json(result.watermark_after),
            error="",
        )
        siblings = list(RunRange.objects.filter(run_id=parent.pk))
        planned = [ranges.KeyRange(r.index, r.after, r.through) for r in siblings]
        committed = {
            r.index: watermark_from_json(r.max_cursor) for r in siblings if r.status == RunRange.Status.COMMITTED
        }
        count, mark = ranges.contiguous_prefix(planned, committed)
        if count and mark is not None:
            _write_prefix(parent, spec, count, mark)
            _save_watermark(parent.job_id, mark)
        rows_e = sum(r.rows_extracted for r in siblings)
        rows_l = sum(r.rows_loaded for r in siblings)
        done = count == len(planned) and parent.status == JobRun.Status.RUNNING
        JobRun.objects.filter(pk=parent.pk, status=JobRun.Status.RUNNING).update(
            rows_extracted=rows_e,
            rows_loaded=rows_l,
            progress_rows=rows_e,
            heartbeat_at=timezone.now(),
            watermark_after=watermark_to_json(mark),
            **({"status": JobRun.Status.SUCCEEDED, "finished_at": timezone.now()} if done else {}),
        )
    parent.refresh_from_db()
    return parent


def _write_prefix(parent: JobRun, spec: RunSpec, count: int, mark: Any) -> None:
    """The ledger row carrying the job's watermark over `count` committed ranges (once; fenced)."""
    cursor = spec.destination_names()[spec.cursor_column] if spec.cursor_column else None
    who = ledger.Identity(
        dataset=spec.destination_dataset,
        table=spec.destination_table,
        job=str(spec.job_id),
        tag=spec.source_tag,
        run=str(parent.pk),
        fence=parent.pk,
        signature=ledger.signature(spec.load_strategy, cursor, spec.source_tag),
    )
    bq = Warehouse(warehouse())
    if int(bq.query(ledger.unit_committed_sql(who, count))[0]["n"]):
        return  # written by an earlier attempt
    bq.query(ranges.watermark_script(who, count, mark))


def _ensure_ledger(dataset: str) -> None:
    store = Warehouse(warehouse())
    if store.schema(dataset, ledger.LEDGER_TABLE) is None:
        try:
            store.create_table(dataset, ledger.LEDGER_TABLE, ledger.LEDGER_FIELDS)
        except RunError:
            if store.schema(dataset, ledger.LEDGER_TABLE) is None:  # not a race with a run creating it
                raise


def _save_watermark(job_id: int, value: Any) -> None:
    """The app's cached watermark (the ledger holds the truth): it only moves forward."""
    job = EtlJob.objects.select_for_update().only("watermark").filter(pk=job_id).first()
    if job is None:
        return
    current = watermark_from_json(job.watermark)
    if current is None or (isinstance(current, int) and value > current):
        EtlJob.objects.filter(pk=job_id).update(watermark=watermark_to_json(value))


def record_failure(rng: RunRange, message: str, *, transient: bool) -> None:
    """Retry the range alone after a transient error (backoff, `ETL_MAX_ATTEMPTS`); else fail the run."""
    mine = RunRange.objects.filter(pk=rng.pk, status=RunRange.Status.RUNNING)
    if transient and rng.attempt < settings.ETL_MAX_ATTEMPTS:
        delay = settings.ETL_RETRY_BASE_SECONDS * (2 ** (rng.attempt - 1))
        with transaction.atomic():
            requeued = mine.update(
                status=RunRange.Status.QUEUED,
                attempt=rng.attempt + 1,
                error=f"Attempt {rng.attempt} failed (will retry in {delay:g} s): {message}"[:10_000],
            )
            if requeued:
                when = timezone.now() + timedelta(seconds=delay)
                transaction.on_commit(lambda: _enqueue([rng.pk], when))
        return
    prefix = f"Failed after {rng.attempt} attempts: " if transient else ""
    with transaction.atomic():
        _lock_run(rng.run_id)
        mine.update(status=RunRange.Status.FAILED, finished_at=timezone.now(), error=f"{prefix}{message}"[:10_000])
        total = RunRange.objects.filter(run_id=rng.run_id).count()
        # Ranges not started yet will not start; ranges running now still commit (the watermark stays
        # at the contiguous prefix, so the next run reads whatever lies past it).
        RunRange.objects.filter(run_id=rng.run_id, status=RunRange.Status.QUEUED).update(
            status=RunRange.Status.FAILED, finished_at=timezone.now(), error="Not run: another range failed."
        )
        JobRun.objects.filter(pk=rng.run_id, status=JobRun.Status.RUNNING).update(
            status=JobRun.Status.FAILED,
            finished_at=timezone.now(),
            error=f"Range {rng.index + 1} of {total} failed: {prefix}{message}"[:10_000],
        )


class _RangeRecorder:
    """Progress of one range, written at most once a second (and the parent's sum with it)."""

    def __init__(self, rng: RunRange) -> None:
        self.rng, self.last = rng, 0.0

    def __call__(self, p: RunProgress) -> None:
        now = time.monotonic()
        if p.phase != "checkpoint" and now - self.last < bookkeeping.HEARTBEAT_EVERY_S:
            return
        self.last = now
        if not record_progress(self.rng, p.rows_extracted, p.rows_loaded):
            raise bookkeeping.RunAborted("the run was closed while this range was running")


def execute_range(*, range_id: int) -> RunRange | None:
    """Run one range of a split run; a transient failure requeues this range alone."""
    rng = claim(range_id)
    if rng is None:
        return None
    job = rng.run.job
    secrets = cm.ConnectionParams(engine=job.connection.engine, password=job.connection.password).secrets()
    try:
        spec = dataclasses.replace(
            specs.spec_for(job), run_id=f"{rng.run_id}r{rng.index}", fence=rng.run_id, key_range=(rng.after, rng.through)
        )
        engine = cm.get_engine(sources.params_for(job.connection))
        spool = Path(settings.ETL_SPOOL_DIR)
        spool.mkdir(parents=True, exist_ok=True)
        with bookkeeping.HeartbeatThread(rng.run_id):
            result = run_job(spec, bq=warehouse(), engine=engine, progress=_RangeRecorder(rng), spool_dir=spool,
                             fault=bookkeeping.FAULT_HOOK)
        parent = record_commit(rng, spec, result)
    except bookkeeping.RunAborted:
        logger.warning("range %s of run %s was aborted", rng.index, rng.run_id)
        record_failure(rng, "The run was closed while this range was running.", transient=False)
    except (RunError, cm.SourceError) as exc:
        message = bookkeeping.storable_text(scrub(bookkeeping.run_error_text(exc), secrets))
        record_failure(rng, message, transient=getattr(exc, "transient", False))
    except Exception as exc:  # noqa: BLE001 - a range must end with a record, whatever broke
        logger.exception("range %s of run %s crashed", rng.index, rng.run_id)
        text = bookkeeping.storable_text(scrub(str(exc), secrets) or type(exc).__name__)
        record_failure(rng, f"Unexpected error: {text}", transient=False)
    else:
        if parent.status == parent.Status.SUCCEEDED:
            verify.after_run(run_id=parent.pk)
    rng.refresh_from_db()
    return rng


@task()
def run_etl_range(range_id: int) -> None:
    """The task entry point of one key range of a large first load split across workers."""
    execute_range(range_id=range_id)
