"""Site-wide error views."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.csrf import csrf_failure as django_csrf_failure


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: the API refuses in its own JSON error shape; pages keep Django's 403 page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"status": "error",
                             "message": "CSRF verification failed: send the csrftoken cookie's value in the "
                                        "X-CSRFToken header",
                             "details": [reason] if reason else []}, status=403)
    return django_csrf_failure(request, reason)
