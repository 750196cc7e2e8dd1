"""Benchmark the runner on a generated PostgreSQL table of transactions (`make bench`).

Every method runs in its own subprocess so its peak RSS (ru_maxrss from wait4) is its
own; each is timed REPEAT times (after a warm-up where that is cheap) and the median
is reported. The timed region is the operation itself, not interpreter start-up.

Environment: BENCH_ROWS (2,000,000), BENCH_REPEAT (3), BENCH_PG_HOST/PORT/USER/PASSWORD,
BENCH_DLT=0 to skip dlt, BENCH_GENERIC=0 to skip the generic-path extraction,
BENCH_ONLY=extract,full_replace,... to run a subset (the COPY reference always runs).
The module imports only the standard library at the top: its dlt children run in a
separate virtualenv that does not have the product installed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
ROWS = int(os.environ.get("BENCH_ROWS", "2000000"))
REPEAT = max(1, int(os.environ.get("BENCH_REPEAT", "3")))
PG_HOST = os.environ.get("BENCH_PG_HOST", os.environ.get("TEST_PG_HOST", "127.0.0.1"))
PG_PORT = int(os.environ.get("BENCH_PG_PORT", os.environ.get("TEST_PG_PORT", "5432")))
PG_USER = os.environ.get("BENCH_PG_USER", os.environ.get("TEST_PG_USER", "postgres"))
PG_PASSWORD = os.environ.get("BENCH_PG_PASSWORD", "")
DATABASE = "bench_etl"
TABLE = "transactions"
NEW_ROWS = max(1, ROWS // 100)
WORK = ROOT / ".data" / "bench"
PARQUET_DIR = WORK / "parquet"
BENCH_VENV = ROOT / ".data" / "bench-venv"
PROJECT = "bench-project"
DATASET = "bench"
CHILD_TIMEOUT_S = 3600

GENERATE_SQL = f"""
CREATE TABLE {TABLE} (
  id bigint PRIMARY KEY,
  account_id integer NOT NULL,
  amount numeric(12,2) NOT NULL,
  currency varchar(3) NOT NULL,
  description text,
  is_refund boolean NOT NULL,
  created_at timestamptz NOT NULL,
  booked_on date NOT NULL,
  metadata jsonb,
  status text NOT NULL
);
INSERT INTO {TABLE}
SELECT g,
       ((g::bigint * 7919) % 100000)::int,
       round(((g::bigint * 104729) % 10000000) / 100.0 - 50000, 2),
       (ARRAY['EUR','USD','GBP','CHF'])[1 + g % 4],
       CASE WHEN g % 5 = 0 THEN NULL ELSE 'payment ' || md5(g::text) END,
       g % 17 = 0,
       timestamptz '2020-01-01 00:00:00+00' + g * interval '13 seconds',
       date '2020-01-01' + (g / 7000),
       CASE WHEN g % 3 = 0 THEN NULL
            ELSE jsonb_build_object('channel', (ARRAY['web','pos','app'])[1 + g % 3], 'score', g % 100) END,
       (ARRAY['settled','pending','failed'])[1 + g % 3]
FROM generate_series(1, {ROWS}) g;
CREATE INDEX ON {TABLE} (created_at);
ANALYZE {TABLE};
"""

# The 1% an incremental run picks up: later ids, later timestamps.
NEW_ROWS_SQL = f"""
INSERT INTO {TABLE}
SELECT g, (g % 100000)::int, round((g % 100000) / 100.0, 2), 'EUR', 'late payment ' || g, false,
       timestamptz '2030-01-01 00:00:00+00' + g * interval '1 second', date '2030-01-01', NULL, 'pending'
