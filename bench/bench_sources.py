"""Benchmark extraction from MariaDB and SQLite on the PostgreSQL bench's table shape (`make bench`).

For each source: a native reference (MariaDB: `mariadb --quick --batch` streaming the SELECT
to /dev/null; SQLite: the `sqlite3` shell writing CSV to /dev/null), the product's extraction
to conformed Parquet (the fast path `auto` picks, and optionally the generic path), and dlt's
`sql_table` with its connectorx and pyarrow backends. Every method runs in its own process
(peak RSS from wait4), REPEAT times, median reported.

Environment: BENCH_ROWS (2,000,000), BENCH_REPEAT (3), BENCH_MYSQL_HOST/PORT/USER/PASSWORD,
BENCH_DLT=0 to skip dlt, BENCH_GENERIC=0 to skip the (slow) generic-path extraction,
BENCH_SOURCES=mysql,sqlite to pick sources. Imports only the standard library at the top:
dlt children run in bench_runner's separate virtualenv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_runner as base  # noqa: E402 - the shared child/measure machinery

ROWS = base.ROWS
REPEAT = base.REPEAT
MYSQL_HOST = os.environ.get("BENCH_MYSQL_HOST", os.environ.get("TEST_MYSQL_HOST", "127.0.0.1"))
MYSQL_PORT = int(os.environ.get("BENCH_MYSQL_PORT", os.environ.get("TEST_MYSQL_PORT", "3306")))
MYSQL_USER = os.environ.get("BENCH_MYSQL_USER", os.environ.get("TEST_MYSQL_USER", "root"))
MYSQL_PASSWORD = os.environ.get("BENCH_MYSQL_PASSWORD", "")
DATABASE = "bench_etl_sources"
TABLE = "transactions"
WORK = base.WORK / "sources"
SQLITE_PATH = WORK / "bench.sqlite3"
COLUMNS = "id, account_id, amount, currency, description, is_refund, created_at, booked_on, metadata, status"
SELECT = f"SELECT {COLUMNS} FROM {TABLE}"

# The PostgreSQL bench's table (bench_runner.GENERATE_SQL) in each dialect: same columns, values, NULL rates.
MYSQL_GENERATE = f"""
DROP DATABASE IF EXISTS {DATABASE};
CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4;
USE {DATABASE};
CREATE TABLE {TABLE} (
  id bigint PRIMARY KEY, account_id int NOT NULL, amount decimal(12,2) NOT NULL, currency varchar(3) NOT NULL,
  description text, is_refund boolean NOT NULL, created_at timestamp(6) NOT NULL DEFAULT '2000-01-01',
  booked_on date NOT NULL, metadata json, status varchar(16) NOT NULL
);
SET time_zone = '+00:00';
INSERT INTO {TABLE}
SELECT seq, (seq * 7919) % 100000, round(((seq * 104729) % 10000000) / 100.0 - 50000, 2),
  ELT(1 + seq % 4, 'EUR', 'USD', 'GBP', 'CHF'), IF(seq % 5 = 0, NULL, CONCAT('payment ', md5(seq))),
  seq % 17 = 0, TIMESTAMP '2020-01-01 00:00:00' + INTERVAL (seq * 13) SECOND,
  DATE '2020-01-01' + INTERVAL (seq DIV 7000) DAY,
  IF(seq % 3 = 0, NULL, JSON_OBJECT('channel', ELT(1 + seq % 3, 'web', 'pos', 'app'), 'score', seq % 100)),
  ELT(1 + seq % 3, 'settled', 'pending', 'failed')
FROM seq_1_to_{ROWS};
CREATE INDEX created_at_idx ON {TABLE} (created_at);
ANALYZE TABLE {TABLE};
"""

# The SQLite table and its rows (bench_pipeline.py makes the same table under other names).
SQLITE_TABLE = """
CREATE TABLE {table} (
  id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL, amount NUMERIC(12,2) NOT NULL, currency VARCHAR(3) NOT NULL,
  description TEXT, is_refund BOOLEAN NOT NULL, created_at TIMESTAMP NOT NULL, booked_on DATE NOT NULL,
  metadata JSON, status TEXT NOT NULL
);
WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {rows})
INSERT INTO {table}
SELECT g, (g * 7919) % 100000, round(((g * 104729) % 10000000) / 100.0 - 50000, 2),
  CASE g % 4 WHEN 0 THEN 'EUR' WHEN 1 THEN 'USD' WHEN 2 THEN 'GBP' ELSE 'CHF' END,
  CASE WHEN g % 5 = 0 THEN NULL ELSE 'payment ' || printf('%016x%016x', g * 2654435761, g * 40503) END,
  g % 17 = 0, strftime('%Y-%m-%d %H:%M:%S', 1577836800 + g * 13, 'unixepoch'),
  date(1577836800 + (g / 7000) * 86400, 'unixepoch'),
  CASE WHEN g % 3 = 0 THEN NULL
       ELSE json_object('channel', CASE g % 3 WHEN 1 THEN 'pos' ELSE 'app' END, 'score', g % 100) END,
  CASE g % 3 WHEN 0 THEN 'settled' WHEN 1 THEN 'pending' ELSE 'failed' END
