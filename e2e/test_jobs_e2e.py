"""Jobs page through the browser with the real worker: Run Now, Pause/Resume, Edit, Reconnect, Delete."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from e2e.helpers import create_connection, job_row, login, run_now_and_wait
from ml_platform.models import EtlJob, JobRun
from ml_platform.services import connections, jobs
from ml_platform.services.sources import get_columns
from tests.plugins.harness import ROOT, django_subprocess_env

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def checksum(bq, dataset: str, table: str) -> tuple:
    row = bq.query(f"SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d, SUM(id) AS s, SUM(amount) AS a "
                   f"FROM `{dataset}.{table}`")[0]
    return row["n"], row["d"], int(row["s"] or 0), row["a"]


def source_checksum(src) -> tuple:
    (n, s, a), = src.query("SELECT COUNT(*), SUM(id), SUM(amount) FROM orders")
    return n, n, int(s or 0), a


@pytest.fixture
def orders_job(user, pg_source, bq_settings, bq_dataset):
    pg_source.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, note text)",
        "INSERT INTO orders SELECT g, g * 0.5, md5(g::text) FROM generate_series(1, 300000) g",
        "ANALYZE",
    )
    conn = connections.connection_create(owner=user, name="pg orders", **pg_source.as_connection_fields())
    job = jobs.job_create(
        owner=user, name="orders", connection=conn, source_schema="public", source_table="orders",
        source_columns=get_columns(conn, "public", "orders"), destination_dataset=bq_dataset,
        destination_table="orders", use_existing_table=False, load_strategy="incremental", cursor_column="id",
        schedule="* * * * *",
    )
    return job


def test_it_shows_progress_then_the_finished_run(page: Page, live_server, orders_job, task_worker, bq,
                                                 pg_source, settings) -> None:
    settings.ETL_CHUNK_ROWS = 20000
    login(page, live_server.url)
    row = job_row(page, "orders")
    row.get_by_role("button", name="Run Now").click()
    expect(row.get_by_role("progressbar")).to_be_visible()  # the row polls while the run is active
    expect(row.get_by_test_id("last-run-status")).to_have_text("Succeeded", timeout=180_000)
    expect(row.get_by_test_id("last-run")).to_contain_text("300,000 rows")
    expect(row.get_by_role("button", name="Run Now")).to_be_enabled()
    assert checksum(bq, orders_job.destination_dataset, "orders") == source_checksum(pg_source)


def scheduler_pass() -> None:
    subprocess.run([sys.executable, "manage.py", "etl_scheduler", "--once"], cwd=ROOT, env=django_subprocess_env(),
                   check=True, capture_output=True, timeout=60)


def test_it_pauses_and_resumes_scheduled_runs(page: Page, live_server, orders_job) -> None:
    login(page, live_server.url)
    row = job_row(page, "orders")
    row.get_by_role("button", name="Pause").click()
    expect(row.get_by_test_id("job-status")).to_have_text("Paused")
    EtlJob.objects.filter(pk=orders_job.pk).update(next_run_at=timezone.now() - timedelta(minutes=5))
    scheduler_pass()
    assert not JobRun.objects.filter(job=orders_job).exists()
    row.get_by_role("button", name="Resume").click()
    expect(row.get_by_test_id("job-status")).to_have_text("Active")
    EtlJob.objects.filter(pk=orders_job.pk).update(next_run_at=timezone.now() - timedelta(minutes=5))
    scheduler_pass()
    run = JobRun.objects.get(job=orders_job)
    assert run.trigger == "schedule"


def test_it_edits_a_job_to_add_a_new_source_column(page: Page, live_server, orders_job, task_worker, bq,
                                                   pg_source) -> None:
    dataset = orders_job.destination_dataset
    login(page, live_server.url)
    run_now_and_wait(page, live_server.url, "orders")
    pg_source.execute("ALTER TABLE orders ADD COLUMN channel text",
                      "INSERT INTO orders SELECT g, g * 0.5, md5(g::text), 'web' FROM generate_series(300001, 300100) g")
    job_row(page, "orders").get_by_role("link", name="Edit").click()
    page.get_by_label("channel", exact=True).check()
    can_alter = page.get_by_test_id("can-alter")
    expect(can_alter).to_contain_text("channel")
    can_alter.get_by_label("channel").check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#jobs-table")).to_be_visible()
    assert "channel" in [f.name for f in bq.get_table_schema(dataset, "orders").fields]
    run_now_and_wait(page, live_server.url, "orders")
    counts = bq.query(f"SELECT COUNTIF(channel = 'web') AS web, COUNTIF(channel IS NULL) AS old "
                      f"FROM `{dataset}.orders`")[0]
    assert counts == {"web": 100, "old": 300000}
    assert checksum(bq, dataset, "orders") == source_checksum(pg_source)


def test_it_reconnects_with_new_credentials_and_continues_the_same_table(
        page: Page, live_server, user, pg_source, pg_password_role, bq, bq_dataset, bq_settings, task_worker) -> None:
    role, password = pg_password_role
    pg_source.execute("CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL)",
                      "INSERT INTO orders SELECT g, g FROM generate_series(1, 5000) g",
                      f"GRANT SELECT ON orders TO {role}")
    conn = connections.connection_create(owner=user, name="db_v1", **{**pg_source.as_connection_fields(),
                                                                      "username": role, "password": password})
    jobs.job_create(owner=user, name="orders", connection=conn, source_schema="public", source_table="orders",
                    source_columns=get_columns(conn, "public", "orders"), destination_dataset=bq_dataset,
                    destination_table="orders", use_existing_table=False, load_strategy="incremental",
                    cursor_column="id")
    login(page, live_server.url)
    run_now_and_wait(page, live_server.url, "orders")
    created = bq.client.get_table(f"{bq_dataset}.orders").created
    pg_source.execute(f"ALTER ROLE {role} PASSWORD 'rotated-{password}'",
                      "INSERT INTO orders SELECT g, g FROM generate_series(5001, 5500) g")
    create_connection(page, live_server.url, name="db_v2", engine="postgresql", host=pg_source.host,
                      port=pg_source.port, database=pg_source.database, username=role,
                      password=f"rotated-{password}")
    page.goto(f"{live_server.url}/jobs/")
    job_row(page, "orders").get_by_role("link", name="Reconnect").click()
    page.get_by_label("New connection").select_option(label="db_v2")
    expect(page.get_by_label("Source table")).to_have_value("public.orders")  # preselected
    expect(page.get_by_test_id("report-verdict")).to_have_text("Compatible")
    page.get_by_role("button", name="Reconnect").click()
    expect(job_row(page, "orders")).to_contain_text("db_v2")
    run_now_and_wait(page, live_server.url, "orders")
    expect(job_row(page, "orders").get_by_test_id("last-run")).to_contain_text("500 rows")
    assert checksum(bq, bq_dataset, "orders") == source_checksum(pg_source)
    assert bq.client.get_table(f"{bq_dataset}.orders").created == created
    runs = list(JobRun.objects.order_by("created_at").values_list("connection_name", flat=True))
    assert runs == ["db_v1", "db_v2"]


def test_it_deletes_the_job_and_keeps_the_table(page: Page, live_server, orders_job, bq) -> None:
    login(page, live_server.url)
    job_row(page, "orders").get_by_role("link", name="Delete").click()
    expect(page.get_by_text("data stay")).to_be_visible()
    page.get_by_role("button", name="Delete job").click()
    expect(page.get_by_test_id("jobs-empty")).to_be_visible()
    assert bq.table_exists(orders_job.destination_dataset, "orders")
