"""Login everywhere; owner-scoped objects; JSON 401 for the anonymous API."""

import pytest
from django.urls import reverse

from ml_platform import services
from ml_platform.models import EtlJob


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["jobs", "connections", "wizard:start"])
def test_it_redirects_anonymous_pages_to_login(client, name: str) -> None:
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_it_answers_anonymous_api_with_401_json(client) -> None:
    response = client.get(reverse("api_jobs"))
    assert response.status_code == 401
    assert response.json() == {"status": "error", "message": "Authentication required", "details": []}


@pytest.mark.django_db
def test_it_serves_the_login_page(client) -> None:
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b'name="password"' in response.content


@pytest.mark.django_db
def test_it_hides_another_users_job(client, user, other_user) -> None:
    conn = services.connection_create(owner=user, name="c", engine="sqlite", database="/tmp/x.sqlite3")
    job = EtlJob.objects.create(workspace=conn.workspace, owner=user, name="j", connection=conn, source_table="t",
                                destination_dataset="d", destination_table="t")
    client.force_login(other_user)
    response = client.get(reverse("api_job_detail", args=[job.pk]))
    assert response.status_code == 404
    assert response.json()["status"] == "error"
    assert client.get(reverse("api_jobs")).json()["jobs"] == []
    client.force_login(user)
    assert client.get(reverse("api_job_detail", args=[job.pk])).json()["job"]["name"] == "j"


@pytest.mark.django_db
def test_it_renders_navigation_and_htmx_csrf_header(alice_client) -> None:
    html = alice_client.get(reverse("jobs")).content.decode()
    for label in ("Jobs", "Connections", "New ETL job"):
        assert f">{label}</a>" in html
    assert "hx-headers='{\"X-CSRFToken\"" in html
    assert "htmx" in html and "/static/vendor/bootstrap/bootstrap.min.css" in html
