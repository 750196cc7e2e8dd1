"""Writes about workspaces: the workspace itself, its members and roles, its datasets, its API tokens."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from ml_platform.models import ApiToken, Membership, Workspace, WorkspaceDataset
from ml_platform.services import audit
from ml_platform.services.warehouse import warehouse


def personal_workspace(user: AbstractBaseUser) -> Workspace:
    """The user's first workspace; a user with none gets a personal one (admin) — for commands and scripts.

    Web requests never come here: they act in the workspace chosen in the navigation.
    """
    membership = Membership.objects.filter(user=user).select_related("workspace").order_by("workspace__name").first()
    if membership is not None:
        return membership.workspace
    return workspace_create(name=user.get_username(), admin=user)


@transaction.atomic
def workspace_create(*, name: str, admin: AbstractBaseUser) -> Workspace:
    base, n = name.strip()[:90] or "workspace", 1
    candidate = base
    while Workspace.objects.filter(name=candidate).exists():
        n += 1
        candidate = f"{base} ({n})"
    workspace = Workspace.objects.create(name=candidate)
    Membership.objects.create(workspace=workspace, user=admin, role=Membership.Role.ADMIN)
    return workspace


class DatasetTaken(Exception):
    """The dataset already belongs to another workspace."""


def dataset_assign(*, workspace: Workspace, dataset: str) -> WorkspaceDataset:
    """Give `dataset` to `workspace` (a dataset belongs to exactly one workspace)."""
    existing = WorkspaceDataset.objects.filter(dataset=dataset).select_related("workspace").first()
    if existing is not None and existing.workspace_id != workspace.pk:
        raise DatasetTaken(f"Dataset {dataset!r} belongs to workspace {existing.workspace.name!r}.")
    return existing or WorkspaceDataset.objects.create(workspace=workspace, dataset=dataset)


class MembershipError(Exception):
    """A membership change that would leave the workspace without an admin, or names no such user."""


def _admins_left(workspace: Workspace, *, without: Membership) -> bool:
    return Membership.objects.filter(workspace=workspace, role=Membership.Role.ADMIN).exclude(pk=without.pk).exists()


@transaction.atomic
def member_add(*, workspace: Workspace, actor: AbstractBaseUser | None, username: str, role: str) -> Membership:
    user = get_user_model().objects.filter(username=username.strip()).first()
    if user is None:
        raise MembershipError(f"No user named {username.strip()!r}.")
    membership, created = Membership.objects.get_or_create(workspace=workspace, user=user, defaults={"role": role})
    if not created:
        raise MembershipError(f"{user.get_username()} is already a member ({membership.role}).")
    audit.record(workspace=workspace, actor=actor, action="member added", target=membership,
                 changes={"role": {"before": None, "after": role}})
    return membership


@transaction.atomic
def member_set_role(*, membership: Membership, role: str, actor: AbstractBaseUser | None) -> Membership:
    if membership.role == Membership.Role.ADMIN and role != Membership.Role.ADMIN and not _admins_left(
            membership.workspace, without=membership):
        raise MembershipError("A workspace needs at least one admin.")
    before, membership.role = membership.role, role
    membership.save(update_fields=["role"])
    audit.record(workspace=membership.workspace, actor=actor, action="member role changed", target=membership,
                 changes={"role": {"before": before, "after": role}})
    return membership


@transaction.atomic
def member_remove(*, membership: Membership, actor: AbstractBaseUser | None) -> None:
    if membership.role == Membership.Role.ADMIN and not _admins_left(membership.workspace, without=membership):
        raise MembershipError("A workspace needs at least one admin.")
    audit.record(workspace=membership.workspace, actor=actor, action="member removed", target=membership)
    membership.delete()


def dataset_create(*, workspace: Workspace, dataset: str, actor: AbstractBaseUser | None) -> WorkspaceDataset:
    """A new BigQuery dataset for the workspace. An existing one is assigned only by a site administrator."""
    bq = warehouse()
    if WorkspaceDataset.objects.filter(dataset=dataset).exists() or dataset in bq.list_datasets():
        raise DatasetTaken(f"Dataset {dataset!r} exists already: a site administrator assigns existing datasets "
                           "(manage.py workspace_dataset).")
    bq.create_dataset(dataset, exists_ok=False)
    assigned = WorkspaceDataset.objects.create(workspace=workspace, dataset=dataset)
    audit.record(workspace=workspace, actor=actor, action="dataset created", target=assigned)
    return assigned


# --------------------------------------------------------------------------- API tokens

# etl_<12 hex: the stored, displayed prefix>_<secrets.token_urlsafe(32)>. The prefix finds the row, the
# SHA-256 digest of the whole text proves it: 256 random bits need no slow hash.
_TOKEN_FORMAT = re.compile(r"^(etl_[0-9a-f]{12})_[A-Za-z0-9_-]{43}$")
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


def _token_digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


@transaction.atomic
def token_create(*, user: AbstractBaseUser, workspace: Workspace, name: str) -> tuple[ApiToken, str]:
    """A new token of `user` in `workspace`; the plaintext is returned here once and stored nowhere."""
    while True:
        prefix = f"etl_{secrets.token_hex(6)}"
        plaintext = f"{prefix}_{secrets.token_urlsafe(32)}"
        if _TOKEN_FORMAT.match(plaintext) and not ApiToken.objects.filter(prefix=prefix).exists():
            break
    token = ApiToken.objects.create(user=user, workspace=workspace, name=name.strip()[:100], prefix=prefix,
                                    digest=_token_digest(plaintext))
    audit.record(workspace=workspace, actor=user, action="token created", target=token,
                 changes={"name": {"before": None, "after": token.name}})
    return token, plaintext


@transaction.atomic
def token_revoke(*, token: ApiToken, actor: AbstractBaseUser | None) -> ApiToken:
    """Revoke for good (idempotent): the token answers 401 from the next request on."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit.record(workspace=token.workspace, actor=actor, action="token revoked", target=token)
    return token


def token_authenticate(plaintext: str) -> ApiToken | None:
    """The live token for `plaintext`, else None (malformed, unknown, revoked, inactive user, or a user who is
    no longer a member of the token's workspace). Records the use at most once a minute."""
    match = _TOKEN_FORMAT.match(plaintext) if isinstance(plaintext, str) else None
    if match is None:
        return None
    digest = _token_digest(plaintext)
    candidates = ApiToken.objects.filter(prefix=match.group(1), revoked_at__isnull=True,
                                         user__is_active=True).select_related("user", "workspace")
    token = next((t for t in candidates if hmac.compare_digest(t.digest, digest)), None)
    if token is None or not Membership.objects.filter(workspace=token.workspace, user=token.user).exists():
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= TOKEN_TOUCH_INTERVAL:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
