"""Jobs page actions: Run Now, Pause/Resume, Delete, Edit, Reconnect, detail — and the owner check."""

from __future__ import annotations

import pytest
from django.urls import reverse

from ml_platform.etl.types import BigQueryField
from ml_platform.models import EtlJob, JobRun
from ml_platform.services import connections
from tests.fixtures import HX

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(user, connection, bq_settings, bq, bq_dataset):
    bq.create_table(bq_dataset, "orders", [BigQueryField("id", "INT64"), BigQueryField("amount", "NUMERIC")])
    return EtlJob.objects.create(workspace=connection.workspace,
        owner=user, name="orders", connection=connection, source_schema="public", source_table="orders",
        selected_columns=["id", "amount"], column_mapping={"id": "id", "amount": "amount"},
        destination_dataset=bq_dataset, destination_table="orders", load_strategy="incremental",
        cursor_column="id", schedule="*/5 * * * *", watermark={"type": "int", "value": "10"},
    )


def test_it_lists_jobs_with_actions(alice_client, job) -> None:
    html = alice_client.get(reverse("jobs")).content.decode()
    for label in ("Run Now", "Edit", "Reconnect", "Pause", "Delete"):
        assert label in html
    assert "pg main" in html and f"{job.destination_dataset}.orders" in html and "never" in html


def test_it_queues_a_run_and_refuses_a_second_while_active(alice_client, job) -> None:
    first = alice_client.post(reverse("job_run_now", args=[job.pk]), headers=HX)
    assert first.status_code == 200
    html = first.content.decode()
    assert "queued" in html.lower() and 'hx-trigger="every 2s"' in html  # the list polls fast while active
    second = alice_client.post(reverse("job_run_now", args=[job.pk]), headers=HX)
    assert second.status_code == 409 and b"already has a run in progress" in second.content
    assert job.runs.count() == 1
    run = job.runs.get()
    assert run.connection_name == "pg main" and run.watermark_before == {"type": "int", "value": "10"}


def test_it_slows_polling_when_the_run_has_ended(alice_client, job) -> None:
    JobRun.objects.create(job=job, status=JobRun.Status.SUCCEEDED, rows_loaded=42)
    html = alice_client.get(reverse("jobs"), headers=HX).content.decode()
    assert 'hx-trigger="every 15s"' in html and "42 rows" in html


def test_it_pauses_and_resumes(alice_client, job) -> None:
    html = alice_client.post(reverse("job_pause", args=[job.pk]), headers=HX).content.decode()
    job.refresh_from_db()
    assert job.status == "paused" and "Resume" in html
    alice_client.post(reverse("job_resume", args=[job.pk]), headers=HX)
    job.refresh_from_db()
    assert job.status == "active" and job.next_run_at is not None


def test_it_deletes_the_job_but_keeps_the_table(alice_client, job, bq) -> None:
    confirm = alice_client.get(reverse("job_delete", args=[job.pk])).content.decode()
    assert "data stay" in confirm
    alice_client.post(reverse("job_delete", args=[job.pk]))
    assert not EtlJob.objects.filter(pk=job.pk).exists()
    assert bq.table_exists(job.destination_dataset, "orders")


def test_it_refuses_to_delete_a_running_job(alice_client, job) -> None:
    JobRun.objects.create(job=job, status=JobRun.Status.RUNNING)
    alice_client.post(reverse("job_delete", args=[job.pk]))
    assert EtlJob.objects.filter(pk=job.pk).exists()


def test_it_shows_run_history_and_a_chart(alice_client, job) -> None:
    from django.utils import timezone

    now = timezone.now()
    JobRun.objects.create(job=job, status="succeeded", rows_loaded=100, started_at=now, finished_at=now,
                          connection_name="pg main")
    JobRun.objects.create(job=job, status="failed", error="Boom: source unreachable", started_at=now,
                          finished_at=now)
    html = alice_client.get(reverse("job_detail", args=[job.pk])).content.decode()
    assert "<svg" in html and "Boom: source unreachable" in html and "pg main" in html


@pytest.mark.integration
def test_it_edits_a_job_and_adds_an_approved_column(alice_client, job, bq) -> None:
    page = alice_client.get(reverse("job_edit", args=[job.pk])).content.decode()
    assert "note" in page
    form = {"name": "orders v2", "columns": ["id", "amount", "note"], "load_strategy": "incremental",
            "cursor_column": "id", "preset": "0 * * * *", "cron": "", "timezone": "UTC"}
    report = alice_client.post(reverse("job_edit", args=[job.pk]), {**form, "refresh": "1"}, headers=HX)
    assert b"Add these columns to the table" in report.content
    alice_client.post(reverse("job_edit", args=[job.pk]), {**form, "add_columns": ["note"]})
    job.refresh_from_db()
    assert job.name == "orders v2" and job.selected_columns == ["id", "amount", "note"] and job.schedule == "0 * * * *"
    assert "note" in [f.name for f in bq.get_table_schema(job.destination_dataset, "orders").fields]


