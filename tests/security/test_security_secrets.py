"""Connection passwords never leave the database: not in pages, partials, API answers, run errors,
logs or the task queue. And the production settings pass `manage.py check --deploy`.
"""

from __future__ import annotations

import html
import json
import logging
import os
import secrets
import string
import subprocess
import sys
import uuid
from urllib.parse import quote, quote_plus

import pytest
from cryptography.fernet import Fernet
from django.db import connection as django_db
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from ml_platform.models import Connection, EtlJob, JobRun, Membership
from ml_platform.services import workspaces
from tests.fixtures import HX
from tests.plugins.harness import PG_HOST, PG_PORT, ROOT
from tests.security.urlwalk import all_routes

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def new_password() -> str:
    # Characters that URL-encoding, HTML-escaping and DSN quoting all rewrite, so every spelling is checked.
    return f"Pw&<{uuid.uuid4().hex[:12]}>@:/%25 q+"


def spellings(*passwords: str) -> set[str]:
    found: set[str] = set()
    for p in passwords:
        found |= {p, quote(p, safe=""), quote_plus(p), html.escape(p), json.dumps(p)[1:-1],
                  p.replace("&", "&amp;")}
    return found


def assert_hidden(text: str, passwords: set[str], where: str) -> None:
    for p in passwords:
        assert p not in text, f"{where} shows a connection password ({p!r})"


def response_text(response) -> str:
    headers = "\n".join(f"{k}: {v}" for k, v in response.items())
    return headers + "\n" + response.content.decode(errors="replace")


@pytest.fixture
def role(pg_source, pg_password_role) -> tuple[str, str]:
    """A password-checked PostgreSQL role (with an awkward password) that can read public.items."""
    name, _ = pg_password_role
    password = new_password()
    pg_source.execute(f"ALTER ROLE {name} PASSWORD '{password}'",
                      "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(8,2))",
                      "INSERT INTO items VALUES (1, 'a', 1.50), (2, NULL, 2.25)",
                      f"GRANT SELECT ON items TO {name}")
    return name, password


def connection_form(pg_source, role: str, password: str, **overrides) -> dict:
    return {"name": "warehouse-src", "engine": "postgresql", "host": PG_HOST, "port": PG_PORT,
            "database": pg_source.database, "username": role, "password": password, "options": "{}", **overrides}


# --------------------------------------------------------------------------- pages, partials, API


