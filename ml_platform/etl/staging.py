"""The runner's I/O helpers: progress/heartbeat, the classified warehouse calls, Parquet spool, staging loads."""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ml_platform.etl.errors import RunError, classify_warehouse_error
from ml_platform.etl.runspec import Phase, ProgressCallback, RunProgress
from ml_platform.etl.types import BigQueryField, TableSchema

if TYPE_CHECKING:
    from ml_platform.etl.bigquery import BigQuery

logger = logging.getLogger(__name__)

# A worker that reports nothing for this long looks dead to the scheduler (ETL_HEARTBEAT_TIMEOUT
# is 120 s): every wait on BigQuery ticks the progress callback at this interval.
HEARTBEAT_SECONDS = 10.0
# Progress while extracting is reported at most this often; callers write it to a database.
PROGRESS_INTERVAL_SECONDS = 1.0
# Spool files are loaded while extraction continues, each by one load job. A part is closed at
# whichever limit comes first (`etl.pipeline.part_rows` makes parts smaller for smaller tables, so
# the last part's load, which nothing overlaps, is short); the byte limit (Arrow size, about 2x
# the Parquet file) bounds a part's size on disk for wide rows.
PART_ROWS = 500_000
PART_ARROW_BYTES = 64 * 1024 * 1024
# Parts written but not loaded yet: past this the spool waits for the loader (disk stays bounded
# when the warehouse is slower than the source).
MAX_PENDING_PARTS = 3
# Part tables dropped side by side after a unit's commit.
DROP_THREADS = 4
# Parquet row groups: the generic path yields small batches, ADBC large ones; both are regrouped.
# 4 MB of Arrow data at most waits to be encoded (one ADBC batch makes a row group alone).
ROW_GROUP_ROWS = 64 * 1024
ROW_GROUP_ARROW_BYTES = 4 * 1024 * 1024
# A column is dictionary-encoded when the spool's first row group has at most this many distinct values per row.
DICTIONARY_DISTINCT_RATIO = 0.5
# The smallest part the spool closes early near a unit's expected end (`Spool._part_target`).
TAIL_PART_ROWS = ROW_GROUP_ROWS
# Snappy: ~30% smaller uploads than none for ~0.2 s of CPU per 2M rows; zstd halves the file
# again but costs twice the write time, which the emulator run (CPU-bound) cannot afford.
COMPRESSION = "snappy"


_T = TypeVar("_T")


class Heartbeat:
    """Progress reporting with throttling, and waiting on slow calls without going silent."""

    def __init__(self, callback: ProgressCallback | None, estimate: int | None) -> None:
        self.callback = callback
        self.estimate = estimate
        self.phase: Phase = "starting"
        self.rows_extracted = 0
        self.rows_loaded = 0
        self.checkpoints = 0
        self.watermark: Any = None
        self._last = 0.0

    def emit(self, phase: Phase | None = None, *, force: bool = False) -> None:
        if phase is not None and phase != self.phase:
            self.phase = phase
            force = True
        now = time.monotonic()
        if self.callback is None or (not force and now - self._last < PROGRESS_INTERVAL_SECONDS):
            return
        self._last = now
        self.callback(
            RunProgress(
                phase=self.phase,
                rows_extracted=self.rows_extracted,
                rows_estimate=self.estimate,
                rows_loaded=self.rows_loaded,
                checkpoints=self.checkpoints,
                watermark=self.watermark,
            )
        )

    def wait(self, future: concurrent.futures.Future[_T]) -> _T:
        while True:
            try:
                return future.result(timeout=HEARTBEAT_SECONDS)
            except concurrent.futures.TimeoutError:
                self.emit(force=True)


