"""A large first load split into key ranges run by the real worker (issue 18), on PostgreSQL and the emulator.

One range meets a real fault (its source backend is terminated mid-extraction, as in test_faults.py):
that range alone is retried, every other one runs and commits once, and the table ends equal to the
source with the job's watermark at its top.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
from django_tasks_db.models import DBTaskResult

from ml_platform.etl.ledger import LEDGER_TABLE
from ml_platform.models import EtlJob, JobRun, RunRange
from ml_platform.runs.lifecycle import run_enqueue, run_sync
from ml_platform.services import connections
from tests.ops.test_background import make_job
from tests.ops.test_faults import checksum, source_checksum, start_worker, wait_for
from tests.plugins.harness import django_subprocess_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROWS = 1_200_000  # three ranges of ~400k rows: each COPY lasts long enough to be caught mid-way


@pytest.fixture
def task_worker_env() -> dict:
    return {
        "ETL_SPLIT_MIN_ROWS": "1000000",
        "ETL_TASK_WORKERS": "2",  # the ranges are split as for two workers; one runs them here
        "ETL_SPLIT_RANGE_ROWS": "400000",
        "ETL_CHUNK_ROWS": "5000",
        "ETL_RETRY_BASE_SECONDS": "1",
    }


def create_orders(source, rows: int) -> None:
    source.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, note text)",
        f"INSERT INTO orders SELECT g, g * 1.5, md5(g::text) FROM generate_series(1, {rows}) g",
        "ANALYZE orders",
    )


def terminate_range_read(source, after: int, through: int, timeout: float = 120.0) -> list[str]:
    """pg_terminate_backend on the backend reading exactly the range (after, through]: once."""
    killed: list[str] = []

    def kill() -> bool:
        killed.extend(
            q
            for q, ok in source.query(
                "SELECT query, pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{source.database}' AND pid <> pg_backend_pid() AND state = 'active' "
                f"AND query ILIKE 'COPY%orders%' AND query LIKE '%> {after} %' AND query LIKE '%<= {through}%'"
            )
            if ok
        )
        return bool(killed)

    wait_for(kill, timeout=timeout, what=f"the read of ids {after}..{through}", interval=0.01)
    return killed


def ledger_units(bq, dataset: str, run: JobRun) -> dict[str, int]:
    """Committed units per run id of this job (`<parent>r<i>` for a range, `<parent>` for the watermark rows)."""
    rows = bq.query(
        f"SELECT run, COUNT(*) AS n FROM `{dataset}.{LEDGER_TABLE}` WHERE job = '{run.job_id}' AND kind = 'unit' "
        "GROUP BY run"
    )
    return {r["run"]: int(r["n"]) for r in rows}


def watermark_rows(bq, dataset: str, run: JobRun) -> dict[int, int]:
    rows = bq.query(f"SELECT unit, watermark FROM `{dataset}.{LEDGER_TABLE}` WHERE run = '{run.pk}' AND kind = 'unit'")
    return {int(r["unit"].rsplit(":", 1)[1]): int(json.loads(r["watermark"])["value"]) for r in rows}


def test_it_retries_only_the_range_that_failed_and_loads_the_table_exactly_once(
    user, alice_client, pg_source, bq, bq_dataset, task_worker
) -> None:
    create_orders(pg_source, ROWS)
    conn = connections.connection_create(owner=user, name="pg", **pg_source.as_connection_fields())
    job = make_job(user, conn, bq_dataset)
    run = run_enqueue(job=job)

    wait_for(lambda: RunRange.objects.filter(run=run).count() >= 3, timeout=120, what="the run to split")
    ranges = list(RunRange.objects.filter(run=run).order_by("index"))
    assert ranges[0].after == 0 and ranges[-1].through is None
    assert all(a.through == b.after for a, b in zip(ranges, ranges[1:], strict=False))
    target = ranges[1]
    killed = terminate_range_read(pg_source, target.after, target.through)
    assert killed
    # While it runs, the API and the jobs page show its progress as committed key ranges.
    shown = alice_client.get(f"/api/etl/jobs/{job.pk}/runs/").json()["runs"][0]
    assert shown["status"] == "running" and shown["ranges"]["total"] == len(ranges), shown
    assert 1 <= shown["ranges"]["committed"] < len(ranges), shown  # range 0 before it; range 1 failed
    page = alice_client.get("/jobs/").content.decode()
    assert f"of {len(ranges)} key ranges committed" in page

    wait_for(
        lambda: JobRun.objects.get(pk=run.pk).status not in JobRun.ACTIVE_STATUSES,
        timeout=300,
        what="the split run to finish",
    )
    run.refresh_from_db()
    log = task_worker.log_path.read_text()[-3000:]
    assert run.status == "succeeded", (run.error, log)
    ranges = list(RunRange.objects.filter(run=run).order_by("index"))
    assert [r.status for r in ranges] == ["committed"] * len(ranges)
    # The range that failed ran twice; every other range once.
    assert [r.attempt for r in ranges] == [2 if r.index == target.index else 1 for r in ranges]
    units = ledger_units(bq, bq_dataset, run)
    assert all(units[f"{run.pk}r{r.index}"] == 1 for r in ranges), units  # each range committed once
    # The job's watermark rows: MIN - 1 before any range ran, then the top of each contiguous committed prefix.
    # Range 2 committed while range 1 waited for its retry: the watermark did not move past the gap.
    marks = watermark_rows(bq, bq_dataset, run)
    expected = {0: 0, **{i + 1: r.through or ROWS for i, r in enumerate(ranges)}}
    assert marks[0] == 0 and marks[len(ranges)] == ROWS
    assert all(marks[k] == expected[k] for k in marks), marks
    assert target.index + 1 not in marks or target.index + 2 not in marks, marks

    assert checksum(bq, bq_dataset) == source_checksum(pg_source)  # rows, distinct ids, sums
    job = EtlJob.objects.get(pk=job.pk)
    assert job.watermark == {"type": "int", "value": str(ROWS)}
    assert run.watermark_after == job.watermark
    assert run.rows_loaded == ROWS and run.progress_rows == ROWS

    # The next run is an ordinary incremental one, resuming from the ledger's watermark.
    pg_source.execute(
        f"INSERT INTO orders SELECT g, g * 1.5, md5(g::text) FROM generate_series({ROWS + 1}, {ROWS + 500}) g"
    )
    again = run_sync(job=job)
    assert again.status == "succeeded", again.error
    assert not RunRange.objects.filter(run=again).exists()
    assert again.rows_loaded == 500
    assert checksum(bq, bq_dataset) == source_checksum(pg_source)


# Both workers split the same way: whichever takes the parent run plans the same six ranges.
TWO_WORKERS_ENV = {"ETL_SPLIT_MIN_ROWS": "100000", "ETL_SPLIT_RANGE_ROWS": "40000", "ETL_CHUNK_ROWS": "5000",
                   "ETL_RETRY_BASE_SECONDS": "1", "ETL_TASK_WORKERS": "2"}


@pytest.mark.parametrize("task_worker_env", [TWO_WORKERS_ENV])
def test_two_workers_share_a_split_merge_load_and_the_table_equals_the_source(
    user, pg_source, bq, bq_dataset, bq_settings, task_worker, task_worker_env, tmp_path
) -> None:
    rows = 240_000
    create_orders(pg_source, rows)
    conn = connections.connection_create(owner=user, name="pg", **pg_source.as_connection_fields())
    job = make_job(user, conn, bq_dataset, load_strategy="merge", merge_key=["id"])
    env = django_subprocess_env(
        {
            "BIGQUERY_EMULATOR_HOST": bq_settings.BIGQUERY_EMULATOR_HOST,
            "ETL_SPOOL_DIR": str(tmp_path / "spool2"),
            **task_worker_env,
        }
    )
    second = start_worker(env, tmp_path / "worker2.log")
    try:
        wait_for(lambda: "worker" in (tmp_path / "worker2.log").read_text().lower(), timeout=60,
                 what="the second worker to start")
        run = run_enqueue(job=job)
        wait_for(lambda: JobRun.objects.get(pk=run.pk).status not in JobRun.ACTIVE_STATUSES, timeout=300,
                 what="the split run to finish")
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=30)
    run.refresh_from_db()
    assert run.status == "succeeded", (run.error, (tmp_path / "worker2.log").read_text()[-2000:])
    ranges = list(RunRange.objects.filter(run=run))
    assert len(ranges) == 6 and {r.status for r in ranges} == {"committed"}
    assert checksum(bq, bq_dataset) == source_checksum(pg_source)
    assert EtlJob.objects.get(pk=job.pk).watermark == {"type": "int", "value": str(rows)}
    # Both workers ran ranges (the queue is shared).
    ran_by = {t.worker_ids[-1] for t in DBTaskResult.objects.all() if t.worker_ids and "range" in t.task_path}
    assert len(ran_by) == 2, ran_by
