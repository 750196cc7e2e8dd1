"""The BigQuery wrapper against the local emulator (no mocks), plus its pure helpers.

The emulator fixtures (`bq_emulator_host`, `bq`, `bq_dataset`) live in the harness plugin
(tests/plugins/harness.py): one emulator per session, a fresh dataset per test.
"""

from __future__ import annotations

import datetime as dt
import decimal
import socket
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.cloud import bigquery

from ml_platform.etl.bigquery import BigQuery
from ml_platform.etl.bq_errors import (
    AlreadyExists,
    BigQueryUnavailable,
    ColumnNotFound,
    DatasetNotFound,
    InvalidIdentifier,
    LoadFailed,
    QueryFailed,
    SchemaChangeRefused,
    TableNotFound,
    UnsupportedByEmulator,
)
from ml_platform.etl.bq_schema import TableInfo, ddl_type, field_from_schema_field, query_parameter, schema_field_for
from ml_platform.etl.bqsql import quote_name, validate_dataset_id, validate_table_id
from ml_platform.etl.types import BigQueryField

integration = pytest.mark.integration


def F(name: str, field_type: str, mode: str = "NULLABLE", **kwargs) -> BigQueryField:
    return BigQueryField(name, field_type, mode, **kwargs)


def write_parquet(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


# --------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize("name", ["sales", "Sales_2024", "_staging", "a" * 1024, "123"])
def test_it_accepts_valid_dataset_and_table_ids(name: str) -> None:
    assert validate_dataset_id(name) == name
    assert validate_table_id(name) == name


@pytest.mark.parametrize("name", ["", "sales-eu", "a.b", "drop`table", "naïve", "a b", "a" * 1025])
def test_it_refuses_invalid_dataset_and_table_ids(name: str) -> None:
    with pytest.raises(InvalidIdentifier, match="not a valid BigQuery dataset name"):
        validate_dataset_id(name)
    with pytest.raises(ValueError, match="not a valid BigQuery table name"):
        validate_table_id(name)


def test_it_quotes_identifiers_and_refuses_what_could_escape_the_quotes() -> None:
    assert quote_name("Order ID") == "`Order ID`"
    for bad in ("a`b", "a\\b", "a\nb", ""):
        with pytest.raises(InvalidIdentifier):
            quote_name(bad)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "BOOL"),
        (7, "INT64"),
        (2**70, "BIGNUMERIC"),
        (1.5, "FLOAT64"),
        (decimal.Decimal("12.25"), "NUMERIC"),
        (decimal.Decimal("1.0123456789012"), "BIGNUMERIC"),
        ("eu", "STRING"),
        (b"\x00", "BYTES"),
        (dt.date(2024, 1, 2), "DATE"),
        (dt.datetime(2024, 1, 2, 3, 4), "DATETIME"),
        (dt.datetime(2024, 1, 2, 3, 4, tzinfo=dt.UTC), "TIMESTAMP"),
        (dt.time(3, 4), "TIME"),
        (None, "STRING"),
    ],
)
def test_it_infers_query_parameter_types(value: object, expected: str) -> None:
    assert query_parameter("p", value).type_ == expected


def test_it_infers_array_parameters_and_passes_typed_ones_through() -> None:
    assert query_parameter("ids", [1, 2, None]).array_type == "INT64"
    assert query_parameter("xs", [1, 2.5]).array_type == "FLOAT64"
    typed = bigquery.ScalarQueryParameter("n", "INT64", None)
    assert query_parameter("n", typed) is typed
    with pytest.raises(QueryFailed):
        query_parameter("bad", object())


def test_it_keeps_numeric_precision_scale_and_nesting_when_converting_schema_fields() -> None:
    # The emulator drops precision/scale on create (see the round-trip test), so the
    # conversion both ways is pinned here on the client's own SchemaField objects.
    api = bigquery.SchemaField(
        "order",
        "RECORD",
        "REPEATED",
        fields=(
            bigquery.SchemaField("amount", "NUMERIC", precision=12, scale=2),
            bigquery.SchemaField("qty", "INTEGER", "REQUIRED"),
        ),
    )

    mirrored = field_from_schema_field(api)

    assert mirrored == F(
        "order",
        "RECORD",
        "REPEATED",
        fields=(F("amount", "NUMERIC", precision=12, scale=2), F("qty", "INT64", "REQUIRED")),
    )
    assert field_from_schema_field(schema_field_for(mirrored)) == mirrored


