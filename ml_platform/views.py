"""JSON API (/api/etl/...). Thin: parse, validate with a form, call a selector/service, serialise."""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ml_platform import selectors, services, sources
from ml_platform.api import BadRequest, api_view, json_body, json_error, source_error
from ml_platform.forms import ConnectionForm
from ml_platform.models import Connection, EtlJob
from ml_platform.utils.connection_manager import SourceError


def connection_to_dict(c: Connection) -> dict:
    # The password is write-only: report only whether one is set.
    return {
        "id": c.pk,
        "name": c.name,
        "engine": c.engine,
        "host": c.host,
        "port": c.port,
        "database": c.database,
        "username": c.username,
        "has_password": bool(c.password),
        "options": services.masked_options(c.options or {}),
        "last_test_ok": c.last_test_ok,
        "last_tested_at": c.last_tested_at.isoformat() if c.last_tested_at else None,
    }


def job_to_dict(job: EtlJob) -> dict:
    return {
        "id": job.pk,
        "name": job.name,
        "connection_id": job.connection_id,
        "source_schema": job.source_schema,
        "source_table": job.source_table,
        "selected_columns": job.selected_columns,
        "column_mapping": job.column_mapping,
        "destination_dataset": job.destination_dataset,
        "destination_table": job.destination_table,
        "destination_mode": job.destination_mode,
        "load_strategy": job.load_strategy,
        "cursor_column": job.cursor_column or None,
        "merge_key": job.merge_key,
        "source_tag": job.source_tag or None,
        "schedule": job.schedule or None,
        "schedule_timezone": job.schedule_timezone,
        "status": job.status,
        "watermark": job.watermark,
        "next_run_at": job.next_run_at.isoformat() if job.next_run_at else None,
    }


def form_errors(form) -> list[dict]:
    return [{"field": field, "errors": [str(e) for e in errors]} for field, errors in form.errors.items()]


# --------------------------------------------------------------------------- connections


# The JSON type of each connection field (null = blank). The form would quietly str() a number or a list.
CONNECTION_JSON_TYPES: dict[str, tuple[type, str]] = {
    "name": (str, "a string"), "engine": (str, "a string"), "host": (str, "a string"),
    "port": (int, "an integer"), "database": (str, "a string"), "username": (str, "a string"),
    "password": (str, "a string"), "options": (dict, "a JSON object"),
}


def _form_data(body: dict, base: dict | None = None) -> dict:
    data = dict(base or {})
    wrong = [{"field": key, "errors": [f"must be {name} or null"]}
             for key, (kind, name) in CONNECTION_JSON_TYPES.items()
             if body.get(key) is not None and (isinstance(body[key], bool) or not isinstance(body[key], kind))]
    if wrong:
        raise BadRequest("Invalid connection", details=wrong)
    for key in CONNECTION_JSON_TYPES:
        if key in body:
            value = body[key]
            if key == "options":
                value = json.dumps(value if value is not None else {})
            data[key] = "" if value is None else value
    return data


@require_http_methods(["GET", "POST"])
@api_view
def api_connections(request: HttpRequest) -> JsonResponse:
    if request.method == "GET":
        items = [connection_to_dict(c) for c in selectors.connections_in(scope=request.scope)]
        return JsonResponse({"status": "ok", "connections": items})
    form = ConnectionForm(_form_data(json_body(request)), workspace=request.scope.workspace)
    if not form.is_valid():
        return json_error("Invalid connection", status=400, details=form_errors(form))
    fields = {k: form.cleaned_data[k] for k in services.CONNECTION_FIELDS}
    connection = services.connection_create(owner=request.user, workspace=request.scope.workspace,
                                             password=form.cleaned_data["password"], actor=request.user, **fields)
    return JsonResponse({"status": "ok", "connection": connection_to_dict(connection)}, status=201)


