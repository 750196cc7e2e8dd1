"""Repair: reload exactly the key ranges Verify found differing, in one BigQuery transaction.

The source rows of those ranges go through the run's own path (extract -> conform by the job's
plan -> Parquet -> a staging table with the destination's schema), then one script deletes the
job's rows (its source tag only) in those ranges and inserts the staged ones:

    BEGIN TRANSACTION; DELETE ... WHERE tag AND (ranges); INSERT ... SELECT FROM staging; COMMIT TRANSACTION;

`_stage_and_commit` is the one seam onto the runner's internals (staging + transaction): when the
commit path becomes the ledger-based one, only that function is re-pointed.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from ml_platform.etl import runner
from ml_platform.etl import staging as staging_io
from ml_platform.etl.conform import Conformer
from ml_platform.etl.errors import RunError, SchemaMismatchError
from ml_platform.etl.extract import ExtractQuery
from ml_platform.etl.runner import RunSpec, bq_literal, quote_name, table_ref

if TYPE_CHECKING:
    from ml_platform.etl.bigquery import BigQuery


@dataclass(frozen=True)
class RepairResult:
    ranges: int
    rows_loaded: int


def range_condition(key: str, ranges: Sequence[tuple[int, int]]) -> str:
    k = quote_name(key)
    return " OR ".join(f"({k} >= {int(lo)} AND {k} < {int(hi)})" for lo, hi in ranges)


def repair_ranges(spec: RunSpec, ranges: Sequence[tuple[int, int]], *, key: str, bq: BigQuery, engine: Engine,
                  spool_dir: Path) -> RepairResult:
    """Replace the job's rows with integer key (a source column name) in `ranges` ([lo, hi)) by the source's."""
    if not ranges:
        return RepairResult(0, 0)
    return _stage_and_commit(spec, list(ranges), key=key, bq=bq, engine=engine, spool_dir=spool_dir)


def _stage_and_commit(spec: RunSpec, ranges: list[tuple[int, int]], *, key: str, bq: BigQuery, engine: Engine,
                      spool_dir: Path) -> RepairResult:
    """THE SEAM onto the runner's staging + one-transaction commit."""
    runner._validate(spec)  # noqa: SLF001 - the seam
    warehouse = staging_io.Warehouse(bq)
    plan = runner._prepare_destination(spec, warehouse)  # noqa: SLF001
    if plan.create_destination or plan.add_fields:
        raise SchemaMismatchError("The BigQuery table does not have all of the job's columns yet: run the job first")
    dataset = spec.destination_dataset
    staging = f"{runner.staging_prefix(spec.job_id)}{uuid.uuid4().hex[:12]}"
    run_dir = Path(spool_dir) / staging
    conformer = Conformer(plan.fields, runner._column_sources(spec, plan, engine.dialect.name),  # noqa: SLF001
                          key_columns=plan.key_columns)
    warehouse.create_table(dataset, staging, plan.fields)
    rows = 0
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        loader = staging_io.Loader(warehouse, dataset, staging)
        spool = staging_io.Spool(run_dir, conformer.schema, loader.submit)
        try:
            for lo, hi in ranges:
                unit = ExtractQuery(spec.source_schema, spec.source_table, plan.read_columns, cursor=key,
                                    after=int(lo) - 1, before=int(hi))
                extracted, _ = runner._spool_unit(spec, engine, None, conformer, unit, spool, None)  # noqa: SLF001
                rows += extracted
            loader.wait(staging_io.Heartbeat(None, None))
        except BaseException:
            spool.abort()
            loader.close()
            raise
        loader.close()
        target = table_ref(dataset, spec.destination_table)
        where = f"({range_condition(plan.dest_names[key], ranges)})"
        if plan.tag_dest is not None:
            where = f"{quote_name(plan.tag_dest)} = {bq_literal(spec.source_tag, 'STRING')} AND {where}"
        cols = ", ".join(quote_name(c) for c in plan.fed)
        script = (
            f"BEGIN TRANSACTION; DELETE FROM {target} WHERE {where}; "  # noqa: S608 - quote_name/bq_literal
            f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {table_ref(dataset, staging)}; COMMIT TRANSACTION;"
        )
        warehouse.query(script)
    finally:
        try:
            warehouse.drop(dataset, staging)
        except RunError:
            pass  # the next run of the job drops leftover staging tables
        shutil.rmtree(run_dir, ignore_errors=True)
    return RepairResult(len(ranges), rows)
