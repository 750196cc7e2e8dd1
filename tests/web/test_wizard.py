"""The wizard's views: every step as a fragment (HX-Request) and as a full page, and every invalid input."""

from __future__ import annotations

import pytest
from django.urls import reverse

from ml_platform.etl.types import BigQueryField
from ml_platform.models import EtlJob
from ml_platform.services import connections
from tests.fixtures import HX
from wizard.models import WizardDraft

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def step(n: int) -> str:
    return reverse("wizard:step", args=[n])


@pytest.fixture
def source(pg_source):
    pg_source.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, note text, "
        "code text, created_at timestamptz NOT NULL DEFAULT now())",
        "INSERT INTO orders (id, amount, note, code) SELECT g, g * 1.5, CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || g END, "
        "CASE WHEN g = 7 THEN 'abc' ELSE g::text END FROM generate_series(1, 40) g",
        "CREATE TABLE customers (id int PRIMARY KEY, name text)",
        "ANALYZE",
    )
    return pg_source


@pytest.fixture
def connection(user, source):
    return connections.connection_create(owner=user, name="shop_pg", **source.as_connection_fields())


@pytest.fixture
def wiz(alice_client, connection, bq_settings, bq_dataset):
    """A client whose draft has completed steps 1-3 (all columns of public.orders)."""
    assert alice_client.post(step(1), {"connection": connection.pk}).status_code == 302
    assert alice_client.post(step(2), {"table": "public.orders"}).status_code == 302
    assert alice_client.post(step(3), {"columns": ["id", "amount", "note", "code", "created_at"]}).status_code == 302
    alice_client.dataset = bq_dataset
    return alice_client


def test_it_renders_step_one_as_a_full_page_or_a_fragment(alice_client, connection) -> None:
    full = alice_client.get(step(1))
    assert full.status_code == 200
    assert b"<html" in full.content and b"shop_pg" in full.content
    fragment = alice_client.get(step(1), headers=HX)
    assert fragment.status_code == 200
    assert b"<html" not in fragment.content and b"shop_pg" in fragment.content
    assert fragment["HX-Push-Url"] == step(1)


def test_it_refuses_another_users_connection(client, other_user, connection) -> None:
    client.force_login(other_user)
    response = client.post(step(1), {"connection": connection.pk}, headers=HX)
    assert response.status_code == 400
    assert b"Select a valid choice" in response.content


def test_it_sends_a_skipped_step_back_to_the_first_incomplete_one(alice_client, connection) -> None:
    response = alice_client.get(step(3))
    assert response.status_code == 302 and response["Location"] == step(1)
    response = alice_client.get(step(4), headers=HX)
    assert response["HX-Redirect"] == step(1)


def test_it_lists_and_filters_source_tables_with_row_estimates(alice_client, connection) -> None:
    alice_client.post(step(1), {"connection": connection.pk})
    page = alice_client.get(step(2)).content.decode()
    assert "public.orders" in page and "public.customers" in page
    filtered = alice_client.get(step(2) + "?filter=1&q=ord", headers=HX).content.decode()
    assert "public.orders" in filtered and "public.customers" not in filtered
    bad = alice_client.post(step(2), {"table": "public.nope; drop table orders"}, headers=HX)
    assert bad.status_code == 400 and b"Choose one of the tables listed" in bad.content


def test_it_previews_rows_and_maps_types_on_step_three(alice_client, connection) -> None:
    alice_client.post(step(1), {"connection": connection.pk})
    alice_client.post(step(2), {"table": "public.orders"})
    page = alice_client.get(step(3), headers=HX).content.decode()
    assert "numeric(12,2)" in page and "NUMERIC" in page
    assert "timestamp with time zone" in page and "TIMESTAMP" in page
    assert "PK" in page
    none = alice_client.post(step(3), {}, headers=HX)
    assert none.status_code == 400 and b"Select at least one column" in none.content


def test_it_rejects_invalid_and_taken_new_table_names(wiz, bq) -> None:
    bad = wiz.post(step(4), {"destination_mode": "new", "dataset": wiz.dataset, "new_table": "bad name!",
                             "load_strategy": "replace"}, headers=HX)
    assert bad.status_code == 400
    bq.create_table(wiz.dataset, "taken", [BigQueryField("id", "INT64")])
    taken = wiz.post(step(4), {"destination_mode": "new", "dataset": wiz.dataset, "new_table": "taken",
                               "load_strategy": "replace"}, headers=HX)
    assert taken.status_code == 400 and b"already exists" in taken.content
    no_cursor = wiz.post(step(4), {"destination_mode": "new", "dataset": wiz.dataset, "new_table": "fresh",
                                   "load_strategy": "incremental"}, headers=HX)
    assert no_cursor.status_code == 400 and b"cursor column" in no_cursor.content


