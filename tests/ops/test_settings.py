"""Settings are env-driven; a bad value names its variable at start-up."""

import os
import subprocess
import sys

import pytest

from tests.plugins.harness import ROOT


def import_settings(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import ml_platform.settings as s; print(s.DATABASES['default']['ENGINE'])"],
        cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "nosuchdb://x"),
        ("BIGQUERY_EMULATOR_HOST", "127.0.0.1:9050"),
        ("FIELD_ENCRYPTION_KEYS", "not-a-fernet-key"),
        ("SECRET_KEY", "short"),
        ("DEBUG", "maybe"),
        ("ETL_CHUNK_ROWS", "lots"),
        ("TIME_ZONE", "Mars/Olympus"),
        ("LOGIN_FAILURE_LIMIT", "0"),
        ("LOGIN_COOLOFF_MINUTES", "soon"),
        ("LOGIN_TRUSTED_PROXIES", "-1"),
    ],
)
def test_it_names_the_variable_of_a_bad_value(variable: str, value: str) -> None:
    result = import_settings(**{variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert variable in result.stderr


def test_it_defaults_to_a_sqlite_file_under_data() -> None:
    result = import_settings()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "django.db.backends.sqlite3"


def test_it_accepts_postgresql_as_the_django_database() -> None:
    result = import_settings(DATABASE_URL="postgres://postgres@127.0.0.1:5432/ml_platform")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "django.db.backends.postgresql"
