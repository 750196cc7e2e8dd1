"""Invalid input everywhere: a clear 4xx JSON error from the API, an inline form error on pages, never a 500."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml_platform.etl.types import BigQueryField
from ml_platform.models import Connection, EtlJob
from ml_platform.services import connections
from tests.fixtures import HX

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

MB = "x" * 1_000_000
HUGE_INT = 10**30
FUZZ = settings(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
INLINE_ERROR = ("invalid-feedback", 'role="alert"')
# Identifiers BigQuery refuses (spaces, unicode, punctuation, over 1024 characters, NUL).
BAD_TABLE_IDS = ["has space", "ünïcødé", "t" * 1025, "a;b", "a\x00b", "drop table x; --", ""]
BAD_DATASET_IDS = ["a;b", "has space", "ünïcødé", "d" * 1025, "a\x00b", "a.b"]
BAD_CRONS = ["bogus", "* * * *", "* * * * * * *", "61 * * * *", "*/0 * * * *", "@yearly-ish", "\x00", MB[:5000]]
BAD_TIMEZONES = ["Nowhere/City", "../../etc/passwd", "UTC\x00", "+25:00", MB[:2000]]
# JSON values of every type: each test picks those that are wrong for a field.
JSON_VALUES: dict[str, Any] = {"null": None, "bool": True, "int": 7, "float": 1.5, "str": "s", "list": ["s"],
                               "object": {"a": 1}}


def json_post(client, url: str, body: Any, *, method: str = "post", content_type: str = "application/json"):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return getattr(client, method)(url, data, content_type=content_type)


def assert_api_error(response, where: str, status: int | None = None) -> dict:
    assert 400 <= response.status_code < 500, f"{where}: {response.status_code} {response.content[:300]!r}"
    if status is not None:
        assert response.status_code == status, f"{where}: {response.status_code} {response.content[:300]!r}"
    assert response["Content-Type"].startswith("application/json"), where
    body = response.json()
    assert body["status"] == "error" and body["message"], f"{where}: {body}"
    return body


def assert_inline_error(response, where: str, text: str | None = None) -> None:
    assert response.status_code in (200, 400), f"{where}: {response.status_code} {response.content[:300]!r}"
    html = response.content.decode(errors="replace")
    assert any(marker in html for marker in INLINE_ERROR), f"{where}: no error shown"
    if text is not None:
        assert text in html, f"{where}: {text!r} not shown"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def connection(user, source) -> Connection:
    return connections.connection_create(owner=user, name="shop", **source.as_connection_fields())


@pytest.fixture
def dest(bq, bq_dataset, bq_settings) -> str:
    bq.create_table(bq_dataset, "orders", [BigQueryField("id", "INT64"), BigQueryField("amount", "NUMERIC"),
                                           BigQueryField("note", "STRING")])
    return bq_dataset


@pytest.fixture
def job(user, connection, dest) -> EtlJob:
    return EtlJob.objects.create(workspace=connection.workspace,
        owner=user, name="orders", connection=connection, source_schema="public", source_table="orders",
        selected_columns=["id", "amount"], column_mapping={"id": "id", "amount": "amount"},
        destination_dataset=dest, destination_table="orders", destination_mode="existing", load_strategy="append",
    )


@pytest.fixture
def wiz(alice_client, connection, dest):
    """A client whose wizard draft has steps 1-3 done."""
    step = lambda n: reverse("wizard:step", args=[n])  # noqa: E731
    assert alice_client.post(step(1), {"connection": connection.pk}).status_code == 302
    assert alice_client.post(step(2), {"table": "public.orders"}).status_code == 302
    assert alice_client.post(step(3), {"columns": ["id", "amount", "note", "created_at"]}).status_code == 302
    return alice_client


@pytest.fixture
def at_step_five(wiz, dest):
    """The wizard draft has steps 1-4 done (a new table): step 5 names and schedules the job."""
    new = {"destination_mode": "new", "dataset": dest, "new_table": "fresh", "load_strategy": "replace"}
    assert wiz.post(reverse("wizard:step", args=[4]), new).status_code == 302
    return wiz


def conn_fields(source, **overrides) -> dict:
    return {"name": "other", "engine": "postgresql", "host": source.host, "port": source.port,
            "database": source.database, "username": source.username, "password": "", "options": "{}", **overrides}


# The connection form's invalid values (form-encoded, as a browser sends them), with a word of the error.
BAD_CONNECTION_FIELDS = [
    ("name", "", "required"), ("name", MB, "at most"), ("name", "a\x00b", "Null characters"),
    ("name", "shop", "already has"),
    ("engine", "oracle", "valid choice"), ("engine", "", "required"),
    ("host", MB, "at most"), ("host", "postgres://u:pw@db/x", "not a connection URL"), ("host", "", "host"),
    ("port", "-1", "Port"), ("port", "0", "Port"), ("port", "65536", "Port"), ("port", str(HUGE_INT), None),
    ("port", "abc", "whole number"), ("port", "1e3", "whole number"),
    ("database", "", "required"), ("database", MB, "at most"),
    ("username", MB, "at most"), ("password", MB, "at most"),
    ("options", "not json", "JSON"), ("options", "[1, 2]", "JSON object"), ("options", '"text"', "JSON object"),
    ("options", "[" * 100_000, "JSON"), ("options", MB, "JSON"),
]


# --------------------------------------------------------------------------- connection pages


def test_it_shows_inline_errors_for_every_invalid_connection_field(alice_client, connection, source) -> None:
    for field, value, text in BAD_CONNECTION_FIELDS:
        data = conn_fields(source, **{field: value})
        where = f"{field}={value[:40]!r}"
        assert_inline_error(alice_client.post(reverse("connection_create"), data), f"create {where}", text)
        if field != "name" or value != "shop":
            edit = alice_client.post(reverse("connection_edit", args=[connection.pk]), {**data, "name": "shop"}
                                     if field != "name" else data)
            assert_inline_error(edit, f"edit {where}", text)
        tested = alice_client.post(reverse("connection_test_unsaved"), data, headers=HX)
        assert tested.status_code == 200, f"test {where}: {tested.status_code}"
        result = tested.content.decode()
        if field == "name":  # a test needs no (unique) name: the typed connection itself is tested
            assert 'data-testid="test-ok"' in result, f"test {where}: {result[:300]}"
        else:  # the field's error in place of the result, and no connection tried
            assert 'data-testid="test-error"' in result, f"test {where}: {result[:300]}"
            assert text is None or text in result, f"test {where}: {text!r} not in {result[:300]}"
    assert list(Connection.objects.values_list("name", flat=True)) == ["shop"]
    connection.refresh_from_db()
    assert connection.host == source.host and connection.port == source.port


def test_it_answers_unknown_or_malformed_connection_ids_with_404(alice_client, source) -> None:
    for value in ("999999", "abc", "-1", "1.5", str(HUGE_INT), "1\x00"):
        response = alice_client.post(reverse("connection_test_unsaved"), conn_fields(source, connection_id=value),
                                     headers=HX)
        assert response.status_code == 404, f"connection_id={value!r}: {response.status_code}"
    # No id at all is no connection to look up: the typed values of a new connection are tested.
    unsaved = alice_client.post(reverse("connection_test_unsaved"), conn_fields(source, connection_id=""), headers=HX)
    assert unsaved.status_code == 200 and b'data-testid="test-ok"' in unsaved.content
    assert alice_client.get(f"/connections/{HUGE_INT}/edit/").status_code == 404
    assert alice_client.post(f"/connections/{HUGE_INT}/test/").status_code == 404


# --------------------------------------------------------------------------- connection API


def test_it_rejects_invalid_connection_json_with_a_4xx_error(alice_client, connection, source) -> None:
    url = reverse("api_connections")
    detail = reverse("api_connection_detail", args=[connection.pk])
    base = {**conn_fields(source), "options": {}}
    wrong_types = {
        "name": ["int", "float", "bool", "list", "object"], "engine": ["int", "list", "object", "bool"],
        "host": ["int", "list", "object", "bool"], "port": ["str", "float", "bool", "list", "object"],
        "database": ["null", "int", "list", "object"], "username": ["int", "list", "object"],
        "password": ["int", "list", "object", "bool"], "options": ["str", "int", "list", "bool"],
    }
    for field, kinds in wrong_types.items():
        for kind in kinds:
            body = {**base, field: JSON_VALUES[kind]}
            assert_api_error(json_post(alice_client, url, body), f"POST {field}={kind}", 400)
            assert_api_error(json_post(alice_client, detail, {field: JSON_VALUES[kind]}, method="patch"),
                             f"PATCH {field}={kind}", 400)
    for field, value, _ in BAD_CONNECTION_FIELDS:
        if field in ("port", "options"):
            continue  # typed above: JSON has numbers and objects for these
        assert_api_error(json_post(alice_client, url, {**base, field: value}), f"POST {field}={value[:40]!r}", 400)
    for port in (-1, 0, 65536, HUGE_INT):
        assert_api_error(json_post(alice_client, url, {**base, "port": port}), f"POST port={port}", 400)
        assert_api_error(json_post(alice_client, detail, {"port": port}, method="patch"), f"PATCH port={port}", 400)
    deep = '{"options": ' + "[" * 100_000 + "]" * 100_000 + "}"
    for raw in ("{", "[1]", "null", '"text"', "{'single': 'quotes'}", deep, b"\xff\xfe", MB):
        assert_api_error(json_post(alice_client, url, raw), f"POST body {str(raw)[:30]!r}", 400)
        assert_api_error(json_post(alice_client, detail, raw, method="patch"), f"PATCH body {str(raw)[:30]!r}", 400)
    form_encoded = "name=x&engine=sqlite&database=/tmp/x.db"
    for content_type in ("application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"):
        assert_api_error(json_post(alice_client, url, form_encoded, content_type=content_type),
                         f"POST as {content_type}")
        assert_api_error(json_post(alice_client, url, json.dumps(base), content_type=content_type),
                         f"POST JSON as {content_type}")
    assert list(Connection.objects.values_list("name", flat=True)) == ["shop"]
    for bad_id in (999999, HUGE_INT):
        for method in ("get", "patch", "delete"):
            assert_api_error(getattr(alice_client, method)(f"/api/etl/connections/{bad_id}/"),
                             f"{method} connection {bad_id}", 404)


def test_it_rejects_invalid_tables_and_limits_on_the_connection_api(alice_client, connection) -> None:
    for table in ["has space", "ünïcødé", "t" * 1025, "a;b", "a\x00b", "public.", "nope.orders", "x" * 100_000]:
        for name in ("api_connection_columns", "api_connection_preview"):
            url = reverse(name, args=[connection.pk, "placeholder"]).replace("placeholder", table)
            assert_api_error(alice_client.get(url), f"{name} table={table[:30]!r}", 404)
    preview = reverse("api_connection_preview", args=[connection.pk, "public.orders"])
    for limit in ("abc", "-1", "0", "1001", str(HUGE_INT), "", "1.5"):
        assert_api_error(alice_client.get(preview, {"limit": limit}), f"limit={limit!r}", 400)
    assert alice_client.get(preview, {"limit": "2"}).json()["rows"][1][0] == 2


# --------------------------------------------------------------------------- BigQuery API


def test_it_rejects_invalid_dataset_names(alice_client, dest) -> None:
    for dataset in BAD_DATASET_IDS + ["x" * 100_000]:
        url = reverse("api_dataset_tables", args=["placeholder"]).replace("placeholder", dataset)
        assert_api_error(alice_client.get(url), f"dataset={dataset[:30]!r}", 404)


def validate_body(connection: Connection, dest: str, **overrides) -> dict:
    return {"connection_id": connection.pk, "source_table": "public.orders", "destination_table": f"{dest}.orders",
            **overrides}


def test_it_rejects_invalid_compatibility_requests(alice_client, connection, dest) -> None:
    url = reverse("api_validate_schema_compatibility")
    assert json_post(alice_client, url, validate_body(connection, dest)).status_code == 200
    wrong_types = {
        "source_columns": ["str", "int", "object", "bool"], "destination_table": ["int", "list", "object", "null"],
        "load_strategy": ["int", "list", "null"], "merge_key": ["str", "int", "object"],
        "cursor_column": ["int", "list", "object"], "source_tag": ["int", "list"],
        "relax_required": ["str", "list", "object"], "connection_id": ["str", "float", "list", "object"],
        "source_table": ["int", "list", "object"], "dialect": ["int", "list"], "validate_data": ["str", "object"],
    }
    for field, kinds in wrong_types.items():
        for kind in kinds:
            body = validate_body(connection, dest, **{field: JSON_VALUES[kind]})
            assert_api_error(json_post(alice_client, url, body), f"{field}={kind}", 400)
    bad = {
        "destination_table": [f"{dest}.{t}" for t in BAD_TABLE_IDS] + [f"{d}.orders" for d in BAD_DATASET_IDS]
                             + ["nodot", "a.b.c", MB],
        "load_strategy": ["bogus", "REPLACE", ""], "dialect": ["oracle"], "source_tag": ["bad tag!", MB],
        "source_columns": [[{"name": 1, "type": "int"}], [{"name": "id"}], [{"name": "id", "type": "int", "x": 1}],
                           [{"name": MB, "type": "int"}], [{"name": "id", "type": MB}]],
        "connection_id": [999999, -1, HUGE_INT], "source_table": ["public.nope", MB, "a\x00b", "has space"],
        "merge_key": [[MB]], "cursor_column": [MB],
        "unknown_field": [1],
    }
    for field, values in bad.items():
        for value in values:
            body = validate_body(connection, dest, **{field: value})
            assert_api_error(json_post(alice_client, url, body), f"{field}={str(value)[:40]!r}")
    assert_api_error(json_post(alice_client, url, {"destination_table": f"{dest}.orders"}), "no source", 400)
    assert_api_error(json_post(alice_client, url, {"destination_table": f"{dest}.orders", "validate_data": True,
                                                   "source_columns": [{"name": "id", "type": "int"}]}),
                     "validate_data without a connection", 400)
    for raw in ("{", "[]", "null", "1", "[" * 100_000, b"\xff"):
        assert_api_error(json_post(alice_client, url, raw), f"body {str(raw)[:20]!r}", 400)
    assert_api_error(json_post(alice_client, url, json.dumps(validate_body(connection, dest)),
                               content_type="text/plain"), "text/plain")


def job_body(connection: Connection, dest: str, **overrides) -> dict:
    return {"name": "api job", "connection_id": connection.pk, "source_table": "public.orders",
            "destination_table": f"{dest}.fresh", **overrides}


def test_it_rejects_invalid_job_creation_requests(alice_client, connection, dest) -> None:
    url = reverse("api_jobs")
    wrong_types = {
        "name": ["int", "list", "object", "null"], "connection_id": ["str", "float", "list", "null"],
        "source_table": ["int", "list", "null"], "columns": ["str", "int", "object"],
        "use_existing_table": ["str", "list"], "schedule": ["int", "list", "object"],
        "schedule_timezone": ["int", "list"], "run_now": ["str", "object"], "clustering": ["str", "object"],
        "add_columns": ["str", "int"], "partition_field": ["int", "list"],
    }
    for field, kinds in wrong_types.items():
        for kind in kinds:
            response = json_post(alice_client, url, job_body(connection, dest, **{field: JSON_VALUES[kind]}))
            assert_api_error(response, f"{field}={kind}", 400)
    bad: dict[str, list] = {
        "name": ["", MB, "a\x00b"], "connection_id": [999999, -1, HUGE_INT],
        "source_table": ["public.nope", "", MB, "a\x00b"], "columns": [["nope"], [MB], []],
        "destination_table": [f"{dest}.{t}" for t in BAD_TABLE_IDS] + [f"{d}.t" for d in BAD_DATASET_IDS]
                             + ["nodot", f"{dest}.orders"],
        "load_strategy": ["bogus", ""], "schedule": BAD_CRONS + [MB], "schedule_timezone": BAD_TIMEZONES,
        "clustering": [["id", "amount", "note", "created_at", "id"], ["nope"]], "source_tag": ["bad tag!"],
        "merge_key": [["nope"], []], "cursor_column": ["nope", None], "partition_field": ["nope", MB, "note"],
    }
    for field, values in bad.items():
        for value in values:
            body = job_body(connection, dest, **{field: value})
            # A merge key or cursor column only counts for the strategy that uses it (any other field keeps the
            # default strategy: a null one would be the only error every body has).
            if strategy := {"merge_key": "merge", "cursor_column": "incremental"}.get(field):
                body.setdefault("load_strategy", strategy)
            assert_api_error(json_post(alice_client, url, body), f"{field}={str(value)[:40]!r}")
    existing = job_body(connection, dest, use_existing_table=True)
    for name in [None, "nodot", f"{dest}.nope", f"{dest}.has space", "a;b.orders", MB]:
        assert_api_error(json_post(alice_client, url, {**existing, "existing_table_name": name}),
                         f"existing_table_name={str(name)[:30]!r}")
    for raw in ("{", "[]", "null", "[" * 100_000):
        assert_api_error(json_post(alice_client, url, raw), f"body {raw[:20]!r}", 400)
    assert not EtlJob.objects.exists()
    for bad_id in (999999, HUGE_INT):
        assert_api_error(alice_client.get(f"/api/etl/jobs/{bad_id}/"), f"job {bad_id}", 404)


@FUZZ
@given(body=st.dictionaries(
    st.sampled_from(["name", "connection_id", "source_table", "destination_table", "load_strategy", "columns",
                     "schedule", "schedule_timezone", "merge_key", "cursor_column", "source_tag", "use_existing_table",
                     "existing_table_name", "source_columns", "validate_data", "relax_required", "clustering"]),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                 max_leaves=5),
    max_size=6))
def test_it_never_fails_on_arbitrary_json_bodies(alice_client, connection, dest, body: dict) -> None:
    # Fuzzed fields over a valid request, so the examples get past the first check and the fuzzed field is
    # what is tested. Each example names its own job and new table: one the API accepts is really created.
    unique = uuid.uuid4().hex[:10]
    valid_job = job_body(connection, dest, name=f"fuzz {unique}", destination_table=f"{dest}.fuzz_{unique}")
    for url, sent in ((reverse("api_validate_schema_compatibility"), {**validate_body(connection, dest), **body}),
                      (reverse("api_jobs"), {**valid_job, **body})):
        response = json_post(alice_client, url, sent)
        if url == reverse("api_jobs") and response.status_code == 201:
            created = response.json()["job"]
            assert created["name"] == sent["name"], f"{sent!r}: {created}"
            assert EtlJob.objects.filter(pk=created["id"], name=sent["name"]).exists(), f"{sent!r}: {created}"
        elif response.status_code != 200:
            assert_api_error(response, f"{url} {sent!r}")




# --------------------------------------------------------------------------- wizard


def test_it_shows_inline_errors_for_invalid_wizard_steps(wiz, connection, dest) -> None:
    step = lambda n: reverse("wizard:step", args=[n])  # noqa: E731
    for value in ("abc", "999999", "", "-1", str(HUGE_INT), MB):
        assert_inline_error(wiz.post(step(1), {"connection": value}, headers=HX), f"step 1 connection={value[:20]!r}")
    wiz.post(step(1), {"connection": connection.pk})
    for value in ("public.nope", MB, "a\x00b", ""):
        assert_inline_error(wiz.post(step(2), {"table": value}, headers=HX), f"step 2 table={value[:20]!r}")
    for q in (MB, "a\x00b", "%"):
        assert wiz.get(step(2), {"q": q, "filter": "1"}, headers=HX).status_code == 200
    wiz.post(step(2), {"table": "public.orders"})
    for value in (["nope"], [], [MB], ["id\x00"]):
        assert_inline_error(wiz.post(step(3), {"columns": value}, headers=HX), f"step 3 columns={value!r:.30}")
    wiz.post(step(3), {"columns": ["id", "amount", "note", "created_at"]})

    new = {"destination_mode": "new", "dataset": dest, "new_table": "fresh", "load_strategy": "replace"}
    existing = {"destination_mode": "existing", "dataset": dest, "existing_table": "orders", "load_strategy": "append",
                "source_tag": ""}
    cases = [{"dataset": d} for d in BAD_DATASET_IDS + [""]]
    cases += [{"new_table": t} for t in BAD_TABLE_IDS]
    cases += [{"destination_mode": "bogus"}, {"load_strategy": "bogus"}, {"load_strategy": "incremental"},
              {"load_strategy": "merge"}, {"load_strategy": "incremental", "cursor_column": "nope"},
              {"clustering": ["id", "amount", "note", "created_at", "id"]}, {"partition_field": "note"},
              {"source_tag": "bad tag!"}, {"source_tag": MB}]
    for case in cases:
        assert_inline_error(wiz.post(step(4), {**new, **case}, headers=HX), f"step 4 {json.dumps(case)[:80]}")
    # The existing-table choice also feeds the live report (and its data validation) and the mode-switch GET.
    cases = [{"existing_table": t} for t in ("has space", "ünïcødé", "t" * 1025, "a\x00b", "nope")]
    cases += [{"dataset": d} for d in ("a;b", "d" * 1025, "a\x00b")]
    cases += [{"load_strategy": "merge", "merge_key": ["nope"]}, {"add_columns": ["nope"]}]
    for case in cases:
        data = {**existing, **case}
        where = f"step 4 existing {json.dumps(case)[:80]}"
        assert_inline_error(wiz.post(step(4), data, headers=HX), where)
        if "dataset" in case:  # the mode-switch GET reads the raw dataset choice
            assert wiz.get(step(4), data, headers=HX).status_code == 200, f"GET {where}"
        report = wiz.post(reverse("wizard:report"), {**data, "validate": "1"}, headers=HX)
        # A dataset id the workspace does not own (malformed or not) is a 404, like any foreign dataset.
        expected = 404 if "dataset" in case else 200
        assert report.status_code == expected, f"report {where}: {report.status_code}"
    for dataset in BAD_DATASET_IDS + [MB]:
        options = wiz.get(reverse("wizard:tables"), {"dataset": dataset}, headers=HX)
        assert options.status_code == 404, f"tables {dataset[:20]!r}: {options.status_code}"
    options = wiz.get(reverse("wizard:tables"), {"dataset": dest}, headers=HX)
    assert options.status_code == 200 and "<option" in options.content.decode()
    assert wiz.post(step(4), new).status_code == 302

    base = {"name": "a job", "preset": "manual", "timezone": "UTC"}
    cases5 = [{"name": ""}, {"name": MB}, {"name": "a\x00b"}, {"preset": "bogus"}, {"preset": "custom", "cron": ""},
              {"timezone": "Nowhere/City"}, {"timezone": MB}]
    cases5 += [{"preset": "custom", "cron": c} for c in BAD_CRONS + [MB]]
    for case in cases5:
        assert_inline_error(wiz.post(step(5), {**base, **case}, headers=HX), f"step 5 {json.dumps(case)[:60]}")
    assert not EtlJob.objects.exists()
    for n in ("0", "6", "-1", str(HUGE_INT)):
        assert wiz.get(f"/etl/new/step/{n}/").status_code in (302, 404), f"step {n}"


def test_it_shows_a_clear_error_for_every_invalid_cron_preview(alice_client) -> None:
    url = reverse("wizard:cron_preview")
    for cron in BAD_CRONS + [MB]:
        response = alice_client.get(url, {"preset": "custom", "cron": cron}, headers=HX)
        assert response.status_code == 200 and b'data-testid="cron-error"' in response.content, repr(cron[:20])
    for tz in BAD_TIMEZONES:
        response = alice_client.get(url, {"preset": "custom", "cron": "*/5 * * * *", "timezone": tz}, headers=HX)
        assert response.status_code == 200 and b'data-testid="cron-error"' in response.content, repr(tz[:20])


@FUZZ
@given(cron=st.text(max_size=40), tz=st.text(max_size=30) | st.sampled_from(["UTC", "Europe/Berlin", ""]))
def test_it_never_fails_on_arbitrary_cron_and_time_zone(alice_client, at_step_five, cron: str, tz: str) -> None:
    response = alice_client.get(reverse("wizard:cron_preview"), {"preset": "custom", "cron": cron, "timezone": tz},
                                headers=HX)
    assert response.status_code == 200
    # The schedule step validates the same input the same way: the same verdict on the schedule, and the
    # empty name refuses the step, so no job is created.
    schedule = alice_client.post(reverse("wizard:step", args=[5]),
                                 {"name": "", "preset": "custom", "cron": cron, "timezone": tz}, headers=HX)
    assert schedule.status_code == 400 and b"This field is required" in schedule.content
    cron_error = b'data-testid="cron-error"'
    assert (cron_error in schedule.content) == (cron_error in response.content), repr((cron, tz))
    assert not EtlJob.objects.exists()


# --------------------------------------------------------------------------- job pages


def test_it_shows_inline_errors_for_an_invalid_job_edit(alice_client, job) -> None:
    url = reverse("job_edit", args=[job.pk])
    base = {"name": "orders", "columns": ["id", "amount"], "load_strategy": "append", "preset": "manual",
            "timezone": "UTC"}
    cases = [{"name": ""}, {"name": MB}, {"name": "a\x00b"}, {"columns": []}, {"columns": ["nope"]},
             {"load_strategy": "bogus"}, {"load_strategy": "incremental"},
             {"load_strategy": "merge", "merge_key": ["nope"]}, {"preset": "bogus"}, {"timezone": "Nowhere/City"},
             {"add_columns": ["nope"]}, {"preset": "custom", "cron": "61 * * * *"}, {"preset": "custom", "cron": MB}]
    for case in cases:
        assert_inline_error(alice_client.post(url, {**base, **case}), f"edit {json.dumps(case)[:60]}")
    # The live report re-renders from the same raw values.
    for case in ({"columns": ["nope"]}, {"load_strategy": "bogus", "cursor_column": MB}, {"merge_key": [MB]}):
        refreshed = alice_client.post(url, {**base, **case, "refresh": "1"}, headers=HX)
        assert refreshed.status_code == 200, f"refresh {case}: {refreshed.status_code}"
    job.refresh_from_db()
    assert job.name == "orders" and job.load_strategy == "append" and job.schedule == ""
    assert alice_client.get(f"/jobs/{HUGE_INT}/edit/").status_code == 404


def test_it_handles_invalid_reconnect_choices(alice_client, job) -> None:
    url = reverse("job_reconnect", args=[job.pk])
    for connection_id in ("abc", "999999", "-1", str(HUGE_INT), "1.5", MB, "1\x00"):
        for method in ("get", "post"):
            response = getattr(alice_client, method)(url, {"connection": connection_id, "confirm": "1"}, headers=HX)
            assert response.status_code in (200, 404), f"{method} connection={connection_id[:20]!r}"
    for table in ("public.nope", MB, "a\x00b", "has space", "ünïcødé"):
        response = alice_client.post(url, {"connection": job.connection_id, "table": table, "confirm": "1"})
        assert response.status_code in (200, 302), f"table={table[:20]!r}: {response.status_code}"
    job.refresh_from_db()
    assert job.source_table == "orders" and job.connection_id == job.connection.pk
