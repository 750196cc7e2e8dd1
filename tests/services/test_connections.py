"""The connection services called directly: a password is write-only, a used connection stays, bad values refused."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from ml_platform.models import AuditEvent, Connection, EtlJob
from ml_platform.services import connections, sources
from tests.plugins.harness import SECRET

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_a_blank_password_keeps_the_stored_one_and_the_edit_still_connects(user, pg_conn, pg_source) -> None:
    connections.connection_update(connection=pg_conn, password="", actor=user, name="pg renamed")
    stored = Connection.objects.get(pk=pg_conn.pk)
    assert stored.name == "pg renamed" and stored.password == SECRET
    assert sources.test_params(sources.params_for(stored)).ok
    edited = AuditEvent.objects.get(action="edited", target_id=pg_conn.pk)
    assert edited.changes == {"name": {"before": "pg", "after": "pg renamed"}}


def test_a_new_password_is_stored_encrypted_and_audited_without_the_value(user, connection) -> None:
    connections.connection_update(connection=connection, password="New-Secret-pw-3141", actor=user)
    assert Connection.objects.get(pk=connection.pk).password == "New-Secret-pw-3141"
    edited = AuditEvent.objects.get(action="edited", target_id=connection.pk)
    assert "New-Secret-pw-3141" not in str(edited.changes) and "password" in edited.changes


def test_a_connection_used_by_jobs_is_not_deleted_and_the_jobs_are_named(user, connection) -> None:
    for name in ("nightly", "hourly"):
        EtlJob.objects.create(workspace=connection.workspace, owner=user, name=name, connection=connection,
                              source_table="orders", destination_dataset="d", destination_table=name)
    with pytest.raises(connections.ConnectionInUse) as refused:
        connections.connection_delete(connection=connection, actor=user)
    assert refused.value.jobs == ["hourly", "nightly"]
    assert str(refused.value) == "This connection is used by 'hourly', 'nightly': reconnect or delete those jobs first."
    EtlJob.objects.all().delete()
    connection_id = connection.pk
    connections.connection_delete(connection=connection, actor=user)
    assert not Connection.objects.exists()
    assert AuditEvent.objects.filter(action="deleted", target_type="connection", target_id=connection_id).exists()


def test_an_invalid_connection_is_refused_and_nothing_is_saved(user, source) -> None:
    with pytest.raises(ValidationError):
        connections.connection_create(owner=user, name="bad", **{**source.as_connection_fields(), "engine": "oracle"})
    assert not Connection.objects.exists() and not AuditEvent.objects.exists()
