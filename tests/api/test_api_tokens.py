"""Personal API tokens: created and revoked on a page, stored hashed, shown once, scoped to one workspace and
the owner's current role there, sent as `Authorization: Bearer`; CSRF applies to sessions, not to tokens."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import timedelta

import pytest
from django.db import connection as db_connection
from django.test import Client
from django.urls import reverse

from ml_platform.models import ApiToken, AuditEvent, Connection, EtlJob, JobRun, Membership
from ml_platform.services import connections, workspaces

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

TOKEN_IN_PAGE = re.compile(r'value="(etl_[0-9a-f]{12}_[A-Za-z0-9_-]{43})"')


def bearer(plaintext: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {plaintext}"}


def api_client() -> Client:
    """No session, and CSRF enforced as for a real client."""
    return Client(enforce_csrf_checks=True)


def create_on_page(client: Client, name: str = "ci") -> str:
    response = client.post(reverse("api_tokens"), {"name": name})
    assert response.status_code == 201
    match = TOKEN_IN_PAGE.search(response.content.decode())
    assert match, "the new token is shown on the page"
    return match.group(1)


@pytest.fixture
def workspace_b(other_user):
    """mallory's workspace; tests add alice to it with the role they need."""
    return workspaces.personal_workspace(other_user)


@pytest.fixture
def sqlite_db(sqlite_source) -> str:
    sqlite_source.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    return sqlite_source.database


def make_job(*, owner, workspace, database: str, name: str = "j") -> EtlJob:
    conn = connections.connection_create(owner=owner, workspace=workspace, name=f"conn-{name}", engine="sqlite",
                                         database=database)
    return EtlJob.objects.create(workspace=workspace, owner=owner, name=name, connection=conn, source_table="t",
                                 destination_dataset="d", destination_table="t")


# --------------------------------------------------------------------------- the page


def test_it_shows_a_new_token_once_and_then_only_its_prefix(alice_client, user) -> None:
    response = alice_client.post(reverse("api_tokens"), {"name": "rotation script"})
    html = response.content.decode()
    plaintext = TOKEN_IN_PAGE.search(html).group(1)
    assert html.count(plaintext) == 1 and "Copy it now" in html
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get()
    assert (token.user, token.workspace, token.name) == (user, workspaces.personal_workspace(user), "rotation script")
    # Stored hashed: the digest of the whole text, and the public prefix; never the text itself.
    assert token.digest == hashlib.sha256(plaintext.encode()).hexdigest()
    assert plaintext.startswith(token.prefix + "_") and len(token.prefix) == 16
    stored = json.dumps([list(ApiToken.objects.values_list()), list(AuditEvent.objects.values_list())], default=str)
    assert plaintext not in stored and plaintext[17:] not in stored
    assert AuditEvent.objects.filter(action="token created", target_id=token.pk, actor=user).exists()
    listing = alice_client.get(reverse("api_tokens")).content.decode()
    assert f"{token.prefix}…" in listing and "rotation script" in listing
    assert plaintext not in listing and "Copy it now" not in listing


def test_it_refuses_a_token_without_a_name(alice_client) -> None:
    response = alice_client.post(reverse("api_tokens"), {"name": "  "})
    assert response.status_code == 400 and not ApiToken.objects.exists()


def test_a_viewer_creates_and_revokes_their_own_tokens(client, user, workspace_b) -> None:
    Membership.objects.create(workspace=workspace_b, user=user, role=Membership.Role.VIEWER)
    client.force_login(user)
    client.post(reverse("workspace_switch"), {"workspace": workspace_b.pk})
    plaintext = create_on_page(client)
    token = ApiToken.objects.get()
    assert token.workspace == workspace_b
    assert api_client().get(reverse("api_jobs"), **bearer(plaintext)).status_code == 200
    assert client.post(reverse("api_token_revoke", args=[token.pk])).status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(action="token revoked", target_id=token.pk, workspace=workspace_b).exists()


