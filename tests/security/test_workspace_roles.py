"""Roles in plain terms: a viewer looks, an editor changes jobs and connections, an admin runs the workspace."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from django.urls import reverse

from ml_platform.etl.types import BigQueryField
from ml_platform.models import Connection, EtlJob, JobRun, Membership, Workspace, WorkspaceDataset
from ml_platform.services import connections, jobs, workspaces
from tests.fixtures import HX
from wizard.models import WizardDraft

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

VIEWER, EDITOR, ADMIN = Membership.Role.VIEWER, Membership.Role.EDITOR, Membership.Role.ADMIN


@dataclass
class Team:
    workspace: Workspace
    connection: Connection
    spare: Connection  # a second connection with the same table, for Reconnect
    job: EtlJob
    run: JobRun
    users: dict[str, object]
    source_dir: Path

    def edit_form(self, name: str) -> dict:
        return {"name": name, "columns": ["id", "amount"], "load_strategy": "append", "cursor_column": "",
                "preset": "manual", "cron": "", "timezone": "UTC"}

    def new_connection_form(self, name: str) -> dict:
        return {"name": name, "engine": "sqlite", "host": "", "port": "", "database": str(self.source_dir / "a.db"),
                "username": "", "password": "", "options": "{}"}


@pytest.fixture
def team(user, django_user_model, tmp_path, bq, bq_dataset, bq_settings) -> Team:
    """alice's workspace (alice admin) with a viewer and an editor, a job with a failed run."""
    import sqlite3

    for name in ("a.db", "b.db"):
        db = sqlite3.connect(tmp_path / name)
        db.executescript("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount REAL); INSERT INTO orders VALUES (1, 1.5);")
        db.close()
    workspace = workspaces.personal_workspace(user)
    connection = connections.connection_create(owner=user, workspace=workspace, name="main", engine="sqlite",
                                               database=str(tmp_path / "a.db"))
    spare = connections.connection_create(owner=user, workspace=workspace, name="spare", engine="sqlite",
                                          database=str(tmp_path / "b.db"))
    bq.create_table(bq_dataset, "orders", [BigQueryField("id", "INT64"), BigQueryField("amount", "FLOAT64")])
    job = EtlJob.objects.create(workspace=workspace, owner=user, name="orders job", connection=connection,
                                source_table="orders", selected_columns=["id", "amount"],
                                column_mapping={"id": "id", "amount": "amount"}, destination_dataset=bq_dataset,
                                destination_table="orders", destination_mode="existing", load_strategy="append")
    run = JobRun.objects.create(job=job, connection=connection, connection_name="main",
                                status=JobRun.Status.FAILED, error="the-first-run-failed")
    users = {ADMIN: user}
    for role, username in ((VIEWER, "victor"), (EDITOR, "edith")):
        users[role] = django_user_model.objects.create_user(username=username, password="x-password-123")
        Membership.objects.create(workspace=workspace, user=users[role], role=role)
    return Team(workspace, connection, spare, job, run, users, tmp_path)


def state(team: Team) -> tuple:
    job = EtlJob.objects.filter(pk=team.job.pk).values("name", "connection_id", "status").first()
    return (job, JobRun.objects.count(), Connection.objects.count(), EtlJob.objects.count(),
            sorted(Membership.objects.values_list("user__username", "role")),
            sorted(WorkspaceDataset.objects.values_list("dataset", flat=True)))


def assert_forbidden(response, role: str, where: str) -> None:
    assert response.status_code == 403, f"{where}: {response.status_code}"
    if response["Content-Type"].startswith("application/json"):
        assert f"is {role}" in response.json()["message"], where
    else:
        assert f"is {role}: this needs" in response.content.decode(), where


def editor_actions(client, team: Team) -> list[tuple[str, object]]:
    """The changes an editor makes, in an order that leaves each one something to act on."""
    job = team.job.pk
    return [
        ("Edit save", lambda: client.post(reverse("job_edit", args=[job]), team.edit_form("renamed job"))),
        ("Reconnect", lambda: client.post(reverse("job_reconnect", args=[job]),
                                          {"connection": team.spare.pk, "table": "orders", "confirm": "1"})),
        ("Run Now", lambda: client.post(reverse("job_run_now", args=[job]), headers=HX)),
        ("wizard submit", lambda: client.post(reverse("wizard:step", args=[1]), {"connection": team.connection.pk})),
        ("connection create", lambda: client.post(reverse("connection_create"), team.new_connection_form("third"))),
        ("API job create", lambda: client.post(reverse("api_jobs"), {
            "name": "api job", "connection_id": team.connection.pk, "source_table": "orders",
            "destination_table": f"{team.job.destination_dataset}.api_orders"}, content_type="application/json")),
        ("Delete", lambda: client.post(reverse("job_delete", args=[job]))),
    ]