def test_it_never_shows_a_connection_password_in_any_page_partial_or_api_response(
        alice_client, user, pg_source, role, bq_settings, bq_dataset) -> None:
    role_name, password = role
    wrong = new_password()
    hidden = spellings(password, wrong)
    seen: list[tuple[str, object]] = []

    def check(label: str, response) -> object:
        seen.append((label, response))
        assert response.status_code < 500, f"{label} answered {response.status_code}"
        return response

    # Create (page and API), re-render an invalid form holding the password, edit.
    check("create page", alice_client.post(reverse("connection_create"), connection_form(pg_source, role_name, password)))
    conn = Connection.objects.get(name="warehouse-src")
    assert conn.password == password
    invalid = check("invalid create", alice_client.post(reverse("connection_create"),
                                                        connection_form(pg_source, role_name, password)))
    assert invalid.status_code == 400 and b"already has a connection" in invalid.content
    api_created = check("api create", alice_client.post(reverse("api_connections"), {
        **connection_form(pg_source, role_name, password, name="api-src"), "options": {}},
        content_type="application/json"))
    assert api_created.status_code == 201 and api_created.json()["connection"]["has_password"] is True
    api_id = api_created.json()["connection"]["id"]
    check("api patch", alice_client.patch(reverse("api_connection_detail", args=[api_id]),
                                          {"password": password, "port": "nope"}, content_type="application/json"))
    check("api patch ok", alice_client.patch(reverse("api_connection_detail", args=[api_id]),
                                             {"password": password}, content_type="application/json"))

    # Every way of testing it, passing and failing (the password is really used: these connect).
    ok = check("test saved", alice_client.post(reverse("connection_test", args=[conn.pk]), headers=HX))
    assert b"test-ok" in ok.content
    check("api test", alice_client.post(reverse("api_connection_test", args=[conn.pk])))
    check("test unsaved, stored password", alice_client.post(
        reverse("connection_test_unsaved"), {**connection_form(pg_source, role_name, ""), "connection_id": conn.pk},
        headers=HX))
    failed = check("test unsaved, wrong password", alice_client.post(
        reverse("connection_test_unsaved"), connection_form(pg_source, role_name, wrong), headers=HX))
    assert b"Authentication failed" in failed.content
    # A connection URL pasted into the host field is refused before it is stored (in clear) or echoed.
    for dsn_host in (f"postgresql://{role_name}:{quote(password, safe='')}@{PG_HOST}:{PG_PORT}/{pg_source.database}",
                     f"postgresql://{role_name}:{password}@{PG_HOST}/{pg_source.database}"):
        pasted = check("test unsaved, DSN pasted as host", alice_client.post(
            reverse("connection_test_unsaved"), connection_form(pg_source, role_name, password, host=dsn_host),
            headers=HX))
        assert b"not a connection URL" in pasted.content
        refused = check("create, DSN pasted as host", alice_client.post(
            reverse("connection_create"), connection_form(pg_source, role_name, password, name="dsn", host=dsn_host)))
        assert refused.status_code == 400 and b"not a connection URL" in refused.content
        api_refused = check("api create, DSN pasted as host", alice_client.post(reverse("api_connections"), {
            **connection_form(pg_source, role_name, password, name="dsn", host=dsn_host), "options": {}},
            content_type="application/json"))
        assert api_refused.status_code == 400
    assert not Connection.objects.filter(name="dsn").exists()

    # A job through the API (creates the BigQuery table), the wizard up to step 5, the live endpoints.
    job_response = check("api create job", alice_client.post(reverse("api_jobs"), {
        "name": "items copy", "connection_id": conn.pk, "source_table": "public.items",
        "destination_table": f"{bq_dataset}.items"}, content_type="application/json"))
    assert job_response.status_code == 201, job_response.content
    job = EtlJob.objects.get(pk=job_response.json()["job"]["id"])
    run = JobRun.objects.create(job=job, connection=conn, connection_name=conn.name, status=JobRun.Status.SUCCEEDED,
                                rows_loaded=2)
    check("validate", alice_client.post(reverse("api_validate_schema_compatibility"), {
        "connection_id": conn.pk, "source_table": "public.items", "destination_table": f"{bq_dataset}.items",
        "validate_data": True}, content_type="application/json"))
    step = lambda n: reverse("wizard:step", args=[n])  # noqa: E731
    check("step 1", alice_client.post(step(1), {"connection": conn.pk}, headers=HX))
    check("step 2", alice_client.post(step(2), {"table": "public.items"}, headers=HX))
    check("step 3", alice_client.post(step(3), {"columns": ["id", "name", "price"]}, headers=HX))
    existing = {"destination_mode": "existing", "dataset": bq_dataset, "existing_table": "items",
                "load_strategy": "append"}
    check("report", alice_client.post(reverse("wizard:report"), {**existing, "validate": "1"}, headers=HX))
    check("step 4 existing", alice_client.get(step(4), existing, headers=HX))
    check("step 4", alice_client.post(step(4), {"destination_mode": "new", "dataset": bq_dataset,
                                                "new_table": "items_new", "load_strategy": "replace"}, headers=HX))
    check("edit refresh", alice_client.post(reverse("job_edit", args=[job.pk]),
                                            {"refresh": "1", "columns": ["id", "name"]}, headers=HX))
    check("reconnect", alice_client.get(reverse("job_reconnect", args=[job.pk]),
                                        {"connection": api_id, "table": "public.items"}, headers=HX))

    # An API token: after the one answer that creates it, it is as hidden as a password.
    token, plaintext = workspaces.token_create(user=user, workspace=conn.workspace, name="ci")
    hidden |= spellings(plaintext)

    # Then every URL pattern, as a page and as an HTMX partial.
    values = {"connection_id": conn.pk, "job_id": job.pk, "run_id": run.pk, "table": "public.items",
              "dataset": bq_dataset, "token_id": token.pk,
              "membership_id": Membership.objects.get(user=user, workspace=conn.workspace).pk}
    for route in all_routes():
        for n in (range(1, 6) if "n" in route.kwargs else [None]):
            path = route.path({**values, "n": n})
            for hx in (False, True):
                check(f"GET {path} (HTMX={hx})", alice_client.get(path, headers=HX if hx else {}))

    for label, response in seen:
        assert_hidden(response_text(response), hidden, label)
    # The walk really reached the source with the password: tables, columns and rows came back.
    by_label = dict(seen)
    preview = by_label[f"GET {reverse('api_connection_preview', args=[conn.pk, 'public.items'])} (HTMX=False)"]
    assert len(preview.json()["rows"]) == 2


# --------------------------------------------------------------------------- run errors, logs, task queue