def test_it_hides_another_users_tokens(alice_client, client, other_user) -> None:
    theirs, _ = workspaces.token_create(user=other_user, workspace=workspaces.personal_workspace(other_user),
                                          name="mallory-ci")
    assert alice_client.post(reverse("api_token_revoke", args=[theirs.pk])).status_code == 404
    assert "mallory-ci" not in alice_client.get(reverse("api_tokens")).content.decode()
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_it_lists_only_the_current_workspaces_tokens(alice_client, user, workspace_b) -> None:
    Membership.objects.create(workspace=workspace_b, user=user, role=Membership.Role.EDITOR)
    elsewhere, _ = workspaces.token_create(user=user, workspace=workspace_b, name="b-token")
    assert "b-token" not in alice_client.get(reverse("api_tokens")).content.decode()
    assert alice_client.post(reverse("api_token_revoke", args=[elsewhere.pk])).status_code == 404


# --------------------------------------------------------------------------- authentication and CSRF


def test_a_token_reads_the_api_without_session_or_csrf(user, tmp_path) -> None:
    workspace = workspaces.personal_workspace(user)
    job = make_job(owner=user, workspace=workspace, database=str(tmp_path / "x.sqlite3"))
    token, plaintext = workspaces.token_create(user=user, workspace=workspace, name="ci")
    client = api_client()
    response = client.get(reverse("api_jobs"), **bearer(plaintext))
    assert response.status_code == 200
    assert [j["id"] for j in response.json()["jobs"]] == [job.pk]
    assert "sessionid" not in response.cookies and "_auth_user_id" not in client.session
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_it_records_the_last_use_at_most_once_a_minute(user) -> None:
    token, plaintext = workspaces.token_create(user=user, workspace=workspaces.personal_workspace(user), name="ci")
    workspaces.token_authenticate(plaintext)
    first = ApiToken.objects.get().last_used_at
    workspaces.token_authenticate(plaintext)
    assert ApiToken.objects.get().last_used_at == first
    ApiToken.objects.update(last_used_at=first - timedelta(minutes=2))
    workspaces.token_authenticate(plaintext)
    assert ApiToken.objects.get().last_used_at > first - timedelta(seconds=1)


def test_a_token_post_needs_no_csrf_token(user, sqlite_db) -> None:
    _, plaintext = workspaces.token_create(user=user, workspace=workspaces.personal_workspace(user), name="ci")
    body = {"name": "by-token", "engine": "sqlite", "database": sqlite_db}
    response = api_client().post(reverse("api_connections"), body, content_type="application/json",
                                 **bearer(plaintext))
    assert response.status_code == 201, response.content
    assert Connection.objects.get(name="by-token").workspace == workspaces.personal_workspace(user)


def test_a_session_post_still_needs_the_csrf_token(user, sqlite_db) -> None:
    client = api_client()
    client.force_login(user)
    body = {"name": "by-session", "engine": "sqlite", "database": sqlite_db}
    response = client.post(reverse("api_connections"), body, content_type="application/json")
    assert response.status_code == 403 and "CSRF" in response.json()["message"]
    assert not Connection.objects.filter(name="by-session").exists()
    # A non-Bearer Authorization header does not lift CSRF either.
    response = client.post(reverse("api_connections"), body, content_type="application/json",
                           HTTP_AUTHORIZATION="Basic YWxpY2U6eA==")
    assert response.status_code == 403 and not Connection.objects.filter(name="by-session").exists()


def test_a_revoked_token_answers_401(alice_client, user) -> None:
    plaintext = create_on_page(alice_client)
    token = ApiToken.objects.get()
    assert api_client().get(reverse("api_jobs"), **bearer(plaintext)).status_code == 200
    alice_client.post(reverse("api_token_revoke", args=[token.pk]))
    response = api_client().get(reverse("api_jobs"), **bearer(plaintext))
    assert response.status_code == 401
    assert response.json() == {"status": "error", "message": "Invalid or revoked API token", "details": []}
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", [
    "Bearer ", "Bearer", "Bearer nonsense", "Bearer etl_", "bearer etl_0123456789ab_" + "A" * 43,
    "Bearer etl_0123456789ab_" + "A" * 43 + " extra", "Bearer " + "x" * 10_000, "Bearer etl_ZZZZZZZZZZZZ_" + "A" * 43,
])
def test_a_malformed_or_unknown_token_answers_401(user, header: str) -> None:
    response = api_client().get(reverse("api_jobs"), HTTP_AUTHORIZATION=header)
    assert response.status_code == 401 and response.json()["status"] == "error"


