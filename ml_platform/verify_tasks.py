"""django.tasks entry point for Verify and Repair: a run id in, the service call, nothing else."""

from __future__ import annotations

from django.tasks import task

from ml_platform import verification


@task()
def verify_etl_job(run_id: int) -> None:
    verification.execute(run_id=run_id)
