"""Access control over every URL the product serves.

The walk reads the live resolver: a new URL pattern fails `test_it_classifies_every_url_pattern`
until it is put in one of the sets below, and from then on it is walked as another user,
as an anonymous visitor and without a CSRF token.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from ml_platform import services
from ml_platform.etl.types import BigQueryField
from ml_platform.models import Connection, EtlJob, JobRun
from tests.urlwalk import Route, all_routes
from wizard.models import WizardDraft

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

HX = {"HX-Request": "true"}
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")

# Anyone may reach these.
PUBLIC = {"login", "logout"}
# The URL names one of the user's objects: another user must get exactly what a missing id gets (404).
OBJECT_SCOPED = {
    "job_detail", "job_row", "job_run_now", "job_pause", "job_resume", "job_delete", "job_edit", "job_reconnect",
    "connection_edit", "connection_delete", "connection_test",
    "api_connection_detail", "api_connection_test", "api_connection_tables", "api_connection_columns",
    "api_connection_preview", "api_job_detail", "member_role", "member_remove",
}
# No object in the URL: they list, create or preview the requesting user's own things.
USER_SCOPED = {
    "route:/", "jobs", "connections", "connection_create", "connection_test_unsaved",
    "wizard:start", "wizard:reset", "wizard:step", "wizard:report", "wizard:tables", "wizard:cron_preview",
    "api_connections", "api_datasets", "api_dataset_tables", "api_validate_schema_compatibility", "api_jobs",
    "workspace_members", "member_add", "dataset_create",
}
# Reached by any signed-in user, in or out of a workspace: the empty state and the switcher.
ANY_USER = {"workspace_none", "workspace_switch"}
# URL parameters that name a user-owned object.
OBJECT_KWARGS = {"connection_id", "job_id", "run_id", "membership_id"}

ALICE_CONNECTION = "alice-private-connection"
ALICE_JOB = "alice-private-job"
MISSING_ID = 999_999


@dataclass
class Owned:
    connection: Connection
    job: EtlJob
    run: JobRun
    values: dict[str, Any]  # a value for every URL parameter, naming alice's objects
    markers: tuple[str, ...]  # text that only alice may ever see

    def missing_values(self) -> dict[str, Any]:
        return {k: (MISSING_ID if k in OBJECT_KWARGS else v) for k, v in self.values.items()}

    def snapshot(self) -> tuple:
        """Everything a refused request must leave untouched."""
        job = EtlJob.objects.filter(pk=self.job.pk).values("name", "status", "schedule", "connection_id").first()
        conn = Connection.objects.filter(pk=self.connection.pk).values(
            "name", "host", "database", "password", "last_tested_at").first()
        return (job, conn, JobRun.objects.filter(job_id=self.job.pk).count(), Connection.objects.count(),
                EtlJob.objects.count(), list(WizardDraft.objects.filter(owner_id=self.job.owner_id).values_list("data", flat=True)))


@pytest.fixture
def owned(user, sqlite_source, bq, bq_dataset, bq_settings) -> Owned:
    """Alice's connection, job and run (with a real source table and a real BigQuery table)."""
    sqlite_source.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount REAL)",
                          "INSERT INTO orders VALUES (1, 2.5), (2, 3.5)")
    connection = services.connection_create(owner=user, name=ALICE_CONNECTION, password="alice-db-password",
                                            **{k: v for k, v in sqlite_source.as_connection_fields().items()
                                               if k != "password"})
    bq.create_table(bq_dataset, "orders", [BigQueryField("id", "INT64"), BigQueryField("amount", "FLOAT64")])
    job = EtlJob.objects.create(workspace=connection.workspace,
        owner=user, name=ALICE_JOB, connection=connection, source_table="orders", selected_columns=["id", "amount"],
        column_mapping={"id": "id", "amount": "amount"}, destination_dataset=bq_dataset, destination_table="orders",
        destination_mode="existing", load_strategy="append", schedule="0 * * * *",
    )
    run = JobRun.objects.create(job=job, connection=connection, connection_name=connection.name,
                                status=JobRun.Status.FAILED, error="alice-private-run-error")
    values = {"connection_id": connection.pk, "job_id": job.pk, "run_id": run.pk, "n": 1, "table": "orders",
              "dataset": bq_dataset}
    return Owned(connection, job, run, values,
                 (ALICE_CONNECTION, ALICE_JOB, sqlite_source.database, "alice-private-run-error"))