def test_it_keeps_passwords_out_of_run_errors_logs_and_the_task_queue(
        alice_client, pg_source, role, bq_settings, bq_dataset, caplog, django_capture_on_commit_callbacks) -> None:
    role_name, password = role
    wrong = new_password()
    hidden = spellings(password, wrong)
    caplog.set_level(logging.DEBUG)
    for name in ("django", "django.db.backends", "django.request", "sqlalchemy", "psycopg", "pymysql",
                 "ml_platform", "wizard", "django_tasks", "django_tasks_db"):
        caplog.set_level(logging.DEBUG, logger=name)
    django_db.force_debug_cursor = True  # every SQL statement and its parameters reach the log
    try:
        cases = {
            # a password-checked role given the wrong password
            "wrong password": (connection_form(pg_source, role_name, wrong, name="wrong-pw"), "Authentication failed"),
            # the right credentials, a database that does not exist
            "missing database": (connection_form(pg_source, role_name, password, name="no-db",
                                                 database=f"no_such_db_{uuid.uuid4().hex[:8]}"),
                                 "Database not found"),
            # a host that does not resolve (transient: the run goes back to the queue for a retry)
            "unknown host": (connection_form(pg_source, role_name, password, name="bad-host",
                                             host=f"no-such-host-{uuid.uuid4().hex[:8]}.invalid"),
                             "Cannot reach the database server"),
        }
        runs: dict[str, JobRun] = {}
        for label, (form, _) in cases.items():
            assert alice_client.post(reverse("connection_create"), form).status_code == 302, label
            conn = Connection.objects.get(name=form["name"])
            alice_client.post(reverse("connection_test", args=[conn.pk]), headers=HX)
            job = EtlJob.objects.create(workspace=conn.workspace,
                owner=conn.owner, name=f"job {label}", connection=conn, source_schema="public", source_table="items",
                selected_columns=["id", "name"], column_mapping={"id": "id", "name": "name"},
                destination_dataset=bq_dataset, destination_table="items", load_strategy="replace")
            with django_capture_on_commit_callbacks(execute=True):
                queued = alice_client.post(reverse("job_run_now", args=[job.pk]), headers=HX)
            assert queued.status_code == 200, label
            runs[label] = job.runs.get()

        # The queue holds ids only; the worker's own code path executes each task.
        tasks = list(DBTaskResult.objects.all())
        assert sorted(t.args_kwargs["args"][0] for t in tasks) == sorted(r.pk for r in runs.values())
        for task in tasks:
            assert task.args_kwargs["kwargs"] == {}
            assert all(type(a) is int for a in task.args_kwargs["args"]), task.args_kwargs
            with django_capture_on_commit_callbacks(execute=True):  # a transient failure re-enqueues itself
                task.task.call(*task.args_kwargs["args"], **task.args_kwargs["kwargs"])

        for label, (_, headline) in cases.items():
            run = runs[label]
            run.refresh_from_db()
            assert run.status in (JobRun.Status.FAILED, JobRun.Status.QUEUED), (label, run.status)
            assert headline in run.error, (label, run.error)
            assert_hidden(run.error, hidden, f"run error ({label})")
            for name in ("job_detail", "job_row", "api_job_detail", "jobs"):
                path = reverse(name, args=[run.job_id]) if name != "jobs" else reverse(name)
                for hx in (False, True):
                    page = alice_client.get(path, headers=HX if hx else {})
                    assert page.status_code == 200
                    assert_hidden(response_text(page), hidden, f"GET {path} after the {label} run")

        for conn in Connection.objects.all():
            assert_hidden(conn.last_test_message, hidden, f"stored test result of {conn.name}")
        # Retries (a transient failure) enqueue again: still ids only, nothing secret anywhere in a row.
        retried = sum(r.status == JobRun.Status.QUEUED for r in runs.values())
        assert DBTaskResult.objects.count() == len(tasks) + retried
        for row in DBTaskResult.objects.values():
            assert all(type(a) is int for a in row["args_kwargs"]["args"]) and row["args_kwargs"]["kwargs"] == {}
            assert_hidden(json.dumps(row, default=str), hidden, "the task queue")
    finally:
        django_db.force_debug_cursor = False

    assert any(r.name == "django.db.backends" for r in caplog.records)  # the SQL log was really captured
    assert_hidden(caplog.text, hidden, "the log")
    for record in caplog.records:
        assert_hidden(f"{record.getMessage()} {record.args!r} {record.exc_text or ''}", hidden,
                      f"log record {record.name}")


# --------------------------------------------------------------------------- deployment checks


def test_it_passes_check_deploy_with_production_settings(tmp_path) -> None:
    alphabet = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "BIGQUERY_", "SECURE_", "SESSION_", "CSRF_"))
           and k not in {"DEBUG", "ALLOWED_HOSTS", "BEHIND_TLS_PROXY"}}
    env.update({
        "DJANGO_SETTINGS_MODULE": "ml_platform.settings",
        "ML_PLATFORM_DATA_DIR": str(tmp_path),
        "DEBUG": "false",
        "SECRET_KEY": "".join(secrets.choice(alphabet) for _ in range(50)),
        "FIELD_ENCRYPTION_KEYS": f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}",
        "ALLOWED_HOSTS": "etl.example.com",
        "SESSION_COOKIE_SECURE": "true",
        "SECURE_SSL_REDIRECT": "true",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
        "SECURE_HSTS_PRELOAD": "true",
        "BEHIND_TLS_PROXY": "true",
        "DATABASE_URL": f"postgres://postgres@{PG_HOST}:{PG_PORT}/postgres",
    })
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout, done.stdout + done.stderr
    assert not list(tmp_path.iterdir()), "production settings must not generate local secrets"
