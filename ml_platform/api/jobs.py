"""/api/etl/jobs/...: list, create, read, Edit (PATCH), delete and the run history of jobs.

Every write calls the service the pages call (`services.job_create`, `job_update`, `job_delete`), after the
same schema check the pages run (`compat.report_for`): the API never decides compatibility on its own.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from ninja import Router

from ml_platform import compat, selectors, services, sources
from ml_platform.api.errors import json_error, source_error
from ml_platform.api.parsing import BadRequest
from ml_platform.api.schemas import JobIn, JobPatchIn
from ml_platform.api.serializers import job_to_dict, report_to_dict, run_to_dict
from ml_platform.api.sources_in import introspected
from ml_platform.etl import compatibility as engine
from ml_platform.etl.bigquery import BigQueryError, BigQueryNotFound, InvalidIdentifier, SchemaChangeRefused
from ml_platform.etl.types import SourceColumn
from ml_platform.models import Connection, EtlJob
from ml_platform.utils.connection_manager import SourceError
from ml_platform.warehouse import warehouse

router = Router(tags=["jobs"])


def bigquery_error(exc: BigQueryError) -> JsonResponse:
    if isinstance(exc, BigQueryNotFound):
        return json_error(str(exc), status=404)
    if isinstance(exc, InvalidIdentifier):
        return json_error(str(exc), status=400)
    if isinstance(exc, SchemaChangeRefused):  # e.g. partitioning by a STRING column: the request, not BigQuery
        return json_error(str(exc), status=422)
    return json_error(f"BigQuery refused the change: {exc}", status=502)


def job_error(exc: services.JobCreateError) -> JsonResponse:
    """A job the service refuses as asked (the schema check says no, a replace to confirm, a name for a column
    that is not selected...): 422 with its details; a malformed request never gets this far (400)."""
    return json_error(str(exc), status=422, details=exc.details)


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


def validate_for_job(request: HttpRequest, body: JobIn, connection: Connection, columns: list[SourceColumn],
                     dataset: str, table: str) -> dict[str, engine.ValidationResult] | None:
    """`validate_data`: the wizard's data validation against the existing table (a new table is created from the
    source's own types, so there is nothing to validate)."""
    if not body.validate_data or not body.use_existing_table:
        return None
    selectors.dataset_in(scope=request.scope, dataset=dataset)
    destination = warehouse().get_table_schema(dataset, table)
    options = compat.options_from(load_strategy=body.load_strategy, cursor_column=body.cursor_column or "",
                                  merge_key=body.merge_key, source_tag=body.source_tag or "",
                                  relax_required=body.relax_required)
    schema, source_table = sources.split_table(body.source_table)
    return compat.validate_data(connection=connection, schema=schema, table=source_table, source_columns=columns,
                                destination=destination, options=options)


@router.post("/jobs/", summary="Create a job (new table, or `use_existing_table` after the schema check)")
def create_job(request: HttpRequest, payload: JobIn) -> JsonResponse:
    connection = selectors.connection_in(scope=request.scope, connection_id=payload.connection_id)
    field, target = payload.target
    if not target:
        raise BadRequest("Invalid request", details=[{"field": field, "error": "must be 'dataset.table'"}])
    dataset, table = target.split(".", 1)
    schema, source_table = sources.split_table(payload.source_table)
    try:
        columns = introspected(connection, schema, source_table, payload.selected,
                               field="columns" if payload.columns is not None else "source_columns")
        validation = validate_for_job(request, payload, connection, columns, dataset, table)
        job = services.job_create(
            owner=request.user, workspace=request.scope.workspace, name=payload.name, connection=connection,
            source_schema=schema or "", source_table=source_table, source_columns=columns,
            destination_dataset=dataset, destination_table=table, use_existing_table=payload.use_existing_table,
            load_strategy=payload.load_strategy, cursor_column=payload.cursor_column or "",
            merge_key=payload.merge_key, source_tag=payload.source_tag or "", add_columns=payload.add_columns,
            relax_required=payload.relax_required, partition_field=payload.partition_field or "",
            clustering=payload.clustering, schedule=payload.schedule, schedule_timezone=payload.schedule_timezone,
            run_now=payload.run_now, validation=validation, actor=request.user,
            confirm_replace=payload.confirm_replace,
        )
    except SourceError as exc:
        return source_error(exc)
    except services.JobCreateError as exc:
        return job_error(exc)
    except BigQueryError as exc:
        return bigquery_error(exc)
    return JsonResponse({"status": "ok", "job": job_to_dict(job)}, status=201)


