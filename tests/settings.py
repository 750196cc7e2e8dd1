"""Test settings: the product's settings with a PostgreSQL Django database.

PostgreSQL (not SQLite) because the worker and scheduler tests run separate
processes against the same database, and because it is the production database.
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ml_platform")
# Playwright's sync API keeps an event loop running in the test thread.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from ml_platform.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# One test database per pytest process, so parallel runs on one machine never drop each other's.
DATABASES["default"]["TEST"] = {"NAME": f"test_ml_platform_{os.getpid()}"}  # noqa: F405

# SQLite sources in tests are pytest's temporary files; the product's data directory stays outside.
ETL_SQLITE_ROOT = Path(tempfile.gettempdir()).resolve()
