"""HTML pages outside the wizard: jobs and connections."""

from __future__ import annotations

from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from ml_platform import selectors


@require_GET
def jobs(request: HttpRequest) -> TemplateResponse:
    return TemplateResponse(
        request, "ml_platform/jobs.html", {"jobs": selectors.jobs_for_user(user=request.user)}
    )


@require_GET
def connections(request: HttpRequest) -> TemplateResponse:
    return TemplateResponse(
        request,
        "ml_platform/connections.html",
        {"connections": selectors.connections_for_user(user=request.user)},
    )
