"""Test connection without JavaScript: a whole page with the result in it, never a bare fragment."""

from __future__ import annotations

import pytest
from django.urls import reverse

from ml_platform.models import Connection
from ml_platform.services import connections
from tests.fixtures import HX
from tests.plugins.harness import SECRET

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_it_answers_a_test_without_javascript_with_the_connection_list_and_the_result(alice_client,
                                                                                        pg_conn) -> None:
    response = alice_client.post(reverse("connection_test", args=[pg_conn.pk]))
    html = response.content.decode()
    assert response.status_code == 200 and html.startswith("<!doctype html>")
    assert 'id="connections-table"' in html and "Connection &#x27;pg&#x27; works: PostgreSQL" in html
    assert SECRET not in html
    fragment = alice_client.post(reverse("connection_test", args=[pg_conn.pk]), headers=HX).content.decode()
    assert "<!doctype" not in fragment and "Connected: PostgreSQL" in fragment  # htmx still swaps the cell


def test_it_answers_a_failed_test_without_javascript_with_the_error_on_the_list(alice_client, pg_conn) -> None:
    connections.connection_update(connection=pg_conn, port=1)
    html = alice_client.post(reverse("connection_test", args=[pg_conn.pk])).content.decode()
    assert html.startswith("<!doctype html>") and "alert-danger" in html and "failed:" in html
    assert SECRET not in html


def test_it_answers_the_form_test_without_javascript_with_the_form_as_typed(alice_client, pg_source,
                                                                            pg_role) -> None:
    form_page = alice_client.get(reverse("connection_create")).content.decode()
    # Without JavaScript, the Test button must submit somewhere (a type="button" would do nothing).
    assert f'type="submit" formaction="{reverse("connection_test_unsaved")}"' in form_page
    typed = {"name": "", "engine": "postgresql", "host": pg_source.host, "port": pg_source.port,
             "database": pg_source.database, "username": pg_role, "password": SECRET, "options": "{}"}
    response = alice_client.post(reverse("connection_test_unsaved"), typed)
    html = response.content.decode()
    assert response.status_code == 200 and html.startswith("<!doctype html>")
    assert 'id="connection-form"' in html and f'value="{pg_source.host}"' in html and f'value="{pg_role}"' in html
    assert 'data-testid="test-ok"' in html and "Connected: PostgreSQL" in html
    assert "This field is required" not in html  # no name yet: that is for Save to say, not the test
    assert SECRET not in html and 'data-testid="password-again"' in html
    assert not Connection.objects.exists()


def test_it_answers_an_invalid_form_test_without_javascript_with_the_errors_in_place(alice_client) -> None:
    response = alice_client.post(reverse("connection_test_unsaved"), {
        "name": "x", "engine": "postgresql", "host": "", "port": "5432", "database": "db", "options": "{}"})
    html = response.content.decode()
    assert response.status_code == 200 and html.startswith("<!doctype html>")
    assert 'data-testid="test-error"' in html and "Enter the database host" in html
