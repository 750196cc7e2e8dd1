"""Exactly-once through the app (issue 15): Edit, Reconnect and the run's heartbeat, with the real worker path."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from ml_platform.models import EtlJob, JobRun
from ml_platform.runs import lifecycle
from ml_platform.services import connections, jobs
from ml_platform.services.sources import get_columns

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _emulator(bq_settings):
    return bq_settings


def count(bq, dataset: str, table: str) -> dict:
    return bq.query(f"SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS k FROM `{dataset}.{table}`")[0]


def test_it_loads_new_rows_after_edit_changes_the_cursor_column(user, pg_source, bq, bq_dataset) -> None:
    pg_source.execute("CREATE TABLE orders (id bigint PRIMARY KEY, order_no bigint, note text)",
                      "INSERT INTO orders SELECT 1000000 + g, g, 'n' || g FROM generate_series(1, 100) g")
    conn = connections.connection_create(owner=user, name="pg", **pg_source.as_connection_fields())
    job = jobs.job_create(owner=user, name="orders", connection=conn, source_schema="public",
                          source_table="orders", source_columns=get_columns(conn, "public", "orders"),
                          destination_dataset=bq_dataset, destination_table="orders", use_existing_table=False,
                          load_strategy="incremental", cursor_column="id")
    assert lifecycle.run_sync(job=job).status == JobRun.Status.SUCCEEDED
    pg_source.execute("INSERT INTO orders SELECT 2000000 + g, g, 'new' || g FROM generate_series(101, 130) g")
    # The cursor becomes order_no; the stored watermark (1,000,100, an id) is meaningless for it.
    EtlJob.objects.filter(pk=job.pk).update(cursor_column="order_no")

    run = lifecycle.run_sync(job=EtlJob.objects.get(pk=job.pk))

    assert run.status == JobRun.Status.SUCCEEDED and run.rows_loaded == 30
    assert count(bq, bq_dataset, "orders") == {"n": 130, "k": 130}


def test_it_respells_the_merge_key_and_cursor_on_reconnect(user, pg_source, bq, bq_dataset) -> None:
    pg_source.execute("CREATE TABLE orders (id bigint PRIMARY KEY, note text, updated bigint)",
                      "INSERT INTO orders SELECT g, 'n' || g, g FROM generate_series(1, 50) g",
                      'CREATE TABLE orders_v2 ("ID" bigint PRIMARY KEY, "NOTE" text, "UPDATED" bigint)',
                      "INSERT INTO orders_v2 SELECT g, 'v2 ' || g, 100 + g FROM generate_series(1, 60) g")
    conn = connections.connection_create(owner=user, name="pg", **pg_source.as_connection_fields())
    job = jobs.job_create(owner=user, name="orders", connection=conn, source_schema="public",
                          source_table="orders", source_columns=get_columns(conn, "public", "orders"),
                          destination_dataset=bq_dataset, destination_table="orders", use_existing_table=False,
                          load_strategy="merge", merge_key=["id"], cursor_column="updated")
    assert lifecycle.run_sync(job=job).status == JobRun.Status.SUCCEEDED

    job = jobs.job_reconnect(job=job, connection=conn, source_schema="public", source_table="orders_v2",
                             source_columns=get_columns(conn, "public", "orders_v2"))
    run = lifecycle.run_sync(job=job)

    assert (job.merge_key, job.cursor_column) == (["ID"], "UPDATED")
    assert run.status == JobRun.Status.SUCCEEDED, run.error
    assert count(bq, bq_dataset, "orders") == {"n": 60, "k": 60}


def test_it_beats_from_a_background_thread_while_the_run_reports_nothing(user, pg_source, bq_dataset) -> None:
    conn = connections.connection_create(owner=user, name="pg", **pg_source.as_connection_fields())
    pg_source.execute("CREATE TABLE orders (id bigint PRIMARY KEY)")
    job = jobs.job_create(owner=user, name="orders", connection=conn, source_schema="public",
                          source_table="orders", source_columns=get_columns(conn, "public", "orders"),
                          destination_dataset=bq_dataset, destination_table="orders", use_existing_table=False,
                          load_strategy="replace")
    stale = timezone.now() - timedelta(hours=1)
    run = JobRun.objects.create(job=job, status=JobRun.Status.RUNNING, heartbeat_at=stale)

    with lifecycle.HeartbeatThread(run.pk, every=0.05):
        time.sleep(0.5)  # a slow source query: no progress report at all

    run.refresh_from_db()
    assert run.heartbeat_at > timezone.now() - timedelta(seconds=5)
