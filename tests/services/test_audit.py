"""Audit trail: every job and connection action is recorded by the services with who, what and the
before/after of the fields that changed; never a secret; shown on the job page, to the job's workspace only."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ml_platform.models import AuditEvent, Connection, EtlJob, Membership
from ml_platform.runs import lifecycle
from ml_platform.services import connections, jobs, sources, workspaces
from tests.fixtures import HX

pytestmark = [pytest.mark.django_db, pytest.mark.integration]

CREATE_SECRET = "Create-Secret-pw-8812"
ROTATED_SECRET = "Rotated-Secret-pw-9923"
API_SECRET = "Api-Secret-pw-1177"
OPTION_SECRET = "/keys/Option-Secret-5531.key"


@pytest.fixture
def job(user, connection, bq_settings, bq_dataset) -> EtlJob:
    columns = [c for c in sources.get_columns(connection, "public", "orders") if c.name in ("id", "amount")]
    return jobs.job_create(
        owner=user, actor=user, workspace=connection.workspace, name="orders", connection=connection,
        source_schema="public", source_table="orders", source_columns=columns, destination_dataset=bq_dataset,
        destination_table="orders", use_existing_table=False, load_strategy="incremental", cursor_column="id",
        schedule="*/5 * * * *",
    )


@pytest.fixture
def bob(user, django_user_model):
    """bob, added by alice as an editor of her workspace."""
    bob = django_user_model.objects.create_user(username="bob", password="bob-password-123")
    workspaces.member_add(workspace=workspaces.personal_workspace(user), actor=user, username="bob",
                            role=Membership.Role.EDITOR)
    return bob


@pytest.fixture
def bob_client(bob) -> Client:
    client = Client()
    client.force_login(bob)
    return client


def event(action: str, target) -> AuditEvent:
    return AuditEvent.objects.get(action=action, target_type=target._meta.model_name, target_id=target.pk)


def everything_recorded() -> str:
    """Every field of every audit event, as text."""
    return "\n".join(json.dumps({f.attname: getattr(e, f.attname) for f in AuditEvent._meta.fields}, default=str)
                     for e in AuditEvent.objects.all())


# --------------------------------------------------------------------------- jobs


def test_creating_a_job_records_the_creator_and_its_fields(alice_client, user, connection, bq_settings,
                                                           bq_dataset) -> None:
    created = alice_client.post(reverse("api_jobs"), {
        "name": "events", "connection_id": connection.pk, "source_table": "public.orders",
        "columns": ["id", "amount"], "destination_table": f"{bq_dataset}.events", "load_strategy": "incremental",
        "cursor_column": "id", "schedule": "0 * * * *", "schedule_timezone": "Europe/Berlin",
    }, content_type="application/json")
    assert created.status_code == 201, created.content
    job = EtlJob.objects.get(name="events")
    e = event("created", job)
    assert (e.actor, e.actor_name, e.workspace, e.target_name) == (user, "alice", job.workspace, "events")
    assert e.changes["name"] == {"before": None, "after": "events"}
    assert e.changes["connection"] == {"before": None, "after": "pg main"}
    assert e.changes["source_table"] == {"before": None, "after": "public.orders"}
    assert e.changes["selected_columns"] == {"before": None, "after": ["id", "amount"]}
    assert e.changes["load_strategy"]["after"] == "incremental" and e.changes["cursor_column"]["after"] == "id"
    assert e.changes["schedule"]["after"] == "0 * * * *"
    assert e.changes["schedule_timezone"]["after"] == "Europe/Berlin"


def test_an_edit_records_only_the_fields_that_changed(alice_client, user, job) -> None:
    form = {"name": "orders v2", "columns": ["id", "amount", "note"], "load_strategy": "incremental",
            "cursor_column": "id", "preset": "0 * * * *", "cron": "", "timezone": "UTC", "add_columns": ["note"]}
    assert alice_client.post(reverse("job_edit", args=[job.pk]), form).status_code == 302
    e = event("edited", job)
    assert e.actor == user
    assert e.changes == {
        "name": {"before": "orders", "after": "orders v2"},
        "selected_columns": {"before": ["id", "amount"], "after": ["id", "amount", "note"]},
        "schedule": {"before": "*/5 * * * *", "after": "0 * * * *"},
    }
    assert e.target_name == "orders v2"


def test_a_reconnect_by_an_editor_records_the_connections_by_name(bob_client, bob, user, source, job) -> None:
    new = connections.connection_create(owner=bob, actor=bob, workspace=job.workspace, name="pg v2",
                                        **source.as_connection_fields())
    response = bob_client.post(reverse("job_reconnect", args=[job.pk]),
                               {"connection": new.pk, "table": "public.orders", "confirm": "1"})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.connection == new
    e = event("reconnected", job)
    assert (e.actor, e.actor_name, e.workspace) == (bob, "bob", job.workspace)
    assert e.changes == {"connection": {"before": "pg main", "after": "pg v2"}}
    assert event("created", new).actor == bob


def test_pause_and_resume_record_the_status(alice_client, user, job) -> None:
    alice_client.post(reverse("job_pause", args=[job.pk]), headers=HX)
    alice_client.post(reverse("job_resume", args=[job.pk]), headers=HX)
    assert event("paused", job).changes == {"status": {"before": "active", "after": "paused"}}
    assert event("resumed", job).changes == {"status": {"before": "paused", "after": "active"}}
    assert event("paused", job).actor == event("resumed", job).actor == user


def test_run_now_records_who_ran_it_and_the_scheduler_records_a_system_run(alice_client, user, job) -> None:
    alice_client.post(reverse("job_run_now", args=[job.pk]), headers=HX)
    ran = event("ran", job)
    run = job.runs.get()
    assert (ran.actor, ran.actor_name) == (user, "alice")
    assert ran.changes == {"run": {"before": None, "after": run.pk}, "connection": {"before": None, "after": "pg main"}}
    run.status = "succeeded"
    run.save()

    EtlJob.objects.filter(pk=job.pk).update(next_run_at=timezone.now() - timedelta(minutes=1))
    enqueued = lifecycle.enqueue_due_jobs()
    assert [r.job_id for r in enqueued] == [job.pk]
    scheduled = event("scheduled run", job)
    assert (scheduled.actor, scheduled.actor_name, scheduled.workspace) == (None, "system", job.workspace)
    assert scheduled.changes["run"]["after"] == enqueued[0].pk


def test_a_command_line_run_is_recorded_as_system(job) -> None:
    from ml_platform.runs.lifecycle import run_sync

    run = run_sync(job=job)
    assert run.status == "succeeded", run.error
    e = event("command-line run", job)
    assert (e.actor, e.actor_name) == (None, "system") and e.changes["run"]["after"] == run.pk


def test_a_deleted_job_keeps_its_trail_in_the_admin(alice_client, user, job, django_user_model) -> None:
    job_id = job.pk
    alice_client.post(reverse("job_delete", args=[job_id]))
    assert not EtlJob.objects.filter(pk=job_id).exists()
    gone = AuditEvent.objects.get(action="deleted", target_type="etljob", target_id=job_id)
    assert (gone.actor, gone.target_name, gone.workspace.name) == (user, "orders", "alice")
    assert gone.changes["connection"] == {"before": "pg main", "after": None}
    assert AuditEvent.objects.filter(target_type="etljob", target_id=job_id, action="created").exists()

    staff = Client()
    staff.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "root-pw-123"))
    listing = staff.get(reverse("admin:ml_platform_auditevent_changelist"), {"q": "orders"}).content.decode()
    assert "deleted" in listing and "created" in listing and "orders" in listing
    detail = staff.get(reverse("admin:ml_platform_auditevent_change", args=[gone.pk]))
    assert detail.status_code == 200 and "pg main" in detail.content.decode()


# --------------------------------------------------------------------------- connections


def test_connection_create_edit_delete_are_recorded_without_the_password(alice_client, user, source) -> None:
    fields = {"name": "warehouse", "engine": "postgresql", "host": source.host, "port": source.port,
              "database": source.database, "username": "etl", "options": "{}"}
    assert alice_client.post(reverse("connection_create"), {**fields, "password": CREATE_SECRET}).status_code == 302
    conn = Connection.objects.get(name="warehouse")
    created = event("created", conn)
    assert created.actor == user and created.workspace == conn.workspace
    assert created.changes["username"] == {"before": None, "after": "etl"}
    assert created.changes["password"] == {"before": None, "after": "*** (set)"}

    # The password rotated, the user renamed.
    alice_client.post(reverse("connection_edit", args=[conn.pk]),
                      {**fields, "username": "etl2", "password": ROTATED_SECRET})
    conn.refresh_from_db()
    assert conn.password == ROTATED_SECRET
    edited = event("edited", conn)
    assert edited.changes == {"username": {"before": "etl", "after": "etl2"},
                              "password": {"before": "***", "after": "*** (changed)"}}

    # A blank password keeps the stored one: no password change recorded.
    alice_client.post(reverse("connection_edit", args=[conn.pk]), {**fields, "username": "etl2", "password": ""})
    kept = AuditEvent.objects.filter(action="edited", target_type="connection").order_by("-id").first()
    assert kept.pk != edited.pk and "password" not in kept.changes

    # Through the API, by token or session alike.
    patched = alice_client.patch(reverse("api_connection_detail", args=[conn.pk]), {"password": API_SECRET},
                                 content_type="application/json")
    assert patched.status_code == 200, patched.content
    api_edit = AuditEvent.objects.filter(action="edited", target_type="connection").order_by("-id").first()
    assert api_edit.actor == user and api_edit.changes == {"password": {"before": "***", "after": "*** (changed)"}}

    conn_id = conn.pk
    assert alice_client.delete(reverse("api_connection_detail", args=[conn_id])).status_code == 200
    deleted = AuditEvent.objects.get(action="deleted", target_type="connection", target_id=conn_id)
    assert (deleted.actor, deleted.target_name) == (user, "warehouse")

    recorded = everything_recorded()
    for secret in (CREATE_SECRET, ROTATED_SECRET, API_SECRET):
        assert secret not in recorded


def test_secret_looking_option_values_are_masked(user, source) -> None:
    conn = connections.connection_create(owner=user, actor=user, name="tls", **source.as_connection_fields(),
                                         options={"sslmode": "require", "sslkey": OPTION_SECRET})
    assert event("created", conn).changes["options"] == {"before": None,
                                                         "after": {"sslmode": "require", "sslkey": "***"}}
    connections.connection_update(connection=conn, actor=user, options={"sslmode": "verify-full",
                                                                        "sslkey": OPTION_SECRET + "2"})
    assert event("edited", conn).changes == {"options": {
        "before": {"sslmode": "require", "sslkey": "***"},
        "after": {"sslmode": "verify-full", "sslkey": "*** (changed)"},
    }}
    assert "Option-Secret" not in everything_recorded()


def test_a_password_rotation_leaves_no_secret_in_the_trail_or_the_pages(alice_client, user, connection, job) -> None:
    alice_client.post(reverse("connection_edit", args=[connection.pk]), {
        "name": "pg main", "engine": "postgresql", "host": connection.host, "port": connection.port,
        "database": connection.database, "username": connection.username, "password": ROTATED_SECRET,
        "options": "{}"})
    connection.refresh_from_db()
    assert connection.password == ROTATED_SECRET
    assert event("edited", connection).changes["password"]["after"] == "*** (changed)"
    assert ROTATED_SECRET not in everything_recorded()
    for url in (reverse("job_detail", args=[job.pk]), reverse("connections"),
                reverse("connection_edit", args=[connection.pk]), reverse("jobs")):
        assert ROTATED_SECRET not in alice_client.get(url).content.decode(), url


# --------------------------------------------------------------------------- the job page


def test_the_job_page_shows_the_trail_newest_first(alice_client, bob_client, user, bob, source, job) -> None:
    alice_client.post(reverse("job_pause", args=[job.pk]), headers=HX)
    new = connections.connection_create(owner=bob, actor=bob, workspace=job.workspace, name="pg v2",
                                        **source.as_connection_fields())
    bob_client.post(reverse("job_reconnect", args=[job.pk]),
                    {"connection": new.pk, "table": "public.orders", "confirm": "1"})
    html = alice_client.get(reverse("job_detail", args=[job.pk])).content.decode()
    assert "Audit trail" in html
    trail = html[html.index('id="audit-table"'):]
    positions = [trail.index(f'data-action="{action}"') for action in ("reconnected", "paused", "created")]
    assert positions == sorted(positions)  # newest first
    assert "pg main → pg v2" in trail and "active → paused" in trail
    assert "<td>bob</td>" in trail and "<td>alice</td>" in trail
    assert "*/5 * * * *" in trail  # the creation's schedule


def test_the_trail_is_only_the_workspaces_own(client, alice_client, other_user, job) -> None:
    # An event about the same id in another workspace never shows on this job's page.
    AuditEvent.objects.create(workspace=workspaces.personal_workspace(other_user), actor=other_user,
                                actor_name="mallory", action="forged", target_type="etljob", target_id=job.pk)
    assert 'data-action="forged"' not in alice_client.get(reverse("job_detail", args=[job.pk])).content.decode()
    client.force_login(other_user)
    assert client.get(reverse("job_detail", args=[job.pk])).status_code == 404
