"""The data migration to workspaces: every existing user gets a personal workspace (admin) holding exactly
their connections and jobs; a dataset loaded by several users' jobs goes to the earliest job's workspace."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = [pytest.mark.django_db(transaction=True)]

BEFORE = [("ml_platform", "0001_initial")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


def test_it_gives_every_user_a_personal_workspace_with_their_objects(transactional_db) -> None:
    leaves = latest()
    apps = migrate(BEFORE)
    try:
        User = apps.get_model("auth", "User")
        Connection = apps.get_model("ml_platform", "Connection")
        EtlJob = apps.get_model("ml_platform", "EtlJob")
        alice = User.objects.create(username="alice")
        bob = User.objects.create(username="bob")
        User.objects.create(username="nobody")  # owns nothing: still gets a workspace

        def conn(owner, name):
            return Connection.objects.create(owner=owner, name=name, engine="sqlite", database=f"/tmp/{name}.db")

        def job(owner, name, connection_, dataset, created):
            made = EtlJob.objects.create(owner=owner, name=name, connection=connection_, source_table="t",
                                         destination_dataset=dataset, destination_table=name)
            EtlJob.objects.filter(pk=made.pk).update(created_at=created)  # auto_now_add: set afterwards
            return made

        a_conn, b_conn = conn(alice, "a-conn"), conn(bob, "b-conn")
        a_spare = conn(alice, "a-spare")
        # The shared dataset: bob's job is the earliest, although alice is the older user.
        a_shared = job(alice, "a-shared", a_conn, "shared_ds", datetime(2026, 3, 1, tzinfo=UTC))
        b_shared = job(bob, "b-shared", b_conn, "shared_ds", datetime(2026, 1, 1, tzinfo=UTC))
        a_own = job(alice, "a-own", a_conn, "alice_ds", datetime(2026, 2, 1, tzinfo=UTC))
        b_own = job(bob, "b-own", b_conn, "bob_ds", datetime(2026, 4, 1, tzinfo=UTC))
        # Same job name for two users: unique per owner before, per workspace after.
        a_same = job(alice, "same-name", a_conn, "alice_ds", datetime(2026, 5, 1, tzinfo=UTC))
        b_same = job(bob, "same-name", b_conn, "bob_ds", datetime(2026, 5, 1, tzinfo=UTC))
    finally:
        apps = migrate(leaves)

    Workspace = apps.get_model("ml_platform", "Workspace")
    Membership = apps.get_model("ml_platform", "Membership")
    WorkspaceDataset = apps.get_model("ml_platform", "WorkspaceDataset")
    Connection = apps.get_model("ml_platform", "Connection")
    EtlJob = apps.get_model("ml_platform", "EtlJob")

    assert sorted(Workspace.objects.values_list("name", flat=True)) == ["alice", "bob", "nobody"]
    for username in ("alice", "bob", "nobody"):
        memberships = list(Membership.objects.filter(user__username=username).values_list("workspace__name", "role"))
        assert memberships == [(username, "admin")], username
    assert Membership.objects.count() == 3

    def objects_of(name):
        return (set(Connection.objects.filter(workspace__name=name).values_list("pk", flat=True)),
                set(EtlJob.objects.filter(workspace__name=name).values_list("pk", flat=True)))

    assert objects_of("alice") == ({a_conn.pk, a_spare.pk}, {a_shared.pk, a_own.pk, a_same.pk})
    assert objects_of("bob") == ({b_conn.pk}, {b_shared.pk, b_own.pk, b_same.pk})
    assert objects_of("nobody") == (set(), set())
    assert not Connection.objects.filter(workspace=None).exists() and not EtlJob.objects.filter(workspace=None).exists()

    datasets = dict(WorkspaceDataset.objects.values_list("dataset", "workspace__name"))
    assert datasets == {"shared_ds": "bob", "alice_ds": "alice", "bob_ds": "bob"}


def test_the_wizard_migrations_do_not_depend_on_the_workspace_migrations() -> None:
    """Going back to 0001 and forward again must not drag the wizard's tables along (they hold user drafts)."""
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(BEFORE)
    assert plan, "nothing to unapply: the workspace migrations are missing"
    assert {m.app_label for m, backwards in plan} == {"ml_platform"}
    assert all(backwards for _, backwards in plan)
