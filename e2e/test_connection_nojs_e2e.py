"""Test connection in a browser with JavaScript off: whole pages with the result, never a bare fragment."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.plugins.harness import SECRET

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_it_tests_connections_without_javascript(browser: Browser, live_server, user, pg_source, pg_role) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password", exact=True).fill("alice-password-123")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="ETL jobs")).to_be_visible()

        page.goto(f"{live_server.url}/connections/new/")
        page.get_by_label("Name", exact=True).fill("production_db")
        page.get_by_label("Engine").select_option("postgresql")
        page.get_by_label("Host").fill(pg_source.host)
        page.get_by_label("Port").fill(str(pg_source.port))
        page.get_by_label("Database (file path for SQLite)").fill(pg_source.database)
        page.get_by_label("Username").fill(pg_role)
        page.get_by_label("Password", exact=True).fill(SECRET)
        page.get_by_role("button", name="Test connection").click()
        expect(page.get_by_test_id("test-ok")).to_contain_text("PostgreSQL")
        expect(page.get_by_role("heading", name="New connection")).to_be_visible()  # the page, not a fragment
        expect(page.get_by_label("Name", exact=True)).to_have_value("production_db")
        page.get_by_label("Password", exact=True).fill(SECRET)
        page.get_by_role("button", name="Save").click()

        row = page.locator("#connections-table tr", has_text="production_db")
        row.get_by_role("button", name="Test connection production_db").click()
        expect(page.get_by_role("heading", name="Connections")).to_be_visible()
        expect(page.get_by_role("alert").filter(has_text="works: PostgreSQL")).to_be_visible()
        expect(row).to_contain_text("ok")
        assert SECRET not in page.content()
    finally:
        context.close()
