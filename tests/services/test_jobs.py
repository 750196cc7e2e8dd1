"""The job services called directly (no page, no API): what they create, refuse, change and record.

Real PostgreSQL for the source, the emulator for BigQuery: the shared `source` (public.orders, 20 rows)
and alice's `connection` to it.
"""

from __future__ import annotations

import pytest
from django.http import Http404

from ml_platform.etl.types import BigQueryField
from ml_platform.models import AuditEvent, EtlJob, JobRun
from ml_platform.runs import lifecycle, records
from ml_platform.services import connections, jobs, schema_check, sources, workspaces

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def columns(connection, *names: str):
    return [c for c in sources.get_columns(connection, "public", "orders") if c.name in names]


def create(user, connection, dataset: str, **overrides) -> EtlJob:
    fields = dict(owner=user, actor=user, name="orders", connection=connection, source_schema="public",
                  source_table="orders", source_columns=columns(connection, "id", "amount"),
                  destination_dataset=dataset, destination_table="orders", use_existing_table=False,
                  load_strategy="incremental", cursor_column="id")
    return jobs.job_create(**{**fields, **overrides})


@pytest.fixture
def job(user, connection, bq_settings, bq_dataset) -> EtlJob:
    return create(user, connection, bq_dataset, schedule="*/5 * * * *")


def test_job_create_makes_the_table_from_the_source_and_records_who_created_it(user, job, bq, bq_dataset) -> None:
    schema = bq.get_table_schema(bq_dataset, "orders")
    assert [(f.name, f.field_type) for f in schema.fields] == [("id", "INT64"), ("amount", "NUMERIC")]
    assert job.column_mapping == {"id": "id", "amount": "amount"} and job.destination_mode == "new"
    assert job.next_run_at is not None  # scheduled: the scheduler will pick it up
    created = AuditEvent.objects.get(action="created", target_type="etljob", target_id=job.pk)
    assert created.actor == user and created.changes["connection"] == {"before": None, "after": "pg main"}


def test_job_create_refuses_a_destination_table_that_already_exists(user, connection, job, bq_dataset) -> None:
    with pytest.raises(jobs.JobCreateError, match=rf"A table named 'orders' already exists in {bq_dataset}"):
        create(user, connection, bq_dataset, name="orders again")
    assert list(EtlJob.objects.values_list("name", flat=True)) == ["orders"]


def test_job_create_refuses_another_workspaces_dataset(user, other_user, connection, bq_settings, bq) -> None:
    theirs = "ds_mallory_only"
    bq.create_dataset(theirs)
    try:
        workspaces.dataset_assign(workspace=workspaces.personal_workspace(other_user), dataset=theirs)
        with pytest.raises(Http404):
            create(user, connection, theirs)
        assert not bq.table_exists(theirs, "orders") and not EtlJob.objects.exists()
    finally:
        bq.delete_dataset(theirs)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"cursor_column": ""}, "Incremental loads need a cursor column."),
    ({"load_strategy": "merge", "merge_key": []}, "Merge needs at least one key column."),
    ({"clustering": ["note"]}, "Not selected source columns: 'note'"),
    ({"schedule": "61 * * * *"}, "is not a valid cron expression"),
    ({"schedule_timezone": "Nowhere/City"}, "Unknown time zone 'Nowhere/City'."),
    ({"source_columns": []}, "Select at least one source column."),
])
def test_job_create_refuses_an_inconsistent_job_before_touching_bigquery(
    user, connection, bq_settings, bq, bq_dataset, overrides: dict, message: str
) -> None:
    with pytest.raises(jobs.JobCreateError) as refused:
        create(user, connection, bq_dataset, **overrides)
    assert message in str(refused.value)
    assert not bq.table_exists(bq_dataset, "orders") and not EtlJob.objects.exists()


def test_job_create_into_a_table_with_rows_refuses_replace_until_confirmed(user, connection, bq_settings, bq,
                                                                           bq_dataset) -> None:
    bq.create_table(bq_dataset, "orders", [BigQueryField("id", "INT64"), BigQueryField("amount", "NUMERIC")])
    bq.query(f"INSERT INTO `{bq_dataset}.orders` (id, amount) VALUES (1, 1.5), (2, 2.5)")
    existing = dict(use_existing_table=True, load_strategy="replace", cursor_column="")
    with pytest.raises(jobs.JobCreateError, match=rf"Replace deletes the 2 rows .* {bq_dataset}\.orders"):
        create(user, connection, bq_dataset, **existing)
    assert not EtlJob.objects.exists()
    job = create(user, connection, bq_dataset, **existing, confirm_replace=True)
    assert job.destination_mode == "existing" and bq.row_count(bq_dataset, "orders") == 2  # deleted on the run


