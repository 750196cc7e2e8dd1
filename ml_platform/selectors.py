"""Reads. Every workspace object is reached through one of these, scoped to the current workspace.

Another workspace's connection, job, run or BigQuery dataset does not exist for the caller: a 404,
never a 403 that would confirm it exists. What a role may do is checked by `ml_platform.scope`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone

from ml_platform.models import AuditEvent, Connection, EtlJob, JobRun, Membership, RunRange, Workspace, WorkspaceDataset

_DATASET_ID = re.compile(r"^[A-Za-z0-9_]{1,1024}$")


@dataclass(frozen=True)
class Scope:
    """Who is asking, in which workspace, with which role."""

    user: AbstractBaseUser
    workspace: Workspace
    role: str

    def allows(self, role: str) -> bool:
        return Membership.RANK[self.role] >= Membership.RANK[role]


def memberships_of(*, user: AbstractBaseUser) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("workspace").order_by("workspace__name")


def scope_for(*, user: AbstractBaseUser, workspace_id: int | None) -> Scope | None:
    """The user's scope in `workspace_id`, else in their first workspace; None for a user with none."""
    memberships = memberships_of(user=user)
    membership = memberships.filter(workspace_id=workspace_id).first() if workspace_id else None
    membership = membership or memberships.first()
    if membership is None:
        return None
    return Scope(user=user, workspace=membership.workspace, role=membership.role)


def connections_in(*, scope: Scope) -> QuerySet[Connection]:
    return Connection.objects.filter(workspace=scope.workspace)


def connection_in(*, scope: Scope, connection_id: int) -> Connection:
    """The workspace's connection or Http404 (another workspace's connection does not exist for them)."""
    return get_object_or_404(connections_in(scope=scope), pk=connection_id)


def jobs_in(*, scope: Scope) -> QuerySet[EtlJob]:
    return EtlJob.objects.filter(workspace=scope.workspace).select_related("connection")


def job_in(*, scope: Scope, job_id: int) -> EtlJob:
    return get_object_or_404(jobs_in(scope=scope), pk=job_id)


def datasets_in(*, scope: Scope) -> list[str]:
    """The BigQuery datasets this workspace may read and write."""
    return list(WorkspaceDataset.objects.filter(workspace=scope.workspace).values_list("dataset", flat=True))


def dataset_in(*, scope: Scope, dataset: str) -> str:
    """`dataset` if the workspace owns it, else Http404: another workspace's dataset does not exist here."""
    if not workspace_owns_dataset(workspace=scope.workspace, dataset=dataset):
        raise Http404("No such dataset")
    return dataset


def workspace_owns_dataset(*, workspace: Workspace, dataset: str) -> bool:
    if not isinstance(dataset, str) or not _DATASET_ID.match(dataset):
        return False  # not a dataset id at all (and never a NUL byte in a query)
    return WorkspaceDataset.objects.filter(workspace=workspace, dataset=dataset).exists()


def last_runs_by_job(*, job_ids: list[int]) -> dict[int, JobRun]:
    """The newest run of each job, in two queries whatever the history length."""
    newest = JobRun.objects.filter(job=OuterRef("pk")).order_by("-created_at", "-id").values("id")[:1]
    run_ids = EtlJob.objects.filter(pk__in=job_ids).annotate(last_run=Subquery(newest)).values_list("last_run", flat=True)
    now = timezone.now()
    return {run.job_id: run_shown(run, now=now)
            for run in _runs_numbered(JobRun.objects.filter(pk__in=[r for r in run_ids if r]))}


def members_of(*, scope: Scope) -> QuerySet[Membership]:
    return Membership.objects.filter(workspace=scope.workspace).select_related("user").order_by("user__username")


def audit_trail_of(*, scope: Scope, target, limit: int = 200) -> list[AuditEvent]:
    """The workspace's audit events about `target` (a job, a connection), newest first."""
    return list(AuditEvent.objects.filter(workspace=scope.workspace, target_type=target._meta.model_name,
                                          target_id=target.pk).order_by("-created_at", "-id")[:limit])


# --------------------------------------------------------------------------- runs as the pages show them

# The runner writes a heartbeat at least every 10 s (`etl.runner.HEARTBEAT_SECONDS`): three missed beats mean
# the worker is gone or stuck, long before the scheduler's ETL_HEARTBEAT_TIMEOUT fails the run.
UNRESPONSIVE_AFTER_S = 30


def unresponsive_after() -> timedelta:
    seconds = getattr(settings, "ETL_UNRESPONSIVE_AFTER", UNRESPONSIVE_AFTER_S)
    return timedelta(seconds=min(seconds, settings.ETL_HEARTBEAT_TIMEOUT))


def _runs_numbered(runs: QuerySet[JobRun]) -> QuerySet[JobRun]:
    """Each run with `number`: its place in its own job's history (#1, #2…), not the global id."""
    earlier = (JobRun.objects.filter(job=OuterRef("job"), id__lte=OuterRef("id")).order_by()
               .values("job").annotate(n=Count("id")).values("n"))
    return runs.annotate(number=Subquery(earlier))


def run_shown(run: JobRun, *, now: datetime | None = None) -> JobRun:
    """Set what the pages say about a run: the total never below what was read (the total is an estimate),
    and `unresponsive_since` (the last heartbeat) when a running run's worker has gone quiet."""
    total = run.progress_total
    run.shown_total = max(total, run.progress_rows) if total else None
    run.unresponsive_since = run.fails_at = None
    run.split_ranges = split_progress(run) if run.status == JobRun.Status.RUNNING else None
    if run.status == JobRun.Status.RUNNING:
        beat = run.heartbeat_at or run.started_at or run.created_at
        if beat and (now or timezone.now()) - beat > unresponsive_after():
            run.unresponsive_since = beat
            # When the scheduler's reaper fails it, and the job can run again.
            run.fails_at = beat + timedelta(seconds=settings.ETL_HEARTBEAT_TIMEOUT)
    return run


def split_progress(run: JobRun) -> dict[str, int] | None:
    """A split first load's key ranges (ml_platform/runs/key_ranges.py): committed of total; None when not split."""
    counts = dict(RunRange.objects.filter(run=run).order_by().values_list("status").annotate(n=Count("id")))
    total = sum(counts.values())
    return {"committed": counts.get(RunRange.Status.COMMITTED, 0), "total": total} if total else None


def runs_of(*, job: EtlJob, limit: int = 50) -> list[JobRun]:
    """The job's newest runs, numbered per job, as the job page shows them."""
    now = timezone.now()
    return [run_shown(r, now=now) for r in _runs_numbered(job.runs.all())[:limit]]