def test_a_wrong_token_never_falls_back_to_the_session(alice_client, user) -> None:
    _, plaintext = workspaces.token_create(user=user, workspace=workspaces.personal_workspace(user), name="ci")
    tampered = plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")
    assert alice_client.get(reverse("api_jobs")).status_code == 200  # the session alone works
    assert alice_client.get(reverse("api_jobs"), **bearer(tampered)).status_code == 401


def test_a_bearer_header_outside_the_api_is_ignored(user, tmp_path) -> None:
    workspace = workspaces.personal_workspace(user)
    job = make_job(owner=user, workspace=workspace, database=str(tmp_path / "x.sqlite3"))
    _, plaintext = workspaces.token_create(user=user, workspace=workspace, name="ci")
    client = api_client()
    for response in (client.get(reverse("jobs"), **bearer(plaintext)),
                     client.get(reverse("api_tokens"), **bearer(plaintext))):
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    # Pages stay session-only: a token cannot run a job through the page, whatever its role.
    response = Client().post(reverse("job_run_now", args=[job.pk]), **bearer(plaintext))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert not JobRun.objects.exists()


def test_a_token_for_workspace_a_does_not_reach_workspace_b(user, other_user, workspace_b, tmp_path) -> None:
    Membership.objects.create(workspace=workspace_b, user=user, role=Membership.Role.EDITOR)
    job_b = make_job(owner=other_user, workspace=workspace_b, database=str(tmp_path / "b.sqlite3"), name="b")
    _, token_a = workspaces.token_create(user=user, workspace=workspaces.personal_workspace(user), name="a")
    _, token_b = workspaces.token_create(user=user, workspace=workspace_b, name="b")
    client = api_client()
    response = client.get(reverse("api_job_detail", args=[job_b.pk]), **bearer(token_a))
    assert response.status_code == 404 and response.json()["status"] == "error"
    assert client.get(reverse("api_jobs"), **bearer(token_a)).json()["jobs"] == []
    # The same user, with workspace B's token, does see it: the token's workspace decides.
    assert client.get(reverse("api_job_detail", args=[job_b.pk]), **bearer(token_b)).json()["job"]["name"] == "b"


def test_a_viewers_token_cannot_change_or_run_anything(user, other_user, workspace_b, sqlite_db) -> None:
    membership = Membership.objects.create(workspace=workspace_b, user=user, role=Membership.Role.VIEWER)
    job = make_job(owner=other_user, workspace=workspace_b, database=sqlite_db)
    conn = job.connection
    _, plaintext = workspaces.token_create(user=user, workspace=workspace_b, name="viewer")
    client, auth = api_client(), bearer(plaintext)
    assert client.get(reverse("api_job_detail", args=[job.pk]), **auth).status_code == 200  # reads are fine
    job_body = {"name": "new", "connection_id": conn.pk, "source_table": "t", "destination_dataset": "d",
                "destination_table": "n"}
    refused = [
        client.post(reverse("api_jobs"), job_body, content_type="application/json", **auth),
        client.post(reverse("api_connections"), {"name": "x", "engine": "sqlite", "database": sqlite_db},
                    content_type="application/json", **auth),
        client.patch(reverse("api_connection_detail", args=[conn.pk]), {"name": "renamed"},
                     content_type="application/json", **auth),
        client.delete(reverse("api_connection_detail", args=[conn.pk]), **auth),
        client.post(reverse("api_connection_test", args=[conn.pk]), **auth),
    ]
    for response in refused:
        assert response.status_code == 403 and "viewer" in response.json()["message"]
    assert list(EtlJob.objects.values_list("name", flat=True)) == ["j"]
    assert list(Connection.objects.values_list("name", flat=True)) == ["conn-j"]
    assert not JobRun.objects.exists()
    # The token acts with the owner's current role: promoted to editor, the same token may edit ...
    workspaces.member_set_role(membership=membership, role=Membership.Role.EDITOR, actor=other_user)
    response = client.patch(reverse("api_connection_detail", args=[conn.pk]), {"name": "renamed"},
                            content_type="application/json", **auth)
    assert response.status_code == 200 and Connection.objects.get().name == "renamed"
    # ... and once they leave the workspace it stops working at all (401, as for a revoked token).
    workspaces.member_remove(membership=membership, actor=other_user)
    assert client.get(reverse("api_jobs"), **auth).status_code == 401


