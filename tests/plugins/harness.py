"""The service harness, a pytest plugin (`-p tests.plugins.harness` in pytest.ini): real services only.

- `bq_emulator_host`: one bqemulator process per session on free ports.
- `bq` / `bq_dataset`: the product's BigQuery wrapper and a fresh dataset per test.
- `pg_source` / `mysql_source`: throw-away source databases on the real
  PostgreSQL and MariaDB, dropped after the test.
- `task_worker`: a real `manage.py db_worker` process on the test database.
- Playwright drives Debian's /usr/bin/chromium.

The Django fixtures (users, clients, the usual source table and connections) are in tests/fixtures.py.

With CI=true a missing service fails the test; locally it skips with the reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]  # the repository (this file is tests/plugins/harness.py)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

PG_HOST = os.environ.get("TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TEST_PG_USER", "postgres")
MYSQL_HOST = os.environ.get("TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("TEST_MYSQL_USER", "root")
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def service_missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"required service unavailable in CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a hung or firewalled server)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield server.getsockname()[1]


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------- BigQuery emulator


def prepare_emulator_offline() -> None:
    """bqemulator runs `INSTALL spatial` at start-up; install it from the PyPI wheel first."""
    from duckdb_extensions import import_extension

    import_extension("spatial")


@pytest.fixture(scope="session")
def bq_emulator_host() -> Iterator[str]:
    import urllib.request

    binary = Path(sys.executable).with_name("bqemulator")
    if not binary.exists():
        service_missing("bqemulator is not installed in this environment")
    prepare_emulator_offline()
    rest, grpc = free_port(), free_port()
    log = tempfile.NamedTemporaryFile(prefix="bqemulator-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [str(binary), "start", "--rest-port", str(rest), "--grpc-port", str(grpc), "--ephemeral",
         "--project", "test-project", "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    host = f"http://127.0.0.1:{rest}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{host}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            service_missing(f"bqemulator did not start: {Path(log.name).read_text()[-2000:]}")
        time.sleep(0.2)
    os.environ["BIGQUERY_EMULATOR_HOST"] = host
    try:
        yield host
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def bq(bq_emulator_host: str):
    from ml_platform.etl.bigquery import BigQuery

    return BigQuery(project="test-project", emulator_host=bq_emulator_host)


@pytest.fixture
def bq_dataset(bq, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh dataset; with the `user` fixture in play, it belongs to alice's workspace (as an admin would assign)."""
    name = unique_name("ds")
    bq.create_dataset(name)
    if "user" in request.fixturenames:
        from ml_platform.services import workspaces

        workspaces.dataset_assign(workspace=workspaces.personal_workspace(request.getfixturevalue("user")), dataset=name)
    try:
        yield name
    finally:
        bq.delete_dataset(name)


@pytest.fixture
def bq_settings(bq_emulator_host: str, settings):
    """Point the Django settings at the session's emulator."""
    settings.BIGQUERY_EMULATOR_HOST = bq_emulator_host
    settings.BIGQUERY_PROJECT = "test-project"
    return settings


# --------------------------------------------------------------------------- source databases


@dataclass
class SourceDatabase:
    engine: str  # postgresql | mysql | sqlite
    host: str
    port: int | None
    database: str
    username: str
    password: str = ""

    def execute(self, *statements: str) -> None:
        """Run DDL/DML on the source database (test set-up only)."""
        if self.engine == "postgresql":
            import psycopg

            with psycopg.connect(host=self.host, port=self.port, dbname=self.database, user=self.username,
                                 password=self.password or None, autocommit=True) as conn:
                for sql in statements:
                    conn.execute(sql)
        elif self.engine == "mysql":
            import pymysql

            conn = pymysql.connect(host=self.host, port=self.port, user=self.username, password=self.password,
                                   database=self.database, autocommit=True)
            try:
                with conn.cursor() as cur:
                    for sql in statements:
                        cur.execute(sql)
            finally:
                conn.close()
        else:
            import sqlite3

            conn = sqlite3.connect(self.database)
            try:
                for sql in statements:
                    conn.execute(sql)
                conn.commit()
            finally:
                conn.close()

    def query(self, sql: str) -> list[tuple]:
        if self.engine == "postgresql":
            import psycopg

            with psycopg.connect(host=self.host, port=self.port, dbname=self.database, user=self.username,
                                 password=self.password or None) as conn:
                return list(conn.execute(sql).fetchall())
        if self.engine == "mysql":
            import pymysql

            conn = pymysql.connect(host=self.host, port=self.port, user=self.username, password=self.password,
                                   database=self.database)
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    return list(cur.fetchall())
            finally:
                conn.close()
        import sqlite3

        conn = sqlite3.connect(self.database)
        try:
            return list(conn.execute(sql).fetchall())
        finally:
            conn.close()

    def as_connection_fields(self) -> dict:
        return {"engine": self.engine, "host": self.host, "port": self.port, "database": self.database,
                "username": self.username, "password": self.password}