def test_it_spells_ddl_types() -> None:
    assert ddl_type(F("tags", "STRING", "REPEATED")) == "ARRAY<STRING>"
    assert ddl_type(F("amount", "NUMERIC", precision=12, scale=2)) == "NUMERIC(12, 2)"
    assert ddl_type(F("r", "RECORD", fields=(F("a", "INTEGER"),))) == "STRUCT<`a` INT64>"


def test_it_builds_without_credentials_and_fails_only_when_used(monkeypatch: pytest.MonkeyPatch) -> None:
    bq = BigQuery("some-project", emulator_host="127.0.0.1:1")

    assert bq.emulator_host == "http://127.0.0.1:1"
    assert bq.is_emulator


def test_it_gives_up_quickly_on_an_unreachable_server() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    bq = BigQuery("test-project", emulator_host=f"http://127.0.0.1:{port}", retry_deadline=2, http_timeout=2)

    started = time.monotonic()
    with pytest.raises(BigQueryUnavailable) as excinfo:
        bq.list_datasets()

    assert time.monotonic() - started < 30
    assert excinfo.value.code == 503


# --------------------------------------------------------------------------- datasets


@integration
def test_it_creates_lists_and_deletes_datasets(bq: BigQuery) -> None:
    name = f"ds_{time.time_ns()}"

    bq.create_dataset(name)
    bq.create_dataset(name)  # exists_ok by default: bootstrapping twice is harmless
    assert name in bq.list_datasets()
    with pytest.raises(AlreadyExists):
        bq.create_dataset(name, exists_ok=False)

    bq.delete_dataset(name)
    assert name not in bq.list_datasets()
    bq.delete_dataset(name)  # not_found_ok by default


@integration
def test_it_raises_dataset_not_found_for_an_unknown_dataset(bq: BigQuery) -> None:
    with pytest.raises(DatasetNotFound, match="dataset no_such_dataset does not exist"):
        bq.list_tables("no_such_dataset")
    with pytest.raises(DatasetNotFound):
        bq.query("SELECT * FROM `no_such_dataset.t`")


@integration
def test_it_raises_table_not_found_for_an_unknown_table(bq: BigQuery, bq_dataset: str) -> None:
    with pytest.raises(TableNotFound, match=f"table {bq_dataset}.missing does not exist"):
        bq.get_table_schema(bq_dataset, "missing")
    assert not bq.table_exists(bq_dataset, "missing")
    with pytest.raises(TableNotFound):
        bq.row_count(bq_dataset, "missing")


@integration
def test_it_refuses_invalid_ids_before_calling_bigquery(bq: BigQuery) -> None:
    with pytest.raises(InvalidIdentifier):
        bq.list_tables("bad-name")
    with pytest.raises(InvalidIdentifier):
        bq.row_count("ok", "x` ; DROP TABLE y; --")


# --------------------------------------------------------------------------- tables


@integration
def test_it_lists_tables_with_exact_row_counts_after_a_dml_insert(bq: BigQuery, bq_dataset: str) -> None:
    bq.create_table(bq_dataset, "orders", [F("id", "INT64"), F("amount", "NUMERIC"), F("note", "STRING")])
    bq.create_table(bq_dataset, "empty", [F("id", "INT64")])
    bq.query(f"INSERT INTO `{bq_dataset}.orders` (id, amount) VALUES (1, 1.5), (2, 2.5), (3, NULL)")

    tables = bq.list_tables(bq_dataset)

    # Table metadata (num_rows) is not updated by DML on the emulator: the counts are queried.
    assert tables == [TableInfo("empty", 0, 1), TableInfo("orders", 3, 3)]
    assert bq.row_count(bq_dataset, "orders") == 3
    assert bq.get_table_schema(bq_dataset, "orders", count_rows=True).num_rows == 3


@integration
def test_it_round_trips_a_schema_with_repeated_nested_and_numeric_fields(bq: BigQuery, bq_dataset: str) -> None:
    fields = [
        F("id", "INT64", "REQUIRED"),
        F("amount", "NUMERIC", precision=12, scale=2),
        F("tags", "STRING", "REPEATED"),
        F("address", "RECORD", fields=(F("city", "STRING"), F("zip", "STRING"))),
        F("created_at", "TIMESTAMP"),
        F("payload", "JSON", description="raw event"),
    ]

    bq.create_table(bq_dataset, "events", fields)
    schema = bq.get_table_schema(bq_dataset, "events")

    assert [(f.name, f.field_type, f.mode) for f in schema.fields] == [(f.name, f.field_type, f.mode) for f in fields]
    assert schema.fields[3].fields == (F("city", "STRING"), F("zip", "STRING"))
    assert schema.fields[5].description == "raw event"
    # bqemulator 1.4 does not store NUMERIC(P,S) parameters (real BigQuery does): the
    # conversion itself is pinned by the pure SchemaField test above.
    assert schema.fields[1].precision in (12, None)
    assert (schema.dataset, schema.table) == (bq_dataset, "events")
    assert schema.primary_key is None  # no constraints stored: unknown, not "no key"
    assert schema == bq.get_table_schema(bq_dataset, "events")