def test_a_deactivated_users_token_answers_401(user) -> None:
    _, plaintext = workspaces.token_create(user=user, workspace=workspaces.personal_workspace(user), name="ci")
    user.is_active = False
    user.save()
    assert api_client().get(reverse("api_jobs"), **bearer(plaintext)).status_code == 401


def test_token_requests_are_not_logins_for_axes(client, user) -> None:
    from axes.models import AccessAttempt

    _, plaintext = workspaces.token_create(user=user, workspace=workspaces.personal_workspace(user), name="ci")
    for _ in range(10):
        assert api_client().get(reverse("api_jobs"), **bearer("etl_0123456789ab_" + "A" * 43)).status_code == 401
    assert not AccessAttempt.objects.exists()
    ok = client.post(reverse("login"), {"username": "alice", "password": "alice-password-123"},
                     REMOTE_ADDR="198.51.100.1")
    assert ok.status_code == 302  # not locked out by bad tokens
    assert "_auth_user_id" in client.session
    # And a password lockout does not stop a valid token: it is not a password login.
    for _ in range(10):
        Client().post(reverse("login"), {"username": "alice", "password": "wrong-guess"}, REMOTE_ADDR="203.0.113.7")
    assert Client().post(reverse("login"), {"username": "alice", "password": "alice-password-123"},
                         REMOTE_ADDR="203.0.113.7").status_code == 429
    assert api_client().get(reverse("api_jobs"), **bearer(plaintext)).status_code == 200


# --------------------------------------------------------------------------- the text never leaks


def test_the_token_never_appears_in_logs(alice_client, user, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    db_connection.force_debug_cursor = True  # log every SQL statement and its parameters too
    try:
        plaintext = create_on_page(alice_client)
        token = ApiToken.objects.get()
        client = api_client()
        assert client.get(reverse("api_jobs"), **bearer(plaintext)).status_code == 200
        assert client.post(reverse("api_jobs"), {"name": 1}, content_type="application/json",
                           **bearer(plaintext)).status_code == 400
        assert client.get(reverse("api_jobs"), **bearer(plaintext[:-1] + "-")).status_code == 401
        alice_client.post(reverse("api_token_revoke", args=[token.pk]))
        assert client.get(reverse("api_jobs"), **bearer(plaintext)).status_code == 401
    finally:
        db_connection.force_debug_cursor = False
    secret = plaintext[len(token.prefix) + 1:]
    assert any(r.name == "django.db.backends" for r in caplog.records)  # SQL was in fact logged
    assert any("Unauthorized" in r.getMessage() for r in caplog.records)  # and the 401s
    for record in caplog.records:
        text = record.getMessage() + repr(record.args) + repr(vars(record))
        assert secret not in text, record.name
    assert secret not in caplog.text


def test_the_token_never_appears_in_a_page_after_creation(alice_client, user) -> None:
    plaintext = create_on_page(alice_client)
    secret = plaintext.split("_", 2)[2]
    for name in ("api_tokens", "jobs", "connections", "workspace_members", "wizard:start"):
        response = alice_client.get(reverse(name), follow=True)
        assert response.status_code == 200, name
        assert secret not in response.content.decode(), name
    token = ApiToken.objects.get()
    revoked = alice_client.post(reverse("api_token_revoke", args=[token.pk]), follow=True).content.decode()
    assert secret not in revoked and "Revoked token" in revoked
    assert secret not in alice_client.get(reverse("api_jobs")).content.decode()
