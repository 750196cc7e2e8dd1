"""Login throttling glue for django-axes: who the client is, and what a locked-out client sees."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

LOCKED_STATUS = 429


def client_ip(request: HttpRequest) -> str | None:
    """The address failures are counted against.

    REMOTE_ADDR unless LOGIN_TRUSTED_PROXIES says how many proxies we sit behind: then the
    address that the outermost trusted proxy saw, read from the right of X-Forwarded-For
    (entries further left are whatever the client chose to send).
    """
    proxies = settings.LOGIN_TRUSTED_PROXIES
    if proxies:
        hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
        if len(hops) >= proxies:
            return hops[-proxies]
    return request.META.get("REMOTE_ADDR")


def cooloff_text() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """HTTP 429 with an explanation: the login page for people, JSON for the API."""
    message = (
        f"Too many failed login attempts. Login is blocked for {cooloff_text()} "
        "for this username and this address; try again later."
    )
    if request.path.startswith("/api/"):
        return JsonResponse({"status": "error", "message": message, "details": []}, status=LOCKED_STATUS)
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    form = AuthenticationForm(request, initial={"username": username})
    context = {"form": form, "locked_out": message, "next": request.POST.get("next", "")}
    # Rendered here: AxesMiddleware swaps this in after the view's response was rendered.
    return render(request, "registration/login.html", context, status=LOCKED_STATUS)
