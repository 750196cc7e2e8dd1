"""Workspace pages: the empty state, the switcher, members and roles, the workspace's datasets, API tokens."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ml_platform import selectors
from ml_platform.etl.bq_errors import BigQueryError
from ml_platform.middleware import requires_role
from ml_platform.models import ApiToken, Membership
from ml_platform.services import workspaces

ADMIN = Membership.Role.ADMIN
VIEWER = Membership.Role.VIEWER


class WorkspaceForm(forms.Form):
    name = forms.CharField(max_length=90, label="Workspace name")


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150, label="User name")
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.EDITOR)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, label="Token name",
                           help_text="What it is for, e.g. \"CI credential rotation\".")


class DatasetForm(forms.Form):
    dataset = forms.RegexField(regex=r"^[A-Za-z0-9_]{1,1024}$", label="New dataset",
                               error_messages={"invalid": "Letters, digits and underscores only."})


@require_http_methods(["GET", "POST"])
def workspace_none(request: HttpRequest) -> HttpResponse:
    """The empty state: a user in no workspace can create one, or ask a workspace admin to be added."""
    form = WorkspaceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        workspace = workspaces.workspace_create(name=form.cleaned_data["name"], admin=request.user)
        request.session["workspace_id"] = workspace.pk
        messages.success(request, f"Created workspace {workspace.name!r}: you are its admin.")
        return redirect("workspace_members")
    memberships = list(selectors.memberships_of(user=request.user))
    return TemplateResponse(request, "ml_platform/workspace_none.html",
                            {"form": form, "memberships": memberships}, status=400 if form.errors else 200)


@require_POST
def workspace_switch(request: HttpRequest) -> HttpResponse:
    try:
        workspace_id = int(request.POST.get("workspace", ""))
    except ValueError:
        raise Http404("No such workspace") from None
    membership = get_object_or_404(selectors.memberships_of(user=request.user), workspace_id=workspace_id)
    request.session["workspace_id"] = membership.workspace_id
    messages.info(request, f"Now in workspace {membership.workspace.name!r} ({membership.role}).")
    return redirect("jobs")


def _members_page(request: HttpRequest, *, member_form=None, dataset_form=None, status: int = 200) -> HttpResponse:
    scope = request.scope
    return TemplateResponse(request, "ml_platform/workspace_members.html", {
        "members": selectors.members_of(scope=scope), "datasets": selectors.datasets_in(scope=scope),
        "member_form": member_form or MemberForm(), "dataset_form": dataset_form or DatasetForm(),
        "role_choices": Membership.Role.choices, "is_admin": scope.allows(ADMIN), "nav": "workspace",
    }, status=status)


@require_GET
def workspace_members(request: HttpRequest) -> HttpResponse:
    return _members_page(request)


@require_POST
@requires_role(ADMIN)
def member_add(request: HttpRequest) -> HttpResponse:
    def add(data: dict) -> str:
        membership = workspaces.member_add(workspace=request.scope.workspace, actor=request.user,
                                           username=data["username"], role=data["role"])
        return f"Added {membership.user.get_username()} as {membership.role}."

    form = MemberForm(request.POST)
    saved = _submit(request, form, add, refused=workspaces.MembershipError, field="username")
    return saved or _members_page(request, member_form=form, status=400)


def _submit(request: HttpRequest, form: forms.Form, save, *, refused: type[Exception] | tuple[type[Exception], ...],
            field: str) -> HttpResponse | None:
    """Save a valid form of the members page (`save(cleaned_data)` returns the success message) and go back to the
    page; None when the form is invalid or the service refuses it (`refused`: shown as an error on `field`)."""
    if not form.is_valid():
        return None
    try:
        done = save(form.cleaned_data)
    except refused as exc:
        form.add_error(field, str(exc))
        return None
    messages.success(request, done)
    return redirect("workspace_members")


def _membership(request: HttpRequest, membership_id: int) -> Membership:
    return get_object_or_404(selectors.members_of(scope=request.scope), pk=membership_id)


def _change_member(request: HttpRequest, change, done: str) -> HttpResponse:
    """Apply one membership change; a refusal (the last admin) is shown as an error on the members page."""
    try:
        change()
    except workspaces.MembershipError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done)
    return redirect("workspace_members")


@require_POST
@requires_role(ADMIN)
def member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = _membership(request, membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose viewer, editor or admin.")
        return redirect("workspace_members")
    role = form.cleaned_data["role"]
    return _change_member(
        request, lambda: workspaces.member_set_role(membership=membership, role=role, actor=request.user),
        f"{membership.user.get_username()} is now {role}.")


@require_POST
@requires_role(ADMIN)
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = _membership(request, membership_id)
    return _change_member(request, lambda: workspaces.member_remove(membership=membership, actor=request.user),
                            f"Removed {membership.user.get_username()} from the workspace.")


@require_POST
@requires_role(ADMIN)
def dataset_create(request: HttpRequest) -> HttpResponse:
    def create(data: dict) -> str:
        workspaces.dataset_create(workspace=request.scope.workspace, dataset=data["dataset"], actor=request.user)
        return f"Created dataset {data['dataset']!r} for this workspace."

    form = DatasetForm(request.POST)
    saved = _submit(request, form, create, refused=(workspaces.DatasetTaken, BigQueryError), field="dataset")
    return saved or _members_page(request, dataset_form=form, status=400)


# Every member manages their own tokens, viewers included: the explicit marker replaces the middleware's
# "unsafe method needs editor" default. A token acts with its owner's current role in its workspace.


def _tokens_page(request: HttpRequest, *, form=None, plaintext: str = "", created=None, status: int = 200):
    tokens = ApiToken.objects.filter(user=request.user, workspace=request.scope.workspace)
    response = TemplateResponse(request, "ml_platform/api_tokens.html", {
        "tokens": tokens, "form": form or TokenForm(), "plaintext": plaintext, "created": created, "nav": "tokens",
    }, status=status)
    add_never_cache_headers(response)  # the one answer holding a plaintext token must not be cached
    return response


@require_http_methods(["GET", "POST"])
@requires_role(VIEWER)
def api_tokens(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _tokens_page(request)
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _tokens_page(request, form=form, status=400)
    token, plaintext = workspaces.token_create(user=request.user, workspace=request.scope.workspace,
                                               name=form.cleaned_data["name"])
    # Shown in this response only: not in a message, the session or a redirect.
    return _tokens_page(request, plaintext=plaintext, created=token, status=201)


@require_POST
@requires_role(VIEWER)
def api_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user, workspace=request.scope.workspace)
    if token.revoked_at is not None:
        messages.info(request, f"Token {token.name!r} was already revoked.")
    else:
        workspaces.token_revoke(token=token, actor=request.user)
        messages.success(request, f"Revoked token {token.name!r} ({token.prefix}…): it no longer works.")
    return redirect("api_tokens")
