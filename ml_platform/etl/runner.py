"""Run one ETL job: extract -> conform -> Parquet spool -> staging table -> one atomic commit per unit.

Guarantees (DESIGN §6, issue 15):
- the destination changes only in one commit script per unit (the whole run, or one
  keyset-ordered checkpoint of a large load) that also writes the unit's row in the commit
  ledger (`etl.ledger`): a transaction, or for incremental an idempotent INSERT followed by the
  ledger row (`etl.commit`); a failure before it leaves the destination as it was;
- a unit has a deterministic id and its commit a deterministic BigQuery job id: a retry after an
  unknown outcome waits for / looks up that job and the ledger instead of committing again;
- the watermark comes from the ledger (same strategy, cursor and tag) or, failing that, from the
  destination's MAX(cursor) over the job's own rows — never from the app database;
- incremental runs re-read a window below the watermark and the commit de-duplicates on the key,
  so ties and late-committing rows arrive exactly once;
- every statement on the destination is scoped to the job's tag (untagged: `tag IS NULL`) and
  carries a partition filter; a later run of the same job fences earlier ones off;
- schema changes (a missing destination, new source columns, the tag column) are made just
  before the first commit, so a run failing earlier changes nothing at all;
- staging tables are named per run (`_stg_<job>_r<run>_<random>`) and loaded with the
  destination's explicit schema.
"""

from __future__ import annotations

import concurrent.futures
import logging
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from ml_platform.etl import commit as commits
from ml_platform.etl import ledger, ranges
from ml_platform.etl import plan as load_plan
from ml_platform.etl.bqsql import bq_literal, quote_name, staging_prefix, table_ref, union_ref
from ml_platform.etl.compat_model import missing_strategy_choices
from ml_platform.etl.conform import ColumnSource, Conformer
from ml_platform.etl.errors import (
    CastError,
    RunError,
    SchemaMismatchError,
    SourceError,
    WarehouseError,
    WarehouseUnavailable,
)
from ml_platform.etl.extract import ExtractQuery, cursor_boundary
from ml_platform.etl.pipeline import part_rows, use_arrow_allocator
from ml_platform.etl.pipeline import spool_unit as _spool_unit
from ml_platform.etl.runspec import (
    FaultHook,
    LoadStrategy,
    Plan,
    ProgressCallback,
    RunProgress,
    RunResult,
    RunSpec,
)
from ml_platform.etl.sources.catalog import estimate_rows
from ml_platform.etl.staging import HEARTBEAT_SECONDS, Dropper, Heartbeat, Loader, Spool, Warehouse, spooling
from ml_platform.etl.types import BigQueryField, Family, TableSchema, bigquery_type_for
from ml_platform.etl.watermark import reread_from, watermark_from_json, watermark_to_json

__all__ = [
    "HEARTBEAT_SECONDS",
    "CastError",
    "LoadStrategy",
    "RunError",
    "RunProgress",
    "RunResult",
    "RunSpec",
    "SchemaMismatchError",
    "SourceError",
    "WarehouseError",
    "ParquetSpool",
    "bq_literal",
    "extract_to_parquet",
    "quote_name",
    "run_job",
    "staging_prefix",
    "table_ref",
    "watermark_from_json",
    "watermark_to_json",
]

if TYPE_CHECKING:
    from ml_platform.etl.bigquery import BigQuery

logger = logging.getLogger(__name__)


