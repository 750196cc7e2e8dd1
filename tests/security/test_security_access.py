"""Access control over every URL the product serves, per role.

`ACCESS` is the explicit table: for every URL name, the HTTP methods it serves and the least role each
needs, and what an allowed request answers. The walk reads the live resolver: a new URL pattern fails
`test_it_classifies_every_url_pattern` until it is put in the table, and from then on it is walked as

- an anonymous visitor: 302 to the login page (pages) or 401 JSON (API);
- a member of another workspace: for a URL naming an object, exactly what a missing id gets (404, or 405
  for a method the URL does not serve); for the rest, their own workspace's view, never alice's markers;
- a viewer, an editor and an admin of alice's workspace: the role the cell needs or more → the allowed
  status; less → 403 with nothing changed; a method the URL does not serve → 405 (or the 403 of the role
  check, which runs first);
- a user in no workspace: the empty state (pages) or 403 JSON (API);
- and without a CSRF token: 403 on every state-changing request.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse

from ml_platform.etl.types import BigQueryField
from ml_platform.models import ApiToken, AuditEvent, Connection, EtlJob, JobRun, Membership, WorkspaceDataset
from ml_platform.services import connections, workspaces
from tests.fixtures import HX
from tests.security.urlwalk import Route, all_routes
from wizard.models import WizardDraft

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
ALL_METHODS = ("GET", *UNSAFE_METHODS)
VIEWER, EDITOR, ADMIN = Membership.Role.VIEWER, Membership.Role.EDITOR, Membership.Role.ADMIN
RANK = Membership.RANK

# What an allowed request answers (an empty form may be refused as a 400: that is "allowed" too).
PAGE = {200}
FORM = {200, 400}  # a form re-shown with errors
DONE = {302}  # redirect after the change
ACT = {200, 302}  # plain redirect, or the HTMX partial / HX-Redirect
ACT_FORM = {200, 302, 400}
API = {200}
API_BODY = {200, 201, 400, 422}  # "{}" is an invalid body for most of the API


@dataclass(frozen=True)
class Access:
    """One URL name: the kind of URL, and per served method (least role, statuses when allowed)."""

    kind: str  # "object" (names an object), "scoped" (the current workspace's things), "any_user", "public"
    methods: dict[str, tuple[str, set[int]]] = field(default_factory=dict)
    marked: str | None = None  # the view's @requires_role, checked for every method before the view runs

    def gate(self, method: str) -> str | None:
        """The role the middleware checks before the view runs (None: any member)."""
        if self.kind == "any_user":
            return None  # under /workspaces/: no workspace check at all
        return self.marked or (EDITOR if method in UNSAFE_METHODS else None)


def _a(kind: str, marked: str | None = None, **methods: tuple[str, set[int]]) -> Access:
    return Access(kind, methods, marked)


ACCESS: dict[str, Access] = {
    # anyone
    "login": _a("public"),
    "logout": _a("public"),
    "favicon": _a("public"),  # /favicon.ico: a redirect to the static icon, asked for by every browser
    # signed in, in or out of a workspace
    "workspace_none": _a("any_user", GET=(VIEWER, PAGE), POST=(VIEWER, FORM)),
    "workspace_switch": _a("any_user", POST=(VIEWER, {404})),  # an empty body names no workspace of theirs
    # jobs
    # the root redirects whatever the method (RedirectView); the middleware still wants an editor for unsafe ones
    "route:/": _a("scoped", GET=(VIEWER, DONE), POST=(EDITOR, DONE), PUT=(EDITOR, DONE), PATCH=(EDITOR, DONE),
                  DELETE=(EDITOR, DONE)),
    "jobs": _a("scoped", GET=(VIEWER, PAGE)),
    "job_detail": _a("object", GET=(VIEWER, PAGE)),
    "job_row": _a("object", GET=(VIEWER, PAGE)),
    "job_run_now": _a("object", POST=(EDITOR, ACT)),
    "job_pause": _a("object", POST=(EDITOR, ACT)),
    "job_resume": _a("object", POST=(EDITOR, ACT)),
    "job_delete": _a("object", GET=(VIEWER, PAGE), POST=(EDITOR, ACT)),
    "job_edit": _a("object", GET=(VIEWER, PAGE), POST=(EDITOR, FORM)),
    "job_reconnect": _a("object", GET=(VIEWER, PAGE), POST=(EDITOR, FORM)),
    # Verify / Repair (verify17)
    "job_verify": _a("object", POST=(EDITOR, ACT)),
    "job_repair": _a("object", POST=(EDITOR, ACT)),
    "job_verify_cancel": _a("object", POST=(EDITOR, ACT)),
    "job_verify_settings": _a("object", POST=(EDITOR, ACT)),
    "job_verification": _a("object", GET=(VIEWER, PAGE)),
    # connections
    "connections": _a("scoped", GET=(VIEWER, PAGE)),
    "connection_create": _a("scoped", GET=(VIEWER, PAGE), POST=(EDITOR, FORM)),
    "connection_test_unsaved": _a("scoped", POST=(EDITOR, FORM)),
    "connection_edit": _a("object", GET=(VIEWER, PAGE), POST=(EDITOR, FORM)),
    "connection_delete": _a("object", POST=(EDITOR, ACT_FORM)),
    "connection_test": _a("object", POST=(EDITOR, PAGE)),
    # the wizard (a draft per user; submitting any step is a change)
    "wizard:start": _a("scoped", GET=(VIEWER, DONE)),
    "wizard:reset": _a("scoped", POST=(EDITOR, ACT)),
    "wizard:step": _a("scoped", GET=(VIEWER, {200, 302}), POST=(EDITOR, {200, 302, 400})),
    "wizard:report": _a("scoped", GET=(VIEWER, {200, 400}), POST=(EDITOR, {200, 400})),
    "wizard:tables": _a("scoped", GET=(VIEWER, PAGE)),
    "wizard:draft": _a("scoped", POST=(EDITOR, {204, 400})),
    "wizard:cron_preview": _a("scoped", GET=(VIEWER, PAGE)),
    # workspace administration
    "workspace_members": _a("scoped", GET=(VIEWER, PAGE)),
    "member_add": _a("scoped", ADMIN, POST=(ADMIN, FORM)),
    "member_role": _a("object", ADMIN, POST=(ADMIN, DONE)),
    "member_remove": _a("object", ADMIN, POST=(ADMIN, DONE)),
    "dataset_create": _a("scoped", ADMIN, POST=(ADMIN, FORM)),
    # personal API tokens (from the tokens branch): any member manages their own
    "api_tokens": _a("scoped", VIEWER, GET=(VIEWER, PAGE), POST=(VIEWER, {200, 302, 400})),
    "api_token_revoke": _a("object", VIEWER, POST=(VIEWER, {200, 302})),
    # the JSON API
    "api_connections": _a("scoped", GET=(VIEWER, API), POST=(EDITOR, API_BODY)),
    "api_connection_detail": _a("object", GET=(VIEWER, API), PATCH=(EDITOR, API_BODY),
                                   DELETE=(EDITOR, {200, 409})),  # 409: a job still uses it
    "api_connection_test": _a("object", POST=(EDITOR, API)),
    "api_connection_tables": _a("object", GET=(VIEWER, API)),
    "api_connection_columns": _a("object", GET=(VIEWER, API)),
    "api_connection_preview": _a("object", GET=(VIEWER, API)),
    "api_datasets": _a("scoped", GET=(VIEWER, API)),
    "api_dataset_tables": _a("scoped", GET=(VIEWER, API)),
    "api_validate_schema_compatibility": _a("scoped", POST=(EDITOR, API_BODY)),
    "api_jobs": _a("scoped", GET=(VIEWER, API), POST=(EDITOR, API_BODY)),
    "api_job_detail": _a("object", GET=(VIEWER, API), PATCH=(EDITOR, API_BODY),
                         DELETE=(EDITOR, {200, 409})),  # 409: a run is active
    "api_job_runs": _a("object", GET=(VIEWER, API)),
    "api_job_run": _a("object", POST=(EDITOR, {202, 409})),  # 409: a run is already queued or running
    "api_job_pause": _a("object", POST=(EDITOR, API)),
    "api_job_resume": _a("object", POST=(EDITOR, API)),
    "api_job_reconnect": _a("object", POST=(EDITOR, {200, 409, 422})),  # "{}": the job's own connection and table
    # the API's OpenAPI document and its Swagger UI (signed-in members, like the API itself)
    "api_docs": _a("scoped", GET=(VIEWER, PAGE)),
    "api_openapi": _a("scoped", GET=(VIEWER, API)),
    "api_job_verify": _a("object", GET=(VIEWER, API), POST=(EDITOR, {200, 202, 409})),  # 409: already active
}
# URL parameters that name a workspace object.
OBJECT_KWARGS = {"connection_id", "job_id", "run_id", "membership_id", "token_id"}
PLAIN_KWARGS = {"n", "table", "dataset"}

ALICE_CONNECTION = "alice-private-connection"
ALICE_JOB = "alice-private-job"
MISSING_ID = 999_999


@dataclass
class Owned:
    connection: Connection
    job: EtlJob
    run: JobRun
    values: dict[str, Any]  # a value for every URL parameter, naming alice's workspace's objects
    markers: tuple[str, ...]  # text that only alice's workspace may ever see
    members: dict[str, Any]  # role -> the user with that role in alice's workspace

    def missing_values(self) -> dict[str, Any]:
        return {k: (MISSING_ID if k in OBJECT_KWARGS else v) for k, v in self.values.items()}

    def values_for(self, user) -> dict[str, Any]:
        """Alice's objects, and the acting user's own token (tokens are personal)."""
        token = ApiToken.objects.filter(user=user).first()
        return {**self.values, "token_id": token.pk if token else self.values["token_id"]}

    def snapshot(self) -> tuple:
        """Everything a refused request must leave untouched."""
        job = EtlJob.objects.filter(pk=self.job.pk).values("name", "status", "schedule", "connection_id").first()
        conn = Connection.objects.filter(pk=self.connection.pk).values(
            "name", "host", "database", "password", "last_tested_at").first()
        return (job, conn, JobRun.objects.filter(job_id=self.job.pk).count(), Connection.objects.count(),
                EtlJob.objects.count(),
                sorted(Membership.objects.values_list("workspace_id", "user_id", "role")),
                sorted(WorkspaceDataset.objects.values_list("workspace_id", "dataset")),
                sorted(ApiToken.objects.values_list("pk", "revoked_at")), AuditEvent.objects.count(),
                sorted(WizardDraft.objects.values_list("owner_id", "data")))


def add_token(user, workspace) -> ApiToken:
    return ApiToken.objects.create(user=user, workspace=workspace, name=f"{user.username}-token",
                                   prefix=user.username[:8], digest=f"{user.username:0<64}"[:64])


@pytest.fixture
def owned(user, django_user_model, sqlite_source, bq, bq_dataset, bq_settings) -> Owned:
    """Alice's workspace: a connection, a job and a run (a real source and BigQuery table), a viewer and an editor."""
    sqlite_source.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount REAL)",
                          "INSERT INTO orders VALUES (1, 2.5), (2, 3.5)")
    connection = connections.connection_create(owner=user, name=ALICE_CONNECTION, password="alice-db-password",
                                               **{k: v for k, v in sqlite_source.as_connection_fields().items()
                                                  if k != "password"})
    workspace = connection.workspace
    bq.create_table(bq_dataset, "orders", [BigQueryField("id", "INT64"), BigQueryField("amount", "FLOAT64")])
    job = EtlJob.objects.create(
        workspace=workspace, owner=user, name=ALICE_JOB, connection=connection, source_table="orders",
        selected_columns=["id", "amount"], column_mapping={"id": "id", "amount": "amount"},
        destination_dataset=bq_dataset, destination_table="orders", destination_mode="existing",
        load_strategy="append", schedule="0 * * * *",
    )
    run = JobRun.objects.create(job=job, connection=connection, connection_name=connection.name,
                                status=JobRun.Status.FAILED, error="alice-private-run-error")
    viewer = django_user_model.objects.create_user(username="victor-viewer", password="x-password-123")
    editor = django_user_model.objects.create_user(username="edith-editor", password="x-password-123")
    viewing = Membership.objects.create(workspace=workspace, user=viewer, role=VIEWER)
    Membership.objects.create(workspace=workspace, user=editor, role=EDITOR)
    for member in (user, viewer, editor):
        add_token(member, workspace)
    values = {"connection_id": connection.pk, "job_id": job.pk, "run_id": run.pk, "n": 1, "table": "orders",
              "dataset": bq_dataset, "membership_id": viewing.pk,
              "token_id": ApiToken.objects.get(user=user).pk}
    return Owned(connection, job, run, values,
                 (ALICE_CONNECTION, ALICE_JOB, sqlite_source.database, "alice-private-run-error", "edith-editor",
                  "victor-viewer", bq_dataset),
                 {VIEWER: viewer, EDITOR: editor, ADMIN: user})


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
        assert marker not in body, f"{where} shows another workspace's {marker!r}"


