"""Benchmark Verify (`make bench`): 2M in-sync PostgreSQL rows against the emulator, then 100 scattered differences.

Targets (issue 17): Verify of an in-sync table within 1.5x the product's extraction time of the same
table, no row transferred, peak RSS < 300 MB; with 100 scattered differences, the rows fetched to
localise them < 1 % of the table. Each measurement runs in its own process (its own peak RSS), the
median of BENCH_REPEAT runs. Uses the transactions table of bench_runner.py in its own database.

Environment: BENCH_ROWS (2,000,000), BENCH_REPEAT (3), BENCH_PG_* as bench_runner.py.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bench_runner as br  # noqa: E402

br.DATABASE = "bench_verify"
DIFFERENCES = 100


def _verify() -> dict[str, Any]:
    from ml_platform.etl.sources import get_engine
    from ml_platform.etl.verify import verify
    from ml_platform.etl.verify_sides import sides_for

    spec = br._spec(load_strategy="replace")
    engine = get_engine(br._connection_params())
    started = time.perf_counter()
    source, dest, compared = sides_for(spec, bq=br._bq(), engine=engine)
    result = verify(source, dest, key=compared.key.source if compared.key else None)
    seconds = time.perf_counter() - started
    source.close()
    return {"seconds": seconds, "rows": result.source_rows, "fetched": result.rows_fetched,
            "queries": result.queries, "found": [result.missing, result.extra, result.changed],
            "in_sync": result.in_sync}


def child_load() -> dict[str, Any]:
    return br.child_run("replace")


CHILDREN = {"extract": lambda: br.child_extract("auto"), "load": child_load, "verify": _verify}


def measure_once(method: str, env: dict[str, str]) -> tuple[dict[str, Any], float]:
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, __file__, "--child", method], stdout=out, stderr=err,
                                cwd=br.ROOT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{method} failed:\n{err.read()[-1500:]}")
        lines = [line for line in out.read().splitlines() if line.startswith("{")]
        return json.loads(lines[-1]), usage.ru_maxrss / 1024


def measure(label: str, method: str, env: dict[str, str]) -> dict[str, Any]:
    print(f"  {label} ...", file=sys.stderr, flush=True)
    measure_once(method, env)  # warm-up (caches on both sides)
    runs = [measure_once(method, env) for _ in range(br.REPEAT)]
    last = runs[-1][0]
    return {"label": label, "seconds": statistics.median(r["seconds"] for r, _ in runs), "last": last,
            "rss_mb": max(rss for _, rss in runs), "all": [round(r["seconds"], 2) for r, _ in runs]}


def measure_interleaved(extract: tuple[str, str], verify: tuple[str, str],
                        env: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any], list[float]]:
    """Extraction and Verify alternately (E, V, E, V, ...), so both see the same load on a shared machine:
    (extraction, Verify, Verify/extraction of each pair)."""
    print(f"  {extract[0]} / {verify[0]}, interleaved ...", file=sys.stderr, flush=True)
    measure_once(extract[1], env)  # warm-ups (caches on both sides)
    measure_once(verify[1], env)
    pairs = [(measure_once(extract[1], env), measure_once(verify[1], env)) for _ in range(br.REPEAT)]
    out = []
    for label, runs in ((extract[0], [e for e, _ in pairs]), (verify[0], [v for _, v in pairs])):
        out.append({"label": label, "seconds": statistics.median(r["seconds"] for r, _ in runs), "last": runs[-1][0],
                    "rss_mb": max(rss for _, rss in runs), "all": [round(r["seconds"], 2) for r, _ in runs]})
    return out[0], out[1], [v[0]["seconds"] / e[0]["seconds"] for e, v in pairs]


def scatter_differences(env: dict[str, str]) -> list[int]:
    """40 rows deleted and 40 changed in BigQuery, 20 deleted in the source (extra in BigQuery): 100 keys."""
    import psycopg

    from ml_platform.etl.bigquery import BigQuery

    step = br.ROWS // (DIFFERENCES + 1)
    keys = [step * (i + 1) - 7 * i for i in range(DIFFERENCES)]
    bq = BigQuery(project=br.PROJECT, emulator_host=env["BENCH_EMULATOR_HOST"])
    table = f"`{br.DATASET}`.`{br.TABLE}`"
    bq.query(f"DELETE FROM {table} WHERE id IN ({', '.join(map(str, keys[:40]))})")
    bq.query(f"UPDATE {table} SET amount = amount + 1 WHERE id IN ({', '.join(map(str, keys[40:80]))})")
    with psycopg.connect(host=br.PG_HOST, port=br.PG_PORT, user=br.PG_USER, password=br.PG_PASSWORD or None,
                         dbname=br.DATABASE, autocommit=True) as conn:  # fmt: skip
        conn.execute(f"DELETE FROM {br.TABLE} WHERE id IN ({', '.join(map(str, keys[80:]))})")
    return keys


def main() -> int:
    br.WORK.mkdir(parents=True, exist_ok=True)
    print(f"generating {br.ROWS:,} rows in database {br.DATABASE} ...", file=sys.stderr, flush=True)
    br.generate()
    emulator, host = br.start_emulator()
    env = {**os.environ, "BENCH_EMULATOR_HOST": host, "PYTHONPATH": str(br.ROOT)}
    try:
        print("  loading the table into the emulator (full replace run) ...", file=sys.stderr, flush=True)
        measure_once("load", env)
        load_before = os.getloadavg()
        extract, in_sync, pair_ratios = measure_interleaved(
            ("product extraction → Parquet (ADBC fast path)", "extract"), ("Verify, in sync", "verify"), env)
        scatter_differences(env)
        diffs = measure(f"Verify, {DIFFERENCES} scattered differences", "verify", env)
        load_after = os.getloadavg()
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    rows = br.ROWS
    print(f"Benchmark: Verify of {rows:,} rows of `{br.TABLE}` (PostgreSQL → emulator), median of {br.REPEAT}; "
          f"extraction and in-sync Verify interleaved. Load average (1, 5, 15 min) before: "
          f"{', '.join(f'{x:.1f}' for x in load_before)}; after: {', '.join(f'{x:.1f}' for x in load_after)}.\n")
    print("| measurement | median s | peak RSS MB | runs (s) | rows fetched | queries | found (missing, extra, changed) |")
    print("| --- | ---: | ---: | --- | ---: | ---: | --- |")
    for r in (extract, in_sync, diffs):
        last = r["last"]
        found = last.get("found")
        print(f"| {r['label']} | {r['seconds']:.2f} | {r['rss_mb']:.0f} | {', '.join(map(str, r['all']))} "
              f"| {last.get('fetched', '—')} | {last.get('queries', '—')} | {found if found else '—'} |")
    ratio = in_sync["seconds"] / extract["seconds"]
    fetched = diffs["last"]["fetched"] / rows
    peak = max(in_sync["rss_mb"], diffs["rss_mb"])
    print("\nTargets:")
    print(f"- in-sync Verify within 1.5x extraction ({extract['seconds']:.2f} s): {in_sync['seconds']:.2f} s = "
          f"{ratio:.2f}x {'PASS' if ratio <= 1.5 else 'FAIL'} (pairwise: {', '.join(f'{r:.2f}' for r in pair_ratios)}, "
          f"median {statistics.median(pair_ratios):.2f}x); rows transferred: {in_sync['last']['fetched']} "
          f"{'PASS' if in_sync['last']['fetched'] == 0 and in_sync['last']['in_sync'] else 'FAIL'}")
    print(f"- peak RSS < 300 MB: {peak:.0f} MB {'PASS' if peak < 300 else 'FAIL'}")
    print(f"- rows fetched for {DIFFERENCES} differences < 1 % of the table: {diffs['last']['fetched']:,} = "
          f"{fetched:.3%} {'PASS' if fetched < 0.01 else 'FAIL'}; found {sum(diffs['last']['found'])} "
          f"{'PASS' if diffs['last']['found'] == [40, 20, 40] else 'FAIL'}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(CHILDREN[sys.argv[2]]()))
        sys.exit(0)
    sys.exit(main())
