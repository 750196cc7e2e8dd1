"""Verify and Repair through the browser, with the real worker: from the jobs page to the picture, then Repair."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from e2e.helpers import job_row, login
from ml_platform.models import JobRun
from ml_platform.runs.lifecycle import run_sync
from ml_platform.services import connections, jobs
from ml_platform.services.sources import get_columns

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def eu_job(user, pg_source, bq_settings, bq_dataset):
    pg_source.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2), note text, doc jsonb)",
        "INSERT INTO orders SELECT g, g * 0.5, md5(g::text), jsonb_build_object('g', g) "
        "FROM generate_series(1, 5000) g",
    )
    conn = connections.connection_create(owner=user, name="pg orders", **pg_source.as_connection_fields())
    job = jobs.job_create(
        owner=user, name="orders eu", connection=conn, source_schema="public", source_table="orders",
        source_columns=get_columns(conn, "public", "orders"), destination_dataset=bq_dataset,
        destination_table="orders", use_existing_table=False, load_strategy="replace", source_tag="eu",
    )
    assert run_sync(job=job).status == JobRun.Status.SUCCEEDED
    return job


def test_verify_from_the_jobs_page_shows_the_picture_and_repair_fixes_it(page: Page, live_server, eu_job, bq,
                                                                        bq_dataset, task_worker) -> None:
    table = f"`{bq_dataset}`.`orders`"
    bq.query(f"DELETE FROM {table} WHERE id IN (10, 11, 12, 4000)")
    bq.query(f"UPDATE {table} SET note = 'tampered' WHERE id = 2500")

    login(page, live_server.url)
    job_row(page, "orders eu").get_by_role("button", name="Verify").click()
    panel = page.get_by_test_id("verification")
    result = panel.get_by_test_id("verification-result")
    expect(result).to_have_attribute("data-in-sync", "false", timeout=120_000)
    expect(result).to_contain_text("5,000 source rows")
    expect(panel.get_by_test_id("count-missing")).to_have_text("4")
    expect(panel.get_by_test_id("count-changed")).to_have_text("1")
    expect(panel.get_by_test_id("count-extra")).to_have_text("0")
    expect(panel.get_by_test_id("missing-keys")).to_have_text("10, 11, 12, 4000")
    strip = panel.get_by_test_id("verification-strip")
    expect(strip).to_be_visible()
    assert strip.locator('rect[fill="#dc3545"]').count() == 3  # 10-12, 2500 and 4000 lie in three ranges
    assert strip.locator('rect[fill="#198754"]').count() > 10
    expect(page.locator('#runs-table [data-kind="verify"]')).to_have_count(1)

    panel.get_by_role("button", name="Repair 5 rows").click()
    expect(page.get_by_test_id("verification-result")).to_have_attribute("data-in-sync", "true", timeout=120_000)
    expect(page.get_by_test_id("verification-result")).to_contain_text("5 rows reloaded")
    expect(page.get_by_test_id("verification-strip").locator('rect[fill="#dc3545"]')).to_have_count(0)
    expect(page.locator('#runs-table [data-kind="repair"]')).to_have_count(1)
    rows = bq.query(f"SELECT COUNT(*) AS n, COUNTIF(note = 'tampered') AS t FROM {table}")[0]
    assert (rows["n"], rows["t"]) == (5000, 0)
