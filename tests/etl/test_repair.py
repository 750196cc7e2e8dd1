"""Repair on the exactly-once commit path (issues 15 + 17): retried once, fenced, tag-scoped, partition-safe."""

from __future__ import annotations

import dataclasses
import re

import pytest

from ml_platform.etl import ledger
from ml_platform.etl.errors import RunError
from ml_platform.etl.repair import repair_ranges, repair_script
from ml_platform.etl.runner import run_job
from ml_platform.etl.staging import Warehouse
from ml_platform.etl.verify import verify
from ml_platform.etl.verify_sides import sides_for
from tests.etl.test_verify import DDL, ROWS, Shared, _rows

pytestmark = pytest.mark.integration


def _verify(shared: Shared, spec):
    source, dest, compared = sides_for(spec, bq=shared.bq, engine=shared.engine)
    try:
        return verify(source, dest, key=compared.key.source if compared.key else None)
    finally:
        source.close()


def _repair(shared: Shared, spec, ranges, **kwargs):
    return repair_ranges(spec, ranges, key="id", bq=shared.bq, engine=shared.engine, spool_dir=shared.tmp / "spool",
                         **kwargs)


def test_a_repair_retried_after_an_unknown_outcome_commits_once(pg_source, bq, bq_dataset, tmp_path) -> None:
    shared = Shared(pg_source, bq, bq_dataset, tmp_path)
    shared.load("eu")
    shared.load("us")
    us_before = shared.bq_rows("us")
    shared.damage()
    ranges = shared.verify("eu").repair_ranges
    spec = dataclasses.replace(shared.spec("eu"), run_id=41, fence=41)

    def answer_lost(point: str) -> None:
        if point == "commit_submitted":
            raise ConnectionError("the worker lost BigQuery's answer")

    with pytest.raises(ConnectionError):
        _repair(shared, spec, ranges, fault=answer_lost)
    again = _repair(shared, spec, ranges)  # the retry of the same repair run

    assert again.rows_loaded == 22
    assert shared.verify("eu").in_sync and shared.bq_rows("us") == us_before
    units = bq.query(f"SELECT unit, row_count, fence, watermark FROM `{bq_dataset}`.`_etl_ledger` "
                     "WHERE job = 'job_eu' AND kind = 'unit' AND run = 'repair-41'")
    assert units == [{"unit": "job_eu:repair-41:0", "row_count": 22, "fence": 41, "watermark": None}]
    who = ledger.Identity(bq_dataset, "shared", "job_eu", "eu", "repair-41", 41, "")
    warehouse = Warehouse(bq)
    assert warehouse.find_job(who.commit_job_id(0, 0)) is not None
    assert warehouse.find_job(who.commit_job_id(0, 1)) is None  # the retry looked it up, submitted nothing


def test_a_superseded_repair_never_commits(pg_source, bq, bq_dataset, tmp_path) -> None:
    shared = Shared(pg_source, bq, bq_dataset, tmp_path)
    shared.load("eu")
    shared.damage()
    ranges = shared.verify("eu").repair_ranges
    # The repair (run 41) was declared dead; run 50 of the job started and committed since.
    run_job(dataclasses.replace(shared.spec("eu"), run_id=50, fence=50), bq=bq, engine=shared.engine,
            spool_dir=tmp_path / "spool")
    shared.damage()
    damaged = shared.bq_rows("eu")

    with pytest.raises(RunError, match="superseded by a later run"):
        _repair(shared, dataclasses.replace(shared.spec("eu"), run_id=41, fence=41), ranges)

    assert shared.bq_rows("eu") == damaged
    assert not [t for t in Warehouse(bq).table_names(bq_dataset) if t.startswith("_stg_")]


def test_an_untagged_repair_touches_only_the_untagged_rows(pg_source, bq, bq_dataset, tmp_path) -> None:
    shared = Shared(pg_source, bq, bq_dataset, tmp_path)
    shared.load("eu")
    pg_source.execute(DDL["postgresql"].format(t="un"),
                      "INSERT INTO un VALUES " + ", ".join(_rows("postgresql", 1, ROWS, "un")))  # eu's ids
    untagged = dataclasses.replace(shared.spec("un"), source_tag=None)
    run_job(untagged, bq=bq, engine=shared.engine, spool_dir=tmp_path / "spool")
    eu_before = shared.bq_rows("eu")
    table = f"`{bq_dataset}`.`shared`"
    bq.query(f"DELETE FROM {table} WHERE _source_tag IS NULL AND id IN (3, 4, 5)")
    bq.query(f"UPDATE {table} SET name = 'changed' WHERE _source_tag IS NULL AND id = 10")

    result = _verify(shared, untagged)
    assert (result.dest_rows, result.missing, result.changed, result.extra) == (ROWS - 3, 3, 1, 0)
    repaired = _repair(shared, dataclasses.replace(untagged, run_id=7, fence=7), result.repair_ranges)

    assert repaired.rows_loaded == 4
    assert _verify(shared, untagged).in_sync
    assert shared.bq_rows("eu") == eu_before
    assert shared.verify("eu").in_sync


