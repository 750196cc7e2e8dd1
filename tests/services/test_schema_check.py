"""The one schema check: BigQuery calls per report, the recorded load plan, the multi-source rules."""

from __future__ import annotations

import pytest
from django.urls import reverse
from google.cloud import bigquery

from ml_platform.etl.types import BigQueryField
from ml_platform.models import EtlJob
from ml_platform.runs import lifecycle, records
from ml_platform.services import connections, jobs, sources

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

HX = {"HX-Request": "true"}
ORDERS = [BigQueryField("id", "INT64"), BigQueryField("amount", "NUMERIC"), BigQueryField("note", "STRING"),
          BigQueryField("code", "STRING"), BigQueryField("created_at", "TIMESTAMP")]
# Every google-cloud-bigquery Client method that talks to the API.
CLIENT_CALLS = ("get_table", "get_dataset", "list_datasets", "list_tables", "query", "query_and_wait",
                "create_table", "update_table", "delete_table", "list_rows", "load_table_from_file", "get_job",
                "insert_rows", "create_dataset", "delete_dataset")


def step(n: int) -> str:
    return reverse("wizard:step", args=[n])


@pytest.fixture
def connection(user, pg_source):
    pg_source.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, note text, code text, "
        "created_at timestamptz NOT NULL DEFAULT now())",
        "INSERT INTO orders (id, amount, note, code) SELECT g, g * 1.5, 'n' || g, g::text "
        "FROM generate_series(1, 30) g",
    )
    return connections.connection_create(owner=user, name="shop_pg", **pg_source.as_connection_fields())


@pytest.fixture
def wiz(alice_client, connection, bq_settings, bq_dataset):
    assert alice_client.post(step(1), {"connection": connection.pk}).status_code == 302
    assert alice_client.post(step(2), {"table": "public.orders"}).status_code == 302
    assert alice_client.post(step(3), {"columns": ["id", "amount", "note", "code", "created_at"]}).status_code == 302
    alice_client.dataset = bq_dataset
    return alice_client


@pytest.fixture
def bq_calls(monkeypatch):
    """Counts the BigQuery API calls; each call still goes to the emulator (a counting passthrough)."""
    counted: list[str] = []

    def counting(name, method):
        def passthrough(self, *args, **kwargs):
            counted.append(name)
            return method(self, *args, **kwargs)
        return passthrough

    for name in CLIENT_CALLS:
        monkeypatch.setattr(bigquery.Client, name, counting(name, getattr(bigquery.Client, name)))
    return counted


def existing(wiz, table: str, **extra) -> dict:
    return {"destination_mode": "existing", "dataset": wiz.dataset, "existing_table": table, **extra}


def columns(connection):
    return sources.get_columns(connection, "public", "orders")


def test_it_costs_at_most_two_bigquery_calls_per_report_partial(wiz, bq, bq_calls) -> None:
    bq.create_table(wiz.dataset, "shared", [*ORDERS, BigQueryField("_source_tag", "STRING")])
    bq.query(f"INSERT INTO `{wiz.dataset}.shared` (id, _source_tag) VALUES (5, 'eu'), (9, 'us'), (11, 'us')")
    choices = [existing(wiz, "shared", load_strategy="incremental", cursor_column="id", source_tag="us"),
               existing(wiz, "shared", load_strategy="replace", source_tag="us"),
               existing(wiz, "shared", load_strategy="merge", merge_key=["id"], source_tag="us"),
               existing(wiz, "shared", load_strategy="append", source_tag="us", add_columns=["created_at"])]
    for form in choices:
        bq_calls.clear()
        report = wiz.post(reverse("wizard:report"), form, headers=HX)
        assert report.status_code == 200
        assert len(bq_calls) <= 2, (form["load_strategy"], bq_calls)
        assert bq_calls.count("get_table") == 1  # the table is fetched once
    html = report.content.decode()
    assert "The table holds <strong>3</strong> rows" in html
    bq_calls.clear()
    incremental = wiz.post(reverse("wizard:report"), choices[0], headers=HX).content.decode()
    assert "Resumes after id 11 for source tag &#x27;us&#x27;" in incremental  # MAX in the tag's scope, same query
    replace = wiz.post(reverse("wizard:report"), choices[1], headers=HX).content.decode()
    assert f"Delete the 2 rows this job loads into {wiz.dataset}.shared" in replace


