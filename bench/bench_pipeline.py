"""Benchmark the pipelined run on each source at two table sizes (`make bench`).

Per source (PostgreSQL, MariaDB, SQLite) and size (1M and 4M rows of the bench's `transactions`
shape, bench_runner.GENERATE_SQL): the product's extraction alone (conformed Parquet on disk),
the emulator load alone (those parts loaded one after another, as the runner's loader does), and
the full replace run (extraction, spool, upload, staging loads and the commit, overlapped). Every
measurement runs in its own process (peak RSS from wait4), REPEAT times; medians are reported with
the ratio full / max(extraction, load) and the peak RSS of the full run at each size.

Environment: BENCH_PIPELINE_ROWS (1000000,4000000), BENCH_REPEAT (3), BENCH_PIPELINE_SOURCES
(postgresql,mysql,sqlite), the BENCH_PG_* / BENCH_MYSQL_* settings of bench_runner/bench_sources.
Databases are its own (`bench_pipeline` on PostgreSQL and MariaDB, a SQLite file under
.data/bench/pipeline), so it never disturbs the other benches; tables are generated once per size.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_runner as base  # noqa: E402 - emulator start-up, PostgreSQL settings
import bench_sources as sources  # noqa: E402 - MariaDB settings

SIZES = [int(n) for n in os.environ.get("BENCH_PIPELINE_ROWS", "1000000,4000000").split(",") if n.strip()]
REPEAT = base.REPEAT
DATABASE = "bench_pipeline"
WORK = base.WORK / "pipeline"
SQLITE_PATH = WORK / "pipeline.sqlite3"
DATASET = "bench"
NAMES = {"postgresql": "PostgreSQL", "mysql": "MariaDB", "sqlite": "SQLite"}
# Targets of issue 18.
MAX_RATIO = 1.15
MAX_RSS_MB = 260
FLAT_RSS_MB = 20  # "flat": the 4M-row run's peak within this of the 1M-row run's
CORES = os.cpu_count() or 1

PG_GENERATE = """
CREATE TABLE {table} (
  id bigint PRIMARY KEY, account_id integer NOT NULL, amount numeric(12,2) NOT NULL, currency varchar(3) NOT NULL,
  description text, is_refund boolean NOT NULL, created_at timestamptz NOT NULL, booked_on date NOT NULL,
  metadata jsonb, status text NOT NULL
);
INSERT INTO {table}
SELECT g, ((g::bigint * 7919) % 100000)::int, round(((g::bigint * 104729) % 10000000) / 100.0 - 50000, 2),
       (ARRAY['EUR','USD','GBP','CHF'])[1 + g % 4], CASE WHEN g % 5 = 0 THEN NULL ELSE 'payment ' || md5(g::text) END,
       g % 17 = 0, timestamptz '2020-01-01 00:00:00+00' + g * interval '13 seconds', date '2020-01-01' + (g / 7000),
       CASE WHEN g % 3 = 0 THEN NULL
            ELSE jsonb_build_object('channel', (ARRAY['web','pos','app'])[1 + g % 3], 'score', g % 100) END,
       (ARRAY['settled','pending','failed'])[1 + g % 3]
FROM generate_series(1, {rows}) g;
ANALYZE {table};
"""

MYSQL_GENERATE = """
CREATE DATABASE IF NOT EXISTS {database} CHARACTER SET utf8mb4;
USE {database};
DROP TABLE IF EXISTS {table};
CREATE TABLE {table} (
  id bigint PRIMARY KEY, account_id int NOT NULL, amount decimal(12,2) NOT NULL, currency varchar(3) NOT NULL,
  description text, is_refund boolean NOT NULL, created_at timestamp(6) NOT NULL DEFAULT '2000-01-01',
  booked_on date NOT NULL, metadata json, status varchar(16) NOT NULL
);
SET time_zone = '+00:00';
INSERT INTO {table}
SELECT seq, (seq * 7919) % 100000, round(((seq * 104729) % 10000000) / 100.0 - 50000, 2),
  ELT(1 + seq % 4, 'EUR', 'USD', 'GBP', 'CHF'), IF(seq % 5 = 0, NULL, CONCAT('payment ', md5(seq))),
  seq % 17 = 0, TIMESTAMP '2020-01-01 00:00:00' + INTERVAL (seq * 13) SECOND,
  DATE '2020-01-01' + INTERVAL (seq DIV 7000) DAY,
  IF(seq % 3 = 0, NULL, JSON_OBJECT('channel', ELT(1 + seq % 3, 'web', 'pos', 'app'), 'score', seq % 100)),
  ELT(1 + seq % 3, 'settled', 'pending', 'failed')
