"""A connection is untrusted input: each test is an attacker's request with an ordinary login.

Every attack here worked on the product before the source policy (files read through driver
options, the product's own database opened as a SQLite source, a stored password sent to a
new host, local sockets, a port scanner in "Test connection", a thread pool pinned by slow
sources). Each test asserts what the attacker gets now: a clear refusal, and none of the bytes.
"""

from __future__ import annotations

import html
import json
import os
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from ml_platform.etl import sources as cm
from ml_platform.etl.sources import engines
from ml_platform.models import Connection
from ml_platform.services import connections, sources, workspaces
from tests.fixtures import HX
from tests.plugins.harness import ROOT, django_subprocess_env, free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def api_post(client, url: str, body: dict):
    return client.post(url, json.dumps(body), content_type="application/json")


def form(**overrides) -> dict:
    base = {"name": f"c-{uuid.uuid4().hex[:6]}", "engine": "postgresql", "host": "127.0.0.1", "port": 5432,
            "database": "postgres", "username": "postgres", "password": "", "options": "{}"}
    base.update(overrides)
    return base


@pytest.fixture
def key_text() -> str:
    """The Fernet key that decrypts every stored password: the prize of a file-read attack."""
    return (Path(settings.DATA_DIR) / "field_encryption_key").read_text().strip() if (
        Path(settings.DATA_DIR) / "field_encryption_key").exists() else settings.FIELD_ENCRYPTION_KEYS[0]


@pytest.fixture
def data_dir_sqlite() -> Iterator[Path]:
    """A SQLite database inside the product's data directory (like its own ml_platform.sqlite3)."""
    path = Path(settings.DATA_DIR) / f"probe-{uuid.uuid4().hex[:8]}.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE django_session (session_key TEXT, session_data TEXT)")
    db.execute("INSERT INTO django_session VALUES ('victim-session-key', 'data')")
    db.commit()
    db.close()
    yield path
    path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- files through driver options


@pytest.mark.parametrize("options", [
    {"read_default_file": "{key}"},
    {"local_infile": True, "init_command": "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t"},
    {"unix_socket": "/run/mysqld/mysqld.sock"},
    {"ssl_ca": "/etc/passwd"},
])
def test_it_refuses_mysql_options_that_read_server_files(alice_client, mysql_source, key_text, options) -> None:
    key_path = str(Path(settings.DATA_DIR) / "field_encryption_key")
    options = {k: (v.replace("{key}", key_path) if isinstance(v, str) else v) for k, v in options.items()}
    fields = form(engine="mysql", host=mysql_source.host, port=mysql_source.port, database=mysql_source.database,
                  username=mysql_source.username, options=json.dumps(options))
    tested = alice_client.post(reverse("connection_test_unsaved"), fields, headers=HX).content.decode()
    assert key_text not in tested and "root:x:0:0" not in tested
    assert "is not allowed" in tested or "certificate directory" in tested, tested
    created = api_post(alice_client, reverse("api_connections"), {**fields, "port": mysql_source.port,
                                                                  "options": options})
    assert created.status_code == 400
    assert created.json()["details"][0]["field"] == "options"
    assert not Connection.objects.exists()


def test_it_refuses_file_options_saved_before_the_policy_at_use(alice_client, user, mysql_source, key_text) -> None:
    """A connection stored with a hostile option (an old row, an admin edit) is refused when used."""
    conn = Connection.objects.create(workspace=workspaces.personal_workspace(user),
        owner=user, name="old", engine="mysql", host=mysql_source.host, port=mysql_source.port,
        database=mysql_source.database, username=mysql_source.username,
        options={"read_default_file": str(Path(settings.DATA_DIR) / "field_encryption_key")})
    tested = html.unescape(alice_client.post(reverse("connection_test", args=[conn.pk]), headers=HX).content.decode())
    assert key_text not in tested and "'read_default_file' is not allowed" in tested
    tables = alice_client.get(reverse("api_connection_tables", args=[conn.pk]))
    assert tables.status_code == 502 and key_text not in tables.content.decode()


