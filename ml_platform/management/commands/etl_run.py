"""Run one ETL job in the foreground, with a progress bar: the same service the worker calls."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from ml_platform.etl.runner import RunProgress
from ml_platform.models import EtlJob, JobRun
from ml_platform.runs.lifecycle import run_sync
from ml_platform.runs.records import RunAlreadyActive

BAR = 30


class Command(BaseCommand):
    help = "Run an ETL job now, in this process, and show its progress."

    def add_arguments(self, parser) -> None:
        parser.add_argument("job_id", type=int)

    def handle(self, *args, job_id: int, **options) -> None:
        job = EtlJob.objects.select_related("connection").filter(pk=job_id).first()
        if job is None:
            raise CommandError(f"No ETL job with id {job_id}")
        tty = sys.stdout.isatty()

        def echo(p: RunProgress) -> None:
            total = p.rows_estimate or 0
            done = min(p.rows_extracted, total) if total else 0
            filled = int(BAR * done / total) if total else 0
            line = (f"[{'#' * filled}{'.' * (BAR - filled)}] {p.rows_extracted:,}"
                    f"{f' / ~{total:,}' if total else ''} rows · {p.phase} · {p.checkpoints} checkpoint(s)")
            self.stdout.write(("\r" + line) if tty else line, ending="" if tty else "\n")

        try:
            run = run_sync(job=job, echo=echo)
        except RunAlreadyActive as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write("")
        if run.status != JobRun.Status.SUCCEEDED:
            raise CommandError(f"Run {run.pk} {run.status}: {run.error}")
        self.stdout.write(self.style.SUCCESS(
            f"Run {run.pk} succeeded: {run.rows_loaded:,} rows loaded into {job.destination_display} "
            f"in {run.duration_seconds or 0:.1f} s"))
