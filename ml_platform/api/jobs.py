"""/api/etl/jobs/...: list, create, read, Edit (PATCH), delete and the run history of jobs.

Every write calls the service the pages call (`jobs.job_create`, `job_update`, `job_delete`), after the
same schema check the pages run (`schema_check.check`): the API never decides compatibility on its own.
"""

from __future__ import annotations

import functools

from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from ninja import Router

from ml_platform import selectors
from ml_platform.api.errors import json_error
from ml_platform.api.parsing import BadRequest
from ml_platform.api.schemas import JobIn, JobPatchIn
from ml_platform.api.serializers import job_to_dict, report_to_dict, run_to_dict
from ml_platform.api.sources_in import introspected
from ml_platform.etl.bq_errors import BigQueryError, BigQueryNotFound, InvalidIdentifier, SchemaChangeRefused
from ml_platform.etl.compat_model import default_load_strategy
from ml_platform.etl.types import SourceColumn
from ml_platform.models import EtlJob
from ml_platform.services import jobs, schema_check, sources

# A request without a body (ninja passes this default): every field as the schema defaults it.
NO_BODY = JobPatchIn()

router = Router(tags=["jobs"])


def bigquery_error(exc: BigQueryError) -> JsonResponse:
    if isinstance(exc, BigQueryNotFound):
        return json_error(str(exc), status=404)
    if isinstance(exc, InvalidIdentifier):
        return json_error(str(exc), status=400)
    if isinstance(exc, SchemaChangeRefused):  # e.g. partitioning by a STRING column: the request, not BigQuery
        return json_error(str(exc), status=422)
    return json_error(f"BigQuery refused the change: {exc}", status=502)


def model_errors(exc: ValidationError) -> JsonResponse:
    """A model rule the service enforces, as a 400 naming the field. The one an Edit can break is the job name
    taken in the workspace: a two-field unique constraint, which Django reports as a non-field error."""
    errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
    details = [{"field": "name" if "name" in " ".join(m).lower() and f == "__all__" else f, "error": " ".join(m)}
               for f, m in errors.items()]
    return json_error("; ".join(exc.messages), status=400, details=details)