@require_http_methods(["GET", "PATCH", "DELETE"])
@api_view
def api_connection_detail(request: HttpRequest, connection_id: int) -> JsonResponse:
    connection = selectors.connection_in(scope=request.scope, connection_id=connection_id)
    if request.method == "GET":
        return JsonResponse({"status": "ok", "connection": connection_to_dict(connection)})
    if request.method == "DELETE":
        try:
            services.connection_delete(connection=connection, actor=request.user)
        except services.ConnectionInUse as exc:
            return json_error(str(exc), status=409, details=[{"job": j} for j in exc.jobs])
        return JsonResponse({"status": "ok"})
    current = {k: getattr(connection, k) for k in services.CONNECTION_FIELDS}
    current["options"] = json.dumps(current["options"] or {})
    current = {k: ("" if v is None else v) for k, v in current.items()}
    form = ConnectionForm(_form_data(json_body(request), current), instance=connection, workspace=request.scope.workspace)
    if not form.is_valid():
        return json_error("Invalid connection", status=400, details=form_errors(form))
    fields = {k: form.cleaned_data[k] for k in services.CONNECTION_FIELDS}
    services.connection_update(connection=connection, password=form.cleaned_data["password"], actor=request.user,
                               **fields)
    return JsonResponse({"status": "ok", "connection": connection_to_dict(connection)})


@require_POST
@api_view
def api_connection_test(request: HttpRequest, connection_id: int) -> JsonResponse:
    connection = selectors.connection_in(scope=request.scope, connection_id=connection_id)
    result = sources.test_connection(connection)
    services.connection_record_test(connection=connection, ok=result.ok,
                                    message=result.server_version or result.error or "")
    return JsonResponse({"status": "ok" if result.ok else "error", "ok": result.ok,
                         "server_version": result.server_version, "round_trip_ms": result.round_trip_ms,
                         "message": result.error or "Connected"})


@require_GET
@api_view
def api_connection_tables(request: HttpRequest, connection_id: int) -> JsonResponse:
    connection = selectors.connection_in(scope=request.scope, connection_id=connection_id)
    try:
        tables = sources.list_tables(connection)
    except SourceError as exc:
        return source_error(exc)
    return JsonResponse({"status": "ok", "tables": [
        {"schema": t.schema, "name": t.name, "qualified_name": sources.qualified_name(t.schema, t.name),
         "estimated_rows": t.estimated_rows, "kind": t.kind} for t in tables]})


def column_to_dict(c) -> dict:
    from ml_platform.etl.types import bigquery_type_for

    bq_type, mode = bigquery_type_for(c.type)
    return {"name": c.name, "type": c.source_type, "family": str(c.type), "nullable": c.nullable,
            "primary_key": c.primary_key, "default": c.default, "bigquery_type": bq_type, "bigquery_mode": mode}


@require_GET
@api_view
def api_connection_columns(request: HttpRequest, connection_id: int, table: str) -> JsonResponse:
    connection = selectors.connection_in(scope=request.scope, connection_id=connection_id)
    schema, name = sources.split_table(table)
    try:
        columns = sources.get_columns(connection, schema, name)
    except SourceError as exc:
        return source_error(exc)
    return JsonResponse({"status": "ok", "columns": [column_to_dict(c) for c in columns]})


@require_GET
@api_view
def api_connection_preview(request: HttpRequest, connection_id: int, table: str) -> JsonResponse:
    connection = selectors.connection_in(scope=request.scope, connection_id=connection_id)
    try:
        limit = int(request.GET.get("limit", "20"))
    except ValueError:
        raise BadRequest("limit must be an integer") from None
    if not 1 <= limit <= 1000:
        raise BadRequest("limit must be between 1 and 1000")
    schema, name = sources.split_table(table)
    try:
        preview = sources.preview(connection, schema, name, limit=limit)
    except SourceError as exc:
        return source_error(exc)
    return JsonResponse({"status": "ok", "columns": [column_to_dict(c) for c in preview.columns],
                         "rows": preview.json_rows()})


# --------------------------------------------------------------------------- jobs


@require_http_methods(["GET", "POST"])
@api_view
def api_jobs(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        from ml_platform.api_etl import api_etl_create_job

        return api_etl_create_job(request)
    jobs = selectors.jobs_in(scope=request.scope)
    return JsonResponse({"status": "ok", "jobs": [job_to_dict(j) for j in jobs]})


@require_GET
@api_view
def api_job_detail(request: HttpRequest, job_id: int) -> JsonResponse:
    job = selectors.job_in(scope=request.scope, job_id=job_id)
    return JsonResponse({"status": "ok", "job": job_to_dict(job)})