FROM s;
"""
SQLITE_GENERATE = (
    SQLITE_TABLE.format(table=TABLE, rows=ROWS)
    + f"CREATE INDEX created_at_idx ON {TABLE} (created_at);\nANALYZE;\n"
)


def mysql_url(driver: str = "mysql+pymysql") -> str:
    auth = quote(MYSQL_USER, safe="") + (f":{quote(MYSQL_PASSWORD, safe='')}" if MYSQL_PASSWORD else "")
    return f"{driver}://{auth}@{MYSQL_HOST}:{MYSQL_PORT}/{DATABASE}"


# --------------------------------------------------------------------------- child side


def _params(kind: str) -> Any:
    from ml_platform.etl.sources import ConnectionParams

    if kind == "mysql":
        return ConnectionParams(engine="mysql", host=MYSQL_HOST, port=MYSQL_PORT, database=DATABASE,
                                username=MYSQL_USER, password=MYSQL_PASSWORD)  # fmt: skip
    return ConnectionParams(engine="sqlite", database=str(SQLITE_PATH), options={"read_only": True})


def child_native(kind: str) -> dict[str, Any]:
    if kind == "mysql":
        cmd = ["mariadb", "--quick", "--batch", "-h", MYSQL_HOST, "-P", str(MYSQL_PORT), "-u", MYSQL_USER,
               DATABASE, "-e", SELECT]  # fmt: skip
        env = {**os.environ, "MYSQL_PWD": MYSQL_PASSWORD} if MYSQL_PASSWORD else None
    else:
        cmd, env = ["sqlite3", "-readonly", "-csv", str(SQLITE_PATH), SELECT], None
    with open(os.devnull, "wb") as sink:
        cpu, started = base.machine_cpu_seconds(), time.perf_counter()
        subprocess.run(cmd, stdout=sink, check=True, env=env)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "cpu": base.machine_cpu_seconds() - cpu, "rows": ROWS, "note": " ".join(cmd[:3])}


def child_extract(kind: str, method: str) -> dict[str, Any]:
    from ml_platform.etl.compatibility import schema_for_new_table
    from ml_platform.etl.runner import RunSpec, extract_to_parquet
    from ml_platform.etl.sources import get_columns, get_engine

    # MySQL: connectorx in its own process is the default reader (ml_platform/etl/fast_extract.py);
    # "pymysql" measures the PyMySQL text reader it falls back to (TLS connections, lossy column types).
    os.environ["ETL_MYSQL_CONNECTORX"] = "0" if method == "pymysql" else "1"
    if method == "pymysql":
        method = "fast"
    params = _params(kind)
    columns = tuple(get_columns(params, None, TABLE))
    spec = RunSpec(None, TABLE, columns, destination_dataset="bench", destination_table=TABLE, job_id="bench",
                   extract_method=method)  # fmt: skip
    target = WORK / f"parquet-{kind}-{method}"
    shutil.rmtree(target, ignore_errors=True)
    engine = get_engine(params)
    cpu, started = base.machine_cpu_seconds(), time.perf_counter()
    result = extract_to_parquet(spec, engine=engine, directory=target, fields=schema_for_new_table(columns))
    seconds = time.perf_counter() - started
    cpu = base.machine_cpu_seconds() - cpu
    shutil.rmtree(target, ignore_errors=True)
    return {"seconds": seconds, "cpu": cpu, "rows": result.rows, "note": f"{len(result.paths)} Parquet parts, "
                                                                        f"{result.bytes / 1e6:.0f} MB"}  # fmt: skip


def child_dlt(kind: str, backend: str) -> dict[str, Any]:
    import dlt
    import pyarrow.parquet as pq
    from dlt.sources.sql_database import sql_table

    out = WORK / f"dlt-{kind}-{backend}"
    shutil.rmtree(out, ignore_errors=True)
    credentials = mysql_url() if kind == "mysql" else f"sqlite:///{SQLITE_PATH}"
    cpu, started = base.machine_cpu_seconds(), time.perf_counter()
    source = sql_table(credentials=credentials, table=TABLE, backend=backend, chunk_size=100_000)
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{kind}_{backend}",
        destination=dlt.destinations.filesystem(bucket_url=(out / "out").as_uri()),
        dataset_name="bench",
        pipelines_dir=str(out / "pipelines"),
    )
    pipeline.run(source, loader_file_format="parquet")
    seconds = time.perf_counter() - started
    cpu = base.machine_cpu_seconds() - cpu
    files = [f for f in (out / "out").rglob("*.parquet") if TABLE in str(f)]
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": seconds, "cpu": cpu, "rows": rows, "note": "extract+normalize+load to local Parquet"}


def _child(name: str) -> dict[str, Any]:
    kind, what, *rest = name.split(":")
    if what == "native":
        return child_native(kind)
    if what == "extract":
        return child_extract(kind, rest[0])
    return child_dlt(kind, rest[0])


# --------------------------------------------------------------------------- parent side


def generate(kind: str) -> None:
    if kind == "mysql":
        cmd = ["mariadb", "-h", MYSQL_HOST, "-P", str(MYSQL_PORT), "-u", MYSQL_USER]
        env = {**os.environ, "MYSQL_PWD": MYSQL_PASSWORD} if MYSQL_PASSWORD else None
        subprocess.run(cmd, input=MYSQL_GENERATE.encode(), check=True, env=env, stdout=subprocess.DEVNULL)
        return
    import sqlite3

    SQLITE_PATH.unlink(missing_ok=True)
    with sqlite3.connect(SQLITE_PATH) as conn:
        conn.executescript(SQLITE_GENERATE)
    conn.close()


def measure(
    label: str, child: str, *, python: str, env: dict[str, str], warmup: int, repeat: int = REPEAT
) -> dict[str, Any]:
    print(f"  {label} ...", file=sys.stderr, flush=True)
    for _ in range(warmup):
        measure_once(child, python, env)
    runs = [measure_once(child, python, env) for _ in range(repeat)]
    seconds = sorted(r["seconds"] for r, _ in runs)[len(runs) // 2]
    cpu = sorted(r["cpu"] for r, _ in runs)[len(runs) // 2]
    rows = runs[-1][0]["rows"]
    return {"label": label, "rows": rows, "seconds": seconds, "rows_per_s": rows / seconds if seconds else 0.0,
            "cpu": cpu,
            "rss_mb": max(rss for _, rss in runs), "note": runs[-1][0].get("note", ""),
            "all": [round(r["seconds"], 2) for r, _ in runs]}  # fmt: skip


def measure_once(child: str, python: str, env: dict[str, str]) -> tuple[dict[str, Any], float]:
    with open(os.devnull, "w") as quiet:
        proc = subprocess.Popen([python, __file__, "--child", child], stdout=subprocess.PIPE, stderr=quiet,
                                cwd=base.ROOT, env=env, text=True)  # fmt: skip
        out = proc.stdout.read()  # type: ignore[union-attr]
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{child} failed (exit {os.waitstatus_to_exitcode(status)})")
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]), usage.ru_maxrss / 1024


def bench_source(kind: str, env: dict[str, str], dlt: tuple[str | None, str]) -> list[str]:
    name = {"mysql": "MariaDB", "sqlite": "SQLite"}[kind]
    print(f"generating {ROWS:,} rows in {name} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    generate(kind)
    print(f"  generated in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    me = sys.executable
    native_label = "`mariadb --quick --batch` → /dev/null" if kind == "mysql" else "`sqlite3 -csv` → /dev/null"
    by: dict[str, dict[str, Any]] = {}
    by["native"] = measure(f"{native_label} (reference)", f"{kind}:native", python=me, env=env, warmup=1)
    by["fast"] = measure("product extraction → Parquet (fast path)", f"{kind}:extract:fast", python=me, env=env,
                         warmup=1)  # fmt: skip
    if kind == "mysql":
        by["pymysql"] = measure("product extraction → Parquet (PyMySQL text reader, the fallback)",
                                "mysql:extract:pymysql", python=me, env=env, warmup=0)  # fmt: skip
    if os.environ.get("BENCH_GENERIC", "1") != "0":  # slow: one run, no warm-up
        by["generic"] = measure("product extraction → Parquet (generic SQLAlchemy path)", f"{kind}:extract:sqlalchemy",
                                python=me, env=env, warmup=0, repeat=1)  # fmt: skip
    notes: list[str] = []
    python, status = dlt
    if python is None:
        notes.append(f"dlt: {status}")
    else:
        env_dlt = {k: v for k, v in env.items() if k != "PYTHONPATH"}
        for backend in ("connectorx", "pyarrow"):
            try:
                by[f"dlt_{backend}"] = measure(f"dlt `sql_table`, {backend} backend → Parquet ({status})",
                                               f"{kind}:dlt:{backend}", python=python, env=env_dlt, warmup=0)  # fmt: skip
            except RuntimeError as exc:
                notes.append(f"dlt {backend}: unavailable ({exc})")
    return report(name, by, notes)


def report(name: str, by: dict[str, dict[str, Any]], notes: list[str]) -> list[str]:
    reference = by["native"]["rows_per_s"]
    lines = [f"\n### {name}: {ROWS:,} rows of `{TABLE}`, median of {REPEAT} runs, each in its own process\n",
             "| method | rows | median s | rows/s | vs native | CPU s, machine | peak RSS MB | runs (s) | notes |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]  # fmt: skip
    for r in by.values():
        runs = ", ".join(f"{s:.2f}" for s in r["all"])
        lines.append(f"| {r['label']} | {r['rows']:,} | {r['seconds']:.2f} | {r['rows_per_s']:,.0f} | "
                     f"{r['rows_per_s'] / reference:.2f}x | {r['cpu']:.2f} | {r['rss_mb']:.0f} | {runs} | "
                     f"{r['note']} |")  # fmt: skip
    fast = by["fast"]["rows_per_s"]
    lines.append(f"\nTargets ({name}, the default fast path):")
    lines.append(f"- fast path >= 0.6x native: {fast / reference:.2f}x {'PASS' if fast >= 0.6 * reference else 'FAIL'}")
    if "pymysql" in by:
        fallback = by["pymysql"]["rows_per_s"]
        lines.append(f"- (PyMySQL fallback reader: {fallback / reference:.2f}x native)")
    if "generic" in by:
        lines.append(f"- fast path vs the generic path: {fast / by['generic']['rows_per_s']:.1f}x faster")
    dlts = [r for k, r in by.items() if k.startswith("dlt_")]
    if dlts:
        best = max(dlts, key=lambda r: r["rows_per_s"])
        ratio = fast / best["rows_per_s"]
        lines.append(f"- fast path >= 1.3x dlt's fastest backend ({best['label'].split(',')[1].strip()}): "
                     f"{ratio:.2f}x {'PASS' if ratio >= 1.3 else 'FAIL'}")  # fmt: skip
        # On 2 busy cores the work each method makes, the database server's included, bounds its speed.
        lines.append(f"  - CPU s of the whole machine (the server's included): native {by['native']['cpu']:.2f}, "
                     f"fast path {by['fast']['cpu']:.2f}, dlt {best['cpu']:.2f}")  # fmt: skip
    return lines + [f"- {n}" for n in notes]


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(base.ROOT)}
    kinds = [k.strip() for k in os.environ.get("BENCH_SOURCES", "mysql,sqlite").split(",") if k.strip()]
    missing = [tool for tool, kind in (("mariadb", "mysql"), ("sqlite3", "sqlite")) if kind in kinds
               and shutil.which(tool) is None]  # fmt: skip
    if missing:
        print(f"native reference client(s) not installed: {', '.join(missing)}")
        return 1
    dlt = base.dlt_python() if os.environ.get("BENCH_DLT", "1") != "0" else (None, "skipped (BENCH_DLT=0)")
    if dlt[0] is not None and subprocess.run([dlt[0], "-c", "import pymysql"], capture_output=True).returncode:
        subprocess.run([dlt[0], "-m", "pip", "install", "-q", "pymysql"], capture_output=True)
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    lines = [f"Load average before the run: {' '.join(load)} (2 cores, shared)."]
    for kind in kinds:
        lines += bench_source(kind, env, dlt)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2])))
        sys.exit(0)
    sys.exit(main())
