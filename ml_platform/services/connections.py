"""Writes about saved source connections (the password encrypted at rest, never in an audit event)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from ml_platform.etl.sources import dispose_engines
from ml_platform.models import Connection, Workspace
from ml_platform.services import audit, workspaces


@transaction.atomic
def connection_create(
    *,
    owner: AbstractBaseUser,
    workspace: Workspace | None = None,
    name: str,
    engine: str,
    database: str,
    host: str = "",
    port: int | None = None,
    username: str = "",
    password: str = "",
    options: dict[str, Any] | None = None,
    actor: AbstractBaseUser | None = None,
) -> Connection:
    connection = Connection(
        workspace=workspace or workspaces.personal_workspace(owner),
        owner=owner,
        name=name,
        engine=engine,
        host=host,
        port=port,
        database=database,
        username=username,
        password=password,
        options=options or {},
    )
    connection.full_clean()
    connection.save()
    changes = audit.created_changes(audit.connection_snapshot(connection))
    if "options" in changes:
        changes["options"]["after"] = audit.masked_options(connection.options)
    if password:
        changes["password"] = {"before": None, "after": "*** (set)"}
    audit.record(workspace=connection.workspace, actor=actor, action="created", target=connection, changes=changes)
    return connection


CONNECTION_FIELDS = ("name", "engine", "host", "port", "database", "username", "options")


@transaction.atomic
def connection_update(*, connection: Connection, password: str = "", actor: AbstractBaseUser | None = None,
                      **fields: Any) -> Connection:
    """Update a connection; a blank password keeps the stored one (the UI never shows it)."""
    # The stored row, not the instance: a ModelForm's validation has already set the new values on it.
    stored = Connection.objects.select_for_update().get(pk=connection.pk)
    before, password_before = audit.connection_snapshot(stored), stored.password
    for key, value in fields.items():
        if key not in CONNECTION_FIELDS:
            raise TypeError(f"unknown connection field {key!r}")
        setattr(connection, key, value)
    if password:
        connection.password = password
    connection.full_clean()
    connection.save()
    audit.record(workspace=connection.workspace, actor=actor, action="edited", target=connection,
                 changes=audit.connection_changes(before, audit.connection_snapshot(connection),
                                                  password_before=password_before,
                                                  password_after=connection.password))
    # A changed host or credential must not reuse a pooled session of the old one.
    dispose_engines()
    return connection


def connection_save(*, connection: Connection | None, workspace: Workspace, actor: AbstractBaseUser,
                    data: Mapping[str, Any]) -> Connection:
    """Create (`connection` None: `actor` owns it) or update a connection from a connection form's cleaned `data`
    (the fields, and a password that a blank keeps)."""
    fields = {k: data[k] for k in CONNECTION_FIELDS}
    if connection is None:
        return connection_create(owner=actor, workspace=workspace, password=data["password"], actor=actor, **fields)
    return connection_update(connection=connection, password=data["password"], actor=actor, **fields)


class ConnectionInUse(Exception):
    def __init__(self, jobs: list[str]) -> None:
        self.jobs = jobs
        super().__init__(
            "This connection is used by " + ", ".join(repr(j) for j in jobs)
            + ": reconnect or delete those jobs first."
        )


@transaction.atomic
def connection_delete(*, connection: Connection, actor: AbstractBaseUser | None = None) -> None:
    jobs = list(connection.jobs.order_by("name").values_list("name", flat=True))
    if jobs:
        raise ConnectionInUse(jobs)
    # Recorded first: the event keeps the name and id of the object that is gone.
    audit.record(workspace=connection.workspace, actor=actor, action="deleted", target=connection)
    connection.delete()


def connection_record_test(*, connection: Connection, ok: bool, message: str) -> None:
    Connection.objects.filter(pk=connection.pk).update(
        last_test_ok=ok, last_test_message=message[:2000], last_tested_at=timezone.now()
    )


def secrets_rotate() -> int:
    """Re-encrypt every stored secret with the primary key (after prepending a new key).

    Reading decrypts with any configured key; saving encrypts with the first.
    """
    count = 0
    with transaction.atomic():
        for connection in Connection.objects.select_for_update().exclude(password=""):
            connection.save(update_fields=["password"])
            count += 1
    return count