def routes_in_table() -> list[Route]:
    routes = all_routes()
    for r in routes:
        assert r.key in ACCESS, f"new URL pattern {r.key!r}: classify it in tests/security/test_security_access.py ACCESS"
    return routes


def expected(access: Access, method: str, role: str) -> set[int]:
    """The statuses a member with `role` in alice's workspace gets for `method`."""
    if method in access.methods:
        least, allowed = access.methods[method]
        return {403} if RANK[role] < RANK[least] else allowed
    gate = access.gate(method)
    return {403} if gate and RANK[role] < RANK[gate] else {405}


# --------------------------------------------------------------------------- classification


def test_it_classifies_every_url_pattern() -> None:
    routes = all_routes()
    keys = [r.key for r in routes]
    assert len(keys) == len(set(keys)), "two URL patterns share a name"
    unclassified = set(keys) - set(ACCESS)
    assert not unclassified, f"new URL patterns: classify them in tests/security/test_security_access.py: {unclassified}"
    gone = set(ACCESS) - set(keys)
    assert not gone, f"classified URL patterns that no longer exist: {gone}"
    for r in routes:
        access = ACCESS[r.key]
        names_an_object = bool(OBJECT_KWARGS & set(r.kwargs))
        assert names_an_object == (access.kind == "object"), f"{r.key}: object id in URL = {names_an_object}"
        unknown = set(r.kwargs) - OBJECT_KWARGS - PLAIN_KWARGS
        assert not unknown, f"{r.key}: give the security tests a value for {unknown}"
        assert (access.kind == "public") == (not access.methods), f"{r.key}: list the methods it serves"
        assert set(access.methods) <= set(ALL_METHODS), r.key
        for method, (least, _) in access.methods.items():
            gate = access.gate(method)
            assert not gate or RANK[least] >= RANK[gate], f"{r.key} {method}: the middleware needs {gate}"


