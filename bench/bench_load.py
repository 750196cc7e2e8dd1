"""Load: 20 users drive the wizard of a live server for 60 s, then 10 jobs run on 2 workers (`python bench/bench_load.py`).

Self-contained and loopback only; it stops by itself:
- starts its own bqemulator on free ports, creates a fresh PostgreSQL database `bench_load_<random>`
  for Django (migrated here) and `bench_load_<random>_src` for the source tables, and drops both at the end;
- serves the product with gunicorn as the Procfile does (`ml_platform.wsgi`, 2 workers x 4 threads)
  on 127.0.0.1:<free port>;
- phase 1: USERS simulated users (one thread and one HTTP session each) log in through the login form
  (CSRF) and go through wizard steps 1-4 and the live compatibility report of an existing table with
  rows, again and again, for BENCH_LOAD_SECONDS. Every response is checked (status, redirect target,
  report verdict); an exception or a non-2xx/3xx status is an error;
- phase 2: JOBS jobs (one source table each, different sizes) are enqueued at once and run by 2
  `manage.py db_worker` processes; every destination must then equal its source (rows, distinct ids,
  sums).

Prints markdown tables and a final line; exits 1 on any error.

Environment: BENCH_LOAD_SECONDS (60), BENCH_LOAD_USERS (20), BENCH_LOAD_JOBS (10), BENCH_LOAD_JOB_ROWS (50000),
TEST_PG_PORT (5432) and TEST_PG_USER (postgres) for PostgreSQL on 127.0.0.1.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent

SECONDS = float(os.environ.get("BENCH_LOAD_SECONDS", "60"))
USERS = int(os.environ.get("BENCH_LOAD_USERS", "20"))
JOBS = int(os.environ.get("BENCH_LOAD_JOBS", "10"))
JOB_ROWS = int(os.environ.get("BENCH_LOAD_JOB_ROWS", "50000"))
PG_HOST = "127.0.0.1"  # loopback only, whatever the environment says
PG_PORT = int(os.environ.get("TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TEST_PG_USER", "postgres")
GUNICORN_WORKERS, GUNICORN_THREADS = 2, 4
PASSWORD = "bench-load-Password-1"
DATASET = "bench"
EXISTING = "orders_existing"
EXISTING_ROWS = 1000
WIZARD_ROWS = 10_000
REQUEST_TIMEOUT = 60
JOBS_TIMEOUT = 150


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, what: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start: {log.read_text()[-3000:] if log.exists() else ''}")


def clean_up(admin: psycopg.Connection, databases: tuple[str, ...], workdir: Path) -> None:
    """After a bench: Django's connections closed, its databases dropped, the work directory removed."""
    try:
        from django.db import connections

        connections.close_all()
    except Exception:  # noqa: BLE001 - Django may not be set up yet
        pass
    for name in databases:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()
    shutil.rmtree(workdir, ignore_errors=True)


