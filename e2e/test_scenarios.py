"""The spec's four scenarios, end to end through the browser with the real worker.

Each test clicks through the pages as a user would, runs jobs on the real
`db_worker`, and then compares the BigQuery table with the source databases:
row count, distinct keys and a checksum over every column.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from e2e.helpers import (
    choose_existing_table,
    create_connection,
    finish_wizard,
    htmx_idle,
    job_row,
    login,
    run_now_and_wait,
    set_strategy,
    wait_until,
    wizard_to_destination,
)
from ml_platform.etl.types import BigQueryField
from ml_platform.models import EtlJob, JobRun
from ml_platform.services import connections
from tests.plugins.harness import ROOT, django_subprocess_env

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PG_TRANSACTIONS = """
CREATE TABLE transactions (
    id bigint PRIMARY KEY, customer_id integer NOT NULL, amount numeric(12,2) NOT NULL,
    status varchar(16) NOT NULL, note text, is_refunded boolean NOT NULL,
    created_at timestamptz NOT NULL, order_date date NOT NULL)
"""


def pg_insert(first: int, last: int, table: str = "transactions") -> str:
    return (
        f"INSERT INTO {table} SELECT g, g % 977, (g % 100000) / 100.0 + 0.01, "
        "(ARRAY['paid','shipped','refunded'])[1 + g % 3], CASE WHEN g % 5 = 0 THEN NULL ELSE 'note ' || g END, "
        "g % 3 = 2, timestamptz '2025-01-01 00:00:00+00' + g * interval '1 minute', "
        f"date '2025-01-01' + (g / 1440)::int FROM generate_series({first}, {last}) g"
    )


MYSQL_TRANSACTIONS = """
CREATE TABLE transactions (
    id bigint PRIMARY KEY, customer_id int NOT NULL, amount decimal(12,2) NOT NULL,
    status varchar(16) NOT NULL, note text, is_refunded tinyint(1) NOT NULL,
    created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP, order_date date NOT NULL)
