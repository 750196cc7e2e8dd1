"""`POST /api/etl/jobs/<id>/verify/` and `GET` of the same path: Verify through the JSON API.

`verify_job` is plain (scope, id, body) -> (status, JSON) so the API router can call it as it is;
`api_job_verify` is the Django view registered in urls.py.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.http import require_http_methods

from ml_platform import selectors, verification
from ml_platform.models import JobRun


def _error(message: str, status: int) -> tuple[int, dict[str, Any]]:
    return status, {"status": "error", "message": message, "details": []}


def verify_job(*, scope: selectors.Scope, job_id: int, body: dict[str, Any], actor: Any) -> tuple[int, dict[str, Any]]:
    """Queue (or with `"wait": true` run at once) a verification, or with `"repair": true` a repair."""
    job = selectors.job_in(scope=scope, job_id=job_id)
    unknown = sorted(set(body) - {"wait", "repair"})
    if unknown:
        return _error(f"Unknown field(s): {', '.join(unknown)}; accepted: wait, repair", 400)
    if any(not isinstance(body.get(k, False), bool) for k in ("wait", "repair")):
        return _error("wait and repair must be true or false", 400)
    kind = JobRun.Kind.REPAIR if body.get("repair") else JobRun.Kind.VERIFY
    try:
        if body.get("wait"):
            run = verification.run_sync(job=job, kind=kind, actor=actor)
        else:
            run = verification.enqueue(job=job, kind=kind, actor=actor)
    except verification.RunAlreadyActive as exc:
        return _error(str(exc), 409)
    except verification.NothingToRepair as exc:
        return _error(str(exc), 409)
    return (200 if body.get("wait") else 202), {"status": "ok", "verification": verification.as_json(run)}


def last_verification(*, scope: selectors.Scope, job_id: int) -> tuple[int, dict[str, Any]]:
    job = selectors.job_in(scope=scope, job_id=job_id)
    run = (JobRun.objects.filter(job=job, kind__in=verification.VERIFY_KINDS).order_by("-created_at", "-id").first())
    return 200, {"status": "ok", "verification": verification.as_json(run) if run is not None else None}


@require_http_methods(["GET", "POST"])
def api_job_verify(request: HttpRequest, job_id: int) -> JsonResponse:
    try:
        if request.method == "GET":
            status, data = last_verification(scope=request.scope, job_id=job_id)
        else:
            body: Any = {}
            if request.body:
                if (request.content_type or "").lower() != "application/json":
                    return JsonResponse(_error("Send the body as JSON (Content-Type: application/json)", 415)[1],
                                        status=415)
                try:
                    body = json.loads(request.body)
                except (ValueError, UnicodeDecodeError, RecursionError):
                    return JsonResponse(_error("Request body is not valid JSON", 400)[1], status=400)
                if not isinstance(body, dict):
                    return JsonResponse(_error("Request body must be a JSON object", 400)[1], status=400)
            status, data = verify_job(scope=request.scope, job_id=job_id, body=body, actor=request.user)
    except Http404:
        status, data = _error("Not found", 404)
    return JsonResponse(data, status=status)
