from __future__ import annotations

from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from ml_platform import selectors
from ml_platform.models import Membership
from ml_platform.services import workspaces


class ApiAwareLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Pages redirect anonymous users to the login page; the JSON API answers 401 JSON."""

    def handle_no_permission(self, request: HttpRequest, view_func) -> HttpResponse:
        if request.path.startswith("/api/"):
            return JsonResponse(
                {"status": "error", "message": "Authentication required", "details": []}, status=401
            )
        return super().handle_no_permission(request, view_func)


class ApiTokenMiddleware:
    """`Authorization: Bearer etl_...` on /api/: the request acts as the token's user in the token's workspace.

    Placed right after AuthenticationMiddleware. A valid token replaces the session user (the login-required
    and workspace middleware then see that user), pins the workspace (`request.token_workspace_id`) and turns
    CSRF off for this request: a browser never attaches the header by itself, so a forged cross-site request
    cannot carry it. Any other Bearer value (malformed, unknown, revoked, a user who left the workspace) is a
    401 at once, never a fall-back to the session. This is not a login: django-axes and the session are not
    involved. A Bearer header anywhere outside /api/ is ignored.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, credentials = header.strip().partition(" ")
        if request.path.startswith("/api/") and scheme.lower() == "bearer":
            token = workspaces.token_authenticate(credentials.strip())
            if token is None:
                response = JsonResponse({"status": "error", "message": "Invalid or revoked API token",
                                         "details": []}, status=401)
                response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
                return response
            user = token.user

            async def auser():
                return user

            request.user = user
            request.auser = auser
            request.token_workspace_id = token.workspace_id
            request._dont_enforce_csrf_checks = True
        return self.get_response(request)


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# Paths any signed-in user reaches without a workspace or role: signing in and out, choosing or creating a
# workspace, the site admin (staff only, by Django's own checks).
WORKSPACE_FREE_PREFIXES = ("/accounts/", "/workspaces/", "/admin/", "/static/", "/favicon.ico")


def requires_role(role: str):
    """Mark a view as needing at least `role` in the current workspace (checked by WorkspaceMiddleware)."""

    def mark(view):
        view.required_role = role
        return view

    return mark


class WorkspaceMiddleware:
    """Sets `request.scope` (user, current workspace, role) and enforces the role.

    The current workspace is the one chosen in the navigation (kept in the session), or the
    token's for an API token. Reads need any membership; every unsafe method needs *editor*;
    views marked with `requires_role` need that role. A user in no workspace is sent to the
    empty-state page (JSON 403 on the API).
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.scope = None
        if request.user.is_authenticated:
            wanted = getattr(request, "token_workspace_id", None) or request.session.get("workspace_id")
            request.scope = selectors.scope_for(user=request.user, workspace_id=wanted)
            if getattr(request, "token_workspace_id", None) and (
                    request.scope is None or request.scope.workspace.pk != request.token_workspace_id):
                request.scope = None  # the token's workspace is gone or the user left it
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        if not request.user.is_authenticated or request.path.startswith(WORKSPACE_FREE_PREFIXES):
            return None
        api = request.path.startswith("/api/")
        if request.scope is None:
            if api:
                return JsonResponse({"status": "error", "message": "You are not a member of any workspace",
                                     "details": []}, status=403)
            return redirect("workspace_none")
        needed = getattr(view_func, "required_role", None)
        if request.method not in SAFE_METHODS and needed is None:
            needed = Membership.Role.EDITOR
        if needed and not request.scope.allows(needed):
            message = (f"Your role in {request.scope.workspace.name!r} is {request.scope.role}: "
                       f"this needs {needed}.")
            if api:
                return JsonResponse({"status": "error", "message": message, "details": []}, status=403)
            return TemplateResponse(request, "ml_platform/forbidden.html", {"message": message}, status=403)
        return None
