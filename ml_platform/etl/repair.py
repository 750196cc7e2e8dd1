"""Repair: reload exactly the key ranges (or, for a text / composite key, the keys) Verify found differing,
through the runner's commit path.

The source rows of those ranges go the run's own way (extract -> conform by the job's plan ->
Parquet -> a staging table named per run, `_stg_<job>_r<run>_<random>`), then ONE BigQuery
transaction, built and applied like a run's unit (`etl.commit`, `etl.ledger`):

    BEGIN TRANSACTION; <fence check>; <unit check>;
      DELETE FROM dest WHERE <the job's rows: tag (or tag IS NULL) + partition filter> AND (ranges | keys);
      INSERT INTO dest (...) SELECT ... FROM staging;
      <ledger row of unit 0 of the repair run, no watermark>;
    COMMIT TRANSACTION;

The repair is a run of its own (a JobRun of kind *repair*: its `run_id` and fencing token): it
claims the table like a run, so an earlier run declared dead can no longer commit, and a later
run supersedes it; a retry of the same repair after an unknown outcome settles the deterministic
BigQuery job / ledger row instead of applying the ranges twice. Its ledger row carries no
watermark, so it never moves a job's watermark.
"""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from ml_platform.etl import commit as commits
from ml_platform.etl import ledger, runner
from ml_platform.etl.bqsql import bq_literal, quote_name, staging_prefix, table_ref, union_ref
from ml_platform.etl.conform import Conformer
from ml_platform.etl.errors import RunError, SchemaMismatchError
from ml_platform.etl.extract import ExtractQuery
from ml_platform.etl.runspec import FaultHook, Plan, RunSpec
from ml_platform.etl.staging import Dropper, Heartbeat, Loader, Spool, Warehouse, spooling
from ml_platform.etl.verify_sql import NULL_TEXT, kind_for

if TYPE_CHECKING:
    from ml_platform.etl.bigquery import BigQuery

UNIT = 0  # a repair commits one unit
KEYS_PER_QUERY = 500  # differing text / composite keys read from the source per query
MAX_KEYS = 10_000  # more, and the one DELETE statement listing them nears BigQuery's 1 MB statement limit


@dataclass(frozen=True)
class RepairResult:
    ranges: int
    rows_loaded: int


def range_condition(key: str, ranges: Sequence[tuple[int, int]]) -> str:
    k = quote_name(key)
    return " OR ".join(f"({k} >= {int(lo)} AND {k} < {int(hi)})" for lo, hi in ranges)


def key_condition(plan: Plan, key_columns: Sequence[str], keys: Sequence[Sequence[str]]) -> str:
    """BigQuery: the rows whose key columns (source names) hold one of `keys` (canonical texts)."""
    types = {f.name: f.field_type for f in plan.fields}
    names = [plan.dest_names[c] for c in key_columns]

    def equals(name: str, text: str) -> str:
        value = _typed(text, types[name])
        return f"{quote_name(name)} IS NULL" if value is None else f"{quote_name(name)} = {bq_literal(value, types[name])}"

    return " OR ".join("(" + " AND ".join(equals(n, t) for n, t in zip(names, key, strict=True)) + ")" for key in keys)


def _typed(text: str, field_type: str) -> Any:
    """A key column's canonical text (`verify_sql`) as its value: an integer, a string, or None."""
    if text == NULL_TEXT:
        return None
    return int(text) if kind_for(field_type) == "int" else text


def repair_script(plan: Plan, staging: Sequence[str], who: ledger.Identity, ranges: Sequence[tuple[int, int]], *,
                  key: str, rows: int, condition: str | None = None) -> str:
    """The repair's transaction: fence and unit checks, the job's rows in `ranges` (or matching `condition`)
    replaced, its ledger row."""
    spec = plan.spec
    target = table_ref(spec.destination_dataset, spec.destination_table)
    cols = ", ".join(quote_name(c) for c in plan.fed)
    body = [
        ledger.fence_check(who),
        ledger.unit_check(who, UNIT),
        f"DELETE FROM {target} WHERE {commits.scope(plan)} AND ({condition or range_condition(plan.dest_names[key], ranges)})",  # noqa: S608
        f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {union_ref(spec.destination_dataset, staging)}",  # noqa: S608
        ledger.ledger_insert(who, UNIT, kind="unit", watermark=None, rows=rows),
    ]
    return "BEGIN TRANSACTION; " + "; ".join(body) + "; COMMIT TRANSACTION;"


def repair_ranges(spec: RunSpec, ranges: Sequence[tuple[int, int]], *, key: str, bq: BigQuery, engine: Engine,
                  spool_dir: Path, fault: FaultHook | None = None) -> RepairResult:
    """Replace the job's rows with integer key (a source column name) in `ranges` ([lo, hi)) by the source's.

    `spec.run_id` / `spec.fence` are the repair run's; calling again with the same run id after an
    unknown outcome commits nothing twice (the result then reports the rows the first attempt loaded).
    """
    if not ranges:
        return RepairResult(0, 0)

    def units(plan: Plan) -> list[ExtractQuery]:
        return [ExtractQuery(spec.source_schema, spec.source_table, plan.read_columns, cursor=key, after=int(lo) - 1,
                             before=int(hi)) for lo, hi in ranges]

    def condition(plan: Plan) -> str:
        return range_condition(plan.dest_names[key], ranges)

    return _repair(spec, len(ranges), units, condition, bq=bq, engine=engine, spool_dir=spool_dir, fault=fault)