def test_it_creates_a_job_and_its_new_table(wiz, bq) -> None:
    ok = wiz.post(step(4), {"destination_mode": "new", "dataset": wiz.dataset, "new_table": "orders",
                            "load_strategy": "incremental", "cursor_column": "id"}, headers=HX)
    assert ok.status_code == 200 and ok["HX-Push-Url"] == step(5)
    bad_cron = wiz.post(step(5), {"name": "orders job", "preset": "custom", "cron": "every day", "timezone": "UTC"},
                        headers=HX)
    assert bad_cron.status_code == 400 and b"not a valid cron expression" in bad_cron.content
    done = wiz.post(step(5), {"name": "orders job", "preset": "custom", "cron": "*/30 * * * *",
                              "timezone": "Europe/Berlin"}, headers=HX)
    assert done.status_code == 200 and done["HX-Redirect"] == reverse("jobs")
    job = EtlJob.objects.get(name="orders job")
    assert job.destination_mode == "new" and job.load_strategy == "incremental" and job.next_run_at is not None
    schema = bq.get_table_schema(wiz.dataset, "orders")
    assert [f.name for f in schema.fields] == ["id", "amount", "note", "code", "created_at"]
    assert WizardDraft.objects.get(owner=job.owner).data == {}


def test_it_reports_compatibility_of_an_existing_table(wiz, bq) -> None:
    bq.create_table(wiz.dataset, "orders_bq", [
        BigQueryField("id", "INT64"), BigQueryField("amount", "NUMERIC"), BigQueryField("note", "STRING"),
        BigQueryField("code", "INT64"), BigQueryField("created_at", "TIMESTAMP"),
    ])
    form = {"destination_mode": "existing", "dataset": wiz.dataset, "existing_table": "orders_bq",
            "load_strategy": "append"}
    report = wiz.post(reverse("wizard:report"), form, headers=HX).content.decode()
    assert "Incompatible" in report and "needs_validation" in report and "Validate data" in report
    assert 'id="wizard-next" hx-swap-oob="true"' in report and "disabled" in report
    refused = wiz.post(step(4), form, headers=HX)
    assert refused.status_code == 400 and b"not compatible" in refused.content
    validated = wiz.post(reverse("wizard:report"), {**form, "validate": "1"}, headers=HX).content.decode()
    assert "abc" in validated  # the failing example value is shown
    assert "Incompatible" in validated


def test_it_accepts_a_compatible_existing_table_without_creating_one(wiz, bq) -> None:
    bq.create_table(wiz.dataset, "orders_bq", [
        BigQueryField("id", "INT64"), BigQueryField("amount", "NUMERIC"), BigQueryField("note", "STRING"),
        BigQueryField("code", "STRING"),
    ])
    bq.query(f"INSERT INTO `{wiz.dataset}.orders_bq` (id, amount) VALUES (10, 1.5), (25, 2.5)")
    form = {"destination_mode": "existing", "dataset": wiz.dataset, "existing_table": "orders_bq",
            "load_strategy": "incremental", "cursor_column": "id"}
    report = wiz.post(reverse("wizard:report"), form, headers=HX).content.decode()
    assert "Compatible" in report and "created_at" in report  # offered as a column to add
    assert "Resumes after id 25" in report
    unticked = wiz.post(step(4), form, headers=HX)  # created_at is selected but not in the table
    assert unticked.status_code == 400 and b"are not in the table: tick them" in unticked.content
    ok = wiz.post(step(4), {**form, "add_columns": ["created_at"]}, headers=HX)
    assert ok.status_code == 200, ok.content.decode()[:2000]
    wiz.post(step(5), {"name": "into existing", "preset": "manual", "timezone": "UTC"}, headers=HX)
    job = EtlJob.objects.get(name="into existing")
    assert job.destination_mode == "existing"
    assert "created_at" in [f.name for f in bq.get_table_schema(wiz.dataset, "orders_bq").fields]
    assert bq.row_count(wiz.dataset, "orders_bq") == 2


def test_it_requires_a_distinct_tag_when_another_job_loads_the_table(wiz, bq, user, connection) -> None:
    bq.create_table(wiz.dataset, "shared", [BigQueryField("id", "INT64"), BigQueryField("amount", "NUMERIC"),
                                            BigQueryField("note", "STRING"), BigQueryField("code", "STRING"),
                                            BigQueryField("created_at", "TIMESTAMP"),
                                            BigQueryField("_source_tag", "STRING")])
    EtlJob.objects.create(workspace=connection.workspace, owner=user, name="eu job", connection=connection, source_table="orders",
                          destination_dataset=wiz.dataset, destination_table="shared", source_tag="eu")
    form = {"destination_mode": "existing", "dataset": wiz.dataset, "existing_table": "shared",
            "load_strategy": "append"}
    report = wiz.post(reverse("wizard:report"), form, headers=HX).content.decode()
    assert "eu job" in report
    missing = wiz.post(step(4), form, headers=HX)
    assert missing.status_code == 400 and b"give this source its own tag" in missing.content
    same = wiz.post(step(4), {**form, "source_tag": "eu"}, headers=HX)
    assert same.status_code == 400 and b"already used" in same.content
    assert wiz.post(step(4), {**form, "source_tag": "us"}, headers=HX).status_code == 200


