"""A large first load split into key ranges across workers (issue 18): 1 worker vs 2 (`make bench`).

The bench_runner transactions table (BENCH_SPLIT_ROWS, 4,000,000 rows) in PostgreSQL is loaded by
an incremental job's first run into the emulator, through the whole product: a fresh Django database,
`manage.py db_worker` processes, `runs.lifecycle.run_enqueue`. Three set-ups, each timed BENCH_REPEAT times
(median), each repeat into a new table:

- 1 worker, the run as one task (splitting off, `ETL_SPLIT_MIN_ROWS=0`): today's path, the reference;
- 1 worker, the run split into ranges of `ETL_SPLIT_RANGE_ROWS` (500,000: 8 ranges);
- 2 workers, the same split.

Time: from enqueueing the run to its record saying succeeded. After every run the table must equal
the source (rows, distinct ids, sums of id/amount/account_id, non-NULL descriptions); the bench
exits 1 otherwise. Prints a markdown table and the machine's load average before and after.
"""

from __future__ import annotations

import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_load import PG_HOST, PG_PORT, PG_USER, clean_up, pg_admin, start_emulator, stop  # noqa: E402

ROWS = int(os.environ.get("BENCH_SPLIT_ROWS", "4000000"))
REPEAT = max(1, int(os.environ.get("BENCH_REPEAT", "3")))
RANGE_ROWS = int(os.environ.get("BENCH_SPLIT_RANGE_ROWS", "500000"))
DATASET = "bench"
TABLE = "transactions"
RUN_TIMEOUT = 1800

GENERATE_SQL = f"""
CREATE TABLE {TABLE} (
  id bigint PRIMARY KEY, account_id integer NOT NULL, amount numeric(12,2) NOT NULL, currency varchar(3) NOT NULL,
  description text, is_refund boolean NOT NULL, created_at timestamptz NOT NULL, booked_on date NOT NULL,
  metadata jsonb, status text NOT NULL
);
INSERT INTO {TABLE}
SELECT g, ((g::bigint * 7919) % 100000)::int, round(((g::bigint * 104729) % 10000000) / 100.0 - 50000, 2),
       (ARRAY['EUR','USD','GBP','CHF'])[1 + g % 4],
       CASE WHEN g % 5 = 0 THEN NULL ELSE 'payment ' || md5(g::text) END, g % 17 = 0,
       timestamptz '2020-01-01 00:00:00+00' + g * interval '13 seconds', date '2020-01-01' + (g / 7000),
       CASE WHEN g % 3 = 0 THEN NULL
            ELSE jsonb_build_object('channel', (ARRAY['web','pos','app'])[1 + g % 3], 'score', g % 100) END,
       (ARRAY['settled','pending','failed'])[1 + g % 3]
FROM generate_series(1, {ROWS}) g;
ANALYZE {TABLE};
"""
CHECKS = ("COUNT(*)", "COUNT(DISTINCT id)", "SUM(id)", "SUM(amount)", "SUM(account_id)", "COUNT(description)")

SETUPS = (
    ("1 worker, one task (not split)", 1, 0),
    ("1 worker, split into ranges", 1, 1),
    ("2 workers, split into ranges", 2, 1),
)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def source_checksum(dsn: dict) -> tuple:
    with psycopg.connect(**dsn) as conn:
        row = conn.execute(f"SELECT {', '.join(CHECKS)} FROM {TABLE}").fetchone()  # noqa: S608
    return tuple(Decimal(v) for v in row)


def destination_checksum(bq, table: str) -> tuple:
    cols = ", ".join(f"{c} AS c{i}" for i, c in enumerate(CHECKS))
    row = bq.query(f"SELECT {cols} FROM `{DATASET}.{table}`")[0]  # noqa: S608
    return tuple(Decimal(str(row[f"c{i}"])) for i in range(len(CHECKS)))


