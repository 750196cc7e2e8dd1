"""Verify / Repair as the product offers them: the API, the pages, the worker task, the command."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from ml_platform.models import AuditEvent, EtlJob, JobRun
from ml_platform.runs import lifecycle, records, verify
from ml_platform.runs.lifecycle import run_sync
from ml_platform.services import connections, verification

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def job(user, pg_source, bq_settings, bq, bq_dataset):
    pg_source.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2), note text, placed timestamptz)",
        "INSERT INTO orders SELECT g, g * 2.5, CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || g END, "
        "timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour 1 second' FROM generate_series(1, 120) g",
    )
    connection = connections.connection_create(owner=user, name="pg main", **pg_source.as_connection_fields())
    job = EtlJob.objects.create(
        workspace=connection.workspace, owner=user, name="orders", connection=connection, source_schema="public",
        source_table="orders", selected_columns=["id", "amount", "note", "placed"], destination_dataset=bq_dataset,
        destination_table="orders", load_strategy="replace", source_tag="eu")
    assert run_sync(job=job).status == JobRun.Status.SUCCEEDED
    job.table = f"`{bq_dataset}`.`orders`"
    return job


def damage(bq, job) -> None:
    bq.query(f"DELETE FROM {job.table} WHERE id IN (7, 8)")
    bq.query(f"UPDATE {job.table} SET note = 'changed' WHERE id = 100")
    bq.query(f"INSERT INTO {job.table} (id, amount, _source_tag) VALUES (500, NUMERIC '1', 'eu')")


def test_it_verifies_and_repairs_through_the_api(alice_client, job, bq) -> None:
    url = reverse("api_job_verify", args=[job.pk])
    assert alice_client.get(url).json() == {"status": "ok", "verification": None}
    fresh = alice_client.post(url, {"wait": True}, content_type="application/json")
    assert fresh.status_code == 200, fresh.content
    assert fresh.json()["verification"]["result"]["in_sync"] is True

    damage(bq, job)
    found = alice_client.post(url, {"wait": True}, content_type="application/json").json()["verification"]["result"]
    assert (found["missing"], found["extra"], found["changed"]) == (2, 1, 1)
    assert (found["missing_keys"], found["extra_keys"], found["changed_keys"]) == ([7, 8], [500], [100])

    repaired = alice_client.post(url, {"wait": True, "repair": True}, content_type="application/json").json()
    assert repaired["verification"]["kind"] == "repair" and repaired["verification"]["rows_repaired"] == 3
    assert repaired["verification"]["result"]["in_sync"] is True
    assert alice_client.get(url).json()["verification"]["run_id"] == repaired["verification"]["run_id"]
    kinds = list(job.runs.order_by("id").values_list("kind", flat=True))
    assert kinds == ["run", "verify", "verify", "repair"]
    assert set(AuditEvent.objects.filter(target_id=job.pk).values_list("action", flat=True)) >= {"verified", "repaired"}
    history = alice_client.get(reverse("job_detail", args=[job.pk])).content.decode()
    assert 'data-kind="repair"' in history and 'data-kind="verify"' in history


def test_it_refuses_bad_api_input_and_other_workspaces(alice_client, client, other_user, job) -> None:
    url = reverse("api_job_verify", args=[job.pk])
    bad = alice_client.post(url, {"wait": "yes"}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["status"] == "error"
    assert alice_client.post(url, {"fast": True}, content_type="application/json").status_code == 400
    assert alice_client.post(url, "[]", content_type="application/json").status_code == 400
    nothing = alice_client.post(url, {"repair": True}, content_type="application/json")
    assert nothing.status_code == 409 and "verify the job first" in nothing.json()["message"]
    client.force_login(other_user)
    assert client.post(url, {"wait": True}, content_type="application/json").status_code == 404
    assert client.get(reverse("job_verification", args=[job.pk])).status_code == 404
    assert not job.runs.filter(kind="verify").exists()


def test_the_page_shows_the_strip_and_offers_repair(alice_client, job, bq) -> None:
    damage(bq, job)
    verify.run_sync(job=job)
    html = alice_client.get(reverse("job_verification", args=[job.pk])).content.decode()
    assert 'data-in-sync="false"' in html and 'data-testid="verification-strip"' in html
    assert 'fill="#dc3545" data-differing="2"' in html  # keys 7 and 8 share a range
    assert "7, 8" in html and "500" in html and "Repair 4 rows" in html


def test_it_queues_on_the_worker_and_can_be_cancelled(alice_client, job) -> None:
    response = alice_client.post(reverse("job_verify", args=[job.pk]))
    assert response.status_code == 302 and response.url.endswith("#verification")
    run = job.runs.get(kind="verify")
    assert run.status == JobRun.Status.QUEUED
    again = alice_client.post(reverse("job_verify", args=[job.pk]), follow=True).content.decode()
    assert "already has a run, verification or repair in progress" in again
    assert alice_client.post(reverse("job_run_now", args=[job.pk])).status_code in (302, 409)
    assert job.runs.filter(status__in=JobRun.ACTIVE_STATUSES).count() == 1
    alice_client.post(reverse("job_verify_cancel", args=[job.pk]))
    run.refresh_from_db()
    assert run.status == JobRun.Status.FAILED and run.error == "Cancelled by alice"
    assert verify.execute(run_id=run.pk).status == JobRun.Status.FAILED  # the worker finds it closed


def test_a_running_verification_stops_when_cancelled(job) -> None:
    run = records.verification_record(job=job, kind=JobRun.Kind.VERIFY)
    JobRun.objects.filter(pk=run.pk).update(status=JobRun.Status.RUNNING)
    recorder = verify._Recorder(run)
    verification.cancel(job=job)
    from ml_platform.etl.verify import Progress

    with pytest.raises(verify.Cancelled):
        recorder(Progress("bisecting", 1, 3, 0))


def test_it_verifies_after_every_run_when_asked(alice_client, job) -> None:
    alice_client.post(reverse("job_verify_settings", args=[job.pk]), {"verify_after_run": "on"})
    job.refresh_from_db()
    assert job.verify_after_run
    run = records.run_enqueue_record(job=job)
    lifecycle.run_etl_job.call(run.pk)  # the task entry point, run in process
    assert job.runs.filter(kind="verify", status=JobRun.Status.QUEUED).exists()
    alice_client.post(reverse("job_verify_settings", args=[job.pk]), {})
    job.refresh_from_db()
    assert not job.verify_after_run


def test_the_command_reports_and_repairs(job, bq) -> None:
    out = io.StringIO()
    call_command("etl_verify", job.pk, stdout=out)
    assert "orders: in sync" in out.getvalue()
    damage(bq, job)
    out = io.StringIO()
    with pytest.raises(CommandError, match="not in sync"):
        call_command("etl_verify", job.pk, stdout=out)
    assert "2 missing: 7, 8" in out.getvalue() and "1 extra: 500" in out.getvalue()
    out = io.StringIO()
    call_command("etl_verify", job.pk, "--repair", stdout=out)
    assert "Reloaded 3 rows." in out.getvalue() and "in sync" in out.getvalue()


def test_a_repair_claims_the_table_and_commits_with_its_own_fence(alice_client, job, bq, bq_dataset) -> None:
    url = reverse("api_job_verify", args=[job.pk])
    damage(bq, job)
    alice_client.post(url, {"wait": True}, content_type="application/json")
    repaired = alice_client.post(url, {"wait": True, "repair": True}, content_type="application/json").json()
    run_id = repaired["verification"]["run_id"]

    rows = bq.query(f"SELECT job, kind, fence, row_count FROM `{bq_dataset}`.`_etl_ledger` "
                    f"WHERE run = 'repair-{run_id}' ORDER BY kind")
    assert rows == [{"job": str(job.pk), "kind": "claim", "fence": run_id, "row_count": 0},
                    {"job": str(job.pk), "kind": "unit", "fence": run_id, "row_count": 3}]


def test_the_runners_own_tables_are_hidden_from_table_lists(alice_client, job, bq, bq_dataset) -> None:
    from ml_platform.etl.staging import Warehouse
    from ml_platform.etl.types import BigQueryField

    bq.create_table(bq_dataset, "_stg_orders_r1_leftover", [BigQueryField("id", "INT64")])
    assert {"_etl_ledger", "_stg_orders_r1_leftover", "orders"} <= set(Warehouse(bq).table_names(bq_dataset))

    tables = alice_client.get(reverse("api_dataset_tables", args=[bq_dataset])).json()["tables"]
    assert [t["table_id"] for t in tables] == ["orders"]
    options = alice_client.get(reverse("wizard:tables"), {"dataset": bq_dataset}).content.decode()
    assert "orders" in options and "_etl_ledger" not in options and "_stg_" not in options


def test_a_text_key_is_verified_and_repaired_through_the_api(alice_client, user, pg_source, bq_settings, bq,
                                                             bq_dataset) -> None:
    pg_source.execute("CREATE TABLE codes (code text PRIMARY KEY, amount numeric(12,2))",
                      "INSERT INTO codes SELECT 'c' || g, g * 1.5 FROM generate_series(1, 80) g")
    connection = connections.connection_create(owner=user, name="pg codes", **pg_source.as_connection_fields())
    job = EtlJob.objects.create(
        workspace=connection.workspace, owner=user, name="codes", connection=connection, source_schema="public",
        source_table="codes", selected_columns=["code", "amount"], destination_dataset=bq_dataset,
        destination_table="codes", load_strategy="replace", source_tag="eu")
    assert run_sync(job=job).status == JobRun.Status.SUCCEEDED
    bq.query(f"DELETE FROM `{bq_dataset}`.`codes` WHERE code = 'c7'")
    bq.query(f"UPDATE `{bq_dataset}`.`codes` SET amount = 0 WHERE code = 'c40'")
    url = reverse("api_job_verify", args=[job.pk])

    found = alice_client.post(url, {"wait": True}, content_type="application/json").json()["verification"]["result"]
    assert (found["missing_keys"], found["extra_keys"], found["changed_keys"]) == (["c7"], [], ["c40"])
    repaired = alice_client.post(url, {"wait": True, "repair": True}, content_type="application/json").json()

    assert repaired["verification"]["rows_repaired"] == 2
    assert repaired["verification"]["result"]["in_sync"] is True
