"""Run one ETL job: extract -> conform -> Parquet spool -> staging table -> one atomic commit.

Guarantees (DESIGN §6):
- the destination changes only in a `BEGIN TRANSACTION ... COMMIT TRANSACTION` script,
  one per run (or one per checkpoint of a large keyset-ordered load); a failure before
  it leaves the destination exactly as it was;
- the watermark advances only after the commit that contains its rows, and is handed
  to the caller after every committed checkpoint so a crash resumes there;
- a job without a stored watermark on a table that already has its rows derives the
  watermark from the destination (`MAX(cursor)` for its source tag): resuming a failed
  migration never duplicates rows;
- an incremental commit inserts only staging rows past the destination's own MAX(cursor)
  (inside the transaction), so even a stale watermark cannot duplicate rows;
- schema changes (a missing destination, new source columns, the tag column) are made
  just before the first commit, so a run failing earlier changes nothing at all;
- staging tables are named `_stg_<job>_<run>`; a run drops its own and any a crashed
  run of the same job left behind.

The emulator does not accept query parameters in multi-statement scripts, so the
one value a commit script needs (the source tag) is rendered as a BigQuery literal
by `bq_literal`, never pasted.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import decimal
import logging
import math
import re
import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Engine

from ml_platform.etl import plan as load_plan
from ml_platform.etl.conform import ColumnSource, Conformer
from ml_platform.etl.errors import (
    CastError,
    RunError,
    SchemaMismatchError,
    SourceReadError,
    WarehouseError,
    classify_warehouse_error,
)
from ml_platform.etl.extract import ExtractQuery, Method, cursor_boundary, estimate_rows, extract_batches
from ml_platform.etl.types import (
    BigQueryField,
    Family,
    SourceColumn,
    TableSchema,
    bigquery_type_for,
    normalize_column_names,
)

__all__ = [
    "CastError",
    "LoadStrategy",
    "RunError",
    "RunProgress",
    "RunResult",
    "RunSpec",
    "SchemaMismatchError",
    "SourceReadError",
    "WarehouseError",
    "ParquetSpool",
    "bq_literal",
    "extract_to_parquet",
    "run_job",
    "staging_prefix",
    "watermark_from_json",
    "watermark_to_json",
]

if TYPE_CHECKING:
    from ml_platform.etl.bigquery import BigQuery

logger = logging.getLogger(__name__)

LoadStrategy = Literal["replace", "append", "incremental", "merge"]
Phase = Literal["starting", "extracting", "loading", "committing", "checkpoint", "done"]

# A worker that reports nothing for this long looks dead to the scheduler (ETL_HEARTBEAT_TIMEOUT
# is 120 s): every wait on BigQuery ticks the progress callback at this interval.
HEARTBEAT_SECONDS = 10.0
# Progress while extracting is reported at most this often; callers write it to a database.
PROGRESS_INTERVAL_SECONDS = 1.0
# Spool files are loaded while extraction continues, each by one load job. A part is closed at
# whichever limit comes first; the upload of a part is buffered whole by the client, so the
# byte limit (Arrow size, about 2x the Parquet file) bounds memory for wide rows.
PART_ROWS = 500_000
PART_ARROW_BYTES = 64 * 1024 * 1024
# Parquet row groups: the generic path yields small batches, ADBC large ones; both are regrouped.
ROW_GROUP_ROWS = 64 * 1024
ROW_GROUP_ARROW_BYTES = 16 * 1024 * 1024
# Snappy: ~30% smaller uploads than none for ~0.2 s of CPU per 2M rows; zstd halves the file
# again but costs twice the write time, which the emulator run (CPU-bound) cannot afford.
COMPRESSION = "snappy"


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs; Django-free so the runner can be driven from anywhere.

    `columns` are the selected source columns (with their canonical types and primary-key
    flags). `column_mapping` maps source names to destination names; a column not in it
    goes to its normalized name. `cursor_column` and `merge_key` are source names.
    `watermark` is the last committed cursor value (None: derive it from the destination).
    `checkpoint_rows` splits keyset-ordered loads into separately committed checkpoints
    (None or 0: one commit).
    """

    source_schema: str | None
    source_table: str
    columns: tuple[SourceColumn, ...]
    destination_dataset: str
    destination_table: str
    load_strategy: LoadStrategy = "replace"
    column_mapping: Mapping[str, str] = field(default_factory=dict)
    cursor_column: str | None = None
    merge_key: tuple[str, ...] = ()
    source_tag: str | None = None
    tag_column: str = "_source_tag"
    watermark: Any = None
    chunk_rows: int = 100_000
    checkpoint_rows: int | None = 5_000_000
    job_id: str | int = "job"
    key_columns: tuple[str, ...] = ()
    extract_method: Method = "auto"
    # The load plan recorded by the schema check (`etl/plan.py`); the run only checks the table still fits it.
    plan: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        if isinstance(self.merge_key, str):
            object.__setattr__(self, "merge_key", (self.merge_key,) if self.merge_key else ())
        else:
            object.__setattr__(self, "merge_key", tuple(self.merge_key))
        object.__setattr__(self, "key_columns", tuple(self.key_columns))
        if self.source_tag == "":
            object.__setattr__(self, "source_tag", None)

    def destination_names(self) -> dict[str, str]:
        """Source column name -> destination column name, for every selected column."""
        defaults = normalize_column_names([c.name for c in self.columns])
        return {c.name: self.column_mapping.get(c.name) or d for c, d in zip(self.columns, defaults, strict=True)}


