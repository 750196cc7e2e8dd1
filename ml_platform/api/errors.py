"""One error shape for the whole API: `{"status": "error", "message": ..., "details": [...]}` with a 4xx."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, JsonResponse
from ninja import NinjaAPI
from ninja.errors import HttpError, ValidationError

from ml_platform.api.parsing import BadRequest
from ml_platform.api.serializers import refusal_details
from ml_platform.etl.sources import SourceError, TableNotFoundError
from ml_platform.runs.records import RunAlreadyActive
from ml_platform.services.connections import ConnectionInUse
from ml_platform.services.jobs import JobBusy, JobCreateError
from ml_platform.services.sources import SourceBusy
from ml_platform.services.verification import NothingToRepair


def json_error(message: str, *, status: int = 400, details: Any = None) -> JsonResponse:
    return JsonResponse({"status": "error", "message": message, "details": details or []}, status=status)


def source_error(exc: Exception) -> JsonResponse:
    """A source failure as JSON: 404 for a missing table, 429 when the caller has too many calls running."""
    status = 404 if isinstance(exc, TableNotFoundError) else 429 if isinstance(exc, SourceBusy) else 502
    return json_error(str(exc), status=status)


def job_error(exc: JobCreateError) -> JsonResponse:
    """A job the service refuses as asked (the schema check says no, a replace to confirm, a name for a column
    that is not selected...): 422 with its details; a malformed request never gets this far (400)."""
    details = refusal_details(exc.result) if exc.result is not None else exc.details
    return json_error(str(exc), status=422, details=details)


def field_name(loc: tuple | list) -> str:
    """`("body", "payload", "source_columns", 0, "name")` -> `source_columns.0.name`: the field as the caller sent it."""
    parts = [str(p) for p in loc]
    if parts[:1] in (["body"], ["query"], ["path"]):
        parts = parts[1:]
    if parts[:1] == ["payload"]:
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_details(errors: list[dict]) -> list[dict]:
    return [{"field": field_name(e.get("loc", ())), "error": str(e.get("msg", "invalid"))} for e in errors]


CONNECTION_URLS = {"api_connections", "api_connection_detail"}

# An action that cannot happen now (a run is queued or running, jobs still use the connection, nothing to
# repair): 409 with the service's sentence, whichever endpoint asked.
CONFLICTS = (JobBusy, RunAlreadyActive, NothingToRepair, ConnectionInUse)


def install(api: NinjaAPI) -> None:
    """Every error the API raises on purpose, in our shape (an unexpected one stays ninja's: re-raised, a 500)."""

    @api.exception_handler(ValidationError)
    def invalid(request: HttpRequest, exc: ValidationError) -> JsonResponse:
        details = validation_details(exc.errors)
        match = request.resolver_match
        if match and match.url_name in CONNECTION_URLS:
            # The connection endpoints answer in their form's shape, whichever check refused the body.
            grouped: dict[str, list[str]] = {}
            for d in details:
                grouped.setdefault(d["field"], []).append(d["error"])
            return json_error("Invalid connection", status=400,
                              details=[{"field": f, "errors": errors} for f, errors in grouped.items()])
        return json_error("Invalid request", status=400, details=details)

    @api.exception_handler(BadRequest)
    def bad_request(request: HttpRequest, exc: BadRequest) -> JsonResponse:
        return json_error(exc.message, status=exc.status, details=exc.details)

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError) -> JsonResponse:
        if isinstance(exc.__cause__, BadRequest):  # the body parser's own refusal (not JSON, not an object...)
            return bad_request(request, exc.__cause__)
        return json_error(exc.message, status=exc.status_code)

    def conflict(request: HttpRequest, exc: Exception) -> JsonResponse:
        details = [{"job": j} for j in exc.jobs] if isinstance(exc, ConnectionInUse) else None
        return json_error(str(exc), status=409, details=details)

    for refusal in CONFLICTS:
        api.add_exception_handler(refusal, conflict)
    # Whichever endpoint reads a source or creates/changes a job: one answer for each.
    api.add_exception_handler(SourceError, lambda request, exc: source_error(exc))
    api.add_exception_handler(JobCreateError, lambda request, exc: job_error(exc))

    @api.exception_handler(Http404)
    def not_found(request: HttpRequest, exc: Http404) -> JsonResponse:
        # Never the reason: another workspace's object answers exactly like a missing id.
        return json_error("Not found", status=404)