def request(client: Client, method: str, path: str, *, hx: bool = False):
    kwargs: dict[str, Any] = {"headers": HX if hx else {}}
    if method != "GET":
        # A well-formed request: a JSON object for the API, an empty form for pages.
        if path.startswith("/api/"):
            kwargs |= {"data": "{}", "content_type": "application/json"}
        elif method == "POST":
            kwargs["data"] = {}
    return getattr(client, method.lower())(path, **kwargs)


def step_values(route: Route, values: dict[str, Any]) -> list[dict[str, Any]]:
    """Every wizard step for the step route, the given values otherwise."""
    if "n" in route.kwargs:
        return [{**values, "n": n} for n in range(1, 6)]
    return [values]


def assert_no_markers(response, markers: tuple[str, ...], where: str) -> None:
    body = response.content.decode(errors="replace")
    for marker in markers:
        assert marker not in body, f"{where} shows another user's {marker!r}"


# --------------------------------------------------------------------------- classification


def test_it_classifies_every_url_pattern() -> None:
    routes = all_routes()
    keys = [r.key for r in routes]
    assert len(keys) == len(set(keys)), "two URL patterns share a name"
    assert not (PUBLIC & OBJECT_SCOPED) and not (PUBLIC & USER_SCOPED) and not (OBJECT_SCOPED & USER_SCOPED)
    unclassified = set(keys) - PUBLIC - OBJECT_SCOPED - USER_SCOPED
    assert not unclassified, f"new URL patterns: classify them in tests/test_security_access.py: {unclassified}"
    assert set(keys) == PUBLIC | OBJECT_SCOPED | USER_SCOPED, "a classified URL pattern no longer exists"
    for r in routes:
        names_an_object = bool(OBJECT_KWARGS & set(r.kwargs))
        assert names_an_object == (r.key in OBJECT_SCOPED), f"{r.key}: object id in URL = {names_an_object}"
        unknown = set(r.kwargs) - OBJECT_KWARGS - {"n", "table", "dataset"}
        assert not unknown, f"{r.key}: give the security tests a value for {unknown}"


# --------------------------------------------------------------------------- another user


def test_it_walks_every_url_as_another_user_without_seeing_or_changing_anything(client, other_user, owned) -> None:
    client.force_login(other_user)
    before = owned.snapshot()
    visited: set[str] = set()
    for route in all_routes():
        if route.key in PUBLIC:
            continue
        visited.add(route.key)
        if route.key in OBJECT_SCOPED:
            hidden = 0
            for method in ("GET", *UNSAFE_METHODS):
                for hx in (False, True):
                    theirs = request(client, method, route.path(owned.values), hx=hx)
                    missing = request(client, method, route.path(owned.missing_values()), hx=hx)
                    where = f"{method} {route.path(owned.values)} (HTMX={hx})"
                    # No existence oracle: alice's object answers exactly like an id that does not exist.
                    assert theirs.status_code == missing.status_code, where
                    assert theirs.status_code in (403, 404, 405), f"{where} answered {theirs.status_code}"
                    hidden += theirs.status_code in (403, 404)
                    if theirs.status_code == 404 and route.is_api:
                        assert theirs.json() == {"status": "error", "message": "Not found", "details": []}, where
                    assert_no_markers(theirs, owned.markers, where)
            assert hidden, f"{route.key} never answered 404/403 to another user"
        else:
            for values in step_values(route, owned.values):
                for method in ("GET", "POST"):
                    for hx in (False, True):
                        response = request(client, method, route.path(values), hx=hx)
                        where = f"{method} {route.path(values)} (HTMX={hx})"
                        assert response.status_code < 500, where
                        assert_no_markers(response, owned.markers, where)
    assert visited == {r.key for r in all_routes()} - PUBLIC
    assert owned.snapshot() == before
    # The dataset listing is the project's (shared), but which jobs load into a table is private.
    listed = client.get(reverse("api_dataset_tables", args=[owned.values["dataset"]])).json()["tables"]
    assert [t["job_ids"] for t in listed if t["table_id"] == "orders"] == [[]]
    assert client.get(reverse("api_jobs")).json()["jobs"] == []
    assert client.get(reverse("api_connections")).json()["connections"] == []


