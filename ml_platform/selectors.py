"""Reads. Every user-owned object is reached through one of these, scoped to the user."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import OuterRef, QuerySet, Subquery
from django.shortcuts import get_object_or_404

from ml_platform.models import Connection, EtlJob, JobRun


def connections_for_user(*, user: AbstractBaseUser) -> QuerySet[Connection]:
    return Connection.objects.filter(owner=user)


def connection_for_user(*, user: AbstractBaseUser, connection_id: int) -> Connection:
    """The user's connection or Http404 (another user's connection does not exist for them)."""
    return get_object_or_404(connections_for_user(user=user), pk=connection_id)


def jobs_for_user(*, user: AbstractBaseUser) -> QuerySet[EtlJob]:
    return EtlJob.objects.filter(owner=user).select_related("connection")


def job_for_user(*, user: AbstractBaseUser, job_id: int) -> EtlJob:
    return get_object_or_404(jobs_for_user(user=user), pk=job_id)


def runs_for_user(*, user: AbstractBaseUser) -> QuerySet[JobRun]:
    return JobRun.objects.filter(job__owner=user).select_related("job")


def run_for_user(*, user: AbstractBaseUser, run_id: int) -> JobRun:
    return get_object_or_404(runs_for_user(user=user), pk=run_id)


def jobs_loading_into(*, user: AbstractBaseUser, dataset: str, table: str) -> QuerySet[EtlJob]:
    return jobs_for_user(user=user).filter(destination_dataset=dataset, destination_table__iexact=table)


def last_runs_by_job(*, job_ids: list[int]) -> dict[int, JobRun]:
    """The newest run of each job, in two queries whatever the history length."""
    newest = JobRun.objects.filter(job=OuterRef("pk")).order_by("-created_at", "-id").values("id")[:1]
    run_ids = EtlJob.objects.filter(pk__in=job_ids).annotate(last_run=Subquery(newest)).values_list("last_run", flat=True)
    return {run.job_id: run for run in JobRun.objects.filter(pk__in=[r for r in run_ids if r])}


def active_run(*, job: EtlJob) -> JobRun | None:
    return job.runs.filter(status__in=JobRun.ACTIVE_STATUSES).first()