def start_workers(env: dict, count: int, workdir: Path, label: str) -> list[tuple[subprocess.Popen, object]]:
    workers = []
    for n in range(count):
        log = open(workdir / f"worker-{label}-{n}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "db_worker",
                "--no-reload",
                "--no-startup-delay",
                "--interval",
                "0.1",
                "--worker-id",
                f"{label}-{n}",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        workers.append((proc, log))
    time.sleep(6)  # Django start-up of each worker, outside the timed region
    return workers


def one_run(owner, connection, columns, table: str) -> tuple[float, object]:
    from ml_platform.models import JobRun
    from ml_platform.runs import lifecycle
    from ml_platform.services import jobs

    job = jobs.job_create(
        owner=owner, workspace=connection.workspace, name=table, connection=connection, source_schema="public",
        source_table=TABLE, source_columns=columns, destination_dataset=DATASET, destination_table=table,
        use_existing_table=False, load_strategy="incremental", cursor_column="id",
    )
    started = time.monotonic()
    run = lifecycle.run_enqueue(job=job)
    deadline = started + RUN_TIMEOUT
    while time.monotonic() < deadline:
        status = JobRun.objects.filter(pk=run.pk).values_list("status", flat=True).first()
        if status not in JobRun.ACTIVE_STATUSES:
            break
        time.sleep(0.1)
    elapsed = time.monotonic() - started
    run.refresh_from_db()
    return elapsed, run


def measure(env: dict, workdir: Path, owner, connection, columns, expected: tuple) -> tuple[list[list], list[str]]:
    from ml_platform.models import RunRange
    from ml_platform.services.warehouse import warehouse

    bq = warehouse()
    results, problems = [], []
    for s, (label, count, min_rows) in enumerate(SETUPS):
        # ETL_TASK_WORKERS=2 even for one worker: the bench measures what a split costs when one worker runs it.
        workers = start_workers({**env, "ETL_SPLIT_MIN_ROWS": str(min_rows), "ETL_TASK_WORKERS": "2"}, count, workdir,
                                f"s{s}")  # fmt: skip
        times = []
        ranges = 0
        try:
            for rep in range(REPEAT):
                table = f"t{s}_{rep}"
                seconds, run = one_run(owner, connection, columns, table)
                parts = list(RunRange.objects.filter(run=run))
                ranges = len(parts)
                equal = run.status == "succeeded" and destination_checksum(bq, table) == expected
                if not equal:
                    problems.append(f"{label} #{rep + 1}: {run.status} {run.error[:300]}")
                times.append(seconds)
                busy = sum((r.finished_at - r.started_at).total_seconds() for r in parts if r.finished_at)
                detail = (
                    (
                        f", range tasks busy {busy:.1f} s ({busy / seconds:.2f} at a time), "
                        f"{sum(r.attempt - 1 for r in parts)} retries"
                    )
                    if parts
                    else ""
                )
                print(
                    f"  {label} #{rep + 1}: {seconds:.1f} s, {ranges} ranges{detail}, equal to source: {equal} "
                    f"(load {load_average()})",
                    flush=True,
                )
                bq.client.delete_table(f"{bq.project}.{DATASET}.{table}", not_found_ok=True)
        finally:
            for proc, log in workers:
                stop(proc)
                log.close()
        results.append([label, count, ranges, statistics.median(times), times])
    return results, problems


def report(results: list[list], before: str) -> None:
    reference = results[0][3]
    one_split = results[1][3]
    print(f"\n### First load of {ROWS:,} PostgreSQL rows into the emulator, incremental job, median of {REPEAT}\n")
    print("| set-up | workers | ranges | median s | rows/s | vs 1 worker, one task | vs 1 worker, split |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, count, ranges, median, _times in results:
        print(
            f"| {label} | {count} | {ranges or '—'} | {median:.2f} | {ROWS / median:,.0f} | "
            f"{reference / median:.2f}x | {one_split / median:.2f}x |"
        )
    print("\nruns (s): " + "; ".join(f"{r[0]}: {', '.join(f'{t:.1f}' for t in r[4])}" for r in results))
    print(f"load average before: {before}; after: {load_average()} (2 cores)")


def main() -> int:
    token = secrets.token_hex(5)
    db_name, src_name = f"bench_split_{token}", f"bench_split_{token}_src"
    workdir = Path(tempfile.mkdtemp(prefix="bench-split-"))
    emulator = None
    admin = pg_admin()
    admin.execute(f'CREATE DATABASE "{db_name}"')
    admin.execute(f'CREATE DATABASE "{src_name}"')
    src_dsn = {"host": PG_HOST, "port": PG_PORT, "user": PG_USER, "dbname": src_name}
    failed = True
    before = load_average()
    try:
        emulator, bq_host = start_emulator(workdir)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "ml_platform.settings",
            "DATABASE_URL": f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{db_name}",
            "ML_PLATFORM_DATA_DIR": str(workdir),
            "BIGQUERY_EMULATOR_HOST": bq_host,
            "BIGQUERY_PROJECT": "bench-project",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
            "ETL_SPLIT_RANGE_ROWS": str(RANGE_ROWS),
        }
        os.environ.update(env)
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        from ml_platform.services import connections, workspaces
        from ml_platform.services.sources import get_columns
        from ml_platform.services.warehouse import warehouse

        call_command("migrate", verbosity=0)
        with psycopg.connect(**src_dsn, autocommit=True) as conn:
            conn.execute(GENERATE_SQL)
        expected = source_checksum(src_dsn)
        owner = get_user_model().objects.create(username="bench")
        team = workspaces.workspace_create(name="bench", admin=owner)
        connection = connections.connection_create(owner=owner, workspace=team, name="src", engine="postgresql",
                                                host=PG_HOST, port=PG_PORT, database=src_name, username=PG_USER)
        warehouse().create_dataset(DATASET)
        workspaces.dataset_assign(workspace=team, dataset=DATASET)
        columns = get_columns(connection, "public", TABLE)
        results, problems = measure(env, workdir, owner, connection, columns, expected)
        report(results, before)
        for problem in problems:
            print(f"- {problem}")
        failed = bool(problems)
        if failed:
            for log in sorted(workdir.glob("worker-*.log")):
                print(f"\n--- {log.name} (tail)\n{log.read_text()[-1500:]}")
    finally:
        stop(emulator)
        clean_up(admin, (db_name, src_name), workdir)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
