"""Edit and Reconnect pages: what the report says about the table, and which fields each strategy shows."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.urls import reverse

from ml_platform.etl.types import BigQueryField
from ml_platform.models import EtlJob
from ml_platform.services import connections
from tests.fixtures import HX

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


class _Tree(HTMLParser):
    """Each form control's name with the attributes of the elements around it (innermost first)."""

    VOID = {"input", "br", "img", "meta", "link", "hr", "option"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[dict] = []
        self.controls: list[tuple[dict, list[dict]]] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        attributes = {"tag": tag, **{k: v or "" for k, v in attrs}}
        if tag in ("input", "select"):
            self.controls.append((attributes, list(reversed(self.stack))))
        if tag not in self.VOID:
            self.stack.append(attributes)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i]["tag"] == tag:
                del self.stack[i:]
                return


def controls(html: str) -> list[tuple[dict, list[dict]]]:
    tree = _Tree()
    tree.feed(html)
    return tree.controls


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
        asker = next((a for a in [control, *around] if a.get("hx-post") == url), None)
        assert asker is not None, f"a change of {name} asks for no new report"
        # One queue for every refresh of the page: a late answer never overwrites a newer one.
        assert asker["hx-sync"] == "#edit-form:replace" and asker["hx-include"] == "#edit-form", name

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