"""


def mysql_insert(first: int, last: int) -> str:
    return (
        "INSERT INTO transactions SELECT seq, seq % 977, (seq % 100000) / 100.0 + 0.01, "
        "ELT(1 + seq % 3, 'paid', 'shipped', 'refunded'), IF(seq % 5 = 0, NULL, CONCAT('note ', seq)), "
        "seq % 3 = 2, TIMESTAMP '2025-01-01 00:00:00' + INTERVAL seq MINUTE, "
        f"DATE '2025-01-01' + INTERVAL (seq DIV 1440) DAY FROM seq_{first}_to_{last}"
    )


SOURCE_CHECKSUM = {
    "postgresql": "SELECT count(*), count(DISTINCT id), sum(id), sum(customer_id), sum(amount), sum(length(status)), "
                  "count(note), sum(length(note)), sum(CASE WHEN is_refunded THEN 1 ELSE 0 END), "
                  "min(created_at), max(created_at), sum(order_date - date '2020-01-01') FROM transactions",
    "mysql": "SELECT count(*), count(DISTINCT id), sum(id), sum(customer_id), sum(amount), sum(char_length(status)), "
             "count(note), sum(char_length(note)), sum(is_refunded), min(created_at), max(created_at), "
             "sum(datediff(order_date, '2020-01-01')) FROM transactions",
}


def bq_checksum(bq, dataset: str, table: str, tag: str | None = None) -> tuple:
    where = "WHERE _source_tag = @tag" if tag else ""
    row = bq.query(
        "SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d, SUM(id) AS s_id, SUM(customer_id) AS s_c, "
        "SUM(amount) AS s_a, SUM(LENGTH(status)) AS s_st, COUNT(note) AS n_note, SUM(LENGTH(note)) AS s_note, "
        "COUNTIF(is_refunded) AS refunded, MIN(created_at) AS mn, MAX(created_at) AS mx, "
        f"SUM(DATE_DIFF(order_date, DATE '2020-01-01', DAY)) AS days FROM `{dataset}.{table}` {where}",
        {"tag": tag} if tag else None,
    )[0]
    return normalise(tuple(row.values()))


def source_checksum(src) -> tuple:
    return normalise(src.query(SOURCE_CHECKSUM[src.engine])[0])


def normalise(values: tuple) -> tuple:
    out = []
    for v in values:
        if isinstance(v, datetime):
            v = (v if v.tzinfo else v.replace(tzinfo=UTC)).astimezone(UTC).replace(tzinfo=None)
        elif isinstance(v, Decimal | float) or (v is not None and not isinstance(v, (int, str))):
            v = Decimal(str(v)).normalize()
        out.append(v)
    return tuple(out)


def add(a: tuple, b: tuple) -> tuple:
    """Checksum of the union of two disjoint row sets (counts and sums add, min/max combine)."""
    merged = [x + y for x, y in zip(a[:9], b[:9], strict=True)]
    merged += [min(a[9], b[9]), max(a[10], b[10]), a[11] + b[11]]
    merged[1] = None  # distinct ids overlap across sources; compared separately
    return tuple(merged)


# --------------------------------------------------------------------------- A


def test_scenario_a_credential_rotation(page: Page, live_server, user, pg_source, pg_password_role, bq, bq_dataset,
                                        bq_settings, task_worker) -> None:
    role, password = pg_password_role
    pg_source.execute(PG_TRANSACTIONS, pg_insert(1, 200_000), f"GRANT SELECT ON transactions TO {role}", "ANALYZE")
    base = live_server.url
    login(page, base)
    create_connection(page, base, name="production_db", engine="postgresql", host=pg_source.host,
                      port=pg_source.port, database=pg_source.database, username=role, password=password)
    wizard_to_destination(page, base, connection="production_db", table="public.transactions")
    page.get_by_label("Dataset").select_option(bq_dataset)
    page.get_by_label("New table name").fill("transactions")
    set_strategy(page, "Incremental", cursor="id")
    finish_wizard(page, name="transactions")
    run_now_and_wait(page, base, "transactions")
    assert bq_checksum(bq, bq_dataset, "transactions") == source_checksum(pg_source)
    table_before = bq.client.get_table(f"{bq_dataset}.transactions")

    # The DBA rotates the password: the old one stops working and a run says why.
    pg_source.execute(f"ALTER ROLE {role} PASSWORD 'v2-{password}'", pg_insert(200_001, 203_000))
    run_now_and_wait(page, base, "transactions")
    failed = JobRun.objects.order_by("-created_at").first()
    assert failed.status == "failed" and "authentication failed" in failed.error.lower()
    assert password not in failed.error
    expect(job_row(page, "transactions").get_by_test_id("last-run-status")).to_have_text("Failed")

    create_connection(page, base, name="production_db_v2", engine="postgresql", host=pg_source.host,
                      port=pg_source.port, database=pg_source.database, username=role, password=f"v2-{password}")
    page.goto(f"{base}/jobs/")
    job_row(page, "transactions").get_by_role("link", name="Reconnect").click()
    page.get_by_label("New connection").select_option(label="production_db_v2")
    expect(page.get_by_label("Source table")).to_have_value("public.transactions")
    expect(page.get_by_test_id("report-verdict")).to_have_text("Compatible")
    page.get_by_role("button", name="Reconnect").click()
    expect(job_row(page, "transactions")).to_contain_text("production_db_v2")

    run_now_and_wait(page, base, "transactions")
    last = JobRun.objects.order_by("-created_at").first()
    assert last.status == "succeeded" and last.rows_loaded == 3000  # exactly the new rows
    assert bq_checksum(bq, bq_dataset, "transactions") == source_checksum(pg_source)
    table_after = bq.client.get_table(f"{bq_dataset}.transactions")
    assert table_after.created == table_before.created
    assert [(f.name, f.field_type) for f in table_after.schema] == [(f.name, f.field_type)
                                                                    for f in table_before.schema]


# --------------------------------------------------------------------------- B


def test_scenario_b_resume_a_failed_migration(page: Page, live_server, user, pg_source, bq, bq_dataset,
                                              bq_settings, tmp_path) -> None:
    pg_source.execute(PG_TRANSACTIONS, pg_insert(1, 400_000), "ANALYZE")
    base = live_server.url
    conn = connections.connection_create(owner=user, name="warehouse_pg", **pg_source.as_connection_fields())
    login(page, base)
    wizard_to_destination(page, base, connection="warehouse_pg", table="public.transactions")
    page.get_by_label("Dataset").select_option(bq_dataset)
    page.get_by_label("New table name").fill("transactions")
    set_strategy(page, "Incremental", cursor="id")
    finish_wizard(page, name="first migration")
    job = EtlJob.objects.get(name="first migration")

    # The migration starts on a worker that dies after its first checkpoint.
    env = django_subprocess_env({"BIGQUERY_EMULATOR_HOST": bq_settings.BIGQUERY_EMULATOR_HOST,
                                 "ETL_SPOOL_DIR": str(tmp_path), "ETL_CHECKPOINT_ROWS": "100000",
                                 "ETL_CHUNK_ROWS": "25000"})
    worker = subprocess.Popen([sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay",
                               "--interval", "0.1"], cwd=ROOT, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        job_row(page, "first migration").get_by_role("button", name="Run Now").click()
        wait_until(lambda: EtlJob.objects.get(pk=job.pk).watermark is not None, 120, "the first checkpoint")
        os.killpg(worker.pid, signal.SIGKILL)
    finally:
        worker.wait(timeout=10)
    loaded = bq.row_count(bq_dataset, "transactions")
    assert 0 < loaded < 400_000

    # The scheduler notices the dead worker; the user deletes the job (the table stays).
    time.sleep(2.5)
    subprocess.run([sys.executable, "manage.py", "etl_scheduler", "--once"], cwd=ROOT, check=True, timeout=60,
                   env=django_subprocess_env({"ETL_HEARTBEAT_TIMEOUT": "2"}), capture_output=True)
    page.goto(f"{base}/jobs/")
    expect(job_row(page, "first migration").get_by_test_id("last-run-status")).to_have_text("Failed")
    job_row(page, "first migration").get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete job").click()
    expect(page.get_by_test_id("jobs-empty")).to_be_visible()

    # A new job on the same table shows what is there and where it will resume.
    wizard_to_destination(page, base, connection="warehouse_pg", table="public.transactions")
    choose_existing_table(page, bq_dataset, "transactions")
    set_strategy(page, "Incremental", cursor="id")
    max_id = bq.query(f"SELECT MAX(id) AS m FROM `{bq_dataset}.transactions`")[0]["m"]
    state = page.get_by_test_id("table-state")
    expect(state).to_contain_text(f"{loaded}")
    expect(state).to_contain_text(f"Resumes after id {max_id:,}")
    finish_wizard(page, name="resumed migration")
    worker = subprocess.Popen([sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay",
                               "--interval", "0.1"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        run_now_and_wait(page, base, "resumed migration", timeout_s=240)
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    run = JobRun.objects.get(job__name="resumed migration")
    assert run.status == "succeeded" and run.rows_loaded == 400_000 - loaded
    assert bq_checksum(bq, bq_dataset, "transactions") == source_checksum(pg_source)
    del conn


# --------------------------------------------------------------------------- C


def test_scenario_c_several_sources_into_one_table(page: Page, live_server, user, pg_source, mysql_source, bq,
                                                   bq_dataset, bq_settings, task_worker) -> None:
    pg_source.execute(PG_TRANSACTIONS, pg_insert(1, 3000))
    mysql_source.execute(MYSQL_TRANSACTIONS, mysql_insert(1, 2000))  # ids overlap with the EU source
    connections.connection_create(owner=user, name="eu_db", **pg_source.as_connection_fields())
    connections.connection_create(owner=user, name="us_db", **mysql_source.as_connection_fields())
    base = live_server.url
    login(page, base)
    wizard_to_destination(page, base, connection="eu_db", table="public.transactions")
    page.get_by_label("Dataset").select_option(bq_dataset)
    page.get_by_label("New table name").fill("global_transactions")
    set_strategy(page, "Incremental", cursor="id", tag="eu")
    finish_wizard(page, name="eu transactions")

    wizard_to_destination(page, base, connection="us_db", table=f"{mysql_source.database}.transactions")
    choose_existing_table(page, bq_dataset, "global_transactions")
    expect(page.get_by_test_id("other-jobs")).to_contain_text("eu transactions")
    # MySQL TINYINT(1) may hold 2: into the BOOL column it needs a data check first (it passes: only 0 and 1).
    refunded = page.locator('#report-columns tr[data-column="is_refunded"]')
    expect(refunded).to_contain_text("Needs data check")
    page.get_by_role("button", name="Validate data").click()
    expect(refunded).not_to_contain_text("Needs data check")
    # The report says so before Next: no tag, or a tag the other job uses, is an error and Next stays disabled.
    set_strategy(page, "Incremental", cursor="id")
    expect(page.get_by_test_id("report-errors")).to_contain_text("give this source its own tag")
    expect(page.locator("#wizard-next")).to_be_disabled()
    set_strategy(page, "Incremental", cursor="id", tag="eu")
    expect(page.get_by_test_id("report-errors")).to_contain_text("already used")
    expect(page.locator("#wizard-next")).to_be_disabled()
    set_strategy(page, "Incremental", cursor="id", tag="us")
    finish_wizard(page, name="us transactions")

    run_now_and_wait(page, base, "eu transactions")
    run_now_and_wait(page, base, "us transactions")
    pg_source.execute(pg_insert(3001, 3500))
    mysql_source.execute(mysql_insert(2001, 2300))
    run_now_and_wait(page, base, "eu transactions")
    run_now_and_wait(page, base, "us transactions")
    eu, us = source_checksum(pg_source), source_checksum(mysql_source)
    assert bq_checksum(bq, bq_dataset, "global_transactions", tag="eu") == eu
    assert bq_checksum(bq, bq_dataset, "global_transactions", tag="us") == us

    # The US source is rebuilt: a replace run of `us` must not touch `eu`'s rows.
    mysql_source.execute("DELETE FROM transactions WHERE id > 2200", "UPDATE transactions SET note = 'fixed'")
    page.goto(f"{base}/jobs/")
    job_row(page, "us transactions").get_by_role("link", name="Edit").click()
    page.get_by_label("Replace", exact=True).check()
    page.get_by_role("button", name="Save").click()
    run_now_and_wait(page, base, "us transactions")
    assert bq_checksum(bq, bq_dataset, "global_transactions", tag="eu") == eu
    us = source_checksum(mysql_source)
    assert bq_checksum(bq, bq_dataset, "global_transactions", tag="us") == us
    total = bq_checksum(bq, bq_dataset, "global_transactions")
    expected = add(eu, us)
    assert total[:1] + total[2:] == expected[:1] + expected[2:]
    dup = bq.query(f"SELECT COUNT(*) AS n FROM (SELECT _source_tag, id FROM `{bq_dataset}.global_transactions` "
                   "GROUP BY 1, 2 HAVING COUNT(*) > 1)")[0]["n"]
    assert dup == 0


# --------------------------------------------------------------------------- D


def test_scenario_d_schema_evolution(page: Page, live_server, user, pg_source, bq, bq_dataset, bq_settings,
                                     task_worker) -> None:
    pg_source.execute(PG_TRANSACTIONS, pg_insert(1, 2000))
    connections.connection_create(owner=user, name="shop_db", **pg_source.as_connection_fields())
    base = live_server.url
    login(page, base)
    wizard_to_destination(page, base, connection="shop_db", table="public.transactions")
    page.get_by_label("Dataset").select_option(bq_dataset)
    page.get_by_label("New table name").fill("transactions")
    set_strategy(page, "Incremental", cursor="id")
    finish_wizard(page, name="shop")
    run_now_and_wait(page, base, "shop")

    # (1) New source columns: Edit offers to add them; new rows fill them, old rows stay NULL.
    pg_source.execute("ALTER TABLE transactions ADD COLUMN channel text, ADD COLUMN discount numeric(5,2)",
                      pg_insert(2001, 2100),
                      "UPDATE transactions SET channel = 'app', discount = 1.5 WHERE id > 2000")
    page.goto(f"{base}/jobs/")
    job_row(page, "shop").get_by_role("link", name="Edit").click()
    page.get_by_label("channel", exact=True).check()
    page.get_by_label("discount", exact=True).check()
    can_alter = page.get_by_test_id("can-alter")
    expect(can_alter).to_contain_text("channel")
    expect(can_alter).to_contain_text("discount")
    can_alter.get_by_label("channel").check()
    can_alter.get_by_label("discount").check()
    page.get_by_role("button", name="Save").click()
    # What the user sees before going on: the jobs page with the confirmation (the edit is committed).
    expect(page.get_by_text("Saved job 'shop'.")).to_be_visible()
    fields = {f.name: f.field_type for f in bq.get_table_schema(bq_dataset, "transactions").fields}
    assert fields["channel"] == "STRING" and fields["discount"] == "NUMERIC"
    run_now_and_wait(page, base, "shop")
    filled = bq.query(f"SELECT COUNTIF(channel = 'app') AS app, COUNTIF(channel IS NULL) AS old, "
                      f"SUM(discount) AS d FROM `{bq_dataset}.transactions`")[0]
    assert (filled["app"], filled["old"], Decimal(str(filled["d"]))) == (100, 2000, Decimal("150"))
    assert bq_checksum(bq, bq_dataset, "transactions") == source_checksum(pg_source)

    # (2) The job is deleted, the source grows one more column, and a new job takes the same table.
    job_row(page, "shop").get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete job").click()
    pg_source.execute("ALTER TABLE transactions ADD COLUMN region text", pg_insert(2101, 2200),
                      "UPDATE transactions SET channel = 'web', discount = 0.5, region = 'eu' WHERE id > 2100")
    wizard_to_destination(page, base, connection="shop_db", table="public.transactions")
    choose_existing_table(page, bq_dataset, "transactions")
    set_strategy(page, "Incremental", cursor="id")
    can_alter = page.get_by_test_id("can-alter")
    expect(can_alter).to_contain_text("region")
    can_alter.get_by_label("region").check()
    htmx_idle(page)  # the reports asked for by the strategy, the cursor and the tick have answered
    expect(can_alter.get_by_label("region")).to_be_checked()
    expect(page.get_by_test_id("report-verdict")).to_have_text("Compatible")
    finish_wizard(page, name="shop again")
    assert "region" in [f.name for f in bq.get_table_schema(bq_dataset, "transactions").fields]
    run_now_and_wait(page, base, "shop again")
    run = JobRun.objects.get(job__name="shop again")
    assert run.status == "succeeded" and run.rows_loaded == 100, run.error
    assert bq.query(f"SELECT COUNTIF(region = 'eu') AS n FROM `{bq_dataset}.transactions`")[0]["n"] == 100
    assert bq_checksum(bq, bq_dataset, "transactions") == source_checksum(pg_source)


def test_add_columns_ticks_survive_reports_in_flight(page: Page, live_server, user, pg_source, bq, bq_dataset,
                                                    bq_settings, task_worker, settings) -> None:
    """Tick "Add these columns" and go on at once while slow reports are in flight: nothing is lost.

    The report endpoints answer late (test-only ETL_TEST_REPORT_DELAY_MS), so every report asked
    for by the strategy, the cursor or a column change is still in flight when the user ticks
    and presses Next or Save, as a quick user on a loaded server does.
    """
    settings.ETL_TEST_REPORT_DELAY_MS = 1500
    pg_source.execute("CREATE TABLE items (id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, region text)",
                      "INSERT INTO items SELECT g, g, 'eu' FROM generate_series(1, 300) g")
    bq.create_table(bq_dataset, "items", [BigQueryField("id", "INT64"), BigQueryField("amount", "NUMERIC")])
    connections.connection_create(owner=user, name="items_db", **pg_source.as_connection_fields())
    base = live_server.url
    login(page, base)

    # Wizard: the strategy and cursor reports are in flight; tick, then Next immediately.
    wizard_to_destination(page, base, connection="items_db", table="public.items")
    choose_existing_table(page, bq_dataset, "items")
    can_alter = page.get_by_test_id("can-alter")
    expect(can_alter).to_contain_text("region")
    set_strategy(page, "Incremental", cursor="id")
    can_alter.get_by_label("region").check()
    finish_wizard(page, name="items")
    assert "region" in [f.name for f in bq.get_table_schema(bq_dataset, "items").fields]
    assert EtlJob.objects.get(name="items").selected_columns == ["id", "amount", "region"]
    run_now_and_wait(page, base, "items")
    assert bq.query(f"SELECT COUNTIF(region = 'eu') AS n FROM `{bq_dataset}.items`")[0]["n"] == 300

    # Edit: a tick made while the report for another column is in flight stays ticked.
    pg_source.execute("ALTER TABLE items ADD COLUMN channel text, ADD COLUMN discount numeric(5,2)",
                      "INSERT INTO items SELECT g, g, 'eu', 'app', 1.5 FROM generate_series(301, 400) g")
    job_row(page, "items").get_by_role("link", name="Edit").click()
    page.get_by_label("channel", exact=True).check()
    can_alter = page.get_by_test_id("can-alter")
    expect(can_alter.get_by_label("channel")).to_be_visible()
    page.get_by_label("discount", exact=True).check()  # its report is in flight...
    can_alter.get_by_label("channel").check()  # ...while this box is ticked
    htmx_idle(page)
    expect(can_alter.get_by_label("channel")).to_be_checked()
    can_alter.get_by_label("discount").check()
    page.get_by_role("button", name="Save").click()  # at once: the tick's own report is still in flight
    expect(page.get_by_text("Saved job 'items'.")).to_be_visible()
    job = EtlJob.objects.get(name="items")
    assert job.selected_columns == ["id", "amount", "region", "channel", "discount"]
    fields = [f.name for f in bq.get_table_schema(bq_dataset, "items").fields]
    assert fields == ["id", "amount", "region", "channel", "discount"]
    run_now_and_wait(page, base, "items")
    filled = bq.query(f"SELECT COUNTIF(channel = 'app') AS app, SUM(discount) AS d FROM `{bq_dataset}.items`")[0]
    assert (filled["app"], Decimal(str(filled["d"]))) == (100, Decimal("150"))