@integration
def test_it_creates_a_partitioned_and_clustered_table(bq: BigQuery, bq_dataset: str) -> None:
    bq.create_table(
        bq_dataset,
        "sales",
        [F("id", "INT64"), F("region", "STRING"), F("sold_at", "TIMESTAMP")],
        partition_field="sold_at",
        partition_type="MONTH",
        clustering=("region", "id"),
        description="Loaded by ETL",
    )

    schema = bq.get_table_schema(bq_dataset, "sales")

    assert schema.partitioning == "MONTH(sold_at)"
    assert schema.clustering == ("region", "id")
    assert schema.extra["description"] == "Loaded by ETL"


@integration
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"partition_field": "region"}, "partitioned by a DATE, DATETIME or TIMESTAMP column"),
        ({"partition_field": "nope"}, "not one of the table's columns"),
        ({"partition_field": "sold_at", "partition_type": "WEEK"}, "Partitioning must be one of"),
        ({"clustering": ("a", "b", "c", "d", "e")}, "at most 4 columns"),
        ({"clustering": ("tags",)}, "cannot cluster by"),
    ],
)
def test_it_refuses_partitioning_and_clustering_bigquery_would_reject(
    bq: BigQuery, bq_dataset: str, kwargs: dict, message: str
) -> None:
    fields = [F("id", "INT64"), F("region", "STRING"), F("sold_at", "TIMESTAMP"), F("tags", "STRING", "REPEATED")]

    with pytest.raises(SchemaChangeRefused, match=message):
        bq.create_table(bq_dataset, "sales", fields, **kwargs)


@integration
def test_it_refuses_bignumeric_on_the_emulator_at_once_with_a_clear_error(bq: BigQuery, bq_dataset: str) -> None:
    started = time.monotonic()

    with pytest.raises(UnsupportedByEmulator, match="cannot create BIGNUMERIC columns \\(big\\)"):
        bq.create_table(bq_dataset, "wide", [F("id", "INT64"), F("big", "BIGNUMERIC")])

    assert time.monotonic() - started < 5  # not the emulator's 500 retried until a deadline


@integration
def test_it_refuses_to_create_a_table_that_exists(bq: BigQuery, bq_dataset: str) -> None:
    bq.create_table(bq_dataset, "t", [F("id", "INT64")])

    with pytest.raises(AlreadyExists):
        bq.create_table(bq_dataset, "t", [F("id", "INT64")])
    bq.create_table(bq_dataset, "t", [F("id", "INT64")], exists_ok=True)


@integration
def test_it_drops_tables_and_ignores_missing_ones(bq: BigQuery, bq_dataset: str) -> None:
    bq.create_table(bq_dataset, "t", [F("id", "INT64")])

    bq.drop_table(bq_dataset, "t")
    bq.drop_table(bq_dataset, "t")

    assert not bq.table_exists(bq_dataset, "t")
    with pytest.raises(TableNotFound):
        bq.drop_table(bq_dataset, "t", not_found_ok=False)


# --------------------------------------------------------------------------- schema changes


@integration
def test_it_adds_columns_that_loads_and_dml_can_use(bq: BigQuery, bq_dataset: str, tmp_path: Path) -> None:
    bq.create_table(bq_dataset, "orders", [F("id", "INT64", "REQUIRED"), F("amount", "NUMERIC")])

    schema = bq.add_columns(bq_dataset, "orders", [F("note", "STRING"), F("codes", "INT64", "REPEATED")])

    assert [(f.name, f.mode) for f in schema.fields] == [
        ("id", "REQUIRED"),
        ("amount", "NULLABLE"),
        ("note", "NULLABLE"),
        ("codes", "REPEATED"),
    ]
    bq.query(f"INSERT INTO `{bq_dataset}.orders` (id, note, codes) VALUES (1, 'dml', [1, 2])")
    path = write_parquet(
        tmp_path / "new.parquet",
        pa.table(
            {
                "id": [2],
                "amount": pa.array([decimal.Decimal("1.50")], pa.decimal128(12, 2)),
                "note": ["load"],
                "codes": pa.array([[3]], pa.list_(pa.int64())),
            }
        ),
    )
    assert bq.load_parquet(path, bq_dataset, "orders", "WRITE_APPEND") == 1
    rows = bq.query(f"SELECT id, note, codes FROM `{bq_dataset}.orders` ORDER BY id")
    assert rows == [{"id": 1, "note": "dml", "codes": [1, 2]}, {"id": 2, "note": "load", "codes": [3]}]


