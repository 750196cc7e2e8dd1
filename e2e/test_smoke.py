import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e


@pytest.mark.django_db(transaction=True)
def test_it_logs_in_shows_the_empty_jobs_page_and_logs_out(page: Page, live_server, user) -> None:
    page.goto(f"{live_server.url}/jobs/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/jobs/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-password-123")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="ETL jobs")).to_be_visible()
    expect(page.get_by_test_id("jobs-empty")).to_contain_text("No ETL jobs yet")
    expect(page.get_by_role("link", name="Connections")).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.goto(f"{live_server.url}/jobs/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/jobs/")
