"""The spec's endpoints against the emulator and real PostgreSQL/MariaDB."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from ml_platform.etl.types import BigQueryField
from ml_platform.models import EtlJob
from ml_platform.services import connections

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

VALIDATE = "api_validate_schema_compatibility"


def post(client, name: str, body) -> object:
    return client.post(reverse(name), body, content_type="application/json")


@pytest.fixture
def dest(bq, bq_dataset, bq_settings):
    bq.create_table(bq_dataset, "orders", [BigQueryField("id", "INT64", "REQUIRED"), BigQueryField("amount", "NUMERIC"),
                                           BigQueryField("note", "STRING")])
    bq.query(f"INSERT INTO `{bq_dataset}.orders` (id, amount) VALUES (1, 2.5), (2, 3.5)")
    return bq_dataset


def test_it_lists_datasets_and_tables_with_counts_and_jobs(alice_client, user, dest, sqlite_source) -> None:
    assert dest in alice_client.get(reverse("api_datasets")).json()["datasets"]
    sqlite_source.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    conn = connections.connection_create(owner=user, name="lite", **sqlite_source.as_connection_fields())
    job = EtlJob.objects.create(workspace=conn.workspace, owner=user, name="j", connection=conn, source_table="t", destination_dataset=dest,
                                destination_table="orders")
    body = alice_client.get(reverse("api_dataset_tables", args=[dest])).json()
    assert body["tables"] == [{"table_id": "orders", "row_count": 2, "column_count": 3, "table_type": "TABLE",
                               "job_ids": [job.pk]}]
    missing = alice_client.get(reverse("api_dataset_tables", args=["no_such_dataset"]))
    assert missing.status_code == 404 and missing.json()["status"] == "error"


def test_it_reports_compatibility_for_typed_source_columns(alice_client, dest) -> None:
    body = {"source_columns": [{"name": "ID", "type": "bigint", "nullable": False, "primary_key": True},
                               {"name": "amount", "type": "numeric(12,2)", "nullable": True},
                               {"name": "tags", "type": "text[]", "nullable": True}],
            "destination_table": f"{dest}.orders"}
    result = post(alice_client, VALIDATE, body).json()
    assert result["compatible"] is True
    assert [a["column"] for a in result["can_alter"]] == ["tags"]
    assert any("note" in w for w in result["warnings"])  # destination column missing from the source
    assert {c["source_name"]: c["verdict"] for c in result["columns"] if c["source_name"]}["ID"] == "ok"


def test_it_rejects_a_nullable_source_for_a_required_column(alice_client, dest) -> None:
    body = {"source_columns": [{"name": "id", "type": "integer", "nullable": True}],
            "destination_table": f"{dest}.orders"}
    result = post(alice_client, VALIDATE, body).json()
    assert result["compatible"] is False
    assert any("NOT NULL" in e for e in result["errors"])
    relaxed = post(alice_client, VALIDATE, {**body, "relax_required": True}).json()
    assert relaxed["compatible"] is True


def test_it_validates_data_of_a_narrowing_column(alice_client, user, dest, pg_source) -> None:
    pg_source.execute("CREATE TABLE src (id bigint PRIMARY KEY, note text, code text)",
                      "INSERT INTO src VALUES (1, 'a', '12'), (2, 'b', '7'), (3, 'c', 'abc')")
    conn = connections.connection_create(owner=user, name="pg", **pg_source.as_connection_fields())
    bq_body = {"connection_id": conn.pk, "source_table": "public.src", "destination_table": f"{dest}.orders"}
    from ml_platform.services.warehouse import warehouse

    warehouse().add_columns(dest, "orders", [BigQueryField("code", "INT64")])
    plain = post(alice_client, VALIDATE, bq_body).json()
    assert plain["compatible"] is False
    assert {c["source_name"]: c["verdict"] for c in plain["columns"] if c["source_name"]}["code"] == "needs_validation"
    checked = post(alice_client, VALIDATE, {**bq_body, "validate_data": True}).json()
    assert checked["validation"]["code"]["failures"] == 1
    assert checked["validation"]["code"]["examples"] == ["abc"]
    assert checked["compatible"] is False and any("abc" in e for e in checked["errors"])


def test_it_answers_bad_input_with_4xx_json(alice_client, dest, other_user, user, sqlite_source) -> None:
    cases = [
        ({"destination_table": "nodot"}, 400),
        ({"destination_table": f"{dest}.orders", "source_columns": "x"}, 400),
        ({"destination_table": f"{dest}.orders", "source_columns": [{"name": "a"}]}, 400),
        ({"destination_table": f"{dest}.orders", "load_strategy": "teleport", "source_columns": []}, 400),
        ({"destination_table": f"{dest}.nope", "source_columns": []}, 404),
        ({"destination_table": f"{dest}.orders"}, 400),  # no source at all
        ({"destination_table": f"{dest}.orders", "connection_id": 999999, "source_table": "t"}, 404),
    ]
    for body, status in cases:
        response = post(alice_client, VALIDATE, body)
        assert response.status_code == status, (body, response.content)
        assert response.json()["status"] == "error"
    not_json = alice_client.post(reverse(VALIDATE), "{", content_type="application/json")
    assert not_json.status_code == 400


def test_it_creates_a_job_on_an_existing_table_or_answers_422(alice_client, user, dest, mysql_source, bq) -> None:
    mysql_source.execute("CREATE TABLE orders (id bigint PRIMARY KEY, amount decimal(12,2), extra varchar(20))",
                         "CREATE TABLE bad (id varchar(10), amount text)")
    conn = connections.connection_create(owner=user, name="maria", **mysql_source.as_connection_fields())
    base = {"name": "eu orders", "connection_id": conn.pk, "use_existing_table": True,
            "existing_table_name": f"{dest}.orders", "load_strategy": "incremental", "cursor_column": "id"}
    bad = post(alice_client, "api_jobs", {**base, "source_table": f"{mysql_source.database}.bad"})
    assert bad.status_code == 422
    assert bad.json()["message"] == "Schema incompatible" and bad.json()["details"]
    ok = post(alice_client, "api_jobs", {**base, "source_table": f"{mysql_source.database}.orders",
                                         "add_columns": ["extra"]})
    assert ok.status_code == 201, ok.content
    assert ok.json()["job"]["destination_mode"] == "existing"
    assert "extra" in [f.name for f in bq.get_table_schema(dest, "orders").fields]
    assert bq.row_count(dest, "orders") == 2  # nothing loaded or dropped by creating the job


def test_it_back_fills_the_tag_on_untagged_rows_only_when_the_request_confirms_it(alice_client, user, dest,
                                                                                 mysql_source, bq) -> None:
    mysql_source.execute("CREATE TABLE orders (id bigint PRIMARY KEY, amount decimal(12,2))")
    conn = connections.connection_create(owner=user, name="maria", **mysql_source.as_connection_fields())
    body = {"name": "us orders", "connection_id": conn.pk, "source_table": f"{mysql_source.database}.orders",
            "use_existing_table": True, "existing_table_name": f"{dest}.orders", "load_strategy": "append",
            "source_tag": "us"}
    refused = post(alice_client, "api_jobs", body)
    assert refused.status_code == 422 and "2 rows without a source tag" in json.dumps(refused.json()), refused.json()
    assert not EtlJob.objects.exists()
    created = post(alice_client, "api_jobs", {**body, "confirm_backfill": True})
    assert created.status_code == 201, created.content
    assert bq.query(f"SELECT _source_tag AS t, COUNT(*) AS n FROM `{dest}.orders` GROUP BY 1") == [{"t": "us", "n": 2}]


def test_it_defaults_the_strategy_as_the_wizard_does(alice_client, user, dest, pg_source) -> None:
    pg_source.execute("CREATE TABLE events (id bigint PRIMARY KEY, note text)")
    conn = connections.connection_create(owner=user, name="pg", **pg_source.as_connection_fields())
    body = {"connection_id": conn.pk, "source_table": "public.events"}
    new = post(alice_client, "api_jobs", {**body, "name": "new", "destination_table": f"{dest}.events"})
    assert new.status_code == 201, new.content
    existing = post(alice_client, "api_jobs", {**body, "name": "existing", "use_existing_table": True,
                                               "existing_table_name": f"{dest}.orders"})
    assert existing.status_code == 201, existing.content
    # A new table holds only this job's rows: Replace; someone else's table is never emptied by default: Append.
    assert (new.json()["job"]["load_strategy"], existing.json()["job"]["load_strategy"]) == ("replace", "append")


def test_it_creates_a_new_table_for_a_new_job(alice_client, user, dest, pg_source, bq) -> None:
    pg_source.execute("CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz NOT NULL, payload jsonb)")
    conn = connections.connection_create(owner=user, name="pg", **pg_source.as_connection_fields())
    body = {"name": "events", "connection_id": conn.pk, "source_table": "public.events",
            "destination_table": f"{dest}.events", "load_strategy": "replace", "partition_field": "at",
            "schedule": "0 * * * *"}
    created = post(alice_client, "api_jobs", body)
    assert created.status_code == 201, created.content
    schema = bq.get_table_schema(dest, "events")
    assert [(f.name, f.field_type) for f in schema.fields] == [("id", "INT64"), ("at", "TIMESTAMP"),
                                                               ("payload", "JSON")]
    again = post(alice_client, "api_jobs", {**body, "name": "events 2"})
    assert again.status_code == 422 and "already exists" in again.json()["message"]
    bad_cron = post(alice_client, "api_jobs", {**body, "name": "x", "destination_table": f"{dest}.x",
                                               "schedule": "whenever"})
    assert bad_cron.status_code == 400 and bad_cron.json()["details"][0]["field"] == "schedule"
    assert "cron" in bad_cron.json()["details"][0]["error"]
    assert not bq.table_exists(dest, "x")


def test_it_refuses_a_schedule_that_never_runs_with_a_400_naming_the_field(alice_client, user, dest, pg_source,
                                                                           bq) -> None:
    pg_source.execute("CREATE TABLE events (id bigint PRIMARY KEY)")
    conn = connections.connection_create(owner=user, name="pg", **pg_source.as_connection_fields())
    body = {"name": "feb 31", "connection_id": conn.pk, "source_table": "public.events",
            "destination_table": f"{dest}.feb31", "load_strategy": "replace", "schedule": "0 0 31 2 *"}
    refused = post(alice_client, "api_jobs", body)
    assert refused.status_code == 400, refused.content
    assert refused.json()["status"] == "error"
    assert [d["field"] for d in refused.json()["details"]] == ["schedule"]
    assert not bq.table_exists(dest, "feb31") and not EtlJob.objects.filter(name="feb 31").exists()


# --------------------------------------------------------------------------- validate_data and plain column names


@pytest.fixture
def coded(user, dest, pg_source):
    """A PostgreSQL source whose text column `code` goes into the table's INT64 `code` (needs validation)."""
    from ml_platform.services.warehouse import warehouse

    pg_source.execute("CREATE TABLE src (id bigint PRIMARY KEY, amount numeric(12,2), code text)",
                      "INSERT INTO src VALUES (1, 2.5, '12'), (2, 3.5, '7')",
                      "CREATE TABLE dirty (id bigint PRIMARY KEY, code text)",
                      "INSERT INTO dirty VALUES (1, '12'), (2, 'abc')")
    warehouse().add_columns(dest, "orders", [BigQueryField("code", "INT64")])
    return connections.connection_create(owner=user, name="pg", **pg_source.as_connection_fields())


