"""The audit trail: who did what to which object, and the snapshots it records (never a secret in them)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from ml_platform.models import AuditEvent, Connection, EtlJob, Workspace


def record(*, workspace: Workspace, actor: AbstractBaseUser | None, action: str, target: Any,
          changes: dict[str, Any] | None = None) -> AuditEvent:
    """Record who did what to which object. `changes` is {field: {"before", "after"}}; never a secret in it."""
    return AuditEvent.objects.create(
        workspace=workspace, actor=actor if actor is not None and actor.pk else None,
        actor_name=actor.get_username() if actor is not None and actor.pk else "system",
        action=action, target_type=target._meta.model_name, target_id=target.pk, target_name=str(target)[:200],
        changes=changes or {},
    )


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{field: {"before", "after"}} for the fields whose value differs."""
    return {k: {"before": before.get(k), "after": after.get(k)} for k in after if before.get(k) != after.get(k)}


# Option keys that may hold a credential: their values never reach an audit event (nor the API).
SECRET_OPTION_WORDS = ("pass", "pwd", "secret", "key", "token", "credential", "auth", "cert")


def is_secret_option(key: Any) -> bool:
    return any(word in str(key).lower() for word in SECRET_OPTION_WORDS)


def masked_options(options: Any, compare_to: Any = None) -> Any:
    """`options` with every secret-looking key's value masked (recursively).

    With `compare_to` (the other side of a change), a secret value that differs says "*** (changed)".
    """
    if not isinstance(options, dict):
        return options
    other = compare_to if isinstance(compare_to, dict) else {}
    out: dict[str, Any] = {}
    for key, value in options.items():
        if is_secret_option(key):
            out[key] = "*** (changed)" if compare_to is not None and other.get(key) != value else "***"
        else:
            out[key] = masked_options(value, other.get(key) if compare_to is not None else None)
    return out


def connection_snapshot(connection: Connection) -> dict[str, Any]:
    """The audited fields of a connection, secrets masked; never the password."""
    return {"name": connection.name, "engine": connection.engine, "host": connection.host,
            "port": connection.port, "database": connection.database, "username": connection.username,
            "options": connection.options or {}}


def connection_changes(before: dict[str, Any], after: dict[str, Any], *, password_before: str,
                        password_after: str) -> dict[str, dict[str, Any]]:
    changes = changed_fields(before, after)
    if "options" in changes:
        changes["options"] = {"before": masked_options(before["options"], None),
                              "after": masked_options(after["options"], before["options"])}
    if password_after != password_before:
        # Only that it changed: never the password, its length or any part of it.
        changes["password"] = {"before": "***" if password_before else None,
                               "after": "*** (changed)" if password_after else None}
    return changes


def job_snapshot(job: EtlJob) -> dict[str, Any]:
    """The audited fields of a job (the connection by name: the event outlives it)."""
    return {"name": job.name, "connection": job.connection.name if job.connection_id else None,
            "source_table": job.source_display, "selected_columns": list(job.selected_columns or []),
            "load_strategy": job.load_strategy, "cursor_column": job.cursor_column,
            "merge_key": list(job.merge_key or []), "source_tag": job.source_tag, "schedule": job.schedule,
            "schedule_timezone": job.schedule_timezone, "status": job.status}


def created_changes(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: {"before": None, "after": v} for k, v in snapshot.items() if v not in (None, "", [], {})}