def test_it_refuses_another_users_ids_inside_request_bodies(client, other_user, owned, tmp_path) -> None:
    mine_db = tmp_path / "mallory.sqlite3"
    sqlite3.connect(mine_db).execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount REAL)").connection.close()
    mine = services.connection_create(owner=other_user, name="mallory-conn", engine="sqlite", database=str(mine_db))
    my_job = EtlJob.objects.create(workspace=mine.workspace, owner=other_user, name="mallory-job", connection=mine, source_table="orders",
                                   selected_columns=["id"], column_mapping={"id": "id"},
                                   destination_dataset=owned.values["dataset"], destination_table="orders")
    client.force_login(other_user)
    before = owned.snapshot()
    theirs = owned.connection.pk
    dataset = owned.values["dataset"]

    api_job = client.post(reverse("api_jobs"), {
        "name": "steal", "connection_id": theirs, "source_table": "orders", "destination_table": f"{dataset}.stolen",
    }, content_type="application/json")
    assert api_job.status_code == 404 and api_job.json()["status"] == "error"
    report = client.post(reverse("api_validate_schema_compatibility"), {
        "connection_id": theirs, "source_table": "orders", "destination_table": f"{dataset}.orders",
    }, content_type="application/json")
    assert report.status_code == 404 and report.json()["status"] == "error"
    test_unsaved = client.post(reverse("connection_test_unsaved"), {
        "connection_id": theirs, "engine": "sqlite", "database": owned.markers[2], "name": "x",
    }, headers=HX)
    assert test_unsaved.status_code == 404
    step1 = client.post(reverse("wizard:step", args=[1]), {"connection": theirs}, headers=HX)
    assert step1.status_code == 400 and b"Select a valid choice" in step1.content
    for method in ("get", "post"):
        reconnect = getattr(client, method)(reverse("job_reconnect", args=[my_job.pk]),
                                            {"connection": theirs, "table": "orders", "confirm": "1"})
        assert reconnect.status_code == 404, method
    my_job.refresh_from_db()
    assert my_job.connection_id == mine.pk

    # A draft that names alice's connection (stale or tampered with) is treated as empty.
    WizardDraft.objects.update_or_create(owner=other_user, defaults={"data": {
        "connection_id": theirs, "source_table": "orders", "columns": ["id"],
        "destination": {"destination_mode": "new", "dataset": dataset, "new_table": "x", "load_strategy": "replace"},
    }})
    for n in (2, 3, 4, 5):
        response = client.get(reverse("wizard:step", args=[n]))
        assert response.status_code == 302 and response["Location"] == reverse("wizard:step", args=[1])
    assert client.get(reverse("wizard:report")).status_code == 400
    draft = WizardDraft.objects.get(owner=other_user).data
    WizardDraft.objects.filter(owner=other_user).delete()
    assert owned.snapshot() == before
    assert draft["connection_id"] == theirs  # untouched, and never used


# --------------------------------------------------------------------------- anonymous


def test_it_sends_anonymous_visitors_to_the_login_page_and_answers_the_api_with_401(client, owned) -> None:
    visited: set[str] = set()
    login = reverse("login")
    for route in all_routes():
        if route.key in PUBLIC:
            continue
        visited.add(route.key)
        for values in step_values(route, owned.values):
            path = route.path(values)
            for method in ("GET", *UNSAFE_METHODS):
                for hx in (False, True):
                    response = request(client, method, path, hx=hx)
                    where = f"anonymous {method} {path} (HTMX={hx})"
                    if route.is_api:
                        assert response.status_code == 401, where
                        assert response.json() == {"status": "error", "message": "Authentication required",
                                                   "details": []}, where
                    else:
                        assert response.status_code == 302, where
                        assert response["Location"].startswith(f"{login}?next="), where
    assert visited == {r.key for r in all_routes()} - PUBLIC
    assert client.get(login).status_code == 200
    assert client.post(reverse("logout")).status_code == 302


# --------------------------------------------------------------------------- CSRF


def test_it_refuses_every_state_changing_request_without_a_csrf_token(user, owned) -> None:
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(user)
    before = owned.snapshot()
    visited: set[str] = set()
    for route in all_routes():
        visited.add(route.key)
        for values in step_values(route, owned.values):
            path = route.path(values)
            for method in UNSAFE_METHODS:
                for hx in (False, True):
                    response = request(csrf_client, method, path, hx=hx)
                    where = f"{method} {path} without a CSRF token (HTMX={hx})"
                    assert response.status_code == 403, where
                    if route.is_api:
                        body = response.json()
                        assert body["status"] == "error" and "CSRF" in body["message"], where
                    else:
                        assert b"CSRF verification failed" in response.content, where
    assert visited == {r.key for r in all_routes()}
    assert owned.snapshot() == before

    # The control: the same kind of request with the token (as the page's hx-headers send it) goes through.
    csrf_client.get(reverse("jobs"))
    token = csrf_client.cookies["csrftoken"].value
    paused = csrf_client.post(reverse("job_pause", args=[owned.job.pk]), headers={**HX, "X-CSRFToken": token})
    assert paused.status_code == 200
    owned.job.refresh_from_db()
    assert owned.job.status == EtlJob.Status.PAUSED