FROM generate_series({ROWS + 1}, {ROWS + NEW_ROWS}) g;
ANALYZE {TABLE};
"""


def pg_url(driver: str = "postgresql") -> str:
    auth = quote(PG_USER, safe="") + (f":{quote(PG_PASSWORD, safe='')}" if PG_PASSWORD else "")
    return f"{driver}://{auth}@{PG_HOST}:{PG_PORT}/{DATABASE}"


# --------------------------------------------------------------------------- child side


def _connection_params() -> Any:
    from ml_platform.etl.sources import ConnectionParams

    return ConnectionParams(engine="postgresql", host=PG_HOST, port=PG_PORT, database=DATABASE,
                            username=PG_USER, password=PG_PASSWORD)  # fmt: skip


def _spec(**overrides: Any) -> Any:
    from ml_platform.etl.runner import RunSpec
    from ml_platform.etl.sources import get_columns

    columns = tuple(get_columns(_connection_params(), "public", TABLE))
    args = {"destination_dataset": DATASET, "destination_table": TABLE, "job_id": "bench", **overrides}
    return RunSpec("public", TABLE, columns, **args)


def _bq() -> Any:
    from ml_platform.etl.bigquery import BigQuery

    return BigQuery(project=PROJECT, emulator_host=os.environ["BENCH_EMULATOR_HOST"])


def _ensure_destination(bq: Any, name: str, columns: Any, *, fresh: bool) -> None:
    from ml_platform.etl.compatibility import schema_for_new_table

    bq.create_dataset(DATASET)
    if fresh:
        bq.drop_table(DATASET, name)
    if not bq.table_exists(DATASET, name):
        bq.create_table(DATASET, name, schema_for_new_table(columns))


def child_copy_binary() -> dict[str, Any]:
    import psycopg

    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, password=PG_PASSWORD or None,
                         dbname=DATABASE) as conn:  # fmt: skip
        with conn.cursor() as cur, open(os.devnull, "wb") as sink:
            rows = cur.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
            started = time.perf_counter()
            size = 0
            with cur.copy(f"COPY {TABLE} TO STDOUT (FORMAT binary)") as copy:
                for data in copy:
                    sink.write(data)
                    size += len(data)
            seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": rows, "note": f"{size / 1e6:.0f} MB binary COPY stream"}


def child_extract(method: str) -> dict[str, Any]:
    import adbc_driver_postgresql.dbapi  # noqa: F401 - a worker imports once; keep it out of the timing

    from ml_platform.etl.compatibility import schema_for_new_table
    from ml_platform.etl.runner import extract_to_parquet
    from ml_platform.etl.sources import get_engine

    spec = _spec(extract_method=method)
    engine = get_engine(_connection_params())
    target = PARQUET_DIR if method == "auto" else WORK / f"parquet-{method}"
    shutil.rmtree(target, ignore_errors=True)
    started = time.perf_counter()
    result = extract_to_parquet(spec, engine=engine, directory=target, fields=schema_for_new_table(spec.columns))
    seconds = time.perf_counter() - started
    if method != "auto":
        shutil.rmtree(target, ignore_errors=True)
    note = f"{len(result.paths)} Parquet parts, {result.bytes / 1e6:.0f} MB"
    return {"seconds": seconds, "rows": result.rows, "note": note}


def child_emulator_load() -> dict[str, Any]:
    spec = _spec()
    bq = _bq()
    _ensure_destination(bq, "load_only", spec.columns, fresh=True)
    parts = sorted(PARQUET_DIR.glob("*.parquet"))
    if not parts:
        raise SystemExit("no Parquet parts: run the extraction first")
    started = time.perf_counter()
    for index, part in enumerate(parts):
        bq.load_parquet(part, DATASET, "load_only", "WRITE_TRUNCATE" if index == 0 else "WRITE_APPEND")
    seconds = time.perf_counter() - started
    rows = bq.row_count(DATASET, "load_only")
    bq.drop_table(DATASET, "load_only")
    return {"seconds": seconds, "rows": rows, "note": f"{len(parts)} load jobs"}


def timed_run(spec: Any, bq: Any, engine: Any, work: Path) -> tuple[Any, float, float, dict[str, float]]:
    """One `run_job`, timed: (result, start, seconds, the time each phase started), spooling under `work`."""
    from ml_platform.etl.runner import run_job

    phases: dict[str, float] = {}

    def mark(progress: Any) -> None:
        phases.setdefault(progress.phase, time.perf_counter())

    with tempfile.TemporaryDirectory(dir=work) as spool:
        started = time.perf_counter()
        result = run_job(spec, bq=bq, engine=engine, progress=mark, spool_dir=Path(spool))
        seconds = time.perf_counter() - started
    return result, started, seconds, phases


def child_run(strategy: str) -> dict[str, Any]:
    import adbc_driver_postgresql.dbapi  # noqa: F401 - a worker imports once; keep it out of the timing

    from ml_platform.etl.sources import get_engine

    bq = _bq()
    # Each repetition is a new run (its own ledger units, a larger fencing token).
    run = {"run_id": f"bench{time.time_ns()}", "fence": time.time_ns() // 1000}
    if strategy == "replace":
        spec = _spec(load_strategy="replace", **run)
        _ensure_destination(bq, TABLE, spec.columns, fresh=False)
    else:
        spec = _spec(load_strategy="incremental", cursor_column="created_at", watermark=None, **run)
        # Every repetition starts from the same state: the destination as the replace run left it,
        # and no incremental unit in the commit ledger (its watermark would skip the new rows).
        bq.query(f"DELETE FROM `{DATASET}`.`{TABLE}` WHERE id > {ROWS}")
        if bq.table_exists(DATASET, "_etl_ledger"):
            bq.query(f"DELETE FROM `{DATASET}`.`_etl_ledger` WHERE signature LIKE 'incremental%'")
    engine = get_engine(_connection_params())
    result, started, seconds, phases = timed_run(spec, bq, engine, WORK)
    ended = started + seconds
    split = ""
    if {"extracting", "loading", "committing"} <= phases.keys():
        split = (
            f"extract {phases['loading'] - phases['extracting']:.1f} s, last load "
            f"{phases['committing'] - phases['loading']:.1f} s, commit {ended - phases['committing']:.1f} s; "
        )
    note = f"{split}{result.checkpoints} commit(s), {result.bytes / 1e6:.0f} MB spooled"
    if strategy != "replace":
        note += f", watermark derived from the destination: {result.watermark_derived}"
    return {"seconds": seconds, "rows": result.rows_loaded, "note": note}


def child_dlt(backend: str) -> dict[str, Any]:
    import dlt
    from dlt.sources.sql_database import sql_table

    base = WORK / f"dlt-{backend}"
    shutil.rmtree(base, ignore_errors=True)
    started = time.perf_counter()
    source = sql_table(credentials=pg_url(), table=TABLE, backend=backend, chunk_size=100_000)
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{backend}",
        destination=dlt.destinations.filesystem(bucket_url=(base / "out").as_uri()),
        dataset_name="bench",
        pipelines_dir=str(base / "pipelines"),
    )
    pipeline.run(source, loader_file_format="parquet")
    seconds = time.perf_counter() - started
    files = list((base / "out").rglob("*.parquet"))
    size = sum(f.stat().st_size for f in files)
    import pyarrow.parquet as pq

    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files if TABLE in str(f))
    shutil.rmtree(base, ignore_errors=True)
    return {"seconds": seconds, "rows": rows, "note": f"extract+normalize+load to local Parquet, {size / 1e6:.0f} MB"}


CHILDREN = {
    "copy_binary": child_copy_binary,
    "extract": lambda: child_extract("auto"),
    "extract_generic": lambda: child_extract("sqlalchemy"),
    "emulator_load": child_emulator_load,
    "full_replace": lambda: child_run("replace"),
    "incremental": lambda: child_run("incremental"),
    "dlt_connectorx": lambda: child_dlt("connectorx"),
    "dlt_pyarrow": lambda: child_dlt("pyarrow"),
}


# --------------------------------------------------------------------------- parent side


def measure_once(method: str, python: str, env: dict[str, str]) -> tuple[dict[str, Any], float]:
    """Run one child; its JSON result and its peak RSS in MB (wait4 gives this child's own rusage)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([python, __file__, "--child", method], stdout=out, stderr=err, cwd=ROOT, env=env)
        timer = threading.Timer(CHILD_TIMEOUT_S, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            tail = err.read()[-1500:]
            raise RuntimeError(f"{method} failed (exit {proc.returncode}):\n{tail}")
        lines = [line for line in out.read().splitlines() if line.startswith("{")]
        return json.loads(lines[-1]), usage.ru_maxrss / 1024


def measure(label: str, method: str, *, python: str, env: dict[str, str], warmup: int) -> dict[str, Any]:
    print(f"  {label} ...", file=sys.stderr, flush=True)
    for _ in range(warmup):
        measure_once(method, python, env)
    runs = [measure_once(method, python, env) for _ in range(REPEAT)]
    seconds = statistics.median(r["seconds"] for r, _ in runs)
    rows = runs[-1][0]["rows"]
    return {
        "label": label,
        "rows": rows,
        "seconds": seconds,
        "rows_per_s": rows / seconds if seconds else 0.0,
        "rss_mb": max(rss for _, rss in runs),
        "note": runs[-1][0].get("note", ""),
        "all": [round(r["seconds"], 2) for r, _ in runs],
    }


def generate() -> None:
    import psycopg

    admin = psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, password=PG_PASSWORD or None,
                            dbname="postgres", autocommit=True)  # fmt: skip
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DATABASE}"')
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, password=PG_PASSWORD or None,
                         dbname=DATABASE, autocommit=True) as conn:  # fmt: skip
        conn.execute(GENERATE_SQL)