@pytest.mark.integration
def test_it_never_drops_a_selected_column_the_table_lacks(alice_client, job, bq) -> None:
    before = (job.selected_columns, job.column_mapping)
    form = {"name": "orders", "columns": ["id", "amount", "note"], "load_strategy": "incremental",
            "cursor_column": "id", "preset": "manual", "cron": "", "timezone": "UTC"}
    unticked = alice_client.post(reverse("job_edit", args=[job.pk]), form)
    assert unticked.status_code == 400
    assert "are not in the table: tick them" in unticked.content.decode()
    stale = alice_client.post(reverse("job_edit", args=[job.pk]), {**form, "columns": ["id", "amount"],
                                                                    "add_columns": ["note"]})
    assert stale.status_code == 400  # a tick for a column that is no longer selected is refused too
    job.refresh_from_db()
    assert (job.selected_columns, job.column_mapping) == before
    assert "note" not in [f.name for f in bq.get_table_schema(job.destination_dataset, "orders").fields]


@pytest.mark.integration
def test_it_refuses_an_edit_while_a_run_is_active(alice_client, job) -> None:
    JobRun.objects.create(job=job, status=JobRun.Status.RUNNING)
    form = {"name": "renamed", "columns": ["id", "amount"], "load_strategy": "incremental",
            "cursor_column": "id", "preset": "manual", "cron": "", "timezone": "UTC"}
    busy = alice_client.post(reverse("job_edit", args=[job.pk]), form)
    assert busy.status_code == 400 and "has a run in progress" in busy.content.decode()
    job.refresh_from_db()
    assert job.name != "renamed"


@pytest.mark.integration
def test_it_rejects_an_invalid_edit_in_place(alice_client, job) -> None:
    bad = alice_client.post(reverse("job_edit", args=[job.pk]), {
        "name": "", "columns": [], "load_strategy": "incremental", "cursor_column": "", "preset": "custom",
        "cron": "nope", "timezone": "UTC"})
    assert bad.status_code == 400
    html = bad.content.decode()
    assert "Select at least one column" in html and "not a valid cron expression" in html


@pytest.mark.integration
def test_it_reconnects_only_when_compatible_and_keeps_table_and_watermark(alice_client, user, job, mysql_source,
                                                                          bq) -> None:
    mysql_source.execute("CREATE TABLE orders (id bigint PRIMARY KEY, amount decimal(12,2))",
                         "CREATE TABLE wrong (id varchar(10), other text)")
    new = connections.connection_create(owner=user, name="maria v2", **mysql_source.as_connection_fields())
    page = alice_client.get(reverse("job_reconnect", args=[job.pk]), {"connection": new.pk}, headers=HX)
    html = page.content.decode()
    assert f"{mysql_source.database}.orders" in html and "Compatible" in html
    refused = alice_client.get(reverse("job_reconnect", args=[job.pk]),
                               {"connection": new.pk, "table": f"{mysql_source.database}.wrong"}, headers=HX)
    assert b'id="reconnect-button" disabled' in refused.content
    alice_client.post(reverse("job_reconnect", args=[job.pk]),
                      {"connection": new.pk, "table": f"{mysql_source.database}.wrong", "confirm": "1"})
    job.refresh_from_db()
    assert job.connection_id != new.pk
    before = bq.get_table_schema(job.destination_dataset, "orders")
    alice_client.post(reverse("job_reconnect", args=[job.pk]),
                      {"connection": new.pk, "table": f"{mysql_source.database}.orders", "confirm": "1"})
    job.refresh_from_db()
    assert job.connection_id == new.pk and job.source_table == "orders"
    assert job.watermark == {"type": "int", "value": "10"}
    assert bq.get_table_schema(job.destination_dataset, "orders") == before


def test_it_hides_other_users_jobs_everywhere(client, other_user, job) -> None:
    client.force_login(other_user)
    for name, method in [("job_detail", "get"), ("job_row", "get"), ("job_run_now", "post"), ("job_pause", "post"),
                         ("job_resume", "post"), ("job_delete", "post"), ("job_delete", "get"),
                         ("job_edit", "get"), ("job_reconnect", "get")]:
        assert getattr(client, method)(reverse(name, args=[job.pk])).status_code == 404, name
    assert not JobRun.objects.exists()


@pytest.mark.integration
def test_it_refuses_an_edit_to_a_cron_that_never_runs(alice_client, job) -> None:
    bad = alice_client.post(reverse("job_edit", args=[job.pk]), {
        "name": "orders", "columns": ["id", "amount"], "load_strategy": "incremental", "cursor_column": "id",
        "preset": "custom", "cron": "0 0 31 4 *", "timezone": "UTC"})
    assert bad.status_code == 400 and "never runs" in bad.content.decode()
    job.refresh_from_db()
    assert job.schedule == "*/5 * * * *"