@integration
def test_it_skips_columns_that_already_exist_when_adding(bq: BigQuery, bq_dataset: str) -> None:
    bq.create_table(bq_dataset, "t", [F("id", "INT64"), F("note", "STRING")])

    schema = bq.add_columns(bq_dataset, "t", [F("NOTE", "STRING"), F("extra", "DATE")])
    again = bq.add_columns(bq_dataset, "t", [F("extra", "DATE")])

    assert [f.name for f in schema.fields] == ["id", "note", "extra"]
    assert again == schema
    with pytest.raises(SchemaChangeRefused, match="already has a column 'note'"):
        bq.add_columns(bq_dataset, "t", [F("note", "INT64")])


@integration
def test_it_refuses_to_add_a_required_column(bq: BigQuery, bq_dataset: str) -> None:
    bq.create_table(bq_dataset, "t", [F("id", "INT64")])

    with pytest.raises(SchemaChangeRefused, match="only adds NULLABLE or REPEATED columns"):
        bq.add_columns(bq_dataset, "t", [F("region", "STRING", "REQUIRED")])
    assert [f.name for f in bq.get_table_schema(bq_dataset, "t").fields] == ["id"]


@integration
def test_it_relaxes_required_columns_to_nullable(bq: BigQuery, bq_dataset: str) -> None:
    bq.create_table(
        bq_dataset,
        "t",
        [F("id", "INT64", "REQUIRED"), F("email", "STRING", "REQUIRED"), F("tags", "STRING", "REPEATED")],
    )

    schema = bq.relax_columns(bq_dataset, "t", ["EMAIL", "tags"])

    assert [(f.name, f.mode) for f in schema.fields] == [
        ("id", "REQUIRED"),
        ("email", "NULLABLE"),
        ("tags", "REPEATED"),
    ]
    assert bq.get_table_schema(bq_dataset, "t") == schema
    with pytest.raises(ColumnNotFound, match="'nope'"):
        bq.relax_columns(bq_dataset, "t", ["nope"])


# --------------------------------------------------------------------------- loads


@integration
def test_it_loads_parquet_with_a_list_column_in_append_and_truncate(
    bq: BigQuery, bq_dataset: str, tmp_path: Path
) -> None:
    bq.create_table(
        bq_dataset,
        "events",
        [
            F("id", "INT64"),
            F("amount", "NUMERIC"),
            F("tags", "STRING", "REPEATED"),
            F("at", "TIMESTAMP"),
            F("payload", "JSON"),
        ],
    )

    def batch(ids: list[int]) -> pa.Table:
        return pa.table(
            {
                "id": ids,
                "amount": pa.array([decimal.Decimal(f"{i}.25") for i in ids], pa.decimal128(12, 2)),
                "tags": pa.array([["a", "b"] if i % 2 else [] for i in ids], pa.list_(pa.string())),
                "at": pa.array([dt.datetime(2024, 1, i, tzinfo=dt.UTC) for i in ids], pa.timestamp("us", tz="UTC")),
                "payload": [f'{{"n": {i}}}' for i in ids],
            }
        )

    first = write_parquet(tmp_path / "first.parquet", batch([1, 2]))
    second = write_parquet(tmp_path / "second.parquet", batch([3]))

    assert bq.load_parquet(first, bq_dataset, "events", "WRITE_APPEND") == 2
    assert bq.load_parquet(second, bq_dataset, "events", "append") == 1
    assert bq.row_count(bq_dataset, "events") == 3
    rows = bq.query(f"SELECT id, amount, tags, payload FROM `{bq_dataset}.events` WHERE id = 1")
    assert rows == [{"id": 1, "amount": decimal.Decimal("1.25"), "tags": ["a", "b"], "payload": {"n": 1}}]

    assert bq.load_parquet(second, bq_dataset, "events", "WRITE_TRUNCATE") == 1
    assert bq.query(f"SELECT id FROM `{bq_dataset}.events`") == [{"id": 3}]