def test_the_repair_transaction_is_fenced_tag_scoped_and_partition_filtered() -> None:
    # The emulator ignores require_partition_filter, so the generated SQL is checked (as for the runner).
    from ml_platform.etl.runspec import Plan, RunSpec
    from ml_platform.etl.types import BigQueryField, CanonicalType, Family, SourceColumn

    columns = (SourceColumn("id", "bigint", CanonicalType(Family.INTEGER), primary_key=True),
               SourceColumn("day", "date", CanonicalType(Family.DATE)))
    spec = RunSpec(None, "t", columns, "ds", "dest", job_id="j", run_id=9, fence=9)  # untagged
    fields = (BigQueryField("id", "INT64"), BigQueryField("day", "DATE"), BigQueryField("_source_tag", "STRING"))
    plan = Plan(spec=spec, fields=fields, dest_names={"id": "id", "day": "day"}, fed=("id", "day"), cursor_dest=None,
                key_dest=(), tag_dest="_source_tag", columns_added=(), read_columns=columns, key_columns=("id",),
                partitioning="DAY(day)")
    who = ledger.Identity("ds", "dest", "j", None, "repair-9", 9, "replace||")

    script = repair_script(plan, ["_stg_j_r9_x"], who, [(3, 6), (10, 11)], key="id", rows=4)

    assert script.startswith("BEGIN TRANSACTION; SELECT ERROR(") and script.endswith("; COMMIT TRANSACTION;")
    assert "WHERE target_table = 'dest' AND job = 'j' AND fence > 9 LIMIT 1" in script
    delete = re.search(r"DELETE FROM [^;]*", script).group(0)
    assert delete.startswith("DELETE FROM `ds`.`dest` WHERE `_source_tag` IS NULL AND ")
    assert re.search(r"\(`day` >= DATE '0001-01-01' OR `day` IS NULL\)", delete)
    assert "(`id` >= 3 AND `id` < 6) OR (`id` >= 10 AND `id` < 11)" in delete
    tail = script[script.index(delete) + len(delete):]
    assert tail.startswith("; INSERT INTO `ds`.`dest` (`id`, `day`) SELECT `id`, `day` FROM `ds`.`_stg_j_r9_x`; "
                           "INSERT INTO `ds`.`_etl_ledger`")
    assert "'j:repair-9:0'" in tail and tail.count("INSERT") == 2


def test_a_text_key_repair_deletes_exactly_the_listed_keys_and_refuses_too_many() -> None:
    from pathlib import Path

    from ml_platform.etl.repair import MAX_KEYS, key_condition, repair_keys
    from ml_platform.etl.runspec import Plan, RunSpec
    from ml_platform.etl.types import BigQueryField, CanonicalType, Family, SourceColumn

    columns = (SourceColumn("code", "text", CanonicalType(Family.STRING), primary_key=True),
               SourceColumn("n", "bigint", CanonicalType(Family.INTEGER), primary_key=True))
    spec = RunSpec(None, "t", columns, "ds", "dest", job_id="j", run_id=9, fence=9)
    fields = (BigQueryField("code", "STRING"), BigQueryField("n", "INT64"))
    plan = Plan(spec=spec, fields=fields, dest_names={"code": "code", "n": "n"}, fed=("code", "n"),
                cursor_dest=None, key_dest=(), tag_dest=None, columns_added=(), read_columns=columns,
                key_columns=("code", "n"), partitioning=None)

    condition = key_condition(plan, ["code", "n"], [["O'Brien", "7"], ["x", "\\N"]])

    assert condition == "(`code` = 'O\\'Brien' AND `n` = 7) OR (`code` = 'x' AND `n` IS NULL)"
    with pytest.raises(RunError, match="too many to repair key by key"):
        repair_keys(spec, [["k", "1"]] * (MAX_KEYS + 1), key_columns=["code", "n"], bq=None, engine=None,  # type: ignore[arg-type]
                    spool_dir=Path("/nonexistent"))
