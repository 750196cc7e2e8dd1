"""Verify and Repair on the worker: queue them, execute them with progress, and their task entry point.

A verification is a `JobRun` of kind *verify* (a repair: kind *repair*), so it shares the run
history, the one-active-run-per-job rule, heartbeats and the stale-run reaper with runs. Its result
(`etl.verify.VerifyResult.to_json()`) is stored on the run; the job page draws the newest one
(`services/verification.py` reads it). The algorithm and the SQL live in `ml_platform/etl/verify*.py`
and `etl/repair.py`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.tasks import task
from django.utils import timezone

from ml_platform import selectors
from ml_platform.etl import sources as cm
from ml_platform.etl.bq_errors import BigQueryError
from ml_platform.etl.errors import RunError, scrub
from ml_platform.etl.repair import repair_keys, repair_ranges
from ml_platform.etl.verify import Progress, verify
from ml_platform.etl.verify_sides import sides_for
from ml_platform.models import EtlJob, JobRun
from ml_platform.runs import records, specs
from ml_platform.services import audit, sources, verification
from ml_platform.services.warehouse import warehouse

logger = logging.getLogger(__name__)


class Cancelled(Exception):
    """The verification's run record was closed (Cancel, or the reaper) while it was working."""


def enqueue(*, job: EtlJob, kind: str = JobRun.Kind.VERIFY, actor: AbstractBaseUser | None = None) -> JobRun:
    """Queue a verification (or a repair of the last one's differences) for the worker."""
    if kind == JobRun.Kind.REPAIR:
        verification.check_repairable(job=job)
    with transaction.atomic():
        run = records.verification_record(job=job, kind=kind)
        audit.record(workspace=job.workspace, actor=actor, target=job,
                     action="verified" if kind == "verify" else "repaired",
                     changes={"run": {"before": None, "after": run.pk}})
        transaction.on_commit(lambda: verify_etl_job.enqueue(run.pk))
    return run


def after_run(*, run_id: int) -> None:
    """Queue a verification after a successful run of a job that asks for one."""
    run = JobRun.objects.select_related("job").filter(pk=run_id).first()
    if run is None or run.kind != JobRun.Kind.RUN or run.status != JobRun.Status.SUCCEEDED:
        return
    if run.job.verify_after_run:
        try:
            enqueue(job=run.job, kind=JobRun.Kind.VERIFY, actor=None)
        except records.RunAlreadyActive:
            logger.info("job %s: a run is already active; no verification after run %s", run.job_id, run_id)


# --------------------------------------------------------------------------- execution (the worker)


class _Recorder:
    """Progress and heartbeat on the run row; raises Cancelled when the row was closed meanwhile."""

    def __init__(self, run: JobRun) -> None:
        self.run = run

    def __call__(self, p: Progress) -> None:
        updated = JobRun.objects.filter(pk=self.run.pk, status=JobRun.Status.RUNNING).update(
            heartbeat_at=timezone.now(), progress_rows=p.rows_fetched)
        if not updated:
            raise Cancelled()


def execute(*, run_id: int) -> JobRun:
    """Run a queued verification or repair; what the task and `manage.py etl_verify` call."""
    claimed = JobRun.objects.filter(pk=run_id, status=JobRun.Status.QUEUED).update(
        status=JobRun.Status.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now(), error="")
    run = JobRun.objects.select_related("job", "job__connection").get(pk=run_id)
    if not claimed:
        return run
    job = run.job
    secrets = cm.ConnectionParams(engine=job.connection.engine, password=job.connection.password).secrets()
    if not selectors.workspace_owns_dataset(workspace=job.workspace, dataset=job.destination_dataset):
        return _finish(run, error=f"The BigQuery dataset {job.destination_dataset!r} does not belong to this job's "
                                  "workspace any more.")
    try:
        fields = _work(run, job)
    except Cancelled:
        run.refresh_from_db()
        return run
    except (RunError, cm.SourceError, BigQueryError) as exc:
        fix = getattr(exc, "fix", "")
        return _finish(run, error=scrub(f"{exc}. {fix}" if fix else str(exc), secrets))
    except Exception as exc:  # noqa: BLE001 - a verification must end with a record, whatever broke
        logger.exception("verification %s crashed", run_id)
        return _finish(run, error=f"Unexpected error: {scrub(str(exc), secrets) or type(exc).__name__}")
    return _finish(run, **fields)


def _work(run: JobRun, job: EtlJob) -> dict[str, Any]:
    # Like a run: named by its JobRun and fenced by it, so a repair claims the table in the commit
    # ledger (an earlier run declared dead can no longer commit) and a later run supersedes it.
    spec = dataclasses.replace(specs.spec_for(job), run_id=run.pk, fence=run.pk)
    engine = cm.get_engine(sources.params_for(job.connection))
    bq = warehouse()
    recorder = _Recorder(run)
    repaired = 0
    if run.kind == JobRun.Kind.REPAIR:
        last = verification.result_of(verification.last_verification(job=job))
        if not verification.repairable(last):
            raise RunError("Nothing to repair: the last verification found no differing rows by key")
        assert last is not None and last.key is not None
        recorder(Progress("repairing", 0, len(last.repair_ranges or last.repair_keys), 0))
        spool = Path(settings.ETL_SPOOL_DIR)
        spool.mkdir(parents=True, exist_ok=True)
        if last.hashed:  # a text / composite key: the differing keys themselves
            repaired = repair_keys(spec, last.repair_keys, key_columns=last.key_columns, bq=bq, engine=engine,
                                   spool_dir=spool).rows_loaded
        else:
            repaired = repair_ranges(spec, last.repair_ranges, key=last.key, bq=bq, engine=engine,
                                     spool_dir=spool).rows_loaded
    source, dest, compared = sides_for(spec, bq=bq, engine=engine)
    try:
        result = verify(source, dest, key=compared.key.source if compared.key else None, progress=recorder)
    finally:
        source.close()
    return {"verification": result.to_json(), "rows_extracted": result.rows_fetched, "rows_loaded": repaired}


def _finish(run: JobRun, *, error: str = "", verification: dict | None = None, rows_extracted: int = 0,
            rows_loaded: int = 0) -> JobRun:
    status = JobRun.Status.FAILED if error else JobRun.Status.SUCCEEDED
    JobRun.objects.filter(pk=run.pk, status=JobRun.Status.RUNNING).update(
        status=status, finished_at=timezone.now(), heartbeat_at=timezone.now(), error=error[:10_000],
        verification=verification, rows_extracted=rows_extracted, rows_loaded=rows_loaded,
        progress_rows=rows_extracted)
    run.refresh_from_db()
    return run


def run_sync(*, job: EtlJob, kind: str = JobRun.Kind.VERIFY, actor: AbstractBaseUser | None = None) -> JobRun:
    """Verify (or repair) in the foreground: `manage.py etl_verify` and the API's `wait`."""
    if kind == JobRun.Kind.REPAIR:
        verification.check_repairable(job=job)
    run = records.verification_record(job=job, kind=kind)
    audit.record(workspace=job.workspace, actor=actor, target=job,
                 action="verified" if kind == "verify" else "repaired",
                 changes={"run": {"before": None, "after": run.pk}})
    return execute(run_id=run.pk)


@task()
def verify_etl_job(run_id: int) -> None:
    """The task entry point: a run id in (the queue never holds a secret), the verification executed."""
    execute(run_id=run_id)
