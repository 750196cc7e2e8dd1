"""Every job action in view at 1280×800 and 1024×768, with long names and a long run error (issue 16).

Screenshots of each page at both sizes go to test-results/screenshots/ (git-ignored) for a human to look at.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from e2e.helpers import login
from ml_platform.models import EtlJob, JobRun
from ml_platform.services import connections
from tests.plugins.harness import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SIZES = [pytest.param((1280, 800), id="1280x800"), pytest.param((1024, 768), id="1024x768")]
SHOTS = ROOT / "test-results" / "screenshots"
ACTIONS = ("Run Now", "Edit", "Reconnect", "Delete")

LONG_NAME = "nightly_copy_of_the_customer_orders_table_" * 4 + "end"
LONG_ERROR = ("IO: [libpq] Failed to connect: connection to server at \"db.internal.example.com\" (10.0.0.12), "
              "port 5432 failed: FATAL: password authentication failed for user \"etl_reader_with_a_long_name\" "
              + "x" * 600 + " (and a long tail without any space)")


@pytest.fixture
def crowded(user, pg_source, bq_dataset):
    """Jobs as they look after a while: a long name, a long error, a run whose worker died, a paused job."""
    pg_source.execute("CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2), note text)",
                      "INSERT INTO orders SELECT g, g, 'n' || g FROM generate_series(1, 50) g")
    conn = connections.connection_create(owner=user, name="production database with a rather long name",
                                         **pg_source.as_connection_fields())

    def job(name: str, **extra) -> EtlJob:
        return EtlJob.objects.create(
            workspace=conn.workspace, owner=user, name=name, connection=conn, source_schema="public",
            source_table="orders", selected_columns=["id", "amount"], column_mapping={"id": "id", "amount": "amount"},
            destination_dataset=bq_dataset, destination_table=name[:60], load_strategy="incremental",
            cursor_column="id", schedule="*/5 * * * *", schedule_timezone="America/Argentina/ComodRivadavia",
            next_run_at=timezone.now() + timedelta(hours=1), **extra)

    now = timezone.now()
    failed = job(LONG_NAME, source_tag="eu_west_region_customers_2024")
    JobRun.objects.create(job=failed, status=JobRun.Status.FAILED, started_at=now, finished_at=now, error=LONG_ERROR)
    stuck = job("orders_stuck")
    JobRun.objects.create(job=stuck, status=JobRun.Status.RUNNING, started_at=now - timedelta(minutes=9),
                          heartbeat_at=now - timedelta(minutes=1), progress_rows=1133985, progress_total=1999169)
    job("paused_job", status=EtlJob.Status.PAUSED)
    return failed


def shot(page: Page, name: str, size: tuple[int, int]) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}-{size[0]}x{size[1]}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0


def assert_in_view(page: Page, scope: str, size: tuple[int, int]) -> None:
    """No horizontal scroll, and each action's box inside the viewport width, clickable where it is."""
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), \
        f"the page scrolls sideways: {page.evaluate('document.documentElement.scrollWidth')} px > {size[0]} px"
    actions = page.locator(f"{scope} .job-actions").locator("button, a")
    assert actions.count() >= 5
    for i in range(actions.count()):
        action = actions.nth(i)
        box = action.bounding_box()
        assert box is not None, f"{action.inner_text()} has no box"
        assert 0 <= box["x"] and box["x"] + box["width"] <= size[0], f"{action.inner_text()} is off-screen: {box}"
        if action.is_enabled():  # (Run Now of a job whose run is still active is disabled: in view is enough)
            action.click(trial=True)  # visible, enabled, stable, and not covered by anything else


@pytest.mark.parametrize("size", SIZES)
def test_it_keeps_every_job_action_in_view_on_the_jobs_list(page: Page, live_server, crowded, size) -> None:
    page.set_viewport_size({"width": size[0], "height": size[1]})
    login(page, live_server.url)
    expect(page.locator("#jobs-table tbody tr")).to_have_count(3)
    expect(page.get_by_test_id("run-unresponsive")).to_contain_text("worker not responding since")
    for name in (LONG_NAME, "orders_stuck", "paused_job"):
        row = page.locator(f'#jobs-table tr[data-job="{name}"]')
        for label in ACTIONS:
            expect(row.get_by_role("button", name=label).or_(row.get_by_role("link", name=label))).to_be_visible()
        expect(row.get_by_role("button", name="Pause").or_(row.get_by_role("button", name="Resume"))).to_be_visible()
    expect(page.locator(".run-error")).to_have_attribute("title", LONG_ERROR)  # clipped, the full text on hover
    assert_in_view(page, "#jobs-table", size)
    shot(page, "jobs-list", size)


@pytest.mark.parametrize("size", SIZES)
def test_it_keeps_every_job_action_in_view_on_the_job_page(page: Page, live_server, crowded, size) -> None:
    page.set_viewport_size({"width": size[0], "height": size[1]})
    login(page, live_server.url)
    page.goto(f"{live_server.url}/jobs/{crowded.pk}/")
    expect(page.locator("#runs-table")).to_contain_text("Failed")
    assert_in_view(page, "#job-live", size)
    shot(page, "job-page", size)


@pytest.mark.parametrize("size", SIZES)
def test_it_saves_a_screenshot_of_each_page(page: Page, live_server, crowded, bq_settings, bq_dataset,
                                            size) -> None:
    """The other pages, for a person to review (their layout belongs to their own tests)."""
    page.set_viewport_size({"width": size[0], "height": size[1]})
    login(page, live_server.url)
    base = live_server.url
    for name, path in (("connections", "/connections/"), ("members", "/workspace/members/"),
                       ("api-tokens", "/workspace/tokens/")):
        page.goto(base + path)
        expect(page.locator("main")).to_be_visible()
        shot(page, name, size)
    page.goto(f"{base}/etl/new/")
    with page.expect_navigation():
        page.get_by_role("button", name="Start over").click()
    expect(page.get_by_test_id("step-title")).to_contain_text("Select connection")
    shot(page, "wizard-1", size)
    page.get_by_role("radio", name="production database with a rather long name").check()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_test_id("step-title")).to_contain_text("Choose source table")
    shot(page, "wizard-2", size)
    page.get_by_label("public.orders").check()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_test_id("step-title")).to_contain_text("Preview & select columns")
    shot(page, "wizard-3", size)
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_test_id("step-title")).to_contain_text("Destination & load strategy")
    page.get_by_label("Dataset").select_option(bq_dataset)
    page.get_by_label("New table name").fill("orders_copy")
    shot(page, "wizard-4", size)
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_test_id("step-title")).to_contain_text("Schedule")
    shot(page, "wizard-5", size)
