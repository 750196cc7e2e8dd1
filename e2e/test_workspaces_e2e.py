"""Workspaces in the browser: an admin adds an editor, who repairs the admin's job; the audit trail shows both."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from e2e.helpers import (
    create_connection,
    finish_wizard,
    job_row,
    login,
    run_now_and_wait,
    set_strategy,
    wizard_to_destination,
)
from ml_platform.models import AuditEvent, EtlJob, JobRun, Membership

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def orders(first: int, last: int) -> str:
    return f"INSERT INTO orders SELECT g, g * 2.5, 'note ' || g FROM generate_series({first}, {last}) g"


def test_an_editor_reconnects_the_admins_job_after_a_password_rotation(
        page: Page, live_server, user, django_user_model, pg_source, pg_password_role, bq, bq_dataset, bq_settings,
        task_worker) -> None:
    role, password = pg_password_role
    pg_source.execute("CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2), note text)",
                      orders(1, 100), f"GRANT SELECT ON orders TO {role}")
    django_user_model.objects.create_user(username="bob", password="bob-password-123")
    base = live_server.url

    # alice, admin of her workspace, creates a job on a password-checked PostgreSQL role and loads it.
    login(page, base)
    create_connection(page, base, name="orders_db", engine="postgresql", host=pg_source.host, port=pg_source.port,
                      database=pg_source.database, username=role, password=password)
    wizard_to_destination(page, base, connection="orders_db", table="public.orders")
    page.get_by_label("Dataset").select_option(bq_dataset)
    page.get_by_label("New table name").fill("orders")
    set_strategy(page, "Incremental", cursor="id")
    finish_wizard(page, name="orders")
    run_now_and_wait(page, base, "orders")
    assert JobRun.objects.get(job__name="orders").status == "succeeded"
    assert bq.row_count(bq_dataset, "orders") == 100

    # She adds bob as an editor on the Members page.
    page.get_by_role("link", name="Members").click()
    expect(page.get_by_test_id("my-role")).to_have_text("admin")
    page.get_by_label("User name").fill("bob")
    page.get_by_label("Role", exact=True).select_option("editor")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_text("Added bob as editor.")).to_be_visible()
    expect(page.get_by_role("combobox", name="Role of bob")).to_have_value("editor")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()

    # The DBA rotates the role's password; new rows arrive meanwhile.
    rotated = f"v2-{password}"
    pg_source.execute(f"ALTER ROLE {role} PASSWORD '{rotated}'", orders(101, 150))

    # bob, in alice's workspace as editor, saves the new credentials and reconnects her job.
    login(page, base, "bob", "bob-password-123")
    expect(job_row(page, "orders")).to_be_visible()
    create_connection(page, base, name="orders_db_v2", engine="postgresql", host=pg_source.host,
                      port=pg_source.port, database=pg_source.database, username=role, password=rotated)
    page.get_by_role("link", name="Jobs", exact=True).click()
    job_row(page, "orders").get_by_role("link", name="Reconnect").click()
    page.get_by_label("New connection").select_option(label="orders_db_v2")
    expect(page.get_by_label("Source table")).to_have_value("public.orders")
    expect(page.get_by_test_id("report-verdict")).to_have_text("Compatible")
    page.get_by_role("button", name="Reconnect").click()
    expect(job_row(page, "orders")).to_contain_text("orders_db_v2")

    run_now_and_wait(page, base, "orders")
    last = JobRun.objects.filter(job__name="orders").order_by("-created_at").first()
    assert last.status == "succeeded", last.error
    assert last.rows_loaded == 50 and last.connection_name == "orders_db_v2"  # exactly the new rows
    assert bq.row_count(bq_dataset, "orders") == 150
    assert bq.query(f"SELECT MAX(id) AS m FROM `{bq_dataset}.orders`")[0]["m"] == 150

    # The job page's audit trail: bob's reconnect (connection before → after) and run, alice's creation and run.
    job_row(page, "orders").get_by_role("link", name="orders", exact=True).click()
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    events = page.get_by_test_id("audit-event")
    reconnected = page.locator('[data-testid="audit-event"][data-action="reconnected"]')
    expect(reconnected).to_contain_text("bob")
    expect(reconnected).to_contain_text("connection: orders_db → orders_db_v2")
    created = page.locator('[data-testid="audit-event"][data-action="created"]')
    expect(created).to_contain_text("alice")
    expect(created).to_contain_text("connection: orders_db")
    expect(page.locator('[data-testid="audit-event"][data-action="ran"]')).to_have_count(2)
    # Newest first: bob's run, his reconnect, alice's run, her creation.
    expect(events.locator("td:nth-child(3)")).to_have_text(["ran", "reconnected", "ran", "created"])
    expect(events.locator("td:nth-child(2)")).to_have_text(["bob", "bob", "alice", "alice"])
    expect(page.locator("body")).not_to_contain_text(password)

    # The member-add is in the workspace's trail too (the admin lists it).
    job = EtlJob.objects.get(name="orders")
    added = AuditEvent.objects.get(action="member added", workspace=job.workspace)
    assert added.actor == user and added.changes == {"role": {"before": None, "after": Membership.Role.EDITOR}}
    for e in AuditEvent.objects.all():
        assert password not in str(e.changes) and rotated not in str(e.changes)
