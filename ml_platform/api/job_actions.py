"""/api/etl/jobs/<id>/run|pause|resume|reconnect/: the job page's buttons, through the pages' services."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from ninja import Router

from ml_platform import selectors
from ml_platform.api.errors import json_error
from ml_platform.api.schemas import ReconnectIn
from ml_platform.api.serializers import job_to_dict, refusal_details, report_to_dict, run_to_dict
from ml_platform.etl.bq_errors import BigQueryError
from ml_platform.runs import lifecycle
from ml_platform.services import jobs, schema_check, sources

# A request without a body (ninja passes this default): every field as the schema defaults it.
NO_BODY = ReconnectIn()

router = Router(tags=["jobs"])


@router.post("/jobs/{int:job_id}/run/", url_name="api_job_run",
             summary="Run Now: queue a run (409 while one is queued or running)")
def run_job(request: HttpRequest, job_id: int) -> JsonResponse:
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    run = lifecycle.run_enqueue(job=job, actor=request.user)  # one queued or running: 409 (errors.CONFLICTS)
    return JsonResponse({"status": "ok", "run": run_to_dict(run)}, status=202)


@router.post("/jobs/{int:job_id}/pause/", url_name="api_job_pause", summary="Pause the job's schedule")
def pause_job(request: HttpRequest, job_id: int) -> JsonResponse:
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    return JsonResponse({"status": "ok", "job": job_to_dict(jobs.job_pause(job=job, actor=request.user))})


@router.post("/jobs/{int:job_id}/resume/", url_name="api_job_resume",
             summary="Resume the schedule from now (missed slots are not replayed)")
def resume_job(request: HttpRequest, job_id: int) -> JsonResponse:
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    return JsonResponse({"status": "ok", "job": job_to_dict(jobs.job_resume(job=job, actor=request.user))})


@router.post("/jobs/{int:job_id}/reconnect/", url_name="api_job_reconnect",
             summary="Point the job at another connection / source table after the schema check; the BigQuery "
                     "table, its rows and the watermark stay")
def reconnect_job(request: HttpRequest, job_id: int, payload: ReconnectIn = NO_BODY) -> JsonResponse:
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    connection = selectors.connection_in(scope=request.scope,
                                         connection_id=payload.connection_id or job.connection_id)
    if payload.source_table:
        schema, table = sources.split_table(payload.source_table)
    else:
        schema, table = job.source_schema or None, job.source_table
    try:  # SourceError, JobCreateError, JobBusy: errors.install
        checked = schema_check.check_reconnect(workspace=request.scope.workspace, job=job, connection=connection,
                                               schema=schema, table=table)
        result, selected, missing = checked.result, checked.selected, checked.missing
    except BigQueryError as exc:
        return json_error(f"BigQuery is not reachable: {exc}", status=502)
    if missing or not result.ok:
        # As the Reconnect page: a selected column the new source lacks refuses it like the check's own findings.
        message = "Schema incompatible" if missing else result.first_error()
        return json_error(message, status=422, details=refusal_details(result, missing))
    jobs.job_reconnect(job=job, connection=connection, source_schema=schema or "", source_table=table,
                       source_columns=selected, result=result, actor=request.user)
    return JsonResponse({"status": "ok", "job": job_to_dict(job), "report": report_to_dict(result)})
