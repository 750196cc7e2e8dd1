"""The product's one way to talk to BigQuery: real BigQuery (ADC) and the local emulator through the same code.

Everything that touches BigQuery goes through `BigQuery`, so the product sees one
vocabulary (`TableSchema`, `BigQueryField`, `TableInfo`) and one family of errors
(`BigQueryError` and subclasses, with sentences a user can act on) whichever
backend answers. No Django here: the class is built by `ml_platform.warehouse`.

Choices that hold on both backends (and are required by the emulator, bqemulator 1.4):
- retries and jobs have capped deadlines, so a 5xx fails in seconds instead of the
  client's default ten minutes;
- row counts come from `SELECT COUNT(*)` (table metadata lags behind DML);
- Parquet loads go through a rewindable file with no `size=` (the emulator fails
  multipart uploads) and their columns must match the table's in name *and* order
  (the emulator matches by position, BigQuery by name: checked before uploading);
- schema changes use `update_table` (the emulator ignores the catalog side of
  `ALTER TABLE`), and only the changes BigQuery allows in place are attempted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core.client_options import ClientOptions
from google.api_core.retry import Retry
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from google.cloud.bigquery import client as _bigquery_client
from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY, DEFAULT_RETRY

from ml_platform.etl.bq_errors import (
    BigQueryError,
    BigQueryNotFound,
    ColumnNotFound,
    InvalidIdentifier,
    LoadFailed,
    QueryFailed,
    SchemaChangeRefused,
    TableNotFound,
    UnsupportedByEmulator,
    translated,
)
from ml_platform.etl.bq_schema import (
    TableInfo,
    ddl_type,
    field_from_schema_field,
    query_parameter,
    schema_field_for,
    table_schema_from,
)
from ml_platform.etl.bqsql import check_name, quote_name, table_ref, validate_dataset_id, validate_table_id
from ml_platform.etl.types import BigQueryField, TableSchema, standard_bigquery_type

# A resumable upload reads each chunk of the file whole into memory before sending it; the client's
# chunk (100 MB, a module setting it offers no argument for) would hold a whole spool part. 8 MiB
# chunks (a multiple of the protocol's 256 KiB) bound an upload's memory for a few more requests.
UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024
_bigquery_client._DEFAULT_CHUNKSIZE = UPLOAD_CHUNK_BYTES  # noqa: SLF001

__all__ = ["BigQuery"]


_WRITE_DISPOSITIONS = {
    "append": bigquery.WriteDisposition.WRITE_APPEND,
    "write_append": bigquery.WriteDisposition.WRITE_APPEND,
    "truncate": bigquery.WriteDisposition.WRITE_TRUNCATE,
    "replace": bigquery.WriteDisposition.WRITE_TRUNCATE,
    "write_truncate": bigquery.WriteDisposition.WRITE_TRUNCATE,
    "empty": bigquery.WriteDisposition.WRITE_EMPTY,
    "write_empty": bigquery.WriteDisposition.WRITE_EMPTY,
}
_PARTITION_TYPES = ("DAY", "HOUR", "MONTH", "YEAR")
_TIME_PARTITION_COLUMN_TYPES = ("DATE", "DATETIME", "TIMESTAMP")
_UNCLUSTERABLE_TYPES = ("RECORD", "JSON", "FLOAT64", "GEOGRAPHY", "INTERVAL", "RANGE")
_COUNT_BATCH = 50


# --------------------------------------------------------------------------- the client


def upload_retries(deadline: float) -> int:
    """Retries of an upload that give up within `deadline` seconds, as every other call does.

    An upload retries on its own schedule (1, 2, 4... seconds apart, plus up to 1 s of jitter each),
    not the calls' deadline: its default, 6, rides out a minute. The most retries whose waits fit."""
    retries = 0
    while (2 ** (retries + 1) - 1) + (retries + 1) <= deadline:
        retries += 1
    return retries