FROM seq_1_to_{rows};
ANALYZE TABLE {table};
"""

SQLITE_GENERATE = "\nDROP TABLE IF EXISTS {table};" + sources.SQLITE_TABLE + "ANALYZE;\n"


def table_name(rows: int) -> str:
    return f"transactions_{rows}"


# --------------------------------------------------------------------------- child side


def _params(kind: str) -> Any:
    from ml_platform.etl.sources import ConnectionParams

    if kind == "postgresql":
        return ConnectionParams(engine="postgresql", host=base.PG_HOST, port=base.PG_PORT, database=DATABASE,
                                username=base.PG_USER, password=base.PG_PASSWORD)  # fmt: skip
    if kind == "mysql":
        return ConnectionParams(engine="mysql", host=sources.MYSQL_HOST, port=sources.MYSQL_PORT, database=DATABASE,
                                username=sources.MYSQL_USER, password=sources.MYSQL_PASSWORD)  # fmt: skip
    return ConnectionParams(engine="sqlite", database=str(SQLITE_PATH), options={"read_only": True})


def _spec(kind: str, rows: int, **overrides: Any) -> Any:
    from ml_platform.etl.runner import RunSpec
    from ml_platform.etl.sources import get_columns

    schema = "public" if kind == "postgresql" else None
    columns = tuple(get_columns(_params(kind), schema, table_name(rows)))
    args = {
        "destination_dataset": DATASET,
        "destination_table": f"{kind}_{rows}",
        "job_id": f"pipe_{kind}",
        **overrides,
    }
    return RunSpec(schema, table_name(rows), columns, **args)


def emulator_cpu_seconds() -> float:
    """CPU time (user + system) the emulator process has used (its pid from the parent, BENCH_EMULATOR_PID)."""
    with open(f"/proc/{os.environ['BENCH_EMULATOR_PID']}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuClock:
    """Wall seconds and CPU seconds (the whole machine's, and the emulator's share) of a timed region.

    The machine's figure counts every process: the source's server, this process's threads and the
    emulator. On 2 cores, a region whose CPU seconds exceed 2x its wall seconds cannot exist: CPU / 2
    is the floor any overlap can reach.
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self._machine, self._emulator = base.machine_cpu_seconds(), emulator_cpu_seconds()

    def stop(self) -> dict[str, float]:
        seconds = time.perf_counter() - self.started
        return {"seconds": seconds, "cpu": base.machine_cpu_seconds() - self._machine,
                "emulator_cpu": emulator_cpu_seconds() - self._emulator}  # fmt: skip


def _parts_dir(kind: str, rows: int) -> Path:
    return WORK / f"parquet-{kind}-{rows}"


def _warm_imports(kind: str) -> None:
    """What a worker has imported before its first run: kept out of the timed region."""
    import google.cloud.bigquery  # noqa: F401

    if kind == "postgresql":
        import adbc_driver_postgresql.dbapi  # noqa: F401


def child_extract(kind: str, rows: int) -> dict[str, Any]:
    from ml_platform.etl.compatibility import schema_for_new_table
    from ml_platform.etl.runner import extract_to_parquet
    from ml_platform.etl.sources import get_engine

    _warm_imports(kind)
    spec = _spec(kind, rows)
    target = _parts_dir(kind, rows)
    shutil.rmtree(target, ignore_errors=True)
    engine = get_engine(_params(kind))
    clock = CpuClock()
    result = extract_to_parquet(spec, engine=engine, directory=target, fields=schema_for_new_table(spec.columns))
    timed = clock.stop()
    return {**timed, "rows": result.rows, "note": f"{len(result.paths)} parts, {result.bytes / 1e6:.0f} MB"}


def child_load(kind: str, rows: int) -> dict[str, Any]:
    from ml_platform.etl.compatibility import schema_for_new_table

    _warm_imports(kind)
    spec = _spec(kind, rows)
    bq = base._bq()
    bq.create_dataset(DATASET)
    fields = list(schema_for_new_table(spec.columns))
    parts = sorted(_parts_dir(kind, rows).glob("*.parquet"))
    if not parts:
        raise SystemExit("no Parquet parts: run the extraction first")
    tables = [f"load_only_{kind}_{rows}_{index}" for index in range(len(parts))]
    for table in tables:
        bq.drop_table(DATASET, table)
    clock = CpuClock()
    for part, table in zip(parts, tables, strict=True):
        # The runner's loader (etl.staging.Loader): one load job after another, each creating its part's table.
        bq.load_parquet(part, DATASET, table, "WRITE_TRUNCATE", fields)
    timed = clock.stop()
    loaded = sum(bq.row_count(DATASET, table) for table in tables)
    for table in tables:
        bq.drop_table(DATASET, table)
    return {**timed, "rows": loaded, "note": f"{len(parts)} load jobs"}