def run_job(
    spec: RunSpec,
    *,
    bq: BigQuery,
    engine: Engine,
    progress: ProgressCallback | None = None,
    spool_dir: Path,
    fault: FaultHook | None = None,
) -> RunResult:
    """Run `spec` once. Raises a `RunError` (with `.transient`) on failure; the destination is then
    unchanged since the last committed unit. Exceptions raised by `progress` or `fault` propagate
    as-is (after clean-up), which is how a caller aborts a run."""
    _validate(spec)
    use_arrow_allocator()
    warehouse = Warehouse(bq)
    dataset = spec.destination_dataset
    prefix = staging_prefix(spec.job_id)
    staging = f"{prefix}r{_safe(spec.run_id)}_{uuid.uuid4().hex[:12]}"
    run_dir = Path(spool_dir) / staging
    # A key range drops only its own earlier attempts' staging: its sibling ranges are running.
    own = f"{prefix}r{_safe(spec.run_id)}_" if spec.key_range is not None else prefix
    dropped, tables = _drop_leftover_staging(warehouse, dataset, own)
    plan = _prepare_destination(spec, warehouse)
    who = _identity(spec, plan)
    if tables is None or ledger.LEDGER_TABLE not in tables:
        _ensure_ledger(warehouse, dataset)
    state = _RunState(progress, warehouse, who, plan, fault or _no_fault)
    if not state.resume(engine):
        return state.result(0, tuple(dropped))

    conformer = Conformer(plan.fields, _column_sources(spec, plan, engine.dialect.name), key_columns=plan.key_columns)
    total_bytes = 0
    dropper = Dropper(warehouse, dataset)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        after = state.read_from
        while True:
            unit, last = _next_unit(spec, engine, plan, after)
            extracted, nbytes, unit_max = _run_unit(
                spec, engine, plan, conformer, state, unit, (staging, dropper), run_dir
            )
            total_bytes += nbytes
            after = unit_max if unit_max is not None else after
            if last or extracted == 0:
                break
    finally:
        dropper.close()  # every unit's part tables
        shutil.rmtree(run_dir, ignore_errors=True)

    state.heartbeat.emit("done", force=True)
    return state.result(total_bytes, tuple(dropped))


def _no_fault(_point: str) -> None:
    return None


def _safe(value: Any) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in str(value))[:40]


def _identity(spec: RunSpec, plan: Plan) -> ledger.Identity:
    cursor = plan.cursor_dest.name if plan.cursor_dest is not None and _uses_cursor(spec) else None
    sign = ledger.signature(spec.load_strategy, cursor, spec.source_tag)
    return ledger.Identity(
        dataset=spec.destination_dataset,
        table=spec.destination_table,
        job=str(spec.job_id),
        tag=spec.source_tag,
        run=str(spec.run_id),
        fence=int(spec.fence),
        signature=sign if spec.key_range is None else ranges.range_signature(sign, spec.run_id),
    )


def _ensure_ledger(warehouse: Warehouse, dataset: str) -> None:
    if warehouse.schema(dataset, ledger.LEDGER_TABLE) is not None:
        return
    try:
        warehouse.create_table(dataset, ledger.LEDGER_TABLE, ledger.LEDGER_FIELDS)
    except RunError:
        if warehouse.schema(dataset, ledger.LEDGER_TABLE) is None:  # not a race with another run
            raise


