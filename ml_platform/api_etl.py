"""The spec's BigQuery endpoints: datasets and tables, schema compatibility, job creation.

Bodies are validated with pydantic models; every error is `{"status": "error", "message", "details"}`
with a 4xx status.
"""

from __future__ import annotations

from typing import Annotated, Literal

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_POST
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from ml_platform import compat, selectors, services, sources
from ml_platform.api import BadRequest, api_view, json_body, json_error, source_error
from ml_platform.etl.bigquery import BigQueryError, BigQueryNotFound, DatasetNotFound, InvalidIdentifier
from ml_platform.etl.schedule import cron_error
from ml_platform.etl.source_types import parse_source_type
from ml_platform.etl.types import SourceColumn
from ml_platform.utils.connection_manager import SourceError
from ml_platform.views import job_to_dict
from ml_platform.warehouse import warehouse

Name = Annotated[str, StringConstraints(min_length=1, max_length=300)]
Strategy = Literal["replace", "append", "incremental", "merge"]


class ColumnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    type: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    nullable: bool = True
    primary_key: bool = False


class CompatibilityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source_columns: list[ColumnIn] | None = Field(default=None, max_length=10_000)
    destination_table: Annotated[str, StringConstraints(min_length=3, max_length=1100)]
    load_strategy: Strategy = "append"
    merge_key: list[Name] = Field(default_factory=list, max_length=64)
    cursor_column: Name | None = None
    source_tag: Annotated[str, StringConstraints(max_length=64, pattern=r"^[A-Za-z0-9_.:-]*$")] | None = None
    relax_required: bool = False
    connection_id: int | None = None
    source_table: Annotated[str, StringConstraints(min_length=1, max_length=600)] | None = None
    dialect: Literal["postgresql", "mysql", "sqlite"] | None = None
    validate_data: bool = False

    @field_validator("destination_table")
    @classmethod
    def qualified(cls, value: str | None) -> str | None:
        if value is not None and value.count(".") != 1:
            raise ValueError("destination_table must be 'dataset.table'")
        return value


class JobIn(CompatibilityIn):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    connection_id: int
    source_table: Annotated[str, StringConstraints(min_length=1, max_length=600)]
    columns: list[Name] | None = Field(default=None, max_length=10_000)
    use_existing_table: bool = False
    existing_table_name: Annotated[str, StringConstraints(min_length=3, max_length=1100)] | None = None
    destination_table: Annotated[str, StringConstraints(min_length=3, max_length=1100)] | None = None  # type: ignore[assignment]
    add_columns: list[Name] = Field(default_factory=list)
    partition_field: Name | None = None
    clustering: list[Name] = Field(default_factory=list, max_length=4)
    schedule: Annotated[str, StringConstraints(max_length=100)] = ""
    schedule_timezone: Annotated[str, StringConstraints(max_length=64)] = "UTC"
    run_now: bool = False
    # Replace into an existing table with rows in this job's tag scope deletes them: the caller confirms it.
    confirm_replace: bool = False

    @field_validator("schedule")
    @classmethod
    def runnable_cron(cls, value: str) -> str:
        # A schema error (400 naming `schedule`), before any source or BigQuery call.
        value = value.strip()
        if value and (problem := cron_error(value)):
            raise ValueError(problem)
        return value


def parse(model: type[BaseModel], request: HttpRequest) -> BaseModel:
    try:
        return model.model_validate(json_body(request))
    except ValidationError as exc:
        details = [{"field": ".".join(str(p) for p in e["loc"]), "error": e["msg"]} for e in exc.errors()]
        raise BadRequest("Invalid request", details=details) from None


def split_destination(value: str) -> tuple[str, str]:
    dataset, table = value.split(".", 1)
    return dataset, table


@require_GET
@api_view
def api_datasets(request: HttpRequest) -> JsonResponse:
    try:
        names = warehouse().list_datasets()
    except BigQueryError as exc:
        return json_error(f"BigQuery is not reachable: {exc}", status=502)
    mine = set(selectors.datasets_in(scope=request.scope))
    return JsonResponse({"status": "ok", "datasets": [n for n in names if n in mine]})


@require_GET
@api_view
def api_dataset_tables(request: HttpRequest, dataset: str) -> JsonResponse:
    selectors.dataset_in(scope=request.scope, dataset=dataset)
    try:
        tables = warehouse().list_tables(dataset)
    except (DatasetNotFound, InvalidIdentifier):
        return json_error(f"Dataset {dataset!r} not found", status=404)
    except BigQueryError as exc:
        return json_error(f"BigQuery is not reachable: {exc}", status=502)
    jobs = selectors.jobs_in(scope=request.scope).filter(destination_dataset=dataset)
    by_table: dict[str, list[int]] = {}
    for job in jobs:
        by_table.setdefault(job.destination_table.lower(), []).append(job.pk)
    return JsonResponse({"status": "ok", "dataset": dataset, "tables": [
        {"table_id": t.table_id, "row_count": t.row_count, "column_count": t.column_count,
         "table_type": t.table_type, "job_ids": by_table.get(t.table_id.lower(), [])} for t in tables]})