def test_a_second_job_into_the_same_table_needs_a_source_tag_of_its_own(user, connection, job, bq_dataset) -> None:
    with pytest.raises(jobs.JobCreateError, match="give this source its own tag"):
        create(user, connection, bq_dataset, name="orders 2", use_existing_table=True)
    assert EtlJob.objects.count() == 1


def edit(job: EtlJob, connection, *selected: str, add_columns: list[str], **overrides) -> EtlJob:
    source_columns = columns(connection, *selected)
    choices = schema_check.Choices(load_strategy=job.load_strategy, cursor_column=job.cursor_column,
                                   add_columns=tuple(add_columns))
    result = schema_check.check(workspace=job.workspace, source_columns=source_columns,
                                destination=schema_check.Destination(job.destination_dataset, job.destination_table),
                                choices=choices, dialect="postgresql", exclude_job=job, creating=False)
    fields = dict(job=job, source_columns=source_columns, result=result, name=job.name,
                  load_strategy=job.load_strategy, cursor_column=job.cursor_column, merge_key=job.merge_key,
                  schedule=job.schedule, schedule_timezone=job.schedule_timezone, actor=job.owner)
    return jobs.job_update(**{**fields, **overrides})


def test_job_update_adds_the_approved_column_and_audits_only_the_changed_fields(connection, job, bq,
                                                                                bq_dataset) -> None:
    edit(job, connection, "id", "amount", "note", add_columns=["note"], name="orders v2")
    job.refresh_from_db()
    assert job.name == "orders v2" and job.selected_columns == ["id", "amount", "note"]
    assert "note" in [f.name for f in bq.get_table_schema(bq_dataset, "orders").fields]
    edited = AuditEvent.objects.get(action="edited", target_id=job.pk)
    assert set(edited.changes) == {"name", "selected_columns"}
    assert edited.changes["name"] == {"before": "orders", "after": "orders v2"}


def test_job_update_refuses_a_new_column_not_approved_for_adding(connection, job, bq, bq_dataset) -> None:
    with pytest.raises(jobs.JobCreateError, match="'note' are not in the table"):
        edit(job, connection, "id", "amount", "note", add_columns=[], name="orders v2")
    job.refresh_from_db()
    assert job.name == "orders" and job.selected_columns == ["id", "amount"]
    assert "note" not in [f.name for f in bq.get_table_schema(bq_dataset, "orders").fields]


def test_job_update_and_delete_wait_for_the_active_run(connection, job, bq, bq_dataset) -> None:
    JobRun.objects.create(job=job, status=JobRun.Status.RUNNING)
    with pytest.raises(jobs.JobBusy, match="has a run in progress"):
        edit(job, connection, "id", "amount", add_columns=[], name="renamed")
    with pytest.raises(jobs.JobBusy, match="is running"):
        jobs.job_delete(job=job)
    job.refresh_from_db()
    assert job.name == "orders"
    job.runs.update(status=JobRun.Status.SUCCEEDED)
    jobs.job_delete(job=job, actor=job.owner)
    assert not EtlJob.objects.exists() and bq.table_exists(bq_dataset, "orders")  # the data stay


def test_job_reconnect_moves_the_job_and_refuses_another_workspaces_connection(user, other_user, source, job) -> None:
    theirs = connections.connection_create(owner=other_user, name="theirs", **source.as_connection_fields())
    with pytest.raises(Http404):
        jobs.job_reconnect(job=job, connection=theirs, source_schema="public", source_table="orders",
                           source_columns=columns(theirs, "id", "amount"))
    replica = connections.connection_create(owner=user, name="pg replica", **source.as_connection_fields())
    jobs.job_reconnect(job=job, connection=replica, source_schema="public", source_table="orders",
                       source_columns=columns(replica, "id", "amount"), actor=user)
    job.refresh_from_db()
    assert job.connection == replica and job.selected_columns == ["id", "amount"]
    reconnected = AuditEvent.objects.get(action="reconnected", target_id=job.pk)
    assert reconnected.changes["connection"] == {"before": "pg main", "after": "pg replica"}


def test_run_enqueue_allows_one_active_run_and_records_who_asked(user, job) -> None:
    run = lifecycle.run_enqueue(job=job, actor=user)
    assert run.status == JobRun.Status.QUEUED and run.connection_name == "pg main"
    with pytest.raises(records.RunAlreadyActive, match="already has a run in progress"):
        lifecycle.run_enqueue(job=job, actor=user)
    assert job.runs.count() == 1
    assert AuditEvent.objects.get(action="ran", target_id=job.pk).actor == user
