"""Request bodies: JSON objects only, sent as JSON, never nested deep enough to exhaust the parser."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest
from ninja.parser import Parser


class BadRequest(Exception):
    """Bad input found by a view: answered as `{"status": "error", "message", "details"}` with `status`."""

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


class JsonObjectParser(Parser):
    """ninja's parser, with the checks above. ninja re-raises a parser error as a 400 `HttpError` whose
    cause is our `BadRequest`; `errors.http_error` answers with the cause's own message and status."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        return json_body(request)