def test_it_records_the_load_plan_and_a_run_refuses_a_table_that_changed(user, connection, bq, bq_dataset,
                                                                         bq_settings) -> None:
    bq.create_table(bq_dataset, "orders_bq", ORDERS[:3])
    job = jobs.job_create(owner=user, workspace=connection.workspace, name="orders", connection=connection,
                          source_schema="public", source_table="orders",
                          source_columns=[c for c in columns(connection) if c.name in ("id", "amount", "note")],
                          destination_dataset=bq_dataset, destination_table="orders_bq", use_existing_table=True,
                          load_strategy="append")
    plan = job.load_plan
    assert plan["mode"] == "existing"
    assert [(c["source"], c["destination"], c["field_type"]) for c in plan["columns"]] == [
        ("id", "id", "INT64"), ("amount", "amount", "NUMERIC"), ("note", "note", "STRING")]
    # Someone recreates the table with another type for `amount`: the run refuses before loading anything.
    bq.drop_table(bq_dataset, "orders_bq")
    bq.create_table(bq_dataset, "orders_bq", [ORDERS[0], BigQueryField("amount", "STRING"), ORDERS[2]])
    run = lifecycle.execute_run(run_id=records.run_enqueue_record(job=job).pk)
    assert run.status == "failed"
    assert "no longer matches the load plan" in run.error
    assert "Column 'amount' changed type from NUMERIC to STRING." in run.error
    assert "edit the job" in run.error
    assert bq.row_count(bq_dataset, "orders_bq") == 0


def test_it_runs_a_job_whose_table_still_matches_its_plan(user, connection, bq, bq_dataset, bq_settings) -> None:
    job = jobs.job_create(owner=user, workspace=connection.workspace, name="new", connection=connection,
                          source_schema="public", source_table="orders", source_columns=columns(connection),
                          destination_dataset=bq_dataset, destination_table="fresh", use_existing_table=False,
                          load_strategy="replace", source_tag="eu")
    assert job.load_plan["mode"] == "new" and job.load_plan["tag_column"] == "_source_tag"
    assert lifecycle.execute_run(run_id=records.run_enqueue_record(job=job).pk).status == "succeeded"
    assert bq.row_count(bq_dataset, "fresh") == 30


def test_it_refuses_an_untagged_job_next_to_another_workspaces_job_without_naming_it(
        wiz, user, other_user, connection, bq) -> None:
    from ml_platform.models import Connection

    bq.create_table(wiz.dataset, "shared", [*ORDERS, BigQueryField("_source_tag", "STRING")])
    foreign = Connection.objects.create(workspace=other_user.memberships.first().workspace, name="mallory pg",
                                        engine="postgresql", host="127.0.0.1", database="x")
    EtlJob.objects.create(workspace=foreign.workspace, owner=other_user, name="mallory secret job",
                          connection=foreign, source_table="orders", destination_dataset=wiz.dataset,
                          destination_table="SHARED", source_tag="eu")
    form = existing(wiz, "shared", load_strategy="append")
    report = wiz.post(reverse("wizard:report"), form, headers=HX).content.decode()
    assert "Another job loads into this table: give this source its own tag" in report
    assert "mallory" not in report
    assert 'id="wizard-next" hx-swap-oob="true" disabled' in report  # Next is disabled before it is pressed
    duplicate = wiz.post(reverse("wizard:report"), {**form, "source_tag": "EU"}, headers=HX).content.decode()
    assert "already used by another job" in duplicate and "mallory" not in duplicate
    refused = wiz.post(step(4), form, headers=HX)
    assert refused.status_code == 400 and b"give this source its own tag" in refused.content
    with pytest.raises(jobs.JobCreateError, match="give this source its own tag"):
        jobs.job_create(owner=user, workspace=connection.workspace, name="api", connection=connection,
                        source_schema="public", source_table="orders", source_columns=columns(connection),
                        destination_dataset=wiz.dataset, destination_table="shared", use_existing_table=True,
                        load_strategy="append")
    assert wiz.post(step(4), {**form, "source_tag": "us"}, headers=HX).status_code == 200


def test_it_back_fills_the_tag_on_untagged_rows_only_when_confirmed(wiz, user, connection, bq) -> None:
    bq.create_table(wiz.dataset, "legacy", ORDERS)
    bq.query(f"INSERT INTO `{wiz.dataset}.legacy` (id) VALUES (1), (2), (3)")
    form = existing(wiz, "legacy", load_strategy="append", source_tag="us")
    report = wiz.post(reverse("wizard:report"), form, headers=HX).content.decode()
    assert "The table holds 3 rows without a source tag" in report and "Incompatible" in report
    assert "Set _source_tag = &#x27;us&#x27; on the 3 untagged rows" in report  # the offer
    assert wiz.post(step(4), form, headers=HX).status_code == 400
    args = dict(owner=user, workspace=connection.workspace, name="api", connection=connection,
                source_schema="public", source_table="orders", source_columns=columns(connection),
                destination_dataset=wiz.dataset, destination_table="legacy", use_existing_table=True,
                load_strategy="append", source_tag="us")
    with pytest.raises(jobs.JobCreateError, match="3 rows without a source tag"):
        jobs.job_create(**args)
    confirmed = {**form, "confirm_backfill": "on"}
    assert "Compatible" in wiz.post(reverse("wizard:report"), confirmed, headers=HX).content.decode()
    assert wiz.post(step(4), confirmed, headers=HX).status_code == 200
    done = wiz.post(step(5), {"name": "adopts legacy rows", "preset": "manual", "timezone": "UTC"}, headers=HX)
    assert done.status_code in (200, 302), done.content.decode()[:1000]
    job = EtlJob.objects.get(name="adopts legacy rows")
    assert [a["kind"] for a in job.load_plan["alters"]] == ["add_column", "backfill_tag"]
    rows = bq.query(f"SELECT _source_tag AS t, COUNT(*) AS n FROM `{wiz.dataset}.legacy` GROUP BY 1")
    assert rows == [{"t": "us", "n": 3}]


