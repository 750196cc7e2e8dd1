"""Steps a user takes, shared by the browser tests."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect


def login(page: Page, base: str, username: str = "alice", password: str = "alice-password-123") -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="ETL jobs")).to_be_visible()


def job_row(page: Page, name: str):
    return page.locator(f'#jobs-table tr[data-job="{name}"]')


def run_now_and_wait(page: Page, base: str, job_name: str, *, timeout_s: float = 180) -> None:
    """Click Run Now on the jobs page, wait for that run to end, and see it in the row."""
    from ml_platform.models import JobRun

    page.goto(f"{base}/jobs/")
    before = JobRun.objects.filter(job__name=job_name).count()
    row = job_row(page, job_name)
    row.get_by_role("button", name="Run Now").click()
    wait_until(lambda: JobRun.objects.filter(job__name=job_name).count() > before, 30, "the run to be queued")
    wait_until(lambda: not JobRun.objects.filter(job__name=job_name, status__in=["queued", "running"]).exists(),
               timeout_s, "the run to finish")
    expect(row.get_by_test_id("last-run-status")).to_be_visible(timeout=10_000)


def create_connection(page: Page, base: str, *, name: str, engine: str, host: str, port: int, database: str,
                      username: str, password: str) -> None:
    page.goto(f"{base}/connections/new/")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Engine").select_option(engine)
    page.get_by_label("Host").fill(host)
    page.get_by_label("Port").fill(str(port))
    page.get_by_label("Database (file path for SQLite)").fill(database)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#connections-table")).to_contain_text(name)


def wizard_to_destination(page: Page, base: str, *, connection: str, table: str,
                          columns: list[str] | None = None) -> None:
    page.goto(f"{base}/etl/new/")
    with page.expect_navigation():
        page.get_by_role("button", name="Start over").click()
    expect(page.get_by_test_id("step-title")).to_contain_text("Select connection")
    page.get_by_role("radio", name=connection).check()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_test_id("step-title")).to_contain_text("Choose source table")
    page.get_by_label(table, exact=True).check()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_test_id("step-title")).to_contain_text("Preview & select columns")
    if columns is not None:
        page.get_by_role("button", name="Select none").click()
        for name in columns:
            page.get_by_label(name, exact=True).check()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_test_id("step-title")).to_contain_text("Destination & load strategy")


def htmx_idle(page: Page) -> None:
    """Wait until htmx has finished its requests and processed swapped content (listeners attached)."""
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"
    )


def choose_existing_table(page: Page, dataset: str, table: str) -> None:
    page.get_by_label("Use existing BigQuery table").check()
    expect(page.get_by_label("Existing table")).to_be_visible()
    htmx_idle(page)
    page.get_by_label("Dataset").select_option(dataset)
    expect(page.get_by_label("Existing table").locator(f'option[value="{table}"]')).to_have_count(1)
    page.get_by_label("Existing table").select_option(table)
    expect(page.get_by_test_id("compatibility-report")).to_be_visible()


SOURCE_TAG = re.compile(r"^Source tag \((optional|required)\)$")


def set_strategy(page: Page, strategy: str, *, cursor: str | None = None, tag: str | None = None) -> None:
    """Choose a strategy; the step re-renders with the fields it uses (the cursor only for Incremental)."""
    page.get_by_label(strategy, exact=True).check()
    expect(page.get_by_label(strategy, exact=True)).to_be_checked()
    htmx_idle(page)  # the re-rendered step is in place and its inputs are wired
    if cursor:
        page.get_by_label("Cursor column (incremental)").select_option(cursor)
    if tag is not None:
        page.get_by_label(SOURCE_TAG).fill(tag)
        page.get_by_label(SOURCE_TAG).press("Tab")


def finish_wizard(page: Page, *, name: str, run_now: bool = False) -> None:
    page.locator("#wizard-next").click()
    expect(page.get_by_test_id("step-title")).to_contain_text("Schedule")
    page.get_by_label("Job name").fill(name)
    if run_now:
        page.get_by_label("Run now after creating the job").check()
    page.get_by_role("button", name="Create job").click()
    expect(page.locator("#jobs-table")).to_contain_text(name)


def wait_until(predicate, timeout_s: float = 120, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")