def test_it_creates_a_job_that_needs_validation_once_validate_data_passes(alice_client, dest, coded, bq) -> None:
    body = {"name": "coded", "connection_id": coded.pk, "source_table": "public.src", "use_existing_table": True,
            "existing_table_name": f"{dest}.orders", "load_strategy": "append"}
    unvalidated = post(alice_client, "api_jobs", body)
    assert unvalidated.status_code == 422 and unvalidated.json()["message"] == "Schema incompatible"
    assert any("code" in d and "validate_data" in d for d in unvalidated.json()["details"])
    created = post(alice_client, "api_jobs", {**body, "validate_data": True})
    assert created.status_code == 201, created.content
    job = EtlJob.objects.get(name="coded")
    assert job.selected_columns == ["id", "amount", "code"] and job.column_mapping["code"] == "code"
    assert bq.row_count(dest, "orders") == 2  # creating the job loads nothing


def test_it_refuses_a_job_whose_data_fails_validation_naming_the_value(alice_client, dest, coded) -> None:
    body = {"name": "dirty", "connection_id": coded.pk, "source_table": "public.dirty", "use_existing_table": True,
            "existing_table_name": f"{dest}.orders", "validate_data": True}
    refused = post(alice_client, "api_jobs", body)
    assert refused.status_code == 422 and refused.json()["message"] == "Schema incompatible"
    assert any("abc" in d for d in refused.json()["details"]), refused.json()
    assert not EtlJob.objects.filter(name="dirty").exists()


