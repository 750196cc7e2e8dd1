"""Wait for BigQuery (the emulator under `make run`) and create the default dataset."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ml_platform.etl.bq_errors import BigQueryError
from ml_platform.management.commands.seed_demo import DEMO_CONNECTION, DEMO_USER
from ml_platform.models import Connection, EtlJob
from ml_platform.services import jobs, sources, workspaces
from ml_platform.services.warehouse import warehouse

DEMO_JOB = "demo transactions"


class Command(BaseCommand):
    help = "Wait until BigQuery answers, then make sure the default dataset exists."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--timeout", type=float, default=60.0)
        parser.add_argument("--demo-job", action="store_true",
                            help="Also create the demo job (every minute, demo_shop.transactions -> analytics)")

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
        if options["demo_job"]:
            self.demo_job(dataset)

    def demo_job(self, dataset: str) -> None:
        """An incremental job scheduled every minute, so `make run` shows the scheduler and worker at work."""
        connection = Connection.objects.filter(owner__username=DEMO_USER, name=DEMO_CONNECTION).first()
        if connection is None:
            return
        # The demo dataset belongs to the demo workspace (a site administrator's assignment in production).
        try:
            workspaces.dataset_assign(workspace=connection.workspace, dataset=dataset)
        except workspaces.DatasetTaken as exc:
            self.stdout.write(self.style.WARNING(f"No demo job: {exc}"))
            return
        if EtlJob.objects.filter(workspace=connection.workspace, name=DEMO_JOB).exists():
            return
        if warehouse().table_exists(dataset, "demo_transactions"):
            return  # the user deleted the demo job; keep their table and do not recreate the job
        jobs.job_create(
            owner=connection.owner, workspace=connection.workspace, name=DEMO_JOB, connection=connection, source_schema="",
            source_table="transactions", source_columns=sources.get_columns(connection, None, "transactions"),
            destination_dataset=dataset, destination_table="demo_transactions", use_existing_table=False,
            load_strategy="incremental", cursor_column="id", schedule="* * * * *", schedule_timezone="UTC",
            # SQLite BOOLEAN columns may hold any integer: the check scans the demo data (0/1 only) before creating.
            validate_data=True,
        )
        self.stdout.write(self.style.SUCCESS(f"Created demo job {DEMO_JOB!r} (runs every minute)"))
