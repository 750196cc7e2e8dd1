"""Every caller goes through the one schema check: patched to fail, each caller surfaces that failure.

The check's entry point (`schema_check.check`) is replaced by one that raises a distinct error;
the wizard report, the step-4 submit (both modes), Edit, Reconnect, `jobs.job_create`, the
API's create, validate, Edit (PATCH) and Reconnect endpoints (through their URLs, whatever module serves them) must
each fail with it — none of them decides compatibility on its own. The runner does not decide
at all: it checks the stored plan (`etl.plan.table_mismatches`), so that is what it surfaces.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from ml_platform.etl import plan as load_plan
from ml_platform.etl.types import BigQueryField
from ml_platform.models import EtlJob
from ml_platform.runs import lifecycle, records
from ml_platform.services import connections, jobs, schema_check, sources

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

HX = {"HX-Request": "true"}
SENTINEL = "schema-check-sentinel-7f3a"
PLAN_SENTINEL = "plan-check-sentinel-91c2"


class SchemaCheckCalled(Exception):
    pass


def step(n: int) -> str:
    return reverse("wizard:step", args=[n])


def surfaces(call) -> None:
    """The caller failed with the sentinel: raised through, or shown in its answer."""
    try:
        response = call()
    except SchemaCheckCalled as exc:
        assert SENTINEL in str(exc)
        return
    body = response.content.decode()
    assert SENTINEL in body, (response.status_code, body[:500])


@pytest.fixture
def connection(user, pg_source):
    pg_source.execute("CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2), note text)",
                      "INSERT INTO orders SELECT g, g * 2.5, 'n' || g FROM generate_series(1, 5) g")
    return connections.connection_create(owner=user, name="pg", **pg_source.as_connection_fields())


@pytest.fixture
def setup(alice_client, user, connection, bq, bq_dataset, bq_settings):
    bq.create_table(bq_dataset, "orders", [BigQueryField("id", "INT64"), BigQueryField("amount", "NUMERIC"),
                                           BigQueryField("note", "STRING")])
    job = jobs.job_create(owner=user, workspace=connection.workspace, name="orders", connection=connection,
                          source_schema="public", source_table="orders",
                          source_columns=sources.get_columns(connection, "public", "orders"),
                          destination_dataset=bq_dataset, destination_table="orders", use_existing_table=True,
                          load_strategy="append")
    assert alice_client.post(step(1), {"connection": connection.pk}).status_code == 302
    assert alice_client.post(step(2), {"table": "public.orders"}).status_code == 302
    assert alice_client.post(step(3), {"columns": ["id", "amount", "note"]}).status_code == 302
    return alice_client, job, bq_dataset


@pytest.fixture
def broken_check(monkeypatch):
    def boom(**kwargs):
        raise SchemaCheckCalled(SENTINEL)

    monkeypatch.setattr(schema_check, "check", boom)


def test_it_routes_every_page_caller_through_the_schema_check(setup, broken_check) -> None:
    client, job, dataset = setup
    existing = {"destination_mode": "existing", "dataset": dataset, "existing_table": "orders",
                "load_strategy": "append"}
    surfaces(lambda: client.post(reverse("wizard:report"), existing, headers=HX))  # the live report
    surfaces(lambda: client.post(step(4), existing, headers=HX))  # step-4 submit, existing table
    surfaces(lambda: client.post(step(4), {"destination_mode": "new", "dataset": dataset, "new_table": "fresh",
                                           "load_strategy": "replace"}, headers=HX))  # step-4 submit, new table
    surfaces(lambda: client.get(reverse("job_edit", args=[job.pk])))  # Edit's report
    surfaces(lambda: client.post(reverse("job_edit", args=[job.pk]),  # Edit's save
                                 {"name": "orders", "columns": ["id", "amount"], "load_strategy": "append",
                                  "preset": "manual", "timezone": "UTC"}))
    surfaces(lambda: client.get(reverse("job_reconnect", args=[job.pk]), {"table": "public.orders"}))
    surfaces(lambda: client.post(reverse("job_reconnect", args=[job.pk]),
                                 {"table": "public.orders", "confirm": "1"}))


def test_it_routes_job_creation_and_the_api_through_the_schema_check(setup, user, connection,
                                                                    broken_check) -> None:
    client, _job, dataset = setup
    with pytest.raises(SchemaCheckCalled, match=SENTINEL):
        jobs.job_create(owner=user, workspace=connection.workspace, name="direct", connection=connection,
                        source_schema="public", source_table="orders",
                        source_columns=sources.get_columns(connection, "public", "orders"),
                        destination_dataset=dataset, destination_table="other", use_existing_table=False,
                        load_strategy="replace")
    create = {"name": "api job", "connection_id": connection.pk, "source_table": "public.orders",
              "use_existing_table": True, "existing_table_name": f"{dataset}.orders", "load_strategy": "append",
              "source_tag": "api"}
    surfaces(lambda: client.post("/api/etl/jobs/", create, content_type="application/json"))
    validate = {"connection_id": connection.pk, "source_table": "public.orders",
                "destination_table": f"{dataset}.orders"}
    surfaces(lambda: client.post("/api/etl/validate-schema-compatibility/", validate,
                                 content_type="application/json"))
    surfaces(lambda: client.patch(f"/api/etl/jobs/{_job.pk}/", {"name": "renamed", "columns": ["id", "amount"]},
                                  content_type="application/json"))  # the API's Edit
    surfaces(lambda: client.post(f"/api/etl/jobs/{_job.pk}/reconnect/", {"source_table": "public.orders"},
                                 content_type="application/json"))  # the API's Reconnect
    assert not EtlJob.objects.filter(name__in=["direct", "api job", "renamed"]).exists()


def test_it_runs_on_the_stored_plan_and_never_decides_again(setup, monkeypatch, broken_check) -> None:
    _client, job, _dataset = setup

    def plan_boom(plan, schema):
        raise RuntimeError(PLAN_SENTINEL)

    monkeypatch.setattr(load_plan, "table_mismatches", plan_boom)
    run = lifecycle.execute_run(run_id=records.run_enqueue_record(job=job).pk)
    assert run.status == "failed"
    assert PLAN_SENTINEL in run.error  # the runner checked the stored plan...
    assert SENTINEL not in run.error  # ...and did not ask the schema check to decide again
