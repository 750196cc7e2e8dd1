"""Embedded defaults for `make run`: a demo user, a demo shop database, a saved connection.

Idempotent: a second run keeps existing data (and the demo user's password).
"""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from ml_platform.models import Connection
from ml_platform.services import connections

DEMO_USER = "demo"
DEMO_PASSWORD = "demo-password"  # local embedded default only; printed for the user
DEMO_CONNECTION = "demo_shop"
DEMO_DATABASE = "demo_shop.sqlite3"

SCHEMA = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    email VARCHAR(255) NOT NULL UNIQUE,
    full_name TEXT NOT NULL,
    country CHAR(2),
    is_vip BOOLEAN NOT NULL DEFAULT 0,
    signup_date DATE NOT NULL,
    preferences JSON
);
CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    sku VARCHAR(32) NOT NULL UNIQUE,
    name TEXT NOT NULL,
    category TEXT,
    price DECIMAL(10,2) NOT NULL,
    weight_kg REAL,
    in_stock BOOLEAN NOT NULL DEFAULT 1,
    attributes JSON
);
CREATE TABLE transactions (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    product_id INTEGER NOT NULL REFERENCES products(id),
    quantity INTEGER NOT NULL,
    amount DECIMAL(12,2) NOT NULL,
    discount_rate REAL,
    currency CHAR(3) NOT NULL,
    status VARCHAR(16) NOT NULL,
    is_refunded BOOLEAN NOT NULL DEFAULT 0,
    note TEXT,
    created_at TIMESTAMP NOT NULL,
    order_date DATE NOT NULL,
    metadata JSON
);
CREATE INDEX transactions_created_at ON transactions(created_at);
"""

COUNTRIES = ["DE", "FR", "US", "GB", "NL", "ES", "IT", "PL", None]
CATEGORIES = ["books", "garden", "kitchen", "toys", "tools", None]
STATUSES = ["paid", "paid", "paid", "shipped", "cancelled", "refunded"]


def build_demo_database(path: Path, *, transactions: int = 120_000, seed: int = 7) -> None:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    try:
        conn.executescript(SCHEMA)
        start = date(2024, 1, 1)
        customers = [
            (
                i,
                f"customer{i}@example.com",
                f"Customer {i}",
                rng.choice(COUNTRIES),
                int(rng.random() < 0.1),
                (start + timedelta(days=rng.randrange(600))).isoformat(),
                json.dumps({"newsletter": rng.random() < 0.5, "lang": rng.choice(["en", "de", "fr"])})
                if rng.random() < 0.8
                else None,
            )
            for i in range(1, 5_001)
        ]
        conn.executemany("INSERT INTO customers VALUES (?,?,?,?,?,?,?)", customers)
        products = [
            (
                i,
                f"SKU-{i:05d}",
                f"Product {i}",
                rng.choice(CATEGORIES),
                str(Decimal(rng.randrange(199, 99_999)) / 100),
                round(rng.uniform(0.05, 25), 3) if rng.random() < 0.9 else None,
                int(rng.random() < 0.85),
                json.dumps({"color": rng.choice(["red", "green", "blue"]), "tags": ["demo"]}),
            )
            for i in range(1, 501)
        ]
        conn.executemany("INSERT INTO products VALUES (?,?,?,?,?,?,?,?)", products)
        base = datetime(2025, 1, 1, tzinfo=UTC)

        def rows():
            for i in range(1, transactions + 1):
                created = base + timedelta(seconds=i * 180 + rng.randrange(180))
                status = rng.choice(STATUSES)
                yield (
                    i,
                    rng.randrange(1, 5_001),
                    rng.randrange(1, 501),
                    rng.randrange(1, 6),
                    str(Decimal(rng.randrange(100, 250_000)) / 100),
                    round(rng.random() * 0.3, 4) if rng.random() < 0.3 else None,
                    rng.choice(["EUR", "USD", "GBP"]),
                    status,
                    int(status == "refunded"),
                    rng.choice(["gift", "express", "fragile"]) if rng.random() < 0.15 else None,
                    created.strftime("%Y-%m-%d %H:%M:%S"),
                    created.date().isoformat(),
                    json.dumps({"channel": rng.choice(["web", "app", "store"])}) if rng.random() < 0.7 else None,
                )

        conn.executemany("INSERT INTO transactions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows())
        conn.commit()
        conn.execute("ANALYZE")
    finally:
        conn.close()
    tmp.replace(path)


class Command(BaseCommand):
    help = "Create the demo user, the demo shop SQLite database and a saved connection to it (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--transactions", type=int, default=120_000)

    def handle(self, *args, **options) -> None:
        User = get_user_model()
        user = User.objects.filter(username=DEMO_USER).first()
        if user is None:
            user = User.objects.create_user(username=DEMO_USER, password=DEMO_PASSWORD)
            self.stdout.write(f"Created demo user {DEMO_USER!r}")

        # SQLite sources live under ETL_SQLITE_ROOT; the connection stores the path relative to it.
        root = Path(settings.ETL_SQLITE_ROOT)
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        db_path = root / DEMO_DATABASE
        legacy = Path(settings.DATA_DIR) / DEMO_DATABASE  # where make run kept it before the source policy
        if not db_path.exists() and legacy.exists():
            legacy.replace(db_path)
        if not db_path.exists():
            self.stdout.write(f"Building demo shop database at {db_path} ...")
            build_demo_database(db_path, transactions=options["transactions"])

        demo = Connection.objects.filter(owner=user, name=DEMO_CONNECTION).first()
        if demo is None:
            connections.connection_create(
                owner=user, name=DEMO_CONNECTION, engine=Connection.Engine.SQLITE, database=DEMO_DATABASE
            )
            self.stdout.write(f"Created connection {DEMO_CONNECTION!r}")
        elif demo.database != DEMO_DATABASE and Path(demo.database).name == DEMO_DATABASE:
            connections.connection_update(connection=demo, database=DEMO_DATABASE)

        self.stdout.write(self.style.SUCCESS(f"Log in at http://127.0.0.1:8000/ as {DEMO_USER} / {DEMO_PASSWORD}"))
