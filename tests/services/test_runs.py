"""The run lifecycle called directly (`lifecycle.execute_run`, the scheduler's services): what a run records.

Real PostgreSQL source and the emulator; the run executes in the test's process (no worker).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from ml_platform.models import EtlJob, JobRun, WorkspaceDataset
from ml_platform.runs import lifecycle, records
from ml_platform.services import jobs, sources

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def job(user, connection, bq_settings, bq_dataset, tmp_path, settings) -> EtlJob:
    settings.ETL_SPOOL_DIR = str(tmp_path / "spool")
    columns = [c for c in sources.get_columns(connection, "public", "orders") if c.name in ("id", "amount", "note")]
    return jobs.job_create(
        owner=user, actor=user, name="orders", connection=connection, source_schema="public", source_table="orders",
        source_columns=columns, destination_dataset=bq_dataset, destination_table="orders", use_existing_table=False,
        load_strategy="incremental", cursor_column="id", schedule="*/5 * * * *",
    )


def execute(job: EtlJob) -> JobRun:
    return lifecycle.execute_run(run_id=records.run_enqueue_record(job=job).pk)


def test_a_run_loads_the_rows_and_the_next_one_only_the_new_rows(job, source, bq, bq_dataset) -> None:
    first = execute(job)
    assert first.status == JobRun.Status.SUCCEEDED, first.error
    assert first.rows_loaded == 20 and first.finished_at is not None
    job.refresh_from_db()
    assert job.watermark == {"type": "int", "value": "20"} and first.watermark_after == job.watermark
    source.execute("INSERT INTO orders (id, amount, note) VALUES (21, 1.5, 'late'), (22, 2.5, 'later')")
    second = execute(job)
    assert second.status == JobRun.Status.SUCCEEDED and second.rows_loaded == 2
    assert second.watermark_before == {"type": "int", "value": "20"}
    assert bq.row_count(bq_dataset, "orders") == 22


def test_a_run_records_why_it_failed_when_a_selected_column_is_gone(job, source, bq, bq_dataset) -> None:
    source.execute("ALTER TABLE orders DROP COLUMN note")
    run = execute(job)
    assert run.status == JobRun.Status.FAILED and run.finished_at is not None
    assert run.error == ("The source table public.orders no longer has the column(s) note: edit or reconnect the "
                         "job.")
    job.refresh_from_db()
    assert job.watermark in (None, {}) and bq.row_count(bq_dataset, "orders") == 0


def test_a_run_into_a_dataset_the_workspace_lost_fails_and_loads_nothing(job, bq, bq_dataset) -> None:
    WorkspaceDataset.objects.filter(dataset=bq_dataset).delete()
    run = execute(job)
    assert run.status == JobRun.Status.FAILED
    assert f"The BigQuery dataset {bq_dataset!r} does not belong to this job's workspace any more" in run.error
    assert bq.row_count(bq_dataset, "orders") == 0


def test_a_redelivered_run_that_already_started_does_nothing(job, bq, bq_dataset) -> None:
    run = records.run_enqueue_record(job=job)
    JobRun.objects.filter(pk=run.pk).update(status=JobRun.Status.RUNNING, heartbeat_at=timezone.now())
    again = lifecycle.execute_run(run_id=run.pk)
    assert again.status == JobRun.Status.RUNNING and again.rows_loaded == 0
    assert bq.row_count(bq_dataset, "orders") == 0


def test_the_scheduler_enqueues_a_due_job_once_and_moves_its_next_run(job, user) -> None:
    EtlJob.objects.filter(pk=job.pk).update(next_run_at=timezone.now() - timedelta(minutes=1))
    paused = EtlJob.objects.create(
        workspace=job.workspace, owner=user, name="paused", connection=job.connection, source_table="orders",
        destination_dataset=job.destination_dataset, destination_table="paused", schedule="*/5 * * * *",
        status=EtlJob.Status.PAUSED, next_run_at=timezone.now() - timedelta(minutes=1))
    enqueued = lifecycle.enqueue_due_jobs()
    assert [r.job_id for r in enqueued] == [job.pk] and enqueued[0].trigger == JobRun.Trigger.SCHEDULE
    job.refresh_from_db()
    assert job.next_run_at > timezone.now()
    assert lifecycle.enqueue_due_jobs() == []  # not due any more, and its run is still queued
    assert not paused.runs.exists()


def test_a_run_whose_worker_stopped_is_failed_so_the_job_can_run_again(job, settings) -> None:
    stale = records.run_enqueue_record(job=job)
    beat = timezone.now() - timedelta(seconds=settings.ETL_HEARTBEAT_TIMEOUT + 5)
    JobRun.objects.filter(pk=stale.pk).update(status=JobRun.Status.RUNNING, heartbeat_at=beat)
    assert records.runs_fail_stale() == 1
    stale.refresh_from_db()
    assert stale.status == JobRun.Status.FAILED and "The worker stopped responding" in stale.error
    assert records.run_enqueue_record(job=job).status == JobRun.Status.QUEUED
