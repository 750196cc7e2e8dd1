"""Exactly-once delivery (issue 15): faults, races, ties, late rows and several sources.

Real PostgreSQL / MariaDB sources and the BigQuery emulator. Faults are injected through the
runner's own seam (`run_job(fault=...)`, called at each point of a unit's life), never by
mocking a database. After recovery the table must equal the source: same count, same keys,
same per-column checksums, 0 duplicates, 0 losses.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import itertools
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest

from ml_platform.etl import ledger
from ml_platform.etl.errors import SchemaMismatchError, WarehouseError, WarehouseUnavailable
from ml_platform.etl.runner import RunError, run_job
from tests.etl.test_runner import Job, accounts_table

pytestmark = pytest.mark.integration

STRATEGIES = ("replace", "append", "incremental", "merge")
_ids = itertools.count(1000)


class Killed(BaseException):
    """The worker process dies: nothing after this point runs (not even `except Exception`)."""


def next_run() -> int:
    return next(_ids)


def strategy_job(source: Any, bq: Any, dataset: str, tmp_path: Any, strategy: str, **extra: Any) -> Job:
    options: dict[str, Any] = {"load_strategy": strategy, "checkpoint_rows": 120}
    if strategy in ("incremental", "merge"):
        options["cursor_column"] = "updated"
    if strategy == "merge":
        options["merge_key"] = ("id",)
    return Job(source, bq, dataset, tmp_path, **options, **extra)


def run(job: Job, run_id: int | None = None, fault: Callable[[str], None] | None = None, **overrides: Any):
    run_id = run_id if run_id is not None else next_run()
    spec = job.spec(run_id=run_id, fence=run_id, **overrides)
    from ml_platform.etl.sources import get_engine

    return run_job(spec, bq=job.bq, engine=get_engine(job.params), spool_dir=job.tmp_path / "spool", fault=fault)


def fingerprint(rows: list[tuple]) -> dict[str, Any]:
    """Count, distinct keys, duplicates and a checksum per column of (id, amount, note, updated) rows."""
    ids = [r[0] for r in rows]
    columns = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
    checksums = [hashlib.sha256(repr(sorted(map(str, col))).encode()).hexdigest()[:16] for col in columns]
    return {"count": len(rows), "keys": len(set(ids)), "duplicates": len(ids) - len(set(ids)), "columns": checksums}


def source_fingerprint(source: Any, table: str = "t") -> dict[str, Any]:
    rows = source.query(f"SELECT id, amount, note, updated FROM {table}")
    return fingerprint([(int(i), decimal.Decimal(str(a)).quantize(decimal.Decimal("0.01")), n, int(u))
                        for i, a, n, u in rows])


def dest_fingerprint(job: Job, where: str = "TRUE") -> dict[str, Any]:
    rows = job.rows("id, amount, note, updated", where=where)
    return fingerprint([(r["id"], r["amount"].quantize(decimal.Decimal("0.01")), r["note"], r["updated"])
                        for r in rows])


def change_source(source: Any, strategy: str) -> None:
    """What happens at the source between two runs, as each strategy can carry it."""
    accounts_table(source, 50, start=301)
    if strategy == "merge":
        source.execute("UPDATE t SET note = 'changed', updated = updated + 100000 WHERE id <= 10")
    if strategy == "replace":
        source.execute("UPDATE t SET note = 'changed' WHERE id <= 10", "DELETE FROM t WHERE id > 340")


def raise_at(point: str, error: BaseException, occurrence: int = 1) -> Callable[[str], None]:
    seen = {"n": 0}

    def hook(name: str) -> None:
        if name == point:
            seen["n"] += 1
            if seen["n"] == occurrence:
                raise error

    return hook


def transient(what: str) -> WarehouseError:
    return WarehouseUnavailable(f"injected: {what}")


def last_unit(job: Job) -> int:
    """The failing run commits two units with a cursor (checkpoints of 120 rows), one without."""
    return 2 if job.spec().cursor_column else 1


# Each injection point: the hook for the failing attempt, and how it recovers: "in_place" (the run
# itself looks the commit up in the ledger and goes on), "same" (the worker's retry of the same run,
# as a re-queued run) or "new" (the failing run was fenced off; the next run loads).
POINTS: dict[str, tuple[Callable[[Job], Callable[[str], None]], str]] = {
    "before_load": (lambda job: raise_at("before_load", transient("before the load job")), "same"),
    "after_load": (lambda job: raise_at("after_load", transient("after the load job")), "same"),
    "commit_accepted_client_timeout": (
        lambda job: raise_at("commit_submitted", transient("timed out waiting for the commit")), "in_place"),
    "commit_refused": (lambda job: supersede_before_commit(job), "new"),
    "after_commit_before_app_records": (lambda job: raise_at("after_commit", Killed()), "same"),
    "worker_killed_mid_commit": (
        lambda job: raise_at("commit_submitted", Killed(), occurrence=last_unit(job)), "same"),
}


def supersede_before_commit(job: Job) -> Callable[[str], None]:
    """A later run of the job claims the table just before this run commits: BigQuery refuses the commit."""

    def hook(name: str) -> None:
        if name == "before_commit":
            spec = job.spec()
            who = ledger.Identity(job.dataset, spec.destination_table, str(spec.job_id), spec.source_tag,
                                  "newer", 10**9, "")
            job.bq.query(ledger.claim_script(who))

    return hook


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("point", list(POINTS))
def test_it_recovers_from_each_fault_with_the_table_equal_to_the_source(
    point, strategy, pg_source, bq, bq_dataset, tmp_path
) -> None:
    accounts_table(pg_source, 300)
    job = strategy_job(pg_source, bq, bq_dataset, tmp_path, strategy)
    job.create_destination()
    if strategy != "append":
        run(job)
        change_source(pg_source, strategy)
    make_hook, recovery = POINTS[point]
    failing = next_run()

    if recovery == "in_place":
        run(job, failing, fault=make_hook(job))
    else:
        with pytest.raises((RunError, Killed)):
            run(job, failing, fault=make_hook(job))
        run(job, failing if recovery == "same" else 10**9 + 1)

    assert dest_fingerprint(job) == source_fingerprint(pg_source)
    if strategy in ("incremental", "merge"):  # the next run resumes at the right watermark and changes nothing
        run(job, 10**9 + 2)
        assert dest_fingerprint(job) == source_fingerprint(pg_source)


def test_it_inserts_nothing_twice_when_an_incremental_commit_stops_before_its_ledger_row(
    pg_source, bq, bq_dataset, tmp_path
) -> None:
    # The incremental commit script is no transaction (its INSERT only adds rows the job's rows lack):
    # here its INSERT lands and its ledger row fails, then the same run is retried.
    accounts_table(pg_source, 300)
    job = strategy_job(pg_source, bq, bq_dataset, tmp_path, "incremental")
    job.create_destination()
    run(job)
    change_source(pg_source, "incremental")
    ledger_table, kept = f"`{bq_dataset}`.`{ledger.LEDGER_TABLE}`", f"`{bq_dataset}`.`ledger_kept`"

    def ledger_refuses_rows(point: str) -> None:
        if point == "before_commit":  # the ledger loses a column the unit's row needs
            bq.query(f"CREATE TABLE {kept} AS SELECT * FROM {ledger_table}")
            bq.query(f"DROP TABLE {ledger_table}")
            bq.query(f"CREATE TABLE {ledger_table} AS SELECT * EXCEPT (row_count) FROM {kept}")

    failing = next_run()
    with pytest.raises(RunError):
        run(job, failing, fault=ledger_refuses_rows)
    landed = job.rows("COUNT(*) AS n", order="1")[0]["n"]
    assert 300 < landed < 350  # the failing unit's INSERT landed (a checkpoint's worth), its ledger row did not
    bq.query(f"DROP TABLE {ledger_table}")
    bq.query(f"CREATE TABLE {ledger_table} AS SELECT * FROM {kept}")

    retried = run(job, failing)

    assert retried.rows_loaded == 350 - landed  # the landed rows are not inserted (nor counted) again
    assert dest_fingerprint(job) == source_fingerprint(pg_source)
    run(job, 10**9 + 2)
    assert dest_fingerprint(job) == source_fingerprint(pg_source)


def run_together(*calls: Callable[[], Any]) -> list[BaseException | None]:
    outcomes: list[BaseException | None] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def go(i: int) -> None:
        barrier.wait()
        try:
            calls[i]()
        except Exception as exc:  # noqa: BLE001 - collected and asserted on by the test
            outcomes[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return outcomes


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_it_commits_once_when_two_workers_race_one_job(strategy, mysql_source, bq, bq_dataset, tmp_path) -> None:
    # A redelivered task: two workers execute the same run at once.
    accounts_table(mysql_source, 300)
    job = strategy_job(mysql_source, bq, bq_dataset, tmp_path, strategy)
    job.create_destination()
    if strategy != "append":
        run(job)
        change_source(mysql_source, strategy)
    same = next_run()

    outcomes = run_together(lambda: run(job, same), lambda: run(job, same))
    if any(outcomes):  # a loser may fail transiently (a conflicting transaction); the retry settles it
        run(job, same)

    assert dest_fingerprint(job) == source_fingerprint(mysql_source)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_it_keeps_two_jobs_racing_one_table_apart(strategy, pg_source, mysql_source, bq, bq_dataset, tmp_path) -> None:
    accounts_table(pg_source, 200)
    accounts_table(mysql_source, 150, start=5000)
    eu = strategy_job(pg_source, bq, bq_dataset, tmp_path, strategy, source_tag="eu", job_id="eu")
    us = strategy_job(mysql_source, bq, bq_dataset, tmp_path, strategy, source_tag="us", job_id="us")
    eu.create_destination(tag_column="_source_tag")

    outcomes = run_together(lambda: run(eu), lambda: run(us))
    for job, outcome in zip((eu, us), outcomes, strict=True):
        if outcome is not None:
            assert getattr(outcome, "transient", False), outcome
            run(job)

    assert dest_fingerprint(eu, "_source_tag = 'eu'") == source_fingerprint(pg_source)
    assert dest_fingerprint(us, "_source_tag = 'us'") == source_fingerprint(mysql_source)


# --------------------------------------------------------------------------- the list, one by one


def test_it_never_wipes_a_tagged_source_from_an_untagged_replace_job(pg_source, mysql_source, bq, bq_dataset,
                                                                     tmp_path) -> None:
    accounts_table(pg_source, 100)
    accounts_table(mysql_source, 500, start=1000)
    first = strategy_job(pg_source, bq, bq_dataset, tmp_path, "replace", job_id="untagged")
    second = strategy_job(mysql_source, bq, bq_dataset, tmp_path, "replace", job_id="us", source_tag="us")
    run(first)  # creates the table, no tag column
    run(second)  # adds the tag column; job 1's rows have NULL tags

    run(first)

    assert dest_fingerprint(second, "_source_tag = 'us'") == source_fingerprint(mysql_source)
    assert dest_fingerprint(first, "_source_tag IS NULL") == source_fingerprint(pg_source)


def test_it_takes_an_untagged_jobs_watermark_over_its_own_rows_only(pg_source, mysql_source, bq, bq_dataset,
                                                                    tmp_path) -> None:
    accounts_table(pg_source, 100)
    accounts_table(mysql_source, 50, start=1000)  # cursor values far above job 1's
    first = strategy_job(pg_source, bq, bq_dataset, tmp_path, "incremental", job_id="untagged")
    second = strategy_job(mysql_source, bq, bq_dataset, tmp_path, "incremental", job_id="us", source_tag="us")
    run(first)
    run(second)
    accounts_table(pg_source, 20, start=101)

    result = run(first)

    assert result.watermark_before == 1000
    assert dest_fingerprint(first, "_source_tag IS NULL") == source_fingerprint(pg_source)


def test_it_loads_a_row_whose_lower_id_commits_after_a_run_read_a_higher_one(pg_source, bq, bq_dataset,
                                                                            tmp_path) -> None:
    import psycopg

    pg_source.execute("CREATE TABLE t (id bigserial PRIMARY KEY, amount numeric(12,2), note text, updated bigint)",
                      "INSERT INTO t (amount, note, updated) SELECT g, 'n' || g, g FROM generate_series(1, 100) g")
    job = Job(pg_source, bq, bq_dataset, tmp_path, load_strategy="incremental", cursor_column="id")
    job.create_destination()
    run(job)
    connect = {"host": pg_source.host, "port": pg_source.port, "dbname": pg_source.database,
               "user": pg_source.username}
    with psycopg.connect(**connect) as slow, psycopg.connect(**connect, autocommit=True) as fast:
        slow.execute("INSERT INTO t (amount, note, updated) VALUES (1, 'slow', 0)")  # takes id 101, not committed
        fast.execute("INSERT INTO t (amount, note, updated) VALUES (2, 'fast', 0)")  # id 102, committed
        first = run(job)
        slow.commit()
    second = run(job)

    assert first.watermark_after == 102 and second.rows_loaded == 1
    assert job.rows("COUNT(*) AS n, COUNT(DISTINCT id) AS k", order="1") == [{"n": 102, "k": 102}]


def test_it_loads_rows_added_to_todays_date_after_a_run(mysql_source, bq, bq_dataset, tmp_path) -> None:
    today = dt.date.today()
    mysql_source.execute("CREATE TABLE t (id bigint PRIMARY KEY, day date, note text)",
                         "INSERT INTO t VALUES " + ", ".join(
                             f"({i}, '{today - dt.timedelta(days=i % 3)}', 'n{i}')" for i in range(1, 11)))
    job = Job(mysql_source, bq, bq_dataset, tmp_path, load_strategy="incremental", cursor_column="day")
    job.create_destination()
    run(job)
    mysql_source.execute("INSERT INTO t VALUES " + ", ".join(f"({i}, '{today}', 'late {i}')" for i in range(11, 16)))

    run(job)

    assert job.rows("COUNT(*) AS n, COUNT(DISTINCT id) AS k", order="1") == [{"n": 15, "k": 15}]


def test_it_merges_the_latest_row_per_key_when_the_source_repeats_a_key(pg_source, bq, bq_dataset, tmp_path) -> None:
    pg_source.execute("CREATE TABLE t (id bigint, amount numeric(12,2), note text, updated bigint)",
                      "INSERT INTO t SELECT g % 50, g, 'v' || g, g FROM generate_series(1, 200) g")
    job = Job(pg_source, bq, bq_dataset, tmp_path, load_strategy="merge", merge_key=("id",), cursor_column="updated")
    job.create_destination()

    run(job)
    run(job)

    rows = job.rows("id, note", order="id")
    assert len(rows) == 50
    assert {r["id"]: r["note"] for r in rows} == {k: f"v{max(g for g in range(1, 201) if g % 50 == k)}"
                                                  for k in range(50)}


def test_it_refuses_a_merge_on_duplicate_keys_without_a_cursor(pg_source, bq, bq_dataset, tmp_path) -> None:
    pg_source.execute("CREATE TABLE t (id bigint, amount numeric(12,2), note text, updated bigint)",
                      "INSERT INTO t SELECT g % 50, g, 'v' || g, g FROM generate_series(1, 200) g")
    job = Job(pg_source, bq, bq_dataset, tmp_path, load_strategy="merge", merge_key=("id",))
    job.create_destination()

    with pytest.raises(SchemaMismatchError, match=r"50 merge key value\(s\) appear more than once.*id=") as refused:
        run(job)

    assert "copies=4" in str(refused.value)
    assert job.rows("COUNT(*) AS n", order="1") == [{"n": 0}]


def test_it_refuses_null_merge_keys_with_a_count_and_examples(pg_source, bq, bq_dataset, tmp_path) -> None:
    pg_source.execute("CREATE TABLE t (id bigint, amount numeric(12,2), note text, updated bigint)",
                      "INSERT INTO t SELECT CASE WHEN g <= 3 THEN NULL ELSE g END, g, 'v' || g, g "
                      "FROM generate_series(1, 20) g")
    job = Job(pg_source, bq, bq_dataset, tmp_path, load_strategy="merge", merge_key=("id",), cursor_column="updated")
    job.create_destination()

    with pytest.raises(SchemaMismatchError, match=r"3 source row\(s\) have a NULL merge key \(id\).*note='v1'"):
        run(job)
    with pytest.raises(SchemaMismatchError):
        run(job)  # refused on every run, never inserted again

    assert job.rows("COUNT(*) AS n", order="1") == [{"n": 0}]


def test_it_rederives_the_watermark_when_the_cursor_column_changes(pg_source, bq, bq_dataset, tmp_path) -> None:
    pg_source.execute("CREATE TABLE t (id bigint PRIMARY KEY, amount numeric(12,2), note text, updated bigint)",
                      "INSERT INTO t SELECT g, g, 'n' || g, 1000000 + g FROM generate_series(1, 100) g")
    job = Job(pg_source, bq, bq_dataset, tmp_path, load_strategy="incremental", cursor_column="updated")
    job.create_destination()
    run(job)  # watermark 1,000,100 on `updated`
    pg_source.execute("INSERT INTO t SELECT g, g, 'n' || g, g FROM generate_series(101, 130) g")

    result = run(job, cursor_column="id")  # Edit: the cursor is now `id`

    assert result.watermark_before == 100 and result.rows_loaded == 30
    assert job.rows("COUNT(*) AS n, COUNT(DISTINCT id) AS k", order="1") == [{"n": 130, "k": 130}]


def test_it_names_staging_per_run_and_fences_off_a_superseded_run(pg_source, bq, bq_dataset, tmp_path) -> None:
    accounts_table(pg_source, 100)
    job = strategy_job(pg_source, bq, bq_dataset, tmp_path, "append")
    job.create_destination()
    staging: list[str] = []

    def newer_run_starts(point: str) -> None:
        if point == "after_load":
            staging.extend(t for t in job.tables() if t.startswith("_stg_"))
            run(job, 10**6)  # the scheduler declared this run dead and started another, which completes

    with pytest.raises(RunError, match="superseded by a later run"):
        run(job, 10**6 - 1, fault=newer_run_starts)

    assert staging and all("r999999_" in name for name in staging)
    assert dest_fingerprint(job) == source_fingerprint(pg_source)  # the reaped run never committed


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_it_filters_every_destination_statement_on_the_partitioning_column(strategy) -> None:
    # The emulator ignores require_partition_filter, so the generated SQL is checked: every DELETE,
    # MERGE, anti-join and MAX on the destination names the partitioning column.
    from ml_platform.etl import commit
    from ml_platform.etl.runspec import Plan, RunSpec
    from ml_platform.etl.types import BigQueryField, CanonicalType, Family, SourceColumn

    columns = (SourceColumn("id", "bigint", CanonicalType(Family.INTEGER), primary_key=True),
               SourceColumn("day", "date", CanonicalType(Family.DATE)))
    spec = RunSpec(None, "t", columns, "ds", "dest", load_strategy=strategy, source_tag="eu",
                   cursor_column="day" if strategy in ("incremental", "merge") else None,
                   merge_key=("id",) if strategy == "merge" else ())
    fields = (BigQueryField("id", "INT64"), BigQueryField("day", "DATE"), BigQueryField("_source_tag", "STRING"))
    plan = Plan(spec=spec, fields=fields, dest_names={"id": "id", "day": "day"}, fed=("id", "day", "_source_tag"),
                cursor_dest=fields[1] if spec.cursor_column else None, key_dest=spec.merge_key,
                tag_dest="_source_tag", columns_added=(), read_columns=columns, key_columns=("id",),
                partitioning="DAY(day)")

    who = ledger.Identity("ds", "dest", "1", "eu", "7", 7, "")
    statements = commit.commit_script(plan, ["stg"], who, 0, watermark=None, rows=0).split("; ")
    if plan.cursor_dest is not None:
        statements.append(commit.max_cursor_sql(plan))
    touching = [s for s in statements if s.startswith(("DELETE", "MERGE", "SELECT MAX")) or "NOT EXISTS" in s]

    assert touching or strategy == "append"
    for sql in touching:
        assert re.search(r"\((T\.)?`day` >= DATE '0001-01-01' OR (T\.)?`day` IS NULL\)", sql), sql
        assert "WHERE TRUE" not in sql and "_source_tag` = 'eu'" in sql, sql