class Warehouse:
    """The runner's view of the BigQuery wrapper; every failure becomes a classified RunError."""

    def __init__(self, bq: BigQuery) -> None:
        self.bq = bq

    def _call(self, context: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        try:
            return fn(*args, **kwargs)
        except RunError:
            raise
        except Exception as exc:  # noqa: BLE001 - the wrapper may raise client, HTTP or its own errors
            raise classify_warehouse_error(exc, context=context) from None

    def schema(self, dataset: str, table: str) -> TableSchema | None:
        try:
            return self.bq.get_table_schema(dataset, table)
        except Exception as exc:  # noqa: BLE001
            if is_not_found(exc):
                return None
            raise classify_warehouse_error(exc, context=f"reading the schema of {dataset}.{table}") from None

    def create_table(self, dataset: str, table: str, fields: Sequence[BigQueryField]) -> None:
        self._call(f"creating {dataset}.{table}", self.bq.create_table, dataset, table, list(fields))

    def add_columns(self, dataset: str, table: str, fields: Sequence[BigQueryField]) -> None:
        self._call(f"adding columns to {dataset}.{table}", self.bq.add_columns, dataset, table, list(fields))

    def table_names(self, dataset: str) -> list[str]:
        # The wrapper's list_tables counts every table's rows (a query per 50 tables); the
        # clean-up only needs names, so it lists them with the wrapper's own client.
        client = self.bq.client
        items = self._call(f"listing tables of {dataset}", client.list_tables, f"{self.bq.project}.{dataset}")
        return [item.table_id for item in items]

    def drop(self, dataset: str, table: str) -> None:
        self._call(f"dropping {dataset}.{table}", self.bq.drop_table, dataset, table)

    def load(
        self, path: Path, dataset: str, table: str, write_disposition: str,
        fields: Sequence[BigQueryField] | None = None,
    ) -> None:
        """Load a part; with `fields` the load job creates the table when missing (no schema read, no create call)."""
        context = f"loading into {dataset}.{table}"
        if fields is None:
            self._call(context, self.bq.load_parquet, path, dataset, table, write_disposition)
        else:
            self._call(context, self.bq.load_parquet, path, dataset, table, write_disposition, list(fields))

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self._call("running a query", self.bq.query, sql, params or {})

    def max_value(self, dataset: str, table: str, column: str, where_tag: tuple[str, str] | None) -> Any:
        return self._call(
            f"reading MAX({column}) of {dataset}.{table}", self.bq.max_value, dataset, table, column, where_tag
        )


    def find_job(self, job_id: str) -> Any:
        """The BigQuery job with this id, or None when there is none (a commit never submitted)."""
        try:
            return self.bq.client.get_job(job_id, location=self.bq.location, timeout=self.bq.http_timeout)
        except Exception as exc:  # noqa: BLE001
            if is_not_found(exc):
                return None
            raise classify_warehouse_error(exc, context=f"looking up BigQuery job {job_id}") from None

    def submit(self, sql: str, job_id: str) -> Any:
        """Start a query job under a deterministic id (never retried under another id by the client)."""
        return self._call(
            "submitting a commit",
            self.bq.client.query,
            sql,
            job_id=job_id,
            job_retry=None,
            timeout=self.bq.http_timeout,
        )

    def wait(self, job: Any) -> list[dict[str, Any]]:
        """Wait for a job: its result rows; a failed job raises its classified error."""
        rows = self._call("committing", job.result, timeout=self.bq.job_timeout)
        return [dict(row.items()) for row in rows]


def is_not_found(exc: BaseException) -> bool:
    link: BaseException | None = exc
    while link is not None:
        if getattr(link, "code", None) == 404 or type(link).__name__ in ("NotFound", "TableNotFound"):
            return True
        link = link.__cause__ or link.__context__
    return False


# --- spooling ---------------------------------------------------------------------


class Spool:
    """Parquet part files of conformed batches; each closed part is handed to `on_part`.

    Parts are bounded (`part_rows`, `PART_ARROW_BYTES`) so a load of part k runs while part
    k+1 is being extracted.
    """

    def __init__(
        self,
        directory: Path,
        schema: pa.Schema,
        on_part: Callable[[Path, int], None],
        *,
        part_rows: int = PART_ROWS,
        expected_rows: int | None = None,
    ) -> None:
        self.directory = directory
        self.schema = schema
        self.on_part = on_part
        self.part_rows = max(1, part_rows)
        self.expected_rows = expected_rows
        self._closed_rows = 0
        self.parts = 0
        self.bytes = 0
        self.rows = 0
        self.paths: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._path: Path | None = None
        self._part_rows = 0
        self._part_bytes = 0
        self._pending: list[pa.RecordBatch] = []
        self._dictionary: bool | list[str] | None = None  # judged once, on the spool's first row group
        self._pending_rows = 0
        self._pending_bytes = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes
        self.rows += batch.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS or self._pending_bytes >= ROW_GROUP_ARROW_BYTES:
            self._flush()
        if self._part_rows >= self._part_target() or self._part_bytes >= PART_ARROW_BYTES:
            self._close_part()

    def _part_target(self) -> int:
        """Rows the open part closes at: `part_rows`, halved as the unit nears its expected end, so the
        last part (whose load nothing overlaps) is about one row group. An estimate that was too low
        brings `part_rows` back; one that was too high only leaves the last part as it was."""
        if self.expected_rows is None:
            return self.part_rows
        remaining = self.expected_rows - self._closed_rows
        if remaining <= 0 or remaining > self.part_rows:
            return self.part_rows
        return max(TAIL_PART_ROWS, remaining // 2)

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending, schema=self.schema)
        if self._writer is None:
            if self._dictionary is None:
                self._dictionary = dictionary_columns(table)
            self._path = self.directory / f"part-{self.parts:05d}.parquet"
            self._writer = pq.ParquetWriter(
                self._path, self.schema, compression=COMPRESSION, use_dictionary=self._dictionary
            )
        self._pending = []  # the batches are released as soon as they are encoded
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self._part_rows += table.num_rows
        self._part_bytes += self._pending_bytes
        del table
        self._pending_rows = 0
        self._pending_bytes = 0

    def _close_part(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        assert self._path is not None
        self.bytes += self._path.stat().st_size
        path, rows = self._path, self._part_rows
        self._closed_rows += rows
        self._writer, self._path, self._part_rows, self._part_bytes = None, None, 0, 0
        self.parts += 1
        self.paths.append(path)
        self.on_part(path, rows)

    def finish(self) -> None:
        self._flush()
        self._close_part()

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - the run already failed; keep its error
                pass
            self._writer = None


def dictionary_columns(table: pa.Table) -> bool | list[str]:
    """The columns worth dictionary-encoding in a spool's parts, judged on its first row group.

    Parquet's default encodes every column with a dictionary and falls back to plain pages once
    the dictionary grows too large: for a column of mostly distinct values (ids, timestamps, free
    text) that is encoding work thrown away (PostgreSQL bench, 1M rows: 0.58 s -> 0.39 s to write,
    and 59 -> 53 MB). Columns with at most DICTIONARY_DISTINCT_RATIO distinct values per row keep
    it. Nested columns keep Parquet's default (their leaves have other names).
    """
    if table.num_rows == 0 or any(pa.types.is_nested(f.type) for f in table.schema):
        return True
    limit = table.num_rows * DICTIONARY_DISTINCT_RATIO
    return [f.name for f, column in zip(table.schema, table.columns, strict=True)
            if pc.count_distinct(column, mode="all").as_py() <= limit]  # fmt: skip


class Loader:
    """Loads spool parts on a background thread, each into its own staging table `<base>_<n>`.

    One table per part, not one table appended to: a load job then costs its own rows only (the
    emulator copies the whole table a load job writes, for time travel, so appending part k copied
    parts 1..k again), parts can be many and small (the last load, which nothing overlaps, is
    short), and the commit reads the unit's parts as one relation (`bqsql.union_ref`). Each load
    job creates its table with staging's explicit schema: no create call, no schema read.
    `submit` waits (ticking `heartbeat`) while `MAX_PENDING_PARTS` parts are already waiting.
    """

    def __init__(
        self,
        warehouse: Warehouse,
        dataset: str,
        base: str,
        fields: Sequence[BigQueryField],
        *,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.warehouse = warehouse
        self.dataset = dataset
        self.base = base
        self.fields = fields
        self.heartbeat = heartbeat
        self.tables: list[str] = []  # every part table a load was started for, in part order
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="etl-load")
        self._futures: list[concurrent.futures.Future[None]] = []

    def submit(self, path: Path, _rows: int) -> None:
        self.raise_if_failed()
        self._wait_for_room()
        table = f"{self.base}_{len(self.tables)}"
        self.tables.append(table)
        self._futures.append(self._pool.submit(self._load, path, table))

    def _load(self, path: Path, table: str) -> None:
        try:
            self.warehouse.load(path, self.dataset, table, "WRITE_TRUNCATE", self.fields)
        finally:
            path.unlink(missing_ok=True)  # a loaded part is never needed again

    def ensure_table(self) -> None:
        """Staging of a unit with no rows: one empty part table, so the commit reads an empty relation."""
        if not self.tables:
            table = f"{self.base}_0"
            self.warehouse.create_table(self.dataset, table, self.fields)
            self.tables.append(table)

    def _wait_for_room(self) -> None:
        while True:
            pending = [f for f in self._futures if not f.done()]
            if len(pending) < MAX_PENDING_PARTS:
                return
            done, _ = concurrent.futures.wait(
                pending, timeout=HEARTBEAT_SECONDS, return_when=concurrent.futures.FIRST_COMPLETED
            )
            if not done and self.heartbeat is not None:
                self.heartbeat.emit(force=True)
            self.raise_if_failed()

    def raise_if_failed(self) -> None:
        for future in self._futures:
            if future.done() and future.exception() is not None:
                future.result()

    def wait(self, heartbeat: Heartbeat) -> None:
        for future in self._futures:
            heartbeat.wait(future)

    def close(self) -> None:
        # Let an in-flight load finish before staging is dropped; never start queued ones.
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True)

    def drop_tables(self, dropper: Dropper) -> None:
        """Hand the part tables to `dropper` (the unit is committed, or failed)."""
        tables, self.tables = self.tables, []
        dropper.drop(tables)


class Dropper:
    """Drops staging tables in the background, side by side, while the run goes on; `close` waits for them.

    A unit's part tables go as soon as it is committed, without holding up the next unit's extraction.
    A table it cannot drop is only logged: the job's next run drops leftover staging.
    """

    def __init__(self, warehouse: Warehouse, dataset: str) -> None:
        self.warehouse = warehouse
        self.dataset = dataset
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=DROP_THREADS, thread_name_prefix="etl-drop")
        self._futures: dict[concurrent.futures.Future[None], str] = {}

    def drop(self, tables: Sequence[str]) -> None:
        for table in tables:
            self._futures[self._pool.submit(self.warehouse.drop, self.dataset, table)] = table

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for future, table in self._futures.items():
            if future.exception() is not None:
                logger.warning("could not drop staging table %s.%s; the next run of the job will", self.dataset, table)


@contextmanager
def spooling(spool: Spool, loader: Loader) -> Iterator[None]:
    """One unit's spool and its loader: on any failure the spool drops its parts; the loader is closed either way."""
    try:
        yield
    except BaseException:
        spool.abort()
        raise
    finally:
        loader.close()