def test_it_applies_the_safety_settings_after_the_options() -> None:
    mysql = engines.connect_args(cm.ConnectionParams(engine="mysql", options={"connect_timeout": "7"}))
    assert mysql["local_infile"] is False and mysql["unix_socket"] is None and mysql["read_default_file"] is None
    assert mysql["init_command"] is None and mysql["connect_timeout"] == 7
    assert b"mysql_clear_password" in mysql["auth_plugin_map"]
    pg = engines.connect_args(cm.ConnectionParams(engine="postgresql", options={"sslmode": "require"}))
    assert pg["sslmode"] == "require" and pg["passfile"] == engines.NO_PASSFILE and not os.path.exists(pg["passfile"])
    assert "!password" in pg["require_auth"] and "default_transaction_read_only=on" in pg["options"]
    with pytest.raises(cm.SourceError, match="'options' is not allowed"):
        engines.connect_args(cm.ConnectionParams(engine="postgresql", options={"options": "-c x=1"}))
    with pytest.raises(cm.SourceError, match="from 1 to 10"):
        engines.connect_args(cm.ConnectionParams(engine="postgresql", options={"connect_timeout": 3600}))
    assert "mode=ro" in str(engines.build_url(cm.ConnectionParams(engine="sqlite", database="/x.db",
                                                             options={"read_only": False})))