class _RunState:
    """What one run knows while it commits units: where it resumes, its watermark, its counters."""

    def __init__(
        self, progress: ProgressCallback | None, warehouse: Warehouse, who: ledger.Identity, plan: Plan, fault: FaultHook
    ) -> None:
        self.warehouse, self.who, self.plan, self.fault = warehouse, who, plan, fault
        self.heartbeat = Heartbeat(progress, None)
        self.number = 0
        self.watermark: Any = None
        self.watermark_before: Any = None
        self.derived = False
        self.read_from: Any = None
        self.attempt: int | None = None

    def resume(self, engine: Engine) -> bool:
        """Claim the table, settle earlier attempts of this run, then derive the watermark; False when nothing
        is left to do. The claim and the first ledger read are one script: one round trip."""
        seen = -1
        sql = ledger.claim_and_resume_script(self.who)
        while True:
            rows = self.warehouse.query(sql)
            sql = ledger.resume_sql(self.who)
            done = [r for r in rows if r["run"] == self.who.run]
            self.number = max((ledger.unit_number(r["unit"]) + 1 for r in done), default=0)
            if self.number == seen:
                raise WarehouseUnavailable(f"The commit of unit {self.number} succeeded but left no ledger row")
            seen = self.number
            self.attempt = commits.settle(self.warehouse, self.who, self.number, self.heartbeat)
            if self.attempt is not None:
                break
        spec = self.plan.spec
        if done and not _uses_cursor(spec):
            return False  # an earlier attempt of this run committed its one unit
        if _uses_cursor(spec):
            self._derive_watermark([r for r in rows if r["signature"] == self.who.signature])
        if self.watermark is None:
            self.heartbeat.estimate = estimate_rows(engine, spec.source_schema, spec.source_table)
        self.heartbeat.watermark = self.watermark
        self.heartbeat.emit("starting", force=True)
        return True

    def _derive_watermark(self, units: list[dict[str, Any]]) -> None:
        latest = max(units, key=lambda r: (r["fence"], r["committed_at"]), default=None)
        if latest is not None:
            self.watermark = ledger.parse_watermark(latest["watermark"])
        elif self.plan.spec.key_range is None and self.plan.existing(
            self.plan.cursor_dest.name if self.plan.cursor_dest else None
        ) and (
            self.plan.tag_dest is None or self.plan.existing(self.plan.tag_dest)
        ):
            found = self.warehouse.query(commits.max_cursor_sql(self.plan))
            self.watermark = found[0]["v"] if found else None
        self.derived = self.watermark is not None
        self.watermark_before = self.watermark
        spec = self.plan.spec
        strict = spec.load_strategy == "incremental" and spec.overlap == "append" and not commits.key_columns(self.plan)
        self.read_from = self.watermark if strict else reread_from(self.watermark, spec.reread_window)
        if spec.key_range is not None and spec.key_range[0] is not None:
            self.read_from = spec.key_range[0] if self.read_from is None else max(self.read_from, spec.key_range[0])

    def committed(self, unit_max: Any, rows: int | None, script: str) -> None:
        """Apply one unit's commit script once; then report the checkpoint.

        `rows` None: the script counts the rows it commits and returns them (incremental)."""
        known, self.attempt = self.attempt, None  # resume() settled the first unit: no second look-up
        result = commits.apply_once(self.warehouse, self.who, self.number, script, self.heartbeat, self.fault, known)
        if result is not None:
            self.heartbeat.rows_loaded += int(result[0]["n"]) if rows is None else rows
        self.fault("after_commit")
        self.number += 1
        self.watermark = self.next_watermark(unit_max)
        self.heartbeat.checkpoints += 1
        self.heartbeat.watermark = self.watermark
        self.heartbeat.emit("checkpoint", force=True)

    def next_watermark(self, unit_max: Any) -> Any:
        if not _uses_cursor(self.plan.spec) or unit_max is None:
            return self.watermark
        try:
            return unit_max if self.watermark is None or unit_max > self.watermark else self.watermark
        except TypeError:
            return unit_max

    def result(self, total_bytes: int, dropped: tuple[str, ...]) -> RunResult:
        return RunResult(
            rows_extracted=self.heartbeat.rows_extracted,
            rows_loaded=self.heartbeat.rows_loaded,
            bytes=total_bytes,
            watermark_before=self.watermark_before,
            watermark_after=self.watermark,
            checkpoints=self.heartbeat.checkpoints,
            watermark_derived=self.derived,
            columns_added=self.plan.columns_added,
            staging_dropped=dropped,
        )