def test_it_accepts_a_plain_list_of_column_names_with_types_from_the_source(alice_client, dest, coded, bq) -> None:
    report = post(alice_client, VALIDATE, {"source_columns": ["id", "AMOUNT"], "connection_id": coded.pk,
                                           "source_table": "public.src", "destination_table": f"{dest}.orders"})
    assert report.status_code == 200, report.content
    rows = {c["source_name"]: c for c in report.json()["columns"] if c["source_name"]}
    assert set(rows) == {"id", "amount"} and rows["amount"]["source_type"] == "DECIMAL(12,2)"  # read from the source
    assert report.json()["compatible"] is True
    created = post(alice_client, "api_jobs", {"name": "two columns", "connection_id": coded.pk,
                                              "source_table": "public.src", "source_columns": ["id", "amount"],
                                              "destination_table": f"{dest}.two"})
    assert created.status_code == 201, created.content
    assert created.json()["job"]["selected_columns"] == ["id", "amount"]
    assert [f.name for f in bq.get_table_schema(dest, "two").fields] == ["id", "amount"]


def test_it_answers_bad_column_lists_and_unknown_fields_with_a_400_naming_the_field(alice_client, dest,
                                                                                     coded) -> None:
    base = {"connection_id": coded.pk, "source_table": "public.src", "destination_table": f"{dest}.orders"}
    job = {**base, "name": "x", "destination_table": f"{dest}.x"}
    cases = [
        (VALIDATE, {**base, "source_columns": ["id", "nope"]}, "source_columns"),
        (VALIDATE, {"destination_table": f"{dest}.orders", "source_columns": ["id"]}, "source_columns"),
        (VALIDATE, {**base, "source_columns": ["id", {"name": "amount", "type": "int"}]}, "source_columns"),
        (VALIDATE, {**base, "colour": "red"}, "colour"),
        ("api_jobs", {**job, "source_columns": ["id", "nope"]}, "source_columns"),
        ("api_jobs", {**job, "columns": ["nope"]}, "columns"),
        ("api_jobs", {**job, "source_columns": [{"name": "id", "type": "int"}]}, "source_columns"),
        ("api_jobs", {**job, "colour": "red"}, "colour"),
        ("api_jobs", {**job, "validate_data": "yes please"}, "validate_data"),
        ("api_jobs", {**job, "schedule_timezone": "Nowhere/City"}, "schedule_timezone"),
    ]
    for name, body, field in cases:
        response = post(alice_client, name, body)
        assert response.status_code == 400, (body, response.content)
        fields = {d["field"].split(".")[0] for d in response.json()["details"]}
        assert fields == {field}, (body, response.json())
    assert not EtlJob.objects.exists()


