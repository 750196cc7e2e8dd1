"""Wait for BigQuery (the emulator under `make run`) and create the default dataset."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ml_platform.etl.bigquery import BigQueryError
from ml_platform.warehouse import warehouse


class Command(BaseCommand):
    help = "Wait until BigQuery answers, then make sure the default dataset exists."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--timeout", type=float, default=60.0)

    def handle(self, *args, **options) -> None:
        deadline = time.monotonic() + options["timeout"]
        dataset = settings.BIGQUERY_DEFAULT_DATASET
        while True:
            try:
                warehouse().create_dataset(dataset)
                break
            except (BigQueryError, OSError) as exc:
                if time.monotonic() > deadline:
                    raise CommandError(f"BigQuery did not answer within {options['timeout']:.0f} s: {exc}") from exc
                time.sleep(0.5)
        self.stdout.write(self.style.SUCCESS(f"BigQuery dataset {dataset!r} is ready"))