# --------------------------------------------------------------------------- members of alice's workspace


@pytest.mark.parametrize("role", [VIEWER, EDITOR, ADMIN])
def test_it_walks_every_url_as_each_role_of_the_workspace(client, owned, role) -> None:
    """Each cell of the table: allowed → its status; refused → 403 and nothing changed; unserved → 405/403."""
    member = owned.members[role]
    client.force_login(member)
    values = owned.values_for(member)
    visited: set[str] = set()
    for route in routes_in_table():
        access = ACCESS[route.key]
        if access.kind == "public":
            continue
        visited.add(route.key)
        for vals in step_values(route, values):
            path = route.path(vals)
            for method in ALL_METHODS:
                for hx in (False, True):
                    where = f"{role} {method} {path} (HTMX={hx})"
                    want = expected(access, method, role)
                    with transaction.atomic():  # every request starts from the same workspace
                        before = owned.snapshot()
                        response = request(client, method, path, hx=hx)
                        assert response.status_code in want, f"{where}: {response.status_code}, expected {want}"
                        if response.status_code in (403, 405):
                            assert owned.snapshot() == before, f"{where} was refused but changed something"
                        if response.status_code == 403 and route.is_api:
                            assert response.json()["status"] == "error", where
                        transaction.set_rollback(True)
    assert visited == {r.key for r in all_routes()} - {k for k, a in ACCESS.items() if a.kind == "public"}