def resolve_source(request: HttpRequest, body: CompatibilityIn) -> tuple[list[SourceColumn], object | None]:
    """Source columns from the body (typed as the database names them) or from introspection."""
    connection = None
    if body.connection_id is not None:
        connection = selectors.connection_in(scope=request.scope, connection_id=body.connection_id)
    if body.source_columns is not None:
        dialect = body.dialect or (connection.engine if connection else "postgresql")
        return [SourceColumn(name=c.name, source_type=c.type, type=parse_source_type(c.type, dialect),
                             nullable=c.nullable, primary_key=c.primary_key) for c in body.source_columns], connection
    if connection is None or not body.source_table:
        raise BadRequest("Give source_columns, or connection_id and source_table")
    schema, table = sources.split_table(body.source_table)
    return sources.get_columns(connection, schema, table), connection


@require_POST
@api_view
def api_validate_schema_compatibility(request: HttpRequest) -> JsonResponse:
    body = parse(CompatibilityIn, request)
    dataset, table = split_destination(body.destination_table)
    try:
        columns, connection = resolve_source(request, body)
    except SourceError as exc:
        return source_error(exc)
    options = compat.options_from(load_strategy=body.load_strategy, cursor_column=body.cursor_column or "",
                                  merge_key=body.merge_key, source_tag=body.source_tag or "",
                                  relax_required=body.relax_required)
    try:
        ctx = compat.report_for(workspace=request.scope.workspace, source_columns=columns, dataset=dataset, table=table,
                                options=options, with_state=False)
        validated = {}
        if body.validate_data:
            if connection is None or not body.source_table:
                raise BadRequest("validate_data needs connection_id and source_table")
            schema, source_table = sources.split_table(body.source_table)
            validated = compat.validate_data(connection=connection, schema=schema, table=source_table,
                                             source_columns=columns, destination=ctx.destination, options=options)
            if validated:
                options = compat.options_from(load_strategy=body.load_strategy,
                                              cursor_column=body.cursor_column or "", merge_key=body.merge_key,
                                              source_tag=body.source_tag or "", relax_required=body.relax_required,
                                              validation=validated)
                ctx = compat.report_for(workspace=request.scope.workspace, source_columns=columns, dataset=dataset, table=table,
                                        options=options, with_state=False)
    except (BigQueryNotFound, InvalidIdentifier):
        return json_error(f"Table {body.destination_table!r} not found", status=404)
    except BigQueryError as exc:
        return json_error(f"BigQuery is not reachable: {exc}", status=502)
    except SourceError as exc:
        return source_error(exc)
    result = ctx.report.to_dict()
    result["other_jobs"] = [{"id": j.pk, "name": j.name, "source_tag": j.source_tag or None} for j in ctx.other_jobs]
    if validated:
        result["validation"] = {col: {"checked_rows": v.checked_rows, "failures": v.failures,
                                      "null_failures": v.null_failures, "examples": list(v.examples),
                                      "sampled": v.sampled} for col, v in validated.items()}
    return JsonResponse(result)


@require_POST
@api_view
def api_etl_create_job(request: HttpRequest) -> JsonResponse:
    body = parse(JobIn, request)
    connection = selectors.connection_in(scope=request.scope, connection_id=body.connection_id)
    target = body.existing_table_name if body.use_existing_table else body.destination_table
    if not target or target.count(".") != 1:
        field = "existing_table_name" if body.use_existing_table else "destination_table"
        raise BadRequest("Invalid request", details=[{"field": field, "error": "must be 'dataset.table'"}])
    dataset, table = split_destination(target)
    schema, source_table = sources.split_table(body.source_table)
    try:
        available = sources.get_columns(connection, schema, source_table)
    except SourceError as exc:
        return source_error(exc)
    by_name = {c.name.lower(): c for c in available}
    wanted = body.columns or [c.name for c in available]
    unknown = [c for c in wanted if c.lower() not in by_name]
    if unknown:
        raise BadRequest("Unknown source columns", details=[{"field": "columns", "error": c} for c in unknown])
    try:
        job = services.job_create(
            owner=request.user, workspace=request.scope.workspace, name=body.name, connection=connection, source_schema=schema or "",
            source_table=source_table, source_columns=[by_name[c.lower()] for c in wanted],
            destination_dataset=dataset, destination_table=table, use_existing_table=body.use_existing_table,
            load_strategy=body.load_strategy, cursor_column=body.cursor_column or "", merge_key=body.merge_key,
            source_tag=body.source_tag or "", add_columns=body.add_columns, relax_required=body.relax_required,
            partition_field=body.partition_field or "", clustering=body.clustering, schedule=body.schedule,
            schedule_timezone=body.schedule_timezone, run_now=body.run_now, actor=request.user,
            confirm_replace=body.confirm_replace,
        )
    except services.JobCreateError as exc:
        return json_error(str(exc), status=422, details=exc.details)
    except (BigQueryNotFound, InvalidIdentifier) as exc:
        return json_error(str(exc), status=404 if isinstance(exc, BigQueryNotFound) else 400)
    except BigQueryError as exc:
        return json_error(f"BigQuery refused the change: {exc}", status=502)
    return JsonResponse({"status": "ok", "job": job_to_dict(job)}, status=201)
