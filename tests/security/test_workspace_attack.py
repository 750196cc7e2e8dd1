"""The attack the workspaces close: a member of another workspace reads or wipes this workspace's table.

Before workspaces every signed-in user could list every dataset, read any table's schema, row count and
MAX(cursor) through the report, and point a job with `replace` at any existing table. Now another
workspace's dataset does not exist for them: 404 everywhere (exactly what a missing dataset gets), and
the table stays byte-for-byte the same.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from ml_platform.etl.types import BigQueryField
from ml_platform.models import EtlJob, JobRun, WorkspaceDataset
from ml_platform.services import connections
from wizard.models import WizardDraft

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

ROWS = 57  # ids 9101..9157: the count and MAX(id) a leak would show
SECRET_COLUMN = "alice_margin"
NOT_FOUND = {"status": "error", "message": "Not found", "details": []}


def fingerprint(bq, dataset: str, table: str) -> tuple:
    """A deterministic whole-table fingerprint: count, XOR of row hashes, every row in order, and the schema."""
    t = bq.sql_table(dataset, table)
    summary = bq.query(f"SELECT COUNT(*) AS n, BIT_XOR(FARM_FINGERPRINT(TO_JSON_STRING(t))) AS fp FROM {t} t")[0]
    rows = bq.query(f"SELECT TO_JSON_STRING(ARRAY_AGG(t ORDER BY id)) AS js FROM {t} t")[0]["js"]
    schema = [(f.name, f.field_type, f.mode) for f in bq.get_table_schema(dataset, table).fields]
    return summary["n"], summary["fp"], rows, schema


def assert_hidden(response, where: str) -> None:
    body = response.content.decode(errors="replace")
    for leak in (SECRET_COLUMN, "9157", f"{ROWS:,} rows", "Resumes after"):
        assert leak not in body, f"{where} leaks {leak!r}"


@pytest.fixture
def alice_table(user, bq, bq_dataset, bq_settings) -> tuple[str, str]:
    """Alice's table with rows, in her workspace's dataset."""
    bq.create_table(bq_dataset, "orders", [BigQueryField("id", "INT64"), BigQueryField("amount", "FLOAT64"),
                                           BigQueryField(SECRET_COLUMN, "FLOAT64")])
    bq.execute(f"INSERT INTO {bq.sql_table(bq_dataset, 'orders')} (id, amount, {SECRET_COLUMN}) "
               f"SELECT x, x / 4, x / 8 FROM UNNEST(GENERATE_ARRAY(9101, {9100 + ROWS})) AS x")
    return bq_dataset, "orders"


@pytest.fixture
def mallory(client, other_user, sqlite_source):
    """mallory, signed in, admin of her own workspace, with a connection whose source looks like alice's table."""
    sqlite_source.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount REAL, note TEXT)",
                          "INSERT INTO orders VALUES (1, 1.0, 'x')")
    connection = connections.connection_create(owner=other_user, name="mallory-conn",
                                               **sqlite_source.as_connection_fields())
    client.force_login(other_user)
    return connection


