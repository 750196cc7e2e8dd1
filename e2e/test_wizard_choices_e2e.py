"""Step-4 choices survive a reload; Replace into a table with rows needs its explicit confirmation (issue 16)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from e2e.helpers import choose_existing_table, htmx_idle, set_strategy
from e2e.test_wizard_e2e import shop, through_step_three
from ml_platform.etl.types import BigQueryField
from ml_platform.models import EtlJob

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

shop = shop  # the wizard e2e fixture: PostgreSQL public.orders (50 rows) and its connection "shop_pg"


@pytest.mark.django_db(transaction=True)
def test_it_keeps_step_four_choices_on_reload_and_confirms_replace(page: Page, live_server, shop, bq, bq_dataset,
                                                                   bq_settings) -> None:
    bq.create_table(bq_dataset, "orders_bq", [BigQueryField("id", "INT64"), BigQueryField("amount", "NUMERIC"),
                                              BigQueryField("note", "STRING"), BigQueryField("code", "STRING")])
    bq.query(f"INSERT INTO `{bq_dataset}.orders_bq` (id, amount) VALUES (1, 1.25), (2, 2.5)")
    base = live_server.url
    through_step_three(page, base)
    choose_existing_table(page, bq_dataset, "orders_bq")
    expect(page.get_by_label("Append", exact=True)).to_be_checked()
    set_strategy(page, "Incremental", cursor="id")
    expect(page.get_by_test_id("table-state")).to_contain_text("Resumes after id 2")

    page.reload()  # before Next: the choices were saved as they were made
    expect(page.get_by_test_id("step-title")).to_contain_text("Destination & load strategy")
    expect(page.get_by_label("Use existing BigQuery table")).to_be_checked()
    expect(page.get_by_label("Existing table")).to_have_value("orders_bq")
    expect(page.get_by_label("Incremental", exact=True)).to_be_checked()
    expect(page.get_by_label("Cursor column (incremental)")).to_have_value("id")
    expect(page.get_by_test_id("table-state")).to_contain_text("Resumes after id 2")

    # Replace deletes the table's 2 rows: Next refuses until that is confirmed in so many words.
    set_strategy(page, "Replace")
    expect(page.get_by_label("Cursor column (incremental)")).to_have_count(0)
    confirm = page.get_by_label(f"Delete the 2 rows this job loads into {bq_dataset}.orders_bq")
    expect(confirm).not_to_be_checked()
    page.locator("#wizard-next").click()
    expect(page.locator("#id_confirm_replace_errors")).to_contain_text("Replace deletes the 2 rows")
    expect(page.get_by_test_id("step-title")).to_contain_text("Destination & load strategy")
    page.get_by_label(f"Delete the 2 rows this job loads into {bq_dataset}.orders_bq").check()
    htmx_idle(page)
    page.locator("#wizard-next").click()
    expect(page.get_by_test_id("step-title")).to_contain_text("Schedule")
    expect(page.locator("#cron-preview")).to_contain_text("Manual")  # shown before any change
    page.get_by_label("Job name").fill("replacer")
    page.get_by_role("button", name="Create job").click()
    expect(page).to_have_url(f"{base}/jobs/")
    expect(page.locator("#jobs-table")).to_contain_text("replacer")
    assert EtlJob.objects.get(name="replacer").load_strategy == "replace"
