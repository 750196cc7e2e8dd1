"""A rotated source password, as the user meets it: runs and introspection say what "Test connection" says.

Real password-checked logins (a PostgreSQL role in `etl_password_auth`, a MariaDB user),
rotated on the server with ALTER ROLE / ALTER USER while the saved connection keeps the
old password, the way a DBA rotates credentials under a running product.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from ml_platform.etl import sources as cm
from ml_platform.etl.errors import RECONNECT_FIX, ConnectTarget, SourceError, classify_source_error
from ml_platform.models import EtlJob
from ml_platform.runs import lifecycle, records, specs
from ml_platform.services import connections, jobs, sources

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

AUTH_FAILED = "Authentication failed: the server refused the user name or password"
RUN_ERROR = f"{AUTH_FAILED}. {RECONNECT_FIX}"


@pytest.fixture(autouse=True)
def _emulator(bq_settings):
    return bq_settings


@pytest.fixture
def pg_login(pg_source, pg_password_role):
    """(source, role, password, rotate): a PostgreSQL role that must present its password."""
    role, password = pg_password_role
    pg_source.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2), note text)",
        "INSERT INTO orders SELECT g, g * 1.5, 'n' || g FROM generate_series(1, 500) g",
        f"GRANT SELECT ON orders TO {role}",
        "ANALYZE",
    )

    def rotate() -> None:
        pg_source.execute(f"ALTER ROLE {role} PASSWORD 'rotated-{uuid.uuid4().hex[:12]}'")

    return pg_source, role, password, rotate


@pytest.fixture
def mysql_login(mysql_source):
    """(source, user, password, rotate): a MariaDB user that must present its password."""
    user, password = f"etl_{uuid.uuid4().hex[:10]}", "Pw-" + uuid.uuid4().hex[:16]
    mysql_source.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount decimal(12,2), note text)",
        "INSERT INTO orders VALUES " + ", ".join(f"({i}, {i * 1.5}, 'n{i}')" for i in range(1, 501)),
        f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'",
        f"GRANT SELECT ON `{mysql_source.database}`.* TO '{user}'@'%'",
    )

    def rotate() -> None:
        mysql_source.execute(f"ALTER USER '{user}'@'%' IDENTIFIED BY 'rotated-{uuid.uuid4().hex[:12]}'")

    try:
        yield mysql_source, user, password, rotate
    finally:
        mysql_source.execute(f"DROP USER IF EXISTS '{user}'@'%'")


@pytest.fixture(params=["postgresql", "mysql"])
def login(request):
    return request.getfixturevalue("pg_login" if request.param == "postgresql" else "mysql_login")


def saved_connection(user, source, username: str, password: str):
    return connections.connection_create(
        owner=user,
        name=f"src-{uuid.uuid4().hex[:6]}",
        **{**source.as_connection_fields(), "username": username, "password": password},
    )


def make_job(user, connection, dataset: str, schema: str | None) -> EtlJob:
    columns = sources.get_columns(connection, schema, "orders")
    return jobs.job_create(
        owner=user,
        name="orders",
        connection=connection,
        source_schema=schema or "",
        source_table="orders",
        source_columns=columns,
        destination_dataset=dataset,
        destination_table="orders",
        use_existing_table=False,
        load_strategy="replace",
    )


def schema_of(source) -> str | None:
    return "public" if source.engine == "postgresql" else None


# --------------------------------------------------------------------------- runs


ROTATIONS = [(engine, when) for engine in ("postgresql", "mysql")
             for when in ("before the run", "after the run read the columns")]
ROTATIONS.append(("postgresql", "just before ADBC connects"))  # the ADBC fast path is PostgreSQL's


@pytest.mark.parametrize(("engine", "rotated"), ROTATIONS)
def test_a_run_after_a_password_rotation_fails_with_the_test_connection_sentence_and_the_fix(
    user, request, bq, bq_dataset, monkeypatch, engine, rotated
) -> None:
    source, username, password, rotate = request.getfixturevalue("pg_login" if engine == "postgresql" else "mysql_login")
    conn = saved_connection(user, source, username, password)
    job = make_job(user, conn, bq_dataset, schema_of(source))  # opens sessions before the rotation
    assert lifecycle.execute_run(run_id=records.run_enqueue_record(job=job).pk).status == "succeeded"

    if rotated == "before the run":
        rotate()
    elif rotated == "after the run read the columns":
        # The extraction's own SQLAlchemy connect is the one refused.
        real_spec_for = specs.spec_for

        def spec_then_rotate(job_):
            spec = real_spec_for(job_)
            rotate()
            return spec

        monkeypatch.setattr(specs, "spec_for", spec_then_rotate)
    else:
        # Everything up to the ADBC connect succeeds; ADBC's own libpq login is refused.
        from ml_platform.etl import extract

        real_conninfo = extract._libpq_conninfo

        def conninfo_then_rotate(engine):
            uri = real_conninfo(engine)
            rotate()
            return uri

        monkeypatch.setattr(extract, "_libpq_conninfo", conninfo_then_rotate)

    done = lifecycle.execute_run(run_id=records.run_enqueue_record(job=EtlJob.objects.get(pk=job.pk)).pk)

    assert done.status == "failed" and done.attempt == 1  # a refused login is not retried
    assert done.error == RUN_ERROR
    assert sources.test_connection(conn).error == AUTH_FAILED  # the same sentence, word for word


def test_a_run_that_cannot_reach_the_source_is_retried_with_the_test_connection_sentence(
    user, pg_login, bq, bq_dataset, settings
) -> None:
    source, username, password, _ = pg_login
    conn = saved_connection(user, source, username, password)
    job = make_job(user, conn, bq_dataset, "public")
    with socket_nobody_listens_on() as port:
        connections.connection_update(connection=conn, port=port)
        done = lifecycle.execute_run(run_id=records.run_enqueue_record(job=EtlJob.objects.get(pk=job.pk)).pk)
    assert done.status == "queued" and done.attempt == 2  # transient: back in the queue
    expected = f"Cannot reach the database server at {source.host}:{port} (connection refused, or no such host)"
    assert done.error.endswith(expected)
    assert sources.test_connection(EtlJob.objects.get(pk=job.pk).connection).error == expected


def socket_nobody_listens_on():
    import contextlib
    import socket

    @contextlib.contextmanager
    def closed_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        yield port

    return closed_port()


# --------------------------------------------------------------------------- the shared rule


def test_an_extraction_connect_failure_is_classified_by_the_same_rule_as_test_connection(pg_login) -> None:
    source, username, _, _ = pg_login
    params = cm.ConnectionParams(
        engine="postgresql",
        host=source.host,
        port=source.port,
        database=source.database,
        username=username,
        password="not-the-password",
    )
    try:
        psycopg.connect(
            host=source.host,
            port=source.port,
            dbname=source.database,
            user=username,
            password="not-the-password",
            connect_timeout=5,
        )
    except psycopg.OperationalError as exc:
        driver_error = exc
    else:
        pytest.fail("the wrong password was accepted")
    error = classify_source_error(
        driver_error,
        secrets=["not-the-password"],
        connecting=ConnectTarget("postgresql", source.host, source.port, source.database),
    )
    assert isinstance(error, SourceError)
    assert (error.message, error.transient, error.fix) == (AUTH_FAILED, False, RECONNECT_FIX)
    assert cm.test_connection(params).error == error.message
    # A refused login surfacing without a connect context (e.g. mid-run) is still the same sentence.
    assert classify_source_error(driver_error, context="reading orders").message == AUTH_FAILED


# --------------------------------------------------------------------------- introspection


def test_introspection_right_after_a_password_rotation_fails_like_a_run(user, login) -> None:
    source, username, password, rotate = login
    conn = saved_connection(user, source, username, password)
    schema = schema_of(source)
    assert "orders" in [t.name for t in sources.list_tables(conn)]  # sessions opened before the rotation
    assert sources.get_columns(conn, schema, "orders")
    assert sources.preview(conn, schema, "orders", limit=2).rows

    rotate()

    for call in (
        lambda: sources.list_tables(conn),
        lambda: sources.get_columns(conn, schema, "orders"),
        lambda: sources.preview(conn, schema, "orders", limit=2),
    ):
        with pytest.raises(cm.SourceError) as failed:
            call()
        assert failed.value.message == AUTH_FAILED == sources.test_connection(conn).error
        assert not failed.value.transient and failed.value.fix == RECONNECT_FIX


def test_a_connect_failure_is_transient_by_one_rule_in_introspection_and_extraction() -> None:
    import sqlalchemy.exc

    params = cm.ConnectionParams(engine="postgresql", host="db.example", port=5432, database="shop")
    target = ConnectTarget("postgresql", "db.example", 5432, "shop")
    cases = {
        "server closed the connection unexpectedly": True,  # a restarting server
        "FATAL:  sorry, too many clients already": True,
        "FATAL:  the database system is starting up": True,
        'FATAL:  password authentication failed for user "etl"': False,
        "received invalid response to SSL negotiation: H": False,  # an HTTP server, not a database
    }
    for text, transient in cases.items():
        driver = psycopg.OperationalError(text)
        wrapped = sqlalchemy.exc.OperationalError("SELECT 1", {}, driver)
        extraction = classify_source_error(wrapped, connecting=target)
        introspection = cm.connect_failed(wrapped, params)
        assert (extraction.message, extraction.transient) == (introspection.message, introspection.transient)
        assert extraction.transient is transient, text