def test_it_refuses_edit_and_reconnect_of_an_untagged_job_on_a_shared_table(alice_client, user, connection, bq,
                                                                           bq_dataset, bq_settings) -> None:
    bq.create_table(bq_dataset, "shared", [*ORDERS[:2], BigQueryField("_source_tag", "STRING")])
    common = dict(workspace=connection.workspace, owner=user, connection=connection, source_schema="public",
                  source_table="orders", selected_columns=["id", "amount"], destination_dataset=bq_dataset,
                  destination_table="shared", load_strategy="append")
    EtlJob.objects.create(name="tagged", source_tag="eu", **common)
    untagged = EtlJob.objects.create(name="untagged", **common)
    edit = alice_client.post(reverse("job_edit", args=[untagged.pk]),
                             {"name": "untagged", "columns": ["id", "amount"], "load_strategy": "append",
                              "preset": "manual", "timezone": "UTC"})
    assert edit.status_code == 400 and b"give this source its own tag" in edit.content
    reconnect = alice_client.get(reverse("job_reconnect", args=[untagged.pk]), {"table": "public.orders"})
    assert b"give this source its own tag" in reconnect.content
    assert b'id="reconnect-button" disabled' in reconnect.content


def test_it_types_a_plain_list_of_column_names_by_introspection(connection) -> None:
    from ml_platform.services import schema_check

    picked = schema_check.source_columns_named(connection, "public.orders", ["AMOUNT", "id"])
    assert [(c.name, c.source_type) for c in picked] == [("amount", "numeric(12,2)"), ("id", "bigint")]
    with pytest.raises(schema_check.UnknownColumns, match="'nope'"):
        schema_check.source_columns_named(connection, "public.orders", ["id", "nope"])


def test_it_validates_the_source_data_for_job_creation_when_asked(user, connection, bq, bq_dataset,
                                                                  bq_settings) -> None:
    bq.create_table(bq_dataset, "coded", [BigQueryField("id", "INT64"), BigQueryField("code", "INT64")])
    picked = [c for c in columns(connection) if c.name in ("id", "code")]  # code is text holding digits
    args = dict(owner=user, workspace=connection.workspace, name="coded", connection=connection,
                source_schema="public", source_table="orders", source_columns=picked,
                destination_dataset=bq_dataset, destination_table="coded", use_existing_table=True,
                load_strategy="append")
    with pytest.raises(jobs.JobCreateError) as refused:
        jobs.job_create(**args)
    assert any("code" in str(d) for d in refused.value.details)  # the reasons are in the details, never empty
    job = jobs.job_create(**args, validate_data=True)  # the same scan as the wizard's "Validate data"
    assert [c["destination"] for c in job.load_plan["columns"]] == ["id", "code"]


def test_it_saves_a_failed_run_whose_error_quotes_a_value_holding_a_nul_byte(user, mysql_source, bq, bq_dataset,
                                                                             bq_settings) -> None:
    mysql_source.execute("CREATE TABLE coded (id bigint PRIMARY KEY, code varchar(10))",
                         "INSERT INTO coded VALUES (1, '12')")
    connection = connections.connection_create(owner=user, name="shop_my", **mysql_source.as_connection_fields())
    bq.create_table(bq_dataset, "coded", [BigQueryField("id", "INT64"), BigQueryField("code", "INT64")])
    job = jobs.job_create(owner=user, workspace=connection.workspace, name="coded", connection=connection,
                          source_schema="", source_table="coded",
                          source_columns=sources.get_columns(connection, None, "coded"),
                          destination_dataset=bq_dataset, destination_table="coded", use_existing_table=True,
                          load_strategy="append", validate_data=True)
    mysql_source.execute("INSERT INTO coded VALUES (2, CONCAT('1', CHAR(0), '2'))")  # after the validation

    run = lifecycle.execute_run(run_id=records.run_enqueue_record(job=job).pk)

    assert run.status == "failed"  # recorded: PostgreSQL refuses text holding NUL, so it is spelled out
    assert "\x00" not in run.error and "'1\\x002'" in run.error and "id=2" in run.error
    assert EtlJob.objects.get(pk=job.pk).runs.get(pk=run.pk).error == run.error
