"""A run the scheduler starts shows up, moves and ends on an open jobs list and job page, without a reload."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from e2e.conftest import REPORT_VIOLATIONS
from e2e.helpers import htmx_idle, job_row, login
from ml_platform.models import EtlJob
from ml_platform.services import connections, jobs
from ml_platform.services.sources import get_columns
from tests.plugins.harness import ROOT, django_subprocess_env

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROWS = 500_000
MOVING = re.compile(r"Running… [1-9][\d,]* / [\d,]+ rows")


@pytest.fixture
def small_chunks(monkeypatch):
    """The worker (a subprocess, started after this) reports progress every 50,000 rows and waits 1 s at each
    report (a test-only setting): the run takes some 10 s however fast the machine is."""
    monkeypatch.setenv("ETL_CHUNK_ROWS", "50000")
    monkeypatch.setenv("ETL_TEST_PROGRESS_DELAY_MS", "1000")


@pytest.fixture
def due_job(user, pg_source, bq_settings, bq_dataset) -> EtlJob:
    pg_source.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, note text)",
        f"INSERT INTO orders SELECT g, g * 0.5, md5(g::text) FROM generate_series(1, {ROWS}) g",
        "ANALYZE",
    )
    conn = connections.connection_create(owner=user, name="pg orders", **pg_source.as_connection_fields())
    job = jobs.job_create(
        owner=user, name="orders", connection=conn, source_schema="public", source_table="orders",
        source_columns=get_columns(conn, "public", "orders"), destination_dataset=bq_dataset,
        destination_table="orders", use_existing_table=False, load_strategy="replace", schedule="0 3 * * *",
    )
    return job


def test_it_shows_a_run_the_scheduler_starts_on_the_open_list_and_job_page(
        page: Page, live_server, small_chunks, due_job, task_worker, settings) -> None:
    # Pages poll every 15 s when idle and 2 s while a run is active; 3 s and 1 s here, so that a run which
    # takes a few seconds on a quiet machine is still caught moving, on both pages.
    settings.JOBS_POLL_IDLE_S, settings.JOBS_POLL_ACTIVE_S = 3, 1
    login(page, live_server.url)
    detail = page.context.new_page()
    violations: list[str] = []
    detail.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    detail.add_init_script(REPORT_VIOLATIONS)
    detail.goto(f"{live_server.url}/jobs/{due_job.pk}/")
    row = job_row(page, "orders")
    live = detail.locator("#job-live")
    expect(row.get_by_test_id("last-run")).to_have_text("never")
    expect(live.locator("#runs-table")).to_contain_text("No runs yet.")
    for p in (page, detail):
        htmx_idle(p)
        p.evaluate("window.notReloaded = true")  # gone if the page were reloaded

    EtlJob.objects.filter(pk=due_job.pk).update(next_run_at=timezone.now() - timedelta(minutes=1))
    subprocess.run([sys.executable, "manage.py", "etl_scheduler", "--once"], cwd=ROOT, env=django_subprocess_env(),
                   check=True, capture_output=True, timeout=60)

    # It appears and moves on both pages…
    expect(row.get_by_test_id("last-run")).to_contain_text(MOVING, timeout=120_000)
    expect(row.get_by_role("progressbar")).to_be_visible()
    expect(row.get_by_role("button", name="Run Now")).to_be_disabled()
    expect(live.get_by_test_id("last-run")).to_contain_text(MOVING)
    expect(live.get_by_role("progressbar")).to_be_visible()
    # …and ends on both.
    expect(row.get_by_test_id("last-run-status")).to_have_text("Succeeded", timeout=180_000)
    expect(row.get_by_test_id("last-run")).to_contain_text(f"{ROWS:,} rows")
    expect(row.get_by_role("button", name="Run Now")).to_be_enabled()
    expect(live.get_by_test_id("last-run-status")).to_have_text("Succeeded")
    expect(live.locator("#runs-table tbody tr").first).to_contain_text(re.compile(r"#1\s*Succeeded\s*Schedule"))
    expect(live.locator("#runs-table tbody tr").first).to_contain_text(f"{ROWS:,}")
    expect(live.get_by_role("button", name="Run Now")).to_be_enabled()
    for p in (page, detail):
        assert p.evaluate("window.notReloaded === true")
    assert not violations, violations
