"""Writes. Keyword-only, typed; views and tasks call these and nothing else writes."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from ml_platform.models import Connection, EtlJob, JobRun

logger = logging.getLogger(__name__)


@transaction.atomic
def connection_create(
    *,
    owner: AbstractBaseUser,
    name: str,
    engine: str,
    database: str,
    host: str = "",
    port: int | None = None,
    username: str = "",
    password: str = "",
    options: dict[str, Any] | None = None,
) -> Connection:
    connection = Connection(
        owner=owner,
        name=name,
        engine=engine,
        host=host,
        port=port,
        database=database,
        username=username,
        password=password,
        options=options or {},
    )
    connection.full_clean()
    connection.save()
    return connection


def secrets_rotate() -> int:
    """Re-encrypt every stored secret with the primary key (after prepending a new key).

    Reading decrypts with any configured key; saving encrypts with the first.
    """
    count = 0
    with transaction.atomic():
        for connection in Connection.objects.select_for_update().exclude(password=""):
            connection.save(update_fields=["password"])
            count += 1
    return count


# --------------------------------------------------------------------------- runs and scheduling


class RunAlreadyActive(Exception):
    """The job has a queued or running run; the database allows one at a time."""


def next_run_time(*, schedule: str, timezone_name: str, after: datetime) -> datetime | None:
    if not schedule:
        return None
    tz = ZoneInfo(timezone_name or "UTC")
    return croniter(schedule, after.astimezone(tz)).get_next(datetime).astimezone(UTC)


def run_enqueue(*, job: EtlJob, trigger: str = JobRun.Trigger.MANUAL) -> JobRun:
    """Create a queued run and hand its id to the task backend once the row is committed."""
    from ml_platform.tasks import run_etl_job

    try:
        with transaction.atomic():
            run = JobRun.objects.create(
                job=job,
                trigger=trigger,
                connection=job.connection,
                connection_name=job.connection.name,
                source_display=job.source_display,
                watermark_before=job.watermark,
            )
    except IntegrityError:
        raise RunAlreadyActive(f"Job {job.name!r} already has a run in progress") from None
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
            job.next_run_at = next_run_time(schedule=job.schedule, timezone_name=job.schedule_timezone, after=now)
            job.save(update_fields=["next_run_at", "updated_at"])
            try:
                enqueued.append(run_enqueue(job=job, trigger=JobRun.Trigger.SCHEDULE))
            except RunAlreadyActive:
                logger.info("job %s is still running; skipping this slot", job.pk)
    return enqueued


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


def run_execute(*, run_id: int) -> None:
    from ml_platform.runs import execute_run

    execute_run(run_id=run_id)
