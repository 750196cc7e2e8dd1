"""The OpenAPI document at /api/openapi.json and its Swagger UI at /api/docs: every endpoint, every method."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from tests.security.test_security_access import ACCESS
from tests.security.urlwalk import all_routes

pytestmark = pytest.mark.django_db

DOC_ROUTES = {"api_docs", "api_openapi"}


def openapi_path(route: str) -> str:
    """`api/etl/jobs/<int:job_id>/` -> `/api/etl/jobs/{job_id}/`."""
    return "/" + re.sub(r"<(?:[^>:]+:)?([^>]+)>", r"{\1}", route)


def test_it_documents_every_api_endpoint_and_method(alice_client) -> None:
    response = alice_client.get(reverse("api_openapi"))
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
    document = response.json()
    assert document["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    served = {(openapi_path(r.route), method) for r in all_routes() if r.is_api and r.key not in DOC_ROUTES
              for method in ACCESS[r.key].methods}
    assert served and documented == served
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation.get("summary"), f"{method.upper()} {path} has no summary"


def test_it_documents_the_request_bodies_and_refuses_unknown_fields(alice_client) -> None:
    document = alice_client.get(reverse("api_openapi")).json()
    schemas = document["components"]["schemas"]
    job_in = schemas["JobIn"]
    assert job_in["additionalProperties"] is False
    assert {"validate_data", "source_columns", "columns", "connection_id", "source_table"} <= set(job_in["properties"])
    assert schemas["JobPatchIn"]["additionalProperties"] is False
    assert "add_columns" in schemas["JobPatchIn"]["properties"]
    assert set(schemas["ReconnectIn"]["properties"]) == {"connection_id", "source_table"}
    assert "password" in schemas["ConnectionIn"]["properties"]


def test_it_serves_the_swagger_ui_from_our_own_static_files(alice_client) -> None:
    page = alice_client.get(reverse("api_docs"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html and "cdn" not in html.lower()
    assert reverse("api_openapi") in html  # the UI reads our document
    assert 'data-api-csrf="true"' in html and 'data-csrf-token=""' not in html  # "Try it out" writes need it
    assert "'self'" in page["Content-Security-Policy"]


def test_the_documents_need_a_login_and_only_answer_get(client, alice_client) -> None:
    for name in DOC_ROUTES:
        assert Client().get(reverse(name)).status_code == 401
        assert alice_client.post(reverse(name)).status_code == 405
