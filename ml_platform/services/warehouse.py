"""The configured BigQuery, built from settings (the emulator locally, ADC in production)."""

from __future__ import annotations

from django.conf import settings

from ml_platform.etl.bigquery import BigQuery


def warehouse() -> BigQuery:
    return BigQuery(
        project=settings.BIGQUERY_PROJECT,
        emulator_host=settings.BIGQUERY_EMULATOR_HOST or None,
        location=settings.BIGQUERY_LOCATION,
    )
