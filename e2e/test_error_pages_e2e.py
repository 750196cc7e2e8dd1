"""Error page and favicon in the browser: styled, under the CSP, and the icon's default request answered."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from e2e.helpers import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_it_shows_the_styled_404_and_serves_the_favicon(page: Page, live_server, user) -> None:
    login(page, live_server.url)
    response = page.goto(f"{live_server.url}/jobs/999999/")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    expect(page.get_by_role("link", name="Go to your jobs")).to_be_visible()
    icon = page.request.get(f"{live_server.url}/favicon.ico")
    assert icon.ok and icon.headers["content-type"].startswith("image/svg+xml")