def admin_actions(client, team: Team, dataset: str) -> list[tuple[str, object]]:
    viewer = Membership.objects.get(user=team.users[VIEWER]).pk
    return [
        ("add member", lambda: client.post(reverse("member_add"), {"username": "newbie", "role": VIEWER})),
        ("change role", lambda: client.post(reverse("member_role", args=[viewer]), {"role": EDITOR})),
        ("create dataset", lambda: client.post(reverse("dataset_create"), {"dataset": dataset})),
        ("remove member", lambda: client.post(reverse("member_remove", args=[viewer]))),
    ]


def test_a_viewer_sees_the_jobs_and_runs_but_changes_nothing(client, team) -> None:
    client.force_login(team.users[VIEWER])
    jobs = client.get(reverse("jobs"))
    assert jobs.status_code == 200 and "orders job" in jobs.content.decode()
    detail = client.get(reverse("job_detail", args=[team.job.pk]))
    assert detail.status_code == 200 and "the-first-run-failed" in detail.content.decode()
    assert client.get(reverse("api_job_detail", args=[team.job.pk])).status_code == 200
    assert client.get(reverse("workspace_members")).status_code == 200
    draft_before = list(WizardDraft.objects.values_list("owner_id", "data"))
    before = state(team)
    for what, act in editor_actions(client, team) + admin_actions(client, team, "viewer_made_ds"):
        assert_forbidden(act(), VIEWER, what)
        assert state(team) == before, f"a viewer's {what} changed something"
    assert list(WizardDraft.objects.values_list("owner_id", "data")) == draft_before


def test_an_editor_runs_edits_reconnects_creates_and_deletes_but_does_not_administer(client, team, bq) -> None:
    client.force_login(team.users[EDITOR])
    results = {}
    for what, act in editor_actions(client, team):
        if what == "Delete":  # the queued run would refuse the delete: let it end first
            JobRun.objects.filter(status=JobRun.Status.QUEUED).update(status=JobRun.Status.FAILED)
        results[what] = act()
    assert results["Run Now"].status_code == 200
    assert results["Edit save"].status_code == 302
    assert results["Reconnect"].status_code == 302
    assert results["wizard submit"].status_code == 302
    assert WizardDraft.objects.get(owner=team.users[EDITOR]).data["connection_id"] == team.connection.pk
    assert results["connection create"].status_code == 302
    assert results["API job create"].status_code == 201, results["API job create"].content
    assert results["Delete"].status_code == 302
    assert JobRun.objects.filter(job_id=team.job.pk).exists() is False  # the job and its runs are gone
    assert not EtlJob.objects.filter(pk=team.job.pk).exists()
    assert EtlJob.objects.get(name="api job").workspace == team.workspace
    assert Connection.objects.get(name="third").workspace == team.workspace

    before = state(team)
    for what, act in admin_actions(client, team, "editor_made_ds"):
        assert_forbidden(act(), EDITOR, what)
    assert state(team) == before
    assert "editor_made_ds" not in bq.list_datasets()


def test_the_edits_really_happened_for_an_editor(client, team) -> None:
    client.force_login(team.users[EDITOR])
    actions = dict(editor_actions(client, team))
    assert actions["Edit save"]().status_code == 302
    assert actions["Reconnect"]().status_code == 302
    team.job.refresh_from_db()
    assert team.job.name == "renamed job" and team.job.connection_id == team.spare.pk
    assert actions["Run Now"]().status_code == 200
    assert JobRun.objects.filter(job=team.job, status=JobRun.Status.QUEUED).exists()
    # Reconnecting while that run is queued is refused in place (it was a 500).
    busy = client.post(reverse("job_reconnect", args=[team.job.pk]),
                       {"connection": team.connection.pk, "table": "orders", "confirm": "1"})
    assert busy.status_code == 409 and "reconnect it after the run" in busy.content.decode()
    team.job.refresh_from_db()
    assert team.job.connection_id == team.spare.pk