# --------------------------------------------------------------------------- another workspace


def test_it_walks_every_url_as_a_member_of_another_workspace_without_seeing_or_changing_anything(
        client, other_user, owned) -> None:
    """mallory is admin of her own workspace: alice's objects answer like missing ids, lists show her own."""
    add_token(other_user, workspaces.personal_workspace(other_user))
    client.force_login(other_user)
    before = owned.snapshot()
    visited: set[str] = set()
    for route in routes_in_table():
        access = ACCESS[route.key]
        if access.kind == "public":
            continue
        visited.add(route.key)
        if access.kind == "object":
            for method in ALL_METHODS:
                for hx in (False, True):
                    with transaction.atomic():
                        theirs = request(client, method, route.path(owned.values), hx=hx)
                        missing = request(client, method, route.path(owned.missing_values()), hx=hx)
                        transaction.set_rollback(True)
                    where = f"other workspace {method} {route.path(owned.values)} (HTMX={hx})"
                    # No existence oracle: alice's object answers exactly like an id that does not exist.
                    assert theirs.status_code == missing.status_code, where
                    assert theirs.status_code == (404 if method in access.methods else 405), \
                        f"{where} answered {theirs.status_code}"
                    if theirs.status_code == 404 and route.is_api:
                        assert theirs.json() == {"status": "error", "message": "Not found", "details": []}, where
                    assert_no_markers(theirs, owned.markers, where)
        else:
            for values in step_values(route, owned.values):
                for method in ALL_METHODS:
                    for hx in (False, True):
                        with transaction.atomic():
                            response = request(client, method, route.path(values), hx=hx)
                            transaction.set_rollback(True)
                        where = f"other workspace {method} {route.path(values)} (HTMX={hx})"
                        assert response.status_code < 500, where
                        # Her own workspace, where she is admin: never a role refusal.
                        assert response.status_code not in (401, 403), where
                        if method not in access.methods:
                            assert response.status_code == 405, where
                        assert_no_markers(response, owned.markers, where)
    assert visited == {r.key for r in all_routes()} - {k for k, a in ACCESS.items() if a.kind == "public"}
    assert owned.snapshot() == before
    assert client.get(reverse("api_dataset_tables", args=[owned.values["dataset"]])).status_code == 404
    assert client.get(reverse("api_jobs")).json()["jobs"] == []
    assert client.get(reverse("api_connections")).json()["connections"] == []
    assert owned.values["dataset"] not in client.get(reverse("api_datasets")).json()["datasets"]


