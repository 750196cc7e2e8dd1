"""The schema check with its I/O (`schema_check.check`): the verdict, the table's state, the other jobs.

Real PostgreSQL source and the emulator's tables; the pure engine has its own tests in tests/etl/.
"""

from __future__ import annotations

import pytest
from django.http import Http404

from ml_platform.etl.types import BigQueryField
from ml_platform.models import EtlJob
from ml_platform.services import compat, schema_check, sources, workspaces

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def table(bq, bq_settings, bq_dataset) -> str:
    """dataset.orders (id INT64, amount NUMERIC) holding ids 7 and 12."""
    bq.create_table(bq_dataset, "orders", [BigQueryField("id", "INT64"), BigQueryField("amount", "NUMERIC")])
    bq.query(f"INSERT INTO `{bq_dataset}.orders` (id, amount) VALUES (7, 1.5), (12, 2.5)")
    return bq_dataset


def source_columns(connection, *names: str):
    return [c for c in sources.get_columns(connection, "public", "orders") if c.name in names]


def report(connection, dataset: str, *names: str, workspace=None, exclude_job=None, **choices):
    return schema_check.check(workspace=workspace or connection.workspace,
                              source_columns=source_columns(connection, *names),
                              destination=schema_check.Destination(dataset, "orders"),
                              choices=schema_check.Choices(**choices), dialect="postgresql",
                              exclude_job=exclude_job, creating=False)


def test_it_reports_a_matching_table_and_where_an_incremental_run_resumes(connection, table) -> None:
    ctx = report(connection, table, "id", "amount", load_strategy="incremental", cursor_column="id")
    assert ctx.report.compatible and not ctx.report.errors
    assert ctx.state.row_count == 2 and ctx.state.max_cursor == 12
    assert ctx.state.sentence == ("Resumes after id 12: only source rows with id > 12 are loaded, so no row is "
                                  "loaded twice.")


def test_it_says_what_replace_deletes_and_offers_a_missing_column_for_adding(connection, table) -> None:
    ctx = report(connection, table, "id", "amount", "note", load_strategy="replace")
    assert ctx.state.sentence == "Each run replaces all 2 rows atomically with the current source rows."
    assert compat.new_columns(ctx.report) == ["note"]
    assert compat.check_new_columns(ctx.report, ["note"]) == []
    assert compat.check_new_columns(ctx.report, []) == [
        "Selected column(s) 'note' are not in the table: tick them under \"Add these columns to the table\", "
        "or unselect them."]
    assert compat.check_new_columns(ctx.report, ["note", "amount"]) == [
        "Cannot add 'amount': not a selected source column missing from the table."]


def test_it_refuses_a_source_column_the_table_cannot_hold(connection, source, bq, table) -> None:
    source.execute("ALTER TABLE orders ALTER COLUMN amount TYPE jsonb USING to_jsonb(amount)")
    ctx = report(connection, table, "id", "amount", load_strategy="append")
    assert not ctx.report.compatible
    assert len(ctx.report.errors) == 1 and ctx.report.errors[0].startswith("Column 'amount': JSON"), ctx.report.errors


def test_it_names_the_other_jobs_loading_into_the_table_but_not_the_job_itself(user, connection, table) -> None:
    job = EtlJob.objects.create(
        workspace=connection.workspace, owner=user, name="orders eu", connection=connection, source_schema="public",
        source_table="orders", selected_columns=["id"], column_mapping={"id": "id"}, destination_dataset=table,
        destination_table="orders", load_strategy="append", source_tag="eu")
    ctx = report(connection, table, "id", load_strategy="append")
    assert [j.name for j in ctx.other_jobs] == ["orders eu"] and ctx.other_tags == ["eu"]
    itself = report(connection, table, "id", load_strategy="append", exclude_job=job)
    assert itself.other_jobs == [] and itself.other_tags == [] and itself.foreign_jobs == 0


def test_it_is_a_404_for_another_workspaces_dataset(connection, other_user, table) -> None:
    mallory = workspaces.personal_workspace(other_user)
    with pytest.raises(Http404):
        report(connection, table, "id", workspace=mallory, load_strategy="append")


def test_it_reports_an_existing_partitioned_tables_options_and_reads_its_rows_through_a_partition_filter(
    connection, bq, bq_settings, bq_dataset
) -> None:
    from google.cloud import bigquery

    table = bigquery.Table(f"{bq.client.project}.{bq_dataset}.orders", schema=[
        bigquery.SchemaField("id", "INT64"), bigquery.SchemaField("created_at", "TIMESTAMP")])
    table.time_partitioning = bigquery.TimePartitioning(type_="DAY", field="created_at", expiration_ms=7 * 86_400_000)
    bq.client.create_table(table)
    bq.query(f"INSERT INTO `{bq_dataset}.orders` (id, created_at) VALUES (7, CURRENT_TIMESTAMP())")
    ctx = report(connection, bq_dataset, "id", "created_at", load_strategy="incremental", cursor_column="id")
    assert ctx.report.compatible and ctx.state.max_cursor == 7  # the count/MAX query, with its partition filter, still sees every row
    assert any(w.startswith("Partitioning DAY(created_at): Partition expiration is 7 days") for w in ctx.report.warnings)
    assert any("more than 4,000 partitions" in w for w in ctx.report.warnings)


def test_a_new_partitioned_table_is_warned_about_the_4000_partitions_limit(connection, bq_settings, bq_dataset) -> None:
    ctx = schema_check.check(workspace=connection.workspace, source_columns=source_columns(connection, "id", "created_at"),
                             destination=schema_check.Destination(bq_dataset, "fresh", existing=False),
                             choices=schema_check.Choices(load_strategy="append", partition_field="created_at"),
                             dialect="postgresql")
    assert ctx.report.compatible
    assert any("with DAY partitioning that is about 11 years of data by created_at" in w for w in ctx.report.warnings)