@dataclass(frozen=True)
class RunProgress:
    """A progress report; also the run's heartbeat.

    `phase == "checkpoint"` is sent after each committed checkpoint (and once for a run
    that commits once): `watermark` is then committed and the caller should persist it.
    """

    phase: Phase
    rows_extracted: int
    rows_estimate: int | None
    rows_loaded: int
    checkpoints: int
    watermark: Any


@dataclass(frozen=True)
class RunResult:
    rows_extracted: int
    rows_loaded: int
    bytes: int
    watermark_before: Any
    watermark_after: Any
    checkpoints: int
    watermark_derived: bool = False
    columns_added: tuple[str, ...] = ()
    staging_dropped: tuple[str, ...] = ()


ProgressCallback = Callable[[RunProgress], None]


# --- watermark (de)serialisation for JSON fields ----------------------------------


def watermark_to_json(value: Any) -> Any:
    """A JSON-safe, type-preserving form of a watermark (the job model keeps it in a JSONField)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return {"type": "bool", "value": value}
    if isinstance(value, int):
        return {"type": "int", "value": str(value)}
    if isinstance(value, float):
        return {"type": "float", "value": repr(value)}
    if isinstance(value, decimal.Decimal):
        return {"type": "decimal", "value": str(value)}
    if isinstance(value, dt.datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, dt.date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, dt.time):
        return {"type": "time", "value": value.isoformat()}
    if isinstance(value, bytes):
        return {"type": "bytes", "value": value.hex()}
    return {"type": "str", "value": str(value)}


def watermark_from_json(data: Any) -> Any:
    if data is None:
        return None
    if not isinstance(data, dict) or "type" not in data:
        return data  # a bare JSON scalar written by hand or by an older version
    kind, raw = data["type"], data.get("value")
    if raw is None:
        return None
    match kind:
        case "bool":
            return bool(raw)
        case "int":
            return int(raw)
        case "float":
            return float(raw)
        case "decimal":
            return decimal.Decimal(raw)
        case "datetime":
            return dt.datetime.fromisoformat(raw)
        case "date":
            return dt.date.fromisoformat(raw)
        case "time":
            return dt.time.fromisoformat(raw)
        case "bytes":
            return bytes.fromhex(raw)
        case _:
            return str(raw)


# --- BigQuery SQL -----------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def quote_name(name: str) -> str:
    if "`" in name or "\\" in name:
        raise SchemaMismatchError(f"Invalid BigQuery name {name!r}")
    return f"`{name}`"


def table_ref(dataset: str, table: str) -> str:
    return f"{quote_name(dataset)}.{quote_name(table)}"


def _string_literal(value: str) -> str:
    if _CONTROL.search(value):
        raise SchemaMismatchError(f"Value {value!r} contains control characters and cannot be used in a commit")
    escaped = (
        value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    )
    return f"'{escaped}'"


def bq_literal(value: Any, field_type: str) -> str:
    """A GoogleSQL literal of `value` typed as `field_type` (for scripts, which take no parameters)."""
    if value is None:
        return "NULL"
    kind = field_type.upper()
    if kind in ("INT64", "INTEGER"):
        return str(int(value))
    if kind in ("NUMERIC", "DECIMAL", "BIGNUMERIC", "BIGDECIMAL"):
        number = decimal.Decimal(str(value)) if not isinstance(value, decimal.Decimal) else value
        if not number.is_finite():
            raise SchemaMismatchError(f"{value!r} is not a {kind} value")
        return f"{'BIGNUMERIC' if kind.startswith('BIG') else 'NUMERIC'} '{number}'"
    if kind in ("FLOAT64", "FLOAT"):
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            return f"CAST('{number}' AS FLOAT64)"
        return repr(number)
    if kind in ("BOOL", "BOOLEAN"):
        return "TRUE" if value else "FALSE"
    if kind == "DATE":
        if isinstance(value, dt.datetime):
            value = value.date()
        return f"DATE '{value.isoformat() if isinstance(value, dt.date) else str(value)}'"
    if kind == "DATETIME":
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None:
                value = value.astimezone(dt.UTC).replace(tzinfo=None)
            return f"DATETIME '{value.isoformat(sep=' ', timespec='microseconds')}'"
        return f"DATETIME {_string_literal(str(value))}"
    if kind == "TIMESTAMP":
        if isinstance(value, dt.datetime):
            aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
            utc = aware.astimezone(dt.UTC).replace(tzinfo=None)
            return f"TIMESTAMP '{utc.isoformat(sep=' ', timespec='microseconds')}+00:00'"
        return f"TIMESTAMP {_string_literal(str(value))}"
    if kind == "TIME":
        if isinstance(value, dt.time):
            return f"TIME '{value.isoformat(timespec='microseconds')}'"
        return f"TIME {_string_literal(str(value))}"
    if kind == "BYTES" and isinstance(value, bytes):
        return f"FROM_HEX('{value.hex()}')"
    return _string_literal(str(value))


def staging_prefix(job_id: str | int) -> str:
    """Every staging table of one job starts with this (so a later run can find leftovers)."""
    cleaned = re.sub(r"[^0-9A-Za-z_]+", "_", str(job_id)).strip("_") or "job"
    return f"_stg_{cleaned[:60]}_"


# --- the warehouse side -----------------------------------------------------------


_T = TypeVar("_T")


class _Heartbeat:
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


class _Warehouse:
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
            if _is_not_found(exc):
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

    def load(self, path: Path, dataset: str, table: str, write_disposition: str) -> None:
        self._call(f"loading into {dataset}.{table}", self.bq.load_parquet, path, dataset, table, write_disposition)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self._call("running a query", self.bq.query, sql, params or {})

    def max_value(self, dataset: str, table: str, column: str, where_tag: tuple[str, str] | None) -> Any:
        return self._call(
            f"reading MAX({column}) of {dataset}.{table}", self.bq.max_value, dataset, table, column, where_tag
        )


def _is_not_found(exc: BaseException) -> bool:
    link: BaseException | None = exc
    while link is not None:
        if getattr(link, "code", None) == 404 or type(link).__name__ in ("NotFound", "TableNotFound"):
            return True
        link = link.__cause__ or link.__context__
    return False


# --- spooling ---------------------------------------------------------------------


class _Spool:
    """Parquet part files of conformed batches; each closed part is handed to `on_part`.

    Parts are bounded (`PART_ROWS`) so a load of part k runs while part k+1 is being
    extracted, and so no single upload buffers more than one part in memory.
    """

    def __init__(self, directory: Path, schema: pa.Schema, on_part: Callable[[Path, int], None]) -> None:
        self.directory = directory
        self.schema = schema
        self.on_part = on_part
        self.parts = 0
        self.bytes = 0
        self.rows = 0
        self.paths: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._path: Path | None = None
        self._part_rows = 0
        self._part_bytes = 0
        self._pending: list[pa.RecordBatch] = []
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
        if self._part_rows >= PART_ROWS or self._part_bytes >= PART_ARROW_BYTES:
            self._close_part()

    def _flush(self) -> None:
        if not self._pending:
            return
        if self._writer is None:
            self._path = self.directory / f"part-{self.parts:05d}.parquet"
            self._writer = pq.ParquetWriter(self._path, self.schema, compression=COMPRESSION)
        table = pa.Table.from_batches(self._pending, schema=self.schema)
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self._part_rows += table.num_rows
        self._part_bytes += self._pending_bytes
        self._pending = []
        self._pending_rows = 0
        self._pending_bytes = 0

    def _close_part(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        assert self._path is not None
        self.bytes += self._path.stat().st_size
        path, rows = self._path, self._part_rows
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


class _Loader:
    """Loads spool parts into staging one after another on a background thread."""

    def __init__(self, warehouse: _Warehouse, dataset: str, table: str) -> None:
        self.warehouse = warehouse
        self.dataset = dataset
        self.table = table
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="etl-load")
        self._futures: list[concurrent.futures.Future[None]] = []
        self._first = True

    def submit(self, path: Path, _rows: int) -> None:
        self.raise_if_failed()
        disposition = "WRITE_TRUNCATE" if self._first else "WRITE_APPEND"
        self._first = False
        self._futures.append(self._pool.submit(self._load, path, disposition))

    def _load(self, path: Path, disposition: str) -> None:
        try:
            self.warehouse.load(path, self.dataset, self.table, disposition)
        finally:
            path.unlink(missing_ok=True)  # a loaded part is never needed again

    def raise_if_failed(self) -> None:
        for future in self._futures:
            if future.done() and future.exception() is not None:
                future.result()

    def wait(self, heartbeat: _Heartbeat) -> None:
        for future in self._futures:
            heartbeat.wait(future)

    @property
    def loaded_anything(self) -> bool:
        return bool(self._futures)

    def close(self) -> None:
        # Let an in-flight load finish before staging is dropped; never start queued ones.
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True)


# --- the run ----------------------------------------------------------------------


@dataclass
class _Plan:
    spec: RunSpec
    fields: tuple[BigQueryField, ...]  # destination schema once the pending changes are made
    dest_names: dict[str, str]  # source -> destination
    fed: tuple[str, ...]  # destination columns this job writes, in destination order
    cursor_dest: BigQueryField | None
    key_dest: tuple[str, ...]
    tag_dest: str | None
    columns_added: tuple[str, ...]
    read_columns: tuple[SourceColumn, ...]
    key_columns: tuple[str, ...]
    # Schema changes wait for the first commit, so a run that fails earlier leaves the
    # destination exactly as it was, schema included.
    create_destination: bool = False
    add_fields: tuple[BigQueryField, ...] = ()

    def existing(self, name: str | None) -> bool:
        """Whether destination column `name` is there now (not only planned)."""
        if name is None or self.create_destination:
            return False
        return name.lower() not in {f.name.lower() for f in self.add_fields}


def run_job(
    spec: RunSpec,
    *,
    bq: BigQuery,
    engine: Engine,
    progress: ProgressCallback | None = None,
    spool_dir: Path,
) -> RunResult:
    """Run `spec` once. Raises a `RunError` (with `.transient`) on failure; the destination is then
    unchanged since the last committed checkpoint. Exceptions raised by `progress` propagate as-is
    (after clean-up), which is how a caller aborts a run."""
    _validate(spec)
    warehouse = _Warehouse(bq)
    dataset = spec.destination_dataset
    prefix = staging_prefix(spec.job_id)
    staging = f"{prefix}{uuid.uuid4().hex[:12]}"
    run_dir = Path(spool_dir) / staging
    dropped = _drop_leftover_staging(warehouse, dataset, prefix)

    plan = _prepare_destination(spec, warehouse)
    watermark, derived = spec.watermark, False
    uses_cursor = _uses_cursor(spec)
    if watermark is None and uses_cursor:
        watermark = _destination_watermark(warehouse, plan)
        derived = watermark is not None
    watermark_before = watermark

    estimate = estimate_rows(engine, spec.source_schema, spec.source_table) if watermark is None else None
    heartbeat = _Heartbeat(progress, estimate)
    heartbeat.watermark = watermark
    heartbeat.emit("starting", force=True)

    conformer = Conformer(
        plan.fields,
        _column_sources(spec, plan, engine.dialect.name),
        key_columns=plan.key_columns,
    )
    warehouse.create_table(dataset, staging, plan.fields)
    total_bytes = 0
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        while True:
            unit, last = _next_unit(spec, engine, plan, watermark)
            extracted, _committed, nbytes, unit_max = _run_unit(
                spec, engine, warehouse, plan, conformer, heartbeat, unit, staging, run_dir
            )
            total_bytes += nbytes
            if uses_cursor and unit_max is not None:
                watermark = unit_max
            if extracted or spec.load_strategy == "replace":
                heartbeat.checkpoints += 1
                heartbeat.watermark = watermark
                heartbeat.emit("checkpoint", force=True)
            if last or extracted == 0:
                break
    finally:
        try:
            warehouse.drop(dataset, staging)
        except RunError:
            logger.warning("could not drop staging table %s.%s; the next run of the job will", dataset, staging)
        shutil.rmtree(run_dir, ignore_errors=True)

    heartbeat.emit("done", force=True)
    return RunResult(
        rows_extracted=heartbeat.rows_extracted,
        rows_loaded=heartbeat.rows_loaded,
        bytes=total_bytes,
        watermark_before=watermark_before,
        watermark_after=watermark,
        checkpoints=heartbeat.checkpoints,
        watermark_derived=derived,
        columns_added=plan.columns_added,
        staging_dropped=tuple(dropped),
    )


def _validate(spec: RunSpec) -> None:
    names = {c.name for c in spec.columns}
    if not spec.columns:
        raise SchemaMismatchError("The job selects no source columns")
    if spec.load_strategy not in ("replace", "append", "incremental", "merge"):
        raise SchemaMismatchError(f"Unknown load strategy {spec.load_strategy!r}")
    if spec.load_strategy == "incremental" and not spec.cursor_column:
        raise SchemaMismatchError("An incremental load needs a cursor column")
    if spec.cursor_column and spec.cursor_column not in names:
        raise SchemaMismatchError(f"The cursor column {spec.cursor_column!r} is not among the selected columns")
    if spec.load_strategy == "merge":
        if not spec.merge_key:
            raise SchemaMismatchError("A merge needs a merge key")
        missing = [k for k in spec.merge_key if k not in names]
        if missing:
            raise SchemaMismatchError(
                f"The merge key column(s) {', '.join(missing)} are not among the selected columns"
            )
    if spec.chunk_rows <= 0:
        raise SchemaMismatchError("chunk_rows must be positive")


def _drop_leftover_staging(warehouse: _Warehouse, dataset: str, prefix: str) -> list[str]:
    """Staging tables of an earlier, crashed run of this job (one active run per job makes this safe)."""
    try:
        names = warehouse.table_names(dataset)
    except RunError as exc:
        if exc.transient:
            raise
        return []  # the dataset may not exist yet; nothing to clean
    dropped = []
    for name in names:
        if name.startswith(prefix):
            warehouse.drop(dataset, name)
            dropped.append(name)
    return dropped


def _prepare_destination(spec: RunSpec, warehouse: _Warehouse) -> _Plan:
    dataset, table = spec.destination_dataset, spec.destination_table
    dest_names = spec.destination_names()
    tag = spec.source_tag is not None
    if tag and spec.tag_column.lower() in {d.lower() for d in dest_names.values()}:
        raise SchemaMismatchError(f"The source tag column {spec.tag_column!r} is also a mapped source column")

    schema = warehouse.schema(dataset, table)
    if spec.plan:
        # Decided when the job was created/edited/reconnected: never again here, only checked.
        if problems := load_plan.table_mismatches(spec.plan, schema):
            raise SchemaMismatchError(load_plan.mismatch_message(spec.plan, problems))
    missing: list[BigQueryField] = []
    creating = schema is None
    if schema is None:
        # The job was configured against a table that is gone (or never created): it is created
        # from the source columns, the way the wizard's "Create new table" does.
        created = [BigQueryField(dest_names[c.name], *bigquery_type_for(c.type)) for c in spec.columns]
        if tag:
            created.append(BigQueryField(spec.tag_column, "STRING", description="Source tag of the loading job"))
        schema = TableSchema(dataset, table, tuple(created))
    else:
        for c in spec.columns:
            if schema.field_by_name(dest_names[c.name]) is None:
                missing.append(BigQueryField(dest_names[c.name], *bigquery_type_for(c.type)))
        if tag and schema.field_by_name(spec.tag_column) is None:
            missing.append(BigQueryField(spec.tag_column, "STRING"))
        # New source columns (schema evolution) and the tag column arrive as NULLABLE/REPEATED
        # additions at the end, the only change BigQuery makes in place.
        schema = TableSchema(dataset, table, schema.fields + tuple(missing))

    fields = schema.fields
    fed_sources = {d.lower() for d in dest_names.values()}
    for f in fields:
        if f.field_type.upper() in ("RECORD", "STRUCT") and f.name.lower() in fed_sources:
            raise SchemaMismatchError(f"Destination column {f.name!r} is a RECORD; a source column cannot fill it")
    fed_lower = {d.lower() for d in dest_names.values()} | ({spec.tag_column.lower()} if tag else set())
    fed = tuple(f.name for f in fields if f.name.lower() in fed_lower)
    actual = {f.name.lower(): f.name for f in fields}

    cursor_dest = schema.field_by_name(dest_names[spec.cursor_column]) if spec.cursor_column else None
    key_dest = tuple(actual[dest_names[k].lower()] for k in spec.merge_key)
    tag_dest = actual[spec.tag_column.lower()] if tag else None

    key_columns = spec.key_columns or tuple(c.name for c in spec.columns if c.primary_key)
    if not key_columns:
        key_columns = spec.merge_key or ((spec.cursor_column,) if spec.cursor_column else ())
    return _Plan(
        spec=spec,
        fields=fields,
        dest_names={k: actual[v.lower()] for k, v in dest_names.items()},
        fed=fed,
        cursor_dest=cursor_dest,
        key_dest=key_dest,
        tag_dest=tag_dest,
        columns_added=tuple(f.name for f in missing),
        read_columns=spec.columns,
        key_columns=key_columns,
        create_destination=creating,
        add_fields=tuple(missing),
    )


def _apply_schema_changes(warehouse: _Warehouse, plan: _Plan) -> None:
    """Create the destination or add its new columns, right before the first commit needs them."""
    spec = plan.spec
    dataset, table = spec.destination_dataset, spec.destination_table
    if plan.create_destination:
        warehouse.create_table(dataset, table, plan.fields)
    elif plan.add_fields:
        warehouse.add_columns(dataset, table, plan.add_fields)
    else:
        return
    plan.create_destination, plan.add_fields = False, ()
    schema = warehouse.schema(dataset, table)
    planned = [(f.name.lower(), f.field_type.upper(), f.mode) for f in plan.fields]
    actual = [(f.name.lower(), f.field_type.upper(), f.mode) for f in schema.fields] if schema else []
    if actual != planned:
        # Someone changed the table meanwhile: staging (and its Parquet) no longer line up with it.
        raise WarehouseError(
            f"{dataset}.{table} changed while the run was preparing; its columns are not the expected ones",
            transient=True,
        )


def _column_sources(spec: RunSpec, plan: _Plan, dialect: str) -> dict[str, ColumnSource]:
    sources: dict[str, ColumnSource] = {}
    by_name = {c.name: c for c in spec.columns}
    for source_name, dest_name in plan.dest_names.items():
        col = by_name[source_name]
        # PostgreSQL, MySQL and MariaDB (json_valid CHECK) guarantee JSON columns hold JSON;
        # text columns and SQLite do not, and BigQuery rejects a whole load for one bad value.
        validate = col.type.family is not Family.JSON or dialect == "sqlite"
        sources[dest_name] = ColumnSource(source=source_name, validate_json=validate, source_type=col.type)
    if plan.tag_dest is not None:
        sources[plan.tag_dest] = ColumnSource(constant=spec.source_tag)
    return sources


def _destination_watermark(warehouse: _Warehouse, plan: _Plan) -> Any:
    assert plan.cursor_dest is not None
    spec = plan.spec
    if not plan.existing(plan.cursor_dest.name) or (plan.tag_dest is not None and not plan.existing(plan.tag_dest)):
        return None  # the table (or its cursor/tag column) is not there yet: it holds none of this job's rows
    where_tag = (plan.tag_dest, spec.source_tag) if plan.tag_dest is not None and spec.source_tag is not None else None
    return warehouse.max_value(spec.destination_dataset, spec.destination_table, plan.cursor_dest.name, where_tag)


def _next_unit(spec: RunSpec, engine: Engine, plan: _Plan, watermark: Any) -> tuple[ExtractQuery, bool]:
    """The next extraction range after `watermark`, committed on its own, and whether it is the last.

    Keyset checkpoints end just before the first cursor value past `checkpoint_rows`
    rows, so equal cursor values always land in one checkpoint and `cursor > watermark`
    resumes exactly after the last committed one. Within a range the order does not
    matter (it commits atomically), which spares the source a sort per checkpoint.
    """
    read = (spec.source_schema, spec.source_table, plan.read_columns)
    if not _uses_cursor(spec):
        return ExtractQuery(*read), True
    cursor = spec.cursor_column
    ranged = ExtractQuery(*read, cursor=cursor, after=watermark)
    if not spec.checkpoint_rows:
        return ranged, True
    first, boundary = cursor_boundary(engine, ranged, spec.checkpoint_rows)
    if boundary is None:
        return ranged, True
    if first == boundary:
        # More rows share one cursor value than a checkpoint holds: they still commit together.
        return ExtractQuery(*read, cursor=cursor, after=watermark, through=boundary), False
    return ExtractQuery(*read, cursor=cursor, after=watermark, before=boundary), False


def _uses_cursor(spec: RunSpec) -> bool:
    return spec.cursor_column is not None and spec.load_strategy in ("incremental", "merge")


def _run_unit(
    spec: RunSpec,
    engine: Engine,
    warehouse: _Warehouse,
    plan: _Plan,
    conformer: Conformer,
    heartbeat: _Heartbeat,
    unit: ExtractQuery,
    staging: str,
    run_dir: Path,
) -> tuple[int, int, int, Any]:
    """Extract, spool, load and commit one unit: (rows extracted, rows committed, bytes, max cursor)."""
    dataset = spec.destination_dataset
    loader = _Loader(warehouse, dataset, staging)
    spool = _Spool(run_dir, conformer.schema, loader.submit)
    try:
        heartbeat.emit("extracting")
        extracted, unit_max = _spool_unit(spec, engine, plan, conformer, unit, spool, heartbeat)
        heartbeat.emit("loading")
        loader.wait(heartbeat)
    except BaseException:
        spool.abort()
        loader.close()
        raise
    loader.close()

    if extracted == 0 and spec.load_strategy != "replace":
        return 0, 0, spool.bytes, None
    if not loader.loaded_anything:
        # Replace with an empty source: staging must be empty too (it may hold an earlier unit).
        warehouse.query(f"DELETE FROM {table_ref(dataset, staging)} WHERE TRUE")  # noqa: S608 - quote_name/bq_literal
    committed = extracted
    heartbeat.emit("committing")
    _apply_schema_changes(warehouse, plan)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="etl-commit") as pool:
        if spec.load_strategy == "incremental":
            # Scripts report no affected-row count (on the emulator at all); count what the commit's
            # filter will let through. One run per job means nothing else adds this tag's rows meanwhile.
            count_sql = f"SELECT COUNT(*) AS n FROM {table_ref(dataset, staging)} S WHERE {_new_rows_condition(plan)}"  # noqa: S608
            committed = int(heartbeat.wait(pool.submit(warehouse.query, count_sql))[0]["n"])
        heartbeat.wait(pool.submit(warehouse.query, _commit_script(plan, staging)))
    heartbeat.rows_loaded += committed
    return extracted, committed, spool.bytes, unit_max


def _spool_unit(
    spec: RunSpec,
    engine: Engine,
    plan: _Plan | None,
    conformer: Conformer,
    unit: ExtractQuery,
    spool: _Spool,
    heartbeat: _Heartbeat | None,
) -> tuple[int, Any]:
    """The extract -> conform -> Parquet loop: (rows extracted, max cursor when the run tracks one)."""
    unit_max: Any = None
    extracted = 0
    track = plan is not None and _uses_cursor(spec) and plan.cursor_dest is not None
    for batch in extract_batches(engine, unit, chunk_rows=spec.chunk_rows, method=spec.extract_method):
        conformed = conformer.conform(batch)
        if track:
            assert spec.cursor_column is not None and plan is not None and plan.cursor_dest is not None
            unit_max = _cursor_max(unit_max, batch.column(spec.cursor_column), conformed.column(plan.cursor_dest.name))
        spool.write(conformed)
        extracted += batch.num_rows
        if heartbeat is not None:
            heartbeat.rows_extracted += batch.num_rows
            heartbeat.emit()
    spool.finish()
    return extracted, unit_max


@dataclass(frozen=True)
class ParquetSpool:
    paths: tuple[Path, ...]
    rows: int
    bytes: int


def extract_to_parquet(
    spec: RunSpec,
    *,
    engine: Engine,
    directory: Path,
    fields: Sequence[BigQueryField] | None = None,
) -> ParquetSpool:
    """The run's extraction alone: the source table as conformed Parquet part files in `directory`.

    `fields` is the destination schema (default: the one a new table gets). Used by the
    benchmark and handy for inspecting exactly what a run would load.
    """
    _validate(spec)
    dest_names = spec.destination_names()
    if fields is None:
        fields = [BigQueryField(dest_names[c.name], *bigquery_type_for(c.type)) for c in spec.columns]
        if spec.source_tag is not None:
            fields.append(BigQueryField(spec.tag_column, "STRING"))
    sqlite = engine.dialect.name == "sqlite"
    sources = {
        dest_names[c.name]: ColumnSource(
            source=c.name, validate_json=c.type.family is not Family.JSON or sqlite, source_type=c.type
        )
        for c in spec.columns
    }
    if spec.source_tag is not None:
        sources[spec.tag_column] = ColumnSource(constant=spec.source_tag)
    key_columns = spec.key_columns or tuple(c.name for c in spec.columns if c.primary_key)
    conformer = Conformer(fields, sources, key_columns=key_columns)
    directory.mkdir(parents=True, exist_ok=True)
    spool = _Spool(directory, conformer.schema, lambda _path, _rows: None)
    query = ExtractQuery(spec.source_schema, spec.source_table, spec.columns)
    try:
        rows, _ = _spool_unit(spec, engine, None, conformer, query, spool, None)
    except BaseException:
        spool.abort()
        raise
    return ParquetSpool(paths=tuple(spool.paths), rows=rows, bytes=spool.bytes)


def _cursor_max(current: Any, source: pa.Array, conformed: pa.Array) -> Any:
    """The larger of `current` and the batch's maximum cursor, ordered the way the source orders it.

    The source's own Arrow values are used (a watermark is compared with source values),
    except where they are text standing in for a number (PostgreSQL numeric on the ADBC
    path), whose order only the conformed decimal column has.
    """
    if isinstance(source.type, pa.ExtensionType):
        source = source.storage
    column = source
    if pa.types.is_string(source.type) and pa.types.is_decimal(conformed.type):
        column = conformed
    if len(column) == column.null_count:
        return current
    value = pc.max(column).as_py()
    if current is None or value > current:
        return value
    return current


def _new_rows_condition(plan: _Plan) -> str:
    """Staging rows (alias S) past the destination's MAX(cursor) for this job's tag."""
    spec = plan.spec
    assert plan.cursor_dest is not None
    target = table_ref(spec.destination_dataset, spec.destination_table)
    cursor = quote_name(plan.cursor_dest.name)
    mine = ""
    if plan.tag_dest is not None:
        mine = f" WHERE {quote_name(plan.tag_dest)} = {bq_literal(spec.source_tag, 'STRING')}"
    return f"IFNULL(S.{cursor} > (SELECT MAX({cursor}) FROM {target}{mine}), TRUE)"  # noqa: S608 - quote_name/bq_literal


def _commit_script(plan: _Plan, staging: str) -> str:
    spec = plan.spec
    target = table_ref(spec.destination_dataset, spec.destination_table)
    source = table_ref(spec.destination_dataset, staging)
    cols = ", ".join(quote_name(c) for c in plan.fed)
    insert = f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {source} S"  # noqa: S608 - quote_name/bq_literal
    statements: list[str] = []
    match spec.load_strategy:
        case "replace":
            if plan.tag_dest is not None:
                statements.append(
                    f"DELETE FROM {target} WHERE {quote_name(plan.tag_dest)} = {bq_literal(spec.source_tag, 'STRING')}"  # noqa: S608 - quote_name/bq_literal
                )
            else:
                statements.append(f"DELETE FROM {target} WHERE TRUE")  # noqa: S608 - quote_name/bq_literal
            statements.append(insert)
        case "append":
            statements.append(insert)
        case "incremental":
            assert plan.cursor_dest is not None
            # Extraction already read only `cursor > watermark`. Filtering again on the destination's own
            # MAX(cursor), inside the transaction, makes the commit idempotent: a run whose previous commit
            # landed but whose watermark was never persisted (a crash in between) cannot duplicate rows.
            statements.append(f"{insert} WHERE {_new_rows_condition(plan)}")
        case "merge":
            keys = list(plan.key_dest) + ([plan.tag_dest] if plan.tag_dest else [])
            on = " AND ".join(f"T.{quote_name(k)} = S.{quote_name(k)}" for k in keys)
            keys_lower = {k.lower() for k in keys}
            updates = ", ".join(f"{quote_name(c)} = S.{quote_name(c)}" for c in plan.fed if c.lower() not in keys_lower)
            values = ", ".join(f"S.{quote_name(c)}" for c in plan.fed)
            merge = f"MERGE {target} T USING {source} S ON {on}"
            if updates:
                merge += f" WHEN MATCHED THEN UPDATE SET {updates}"
            merge += f" WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({values})"  # noqa: S608 - quote_name/bq_literal
            statements.append(merge)
    body = "; ".join(statements)
    return f"BEGIN TRANSACTION; {body}; COMMIT TRANSACTION;"