def test_only_an_admin_adds_members_changes_roles_and_creates_datasets(client, django_user_model, team, bq) -> None:
    django_user_model.objects.create_user(username="newbie", password="x-password-123")
    dataset = f"admin_made_{team.job.pk}_{team.workspace.pk}"
    client.force_login(team.users[ADMIN])
    try:
        results = {what: act() for what, act in admin_actions(client, team, dataset)}
        assert {what: r.status_code for what, r in results.items()} == {
            "add member": 302, "change role": 302, "create dataset": 302, "remove member": 302}
        assert Membership.objects.get(user__username="newbie").role == VIEWER
        assert not Membership.objects.filter(user=team.users[VIEWER]).exists()
        assert WorkspaceDataset.objects.get(dataset=dataset).workspace == team.workspace
        assert dataset in bq.list_datasets()
    finally:
        bq.delete_dataset(dataset)


def test_the_last_admin_cannot_be_demoted_or_removed(client, team) -> None:
    alice = team.users[ADMIN]
    own = Membership.objects.get(user=alice, workspace=team.workspace)
    client.force_login(alice)
    for name, data in (("member_role", {"role": EDITOR}), ("member_role", {"role": VIEWER}), ("member_remove", {})):
        response = client.post(reverse(name, args=[own.pk]), data, follow=True)
        assert "A workspace needs at least one admin." in response.content.decode(), name
        own.refresh_from_db()
        assert own.role == ADMIN, name
    # With a second admin, the first may step down.
    edith = Membership.objects.get(user=team.users[EDITOR])
    assert client.post(reverse("member_role", args=[edith.pk]), {"role": ADMIN}).status_code == 302
    assert client.post(reverse("member_role", args=[own.pk]), {"role": EDITOR}).status_code == 302
    own.refresh_from_db()
    assert own.role == EDITOR
    # ...and then she is an editor: the admin pages refuse her.
    assert_forbidden(client.post(reverse("member_role", args=[edith.pk]), {"role": VIEWER}), EDITOR, "demoted admin")
    assert Membership.objects.get(pk=edith.pk).role == ADMIN


def test_switching_to_a_workspace_the_user_is_not_in_is_a_404(client, team, other_user) -> None:
    theirs = workspaces.personal_workspace(other_user)
    client.force_login(team.users[ADMIN])
    client.get(reverse("jobs"))
    for value in (theirs.pk, 999_999, "nope", ""):
        assert client.post(reverse("workspace_switch"), {"workspace": value}).status_code == 404, value
    assert client.session.get("workspace_id") in (None, team.workspace.pk)
    # Once mallory adds her as a viewer, she may switch, and is a viewer there.
    Membership.objects.create(workspace=theirs, user=team.users[ADMIN], role=VIEWER)
    assert client.post(reverse("workspace_switch"), {"workspace": theirs.pk}).status_code == 302
    assert client.session["workspace_id"] == theirs.pk
    jobs = client.get(reverse("jobs"))
    assert jobs.status_code == 200 and "orders job" not in jobs.content.decode()
    assert_forbidden(client.post(reverse("connection_create"), team.new_connection_form("x")), VIEWER, "switched")
    # A workspace she is later removed from falls back to her first one, never a stale role.
    Membership.objects.filter(workspace=theirs, user=team.users[ADMIN]).delete()
    jobs = client.get(reverse("jobs"))
    assert jobs.status_code == 200 and "orders job" in jobs.content.decode()


def test_reconnect_never_takes_another_workspaces_connection(user, other_user) -> None:
    """The service itself refuses, whatever a view forgets: a job only reads through its own workspace's connections."""
    from django.http import Http404

    mine = connections.connection_create(owner=user, name="mine", engine="postgresql", host="127.0.0.1", port=5432,
                                         database="db", username="u")
    theirs = connections.connection_create(owner=other_user, name="theirs", engine="postgresql", host="127.0.0.1",
                                           port=5432, database="db", username="u")
    job = EtlJob.objects.create(workspace=mine.workspace, owner=user, name="j", connection=mine, source_table="t",
                                destination_dataset="d", destination_table="t")
    with pytest.raises(Http404):
        jobs.job_reconnect(job=job, connection=theirs, source_schema="", source_table="t", source_columns=[],
                           actor=user)
    job.refresh_from_db()
    assert job.connection_id == mine.pk
