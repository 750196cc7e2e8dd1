"""Error pages in the product's layout, and a favicon, so no browser request ends on a bare page or a 404."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.staticfiles import finders
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory
from django.urls import get_resolver, reverse

pytestmark = pytest.mark.django_db


def test_it_shows_a_styled_404_in_the_layout(alice_client) -> None:
    response = alice_client.get("/no-such-page/")
    html = response.content.decode()
    assert response.status_code == 404
    assert "Page not found" in html and "/no-such-page/" in html and 'data-testid="error-page"' in html
    assert "css/app.css" in html and 'data-testid="current-user"' in html  # the base layout, signed in
    assert f'href="{reverse("jobs")}"' in html


def test_it_shows_a_styled_404_for_a_missing_object(alice_client) -> None:
    response = alice_client.get(reverse("job_detail", args=[999999]))
    assert response.status_code == 404 and b'data-testid="error-page"' in response.content


def test_it_shows_a_styled_403(user) -> None:
    request = RequestFactory().get("/jobs/")
    request.user, request.scope = user, None
    response = get_resolver().resolve_error_handler(403)(request, PermissionDenied())
    html = response.content.decode()
    assert response.status_code == 403 and "Not allowed" in html and "css/app.css" in html


def test_it_shows_a_styled_500_without_a_request_context_or_the_database(django_assert_num_queries) -> None:
    request = RequestFactory().get("/jobs/")
    request.user = AnonymousUser()
    with django_assert_num_queries(0):
        response = get_resolver().resolve_error_handler(500)(request)
    html = response.content.decode()
    assert response.status_code == 500 and "Something went wrong" in html
    assert "css/app.css" in html and "favicon.svg" in html and "<script" not in html


def test_it_serves_a_favicon_to_anyone(client, alice_client) -> None:
    page = alice_client.get(reverse("jobs")).content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page
    for who in (client, alice_client):  # browsers ask for /favicon.ico by themselves, signed in or not
        response = who.get("/favicon.ico")
        assert response.status_code == 301 and response["Location"] == "/static/favicon.svg"
    icon = finders.find("favicon.svg")
    assert icon and open(icon, encoding="utf-8").read().startswith("<svg")
