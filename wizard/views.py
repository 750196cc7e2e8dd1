"""The ETL wizard (five HTMX steps). Thin views: forms validate, services act."""

from __future__ import annotations

from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from ml_platform import selectors


@require_GET
def start(request: HttpRequest) -> TemplateResponse:
    return TemplateResponse(
        request, "wizard/wizard.html", {"connections": selectors.connections_for_user(user=request.user)}
    )