def repair_keys(spec: RunSpec, keys: Sequence[Sequence[str]], *, key_columns: Sequence[str], bq: BigQuery,
                engine: Engine, spool_dir: Path, fault: FaultHook | None = None) -> RepairResult:
    """Replace the job's rows whose text / composite key (`key_columns`, source names) is one of `keys`
    (Verify's `repair_keys`: the columns' canonical texts) by the source's; otherwise as `repair_ranges`."""
    if not keys:
        return RepairResult(0, 0)
    if len(keys) > MAX_KEYS:
        raise RunError(f"{len(keys):,} rows differ: too many to repair key by key in one transaction (at most "
                       f"{MAX_KEYS:,}); run the job to reload the table instead")

    def units(plan: Plan) -> list[ExtractQuery]:
        types = [next(f.field_type for f in plan.fields if f.name == plan.dest_names[c]) for c in key_columns]
        values = [tuple(_typed(t, ft) for t, ft in zip(k, types, strict=True)) for k in keys]
        return [ExtractQuery(spec.source_schema, spec.source_table, plan.read_columns, keys=tuple(key_columns),
                             key_values=tuple(values[i:i + KEYS_PER_QUERY]))
                for i in range(0, len(values), KEYS_PER_QUERY)]

    def condition(plan: Plan) -> str:
        return key_condition(plan, key_columns, keys)

    return _repair(spec, len(keys), units, condition, bq=bq, engine=engine, spool_dir=spool_dir, fault=fault)


def _repair(spec: RunSpec, parts: int, units: Callable[[Plan], list[ExtractQuery]], condition: Callable[[Plan], str],
            *, bq: BigQuery, engine: Engine, spool_dir: Path, fault: FaultHook | None) -> RepairResult:
    runner._validate(spec)  # noqa: SLF001 - the runner's own checks and plan, shared on purpose
    warehouse = Warehouse(bq)
    dataset = spec.destination_dataset
    prefix = staging_prefix(spec.job_id)
    _, tables = runner._drop_leftover_staging(warehouse, dataset, prefix)  # noqa: SLF001
    plan = runner._prepare_destination(spec, warehouse)  # noqa: SLF001
    if plan.create_destination or plan.add_fields:
        raise SchemaMismatchError("The BigQuery table does not have all of the job's columns yet: run the job first")
    # Its own unit ids and commit job ids even if a caller reuses a run's id for the repair.
    who = dataclasses.replace(runner._identity(spec, plan), run=f"repair-{spec.run_id}")  # noqa: SLF001
    if tables is None or ledger.LEDGER_TABLE not in tables:
        runner._ensure_ledger(warehouse, dataset)  # noqa: SLF001
    warehouse.query(ledger.claim_script(who))
    heartbeat = Heartbeat(None, None)
    attempt = commits.settle(warehouse, who, UNIT, heartbeat)
    if attempt is None:  # an earlier attempt of this repair committed
        return RepairResult(parts, _committed_rows(warehouse, who))
    staging = f"{prefix}r{runner._safe(spec.run_id)}_{uuid.uuid4().hex[:12]}"  # noqa: SLF001
    run_dir = Path(spool_dir) / staging
    conformer = Conformer(plan.fields, runner._column_sources(spec, plan, engine.dialect.name),  # noqa: SLF001
                          key_columns=plan.key_columns)
    loader = Loader(warehouse, dataset, staging, plan.fields)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        rows = _stage(spec, engine, conformer, units(plan), loader, run_dir, heartbeat)
        loader.ensure_table()  # no source row in the ranges: the repair only deletes the job's rows there
        script = repair_script(plan, loader.tables, who, [], key="", rows=rows, condition=condition(plan))
        if commits.apply_once(warehouse, who, UNIT, script, heartbeat, fault or _no_fault, attempt) is None:
            rows = _committed_rows(warehouse, who)
    finally:
        dropper = Dropper(warehouse, dataset)
        loader.drop_tables(dropper)
        dropper.close()  # what it cannot drop, the next run of the job does
        shutil.rmtree(run_dir, ignore_errors=True)
    return RepairResult(parts, rows)


def _stage(spec: RunSpec, engine: Engine, conformer: Conformer, units: Sequence[ExtractQuery], loader: Loader,
           run_dir: Path, heartbeat: Heartbeat) -> int:
    """Extract the source rows of `units` into staging: the rows extracted."""
    spool = Spool(run_dir, conformer.schema, loader.submit)
    rows = 0
    with spooling(spool, loader):
        for unit in units:
            extracted, _ = runner._spool_unit(spec, engine, None, conformer, unit, spool, None)  # noqa: SLF001
            rows += extracted
        loader.wait(heartbeat)
    return rows


def _committed_rows(warehouse: Warehouse, who: ledger.Identity) -> int:
    found = warehouse.query(ledger.unit_rows_sql(who, UNIT))
    return int(found[0]["n"]) if found else 0


def _no_fault(_point: str) -> None:
    return None
