"""Verify and Repair as services: queue them, run them on the worker with progress, cancel them.

A verification is a `JobRun` of kind *verify* (a repair: kind *repair*), so it shares the run
history, the one-active-run-per-job rule, heartbeats and the stale-run reaper with runs. Its result
(`etl.verify.VerifyResult.to_json()`) is stored on the run; the job page draws the newest one.
The algorithm and the SQL live in `ml_platform/etl/verify*.py` and `etl/repair.py`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from ml_platform import selectors, sources
from ml_platform.etl import sources as cm
from ml_platform.etl.bq_errors import BigQueryError
from ml_platform.etl.errors import RunError, scrub
from ml_platform.etl.repair import repair_keys, repair_ranges
from ml_platform.etl.verify import Progress, VerifyResult, verify
from ml_platform.etl.verify_sides import sides_for
from ml_platform.models import EtlJob, JobRun
from ml_platform.warehouse import warehouse

logger = logging.getLogger(__name__)

VERIFY_KINDS = (JobRun.Kind.VERIFY, JobRun.Kind.REPAIR)


class RunAlreadyActive(Exception):
    """The job has a queued or running run, verification or repair; the database allows one at a time."""


class NothingToRepair(Exception):
    """Repair needs a finished verification that found differing rows it can localise."""


class Cancelled(Exception):
    """The verification's run record was closed (Cancel, or the reaper) while it was working."""


# --------------------------------------------------------------------------- reads


def last_verification(*, job: EtlJob) -> JobRun | None:
    """The newest finished verify/repair run that has a result."""
    return (JobRun.objects.filter(job=job, kind__in=VERIFY_KINDS, status=JobRun.Status.SUCCEEDED,
                                  verification__isnull=False).order_by("-created_at", "-id").first())


def active_verification(*, job: EtlJob) -> JobRun | None:
    return JobRun.objects.filter(job=job, kind__in=VERIFY_KINDS, status__in=JobRun.ACTIVE_STATUSES).first()


def result_of(run: JobRun | None) -> VerifyResult | None:
    return VerifyResult.from_json(run.verification) if run is not None and run.verification else None


def repairable(result: VerifyResult | None) -> bool:
    return bool(result and not result.in_sync and result.keyed and (result.repair_ranges or result.repair_keys))


# --------------------------------------------------------------------------- writes


def _record(*, job: EtlJob, kind: str) -> JobRun:
    try:
        with transaction.atomic():
            EtlJob.objects.select_for_update().filter(pk=job.pk).first()
            return JobRun.objects.create(job=job, kind=kind, connection=job.connection,
                                         connection_name=job.connection.name, source_display=job.source_display)
    except IntegrityError:
        raise RunAlreadyActive(f"Job {job.name!r} already has a run, verification or repair in progress") from None


def enqueue(*, job: EtlJob, kind: str = JobRun.Kind.VERIFY, actor: AbstractBaseUser | None = None) -> JobRun:
    """Queue a verification (or a repair of the last one's differences) for the worker."""
    from ml_platform.services import audit
    from ml_platform.verify_tasks import verify_etl_job

    if kind == JobRun.Kind.REPAIR and not repairable(result_of(last_verification(job=job))):
        raise NothingToRepair("Nothing to repair: verify the job first (a verification that found differing rows "
                              "by key).")
    with transaction.atomic():
        run = _record(job=job, kind=kind)
        audit(workspace=job.workspace, actor=actor, target=job, action="verified" if kind == "verify" else "repaired",
              changes={"run": {"before": None, "after": run.pk}})
        transaction.on_commit(lambda: verify_etl_job.enqueue(run.pk))
    return run


def cancel(*, job: EtlJob, actor: AbstractBaseUser | None = None) -> bool:
    """Stop the job's queued or running verification/repair (the worker notices at its next step)."""
    from ml_platform.services import audit

    who = actor.get_username() if actor is not None and actor.pk else "system"
    done = JobRun.objects.filter(job=job, kind__in=VERIFY_KINDS, status__in=JobRun.ACTIVE_STATUSES).update(
        status=JobRun.Status.FAILED, finished_at=timezone.now(), error=f"Cancelled by {who}")
    if done:
        audit(workspace=job.workspace, actor=actor, target=job, action="cancelled verification")
    return bool(done)


def set_verify_after_run(*, job: EtlJob, enabled: bool, actor: AbstractBaseUser | None = None) -> None:
    from ml_platform.services import audit

    if job.verify_after_run != enabled:
        audit(workspace=job.workspace, actor=actor, target=job, action="edited",
              changes={"verify_after_run": {"before": job.verify_after_run, "after": enabled}})
        EtlJob.objects.filter(pk=job.pk).update(verify_after_run=enabled)
        job.verify_after_run = enabled


def after_run(*, run_id: int) -> None:
    """Queue a verification after a successful run of a job that asks for one."""
    run = JobRun.objects.select_related("job").filter(pk=run_id).first()
    if run is None or run.kind != JobRun.Kind.RUN or run.status != JobRun.Status.SUCCEEDED:
        return
    if run.job.verify_after_run:
        try:
            enqueue(job=run.job, kind=JobRun.Kind.VERIFY, actor=None)
        except RunAlreadyActive:
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
    from ml_platform.runs import spec_for

    # Like a run: named by its JobRun and fenced by it, so a repair claims the table in the commit
    # ledger (an earlier run declared dead can no longer commit) and a later run supersedes it.
    spec = dataclasses.replace(spec_for(job), run_id=run.pk, fence=run.pk)
    engine = cm.get_engine(sources.params_for(job.connection))
    bq = warehouse()
    recorder = _Recorder(run)
    repaired = 0
    if run.kind == JobRun.Kind.REPAIR:
        last = result_of(last_verification(job=job))
        if not repairable(last):
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
    from ml_platform.services import audit

    if kind == JobRun.Kind.REPAIR and not repairable(result_of(last_verification(job=job))):
        raise NothingToRepair("Nothing to repair: verify the job first (a verification that found differing rows "
                              "by key).")
    run = _record(job=job, kind=kind)
    audit(workspace=job.workspace, actor=actor, target=job, action="verified" if kind == "verify" else "repaired",
          changes={"run": {"before": None, "after": run.pk}})
    return execute(run_id=run.pk)


def as_json(run: JobRun) -> dict[str, Any]:
    """A verification run as the API returns it."""
    result = result_of(run)
    body: dict[str, Any] = {"run_id": run.pk, "kind": run.kind, "status": run.status, "error": run.error or None,
                            "started_at": run.started_at.isoformat() if run.started_at else None,
                            "finished_at": run.finished_at.isoformat() if run.finished_at else None}
    if result is not None:
        data = result.to_json()
        data.pop("segments", None)
        body["result"] = {"in_sync": result.in_sync, **{k: data[k] for k in (
            "keyed", "key", "source_rows", "dest_rows", "missing", "extra", "changed", "missing_keys",
            "extra_keys", "changed_keys", "rows_fetched", "queries", "seconds", "message")}}
        body["rows_repaired"] = run.rows_loaded if run.kind == JobRun.Kind.REPAIR else None
    return body
