"""django.tasks entry points. Thin: ids in, a service call, nothing else.

Arguments are ids only, so the task queue never stores secrets.
"""

from __future__ import annotations

from django.tasks import task

from ml_platform import services


@task()
def run_etl_job(run_id: int) -> None:
    services.run_execute(run_id=run_id)
