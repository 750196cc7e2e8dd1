"""The wizard, clicked through as a user, against real PostgreSQL and the emulator."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from e2e.helpers import choose_existing_table, login, set_strategy
from ml_platform.etl.types import BigQueryField
from ml_platform.models import EtlJob
from ml_platform.services import connections

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture
def shop(pg_source, user):
    pg_source.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, note text, code text)",
        "INSERT INTO orders SELECT g, g * 1.25, 'n' || g, CASE WHEN g % 10 = 0 THEN 'x' || g ELSE g::text END "
        "FROM generate_series(1, 50) g",
        "ANALYZE",
    )
    return connections.connection_create(owner=user, name="shop_pg", **pg_source.as_connection_fields())


def through_step_three(page: Page, base: str, columns: list[str] | None = None) -> None:
    login(page, base)
    page.get_by_role("link", name="New ETL job").first.click()
    expect(page.get_by_test_id("step-title")).to_contain_text("Select connection")
    page.get_by_role("radio", name="shop_pg").check()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_test_id("step-title")).to_contain_text("Choose source table")
    expect(page).to_have_url(f"{base}/etl/new/step/2/")
    page.get_by_label("public.orders").check()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_test_id("step-title")).to_contain_text("Preview & select columns")
    expect(page.locator("#preview-table")).to_contain_text("25.00")
    if columns is not None:
        page.get_by_role("button", name="Select none").click()
        for name in columns:
            page.get_by_label(name, exact=True).check()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_test_id("step-title")).to_contain_text("Destination & load strategy")


@pytest.mark.django_db(transaction=True)
def test_it_creates_a_job_into_a_new_table(page: Page, live_server, shop, bq, bq_dataset, bq_settings) -> None:
    through_step_three(page, live_server.url)
    expect(page.get_by_label("Create new BigQuery table")).to_be_checked()
    page.get_by_label("Dataset").select_option(bq_dataset)
    page.get_by_label("New table name").fill("orders copy")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#id_new_table_errors")).to_be_visible()  # invalid identifier, shown in place
    page.get_by_label("New table name").fill("orders_copy")
    set_strategy(page, "Incremental", cursor="id")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_test_id("step-title")).to_contain_text("Schedule")
    page.get_by_label("Schedule", exact=True).select_option("custom")
    page.get_by_label("Cron expression").fill("*/20 * * * *")
    expect(page.get_by_test_id("cron-next-runs").locator("li")).to_have_count(5)
    page.get_by_label("Job name").fill("orders to bq")
    page.get_by_role("button", name="Create job").click()
    expect(page.locator("#jobs-table")).to_contain_text("orders to bq")
    assert [f.name for f in bq.get_table_schema(bq_dataset, "orders_copy").fields] == ["id", "amount", "note", "code"]
    job = EtlJob.objects.get(name="orders to bq")
    assert job.schedule == "*/20 * * * *" and job.destination_mode == "new"


@pytest.mark.django_db(transaction=True)
def test_it_uses_a_compatible_existing_table_with_a_live_report(page: Page, live_server, shop, bq, bq_dataset,
                                                                 bq_settings) -> None:
    bq.create_table(bq_dataset, "orders_bq", [BigQueryField("id", "INT64"), BigQueryField("amount", "NUMERIC"),
                                              BigQueryField("note", "STRING"), BigQueryField("code", "STRING")])
    bq.query(f"INSERT INTO `{bq_dataset}.orders_bq` (id, amount) VALUES (1, 1.25), (2, 2.5)")
    through_step_three(page, live_server.url)
    page.evaluate("window.__marker = 'same page'")
    choose_existing_table(page, bq_dataset, "orders_bq")
    report = page.get_by_test_id("compatibility-report")
    expect(report).to_be_visible()
    expect(page.get_by_test_id("report-verdict")).to_have_text("Compatible")
    expect(page.get_by_label("Append", exact=True)).to_be_checked()  # never Replace by default
    set_strategy(page, "Incremental", cursor="id")
    expect(page.get_by_test_id("table-state")).to_contain_text("Resumes after id 2")
    assert page.evaluate("window.__marker") == "same page"  # no page load happened
    expect(page.locator("#wizard-next")).to_be_enabled()
    page.locator("#wizard-next").click()
    page.get_by_label("Job name").fill("into existing")
    page.get_by_role("button", name="Create job").click()
    expect(page.locator("#jobs-table")).to_contain_text("into existing")
    assert EtlJob.objects.get(name="into existing").destination_mode == "existing"
    assert bq.row_count(bq_dataset, "orders_bq") == 2
    assert sorted(t.table_id for t in bq.list_tables(bq_dataset)) == ["orders_bq"]


@pytest.mark.django_db(transaction=True)
def test_it_blocks_next_for_an_incompatible_table(page: Page, live_server, shop, bq, bq_dataset,
                                                  bq_settings) -> None:
    bq.create_table(bq_dataset, "strict", [BigQueryField("id", "INT64"), BigQueryField("amount", "NUMERIC"),
                                           BigQueryField("region", "STRING", "REQUIRED")])
    through_step_three(page, live_server.url)
    choose_existing_table(page, bq_dataset, "strict")
    expect(page.get_by_test_id("report-verdict")).to_have_text("Incompatible")
    expect(page.get_by_test_id("report-errors")).to_contain_text("region")
    expect(page.locator("#wizard-next")).to_be_disabled()


@pytest.mark.django_db(transaction=True)
def test_it_validates_a_narrowing_column_on_demand(page: Page, live_server, shop, bq, bq_dataset,
                                                   bq_settings) -> None:
    bq.create_table(bq_dataset, "typed", [BigQueryField("id", "INT64"), BigQueryField("code", "INT64")])
    through_step_three(page, live_server.url, columns=["id", "code"])
    choose_existing_table(page, bq_dataset, "typed")
    expect(page.locator('#report-columns tr[data-column="code"]')).to_contain_text("Needs data check")
    page.get_by_role("button", name="Validate data").click()
    expect(page.get_by_test_id("report-errors")).to_contain_text("5")  # x10, x20, ... x50 fail the cast
    expect(page.get_by_test_id("report-errors")).to_contain_text("x10")
    expect(page.locator("#wizard-next")).to_be_disabled()


@pytest.mark.django_db(transaction=True)
def test_it_follows_changed_columns_back_and_forth(page: Page, live_server, shop, bq, bq_dataset,
                                                   bq_settings) -> None:
    bq.create_table(bq_dataset, "narrow", [BigQueryField("id", "INT64"), BigQueryField("amount", "NUMERIC")])
    through_step_three(page, live_server.url, columns=["id", "amount"])
    choose_existing_table(page, bq_dataset, "narrow")
    expect(page.get_by_test_id("report-verdict")).to_have_text("Compatible")
    expect(page.get_by_test_id("can-alter")).to_have_count(0)
    page.get_by_role("link", name="Back").click()
    expect(page.get_by_test_id("step-title")).to_contain_text("Preview & select columns")
    page.get_by_label("note", exact=True).check()
    page.get_by_role("button", name="Next").click()
    choose_existing_table(page, bq_dataset, "narrow")
    expect(page.get_by_test_id("can-alter")).to_contain_text("note")
    page.go_back()
    expect(page.get_by_test_id("step-title")).to_contain_text("Preview & select columns")
