"""Verify and Repair as the pages and the API see them: the last result, cancel, the verify-after-run setting.

A verification is a `JobRun` of kind *verify* (a repair: kind *repair*), so it shares the run
history, the one-active-run-per-job rule, heartbeats and the stale-run reaper with runs. Its result
(`etl.verify.VerifyResult.to_json()`) is stored on the run; the job page draws the newest one.
The algorithm and the SQL live in `ml_platform/etl/verify*.py` and `etl/repair.py`.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from ml_platform.etl.verify import VerifyResult
from ml_platform.models import EtlJob, JobRun
from ml_platform.services import audit

VERIFY_KINDS = (JobRun.Kind.VERIFY, JobRun.Kind.REPAIR)


class NothingToRepair(Exception):
    """Repair needs a finished verification that found differing rows it can localise."""


# --------------------------------------------------------------------------- reads


def last_verification(*, job: EtlJob) -> JobRun | None:
    """The newest finished verify/repair run that has a result."""
    return (JobRun.objects.filter(job=job, kind__in=VERIFY_KINDS, status=JobRun.Status.SUCCEEDED,
                                  verification__isnull=False).order_by("-created_at", "-id").first())


def result_of(run: JobRun | None) -> VerifyResult | None:
    return VerifyResult.from_json(run.verification) if run is not None and run.verification else None


def repairable(result: VerifyResult | None) -> bool:
    return bool(result and not result.in_sync and result.keyed and (result.repair_ranges or result.repair_keys))


def check_repairable(*, job: EtlJob) -> None:
    """Raise NothingToRepair unless the job's last verification found differing rows by key."""
    if not repairable(result_of(last_verification(job=job))):
        raise NothingToRepair("Nothing to repair: verify the job first (a verification that found differing rows "
                              "by key).")



def cancel(*, job: EtlJob, actor: AbstractBaseUser | None = None) -> bool:
    """Stop the job's queued or running verification/repair (the worker notices at its next step)."""
    who = actor.get_username() if actor is not None and actor.pk else "system"
    done = JobRun.objects.filter(job=job, kind__in=VERIFY_KINDS, status__in=JobRun.ACTIVE_STATUSES).update(
        status=JobRun.Status.FAILED, finished_at=timezone.now(), error=f"Cancelled by {who}")
    if done:
        audit.record(workspace=job.workspace, actor=actor, target=job, action="cancelled verification")
    return bool(done)


def set_verify_after_run(*, job: EtlJob, enabled: bool, actor: AbstractBaseUser | None = None) -> None:
    if job.verify_after_run != enabled:
        audit.record(workspace=job.workspace, actor=actor, target=job, action="edited",
                     changes={"verify_after_run": {"before": job.verify_after_run, "after": enabled}})
        EtlJob.objects.filter(pk=job.pk).update(verify_after_run=enabled)
        job.verify_after_run = enabled



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
