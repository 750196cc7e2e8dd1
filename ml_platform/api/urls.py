"""The API's URL patterns: one NinjaAPI, mounted at /api/ (operations under /api/etl/), docs at /api/docs.

ninja marks its views CSRF-exempt and leaves CSRF to its own auth classes. Here login, API tokens, the
workspace and its roles, and CSRF stay Django's middleware's, as for the pages: the patterns are re-wrapped
without the exemption, so a session request needs the CSRF token and a token request (ApiTokenMiddleware lifts
the check for it) does not; and the check runs before any method dispatch, as everywhere else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_GET
from ninja import NinjaAPI
from ninja.openapi.docs import Swagger

from ml_platform.api import bigquery, connections, errors, job_actions, jobs, verify
from ml_platform.api.parsing import JsonObjectParser

PREFIX = "/api/"


class Docs(Swagger):
    """Swagger UI from ninja's own static files (no CDN, no inline script: fits the CSP), reading our
    openapi.json; its "Try it out" sends the page's CSRF token, as a session request needs."""

    def render_page(self, request: HttpRequest, api: NinjaAPI, **kwargs: Any) -> HttpResponse:
        settings = {**self.settings, "url": reverse("api_openapi")}
        return render(request, self.template, {"swagger_settings": json.dumps(settings), "api": api,
                                               "add_csrf": True})


api = NinjaAPI(
    title="ETL to BigQuery API",
    version="1",
    description="Session login (send the csrftoken cookie's value as X-CSRFToken on writes) or "
                "`Authorization: Bearer etl_...`. Errors: {\"status\": \"error\", \"message\", \"details\"} "
                "with a 4xx status.",
    parser=JsonObjectParser(),
    docs=Docs(),
    openapi_url=None,  # served below, without ninja's namespaced routes
    urls_namespace="api",
)
errors.install(api)
api.add_router("/etl/", connections.router)
api.add_router("/etl/", bigquery.router)
api.add_router("/etl/", jobs.router)
api.add_router("/etl/", job_actions.router)
api.add_router("/etl/", verify.router)


@require_GET
def openapi_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(api.get_openapi_schema(path_prefix=PREFIX))


@require_GET
def docs(request: HttpRequest) -> HttpResponse:
    return api.docs.render_page(request, api)


def checked(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The ninja view without its CSRF exemption (see the module docstring)."""

    def api_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return view(request, *args, **kwargs)

    return api_view


def operation_patterns() -> list[URLPattern]:
    """One pattern per route: ninja yields one per operation (same view, GET's name first)."""
    seen: dict[str, URLPattern] = {}
    for pattern in api.urls[0]:
        route = str(pattern.pattern)
        if route and route not in seen:  # "" is ninja's root view, which only answers 404
            seen[route] = path(route, checked(pattern.callback), name=pattern.name)
    return list(seen.values())


urlpatterns = [
    path("docs", docs, name="api_docs"),
    path("openapi.json", openapi_json, name="api_openapi"),
    *operation_patterns(),
]
