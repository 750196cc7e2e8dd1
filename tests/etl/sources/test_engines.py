"""`etl/sources/engines.py`: engines, connect options, "Test connection" failures, secrets kept out of URLs and messages.

No database of its own: each test names a closed port, a silent listener, a missing file or a server that refuses.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from ml_platform.etl import sources as cm
from ml_platform.etl.sources import engines
from tests.plugins.harness import MYSQL_HOST, MYSQL_PORT, MYSQL_USER, PG_HOST, PG_PORT, PG_USER

integration = pytest.mark.integration

MYSQL_PASSWORD = os.environ.get("TEST_MYSQL_PASSWORD", "")


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@integration
@pytest.mark.parametrize(("engine", "port"), [("postgresql", 1), ("mysql", 1)])
def test_it_reports_a_closed_port_quickly_and_clearly(engine: str, port: int) -> None:
    params = cm.ConnectionParams(engine=engine, host="127.0.0.1", port=port, username="x", password="pw-not-shown")
    started = time.monotonic()
    result = cm.test_connection(params)
    assert time.monotonic() - started < 10
    assert not result.ok
    assert result.error and "Cannot reach the database server" in result.error
    assert "refused" in result.error.lower()
    assert "pw-not-shown" not in result.error


@integration
def test_it_gives_up_on_a_silent_server_within_the_driver_timeout(silent_listener: int) -> None:
    params = cm.ConnectionParams(engine="postgresql", host="127.0.0.1", port=silent_listener, username="x")
    started = time.monotonic()
    result = cm.test_connection(params)
    assert time.monotonic() - started < 10
    assert not result.ok
    assert result.error and result.error.startswith("Timed out")


@integration
def test_it_enforces_its_own_deadline_when_the_driver_waits_longer(silent_listener: int) -> None:
    params = cm.ConnectionParams(engine="mysql", host="127.0.0.1", port=silent_listener, username="x")
    started = time.monotonic()
    result = cm.test_connection(params, deadline_s=1)
    assert time.monotonic() - started < 3
    assert not result.ok
    assert result.error and result.error.startswith("Timed out")


@integration
@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
def test_it_reports_a_missing_database(engine: str) -> None:
    host, port, user, password = (
        (PG_HOST, PG_PORT, PG_USER, "")
        if engine == "postgresql"
        else (MYSQL_HOST, MYSQL_PORT, MYSQL_USER, MYSQL_PASSWORD)
    )
    missing = unique("cm_missing")
    params = cm.ConnectionParams(
        engine=engine, host=host, port=port, database=missing, username=user, password=password
    )
    result = cm.test_connection(params)
    assert not result.ok
    assert result.error and result.error.startswith("Database not found")
    assert missing in result.error


@integration
def test_it_scrubs_the_password_even_where_the_database_echoes_it() -> None:
    # A database named like the password: PostgreSQL quotes the name back in its error.
    secret = unique("s3cret")
    params = cm.ConnectionParams(
        engine="postgresql", host=PG_HOST, port=PG_PORT, database=secret, username=PG_USER, password=secret
    )
    result = cm.test_connection(params)
    assert not result.ok
    assert result.error and secret not in result.error
    assert "***" in result.error


@integration
def test_it_reports_a_missing_sqlite_file_without_creating_it(tmp_path: Path) -> None:
    path = tmp_path / "does-not-exist.sqlite3"
    result = cm.test_connection(cm.ConnectionParams(engine="sqlite", database=str(path)))
    assert not result.ok
    assert result.error and "Cannot open the SQLite database file" in result.error
    assert not path.exists()


@integration
def test_it_reports_a_file_that_is_not_a_sqlite_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database " * 100)
    result = cm.test_connection(cm.ConnectionParams(engine="sqlite", database=str(path)))
    assert not result.ok
    assert result.error and "not a database" in result.error


def test_it_rejects_an_unsupported_engine() -> None:
    result = cm.test_connection(cm.ConnectionParams(engine="oracle", host="h"))
    assert not result.ok
    assert result.error and "Unsupported database engine" in result.error
    with pytest.raises(cm.SourceError, match="Unsupported"):
        cm.list_tables(cm.ConnectionParams(engine="oracle"))


def test_it_keeps_engines_for_different_databases_apart() -> None:
    a = cm.get_engine(cm.ConnectionParams(engine="postgresql", host="h", database="a"))
    b = cm.get_engine(cm.ConnectionParams(engine="postgresql", host="h", database="b"))
    assert a is not b
    cm.dispose_engines()


def test_it_hides_the_password_in_params_and_urls() -> None:
    params = cm.ConnectionParams(
        engine="postgresql",
        host="db",
        port=5432,
        database="d",
        username="u",
        password="p@ss:w/rd",
        options={"sslpassword": "keypass", "sslmode": "require"},
    )
    url = engines.build_url(params)
    for text in (repr(params), str(params), repr(url), str(url)):
        assert "p@ss" not in text and quote("p@ss:w/rd", safe="") not in text
        assert "keypass" not in text
    assert url.password == "p@ss:w/rd"
    assert url.drivername == "postgresql+psycopg"
    assert engines.build_url(cm.ConnectionParams(engine="mariadb", host="h")).drivername == "mysql+pymysql"


def test_it_builds_a_read_only_sqlite_uri_with_an_escaped_path() -> None:
    url = engines.build_url(cm.ConnectionParams(engine="sqlite", database="/data/my db?#.sqlite3"))
    assert url.query == {"mode": "ro", "uri": "true"}
    assert url.database == "file:/data/my%20db%3F%23.sqlite3"


def test_it_bounds_connect_timeouts_and_passes_options_to_the_driver() -> None:
    pg = engines.connect_args(cm.ConnectionParams(engine="postgresql", options={"sslmode": "require"}))
    assert pg["connect_timeout"] == 5 and pg["sslmode"] == "require"
    my = engines.connect_args(cm.ConnectionParams(engine="mysql", options={"read_timeout": "60"}))
    assert my["connect_timeout"] == 5 and my["read_timeout"] == 60


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("bad password hunter2 here", ["hunter2"], "bad password *** here"),
        ("url postgresql://u:p%40ss@host/db", ["p@ss"], "url postgresql://u:***@host/db"),
        ("dsn host=h password=xyz dbname=d", [], "dsn host=h password=*** dbname=d"),
        ("mysql://root:anything@h", [], "mysql://root:***@h"),
        ("nothing secret", ["", "absent"], "nothing secret"),
        ("abcabc", ["abc", "abcabc"], "***"),
    ],
)
def test_it_scrubs_secrets(text: str, secrets: list[str], expected: str) -> None:
    assert engines.scrub_secrets(text, secrets) == expected


def test_it_requires_a_sqlite_file_path() -> None:
    result = cm.test_connection(cm.ConnectionParams(engine="sqlite", database=""))
    assert not result.ok
    assert result.error and "path" in result.error
