import sqlite3
from pathlib import Path

import pytest
from django.core.management import call_command

from ml_platform.models import Connection, EtlJob


@pytest.mark.django_db
def test_it_seeds_a_demo_shop_and_is_idempotent(settings, tmp_path: Path) -> None:
    settings.DATA_DIR = tmp_path
    settings.ETL_SQLITE_ROOT = tmp_path / "sources"
    call_command("seed_demo")
    call_command("seed_demo")
    conn = Connection.objects.get(name="demo_shop")
    assert conn.owner.username == "demo"
    assert conn.owner.check_password("demo-password")
    # The demo source lives in the SQLite source directory, named relative to it.
    assert conn.database == "demo_shop.sqlite3"
    db = sqlite3.connect(settings.ETL_SQLITE_ROOT / conn.database)
    try:
        assert db.execute("SELECT COUNT(*) FROM transactions").fetchone()[0] >= 100_000
        assert db.execute("SELECT COUNT(*) FROM customers").fetchone()[0] > 0
        assert db.execute("SELECT COUNT(*) FROM products").fetchone()[0] > 0
        # NULLs present where the demo promises them
        assert db.execute("SELECT COUNT(*) FROM transactions WHERE note IS NULL").fetchone()[0] > 0
        assert db.execute("SELECT COUNT(*) FROM transactions WHERE metadata IS NULL").fetchone()[0] > 0
    finally:
        db.close()
    assert Connection.objects.filter(name="demo_shop").count() == 1


@pytest.mark.django_db
def test_make_run_creates_the_demo_job_and_its_first_run_loads_every_row(settings, tmp_path: Path, bq, bq_settings,
                                                                         bq_dataset) -> None:
    """What `make run` does (Procfile: seed_demo, then `bq_bootstrap --demo-job`), then the demo job's first run."""
    from ml_platform.runs import lifecycle

    settings.DATA_DIR = tmp_path
    settings.ETL_SQLITE_ROOT = tmp_path / "sources"
    settings.BIGQUERY_DEFAULT_DATASET = bq_dataset
    call_command("seed_demo")
    call_command("bq_bootstrap", "--demo-job", "--timeout", "30")
    job = EtlJob.objects.get(name="demo transactions")
    assert job.schedule == "* * * * *" and job.destination_table == "demo_transactions"
    run = lifecycle.run_sync(job=job)
    assert run.status == "succeeded", run.error
    source = sqlite3.connect(settings.ETL_SQLITE_ROOT / job.connection.database)
    try:
        expected = source.execute("SELECT COUNT(*) FROM transactions").fetchone()[0]
    finally:
        source.close()
    assert bq.row_count(bq_dataset, "demo_transactions") == expected
