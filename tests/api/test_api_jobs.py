"""API parity with the job pages: Edit (PATCH), Delete, Run Now, Pause/Resume, Reconnect and the run history,
through the same services as the pages, scoped like them (another workspace's job is a 404)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from ml_platform.etl.types import BigQueryField
from ml_platform.models import AuditEvent, EtlJob, JobRun, Membership
from ml_platform.runs import records
from ml_platform.services import connections, workspaces

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

NOT_FOUND = {"status": "error", "message": "Not found", "details": []}


@pytest.fixture
def source(pg_source):
    pg_source.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2), note text)",
        "INSERT INTO orders SELECT g, g * 2.5, 'n' || g FROM generate_series(1, 20) g",
        "CREATE TABLE orders_v2 (id bigint PRIMARY KEY, amount numeric(12,2))",
        "CREATE TABLE wrong (id text, other text)",
    )
    return pg_source


@pytest.fixture
def connection(user, source):
    return connections.connection_create(owner=user, name="pg main", **source.as_connection_fields())


@pytest.fixture
def job(user, connection, bq_settings, bq, bq_dataset):
    bq.create_table(bq_dataset, "orders", [BigQueryField("id", "INT64"), BigQueryField("amount", "NUMERIC")])
    return EtlJob.objects.create(
        workspace=connection.workspace, owner=user, name="orders", connection=connection, source_schema="public",
        source_table="orders", selected_columns=["id", "amount"], column_mapping={"id": "id", "amount": "amount"},
        destination_dataset=bq_dataset, destination_table="orders", load_strategy="incremental",
        cursor_column="id", schedule="*/5 * * * *", watermark={"type": "int", "value": "10"},
    )


def url(name: str, job: EtlJob) -> str:
    return reverse(name, args=[job.pk])


def patch(client: Client, job: EtlJob, body: dict, **extra):
    return client.patch(url("api_job_detail", job), body, content_type="application/json", **extra)


def post(client: Client, name: str, job: EtlJob, body: dict | None = None, **extra):
    return client.post(url(name, job), body or {}, content_type="application/json", **extra)


# --------------------------------------------------------------------------- Edit


def test_it_edits_a_job_and_adds_an_approved_column(alice_client, job, bq) -> None:
    body = {"name": "orders eu", "columns": ["id", "amount", "note"], "add_columns": ["note"],
            "schedule": "0 3 * * *", "schedule_timezone": "Europe/Paris"}
    response = patch(alice_client, job, body)
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["job"]["name"] == "orders eu" and answer["job"]["selected_columns"] == ["id", "amount", "note"]
    assert answer["job"]["schedule"] == "0 3 * * *" and answer["report"]["compatible"] is True
    assert "note" in [f.name for f in bq.get_table_schema(job.destination_dataset, "orders").fields]
    job.refresh_from_db()
    assert job.column_mapping["note"] == "note" and job.schedule_timezone == "Europe/Paris"
    assert job.watermark == {"type": "int", "value": "10"}  # an edit keeps what the runs committed
    assert AuditEvent.objects.filter(target_id=job.pk, action="edited").exists()


def test_it_refuses_a_column_the_table_lacks_unless_approved(alice_client, job, bq) -> None:
    refused = patch(alice_client, job, {"columns": ["id", "amount", "note"]})
    assert refused.status_code == 422
    assert "note" in refused.json()["message"] and refused.json()["details"]
    assert "note" not in [f.name for f in bq.get_table_schema(job.destination_dataset, "orders").fields]
    job.refresh_from_db()
    assert job.selected_columns == ["id", "amount"]


def test_it_refuses_an_edit_the_schema_check_refuses_naming_every_finding(alice_client, job, bq) -> None:
    bq.query(f"DROP TABLE `{job.destination_dataset}.orders`")
    bq.create_table(job.destination_dataset, "orders", [BigQueryField("id", "INT64"), BigQueryField("amount", "INT64"),
                                                        BigQueryField("must", "STRING", "REQUIRED")])
    refused = patch(alice_client, job, {"name": "renamed"})
    assert refused.status_code == 422 and refused.json()["message"] == "Schema incompatible"
    details = " ".join(refused.json()["details"])
    assert "must" in details and "amount" in details  # the REQUIRED column, and the narrowing still to validate
    job.refresh_from_db()
    assert job.name == "orders"


def test_it_answers_bad_edits_with_a_400_naming_the_field(alice_client, job) -> None:
    cases = {"load_strategy": "teleport", "schedule": "whenever", "schedule_timezone": "Nowhere/City",
             "columns": [], "name": "", "unknown_field": 1, "add_columns": "note"}
    for field, value in cases.items():
        response = patch(alice_client, job, {field: value})
        assert response.status_code == 400, (field, response.content)
        body = response.json()
        assert body["status"] == "error" and [d["field"] for d in body["details"]] == [field], body
    missing_cursor = patch(alice_client, job, {"cursor_column": None})
    assert missing_cursor.status_code == 422 and "cursor" in missing_cursor.json()["message"]
    unknown_column = patch(alice_client, job, {"columns": ["id", "nope"]})
    assert unknown_column.status_code == 400 and unknown_column.json()["details"][0]["field"] == "columns"
    job.refresh_from_db()
    assert (job.name, job.load_strategy, job.schedule) == ("orders", "incremental", "*/5 * * * *")


def test_it_refuses_a_name_another_job_has(alice_client, job) -> None:
    EtlJob.objects.create(workspace=job.workspace, owner=job.owner, name="taken", connection=job.connection,
                          source_table="orders", destination_dataset="d", destination_table="t")
    response = patch(alice_client, job, {"name": "taken"})
    assert response.status_code == 400 and response.json()["details"][0]["field"] == "name"


def test_it_refuses_an_edit_while_a_run_is_active(alice_client, job) -> None:
    records.run_enqueue_record(job=job)
    response = patch(alice_client, job, {"name": "renamed"})
    assert response.status_code == 409 and "run" in response.json()["message"]


# --------------------------------------------------------------------------- Delete, Run Now, Pause/Resume, runs


def test_it_deletes_a_job_but_keeps_the_table_and_refuses_while_running(alice_client, job, bq) -> None:
    run = records.run_enqueue_record(job=job)
    busy = alice_client.delete(url("api_job_detail", job))
    assert busy.status_code == 409 and EtlJob.objects.filter(pk=job.pk).exists()
    JobRun.objects.filter(pk=run.pk).update(status=JobRun.Status.FAILED)
    assert alice_client.delete(url("api_job_detail", job)).json() == {"status": "ok"}
    assert not EtlJob.objects.filter(pk=job.pk).exists()
    assert bq.table_exists(job.destination_dataset, "orders")
    assert alice_client.get(url("api_job_detail", job)).status_code == 404


def test_it_runs_a_job_now_once_and_lists_its_runs(alice_client, job) -> None:
    queued = post(alice_client, "api_job_run", job)
    assert queued.status_code == 202, queued.content
    run = queued.json()["run"]
    assert run["status"] == "queued" and run["trigger"] == "manual" and run["connection_name"] == "pg main"
    again = post(alice_client, "api_job_run", job)
    assert again.status_code == 409 and "already has a run" in again.json()["message"]
    assert JobRun.objects.filter(job=job).count() == 1
    runs = alice_client.get(url("api_job_runs", job)).json()["runs"]
    assert [(r["id"], r["number"], r["status"]) for r in runs] == [(run["id"], 1, "queued")]
    assert AuditEvent.objects.filter(target_id=job.pk, action="ran").count() == 1


def test_it_pauses_and_resumes_a_job(alice_client, job) -> None:
    paused = post(alice_client, "api_job_pause", job)
    assert paused.status_code == 200 and paused.json()["job"]["status"] == "paused"
    job.refresh_from_db()
    assert job.status == EtlJob.Status.PAUSED
    resumed = post(alice_client, "api_job_resume", job)
    assert resumed.status_code == 200 and resumed.json()["job"]["status"] == "active"
    assert resumed.json()["job"]["next_run_at"] is not None  # the schedule continues from now
    assert [e.action for e in AuditEvent.objects.filter(target_id=job.pk).order_by("id")] == ["paused", "resumed"]


# --------------------------------------------------------------------------- Reconnect


def test_it_reconnects_only_when_compatible_and_keeps_table_and_watermark(alice_client, user, job, source,
                                                                          bq) -> None:
    rotated = connections.connection_create(owner=user, name="pg rotated", **source.as_connection_fields())
    before = bq.get_table_schema(job.destination_dataset, "orders")
    wrong = post(alice_client, "api_job_reconnect", job, {"connection_id": rotated.pk, "source_table": "public.wrong"})
    assert wrong.status_code == 422 and wrong.json()["message"] == "Schema incompatible"
    assert "amount" in " ".join(wrong.json()["details"])  # the selected column the new table lacks
    missing = post(alice_client, "api_job_reconnect", job, {"connection_id": rotated.pk, "source_table": "public.nope"})
    assert missing.status_code == 404
    job.refresh_from_db()
    assert job.connection_id != rotated.pk
    done = post(alice_client, "api_job_reconnect", job,
                {"connection_id": rotated.pk, "source_table": "public.orders_v2"})
    assert done.status_code == 200, done.content
    assert done.json()["job"]["connection_id"] == rotated.pk and done.json()["report"]["compatible"] is True
    job.refresh_from_db()
    assert (job.connection_id, job.source_table) == (rotated.pk, "orders_v2")
    assert job.watermark == {"type": "int", "value": "10"}
    assert bq.get_table_schema(job.destination_dataset, "orders") == before
    assert AuditEvent.objects.filter(target_id=job.pk, action="reconnected").exists()


def test_it_reconnects_to_a_new_connection_keeping_the_table_name(alice_client, user, job, source) -> None:
    rotated = connections.connection_create(owner=user, name="pg rotated", **source.as_connection_fields())
    done = post(alice_client, "api_job_reconnect", job, {"connection_id": rotated.pk})
    assert done.status_code == 200, done.content
    job.refresh_from_db()
    assert (job.connection_id, job.source_schema, job.source_table) == (rotated.pk, "public", "orders")


def test_it_refuses_a_reconnect_while_a_run_is_active(alice_client, user, job, source) -> None:
    rotated = connections.connection_create(owner=user, name="pg rotated", **source.as_connection_fields())
    records.run_enqueue_record(job=job)
    busy = post(alice_client, "api_job_reconnect", job, {"connection_id": rotated.pk})
    assert busy.status_code == 409
    job.refresh_from_db()
    assert job.connection_id != rotated.pk


# --------------------------------------------------------------------------- scoping and roles


def test_another_workspace_gets_404_on_every_action_and_nothing_changes(client, other_user, job, tmp_path) -> None:
    client.force_login(other_user)
    mine = connections.connection_create(owner=other_user, name="mallory", engine="sqlite",
                                         database=str(tmp_path / "m.sqlite3"))
    before = EtlJob.objects.filter(pk=job.pk).values().get()
    requests = [
        client.get(url("api_job_detail", job)),
        patch(client, job, {"name": "stolen"}),
        client.delete(url("api_job_detail", job)),
        client.get(url("api_job_runs", job)),
        post(client, "api_job_run", job),
        post(client, "api_job_pause", job),
        post(client, "api_job_resume", job),
        post(client, "api_job_reconnect", job, {"connection_id": mine.pk}),
    ]
    for response in requests:
        assert response.status_code == 404, (response.request["PATH_INFO"], response.content)
        assert response.json() == NOT_FOUND
    assert EtlJob.objects.filter(pk=job.pk).values().get() == before
    assert not JobRun.objects.exists() and not AuditEvent.objects.filter(target_id=job.pk).exists()


def test_alice_cannot_reconnect_her_job_to_another_workspaces_connection(alice_client, other_user, job,
                                                                         tmp_path) -> None:
    theirs = connections.connection_create(owner=other_user, name="mallory", engine="sqlite",
                                           database=str(tmp_path / "m.sqlite3"))
    response = post(alice_client, "api_job_reconnect", job, {"connection_id": theirs.pk})
    assert response.status_code == 404 and response.json() == NOT_FOUND
    job.refresh_from_db()
    assert job.connection_id != theirs.pk


def test_a_viewers_token_reads_but_cannot_act_and_an_editors_token_needs_no_csrf(user, other_user, job) -> None:
    member = Membership.objects.create(workspace=job.workspace, user=other_user, role=Membership.Role.VIEWER)
    _, plaintext = workspaces.token_create(user=other_user, workspace=job.workspace, name="ci")
    client, auth = Client(enforce_csrf_checks=True), {"HTTP_AUTHORIZATION": f"Bearer {plaintext}"}
    assert client.get(url("api_job_runs", job), **auth).status_code == 200
    refused = [patch(client, job, {"name": "x"}, **auth), client.delete(url("api_job_detail", job), **auth),
               *(post(client, name, job, **auth) for name in ("api_job_run", "api_job_pause", "api_job_resume",
                                                                "api_job_reconnect"))]
    for response in refused:
        assert response.status_code == 403 and "viewer" in response.json()["message"]
    workspaces.member_set_role(membership=member, role=Membership.Role.EDITOR, actor=user)
    assert post(client, "api_job_pause", job, **auth).status_code == 200
    assert patch(client, job, {"name": "by token"}, **auth).status_code == 200
    job.refresh_from_db()
    assert (job.status, job.name) == (EtlJob.Status.PAUSED, "by token")


def test_a_session_needs_the_csrf_token_for_every_action(user, job) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    refused = [patch(client, job, {"name": "x"}), client.delete(url("api_job_detail", job)),
               *(post(client, name, job) for name in ("api_job_run", "api_job_pause", "api_job_resume",
                                                        "api_job_reconnect"))]
    for response in refused:
        assert response.status_code == 403 and "CSRF" in response.json()["message"]
    job.refresh_from_db()
    assert (job.status, job.name) == (EtlJob.Status.ACTIVE, "orders") and not JobRun.objects.exists()
    client.get(reverse("jobs"))
    token = {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value}
    assert post(client, "api_job_pause", job, **token).status_code == 200
    assert patch(client, job, {"name": "with token"}, **token).status_code == 200
    job.refresh_from_db()
    assert (job.status, job.name) == (EtlJob.Status.PAUSED, "with token")


def test_it_scans_the_source_on_edit_as_the_edit_page_does_and_refuses_values_that_do_not_fit(alice_client, job,
                                                                                                 bq) -> None:
    bq.add_columns(job.destination_dataset, "orders", [BigQueryField("note", "INT64")])  # source `note` is text
    refused = patch(alice_client, job, {"columns": ["id", "amount", "note"]})
    assert refused.status_code == 422 and refused.json()["message"] == "Schema incompatible"
    assert any("n1" in d for d in refused.json()["details"]), refused.json()  # a value the scan found
    job.refresh_from_db()
    assert job.selected_columns == ["id", "amount"]
