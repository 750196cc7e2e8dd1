"""Edit and Reconnect pages: what the report says about the table, and which fields each strategy shows."""

from __future__ import annotations

import pytest
from django.urls import reverse

from ml_platform import services
from ml_platform.etl.types import BigQueryField
from ml_platform.models import EtlJob

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

HX = {"HX-Request": "true"}


@pytest.fixture
def source(pg_source):
    pg_source.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2), note text)",
        "INSERT INTO orders SELECT g, g * 2.5, 'n' || g FROM generate_series(1, 20) g",
    )
    return pg_source


@pytest.fixture
def job(user, source, bq_settings, bq, bq_dataset):
    connection = services.connection_create(owner=user, name="pg main", **source.as_connection_fields())
    bq.create_table(bq_dataset, "orders", [BigQueryField("id", "INT64"), BigQueryField("amount", "NUMERIC")])
    bq.query(f"INSERT INTO `{bq_dataset}.orders` (id, amount) VALUES (7, 1.5), (12, 2.5)")
    return EtlJob.objects.create(
        workspace=connection.workspace, owner=user, name="orders", connection=connection, source_schema="public",
        source_table="orders", selected_columns=["id", "amount"], column_mapping={"id": "id", "amount": "amount"},
        destination_dataset=bq_dataset, destination_table="orders", load_strategy="incremental",
        cursor_column="id", watermark={"type": "int", "value": "12"},
    )


def test_it_names_the_cursor_in_the_reconnect_pages_table_state(alice_client, job) -> None:
    for headers in ({}, HX):
        html = alice_client.get(reverse("job_reconnect", args=[job.pk]), headers=headers).content.decode()
        assert "<code>MAX(id)</code> = <strong>12</strong>" in html
        assert "MAX()" not in html