def child_full(kind: str, rows: int) -> dict[str, Any]:
    from ml_platform.etl.sources import get_engine

    _warm_imports(kind)
    bq = base._bq()
    bq.create_dataset(DATASET)
    spec = _spec(kind, rows, load_strategy="replace", run_id=f"r{time.time_ns()}", fence=time.time_ns() // 1000)
    engine = get_engine(_params(kind))
    clock = CpuClock()
    result, started, seconds, phases = base.timed_run(spec, bq, engine, WORK)
    timed = clock.stop()
    split = ""
    if "committing" in phases:
        split = f"commit {started + seconds - phases['committing']:.1f} s; "
    return {**timed, "seconds": seconds, "rows": result.rows_loaded,
            "note": f"{split}{result.bytes / 1e6:.0f} MB spooled"}  # fmt: skip


def _child(name: str) -> dict[str, Any]:
    kind, rows, what = name.split(":")
    return {"extract": child_extract, "load": child_load, "full": child_full}[what](kind, int(rows))


# --------------------------------------------------------------------------- parent side


def _table_rows(kind: str, rows: int) -> int | None:
    """Rows of the generated table, None when it is missing."""
    table = table_name(rows)
    try:
        if kind == "postgresql":
            import psycopg

            with psycopg.connect(host=base.PG_HOST, port=base.PG_PORT, user=base.PG_USER,
                                 password=base.PG_PASSWORD or None, dbname=DATABASE) as conn:  # fmt: skip
                return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        if kind == "mysql":
            out = subprocess.run(_mysql_cmd() + ["-N", "-e", f"SELECT count(*) FROM {DATABASE}.{table}"],
                                 capture_output=True, text=True, env=_mysql_env(), check=True)  # fmt: skip
            return int(out.stdout.strip())
        import sqlite3

        with sqlite3.connect(SQLITE_PATH) as conn:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except Exception:  # noqa: BLE001 - missing database/table: generate it
        return None


def _mysql_cmd() -> list[str]:
    return ["mariadb", "-h", sources.MYSQL_HOST, "-P", str(sources.MYSQL_PORT), "-u", sources.MYSQL_USER]


def _mysql_env() -> dict[str, str] | None:
    return {**os.environ, "MYSQL_PWD": sources.MYSQL_PASSWORD} if sources.MYSQL_PASSWORD else None


def generate(kind: str, rows: int) -> None:
    if _table_rows(kind, rows) == rows:
        return
    print(f"generating {rows:,} rows in {NAMES[kind]} ...", file=sys.stderr, flush=True)
    table = table_name(rows)
    if kind == "postgresql":
        import psycopg

        conninfo = {"host": base.PG_HOST, "port": base.PG_PORT, "user": base.PG_USER,
                    "password": base.PG_PASSWORD or None}  # fmt: skip
        with psycopg.connect(**conninfo, dbname="postgres", autocommit=True) as admin:
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
                admin.execute(f'CREATE DATABASE "{DATABASE}"')
        with psycopg.connect(**conninfo, dbname=DATABASE, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(PG_GENERATE.format(table=table, rows=rows))
    elif kind == "mysql":
        script = MYSQL_GENERATE.format(database=DATABASE, table=table, rows=rows)
        subprocess.run(_mysql_cmd(), input=script.encode(), check=True, env=_mysql_env(), stdout=subprocess.DEVNULL)
    else:
        import sqlite3

        with sqlite3.connect(SQLITE_PATH) as conn:
            conn.executescript(SQLITE_GENERATE.format(table=table, rows=rows))
        conn.close()


def measure_once(child: str, env: dict[str, str]) -> tuple[dict[str, Any], float]:
    """One child process: its JSON result and its own peak RSS in MB (wait4)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, __file__, "--child", child], stdout=out, stderr=err,
                                cwd=base.ROOT, env=env)  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise RuntimeError(f"{child} failed (exit {os.waitstatus_to_exitcode(status)}):\n{err.read()[-1500:]}")
        out.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith("{")]
    return json.loads(lines[-1]), usage.ru_maxrss / 1024


def measure(child: str, env: dict[str, str]) -> dict[str, Any]:
    runs = [measure_once(child, env) for _ in range(REPEAT)]
    return {
        "seconds": statistics.median(r["seconds"] for r, _ in runs),
        "cpu": statistics.median(r["cpu"] for r, _ in runs),
        "emulator_cpu": statistics.median(r["emulator_cpu"] for r, _ in runs),
        "rss_mb": max(rss for _, rss in runs),
        "rows": runs[-1][0]["rows"],
        "note": runs[-1][0].get("note", ""),
        "all": [round(r["seconds"], 2) for r, _ in runs],
    }


def bench(kind: str, rows: int, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    generate(kind, rows)
    by: dict[str, dict[str, Any]] = {}
    for what in ("extract", "load", "full"):  # the load reads the extraction's parts
        print(f"  {NAMES[kind]} {rows:,} rows: {what} ...", file=sys.stderr, flush=True)
        by[what] = measure(f"{kind}:{rows}:{what}", env)
        print(f"    {by[what]['all']} s, peak RSS {by[what]['rss_mb']:.0f} MB", file=sys.stderr, flush=True)
    shutil.rmtree(_parts_dir(kind, rows), ignore_errors=True)
    return by


def report(results: dict[tuple[str, int], dict[str, dict[str, Any]]], load: list[str]) -> list[str]:
    labels = {"extract": "extraction alone → Parquet", "load": "emulator load alone", "full": "full replace run"}
    lines = [f"Pipelined run: median of {REPEAT} runs, each in its own process; load average before: "
             f"{' '.join(load)} (2 cores, shared).\n",
             "| source | rows | step | median s | rows/s | CPU s, machine (emulator) | cores busy | peak RSS MB "
             "| runs (s) | notes |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]  # fmt: skip
    for (kind, rows), by in results.items():
        for what, r in by.items():
            runs = ", ".join(f"{s:.2f}" for s in r["all"])
            lines.append(f"| {NAMES[kind]} | {rows:,} | {labels[what]} | {r['seconds']:.2f} | "
                         f"{r['rows'] / r['seconds']:,.0f} | {r['cpu']:.2f} ({r['emulator_cpu']:.2f}) | "
                         f"{r['cpu'] / r['seconds']:.2f} | {r['rss_mb']:.0f} | {runs} | {r['note']} |")  # fmt: skip
    lines.append("\nTargets (issue 18):")
    for (kind, rows), by in results.items():
        slower = max(by["extract"]["seconds"], by["load"]["seconds"])
        ratio = by["full"]["seconds"] / slower
        verdict = "PASS" if ratio <= MAX_RATIO else "FAIL"
        lines.append(f"- {NAMES[kind]}, {rows:,} rows: full run {by['full']['seconds']:.2f} s / max(extraction "
                     f"{by['extract']['seconds']:.2f} s, load {by['load']['seconds']:.2f} s) = {ratio:.2f}x "
                     f"(<= {MAX_RATIO}x) {verdict}")  # fmt: skip
        # What 2 cores allow: the halves' CPU seconds together, run on both cores at once.
        floor = max(slower, (by["extract"]["cpu"] + by["load"]["cpu"]) / CORES)
        extra = by["full"]["cpu"] - by["extract"]["cpu"] - by["load"]["cpu"]
        lines.append(f"  - CPU: extraction {by['extract']['cpu']:.2f} s + load {by['load']['cpu']:.2f} s on {CORES} "
                     f"cores take at least {floor:.2f} s = {floor / slower:.2f}x max(E, L); the full run used "
                     f"{by['full']['cpu']:.2f} CPU s ({extra:+.2f} s beyond the halves: the commit and the run's "
                     f"own work), {by['full']['cpu'] / by['full']['seconds']:.2f} of {CORES} cores busy; full / its "
                     f"own CPU floor = {by['full']['seconds'] * CORES / by['full']['cpu']:.2f}x")  # fmt: skip
    for kind in dict.fromkeys(k for k, _ in results):
        peaks = {rows: by["full"]["rss_mb"] for (k, rows), by in results.items() if k == kind}
        top = max(peaks.values())
        spread = top - min(peaks.values())
        ok = top <= MAX_RSS_MB and spread <= FLAT_RSS_MB
        shown = ", ".join(f"{rows // 1_000_000}M rows {mb:.0f} MB" for rows, mb in sorted(peaks.items()))
        lines.append(f"- {NAMES[kind]} full run peak RSS: {shown} (<= {MAX_RSS_MB} MB, flat within {FLAT_RSS_MB} MB) "
                     f"{'PASS' if ok else 'FAIL'}")  # fmt: skip
    return lines


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    kinds = [k.strip() for k in os.environ.get("BENCH_PIPELINE_SOURCES", "postgresql,mysql,sqlite").split(",")
             if k.strip()]  # fmt: skip
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    emulator, host = base.start_emulator()
    env = {**os.environ, "BENCH_EMULATOR_HOST": host, "BENCH_EMULATOR_PID": str(emulator.pid),
           "PYTHONPATH": str(base.ROOT)}  # fmt: skip
    results: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    try:
        for kind in kinds:
            for rows in SIZES:
                results[(kind, rows)] = bench(kind, rows, env)
    finally:
        emulator.terminate()
        try:
            emulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            emulator.kill()
    print("\n".join(report(results, load)))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2])))
        sys.exit(0)
    sys.exit(main())
