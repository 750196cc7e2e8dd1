from __future__ import annotations

from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.http import HttpRequest, HttpResponse, JsonResponse


class ApiAwareLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Pages redirect anonymous users to the login page; the JSON API answers 401 JSON."""

    def handle_no_permission(self, request: HttpRequest, view_func) -> HttpResponse:
        if request.path.startswith("/api/"):
            return JsonResponse(
                {"status": "error", "message": "Authentication required", "details": []}, status=401
            )
        return super().handle_no_permission(request, view_func)
