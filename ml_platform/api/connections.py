"""/api/etl/connections/...: saved source databases, their test, tables, columns and preview."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, JsonResponse
from ninja import Query, Router
from pydantic import BaseModel, Field

from ml_platform import selectors
from ml_platform.api.errors import json_error
from ml_platform.api.schemas import ConnectionIn
from ml_platform.api.serializers import column_to_dict, connection_to_dict
from ml_platform.services import connections, sources
from ml_platform.web.forms import ConnectionForm

# A request without a body (ninja passes this default): every field as the schema defaults it.
NO_BODY = ConnectionIn()

router = Router(tags=["connections"])


def form_errors(form) -> list[dict]:
    return [{"field": field, "errors": [str(e) for e in errors]} for field, errors in form.errors.items()]


def form_data(body: ConnectionIn, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The form's data: `base` (the saved values) overlaid with the fields the body sent (null = blank)."""
    data = dict(base or {})
    for key, value in body.model_dump(exclude_unset=True).items():
        if key == "options":
            value = json.dumps(value if value is not None else {})
        data[key] = "" if value is None else value
    return data


def save(request: HttpRequest, form: ConnectionForm, connection=None) -> JsonResponse | None:
    if not form.is_valid():
        return json_error("Invalid connection", status=400, details=form_errors(form))
    saved = connections.connection_save(connection=connection, workspace=request.scope.workspace,
                                        actor=request.user, data=form.cleaned_data)
    created = connection is None
    return JsonResponse({"status": "ok", "connection": connection_to_dict(saved)}, status=201 if created else 200)


@router.get("/connections/", url_name="api_connections", summary="List the workspace's connections")
def list_connections(request: HttpRequest) -> JsonResponse:
    items = [connection_to_dict(c) for c in selectors.connections_in(scope=request.scope)]
    return JsonResponse({"status": "ok", "connections": items})


@router.post("/connections/", summary="Create a connection (the password is write-only)")
def create_connection(request: HttpRequest, payload: ConnectionIn) -> JsonResponse:
    return save(request, ConnectionForm(form_data(payload), workspace=request.scope.workspace))


@router.get("/connections/{int:connection_id}/", url_name="api_connection_detail", summary="One connection")
def get_connection(request: HttpRequest, connection_id: int) -> JsonResponse:
    connection = selectors.connection_in(scope=request.scope, connection_id=connection_id)
    return JsonResponse({"status": "ok", "connection": connection_to_dict(connection)})


@router.patch("/connections/{int:connection_id}/", summary="Change a connection (e.g. rotate its password)")
def update_connection(request: HttpRequest, connection_id: int, payload: ConnectionIn = NO_BODY) -> JsonResponse:
    connection = selectors.connection_in(scope=request.scope, connection_id=connection_id)
    current = {k: getattr(connection, k) for k in connections.CONNECTION_FIELDS}
    current["options"] = json.dumps(current["options"] or {})
    current = {k: ("" if v is None else v) for k, v in current.items()}
    form = ConnectionForm(form_data(payload, current), instance=connection, workspace=request.scope.workspace)
    return save(request, form, connection)


@router.delete("/connections/{int:connection_id}/", summary="Delete a connection no job uses (409 otherwise)")
def delete_connection(request: HttpRequest, connection_id: int) -> JsonResponse:
    connection = selectors.connection_in(scope=request.scope, connection_id=connection_id)
    connections.connection_delete(connection=connection, actor=request.user)  # in use: 409 (errors.CONFLICTS)
    return JsonResponse({"status": "ok"})


@router.post("/connections/{int:connection_id}/test/", url_name="api_connection_test", summary="Test a connection")
def test_connection(request: HttpRequest, connection_id: int) -> JsonResponse:
    connection = selectors.connection_in(scope=request.scope, connection_id=connection_id)
    result = sources.test_connection(connection)
    connections.connection_record_test(connection=connection, ok=result.ok,
                                       message=result.server_version or result.error or "")
    return JsonResponse({"status": "ok" if result.ok else "error", "ok": result.ok,
                         "server_version": result.server_version, "round_trip_ms": result.round_trip_ms,
                         "message": result.error or "Connected"})


@router.get("/connections/{int:connection_id}/tables/", url_name="api_connection_tables",
            summary="The source tables and views, with estimated row counts")
def connection_tables(request: HttpRequest, connection_id: int) -> JsonResponse:
    connection = selectors.connection_in(scope=request.scope, connection_id=connection_id)
    tables = sources.list_tables(connection)  # SourceError: errors.install
    return JsonResponse({"status": "ok", "tables": [
        {"schema": t.schema, "name": t.name, "qualified_name": sources.qualified_name(t.schema, t.name),
         "estimated_rows": t.estimated_rows, "kind": t.kind} for t in tables]})


@router.get("/connections/{int:connection_id}/tables/{table}/columns/", url_name="api_connection_columns",
            summary="A source table's columns, with the BigQuery type each maps to")
def connection_columns(request: HttpRequest, connection_id: int, table: str) -> JsonResponse:
    connection = selectors.connection_in(scope=request.scope, connection_id=connection_id)
    schema, name = sources.split_table(table)
    columns = sources.get_columns(connection, schema, name)
    return JsonResponse({"status": "ok", "columns": [column_to_dict(c) for c in columns]})


class PreviewQuery(BaseModel):
    limit: int = Field(default=20, ge=1, le=1000)


@router.get("/connections/{int:connection_id}/tables/{table}/preview/", url_name="api_connection_preview",
            summary="The first rows of a source table (limit 1-1000, default 20)")
def connection_preview(request: HttpRequest, connection_id: int, table: str,
                       query: Query[PreviewQuery]) -> JsonResponse:
    connection = selectors.connection_in(scope=request.scope, connection_id=connection_id)
    schema, name = sources.split_table(table)
    preview = sources.preview(connection, schema, name, limit=query.limit)
    return JsonResponse({"status": "ok", "columns": [column_to_dict(c) for c in preview.columns],
                         "rows": preview.json_rows()})
