"""The Edit page in the browser: the report and the strategy's fields follow every choice that changes them."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from e2e.helpers import login
from ml_platform.services import connections, jobs
from ml_platform.services.sources import get_columns

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def small_job(user, pg_source, bq, bq_settings, bq_dataset):
    pg_source.execute("CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, note text)",
                      "INSERT INTO orders SELECT g, g * 0.5, 'n' || g FROM generate_series(1, 50) g")
    conn = connections.connection_create(owner=user, name="pg orders", **pg_source.as_connection_fields())
    job = jobs.job_create(
        owner=user, name="orders", connection=conn, source_schema="public", source_table="orders",
        source_columns=get_columns(conn, "public", "orders"), destination_dataset=bq_dataset,
        destination_table="orders", use_existing_table=False, load_strategy="incremental", cursor_column="id",
    )
    bq.query(f"INSERT INTO `{bq_dataset}.orders` (id, amount, note) VALUES (1, 0.5, 'a'), (2, 1.0, 'b')")
    return job


def test_it_refreshes_the_edit_report_when_the_strategy_or_merge_key_changes(page: Page, live_server,
                                                                            small_job) -> None:
    login(page, live_server.url)
    page.goto(f"{live_server.url}/jobs/{small_job.pk}/edit/")
    state = page.get_by_test_id("table-state")
    expect(state).to_contain_text("Resumes after id 2")

    page.get_by_label("Replace", exact=True).check()
    expect(state).to_contain_text("Each run replaces all 2 rows")
    expect(page.get_by_label("Cursor column")).to_have_count(0)  # replace reads everything: no cursor
    expect(page.get_by_label("Merge key columns")).to_have_count(0)

    page.get_by_label("Merge (upsert)").check()
    expect(page.get_by_label("Merge key columns")).to_be_visible()
    expect(page.get_by_label("Cursor column (optional)")).to_have_value("id")  # the choice came back
    page.get_by_label("Merge key columns").select_option("note")
    expect(state).to_contain_text("Each run updates rows matching on note")

    page.get_by_label("Incremental").check()
    expect(state).to_contain_text("Resumes after id 2")
    expect(page.get_by_label("Cursor column")).to_have_value("id")
    expect(page.get_by_label("Merge key columns")).to_have_count(0)