def test_it_names_this_workspaces_jobs_on_the_table_and_only_counts_other_workspaces(
        alice_client, user, other_user, dest, sqlite_source) -> None:
    sqlite_source.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    mine = connections.connection_create(owner=user, name="lite", **sqlite_source.as_connection_fields())
    theirs = connections.connection_create(owner=other_user, name="theirs", **sqlite_source.as_connection_fields())
    job = EtlJob.objects.create(workspace=mine.workspace, owner=user, name="mine", connection=mine, source_table="t",
                                destination_dataset=dest, destination_table="orders", source_tag="eu")
    EtlJob.objects.create(workspace=theirs.workspace, owner=other_user, name="secret-foreign-job", connection=theirs,
                          source_table="t", destination_dataset=dest, destination_table="orders", source_tag="us")
    body = {"source_columns": [{"name": "id", "type": "bigint", "nullable": False}],
            "destination_table": f"{dest}.orders", "source_tag": "EU"}
    response = post(alice_client, VALIDATE, body)
    assert response.status_code == 200, response.content
    report = response.json()
    assert report["other_jobs"] == [{"id": job.pk, "name": "mine", "source_tag": "eu"}]
    assert report["other_workspace_jobs"] == 1 and "secret-foreign-job" not in response.content.decode()
    assert report["compatible"] is False and any("already used" in e for e in report["errors"])  # the tag rule
    fresh = post(alice_client, VALIDATE, {**body, "source_tag": "asia"}).json()
    assert fresh["compatible"] is False  # the table holds untagged rows: a new tagged job must confirm the back-fill
    assert any("untagged" in e for e in fresh["errors"])