def test_another_workspace_gets_404_on_the_dataset_and_the_table_is_unchanged(
        client, bq, user, alice_table, mallory, other_user) -> None:
    dataset, table = alice_table
    before = fingerprint(bq, dataset, table)
    assert before[0] == ROWS
    jobs_before, runs_before = EtlJob.objects.count(), JobRun.objects.count()
    tables_before = [t.table_id for t in bq.list_tables(dataset)]

    # The listing does not name it; the table listing is a 404 exactly like a dataset that does not exist.
    listed = client.get(reverse("api_datasets"))
    assert listed.status_code == 200 and dataset not in listed.json()["datasets"]
    for name in (dataset, "no_such_dataset_at_all"):
        response = client.get(reverse("api_dataset_tables", args=[name]))
        assert response.status_code == 404 and response.json() == NOT_FOUND, name
    wizard_tables = client.get(reverse("wizard:tables"), {"dataset": dataset}, headers={"HX-Request": "true"})
    assert wizard_tables.status_code == 404
    assert "orders" not in wizard_tables.content.decode()

    # The wizard's report, with and without data validation (a draft at step 4 on her own connection).
    WizardDraft.objects.update_or_create(owner=other_user, defaults={"data": {
        "connection_id": mallory.pk, "source_table": "orders", "columns": ["id", "amount", "note"]}})
    params = {"destination_mode": "existing", "dataset": dataset, "existing_table": table,
              "load_strategy": "incremental", "cursor_column": "id"}
    report = client.get(reverse("wizard:report"), params, headers={"HX-Request": "true"})
    assert report.status_code == 404
    assert_hidden(report, "GET report")
    validated = client.post(reverse("wizard:report"), {**params, "validate": "1"}, headers={"HX-Request": "true"})
    assert validated.status_code == 404
    assert_hidden(validated, "POST report validate")
    assert "validation" not in WizardDraft.objects.get(owner=other_user).data
    # Step 4 itself refuses the dataset in place and stores nothing.
    step4 = client.post(reverse("wizard:step", args=[4]), {**params, "load_strategy": "replace"},
                        headers={"HX-Request": "true"})
    assert step4.status_code == 400
    assert_hidden(step4, "POST step 4")
    assert "destination" not in WizardDraft.objects.get(owner=other_user).data

    # A new table in her dataset, through step 4, or a tampered draft submitted at step 5.
    step4_new = client.post(reverse("wizard:step", args=[4]), {
        "destination_mode": "new", "dataset": dataset, "new_table": "planted", "load_strategy": "replace"},
        headers={"HX-Request": "true"})
    assert step4_new.status_code == 400
    assert "destination" not in WizardDraft.objects.get(owner=other_user).data
    for destination in ({"destination_mode": "existing", "dataset": dataset, "existing_table": table,
                         "load_strategy": "replace", "add_columns": ["note"]},
                        {"destination_mode": "new", "dataset": dataset, "new_table": "planted",
                         "load_strategy": "replace"}):
        WizardDraft.objects.filter(owner=other_user).update(data={
            "connection_id": mallory.pk, "source_table": "orders", "columns": ["id", "amount", "note"],
            "destination": destination})
        step5 = client.post(reverse("wizard:step", args=[5]), {"name": "wipe", "preset": "manual",
                                                                "timezone": "UTC", "run_now": "1"})
        assert step5.status_code == 404, step5.status_code
        assert_hidden(step5, "POST step 5")
    # Her own workspace's admin page cannot claim the dataset either.
    claim = client.post(reverse("dataset_create"), {"dataset": dataset})
    assert claim.status_code == 400 and "alice" not in claim.content.decode()
    assert WorkspaceDataset.objects.get(dataset=dataset).workspace.name == "alice"

    # The API's compatibility check, with the columns in the body and with her connection (and data validation).
    for body in (
        {"source_columns": [{"name": "id", "type": "integer"}], "destination_table": f"{dataset}.{table}",
         "load_strategy": "incremental", "cursor_column": "id"},
        {"connection_id": mallory.pk, "source_table": "orders", "destination_table": f"{dataset}.{table}",
         "load_strategy": "incremental", "cursor_column": "id", "validate_data": True},
        {"connection_id": mallory.pk, "source_table": "orders", "destination_table": f"{dataset}.{table}",
         "load_strategy": "replace", "validate_data": True},
    ):
        response = client.post(reverse("api_validate_schema_compatibility"), body, content_type="application/json")
        assert response.status_code == 404 and response.json() == NOT_FOUND, body

    # Job creation: replace alice's table (adding a column, running at once), or a new table in her dataset.
    for body in (
        {"name": "wipe", "connection_id": mallory.pk, "source_table": "orders", "use_existing_table": True,
         "existing_table_name": f"{dataset}.{table}", "load_strategy": "replace", "add_columns": ["note"],
         "run_now": True},
        {"name": "wipe2", "connection_id": mallory.pk, "source_table": "orders", "use_existing_table": True,
         "existing_table_name": f"{dataset}.{table}", "load_strategy": "append", "run_now": True},
        {"name": "squat", "connection_id": mallory.pk, "source_table": "orders",
         "destination_table": f"{dataset}.planted", "load_strategy": "replace", "run_now": True},
    ):
        response = client.post(reverse("api_jobs"), body, content_type="application/json")
        assert response.status_code == 404 and response.json() == NOT_FOUND, body["name"]

    assert EtlJob.objects.count() == jobs_before and JobRun.objects.count() == runs_before
    assert [t.table_id for t in bq.list_tables(dataset)] == tables_before
    assert fingerprint(bq, dataset, table) == before

    # The control: alice, in her workspace, reaches the same table through the same endpoints.
    client.force_login(user)
    assert dataset in client.get(reverse("api_datasets")).json()["datasets"]
    mine = client.get(reverse("api_dataset_tables", args=[dataset])).json()["tables"]
    assert [(t["table_id"], t["row_count"]) for t in mine] == [(table, ROWS)]
    checked = client.post(reverse("api_validate_schema_compatibility"), {
        "source_columns": [{"name": "id", "type": "integer"}], "destination_table": f"{dataset}.{table}",
        "load_strategy": "append"}, content_type="application/json")
    assert checked.status_code == 200