def test_it_previews_the_next_cron_runs(alice_client) -> None:
    ok = alice_client.get(reverse("wizard:cron_preview"), {"preset": "custom", "cron": "0 6 * * *",
                                                           "timezone": "Europe/Berlin"})
    assert ok.content.decode().count("<li>") == 5
    bad = alice_client.get(reverse("wizard:cron_preview"), {"preset": "custom", "cron": "61 * * * *"})
    assert b"not a valid cron expression" in bad.content


def test_it_refuses_a_cron_that_never_runs_in_step_five(wiz) -> None:
    ok = wiz.post(step(4), {"destination_mode": "new", "dataset": wiz.dataset, "new_table": "orders",
                            "load_strategy": "replace"}, headers=HX)
    assert ok.status_code == 200
    feb31 = wiz.post(step(5), {"name": "orders job", "preset": "custom", "cron": "0 0 31 2 *", "timezone": "UTC"},
                     headers=HX)
    assert feb31.status_code == 400 and b"never runs" in feb31.content
    assert not EtlJob.objects.filter(name="orders job").exists()
    preview = wiz.get(reverse("wizard:cron_preview"), {"preset": "custom", "cron": "0 0 30 2 *"})
    assert preview.status_code == 200 and b"never runs" in preview.content


RESET = "/etl/new/reset/"


def test_it_never_changes_the_draft_on_a_get(alice_client, connection) -> None:
    assert alice_client.post(step(1), {"connection": connection.pk}).status_code == 302
    # A cross-site link or <img> must not wipe the user's work in progress.
    landed = alice_client.get(reverse("wizard:start"), {"fresh": "1"})
    assert landed.status_code == 302 and landed["Location"] == step(2)
    assert WizardDraft.objects.get(owner=connection.owner).data["connection_id"] == connection.pk
    assert alice_client.get(RESET).status_code == 405


def test_it_starts_over_on_a_post_with_a_csrf_token(user, connection) -> None:
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    page = browser.get(step(1))
    token = page.cookies["csrftoken"].value
    assert browser.post(step(1), {"connection": connection.pk, "csrfmiddlewaretoken": token}).status_code == 302
    forged = browser.post(RESET)  # what a cross-site form can send: the cookie, never the token
    assert forged.status_code == 403
    assert WizardDraft.objects.get(owner=user).data["connection_id"] == connection.pk
    page = browser.get(step(2))
    assert f'action="{RESET}"'.encode() in page.content
    reset = browser.post(RESET, {"csrfmiddlewaretoken": token})
    assert reset.status_code == 302 and reset["Location"] == step(1)
    assert WizardDraft.objects.get(owner=user).data == {}


def test_it_scans_a_new_tables_columns_that_need_it_when_next_is_pressed(alice_client, user, sqlite_source, bq,
                                                                          bq_settings, bq_dataset) -> None:
    """A SQLite BOOLEAN may hold any integer: a new BOOL column is created only once the source holds 0/1 only."""
    sqlite_source.execute("CREATE TABLE flags (id INTEGER PRIMARY KEY, is_vip BOOLEAN NOT NULL)",
                          "INSERT INTO flags VALUES (1, 0), (2, 1), (3, 2)")
    conn = connections.connection_create(owner=user, name="flags", **sqlite_source.as_connection_fields())
    assert alice_client.post(step(1), {"connection": conn.pk}).status_code == 302
    assert alice_client.post(step(2), {"table": "flags"}).status_code == 302
    assert alice_client.post(step(3), {"columns": ["id", "is_vip"]}).status_code == 302
    choice = {"destination_mode": "new", "dataset": bq_dataset, "new_table": "flags", "load_strategy": "replace"}
    refused = alice_client.post(step(4), choice, headers=HX)
    assert refused.status_code == 400 and "Column &#x27;is_vip&#x27;" in refused.content.decode()
    assert "1 of 3 checked values cannot be converted to BOOL, e.g. &#x27;2&#x27;" in refused.content.decode()
    sqlite_source.execute("UPDATE flags SET is_vip = 1 WHERE id = 3")
    assert alice_client.post(step(4), choice, headers=HX).status_code == 200
    done = alice_client.post(step(5), {"name": "flags", "preset": "manual", "timezone": "UTC"}, headers=HX)
    assert done.status_code == 200 and done["HX-Redirect"] == reverse("jobs")
    schema = bq.get_table_schema(bq_dataset, "flags")
    assert [(f.name, f.field_type) for f in schema.fields] == [("id", "INT64"), ("is_vip", "BOOL")]
