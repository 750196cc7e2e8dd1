"""Small helpers shared by the JSON API views: one error shape, safe body parsing."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.csrf import csrf_failure as django_csrf_failure


def json_error(message: str, *, status: int = 400, details: Any = None) -> JsonResponse:
    return JsonResponse({"status": "error", "message": message, "details": details or []}, status=status)


def source_error(exc: Exception) -> JsonResponse:
    """A source failure as JSON: 404 for a missing table, 429 when the caller has too many calls running."""
    from ml_platform.sources import SourceBusy
    from ml_platform.utils.connection_manager import TableNotFoundError

    status = 404 if isinstance(exc, TableNotFoundError) else 429 if isinstance(exc, SourceBusy) else 502
    return json_error(str(exc), status=status)


class BadRequest(Exception):
    def __init__(self, message: str, *, status: int = 400, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.details = details


class BoundedJSONDecoder(json.JSONDecoder):
    """Nesting deep enough to exhaust the parser's recursion is invalid JSON, not a server error."""

    def decode(self, s: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().decode(s, *args, **kwargs)
        except RecursionError:
            raise json.JSONDecodeError("JSON nested too deeply", s, 0) from None


def json_body(request: HttpRequest) -> dict[str, Any]:
    if not request.body:
        return {}
    content_type = (request.content_type or "").lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise BadRequest(f"Send the body as JSON (Content-Type: application/json), not {content_type or 'untyped'}",
                         status=415)
    try:
        data = json.loads(request.body, cls=BoundedJSONDecoder)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("Request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("Request body must be a JSON object")
    return data


def api_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """JSON errors for the API: 404s and bad input become `{"status": "error", ...}` with a 4xx."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Http404:
            return json_error("Not found", status=404)
        except BadRequest as exc:
            return json_error(exc.message, status=exc.status, details=exc.details)

    return wrapper


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: the API refuses in its own JSON error shape; pages keep Django's 403 page."""
    if request.path.startswith("/api/"):
        return json_error("CSRF verification failed: send the csrftoken cookie's value in the X-CSRFToken header",
                          status=403, details=[reason] if reason else [])
    return django_csrf_failure(request, reason)