def _validate(spec: RunSpec) -> None:
    names = {c.name for c in spec.columns}
    if not spec.columns:
        raise SchemaMismatchError("The job selects no source columns")
    if spec.load_strategy not in ("replace", "append", "incremental", "merge"):
        raise SchemaMismatchError(f"Unknown load strategy {spec.load_strategy!r}")
    if missing := missing_strategy_choices(spec.load_strategy, spec.cursor_column, spec.merge_key):
        raise SchemaMismatchError(" ".join(missing.values()))
    if spec.cursor_column and spec.cursor_column not in names:
        raise SchemaMismatchError(f"The cursor column {spec.cursor_column!r} is not among the selected columns")
    if spec.load_strategy == "merge":
        missing = [k for k in spec.merge_key if k not in names]
        if missing:
            raise SchemaMismatchError(
                f"The merge key column(s) {', '.join(missing)} are not among the selected columns"
            )
    if spec.chunk_rows <= 0:
        raise SchemaMismatchError("chunk_rows must be positive")


def _drop_leftover_staging(warehouse: Warehouse, dataset: str, prefix: str) -> tuple[list[str], list[str] | None]:
    """Drop staging tables of earlier runs of this job: (dropped, the dataset's tables; None when unknown).

    A run of this job still working on one of them was superseded (one active run per job): its
    claim is fenced off, so losing its staging table only makes it fail sooner.
    """
    try:
        names = warehouse.table_names(dataset)
    except RunError as exc:
        if exc.transient:
            raise
        return [], None  # the dataset may not exist yet; nothing to clean
    dropped = []
    for name in names:
        if name.startswith(prefix):
            warehouse.drop(dataset, name)
            dropped.append(name)
    return dropped, names


def _prepare_destination(spec: RunSpec, warehouse: Warehouse) -> Plan:
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
    # An untagged job on a table with a tag column owns the rows whose tag IS NULL, never the whole table.
    tag_dest = actual.get(spec.tag_column.lower())

    key_columns = spec.key_columns or tuple(c.name for c in spec.columns if c.primary_key)
    if not key_columns:
        key_columns = spec.merge_key or ((spec.cursor_column,) if spec.cursor_column else ())
    return Plan(
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
        partitioning=schema.partitioning,
        create_destination=creating,
        add_fields=tuple(missing),
    )


def _apply_schema_changes(warehouse: Warehouse, plan: Plan) -> None:
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
        raise WarehouseUnavailable(
            f"{dataset}.{table} changed while the run was preparing; its columns are not the expected ones"
        )


def _column_sources(spec: RunSpec, plan: Plan, dialect: str) -> dict[str, ColumnSource]:
    sources: dict[str, ColumnSource] = {}
    by_name = {c.name: c for c in spec.columns}
    for source_name, dest_name in plan.dest_names.items():
        col = by_name[source_name]
        # PostgreSQL, MySQL and MariaDB (json_valid CHECK) guarantee JSON columns hold JSON;
        # text columns and SQLite do not, and BigQuery rejects a whole load for one bad value.
        validate = col.type.family is not Family.JSON or dialect == "sqlite"
        sources[dest_name] = ColumnSource(source=source_name, validate_json=validate, source_type=col.type)
    if plan.tag_dest is not None and spec.source_tag is not None:
        sources[plan.tag_dest] = ColumnSource(constant=spec.source_tag)
    return sources


def _next_unit(spec: RunSpec, engine: Engine, plan: Plan, watermark: Any) -> tuple[ExtractQuery, bool]:
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
    end = spec.key_range[1] if spec.key_range is not None else None  # a split load's range ends here
    ranged = ExtractQuery(*read, cursor=cursor, after=watermark, through=end)
    if not spec.checkpoint_rows:
        return ranged, True
    first, boundary = cursor_boundary(engine, ranged, spec.checkpoint_rows)
    if boundary is None:
        return ranged, True
    if first == boundary:
        # More rows share one cursor value than a checkpoint holds: they still commit together.
        return ExtractQuery(*read, cursor=cursor, after=watermark, through=boundary), False
    return ExtractQuery(*read, cursor=cursor, after=watermark, before=boundary, through=end), False


def _uses_cursor(spec: RunSpec) -> bool:
    return spec.cursor_column is not None and spec.load_strategy in ("incremental", "merge")


