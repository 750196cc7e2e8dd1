"""The destination's partitioning, read with the table, and what the report says it means for the job.

The emulator keeps time partitioning (type, column, expiration) and clustering, so those are
read back from real emulator tables; it drops `require_partition_filter` and range partitioning,
so those rules are checked on a TableSchema with the pure engine, and the reading of
`require_partition_filter` on the client's own Table parsed from a BigQuery API resource.
"""

from __future__ import annotations

import pytest
from google.cloud import bigquery

from ml_platform.etl.bigquery import BigQuery
from ml_platform.etl.bq_schema import table_schema_from
from ml_platform.etl.compatibility import CompatibilityOptions, check_compatibility
from ml_platform.etl.types import BigQueryField, CanonicalType, Family, SourceColumn, TableSchema

DAY_MS = 86_400_000
SOURCE = [
    SourceColumn("id", "bigint", CanonicalType(Family.INTEGER), nullable=False, primary_key=True),
    SourceColumn("sold_at", "timestamptz", CanonicalType(Family.TIMESTAMP, tz=True)),
    SourceColumn("region", "text", CanonicalType(Family.STRING)),
]
FIELDS = (BigQueryField("id", "INT64"), BigQueryField("sold_at", "TIMESTAMP"), BigQueryField("region", "STRING"))


def partition_row(report):
    rows = [c for c in report.columns if c.source_type == "table partitioning"]
    assert len(rows) == 1, report.columns
    return rows[0]


def create(bq: BigQuery, dataset: str, name: str, partitioning: bigquery.TimePartitioning, clustering=None) -> None:
    table = bigquery.Table(f"{bq.client.project}.{dataset}.{name}",
                           schema=[bigquery.SchemaField(f.name, f.field_type) for f in FIELDS])
    table.time_partitioning = partitioning
    table.clustering_fields = clustering
    bq.client.create_table(table)


@pytest.mark.integration
def test_it_reads_partitioning_expiration_and_clustering_with_the_table(bq: BigQuery, bq_dataset: str) -> None:
    create(bq, bq_dataset, "sales", bigquery.TimePartitioning(type_="DAY", field="sold_at", expiration_ms=30 * DAY_MS),
           clustering=["region"])
    schema = bq.get_table_schema(bq_dataset, "sales")
    assert schema.partitioning == "DAY(sold_at)"
    assert (schema.partition_type, schema.partition_column) == ("DAY", "sold_at")
    assert schema.partition_expiration_ms == 30 * DAY_MS
    assert schema.clustering == ("region",)
    assert schema.require_partition_filter is False  # the emulator does not keep the option


@pytest.mark.integration
def test_it_warns_that_expired_partitions_lose_rows_and_that_one_run_may_touch_4000_day_partitions(
    bq: BigQuery, bq_dataset: str
) -> None:
    create(bq, bq_dataset, "sales", bigquery.TimePartitioning(type_="DAY", field="sold_at", expiration_ms=30 * DAY_MS))
    report = check_compatibility(SOURCE, bq.get_table_schema(bq_dataset, "sales"),
                                 CompatibilityOptions(load_strategy="append"))
    assert report.compatible and not report.errors
    row = partition_row(report)
    assert row.verdict == "warning" and row.destination_type == "DAY(sold_at)"
    expiry = [w for w in report.warnings if "Partition expiration is 30 days" in w]
    assert expiry and "older than 30 days" in expiry[0] and "Verify will count them missing" in expiry[0]
    limit = [w for w in report.warnings if "more than 4,000 partitions fails" in w]
    assert limit and "about 11 years of data by sold_at" in limit[0]
    assert "ETL_CHECKPOINT_ROWS" in row.fix and "coarser partitioning" in row.fix


@pytest.mark.integration
def test_it_says_an_hourly_partitioned_table_takes_about_166_days_per_run(bq: BigQuery, bq_dataset: str) -> None:
    create(bq, bq_dataset, "hourly", bigquery.TimePartitioning(type_="HOUR", field="sold_at"))
    report = check_compatibility(SOURCE, bq.get_table_schema(bq_dataset, "hourly"),
                                 CompatibilityOptions(load_strategy="append"))
    assert any("about 166 days of data by sold_at" in w for w in report.warnings)
    assert not any("expiration" in w for w in report.warnings)  # none set, none said


