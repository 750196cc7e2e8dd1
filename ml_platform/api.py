"""Small helpers shared by the JSON API views: one error shape, safe body parsing."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse


def json_error(message: str, *, status: int = 400, details: Any = None) -> JsonResponse:
    return JsonResponse({"status": "error", "message": message, "details": details or []}, status=status)


class BadRequest(Exception):
    def __init__(self, message: str, *, status: int = 400, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.details = details


def json_body(request: HttpRequest) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        data = json.loads(request.body)
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