def stop(proc: subprocess.Popen | None, timeout: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def pg_admin() -> psycopg.Connection:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True, connect_timeout=5
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# --------------------------------------------------------------------------- phase 1: users on the wizard


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.examples: list[str] = []

    def record(self, endpoint: str, seconds: float, problem: str = "") -> None:
        with self.lock:
            self.latencies[endpoint].append(seconds * 1000)
            if problem:
                self.errors[endpoint] += 1
                if len(self.examples) < 10:
                    self.examples.append(f"{endpoint}: {problem}")

    @property
    def total_errors(self) -> int:
        return sum(self.errors.values())


class SimulatedUser(threading.Thread):
    """One person with a browser session: logs in once, then creates job drafts until the deadline."""

    def __init__(
        self, base: str, username: str, connection_id: int, columns: list[str], deadline: float, stats: Stats
    ) -> None:
        super().__init__(name=f"user-{username}", daemon=True)
        self.base, self.username, self.connection_id, self.columns = base, username, connection_id, columns
        self.deadline, self.stats = deadline, stats
        self.session = requests.Session()
        self.passes = 0

    def call(
        self, endpoint: str, method: str, path: str, *, expect: int, location: str = "", contains: str = "", **kwargs
    ) -> requests.Response | None:
        started = time.perf_counter()
        try:
            response = self.session.request(
                method, self.base + path, allow_redirects=False, timeout=REQUEST_TIMEOUT, **kwargs
            )
        except requests.RequestException as exc:
            self.stats.record(endpoint, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
            return None
        elapsed = time.perf_counter() - started
        status = response.status_code
        problem = ""
        if not 200 <= status < 400:
            problem = f"HTTP {status}: {response.text[:200]!r}"
        elif status != expect:
            problem = f"HTTP {status}, expected {expect} ({response.headers.get('Location', '')})"
        elif location and not response.headers.get("Location", "").endswith(location):
            problem = f"redirected to {response.headers.get('Location')!r}, expected {location!r}"
        elif contains and contains not in response.text:
            problem = f"the response lacks {contains!r}"
        self.stats.record(endpoint, elapsed, problem)
        return None if problem else response

    def headers(self, htmx: bool = False) -> dict[str, str]:
        headers = {"X-CSRFToken": self.session.cookies.get("csrftoken", "")}
        if htmx:
            headers["HX-Request"] = "true"
        return headers

    def login(self) -> bool:
        page = self.call("GET /accounts/login/", "GET", "/accounts/login/", expect=200)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text) if page is not None else None
        if token is None:
            return False
        done = self.call(
            "POST /accounts/login/",
            "POST",
            "/accounts/login/",
            expect=302,
            location="/jobs/",
            data={"csrfmiddlewaretoken": token.group(1), "username": self.username, "password": PASSWORD, "next": ""},
        )
        return done is not None

    def one_pass(self) -> None:
        destination = {
            "destination_mode": "existing",
            "dataset": DATASET,
            "existing_table": EXISTING,
            "load_strategy": "incremental",
            "cursor_column": "id",
        }
        steps = [
            ("POST /etl/new/reset/", "POST", "/etl/new/reset/", {"expect": 302, "location": "/etl/new/step/1/"}),
            ("GET /etl/new/step/1/", "GET", "/etl/new/step/1/", {"expect": 200}),
            (
                "POST /etl/new/step/1/",
                "POST",
                "/etl/new/step/1/",
                {"expect": 302, "location": "/etl/new/step/2/", "data": {"connection": self.connection_id}},
            ),
            ("GET /etl/new/step/2/", "GET", "/etl/new/step/2/", {"expect": 200, "contains": "public.orders"}),
            (
                "POST /etl/new/step/2/",
                "POST",
                "/etl/new/step/2/",
                {"expect": 302, "location": "/etl/new/step/3/", "data": {"table": "public.orders"}},
            ),
            ("GET /etl/new/step/3/", "GET", "/etl/new/step/3/", {"expect": 200}),
            (
                "POST /etl/new/step/3/",
                "POST",
                "/etl/new/step/3/",
                {"expect": 302, "location": "/etl/new/step/4/", "data": {"columns": self.columns}},
            ),
            ("GET /etl/new/step/4/", "GET", "/etl/new/step/4/", {"expect": 200, "params": destination}),
            (
                "POST /etl/new/report/",
                "POST",
                "/etl/new/report/",
                {"expect": 200, "contains": f"Resumes after id {EXISTING_ROWS:,}", "data": destination, "htmx": True},
            ),
            (
                "POST /etl/new/step/4/",
                "POST",
                "/etl/new/step/4/",
                {"expect": 302, "location": "/etl/new/step/5/", "data": destination},
            ),
        ]
        for endpoint, method, path, options in steps:
            if time.monotonic() >= self.deadline:
                return
            htmx = options.pop("htmx", False)
            if self.call(endpoint, method, path, headers=self.headers(htmx), **options) is None:
                return  # the rest of this pass depends on this step
        self.passes += 1

    def run(self) -> None:
        if not self.login():
            return
        while time.monotonic() < self.deadline:
            self.one_pass()


def drive_wizard(base: str, users: list[tuple[str, int]], columns: list[str]) -> tuple[Stats, float, int]:
    stats = Stats()
    started = time.monotonic()
    deadline = started + SECONDS
    threads = [SimulatedUser(base, name, conn_id, columns, deadline, stats) for name, conn_id in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SECONDS + REQUEST_TIMEOUT + 30)
    hung = [t.name for t in threads if t.is_alive()]
    if hung:
        stats.record("(threads)", 0, f"still running after the deadline: {', '.join(hung)}")
    return stats, time.monotonic() - started, sum(t.passes for t in threads)


def print_wizard_report(stats: Stats, elapsed: float, passes: int) -> None:
    print(
        f"### Wizard under load: {USERS} users for {SECONDS:.0f} s, gunicorn {GUNICORN_WORKERS} workers x "
        f"{GUNICORN_THREADS} threads\n"
    )
    print("| endpoint | requests | p50 ms | p95 ms | max ms | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    everything: list[float] = []
    for endpoint, values in stats.latencies.items():
        everything.extend(values)
        print(
            f"| `{endpoint}` | {len(values)} | {percentile(values, 0.5):.0f} | {percentile(values, 0.95):.0f} | "
            f"{max(values):.0f} | {stats.errors.get(endpoint, 0)} |"
        )
    if everything:
        print(
            f"| **all** | {len(everything)} | {percentile(everything, 0.5):.0f} | "
            f"{percentile(everything, 0.95):.0f} | {max(everything):.0f} | {stats.total_errors} |"
        )
    print(
        f"\n{len(everything)} requests in {elapsed:.0f} s ({len(everything) / elapsed:.1f} req/s), "
        f"{passes} complete passes through steps 1-4 + report; errors: {stats.total_errors}"
    )
    for example in stats.examples:
        print(f"- {example}")


# --------------------------------------------------------------------------- phase 2: jobs on two workers


def source_checksum(src_dsn: dict, table: str) -> tuple:
    with psycopg.connect(**src_dsn) as conn:
        n, s, a = conn.execute(
            f"SELECT COUNT(*), COALESCE(SUM(id), 0), COALESCE(SUM(amount), 0) FROM {table}"
        ).fetchone()
    return int(n), int(n), int(s), Decimal(a)


def destination_checksum(bq, table: str) -> tuple:
    row = bq.query(
        f"SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d, IFNULL(SUM(id), 0) AS s, "
        f"IFNULL(SUM(amount), 0) AS a FROM `{DATASET}.{table}`"
    )[0]
    return int(row["n"]), int(row["d"]), int(row["s"]), Decimal(row["a"])


def run_jobs(env: dict, workdir: Path, owner, connection, src_dsn: dict) -> tuple[int, list[str]]:
    from django_tasks_db.models import DBTaskResult

    from ml_platform.models import JobRun
    from ml_platform.runs import lifecycle
    from ml_platform.services import jobs
    from ml_platform.services.sources import get_columns
    from ml_platform.services.warehouse import warehouse

    problems: list[str] = []
    created = []
    for i in range(JOBS):
        columns = get_columns(connection, "public", f"orders_{i}")
        created.append(
            jobs.job_create(
                owner=owner,
                workspace=connection.workspace,
                name=f"load {i}",
                connection=connection,
                source_schema="public",
                source_table=f"orders_{i}",
                source_columns=columns,
                destination_dataset=DATASET,
                destination_table=f"orders_{i}",
                use_existing_table=False,
                load_strategy="incremental",
                cursor_column="id",
            )
        )
    runs = [lifecycle.run_enqueue(job=job) for job in created]  # autocommit: each task is queued at once
    started = time.monotonic()
    workers = []
    for n in (1, 2):
        log = open(workdir / f"worker{n}.log", "w")  # noqa: SIM115 - closed with the process
        workers.append(
            (
                subprocess.Popen(
                    [
                        sys.executable,
                        "manage.py",
                        "db_worker",
                        "--no-reload",
                        "--no-startup-delay",
                        "--interval",
                        "0.2",
                        "--worker-id",
                        f"worker{n}",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                ),
                log,
            )
        )
    try:
        deadline = time.monotonic() + JOBS_TIMEOUT
        while time.monotonic() < deadline:
            if not JobRun.objects.filter(pk__in=[r.pk for r in runs], status__in=JobRun.ACTIVE_STATUSES).exists():
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - started
    finally:
        for proc, log in workers:
            stop(proc)
            log.close()
    ran_by = {}
    for task in DBTaskResult.objects.all():
        args = (task.args_kwargs or {}).get("args") or []
        if args and task.worker_ids:
            ran_by[args[0]] = task.worker_ids[-1]

    bq = warehouse()
    print(f"\n### {JOBS} jobs enqueued at once, run by 2 `db_worker` processes\n")
    print("| job | source rows | loaded | run s | worker | status | equal to source |")
    print("|---|---:|---:|---:|---|---|---|")
    ok_count = 0
    for job, run in zip(created, runs, strict=True):
        run.refresh_from_db()
        expected = source_checksum(src_dsn, job.source_table)
        actual = destination_checksum(bq, job.destination_table) if run.status == "succeeded" else None
        ok = run.status == "succeeded" and actual == expected
        ok_count += ok
        if not ok:
            problems.append(f"job {job.name!r}: {run.status} {run.error[:300]} destination {actual} source {expected}")
        print(
            f"| {job.name} | {expected[0]:,} | {run.rows_loaded:,} | {run.duration_seconds or 0:.1f} | "
            f"{ran_by.get(run.pk, '?')} | {run.status} | {'yes' if ok else 'NO'} |"
        )
    used = sorted(set(ran_by.values()))
    print(f"\nall {JOBS} runs ended in {elapsed:.1f} s (enqueue to last finish); workers used: {', '.join(used)}")
    if len(used) < 2:
        problems.append(f"only {used} ran jobs: the two workers did not share the queue")
    return ok_count, problems


# --------------------------------------------------------------------------- set-up and tear-down


def create_sources(src_dsn: dict) -> None:
    with psycopg.connect(**src_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, note text, "
            "created_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(
            f"INSERT INTO orders (id, amount, note) SELECT g, g * 1.5, md5(g::text) "
            f"FROM generate_series(1, {WIZARD_ROWS}) g"
        )
        for i in range(JOBS):
            rows = JOB_ROWS + i * JOB_ROWS // 5
            conn.execute(f"CREATE TABLE orders_{i} (id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, note text)")
            conn.execute(
                f"INSERT INTO orders_{i} SELECT g, g * 1.25 + {i}, CASE WHEN g % 7 = 0 THEN NULL "
                f"ELSE md5(g::text) END FROM generate_series(1, {rows}) g"
            )
        conn.execute("ANALYZE")


def start_emulator(workdir: Path) -> tuple[subprocess.Popen, str]:
    from duckdb_extensions import import_extension

    import_extension("spatial")
    rest, grpc = free_port(), free_port()
    log = workdir / "emulator.log"
    proc = subprocess.Popen(
        [
            str(BIN / "bqemulator"),
            "start",
            "--rest-port",
            str(rest),
            "--grpc-port",
            str(grpc),
            "--ephemeral",
            "--project",
            "bench-project",
            "--log-level",
            "warning",
        ],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,  # noqa: SIM115 - the process keeps it
    )
    host = f"http://127.0.0.1:{rest}"
    wait_http(f"{host}/readyz", proc, "bqemulator", log)
    return proc, host


def main() -> int:
    token = secrets.token_hex(5)
    db_name, src_name = f"bench_load_{token}", f"bench_load_{token}_src"
    workdir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    emulator = server = None
    admin = pg_admin()
    admin.execute(f'CREATE DATABASE "{db_name}"')
    admin.execute(f'CREATE DATABASE "{src_name}"')
    src_dsn = {"host": PG_HOST, "port": PG_PORT, "user": PG_USER, "dbname": src_name}
    failed = True
    try:
        started = time.monotonic()
        emulator, bq_host = start_emulator(workdir)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "ml_platform.settings",
            "DATABASE_URL": f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{db_name}",
            "ML_PLATFORM_DATA_DIR": str(workdir),  # secret key, encryption key, spool: all throw-away
            "BIGQUERY_EMULATOR_HOST": bq_host,
            "BIGQUERY_PROJECT": "bench-project",
            "ALLOWED_HOSTS": "127.0.0.1",
            "SESSION_COOKIE_SECURE": "false",  # plain HTTP on loopback
            "DEBUG": "false",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
        os.environ.update(env)
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.contrib.auth.hashers import make_password
        from django.core.management import call_command
        from django.db import connections as db_connections

        from ml_platform.etl.compatibility import schema_for_new_table
        from ml_platform.models import Connection, Membership
        from ml_platform.services import connections, workspaces
        from ml_platform.services.sources import get_columns
        from ml_platform.services.warehouse import warehouse

        call_command("migrate", verbosity=0)
        create_sources(src_dsn)
        User = get_user_model()  # noqa: N806
        hashed = make_password(PASSWORD)  # hashing is slow on purpose: once for all the users
        users, connection_ids = [], []
        team = None  # one team workspace: every user edits its jobs and loads into its dataset
        for n in range(USERS):
            user = User.objects.create(username=f"user{n:02d}", password=hashed)
            if team is None:
                team = workspaces.workspace_create(name="bench team", admin=user)
            else:
                Membership.objects.create(workspace=team, user=user, role=Membership.Role.EDITOR)
            conn = connections.connection_create(
                owner=user,
                workspace=team,
                name=f"shop {n:02d}",
                engine="postgresql",
                host=PG_HOST,
                port=PG_PORT,
                database=src_name,
                username=PG_USER,
            )
            users.append(user)
            connection_ids.append((user.username, conn.pk))
        first_connection = Connection.objects.get(pk=connection_ids[0][1])
        columns = get_columns(first_connection, "public", "orders")
        bq = warehouse()
        bq.create_dataset(DATASET)
        workspaces.dataset_assign(workspace=team, dataset=DATASET)
        bq.create_table(DATASET, EXISTING, list(schema_for_new_table(columns)))
        bq.query(
            f"INSERT INTO `{DATASET}.{EXISTING}` (id, amount, note, created_at) "
            f"SELECT x, x * 1.5, 'old', CURRENT_TIMESTAMP() FROM UNNEST(GENERATE_ARRAY(1, {EXISTING_ROWS})) AS x"
        )

        port = free_port()
        log = workdir / "gunicorn.log"
        server = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "ml_platform.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(GUNICORN_WORKERS),
                "--threads",
                str(GUNICORN_THREADS),
                "--timeout",
                "120",
            ],
            cwd=ROOT,
            env=env,
            stdout=open(log, "w"),
            stderr=subprocess.STDOUT,  # noqa: SIM115
        )
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/accounts/login/", server, "gunicorn", log)
        print(
            f"set-up: {time.monotonic() - started:.0f} s (emulator, 2 databases, migrate, {USERS} users, "
            f"server on {base})\n"
        )

        stats, elapsed, passes = drive_wizard(base, connection_ids, [c.name for c in columns])
        print_wizard_report(stats, elapsed, passes)
        stop(server)
        server = None

        ok_jobs, problems = run_jobs(env, workdir, users[0], first_connection, src_dsn)
        for problem in problems:
            print(f"- {problem}")
        db_connections.close_all()
        failed = bool(stats.total_errors or problems or ok_jobs != JOBS)
        total = sum(len(v) for v in stats.latencies.values())
        verdict = "OK" if not failed else "FAILED"
        print(
            f"\nbench_load: {verdict} — {stats.total_errors} errors in {total} requests ({USERS} users, "
            f"{SECONDS:.0f} s); {ok_jobs}/{JOBS} jobs equal to their sources; "
            f"{time.monotonic() - started:.0f} s in all"
        )
        if failed:
            for name in ("gunicorn.log", "worker1.log", "worker2.log"):
                path = workdir / name
                if path.exists():
                    print(f"\n--- {name} (tail)\n{path.read_text()[-2000:]}")
    finally:
        stop(server)
        stop(emulator)
        clean_up(admin, (db_name, src_name), workdir)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
