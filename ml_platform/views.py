"""JSON API (/api/etl/...). Thin: parse, call a selector/service, serialise."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from ml_platform import selectors
from ml_platform.api import api_view
from ml_platform.models import EtlJob


def job_to_dict(job: EtlJob) -> dict:
    return {
        "id": job.pk,
        "name": job.name,
        "connection_id": job.connection_id,
        "source_schema": job.source_schema,
        "source_table": job.source_table,
        "selected_columns": job.selected_columns,
        "destination_dataset": job.destination_dataset,
        "destination_table": job.destination_table,
        "destination_mode": job.destination_mode,
        "load_strategy": job.load_strategy,
        "cursor_column": job.cursor_column or None,
        "merge_key": job.merge_key,
        "source_tag": job.source_tag or None,
        "schedule": job.schedule or None,
        "status": job.status,
        "next_run_at": job.next_run_at.isoformat() if job.next_run_at else None,
    }


@require_GET
@api_view
def api_jobs(request: HttpRequest) -> JsonResponse:
    jobs = selectors.jobs_for_user(user=request.user)
    return JsonResponse({"status": "ok", "jobs": [job_to_dict(j) for j in jobs]})


@require_GET
@api_view
def api_job_detail(request: HttpRequest, job_id: int) -> JsonResponse:
    job = selectors.job_for_user(user=request.user, job_id=job_id)
    return JsonResponse({"status": "ok", "job": job_to_dict(job)})
