"""The API's Swagger UI at /api/docs: it renders under the CSP and its "Try it out" works with the session."""

import pytest
from playwright.sync_api import Page, expect

from e2e.helpers import login
from ml_platform.models import EtlJob
from ml_platform.services import connections

pytestmark = pytest.mark.e2e


@pytest.mark.django_db(transaction=True)
def test_it_documents_the_api_and_pauses_a_job_from_the_docs(page: Page, live_server, user, tmp_path) -> None:
    conn = connections.connection_create(owner=user, name="lite", engine="sqlite", database=str(tmp_path / "x.db"))
    job = EtlJob.objects.create(workspace=conn.workspace, owner=user, name="docs job", connection=conn,
                                source_table="t", destination_dataset="d", destination_table="t")
    base = live_server.url
    login(page, base)
    page.goto(f"{base}/api/docs")
    expect(page.get_by_role("heading", name="ETL to BigQuery API")).to_be_visible()
    pause = page.locator("#operations-jobs-ml_platform_api_job_actions_pause_job")
    expect(pause).to_be_visible()
    pause.locator(".opblock-summary").click()
    pause.get_by_role("button", name="Try it out").click()
    pause.get_by_placeholder("job_id").fill(str(job.pk))
    pause.get_by_role("button", name="Execute").click()
    expect(pause.locator(".live-responses-table tbody td.response-col_status")).to_contain_text("200")
    job.refresh_from_db()
    assert job.status == EtlJob.Status.PAUSED  # the session's write carried the page's CSRF token