@router.get("/jobs/{int:job_id}/", url_name="api_job_detail", summary="One job")
def get_job(request: HttpRequest, job_id: int) -> JsonResponse:
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    return JsonResponse({"status": "ok", "job": job_to_dict(job)})


def edit_check(request: HttpRequest, job: EtlJob,
               body: JobPatchIn) -> tuple[list[SourceColumn], dict, compat.ReportContext]:
    """What the Edit page checks before saving: the columns exist, the strategy has what it needs; then the
    schema check against the job's table. Returns (selected columns, the edited values, the report)."""
    sent = body.model_dump(exclude_unset=True)
    values = {"name": sent.get("name") or job.name,
              "load_strategy": sent.get("load_strategy") or job.load_strategy,
              "cursor_column": (sent["cursor_column"] if "cursor_column" in sent else job.cursor_column) or "",
              "merge_key": (sent["merge_key"] if "merge_key" in sent else job.merge_key) or [],
              "schedule": (sent["schedule"] if "schedule" in sent else job.schedule) or "",
              "schedule_timezone": sent.get("schedule_timezone") or job.schedule_timezone}
    source = introspected(job.connection, job.source_schema or None, job.source_table,
                          sent.get("columns") or job.selected_columns, field="columns")
    services.check_column_choices(source_columns=source, load_strategy=values["load_strategy"],
                                  cursor_column=values["cursor_column"], merge_key=values["merge_key"],
                                  partition_field="", clustering=[])
    options = compat.options_from(load_strategy=values["load_strategy"], cursor_column=values["cursor_column"],
                                  merge_key=values["merge_key"], source_tag=job.source_tag)
    ctx = compat.report_for(workspace=request.scope.workspace, source_columns=source,
                            dataset=job.destination_dataset, table=job.destination_table, options=options,
                            exclude_job=job, with_state=False)
    return source, values, ctx


@router.patch("/jobs/{int:job_id}/", summary="Edit a job: name, columns, strategy, schedule, approved new columns")
def edit_job(request: HttpRequest, job_id: int, payload: JobPatchIn | None = None) -> JsonResponse:
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    payload = payload or JobPatchIn()
    try:
        source, values, ctx = edit_check(request, job, payload)
        report = report_to_dict(ctx)
        if not report["compatible"]:
            return json_error("Schema incompatible", status=422, details=incompatible_details(report))
        services.job_update(job=job, source_columns=source, report=ctx.report, add_columns=payload.add_columns,
                            actor=request.user, **values)
    except SourceError as exc:
        return source_error(exc)
    except services.JobCreateError as exc:
        return job_error(exc)
    except services.JobBusy as exc:
        return json_error(str(exc), status=409)
    except ValidationError as exc:
        return model_errors(exc)
    except BigQueryError as exc:
        return bigquery_error(exc)
    job.refresh_from_db()
    return JsonResponse({"status": "ok", "job": job_to_dict(job), "report": report})


def incompatible_details(report: dict) -> list[str]:
    """Every reason a report says no: its errors, then each column whose data still needs validating."""
    unvalidated = [f"{c['source_name']}: {c['message']}" for c in report["columns"]
                   if c["verdict"] == "needs_validation" and c.get("source_name")]
    return list(report["errors"]) + [u for u in unvalidated if u not in report["errors"]]


@router.delete("/jobs/{int:job_id}/", summary="Delete a job and its run history (the BigQuery table stays)")
def delete_job(request: HttpRequest, job_id: int) -> JsonResponse:
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    try:
        services.job_delete(job=job, actor=request.user)
    except services.JobBusy as exc:
        return json_error(str(exc), status=409)
    return JsonResponse({"status": "ok"})


@router.get("/jobs/{int:job_id}/runs/", url_name="api_job_runs", summary="A job's run history, newest first")
def job_runs(request: HttpRequest, job_id: int) -> JsonResponse:
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    return JsonResponse({"status": "ok", "runs": [run_to_dict(r) for r in selectors.runs_of(job=job)]})