def test_it_refuses_another_workspaces_ids_inside_request_bodies(client, other_user, owned, tmp_path) -> None:
    mine_db = tmp_path / "mallory.sqlite3"
    sqlite3.connect(mine_db).execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount REAL)").connection.close()
    mine = connections.connection_create(owner=other_user, name="mallory-conn", engine="sqlite", database=str(mine_db))
    workspaces.dataset_assign(workspace=mine.workspace, dataset="mallory_ds")
    my_job = EtlJob.objects.create(workspace=mine.workspace, owner=other_user, name="mallory-job", connection=mine,
                                   source_table="orders", selected_columns=["id"], column_mapping={"id": "id"},
                                   destination_dataset="mallory_ds", destination_table="orders")
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
    # A membership id of alice's workspace, in her own workspace's admin forms.
    for name in ("member_role", "member_remove"):
        response = client.post(reverse(name, args=[owned.values["membership_id"]]), {"role": ADMIN})
        assert response.status_code == 404, name
    switch = client.post(reverse("workspace_switch"), {"workspace": owned.connection.workspace_id})
    assert switch.status_code == 404

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


# --------------------------------------------------------------------------- in no workspace


def test_a_user_in_no_workspace_gets_the_empty_state_and_the_api_403(client, django_user_model, owned) -> None:
    nobody = django_user_model.objects.create_user(username="nobody", password="nobody-password-123")
    client.force_login(nobody)
    empty = reverse("workspace_none")
    before = owned.snapshot()
    for route in routes_in_table():
        access = ACCESS[route.key]
        if access.kind in ("public", "any_user"):
            continue
        for values in step_values(route, owned.values):
            path = route.path(values)
            for method in ALL_METHODS:
                response = request(client, method, path)
                where = f"no workspace {method} {path}"
                if route.is_api:
                    assert response.status_code == 403, where
                    assert response.json() == {"status": "error", "message": "You are not a member of any workspace",
                                               "details": []}, where
                else:
                    assert response.status_code == 302 and response["Location"] == empty, where
                assert_no_markers(response, owned.markers, where)
    assert owned.snapshot() == before
    page = client.get(empty)
    assert page.status_code == 200
    assert_no_markers(page, owned.markers, "empty state")
    assert client.post(reverse("workspace_switch"), {"workspace": owned.connection.workspace_id}).status_code == 404
    created = client.post(empty, {"name": "nobody's own"})
    assert created.status_code == 302
    assert Membership.objects.get(user=nobody).role == ADMIN
    assert client.get(reverse("jobs")).status_code == 200


# --------------------------------------------------------------------------- anonymous


def test_it_sends_anonymous_visitors_to_the_login_page_and_answers_the_api_with_401(client, owned) -> None:
    visited: set[str] = set()
    login = reverse("login")
    for route in routes_in_table():
        if ACCESS[route.key].kind == "public":
            continue
        visited.add(route.key)
        for values in step_values(route, owned.values):
            path = route.path(values)
            for method in ALL_METHODS:
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
    assert visited == {r.key for r in all_routes()} - {k for k, a in ACCESS.items() if a.kind == "public"}
    assert client.get(login).status_code == 200
    assert client.post(reverse("logout")).status_code == 302


def test_it_serves_the_login_page(client) -> None:
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b'name="password"' in response.content


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


def test_it_renders_navigation_and_htmx_csrf_header(alice_client) -> None:
    html = alice_client.get(reverse("jobs")).content.decode()
    for label in ("Jobs", "Connections", "New ETL job"):
        assert f">{label}</a>" in html
    assert "hx-headers='{\"X-CSRFToken\"" in html
    assert "htmx" in html and "/static/vendor/bootstrap/bootstrap.min.css" in html
