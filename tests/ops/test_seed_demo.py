import sqlite3
from pathlib import Path

import pytest
from django.core.management import call_command

from ml_platform.models import Connection


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
