"""The Django fixtures every test directory shares, a pytest plugin (`-p tests.fixtures` in pytest.ini).

- `user` (alice) and `other_user` (mallory), each the admin of a personal workspace; `alice_client`.
- `source`: the usual source table, public.orders on a throw-away PostgreSQL database.
- `connection`: alice's connection "pg main" to it; `pg_conn`: alice's connection "pg" as a
  password-checked role (harness `pg_role`, password `SECRET`) that reads public.items.
- `HX`: the header htmx sends, for a test that asks for a partial.

Loaded before Django is set up: the product is imported inside the fixtures. The service harness
(emulator, source databases, worker, Chromium) is tests/plugins/harness.py.
"""

from __future__ import annotations

import pytest

from tests.plugins.harness import SECRET

HX = {"HX-Request": "true"}

# --------------------------------------------------------------------------- users


@pytest.fixture
def user(django_user_model):
    """alice, admin of her own workspace "alice"."""
    from ml_platform.services import workspaces

    alice = django_user_model.objects.create_user(username="alice", password="alice-password-123")
    workspaces.personal_workspace(alice)
    return alice


@pytest.fixture
def other_user(django_user_model):
    """mallory, admin of her own workspace "mallory" and in no other."""
    from ml_platform.services import workspaces

    mallory = django_user_model.objects.create_user(username="mallory", password="mallory-password-123")
    workspaces.personal_workspace(mallory)
    return mallory


@pytest.fixture
def alice_client(client, user):
    client.force_login(user)
    return client


# --------------------------------------------------------------------------- a source and its connections


@pytest.fixture
def source(pg_source):
    """public.orders (id bigint PRIMARY KEY, amount numeric(12,2), note text, created_at timestamptz): ids 1-20,
    amount = id * 2.5, note 'n<id>'."""
    pg_source.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2), note text, "
        "created_at timestamptz DEFAULT now())",
        "INSERT INTO orders (id, amount, note) SELECT g, g * 2.5, 'n' || g FROM generate_series(1, 20) g",
    )
    return pg_source


@pytest.fixture
def connection(user, source):
    """alice's connection "pg main" to `source` (created by her: the audit trail names her)."""
    from ml_platform.services import connections

    return connections.connection_create(owner=user, actor=user, name="pg main", **source.as_connection_fields())


@pytest.fixture
def pg_conn(user, pg_source, pg_role):
    """alice's connection "pg" as a password-checked role (password SECRET) that reads public.items."""
    from ml_platform.services import connections

    return connections.connection_create(owner=user, name="pg", engine="postgresql", host=pg_source.host,
                                         port=pg_source.port, database=pg_source.database, username=pg_role,
                                         password=SECRET)
