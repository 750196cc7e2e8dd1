"""The pipelined run (issue 18): reading, spooling and staging loads overlap in bounded memory and disk.

Real PostgreSQL and the BigQuery emulator. Parts are made small (module settings, not mocks) so a
table of a few thousand rows goes through the pipeline in many parts, as a large one would.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ml_platform.etl import pipeline, staging
from ml_platform.etl.compatibility import schema_for_new_table
from ml_platform.etl.errors import CastError
from ml_platform.etl.runner import run_job
from ml_platform.etl.sources import get_engine
from ml_platform.etl.types import BigQueryField
from tests.etl.test_exactly_once import dest_fingerprint, next_run, source_fingerprint, strategy_job
from tests.etl.test_runner import accounts_table

pytestmark = pytest.mark.integration

ROWS = 3000


@pytest.fixture
def small_parts(monkeypatch) -> int:
    """Parts of 100 rows (row groups of 20): a 3,000-row table is spooled in 30 parts."""
    monkeypatch.setattr(pipeline, "PART_ROWS", 100)
    monkeypatch.setattr(pipeline, "MIN_PART_ROWS", 100)
    monkeypatch.setattr(staging, "ROW_GROUP_ROWS", 20)
    return 100


class SpoolWatch:
    """Counts the Parquet parts present in the spool directory, every few milliseconds, during a run."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.most = 0
        self.seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        names: set[str] = set()
        while not self._stop.is_set():
            try:
                parts = {p.name for p in self.directory.rglob("*.parquet")}
            except OSError:  # a part loaded and removed while listing
                continue
            names |= parts
            self.most = max(self.most, len(parts))
            self.seen = len(names)
            time.sleep(0.002)

    def __enter__(self) -> SpoolWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def pipeline_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("etl-read", "etl-load"))]


def staging_tables(job: Any) -> list[str]:
    return [t for t in staging.Warehouse(job.bq).table_names(job.dataset) if t.startswith("_stg_")]


def run_once(job: Any, **overrides: Any) -> Any:
    run_id = next_run()
    spec = job.spec(run_id=run_id, fence=run_id, chunk_rows=20, **overrides)
    return run_job(spec, bq=job.bq, engine=get_engine(job.params), spool_dir=job.tmp_path / "spool")


def test_a_run_in_many_parts_loads_every_row_once_with_a_bounded_spool(
    pg_source, bq, bq_dataset, tmp_path, small_parts
) -> None:
    accounts_table(pg_source, ROWS)
    job = strategy_job(pg_source, bq, bq_dataset, tmp_path, "replace")

    with SpoolWatch(tmp_path / "spool") as watch:
        result = run_once(job)

    assert result.rows_loaded == ROWS and result.checkpoints == 1
    assert dest_fingerprint(job) == source_fingerprint(pg_source)
    # The parts were loaded while the next ones were written; the spool never held more than the
    # loader's queue plus the part being written, and nothing of it is left.
    assert watch.seen >= ROWS // small_parts // 2
    assert watch.most <= staging.MAX_PENDING_PARTS + 1
    assert not list((tmp_path / "spool").rglob("*.parquet"))
    assert pipeline_threads() == []
    assert staging_tables(job) == []  # each part had its own staging table; all were dropped after the commit


def test_a_bad_value_late_in_the_table_fails_the_run_and_leaves_the_destination_as_it_was(
    pg_source, bq, bq_dataset, tmp_path, small_parts
) -> None:
    # `booked` is text at the source and DATE in the destination: each value is parsed while conforming.
    pg_source.execute(
        "CREATE TABLE t (id bigint PRIMARY KEY, amount numeric(12,2), note text, updated bigint, booked text)",
        f"INSERT INTO t SELECT g, g * 1.25, 'note ' || g, g * 10, (date '2024-01-01' + g % 365)::text "
        f"FROM generate_series(1, {ROWS}) g",
    )
    job = strategy_job(pg_source, bq, bq_dataset, tmp_path, "replace")
    fields = [f if f.name != "booked" else BigQueryField("booked", "DATE") for f in schema_for_new_table(job.columns)]
    bq.create_table(bq_dataset, "dest", fields)
    run_once(job)
    before = dest_fingerprint(job)
    # The last row read holds a text that is no date; many parts are loaded into staging before it is read.
    pg_source.execute(
        "UPDATE t SET note = 'changed' WHERE id <= 10",
        f"UPDATE t SET booked = 'someday', note = 'changed' WHERE id = {ROWS}",
    )

    with pytest.raises(CastError, match="someday"):
        run_once(job)

    assert dest_fingerprint(job) == before  # no part of the failed run reached the destination
    assert not list((tmp_path / "spool").rglob("*.parquet"))
    assert pipeline_threads() == []  # the reader and the loader stopped with the run
    assert staging_tables(job) == []  # the part tables loaded before the failure were dropped
    pg_source.execute(f"UPDATE t SET booked = '2024-01-01' WHERE id = {ROWS}")
    assert run_once(job).rows_loaded == ROWS
    assert dest_fingerprint(job) == source_fingerprint(pg_source)


def test_parts_shrink_toward_the_expected_end_of_a_unit_so_the_last_load_is_short(tmp_path, monkeypatch) -> None:
    """The last part's load is the one nothing overlaps: near the unit's expected end parts halve, down to
    one row group; an estimate that was too low brings full-size parts back."""
    import pyarrow as pa

    monkeypatch.setattr(staging, "ROW_GROUP_ROWS", 10)
    monkeypatch.setattr(staging, "TAIL_PART_ROWS", 10)
    schema = pa.schema([pa.field("id", pa.int64())])

    def parts(expected: int | None, rows: int) -> list[int]:
        closed: list[int] = []
        spool = staging.Spool(tmp_path / str(expected), schema, lambda _p, n: closed.append(n), part_rows=100,
                              expected_rows=expected)  # fmt: skip
        spool.directory.mkdir()
        for start in range(0, rows, 10):
            spool.write(pa.record_batch([pa.array(range(start, start + 10), pa.int64())], schema=schema))
        spool.finish()
        assert sum(closed) == rows
        return closed

    assert parts(None, 400) == [100, 100, 100, 100]
    assert parts(400, 400) == [100, 100, 100, 50, 30, 10, 10]
    assert parts(250, 400) == [100, 100, 30, 10, 10, 100, 50]  # the estimate was too low: full parts again