def test_it_names_certificates_only_inside_the_certificate_directory(settings, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    settings.ETL_SSL_DIR = certs
    params = cm.ConnectionParams(engine="postgresql", host="127.0.0.1", port=5432, database="db",
                                 options={"sslmode": "verify-full", "sslrootcert": "ca.pem"})
    assert sources.checked_params(params).options["sslrootcert"] == str(certs / "ca.pem")
    for escape in ("../certs/../../etc/passwd", "/etc/passwd", "missing.pem"):
        params.options["sslrootcert"] = escape
        with pytest.raises(cm.SourceError, match="certificate directory"):
            sources.checked_params(params)


# --------------------------------------------------------------------------- SQLite paths


def test_it_refuses_a_sqlite_source_in_the_data_directory(alice_client, data_dir_sqlite: Path) -> None:
    fields = form(engine="sqlite", host="", port="", username="", database=str(data_dir_sqlite))
    created = api_post(alice_client, reverse("api_connections"), {**fields, "port": None, "options": {}})
    assert created.status_code == 400 and created.json()["details"][0]["field"] == "database"
    tested = alice_client.post(reverse("connection_test_unsaved"), fields, headers=HX).content.decode()
    assert "SQLite source directory" in tested and "Connected" not in tested


def test_it_refuses_a_symlink_or_dotdot_out_of_the_sqlite_root(alice_client, user, data_dir_sqlite: Path,
                                                              settings, tmp_path: Path) -> None:
    root = tmp_path / "sources"
    root.mkdir()
    settings.ETL_SQLITE_ROOT = root
    (root / "innocent.sqlite3").symlink_to(data_dir_sqlite)
    sneaky = f"../../../../../../..{data_dir_sqlite}"
    for path in ("innocent.sqlite3", sneaky, str(root / sneaky)):
        created = api_post(alice_client, reverse("api_connections"),
                           {**form(engine="sqlite", host="", database=path), "port": None, "options": {}})
        assert created.status_code == 400, path
        assert "SQLite source directory" in json.dumps(created.json())
    # Saved before the policy (or the link swapped in later): refused at use, the table never shown.
    conn = Connection.objects.create(workspace=workspaces.personal_workspace(user), owner=user, name="old", engine="sqlite", database="innocent.sqlite3")
    preview = alice_client.get(reverse("api_connection_preview", args=[conn.pk, "django_session"]))
    assert preview.status_code == 502 and "victim-session-key" not in preview.content.decode()


def test_it_opens_sqlite_sources_read_only_whatever_the_options_say(alice_client, settings, tmp_path: Path) -> None:
    settings.ETL_SQLITE_ROOT = tmp_path
    target = tmp_path / "created-by-attacker.sqlite3"
    fields = form(engine="sqlite", host="", database=str(target), options=json.dumps({"read_only": False}))
    tested = alice_client.post(reverse("connection_test_unsaved"), fields, headers=HX).content.decode()
    assert "Connected" not in tested and not target.exists()


def test_it_reads_sqlite_sources_relative_to_the_root(alice_client, user, settings, tmp_path: Path) -> None:
    settings.ETL_SQLITE_ROOT = tmp_path
    db = sqlite3.connect(tmp_path / "shop.sqlite3")
    db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    db.close()
    conn = connections.connection_create(owner=user, name="shop", engine="sqlite", database="shop.sqlite3")
    tables = alice_client.get(reverse("api_connection_tables", args=[conn.pk]))
    assert tables.status_code == 200 and [t["name"] for t in tables.json()["tables"]] == ["orders"]


# --------------------------------------------------------------------------- a stored password and a new host


class FakePostgres:
    """A server that speaks just enough PostgreSQL to ask for the password in clear text, and keeps it."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.port = self.server.getsockname()[1]
        self.received: list[bytes] = []
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            with client:
                client.settimeout(5)
                try:
                    self._talk(client)
                except (OSError, struct.error):
                    pass

    def _talk(self, client: socket.socket) -> None:
        while True:
            length = struct.unpack("!I", client.recv(4))[0]
            payload = client.recv(length - 4)
            code = struct.unpack("!I", payload[:4])[0]
            if code in (80877103, 80877104):  # SSLRequest / GSSENCRequest: "no"
                client.sendall(b"N")
                continue
            break
        client.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
        kind = client.recv(1)
        if kind == b"p":
            size = struct.unpack("!I", client.recv(4))[0]
            self.received.append(client.recv(size - 4))

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def fake_postgres() -> Iterator[FakePostgres]:
    server = FakePostgres()
    yield server
    server.close()


def test_it_never_sends_a_stored_password_to_a_new_host(alice_client, user, fake_postgres) -> None:
    secret = "Stored-" + uuid.uuid4().hex
    conn = connections.connection_create(owner=user, name="prod", engine="postgresql", host="db.example.invalid",
                                         port=5432, database="shop", username="etl", password=secret)
    moved = form(host="127.0.0.1", port=fake_postgres.port, database="shop", username="etl",
                 connection_id=conn.pk, name="prod")
    tested = alice_client.post(reverse("connection_test_unsaved"), moved, headers=HX).content.decode()
    assert "Enter the password again" in tested
    saved = alice_client.post(reverse("connection_edit", args=[conn.pk]), moved)
    assert saved.status_code == 400 and "Enter the password again" in saved.content.decode()
    patched = alice_client.patch(reverse("api_connection_detail", args=[conn.pk]),
                                 json.dumps({"host": "127.0.0.1", "port": fake_postgres.port}),
                                 content_type="application/json")
    assert patched.status_code == 400 and patched.json()["details"][0]["field"] == "password"
    conn.refresh_from_db()
    assert conn.host == "db.example.invalid"
    time.sleep(0.2)
    assert fake_postgres.received == [] and fake_postgres.connections == 0


def test_it_refuses_cleartext_password_authentication(user, fake_postgres) -> None:
    secret = "Typed-" + uuid.uuid4().hex
    params = cm.ConnectionParams(engine="postgresql", host="127.0.0.1", port=fake_postgres.port, database="shop",
                                 username="etl", password=secret)
    result = sources.test_params(params)
    assert not result.ok and "clear text" in result.error
    time.sleep(0.2)
    assert fake_postgres.connections >= 1 and fake_postgres.received == []


def test_it_keeps_the_stored_password_when_only_the_name_changes(alice_client, user) -> None:
    conn = connections.connection_create(owner=user, name="prod", engine="postgresql", host="127.0.0.1", port=5432,
                                         database="shop", username="etl", password="keep-me")
    renamed = alice_client.post(reverse("connection_edit", args=[conn.pk]),
                                form(name="prod-eu", host="127.0.0.1", port=5432, database="shop", username="etl"))
    assert renamed.status_code == 302
    conn.refresh_from_db()
    assert conn.name == "prod-eu" and conn.password == "keep-me"


# --------------------------------------------------------------------------- sockets, ports, hosts


@pytest.mark.parametrize(("engine", "host", "options"), [
    ("postgresql", "/var/run/postgresql", {}),
    ("postgresql", "/tmp", {}),
    ("postgresql", "", {}),
    ("postgresql", "127.0.0.1,/var/run/postgresql", {}),
    ("mysql", "/run/mysqld/mysqld.sock", {}),
    ("mysql", "127.0.0.1", {"unix_socket": "/run/mysqld/mysqld.sock"}),
])
def test_it_refuses_unix_sockets(alice_client, engine, host, options) -> None:
    fields = form(engine=engine, host=host, port=5432 if engine == "postgresql" else 3306, username="root",
                  options=json.dumps(options))
    tested = alice_client.post(reverse("connection_test_unsaved"), fields, headers=HX).content.decode()
    assert "Connected" not in tested
    assert any(w in tested for w in ("Unix sockets are not allowed", "Enter the database host", "one host name",
                                     "is not allowed")), tested
    created = api_post(alice_client, reverse("api_connections"), {**fields, "options": options})
    assert created.status_code == 400


@pytest.fixture
def banner_server() -> Iterator[int]:
    """A service that is no database: it answers every connection with its own banner."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def serve() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            with client:
                client.sendall(b"SSH-2.0-OpenSSH_9.9 secret-banner-42\r\n" + b"HTTP/1.1 400 Bad Request\r\n" * 4)
                time.sleep(0.2)

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
def test_it_does_not_echo_what_a_non_database_port_says(alice_client, banner_server, engine) -> None:
    fields = form(engine=engine, port=banner_server, username="root")
    tested = alice_client.post(reverse("connection_test_unsaved"), fields, headers=HX).content.decode()
    assert "secret-banner" not in tested and "OpenSSH" not in tested and "HTTP/1.1" not in tested
    assert "server: 127.0.0.1:" in tested and "did not answer like one" in tested, tested


def test_it_tells_closed_and_silent_listeners_apart_only_by_class(alice_client) -> None:
    closed = alice_client.post(reverse("connection_test_unsaved"), form(port=free_port()), headers=HX)
    assert "Cannot reach the database server at 127.0.0.1:" in closed.content.decode()


def test_it_applies_the_host_allow_and_deny_lists(alice_client, settings) -> None:
    from ml_platform.etl.sources import policy as source_policy

    settings.ETL_SOURCE_HOSTS = source_policy.parse_host_rules("10.0.0.0/8, db.example.com, !10.9.0.0/16")
    for host in ("127.0.0.1", "localhost", "10.9.1.2", "evil.example.com"):
        created = api_post(alice_client, reverse("api_connections"),
                           {**form(host=host), "port": 5432, "options": {}})
        assert created.status_code == 400, host
        assert "does not allow connections to that host" in json.dumps(created.json())
    allowed = api_post(alice_client, reverse("api_connections"), {**form(host="10.1.2.3"), "port": 5432,
                                                                   "options": {}})
    assert allowed.status_code == 201
    with pytest.raises(ValueError):
        source_policy.parse_host_rules("not a host!")


def test_it_refuses_the_products_own_database(alice_client) -> None:
    from django.db import connection as django_db

    own = django_db.settings_dict
    created = api_post(alice_client, reverse("api_connections"), {
        **form(host=own["HOST"] or "127.0.0.1", database=own["NAME"], username=own["USER"]),
        "port": int(own["PORT"] or 5432), "options": {}})
    assert created.status_code == 400 and "product's own database" in json.dumps(created.json())


# --------------------------------------------------------------------------- deadlines and caps


def procfile_gunicorn_args() -> list[str]:
    """The web server exactly as `make run` starts it (workers, threads), on a free port."""
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("web:"))
    args = line.split("exec ", 1)[1].split()
    assert args[0].endswith("gunicorn")
    bind = args.index("--bind")
    args[bind + 1] = f"127.0.0.1:{free_port()}"
    return [str(Path(sys.executable).parent / "gunicorn"), *args[1:]]