def add_new_rows() -> None:
    import psycopg

    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, password=PG_PASSWORD or None,
                         dbname=DATABASE, autocommit=True) as conn:  # fmt: skip
        conn.execute(NEW_ROWS_SQL)


def machine_cpu_seconds() -> float:
    """CPU time every process on the machine has used (user + nice + system + irq + softirq, /proc/stat), in s.

    Around a timed region it counts the database server's work too, which a process's own rusage does not.
    """
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:8]]
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6]
    return busy / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_emulator() -> tuple[subprocess.Popen[bytes], str]:
    from duckdb_extensions import import_extension

    import_extension("spatial")  # bqemulator installs it at start-up; offline this is the way
    binary = Path(sys.executable).with_name("bqemulator")
    rest, grpc = free_port(), free_port()
    log = open(WORK / "emulator.log", "wb")  # kept open for the emulator's lifetime
    proc = subprocess.Popen(
        [str(binary), "start", "--rest-port", str(rest), "--grpc-port", str(grpc), "--ephemeral",
         "--project", PROJECT, "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    host = f"http://127.0.0.1:{rest}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{host}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return proc, host
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"bqemulator did not start; see {WORK / 'emulator.log'}")


def dlt_python() -> tuple[str | None, str]:
    """The bench virtualenv's python with dlt + connectorx, creating it on first use."""
    if os.environ.get("BENCH_DLT", "1") == "0":
        return None, "skipped (BENCH_DLT=0)"
    python = BENCH_VENV / "bin" / "python"
    probe = [str(python), "-c", "import dlt, connectorx, sqlalchemy, psycopg; print(dlt.__version__)"]
    if not python.exists():
        try:
            base = subprocess.run([str(ROOT / "scripts" / "python312.sh")], capture_output=True, text=True,
                                  check=True).stdout.strip()  # fmt: skip
            subprocess.run([base, "-m", "venv", str(BENCH_VENV)], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            return None, f"unavailable (cannot create {BENCH_VENV}: {exc})"
    if subprocess.run(probe, capture_output=True).returncode != 0:
        install = [str(python), "-m", "pip", "install", "-q", "dlt[parquet]", "connectorx", "sqlalchemy",
                   "psycopg[binary]"]  # fmt: skip
        done = subprocess.run(install, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["pip install failed"])[-1]
            return None, f"unavailable ({reason})"
    found = subprocess.run(probe, capture_output=True, text=True)
    if found.returncode != 0:
        reason = (found.stderr.strip().splitlines() or ["import failed"])[-1]
        return None, f"unavailable ({reason})"
    return str(python), f"dlt {found.stdout.strip()}"


def report(results: list[dict[str, Any]], notes: list[str]) -> None:
    reference = results[0]["rows_per_s"]
    print(f"Benchmark: {ROWS:,} rows of `{TABLE}` on PostgreSQL, median of {REPEAT} runs, each in its own process.\n")
    print("| method | rows | median s | rows/s | vs COPY | peak RSS MB | runs (s) | notes |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for r in results:
        ratio = r["rows_per_s"] / reference if reference else 0.0
        runs = ", ".join(f"{s:.2f}" for s in r["all"])
        print(f"| {r['label']} | {r['rows']:,} | {r['seconds']:.2f} | {r['rows_per_s']:,.0f} | {ratio:.2f}x "
              f"| {r['rss_mb']:.0f} | {runs} | {r['note']} |")  # fmt: skip
    for note in notes:
        print(f"\n{note}")


def targets(by: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["Targets:"]
    copy, extract = by.get("copy_binary"), by.get("extract")
    if copy and extract:
        ratio = extract["rows_per_s"] / copy["rows_per_s"]
        lines.append(f"- extraction >= 0.6x COPY rows/s: {ratio:.2f}x {'PASS' if ratio >= 0.6 else 'FAIL'}")
    load, replace = by.get("emulator_load"), by.get("full_replace")
    if extract and load and replace:
        budget = extract["seconds"] + load["seconds"]
        ratio = replace["seconds"] / budget
        lines.append(
            f"- full replace within 1.2x of extraction + load ({budget:.2f} s): {replace['seconds']:.2f} s = "
            f"{ratio:.2f}x {'PASS' if ratio <= 1.2 else 'FAIL'}"
        )
    incremental = by.get("incremental")
    if incremental and replace:
        share = incremental["seconds"] / replace["seconds"]
        lines.append(
            f"- incremental run with +1% rows <= 10% of a full run: {incremental['seconds']:.2f} s / "
            f"{replace['seconds']:.2f} s = {share:.1%} {'PASS' if share <= 0.10 else 'FAIL'}"
        )
    product = [by[k] for k in ("extract", "full_replace", "incremental") if k in by]
    if product:
        peak = max(r["rss_mb"] for r in product)
        lines.append(f"- product peak RSS < 300 MB: {peak:.0f} MB {'PASS' if peak < 300 else 'FAIL'}")
    return ["\n".join(lines)]


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    print(f"generating {ROWS:,} rows in database {DATABASE} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    generate()
    print(f"  generated in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    emulator, host = start_emulator()
    env = {**os.environ, "BENCH_EMULATOR_HOST": host, "PYTHONPATH": str(ROOT)}
    me = sys.executable
    results: list[dict[str, Any]] = []
    notes: list[str] = []
    by: dict[str, dict[str, Any]] = {}

    only = {m.strip() for m in os.environ.get("BENCH_ONLY", "").split(",") if m.strip()}

    def wanted(key: str) -> bool:
        return not only or key in only or key == "copy_binary"

    def add(key: str, label: str, *, python: str = me, warmup: int = 1) -> None:
        if not wanted(key):
            return
        by[key] = measure(label, key, python=python, env=env, warmup=warmup)
        results.append(by[key])

    try:
        add("copy_binary", "binary COPY → /dev/null, psycopg (reference)")
        add("extract", "product extraction → Parquet (ADBC fast path)")
        if os.environ.get("BENCH_GENERIC", "1") != "0":  # slow: no warm-up
            add("extract_generic", "product extraction → Parquet (generic SQLAlchemy path)", warmup=0)
        add("emulator_load", "emulator load of the product's Parquet alone")
        add("full_replace", "product full replace run into the emulator")
        python, status = dlt_python() if wanted("dlt_connectorx") or wanted("dlt_pyarrow") else (None, "")
        if python is None and status:
            notes.append(f"dlt: {status}")
        elif python is not None:
            env_dlt = {k: v for k, v in env.items() if k != "PYTHONPATH"}
            for backend in ("connectorx", "pyarrow"):
                if not wanted(f"dlt_{backend}"):
                    continue
                try:
                    by[f"dlt_{backend}"] = measure(
                        f"dlt `sql_table`, {backend} backend → Parquet ({status})",
                        f"dlt_{backend}",
                        python=python,
                        env=env_dlt,
                        warmup=0,
                    )
                    results.append(by[f"dlt_{backend}"])
                except RuntimeError as exc:
                    notes.append(f"dlt {backend}: unavailable ({str(exc).splitlines()[-1]})")
        if wanted("incremental"):
            add_new_rows()
        add("incremental", f"product incremental run, +1% new rows ({NEW_ROWS:,})")
    finally:
        emulator.terminate()
        try:
            emulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            emulator.kill()
    report(results, notes + targets(by))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(CHILDREN[sys.argv[2]]()))
        sys.exit(0)
    sys.exit(main())
