"""/api/etl/datasets/... and /api/etl/validate-schema-compatibility/: the spec's BigQuery endpoints."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from ninja import Router

from ml_platform import selectors
from ml_platform.api.errors import json_error
from ml_platform.api.parsing import BadRequest
from ml_platform.api.schemas import ColumnIn, CompatibilityIn
from ml_platform.api.serializers import report_to_dict
from ml_platform.api.sources_in import introspected, typed_columns
from ml_platform.etl.bq_errors import BigQueryError, BigQueryNotFound, DatasetNotFound, InvalidIdentifier
from ml_platform.etl.ledger import internal_table
from ml_platform.etl.types import SourceColumn
from ml_platform.models import Connection
from ml_platform.services import schema_check, sources
from ml_platform.services.warehouse import warehouse

router = Router(tags=["bigquery"])


@router.get("/datasets/", url_name="api_datasets", summary="The workspace's BigQuery datasets")
def datasets(request: HttpRequest) -> JsonResponse:
    try:
        names = warehouse().list_datasets()
    except BigQueryError as exc:
        return json_error(f"BigQuery is not reachable: {exc}", status=502)
    mine = set(selectors.datasets_in(scope=request.scope))
    return JsonResponse({"status": "ok", "datasets": [n for n in names if n in mine]})


@router.get("/datasets/{dataset}/tables/", url_name="api_dataset_tables",
            summary="A dataset's tables with exact row counts and the jobs loading into each")
def dataset_tables(request: HttpRequest, dataset: str) -> JsonResponse:
    selectors.dataset_in(scope=request.scope, dataset=dataset)
    try:
        tables = [t for t in warehouse().list_tables(dataset) if not internal_table(t.table_id)]
    except (DatasetNotFound, InvalidIdentifier):
        return json_error(f"Dataset {dataset!r} not found", status=404)
    except BigQueryError as exc:
        return json_error(f"BigQuery is not reachable: {exc}", status=502)
    by_table: dict[str, list[int]] = {}
    for job in selectors.jobs_in(scope=request.scope).filter(destination_dataset=dataset):
        by_table.setdefault(job.destination_table.lower(), []).append(job.pk)
    return JsonResponse({"status": "ok", "dataset": dataset, "tables": [
        {"table_id": t.table_id, "row_count": t.row_count, "column_count": t.column_count,
         "table_type": t.table_type, "job_ids": by_table.get(t.table_id.lower(), [])} for t in tables]})


def resolve_source(request: HttpRequest, body: CompatibilityIn) -> tuple[list[SourceColumn], Connection | None]:
    """Source columns typed in the body, or read from the source (all, or the names the body lists)."""
    connection = None
    if body.connection_id is not None:
        connection = selectors.connection_in(scope=request.scope, connection_id=body.connection_id)
    typed = body.source_columns and isinstance(body.source_columns[0], ColumnIn)
    if typed or (body.source_columns == [] and connection is None):
        return typed_columns(body.source_columns, dialect_of(body, connection)), connection
    if connection is None or not body.source_table:
        field = "source_columns" if body.source_columns else "source_table"
        raise BadRequest("Give source_columns (name and type), or connection_id and source_table",
                         details=[{"field": field, "error": "column names need connection_id and source_table"}]
                         if body.source_columns else [])
    return introspected(connection, body.source_table, body.source_columns, field="source_columns"), connection


def dialect_of(body: CompatibilityIn, connection: Connection | None) -> str:
    return body.dialect or (connection.engine if connection else "postgresql")


@router.post("/validate-schema-compatibility/", url_name="api_validate_schema_compatibility",
             summary="Check source columns against an existing BigQuery table (validate_data scans the source)")
def validate_schema_compatibility(request: HttpRequest, payload: CompatibilityIn) -> JsonResponse:
    """The one schema check (`schema_check.check`), as the wizard's report runs it; `validate_data` scans the
    source for the columns that need it and the verdicts use what the scan found."""
    dataset, table = payload.destination_table.split(".", 1)
    columns, connection = resolve_source(request, payload)  # SourceError: errors.install
    if payload.validate_data and (connection is None or not payload.source_table):
        raise BadRequest("validate_data needs connection_id and source_table",
                         details=[{"field": "validate_data", "error": "needs connection_id and source_table"}])
    source = None
    if connection is not None and payload.source_table:
        source = schema_check.SourceRef(connection, *sources.split_table(payload.source_table))
    choices = schema_check.Choices(load_strategy=payload.load_strategy, cursor_column=payload.cursor_column or "",
                                   merge_key=tuple(payload.merge_key), source_tag=payload.source_tag or "",
                                   relax_required=payload.relax_required)
    try:
        result = schema_check.check(workspace=request.scope.workspace, source_columns=columns,
                                    destination=schema_check.Destination(dataset, table), choices=choices,
                                    dialect=dialect_of(payload, connection), source=source,
                                    validate=payload.validate_data)
    except (BigQueryNotFound, InvalidIdentifier):
        return json_error(f"Table {payload.destination_table!r} not found", status=404)
    except BigQueryError as exc:
        return json_error(f"BigQuery is not reachable: {exc}", status=502)
    return JsonResponse(report_to_dict(result))