@pytest.fixture
def gunicorn(transactional_db, tmp_path: Path) -> Iterator[str]:
    args = procfile_gunicorn_args()
    address = args[args.index("--bind") + 1]
    log = open(tmp_path / "gunicorn.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(args, cwd=ROOT, env=django_subprocess_env(), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://{address}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{base}/accounts/login/", timeout=2).read()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
            time.sleep(0.2)
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def test_it_keeps_serving_while_one_user_lists_tables_on_a_silent_listener(user, client, gunicorn, silent_listener) -> None:
    conn = connections.connection_create(owner=user, name="silent", engine="postgresql", host="127.0.0.1",
                                         port=silent_listener, database="db", username="x")
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"

    def list_tables(_: int) -> tuple[int, float]:
        request = urllib.request.Request(f"{gunicorn}/api/etl/connections/{conn.pk}/tables/",
                                         headers={"Cookie": cookie})
        started = time.monotonic()
        try:
            status = urllib.request.urlopen(request, timeout=60).status
        except urllib.error.HTTPError as exc:
            status = exc.code
        return status, time.monotonic() - started

    with ThreadPoolExecutor(8) as pool:
        slow = [pool.submit(list_tables, i) for i in range(8)]
        time.sleep(1.0)  # every request has reached the server
        login = urllib.request.urlopen(f"{gunicorn}/accounts/login/", timeout=30)
        # Served while listings still hang on the silent server: the page never queued behind them.
        hanging_when_served = sum(not f.done() for f in slow)
        results = [f.result() for f in slow]
    assert login.status == 200 and hanging_when_served >= 1, "the login page waited for the hung listings"
    statuses = sorted(status for status, _ in results)
    # Every listing ended with an answer: refused at once over the per-user cap, or timed out.
    # 2 web processes x 3 source slots: at least 2 of the 8 refused at once, none left hanging.
    assert set(statuses) <= {429, 502} and statuses.count(429) >= 2, statuses
    assert max(seconds for _, seconds in results) < settings.ETL_SOURCE_CALL_TIMEOUT + 5