def _pg_admin():
    import psycopg

    try:
        return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True,
                               connect_timeout=5)
    except psycopg.OperationalError as exc:
        service_missing(f"PostgreSQL at {PG_HOST}:{PG_PORT} is not answering: {exc}")


def _mysql_admin():
    import pymysql

    try:
        return pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password="", autocommit=True,
                               connect_timeout=5)
    except pymysql.err.OperationalError as exc:
        service_missing(f"MariaDB at {MYSQL_HOST}:{MYSQL_PORT} is not answering: {exc}")


@pytest.fixture
def pg_source() -> Iterator[SourceDatabase]:
    """A fresh PostgreSQL database, dropped after the test."""
    name = unique_name("src")
    admin = _pg_admin()
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield SourceDatabase("postgresql", PG_HOST, PG_PORT, name, PG_USER)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


PASSWORD_AUTH_GROUP = "etl_password_auth"
SECRET = "Very-Secret-pw-4711"


@pytest.fixture
def pg_password_role(pg_source) -> Iterator[tuple[str, str]]:
    """A PostgreSQL login role that must present its password (pg_hba rule set up by ensure-services.sh).

    Yields (role, password); the role may read and create in the throw-away database.
    """
    role, password = unique_name("etl_user"), "Pw-" + uuid.uuid4().hex[:16]
    admin = _pg_admin()
    admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}' IN ROLE {PASSWORD_AUTH_GROUP}")
    pg_source.execute(f"GRANT ALL ON SCHEMA public TO {role}",
                      f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {role}")
    import psycopg

    try:
        psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=pg_source.database, user=role,
                        password="wrong-" + password, connect_timeout=5).close()
    except psycopg.OperationalError:
        pass
    else:
        service_missing("PostgreSQL accepts any password for etl_password_auth members (run scripts/ensure-services.sh)")
    try:
        yield role, password
    finally:
        pg_source.execute(f"DROP OWNED BY {role}")
        admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.close()


@pytest.fixture
def pg_role(pg_source, pg_password_role):
    """A password-checked login role (password SECRET) that can read a small public.items table."""
    role, password = pg_password_role
    pg_source.execute(f"ALTER ROLE {role} PASSWORD '{SECRET}'",
                      "CREATE TABLE items (id int PRIMARY KEY, name text)",
                      "INSERT INTO items VALUES (1, 'a'), (2, NULL)",
                      f"GRANT SELECT ON items TO {role}")
    return role


@pytest.fixture
def mysql_source() -> Iterator[SourceDatabase]:
    """A fresh MariaDB database, dropped after the test."""
    name = unique_name("src")
    admin = _mysql_admin()
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield SourceDatabase("mysql", MYSQL_HOST, MYSQL_PORT, name, MYSQL_USER)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture
def sqlite_source(tmp_path: Path) -> SourceDatabase:
    return SourceDatabase("sqlite", "", None, str(tmp_path / "source.sqlite3"), "")


# --------------------------------------------------------------------------- Playwright


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    if not Path(CHROMIUM).exists():
        service_missing(f"Chromium is not installed at {CHROMIUM} (make test installs it)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    }


# --------------------------------------------------------------------------- background worker


def django_subprocess_env(extra: dict | None = None) -> dict:
    """Environment for a worker/scheduler process that shares the test database and emulator."""
    from django.db import connection

    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": url,
           "BIGQUERY_PROJECT": "test-project", "PYTHONUNBUFFERED": "1"}
    env.update(extra or {})
    return env


@pytest.fixture
def task_worker_env() -> dict:
    """Extra environment (settings) for `task_worker`; a test module overrides this fixture to tune them."""
    return {}


@pytest.fixture
def task_worker(transactional_db, bq_settings, tmp_path: Path, task_worker_env: dict) -> Iterator[subprocess.Popen]:
    """A real `manage.py db_worker` process on the test database."""
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay", "--interval", "0.2"],
        cwd=ROOT, env=django_subprocess_env({"BIGQUERY_EMULATOR_HOST": bq_settings.BIGQUERY_EMULATOR_HOST,
                                             "ETL_SPOOL_DIR": str(tmp_path / "spool"), **task_worker_env}),
        stdout=log, stderr=subprocess.STDOUT,
    )
    proc.log_path = tmp_path / "worker.log"
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