class BigQuery:
    """BigQuery for this product: datasets, tables, schemas, loads and queries.

    `emulator_host` (`http://127.0.0.1:9050`) switches to the local emulator with
    anonymous credentials; without it, Application Default Credentials are used.
    The underlying client is created on first use, so building a `BigQuery` never
    fails and a missing credential surfaces as a `BigQueryError` where it matters.
    """

    def __init__(
        self,
        project: str,
        emulator_host: str | None = None,
        location: str | None = None,
        *,
        retry_deadline: float = 30.0,
        job_timeout: float = 900.0,
        http_timeout: float = 60.0,
    ) -> None:
        try:
            check_name(project)
        except InvalidIdentifier:
            raise InvalidIdentifier(f"{project!r} is not a valid Google Cloud project id.") from None
        self.project = project
        self.location = location or None
        self.emulator_host = self._with_scheme(emulator_host) if emulator_host else None
        self.retry_deadline = retry_deadline
        self.job_timeout = job_timeout
        self.http_timeout = http_timeout
        self._retry: Retry = DEFAULT_RETRY.with_deadline(retry_deadline)
        self._job_retry: Retry = DEFAULT_JOB_RETRY.with_deadline(max(retry_deadline, 1.0))
        self._upload_retries = upload_retries(retry_deadline)
        self._client: bigquery.Client | None = None

    @property
    def is_emulator(self) -> bool:
        return self.emulator_host is not None

    def __repr__(self) -> str:
        where = self.emulator_host or "BigQuery"
        return f"BigQuery(project={self.project!r}, at={where!r})"

    @staticmethod
    def _with_scheme(host: str) -> str:
        host = host.strip().rstrip("/")
        return host if "://" in host else f"http://{host}"

    @property
    def client(self) -> bigquery.Client:
        if self._client is None:
            with self._errors("connecting to BigQuery"):
                if self.emulator_host:
                    self._client = bigquery.Client(
                        project=self.project,
                        location=self.location,
                        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                        client_options=ClientOptions(api_endpoint=self.emulator_host),
                    )
                else:
                    self._client = bigquery.Client(project=self.project, location=self.location)
        assert self._client is not None
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()  # type: ignore[no-untyped-call]
            self._client = None

    # -- references

    def _dataset_ref(self, dataset: str) -> str:
        return f"{self.project}.{validate_dataset_id(dataset)}"

    def _table_ref(self, dataset: str, table: str) -> str:
        return f"{self.project}.{validate_dataset_id(dataset)}.{validate_table_id(table)}"

    def sql_table(self, dataset: str, table: str) -> str:
        """The quoted `project`.`dataset`.`table` to put in SQL."""
        return f"{quote_name(self.project)}.{table_ref(validate_dataset_id(dataset), validate_table_id(table))}"

    # -- datasets

    def list_datasets(self) -> list[str]:
        with self._errors("listing datasets"):
            return sorted(d.dataset_id for d in self.client.list_datasets(retry=self._retry, timeout=self.http_timeout))

    def _get_dataset(self, name: str) -> bigquery.Dataset:
        ref = self._dataset_ref(name)
        with self._errors(f"reading dataset {name}", dataset=name):
            return self.client.get_dataset(ref, retry=self._retry, timeout=self.http_timeout)

    def create_dataset(self, name: str, exists_ok: bool = True) -> None:
        dataset = bigquery.Dataset(self._dataset_ref(name))
        if self.location:
            dataset.location = self.location
        with self._errors(f"creating dataset {name}", dataset=name):
            self.client.create_dataset(dataset, exists_ok=exists_ok, retry=self._retry, timeout=self.http_timeout)

    def delete_dataset(self, name: str, delete_contents: bool = True, not_found_ok: bool = True) -> None:
        """Delete a dataset (with its tables unless `delete_contents=False`)."""
        ref = self._dataset_ref(name)
        with self._errors(f"deleting dataset {name}", dataset=name):
            self.client.delete_dataset(
                ref,
                delete_contents=delete_contents,
                not_found_ok=not_found_ok,
                retry=self._retry,
                timeout=self.http_timeout,
            )

    # -- tables

    def list_tables(self, dataset: str) -> list[TableInfo]:
        """The dataset's tables with exact row counts; raises `DatasetNotFound` for an unknown dataset."""
        # The emulator answers an unknown dataset with an empty list: ask for the dataset first.
        self._get_dataset(dataset)
        with self._errors(f"listing tables of {dataset}", dataset=dataset):
            items = list(
                self.client.list_tables(self._dataset_ref(dataset), retry=self._retry, timeout=self.http_timeout)
            )
        infos: list[TableInfo] = []
        counted: list[str] = []
        columns: dict[str, int] = {}
        for item in items:
            try:
                table = self._get_table(dataset, item.table_id)
            except TableNotFound:
                continue  # dropped between the listing and now
            columns[item.table_id] = len(table.schema)
            if (item.table_type or "TABLE") == "TABLE":
                counted.append(item.table_id)
        counts = self._count_rows(dataset, counted)
        for item in items:
            if item.table_id not in columns:
                continue
            infos.append(
                TableInfo(
                    table_id=item.table_id,
                    row_count=counts.get(item.table_id),
                    column_count=columns[item.table_id],
                    table_type=item.table_type or "TABLE",
                )
            )
        return sorted(infos, key=lambda i: i.table_id)

    def _count_rows(self, dataset: str, tables: Sequence[str]) -> dict[str, int]:
        # One query per batch instead of one per table: a UNION ALL of COUNT(*) is a
        # metadata-only read on BigQuery and a single job on either backend.
        counts: dict[str, int] = {}
        for start in range(0, len(tables), _COUNT_BATCH):
            batch = list(tables[start : start + _COUNT_BATCH])
            sql = " UNION ALL ".join(
                f"SELECT {i} AS i, COUNT(*) AS n FROM {self.sql_table(dataset, t)}"  # noqa: S608 - validated ids
                for i, t in enumerate(batch)
            )
            for row in self.query(sql):
                counts[batch[int(row["i"])]] = int(row["n"])
        return counts

    def table_exists(self, dataset: str, table: str) -> bool:
        try:
            self._get_table(dataset, table)
        except BigQueryNotFound:
            return False
        return True

    def _get_table(self, dataset: str, table: str) -> bigquery.Table:
        ref = self._table_ref(dataset, table)
        with self._errors(f"reading table {dataset}.{table}", dataset=dataset, table=table):
            return self.client.get_table(ref, retry=self._retry, timeout=self.http_timeout)

    def get_table_schema(self, dataset: str, table: str, *, count_rows: bool = False) -> TableSchema:
        """The table's schema; `num_rows` is an exact count when `count_rows`, else None (metadata lags DML)."""
        bq_table = self._get_table(dataset, table)
        rows = self.row_count(dataset, table) if count_rows else None
        return table_schema_from(bq_table, num_rows=rows)

    def create_table(
        self,
        dataset: str,
        table: str,
        fields: Sequence[BigQueryField],
        partition_field: str | None = None,
        partition_type: str = "DAY",
        clustering: Sequence[str] = (),
        description: str | None = None,
        exists_ok: bool = False,
    ) -> TableSchema:
        ref = self._table_ref(dataset, table)
        fields = list(fields)
        self._check_new_fields(fields)
        by_name = {f.name.lower(): f for f in fields}
        bq_table = bigquery.Table(ref, schema=[schema_field_for(f) for f in fields])
        if description:
            bq_table.description = description[:16384]
        if partition_field:
            self._set_partitioning(bq_table, by_name, partition_field, partition_type)
        if clustering:
            bq_table.clustering_fields = self._clustering(by_name, clustering)
        if self.is_emulator and any(_uses_bignumeric(f) for f in fields):
            # bqemulator maps BIGNUMERIC to a DuckDB DECIMAL wider than 38 digits and
            # answers 500, which the client would retry until the deadline.
            names = ", ".join(f.name for f in fields if _uses_bignumeric(f))
            raise UnsupportedByEmulator(
                f"The local BigQuery emulator cannot create BIGNUMERIC columns ({names}); real BigQuery can. "
                "Use NUMERIC for data that fits 29 whole digits and 9 decimal places.",
                code=501,
            )
        with self._errors(f"creating table {dataset}.{table}", dataset=dataset, table=table):
            created = self.client.create_table(
                bq_table, exists_ok=exists_ok, retry=self._retry, timeout=self.http_timeout
            )
        return table_schema_from(created)

    @staticmethod
    def _check_new_fields(fields: Sequence[BigQueryField]) -> None:
        if not fields:
            raise SchemaChangeRefused("A BigQuery table needs at least one column.")
        seen: dict[str, str] = {}
        for f in fields:
            check_name(f.name)
            key = f.name.lower()
            if key in seen:
                raise SchemaChangeRefused(
                    f"Columns {seen[key]!r} and {f.name!r} differ only by case; BigQuery column names are "
                    "case-insensitive."
                )
            seen[key] = f.name
            if (f.mode or "NULLABLE").upper() not in ("NULLABLE", "REQUIRED", "REPEATED"):
                raise SchemaChangeRefused(f"Column {f.name!r} has an unknown mode {f.mode!r}.")

    @staticmethod
    def _set_partitioning(
        bq_table: bigquery.Table, by_name: Mapping[str, BigQueryField], column: str, partition_type: str
    ) -> None:
        kind = (partition_type or "DAY").upper()
        if kind not in _PARTITION_TYPES:
            raise SchemaChangeRefused(f"Partitioning must be one of {', '.join(_PARTITION_TYPES)}, not {kind!r}.")
        f = by_name.get(column.lower())
        if f is None:
            raise SchemaChangeRefused(f"The partitioning column {column!r} is not one of the table's columns.")
        if standard_bigquery_type(f.field_type) not in _TIME_PARTITION_COLUMN_TYPES or f.mode == "REPEATED":
            raise SchemaChangeRefused(
                f"Tables are partitioned by a DATE, DATETIME or TIMESTAMP column; {f.name!r} is {f.field_type}."
            )
        bq_table.time_partitioning = bigquery.TimePartitioning(type_=kind, field=f.name)

    @staticmethod
    def _clustering(by_name: Mapping[str, BigQueryField], clustering: Sequence[str]) -> list[str]:
        if len(clustering) > 4:
            raise SchemaChangeRefused("BigQuery clusters a table by at most 4 columns.")
        names: list[str] = []
        for column in clustering:
            f = by_name.get(column.lower())
            if f is None:
                raise SchemaChangeRefused(f"The clustering column {column!r} is not one of the table's columns.")
            if standard_bigquery_type(f.field_type) in _UNCLUSTERABLE_TYPES or f.mode == "REPEATED":
                raise SchemaChangeRefused(f"BigQuery cannot cluster by {f.name!r} ({f.mode} {f.field_type}).")
            names.append(f.name)
        return names

    def add_columns(self, dataset: str, table: str, fields: Sequence[BigQueryField]) -> TableSchema:
        """Append NULLABLE/REPEATED columns (the only additions BigQuery makes to a table with data).

        Columns that already exist with the same type and mode are skipped, so a retry is harmless.
        """
        bq_table = self._get_table(dataset, table)
        existing = {f.name.lower(): field_from_schema_field(f) for f in bq_table.schema}
        new: list[BigQueryField] = []
        for f in fields:
            check_name(f.name)
            mode = (f.mode or "NULLABLE").upper()
            if mode not in ("NULLABLE", "REPEATED"):
                raise SchemaChangeRefused(
                    f"Column {f.name!r} cannot be added as {mode}: BigQuery only adds NULLABLE or REPEATED columns "
                    "to an existing table."
                )
            current = existing.get(f.name.lower())
            if current is not None:
                if current.field_type != standard_bigquery_type(f.field_type) or current.mode != mode:
                    raise SchemaChangeRefused(
                        f"{dataset}.{table} already has a column {current.name!r} ({current.mode} "
                        f"{current.field_type}); it cannot be added again as {mode} {f.field_type}."
                    )
                continue
            if self.is_emulator and _uses_bignumeric(f):
                raise UnsupportedByEmulator(
                    f"The local BigQuery emulator cannot store BIGNUMERIC column {f.name!r}; real BigQuery can.",
                    code=501,
                )
            existing[f.name.lower()] = f
            new.append(BigQueryField(f.name, f.field_type, mode, f.fields, f.precision, f.scale, f.description))
        if not new:
            return table_schema_from(bq_table)
        bq_table.schema = list(bq_table.schema) + [schema_field_for(f) for f in new]
        updated = self._update_schema(bq_table, dataset, table, "adding columns to")
        if self.is_emulator:
            # bqemulator 1.4 keeps the schema (catalog) and the stored table (DuckDB) apart:
            # update_table changes only the catalog, ALTER TABLE only the storage. Mirror the
            # new columns into storage, else loads and DML fail with "table has N columns".
            for f in new:
                self.query(
                    f"ALTER TABLE {self.sql_table(dataset, table)} "
                    f"ADD COLUMN IF NOT EXISTS {quote_name(f.name)} {ddl_type(f)}"
                )
        return table_schema_from(updated)

    def relax_columns(self, dataset: str, table: str, names: Sequence[str]) -> TableSchema:
        """Relax REQUIRED columns to NULLABLE (the one mode change BigQuery allows); others are left as they are."""
        bq_table = self._get_table(dataset, table)
        wanted = {n.lower(): n for n in names}
        present = {f.name.lower() for f in bq_table.schema}
        missing = [n for key, n in wanted.items() if key not in present]
        if missing:
            raise ColumnNotFound(f"{dataset}.{table} has no column(s) {', '.join(map(repr, missing))} to relax.")
        changed = False
        schema: list[bigquery.SchemaField] = []
        for f in bq_table.schema:
            if f.name.lower() in wanted and (f.mode or "NULLABLE").upper() == "REQUIRED":
                api = f.to_api_repr()
                api["mode"] = "NULLABLE"
                f = bigquery.SchemaField.from_api_repr(api)
                changed = True
            schema.append(f)
        if not changed:
            return table_schema_from(bq_table)
        bq_table.schema = schema
        return table_schema_from(self._update_schema(bq_table, dataset, table, "relaxing columns of"))

    def _update_schema(self, bq_table: bigquery.Table, dataset: str, table: str, verb: str) -> bigquery.Table:
        with self._errors(f"{verb} {dataset}.{table}", dataset=dataset, table=table):
            return self.client.update_table(bq_table, ["schema"], retry=self._retry, timeout=self.http_timeout)

    def drop_table(self, dataset: str, table: str, not_found_ok: bool = True) -> None:
        ref = self._table_ref(dataset, table)
        with self._errors(f"dropping table {dataset}.{table}", dataset=dataset, table=table):
            self.client.delete_table(ref, not_found_ok=not_found_ok, retry=self._retry, timeout=self.http_timeout)

    # -- loads

    def load_parquet(
        self,
        path: str | Path,
        dataset: str,
        table: str,
        write_disposition: str = "WRITE_APPEND",
        fields: Sequence[BigQueryField] | None = None,
    ) -> int:
        """Load one Parquet file into an existing table; returns the rows loaded.

        With `fields` (the table's schema, known to the caller) the table is created by the load
        job itself when missing, with exactly that schema, and no round trip reads its schema first.

        The file's columns must be the table's columns, same names, same order: BigQuery
        matches Parquet columns by name, the emulator by position, and only an exact
        match means the same thing on both. A mismatch is refused before any upload
        (a failed WRITE_TRUNCATE on the emulator would already have emptied the table).
        """
        disposition = _WRITE_DISPOSITIONS.get(str(write_disposition).lower())
        if disposition is None:
            raise LoadFailed(f"Unknown write disposition {write_disposition!r}: use WRITE_APPEND or WRITE_TRUNCATE.")
        path = Path(path)
        try:
            metadata = pq.read_metadata(path)
            file_columns = metadata.schema.to_arrow_schema().names
        except (OSError, pa.ArrowException) as exc:
            raise LoadFailed(f"Cannot read Parquet file {path.name}: {exc}") from exc
        if fields is not None:
            schema = [schema_field_for(f) for f in fields]
            create = bigquery.CreateDisposition.CREATE_IF_NEEDED
        else:
            schema = list(self._get_table(dataset, table).schema)
            create = bigquery.CreateDisposition.CREATE_NEVER
        table_columns = [f.name for f in schema]
        if [c.lower() for c in file_columns] != [c.lower() for c in table_columns]:
            raise LoadFailed(
                f"The Parquet file's columns ({', '.join(file_columns)}) must be exactly the columns of "
                f"{dataset}.{table} in the same order ({', '.join(table_columns)})."
            )
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=disposition,
            create_disposition=create,
            # The table's own schema, explicitly: with WRITE_TRUNCATE and no schema, BigQuery may
            # replace the table's schema with the file's (JSON, DATETIME, GEOGRAPHY columns lost).
            schema=schema,
        )
        parquet_options = bigquery.ParquetOptions()  # type: ignore[no-untyped-call]
        # Without list inference a Parquet LIST arrives as a RECORD with a `list.element` field.
        parquet_options.enable_list_inference = True
        config.parquet_options = parquet_options
        context = f"loading {path.name} into {dataset}.{table}"
        with self._errors(context, dataset=dataset, table=table, error=LoadFailed):
            with path.open("rb") as handle:
                # No size=: a known size makes the client use a multipart upload, which the
                # emulator cannot take; the resumable upload works on both.
                job = self.client.load_table_from_file(
                    handle,
                    self._table_ref(dataset, table),
                    rewind=True,
                    num_retries=self._upload_retries,
                    job_config=config,
                    timeout=self.http_timeout,
                )
            job.result(timeout=self.job_timeout, retry=self._retry)
        # A load is all-or-nothing, so success means every row of the file. The file says how
        # many; the emulator's `output_rows` reports the table's total instead.
        return int(metadata.num_rows)

    # -- queries

    def _query_job(self, sql: str, params: Mapping[str, Any] | None) -> bigquery.QueryJob:
        config = bigquery.QueryJobConfig()
        if params:
            config.query_parameters = [query_parameter(name, value) for name, value in params.items()]
        with self._errors("running a query", error=QueryFailed):
            job = self.client.query(
                sql, job_config=config, retry=self._retry, job_retry=self._job_retry, timeout=self.http_timeout
            )
            job.result(timeout=self.job_timeout, retry=self._retry, job_retry=self._job_retry)
        return job

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run SQL (named `@params`, typed from their Python values) and return every row as a dict."""
        job = self._query_job(sql, params)
        with self._errors("reading query results", error=QueryFailed):
            return [dict(row.items()) for row in job.result(timeout=self.job_timeout, retry=self._retry)]

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int | None:
        """Run a DML/DDL statement or script; returns the rows it changed when BigQuery reports it."""
        job = self._query_job(sql, params)
        affected = job.num_dml_affected_rows
        return int(affected) if affected is not None else None

    def row_count(self, dataset: str, table: str) -> int:
        """Exact row count (table metadata is not updated by DML on the emulator, nor for streamed rows)."""
        self._get_table(dataset, table)  # a clear TableNotFound instead of a query error
        rows = self.query(f"SELECT COUNT(*) AS n FROM {self.sql_table(dataset, table)}")  # noqa: S608 - validated ids
        return int(rows[0]["n"]) if rows else 0

    def max_value(self, dataset: str, table: str, column: str, where_tag: tuple[str, str] | None = None) -> Any:
        """MAX(column), optionally over the rows whose tag column equals a source tag (None when there are none)."""
        self._get_table(dataset, table)
        sql = f"SELECT MAX({quote_name(column)}) AS v FROM {self.sql_table(dataset, table)}"  # noqa: S608
        params: dict[str, Any] = {}
        if where_tag is not None:
            tag_column, tag = where_tag
            sql += f" WHERE {quote_name(tag_column)} = @tag"
            params["tag"] = tag
        rows = self.query(sql, params)
        return rows[0]["v"] if rows else None

    def _errors(
        self,
        action: str,
        *,
        dataset: str | None = None,
        table: str | None = None,
        error: type[BigQueryError] = BigQueryError,
    ) -> AbstractContextManager[None]:
        return translated(self, action, dataset=dataset, table=table, error=error)


def _uses_bignumeric(f: BigQueryField) -> bool:
    return standard_bigquery_type(f.field_type) == "BIGNUMERIC" or any(_uses_bignumeric(s) for s in f.fields)