@integration
def test_it_refuses_a_parquet_file_whose_columns_do_not_match_the_table(
    bq: BigQuery, bq_dataset: str, tmp_path: Path
) -> None:
    bq.create_table(bq_dataset, "t", [F("id", "INT64"), F("name", "STRING")])
    bq.query(f"INSERT INTO `{bq_dataset}.t` (id, name) VALUES (1, 'kept')")
    swapped = write_parquet(tmp_path / "swapped.parquet", pa.table({"name": ["x"], "id": [2]}))

    with pytest.raises(LoadFailed, match="same order"):
        bq.load_parquet(swapped, bq_dataset, "t", "WRITE_TRUNCATE")

    assert bq.row_count(bq_dataset, "t") == 1  # refused before the upload: nothing truncated
    with pytest.raises(LoadFailed, match="Unknown write disposition"):
        bq.load_parquet(swapped, bq_dataset, "t", "WRITE_SOMETIMES")


@integration
def test_it_refuses_to_load_into_a_missing_table(bq: BigQuery, bq_dataset: str, tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "t.parquet", pa.table({"id": [1]}))

    with pytest.raises(TableNotFound):
        bq.load_parquet(path, bq_dataset, "missing", "WRITE_APPEND")


# --------------------------------------------------------------------------- queries


@integration
def test_it_sends_typed_query_parameters(bq: BigQuery) -> None:
    rows = bq.query(
        "SELECT @n + 1 AS n, @s AS s, @b AS b, @x * 2 AS x, @d AS d, @ts AS ts, ARRAY_LENGTH(@ids) AS ids, "
        "@missing IS NULL AS missing",
        {
            "n": 41,
            "s": "eu",
            "b": True,
            "x": decimal.Decimal("1.25"),
            "d": dt.date(2024, 2, 29),
            "ts": dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC),
            "ids": [1, 2, 3],
            "missing": None,
        },
    )

    assert rows == [
        {
            "n": 42,
            "s": "eu",
            "b": True,
            "x": decimal.Decimal("2.5"),
            "d": dt.date(2024, 2, 29),
            "ts": dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC),
            "ids": 3,
            "missing": True,
        }
    ]


@integration
def test_it_returns_max_value_overall_and_for_a_source_tag(bq: BigQuery, bq_dataset: str) -> None:
    bq.create_table(bq_dataset, "t", [F("id", "INT64"), F("updated_at", "TIMESTAMP"), F("_source_tag", "STRING")])
    bq.query(
        f"INSERT INTO `{bq_dataset}.t` (id, updated_at, _source_tag) VALUES "
        "(1, TIMESTAMP '2024-01-01 00:00:00+00', 'eu'), (7, TIMESTAMP '2024-03-01 00:00:00+00', 'us'), "
        "(5, TIMESTAMP '2024-02-01 00:00:00+00', 'eu')"
    )

    assert bq.max_value(bq_dataset, "t", "id") == 7
    assert bq.max_value(bq_dataset, "t", "id", where_tag=("_source_tag", "eu")) == 5
    assert bq.max_value(bq_dataset, "t", "updated_at", where_tag=("_source_tag", "eu")) == dt.datetime(
        2024, 2, 1, tzinfo=dt.UTC
    )
    assert bq.max_value(bq_dataset, "t", "id", where_tag=("_source_tag", "apac")) is None


@integration
def test_it_reports_rows_changed_by_dml(bq: BigQuery, bq_dataset: str) -> None:
    bq.create_table(bq_dataset, "t", [F("id", "INT64")])

    assert bq.execute(f"INSERT INTO `{bq_dataset}.t` (id) VALUES (1), (2), (3)") == 3
    assert bq.execute(f"DELETE FROM `{bq_dataset}.t` WHERE id > @n", {"n": 1}) == 2


@integration
def test_it_reads_repeated_query_results_as_lists(bq: BigQuery, bq_dataset: str) -> None:
    bq.create_table(bq_dataset, "t", [F("id", "INT64"), F("tags", "STRING", "REPEATED")])
    bq.query(f"INSERT INTO `{bq_dataset}.t` (id, tags) VALUES (1, ['a'])")

    assert bq.query(f"SELECT id, tags FROM `{bq_dataset}.t`") == [{"id": 1, "tags": ["a"]}]


@integration
def test_it_turns_a_syntax_error_into_a_query_failure_with_the_reason(bq: BigQuery) -> None:
    with pytest.raises(QueryFailed, match='Unexpected identifier "SELEC"') as excinfo:
        bq.query("SELEC 1")

    assert excinfo.value.code == 400
