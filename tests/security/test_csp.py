"""Content-Security-Policy: every HTML page carries it, and the pages need nothing it forbids."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from ml_platform.models import EtlJob, JobRun
from ml_platform.services import connections

pytestmark = pytest.mark.django_db

INLINE_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|\sstyle\s*=", re.IGNORECASE)
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
TEMPLATE_COMMENT = re.compile(r"\{#.*?#\}|\{% comment %\}.*?\{% endcomment %\}", re.DOTALL)


def policy(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.request['PATH_INFO']}"
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def assert_strict(response) -> None:
    assert response.status_code == 200, response.request["PATH_INFO"]
    csp = policy(response)
    scripts = csp.get("script-src", csp["default-src"])
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    assert csp["default-src"] == ["'self'"] and csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["base-uri"] == ["'self'"]
    assert csp["form-action"] == ["'self'"]
    assert "'unsafe-inline'" not in csp.get("style-src", []) + csp.get("style-src-attr", [])
    html = response.content.decode()
    path = response.request["PATH_INFO"]
    assert not INLINE_HANDLER.search(html), f"inline event handler on {path}: {INLINE_HANDLER.search(html)[0]}"
    assert not INLINE_SCRIPT.search(html), f"inline script on {path}"
    assert not INLINE_STYLE.search(html), f"inline style on {path}: {html[INLINE_STYLE.search(html).start() :][:120]}"
    assert "javascript:" not in html and "hx-on" not in html and "js:" not in html


def test_no_template_has_inline_script_or_style() -> None:
    """Every template, with the partials and states no page test renders: behaviour lives in static/js/app.js."""
    found = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = TEMPLATE_COMMENT.sub("", path.read_text())
        for pattern in (INLINE_HANDLER, INLINE_SCRIPT, INLINE_STYLE, re.compile(r"javascript:|hx-on|js:")):
            if match := pattern.search(text):
                found.append(f"{path.relative_to(TEMPLATES)}: {match[0][:80]}")
    assert len(list(TEMPLATES.rglob("*.html"))) > 20
    assert found == []


def test_the_login_page_has_a_strict_policy(client: Client) -> None:
    assert_strict(client.get(reverse("login")))


def test_every_page_has_a_strict_policy(alice_client, user, sqlite_source) -> None:
    sqlite_source.execute(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, amount REAL)", "INSERT INTO orders VALUES (1, 2.5)"
    )
    conn = connections.connection_create(owner=user, name="lite", **sqlite_source.as_connection_fields())
    job = EtlJob.objects.create(workspace=conn.workspace,
        owner=user,
        name="j",
        connection=conn,
        source_table="orders",
        selected_columns=["id", "amount"],
        destination_dataset="d",
        destination_table="t",
    )
    JobRun.objects.create(
        job=job,
        connection=conn,
        connection_name=conn.name,
        status=JobRun.Status.RUNNING,
        progress_rows=5,
        progress_total=10,
    )
    for name, args in [
        ("jobs", []),
        ("job_detail", [job.pk]),
        ("connections", []),
        ("connection_create", []),
        ("connection_edit", [conn.pk]),
    ]:
        assert_strict(alice_client.get(reverse(name, args=args)))
    assert alice_client.post(reverse("wizard:step", args=[1]), {"connection": conn.pk}).status_code == 302
    assert alice_client.post(reverse("wizard:step", args=[2]), {"table": "orders"}).status_code == 302
    for n in (1, 2, 3):
        assert_strict(alice_client.get(reverse("wizard:step", args=[n])))