def _run_unit(
    spec: RunSpec,
    engine: Engine,
    plan: Plan,
    conformer: Conformer,
    state: _RunState,
    unit: ExtractQuery,
    staging: tuple[str, Dropper],
    run_dir: Path,
) -> tuple[int, int, Any]:
    """Extract, spool, load and commit one unit: (rows extracted, bytes, max cursor).

    `staging`: the run's staging name and the dropper its part tables go to once the unit is done."""
    dataset, warehouse, heartbeat = spec.destination_dataset, state.warehouse, state.heartbeat
    # The unit's part tables, `<staging>_<unit>_<part>`: dropped once the unit is committed or has failed.
    loader = Loader(warehouse, dataset, f"{staging[0]}_{state.number}", plan.fields, heartbeat=heartbeat)
    expected = _expected_rows(spec, heartbeat)
    spool = Spool(run_dir, conformer.schema, loader.submit, part_rows=part_rows(expected), expected_rows=expected)
    try:
        with spooling(spool, loader):
            heartbeat.emit("extracting")
            state.fault("before_load")
            extracted, unit_max = _spool_unit(spec, engine, plan, conformer, unit, spool, heartbeat)
            heartbeat.emit("loading")
            loader.wait(heartbeat)
        state.fault("after_load")

        if extracted == 0 and spec.load_strategy != "replace":
            return 0, spool.bytes, None
        loader.ensure_table()  # replace with an empty source (its one unit) commits an empty staging
        heartbeat.emit("committing")
        _apply_schema_changes(warehouse, plan)
        if spec.load_strategy == "merge":
            commits.check_merge_keys(warehouse, plan, loader.tables)
        rows = _rows_to_commit(state, loader.tables, extracted)
        state.fault("before_commit")
        script = commits.commit_script(
            plan, loader.tables, state.who, state.number, watermark=state.next_watermark(unit_max), rows=rows
        )
        state.committed(unit_max, rows, script)
        return extracted, spool.bytes, unit_max
    finally:
        loader.drop_tables(staging[1])


def _expected_rows(spec: RunSpec, heartbeat: Heartbeat) -> int | None:
    """Rows the next unit is expected to hold, from the source's estimate (None: unknown)."""
    if heartbeat.estimate is None:
        return None
    left = max(heartbeat.estimate - heartbeat.rows_extracted, 0)
    return min(left, spec.checkpoint_rows) if spec.checkpoint_rows and _uses_cursor(spec) else left


def _rows_to_commit(state: _RunState, staging: Sequence[str], extracted: int) -> int | None:
    """Rows the commit adds or changes (scripts report no affected-row count, on the emulator at all).

    None for incremental: its commit script counts the rows it inserts (one anti-join, not two)."""
    plan = state.plan
    if plan.spec.load_strategy == "incremental":
        return None
    if plan.spec.load_strategy != "merge":
        return extracted
    source = union_ref(plan.spec.destination_dataset, staging)
    keys = ", ".join(quote_name(k) for k in plan.key_dest)
    sql = f"SELECT COUNT(*) AS n FROM (SELECT DISTINCT {keys} FROM {source})"  # noqa: S608
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="etl-count") as pool:
        return int(state.heartbeat.wait(pool.submit(state.warehouse.query, sql))[0]["n"])


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
    use_arrow_allocator()
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
    expected = estimate_rows(engine, spec.source_schema, spec.source_table)
    spool = Spool(directory, conformer.schema, lambda _path, _rows: None, part_rows=part_rows(expected))
    query = ExtractQuery(spec.source_schema, spec.source_table, spec.columns)
    try:
        rows, _ = _spool_unit(spec, engine, None, conformer, query, spool, None)
    except BaseException:
        spool.abort()
        raise
    return ParquetSpool(paths=tuple(spool.paths), rows=rows, bytes=spool.bytes)