def test_it_answers_at_the_deadline_and_counts_abandoned_calls(settings) -> None:
    settings.ETL_SOURCE_CALLS_PER_USER = 1
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(cm.SourceError, match="Timed out"):
        sources.call_with_deadline("u1", release.wait, timeout=0.3)
    assert time.monotonic() - started < 1
    # The abandoned call still holds the user's slot until it really ends...
    with pytest.raises(sources.SourceBusy):
        sources.call_with_deadline("u1", lambda: 1, timeout=1)
    assert sources.call_with_deadline("u2", lambda: 2, timeout=1) == 2
    release.set()
    time.sleep(0.1)
    assert sources.call_with_deadline("u1", lambda: 3, timeout=1) == 3


def test_a_burst_of_quick_calls_queues_for_a_slot_instead_of_failing(settings) -> None:
    """Over a cap, a call waits briefly for a slot: a user's quick wizard requests never see a 429 for a burst."""
    settings.ETL_SOURCE_CALLS_PER_USER = 1
    first = threading.Thread(target=lambda: sources.call_with_deadline("u3", lambda: time.sleep(0.2), timeout=2))
    first.start()
    time.sleep(0.05)
    started = time.monotonic()
    assert sources.call_with_deadline("u3", lambda: "second", timeout=2) == "second"
    assert 0.1 < time.monotonic() - started < settings.ETL_SOURCE_CALL_QUEUE_WAIT + 0.3
    first.join()


def test_a_source_that_fails_in_step_4_is_an_error_in_place_not_a_500(alice_client, user, monkeypatch) -> None:
    from wizard.models import WizardDraft

    conn = connections.connection_create(owner=user, name="pg", engine="postgresql", host="127.0.0.1", port=5432,
                                         database="db", username="u")
    WizardDraft.objects.create(owner=user, data={"connection_id": conn.pk, "source_table": "public.orders",
                                                 "columns": ["id"]})

    def busy(*_args, **_kwargs):
        raise sources.SourceBusy("The server is busy with other database requests: try again in a few seconds.")

    monkeypatch.setattr(sources, "get_columns", busy)
    step4 = reverse("wizard:step", args=[4])
    shown = alice_client.get(step4)
    assert shown.status_code == 200 and "did not answer" in html.unescape(shown.content.decode())
    posted = alice_client.post(step4, {"destination_mode": "new", "dataset": "d", "new_table": "t",
                                       "load_strategy": "append"}, headers=HX)
    assert posted.status_code == 400 and "did not answer" in html.unescape(posted.content.decode())
    report = alice_client.post(reverse("wizard:report"), {"destination_mode": "existing"}, headers=HX)
    assert report.status_code == 200
