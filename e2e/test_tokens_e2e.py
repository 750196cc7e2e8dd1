"""API tokens in the browser: create one, copy it (under the CSP), use it; it is never shown again."""

import re

import pytest
from playwright.sync_api import Page, expect

from e2e.helpers import login

pytestmark = pytest.mark.e2e


@pytest.mark.django_db(transaction=True)
def test_it_creates_copies_uses_and_revokes_a_token(page: Page, live_server, user) -> None:
    base = live_server.url
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    login(page, base)
    page.get_by_role("link", name="API tokens").click()
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    page.get_by_label("Token name").fill("ci")
    page.get_by_role("button", name="Create token").click()
    field = page.get_by_test_id("new-token")
    expect(field).to_have_value(re.compile(r"^etl_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$"))
    plaintext = field.input_value()
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == plaintext

    api = page.context.request
    answer = api.get(f"{base}/api/etl/jobs/", headers={"Authorization": f"Bearer {plaintext}"})
    assert answer.status == 200 and answer.json()["status"] == "ok"

    page.goto(f"{base}/workspace/tokens/")
    expect(page.locator("#tokens")).to_contain_text(plaintext[:16] + "…")
    assert plaintext not in page.content()
    page.get_by_role("button", name="Revoke ci").click()
    expect(page.locator("#tokens")).to_contain_text("revoked")
    answer = api.get(f"{base}/api/etl/jobs/", headers={"Authorization": f"Bearer {plaintext}"})
    assert answer.status == 401
