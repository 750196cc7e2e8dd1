"""The JobRun rows: creating a queued run (one active run per job), the next scheduled slot, the stale-run reaper."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from ml_platform.etl.schedule import next_runs
from ml_platform.models import EtlJob, JobRun


class RunAlreadyActive(Exception):
    """The job has a queued or running run, verification or repair; the database allows one at a time."""


def next_run_time(*, schedule: str, timezone_name: str, after: datetime) -> datetime | None:
    if not schedule:
        return None
    return next_runs(schedule, timezone_name or "UTC", after=after)[0]


def run_enqueue_record(*, job: EtlJob, trigger: str = JobRun.Trigger.MANUAL) -> JobRun:
    """Create the queued run row (the database allows one active run per job)."""
    try:
        with transaction.atomic():
            # Waits for an Edit of this job being saved (it holds the row): the run then loads its columns.
            EtlJob.objects.select_for_update().filter(pk=job.pk).first()
            return JobRun.objects.create(
                job=job,
                trigger=trigger,
                connection=job.connection,
                connection_name=job.connection.name,
                source_display=job.source_display,
                watermark_before=job.watermark,
            )
    except IntegrityError:
        raise RunAlreadyActive(f"Job {job.name!r} already has a run in progress") from None


def verification_record(*, job: EtlJob, kind: str) -> JobRun:
    """Create the queued verify/repair run row (the same one-active-run rule as runs)."""
    try:
        with transaction.atomic():
            EtlJob.objects.select_for_update().filter(pk=job.pk).first()
            return JobRun.objects.create(job=job, kind=kind, connection=job.connection,
                                         connection_name=job.connection.name, source_display=job.source_display)
    except IntegrityError:
        raise RunAlreadyActive(f"Job {job.name!r} already has a run, verification or repair in progress") from None


def runs_fail_stale(*, now: datetime | None = None) -> int:
    """Fail runs whose worker stopped sending heartbeats, so the job can run again."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.ETL_HEARTBEAT_TIMEOUT)
    return JobRun.objects.filter(status=JobRun.Status.RUNNING, heartbeat_at__lt=cutoff).update(
        status=JobRun.Status.FAILED,
        finished_at=now,
        error=f"The worker stopped responding (no heartbeat for {settings.ETL_HEARTBEAT_TIMEOUT} s); "
        "the run was abandoned and nothing from it was committed after its last checkpoint.",
    )