@router.get("/jobs/", url_name="api_jobs", summary="List the workspace's jobs")
def list_jobs(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok", "jobs": [job_to_dict(j) for j in selectors.jobs_in(scope=request.scope)]})


@router.post("/jobs/", summary="Create a job (new table, or `use_existing_table` after the schema check)")
def create_job(request: HttpRequest, payload: JobIn) -> JsonResponse:
    connection = selectors.connection_in(scope=request.scope, connection_id=payload.connection_id)
    field, target = payload.target
    if not target:
        raise BadRequest("Invalid request", details=[{"field": field, "error": "must be 'dataset.table'"}])
    dataset, table = target.split(".", 1)
    schema, source_table = sources.split_table(payload.source_table)
    try:
        columns = introspected(connection, payload.source_table, payload.selected,
                               field="columns" if payload.columns is not None else "source_columns")
        job = jobs.job_create(
            owner=request.user, workspace=request.scope.workspace, name=payload.name, connection=connection,
            source_schema=schema or "", source_table=source_table, source_columns=columns,
            destination_dataset=dataset, destination_table=table, use_existing_table=payload.use_existing_table,
            load_strategy=payload.load_strategy or default_load_strategy(existing_table=payload.use_existing_table),
            cursor_column=payload.cursor_column or "",
            merge_key=payload.merge_key, source_tag=payload.source_tag or "", add_columns=payload.add_columns,
            relax_required=payload.relax_required, partition_field=payload.partition_field or "",
            clustering=payload.clustering, schedule=payload.schedule, schedule_timezone=payload.schedule_timezone,
            run_now=payload.run_now, validate_data=payload.validate_data, actor=request.user,
            confirm_replace=payload.confirm_replace, confirm_backfill=payload.confirm_backfill,
        )
    except BigQueryError as exc:  # SourceError, JobCreateError: errors.install
        return bigquery_error(exc)
    return JsonResponse({"status": "ok", "job": job_to_dict(job)}, status=201)


@router.get("/jobs/{int:job_id}/", url_name="api_job_detail", summary="One job")
def get_job(request: HttpRequest, job_id: int) -> JsonResponse:
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    return JsonResponse({"status": "ok", "job": job_to_dict(job)})


def edited_values(job: EtlJob, sent: dict) -> dict:
    """The job's settings with the body's changes (absent fields keep their value)."""
    return {"name": sent.get("name") or job.name,
            "load_strategy": sent.get("load_strategy") or job.load_strategy,
            "cursor_column": (sent["cursor_column"] if "cursor_column" in sent else job.cursor_column) or "",
            "merge_key": (sent["merge_key"] if "merge_key" in sent else job.merge_key) or [],
            "schedule": (sent["schedule"] if "schedule" in sent else job.schedule) or "",
            "schedule_timezone": sent.get("schedule_timezone") or job.schedule_timezone}


def edit_check(request: HttpRequest, job: EtlJob, body: JobPatchIn) -> tuple[list[SourceColumn], dict,
                                                                              schema_check.SchemaCheckResult]:
    """What the Edit page checks before saving: the columns exist, the strategy has what it needs; then the one
    schema check against the job's table, run as Edit's save runs it (the columns that need a data check are
    scanned in the source). Returns (selected columns, the edited values, the check's result)."""
    sent = body.model_dump(exclude_unset=True)
    values = edited_values(job, sent)
    source = introspected(job.connection, sources.qualified_name(job.source_schema or None, job.source_table),
                          sent.get("columns") or job.selected_columns, field="columns")
    jobs.check_column_choices(source_columns=source, load_strategy=values["load_strategy"],
                              cursor_column=values["cursor_column"], merge_key=values["merge_key"],
                              partition_field="", clustering=[])
    choices = schema_check.Choices(load_strategy=values["load_strategy"], cursor_column=values["cursor_column"],
                                   merge_key=tuple(values["merge_key"]), source_tag=job.source_tag,
                                   add_columns=tuple(body.add_columns))
    check = functools.partial(schema_check.check, workspace=request.scope.workspace, source_columns=source,
                              destination=schema_check.Destination(job.destination_dataset, job.destination_table),
                              choices=choices, dialect=job.connection.engine, exclude_job=job, creating=False)
    result = check()
    if result.report.needs_validation and not result.report.errors:
        result = check(validate=True, source=schema_check.SourceRef(job.connection, job.source_schema or None,
                                                                    job.source_table))
    return source, values, result


@router.patch("/jobs/{int:job_id}/", summary="Edit a job: name, columns, strategy, schedule, approved new columns")
def edit_job(request: HttpRequest, job_id: int, payload: JobPatchIn = NO_BODY) -> JsonResponse:
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    try:
        source, values, result = edit_check(request, job, payload)
        jobs.job_update(job=job, source_columns=source, result=result, actor=request.user, **values)
    except ValidationError as exc:  # SourceError, JobCreateError, JobBusy: errors.install
        return model_errors(exc)
    except BigQueryError as exc:
        return bigquery_error(exc)
    job.refresh_from_db()
    return JsonResponse({"status": "ok", "job": job_to_dict(job), "report": report_to_dict(result)})


@router.delete("/jobs/{int:job_id}/", summary="Delete a job and its run history (the BigQuery table stays)")
def delete_job(request: HttpRequest, job_id: int) -> JsonResponse:
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    jobs.job_delete(job=job, actor=request.user)  # a run active: 409 (errors.CONFLICTS)
    return JsonResponse({"status": "ok"})


@router.get("/jobs/{int:job_id}/runs/", url_name="api_job_runs", summary="A job's run history, newest first")
def job_runs(request: HttpRequest, job_id: int) -> JsonResponse:
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    return JsonResponse({"status": "ok", "runs": [run_to_dict(r) for r in selectors.runs_of(job=job)]})
