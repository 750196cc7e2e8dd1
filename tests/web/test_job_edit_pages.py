"""Edit and Reconnect pages: what the report says about the table, and which fields each strategy shows."""

from __future__ import annotations

import pytest
from django.urls import reverse

from ml_platform.etl.types import BigQueryField
from ml_platform.models import EtlJob
from ml_platform.services import connections
from tests.fixtures import HX
from tests.web.htmx_attrs import askers, controls, request

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

FORM = {"name": "orders", "columns": ["id", "amount"], "cursor_column": "id", "merge_key": ["id"],
        "preset": "manual", "cron": "", "timezone": "UTC"}


@pytest.fixture
def job(user, source, bq_settings, bq, bq_dataset):
    connection = connections.connection_create(owner=user, name="pg main", **source.as_connection_fields())
    bq.create_table(bq_dataset, "orders", [BigQueryField("id", "INT64"), BigQueryField("amount", "NUMERIC")])
    bq.query(f"INSERT INTO `{bq_dataset}.orders` (id, amount) VALUES (7, 1.5), (12, 2.5)")
    return EtlJob.objects.create(
        workspace=connection.workspace, owner=user, name="orders", connection=connection, source_schema="public",
        source_table="orders", selected_columns=["id", "amount"], column_mapping={"id": "id", "amount": "amount"},
        destination_dataset=bq_dataset, destination_table="orders", load_strategy="incremental",
        cursor_column="id", watermark={"type": "int", "value": "12"},
    )


def shown(html: str) -> set[str]:
    return {c["name"] for c, _ in controls(html) if c.get("type") != "hidden" and "name" in c}


def test_it_names_the_cursor_in_the_reconnect_pages_table_state(alice_client, job) -> None:
    for headers in ({}, HX):
        html = alice_client.get(reverse("job_reconnect", args=[job.pk]), headers=headers).content.decode()
        assert "<code>MAX(id)</code> = <strong>12</strong>" in html
        assert "MAX()" not in html


def test_it_refreshes_the_edit_report_when_strategy_cursor_or_merge_key_change(alice_client, job) -> None:
    url = reverse("job_edit", args=[job.pk])
    page = controls(alice_client.get(url).content.decode())
    EtlJob.objects.filter(pk=job.pk).update(load_strategy="merge", merge_key=["id"])
    merge = controls(alice_client.get(url).content.decode())
    for name, found in (("load_strategy", page), ("cursor_column", page), ("columns", page), ("merge_key", merge)):
        control, around = next((c, s) for c, s in found if c.get("name") == name)
        asks = [request(chain) for chain in askers(control, around)]
        assert [(a["verb"], a["url"]) for a in asks] == [("hx-post", url)], f"a change of {name} asks {asks}"
        # One queue for every refresh of the page: a late answer never overwrites a newer one.
        assert asks[0]["hx-sync"] == "#edit-form:replace" and asks[0]["hx-include"] == "#edit-form", name

    # What the refresh answers follows the submitted strategy and key, not the saved ones.
    keyed = alice_client.post(url, {**FORM, "load_strategy": "merge", "merge_key": ["amount"], "refresh": "1"},
                              headers=HX).content.decode()
    assert "updates rows matching on amount" in keyed
    replace = alice_client.post(url, {**FORM, "load_strategy": "replace", "refresh": "strategy"},
                                headers=HX).content.decode()
    assert 'id="edit-report"' in replace and 'hx-swap-oob="true"' in replace
    assert "Each run replaces all 2 rows" in replace


def test_it_shows_only_the_fields_the_chosen_strategy_uses(alice_client, job) -> None:
    url = reverse("job_edit", args=[job.pk])
    page = alice_client.get(url).content.decode()  # the job is incremental
    assert "cursor_column" in shown(page) and "merge_key" not in shown(page)
    expected = {"incremental": {"cursor_column"}, "merge": {"cursor_column", "merge_key"}, "replace": set(),
                "append": set()}
    for strategy, fields in expected.items():
        html = alice_client.post(url, {**FORM, "load_strategy": strategy, "refresh": "strategy"},
                                 headers=HX).content.decode()
        assert shown(html) & {"cursor_column", "merge_key"} == fields, strategy
        # The choices the strategy does not use travel hidden: switching back finds them again.
        hidden = {(c["name"], c["value"]) for c, _ in controls(html) if c.get("type") == "hidden"}
        assert ({("cursor_column", "id")} if "cursor_column" not in fields else set()) | (
            {("merge_key", "id")} if "merge_key" not in fields else set()) <= hidden, strategy


def test_it_saves_an_edit_whose_strategy_hides_the_cursor(alice_client, job) -> None:
    response = alice_client.post(reverse("job_edit", args=[job.pk]), {**FORM, "load_strategy": "append"})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.load_strategy == "append"


def test_it_shows_the_jobs_source_tag_on_edit_and_keeps_it_as_the_api_does(alice_client, job) -> None:
    EtlJob.objects.filter(pk=job.pk).update(source_tag="eu")
    url = reverse("job_edit", args=[job.pk])
    tag = [c for c, _ in controls(alice_client.get(url).content.decode()) if c.get("id") == "id_source_tag"]
    assert tag and tag[0]["value"] == "eu" and "readonly" in tag[0] and "name" not in tag[0]

    response = alice_client.post(url, {**FORM, "load_strategy": "incremental", "name": "orders eu",
                                      "source_tag": "us"})

    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.name, job.source_tag) == ("orders eu", "eu")


def test_it_explains_on_edit_why_an_untagged_job_on_a_shared_table_cannot_be_saved(alice_client, job) -> None:
    EtlJob.objects.create(
        workspace=job.workspace, owner=job.owner, name="orders us", connection=job.connection, source_schema="public",
        source_table="orders", selected_columns=["id", "amount"], column_mapping={"id": "id", "amount": "amount"},
        destination_dataset=job.destination_dataset, destination_table="orders", load_strategy="append",
        source_tag="us",
    )

    response = alice_client.post(reverse("job_edit", args=[job.pk]), {**FORM, "load_strategy": "incremental",
                                                                     "name": "renamed"})

    assert response.status_code == 400
    html = response.content.decode()
    field = html.split('data-testid="source-tag-field"', 1)[1].split("</div>\n  </div>", 1)[0]
    assert "Another job loads into this table" in field and "delete this job and create a new one" in field
    assert "The selected columns are not compatible" not in html  # the columns are fine: the tag is the reason
    job.refresh_from_db()
    assert job.name == "orders"