def test_an_unpartitioned_table_gets_no_partitioning_row() -> None:
    report = check_compatibility(SOURCE, TableSchema("d", "t", FIELDS), CompatibilityOptions())
    assert not [c for c in report.columns if c.source_type == "table partitioning"]
    assert not any("partition" in w.lower() for w in report.warnings)


@pytest.mark.parametrize("strategy,options", [
    ("replace", {}), ("incremental", {"cursor_column": "id"}), ("merge", {"merge_key": ("id",)}),
])
def test_a_table_requiring_a_partition_filter_is_ok_because_every_runner_statement_filters_on_its_column(
    strategy, options
) -> None:
    table = TableSchema("d", "t", FIELDS, partitioning="DAY(sold_at)", require_partition_filter=True)
    report = check_compatibility(SOURCE, table, CompatibilityOptions(load_strategy=strategy, **options))
    assert report.compatible and not report.errors
    assert ("The table requires a partition filter: every DELETE, MAX, MERGE and lookup of existing rows the "
            "runner issues filters on sold_at") in partition_row(report).message


def test_a_range_partitioning_the_runner_cannot_filter_is_an_error_with_the_fix() -> None:
    # Only DATE/DATETIME/TIMESTAMP/INT64 partitioning columns can carry bqsql's always-true filter.
    table = TableSchema("d", "t", FIELDS, partitioning="RANGE(region)", require_partition_filter=True)
    report = check_compatibility(SOURCE, table, CompatibilityOptions(load_strategy="merge", merge_key=("id",)))
    assert not report.compatible
    row = partition_row(report)
    assert row.verdict == "error"
    assert any(e.startswith("Partitioning RANGE(region): Every merge run filters") for e in report.errors)
    assert "Use the append strategy" in row.fix and "require_partition_filter = false" in row.fix
    # Append only INSERTs: nothing to filter, so the same table is fine for it.
    appended = check_compatibility(SOURCE, table, CompatibilityOptions(load_strategy="append"))
    assert appended.compatible and partition_row(appended).verdict == "warning"
    assert "an append run only INSERTs, which needs none" in partition_row(appended).message


def test_an_expiring_ingestion_time_table_says_rows_vanish_after_their_load() -> None:
    table = TableSchema("d", "t", FIELDS, partitioning="DAY(_PARTITIONTIME)", partition_expiration_ms=DAY_MS // 2)
    report = check_compatibility(SOURCE, table, CompatibilityOptions(load_strategy="append"))
    expiry = next(w for w in report.warnings if "Partition expiration" in w)
    assert "Partition expiration is 0.5 days: every row is deleted by BigQuery 0.5 days after the run" in expiry
    assert "in the partition of its load time" in partition_row(report).message


@pytest.mark.parametrize("resource", [
    {"requirePartitionFilter": True, "timePartitioning": {"type": "DAY", "field": "sold_at"}},
    {"timePartitioning": {"type": "DAY", "field": "sold_at", "requirePartitionFilter": True}},  # the older place
])
def test_it_reads_require_partition_filter_from_the_table_resource(resource) -> None:
    table = bigquery.Table.from_api_repr({
        "tableReference": {"projectId": "p", "datasetId": "d", "tableId": "t"},
        "schema": {"fields": [{"name": f.name, "type": f.field_type} for f in FIELDS]}, **resource,
    })
    schema = table_schema_from(table)
    assert schema.require_partition_filter is True and schema.partitioning == "DAY(sold_at)"


def test_it_reads_range_partitioning_from_the_table_resource() -> None:
    table = bigquery.Table.from_api_repr({
        "tableReference": {"projectId": "p", "datasetId": "d", "tableId": "t"},
        "schema": {"fields": [{"name": "id", "type": "INT64"}]},
        "rangePartitioning": {"field": "id", "range": {"start": "0", "end": "100", "interval": "10"}},
    })
    schema = table_schema_from(table)
    assert (schema.partitioning, schema.partition_type, schema.require_partition_filter) == ("RANGE(id)", "RANGE", False)
