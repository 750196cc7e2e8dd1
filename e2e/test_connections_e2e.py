import pytest
from playwright.sync_api import Page, expect

from tests.plugins.harness import SECRET

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture
def logged_in(page: Page, live_server, user) -> Page:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password", exact=True).fill("alice-password-123")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="ETL jobs")).to_be_visible()
    return page


@pytest.mark.django_db(transaction=True)
def test_it_creates_a_postgresql_connection_and_tests_it(logged_in: Page, live_server, pg_source, pg_role) -> None:
    page = logged_in
    page.get_by_role("link", name="Connections").click()
    page.get_by_role("link", name="New connection").click()
    page.get_by_label("Name", exact=True).fill("production_db")
    page.get_by_label("Engine").select_option("postgresql")
    page.get_by_label("Host").fill(pg_source.host)
    page.get_by_label("Port").fill(str(pg_source.port))
    page.get_by_label("Database (file path for SQLite)").fill(pg_source.database)
    page.get_by_label("Username").fill(pg_role)
    page.get_by_label("Password", exact=True).fill("not-the-password")
    page.get_by_role("button", name="Test connection").click()
    error = page.get_by_test_id("test-error")
    expect(error).to_contain_text("Authentication failed")
    expect(page).to_have_url(f"{live_server.url}/connections/new/")  # the error shows in place
    page.get_by_label("Password", exact=True).fill(SECRET)
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_test_id("test-ok")).to_contain_text("PostgreSQL")
    page.get_by_role("button", name="Save").click()
    row = page.locator("#connections-table tr", has_text="production_db")
    expect(row).to_be_visible()
    row.get_by_role("button", name="Test connection production_db").click()
    expect(row.get_by_test_id("test-ok")).to_contain_text("ms round trip")
    assert SECRET not in page.content()
