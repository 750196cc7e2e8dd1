"""django.tasks entry points. Thin: ids in, a service call, nothing else.

Arguments are ids only, so the task queue never stores secrets.
"""

from __future__ import annotations

from django.tasks import task

from ml_platform import range_worker, services


@task()
def run_etl_job(run_id: int) -> None:
    services.run_execute(run_id=run_id)


@task()
def run_etl_range(range_id: int) -> None:
    """One key range of a large first load split across workers (ml_platform/range_worker.py)."""
    range_worker.execute_range(range_id=range_id)
