"""Verify a job (or repair what the last verification found) in the foreground: the worker's service."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ml_platform.models import EtlJob, JobRun
from ml_platform.runs import records, verify
from ml_platform.services import verification


class Command(BaseCommand):
    help = "Compare an ETL job's BigQuery rows with its source (checksums by key range); --repair fixes them."

    def add_arguments(self, parser) -> None:
        parser.add_argument("job_id", type=int)
        parser.add_argument("--repair", action="store_true",
                            help="reload the key ranges the last verification found differing, then verify again")

    def handle(self, *args, job_id: int, repair: bool, **options) -> None:
        job = EtlJob.objects.select_related("connection").filter(pk=job_id).first()
        if job is None:
            raise CommandError(f"No ETL job with id {job_id}")
        kind = JobRun.Kind.REPAIR if repair else JobRun.Kind.VERIFY
        try:
            run = verify.run_sync(job=job, kind=kind)
        except (records.RunAlreadyActive, verification.NothingToRepair) as exc:
            raise CommandError(str(exc)) from None
        if run.status != JobRun.Status.SUCCEEDED:
            raise CommandError(f"{run.get_kind_display()} {run.pk} {run.status}: {run.error}")
        result = verification.result_of(run)
        assert result is not None
        if repair:
            self.stdout.write(f"Reloaded {run.rows_loaded:,} rows.")
        scope = f" (tag {job.source_tag})" if job.source_tag else ""
        self.stdout.write(f"{result.source_rows:,} source rows, {result.dest_rows:,} BigQuery rows{scope}; "
                          f"{result.queries} queries, {result.rows_fetched:,} rows fetched, {result.seconds} s")
        if result.in_sync:
            self.stdout.write(self.style.SUCCESS(f"{job.name}: in sync"))
            return
        if result.keyed:
            for label, count, keys in (("missing", result.missing, result.missing_keys),
                                       ("extra", result.extra, result.extra_keys),
                                       ("changed", result.changed, result.changed_keys)):
                shown = ", ".join(str(k) for k in keys[:20]) + (", …" if count > 20 else "")
                self.stdout.write(f"{count:,} {label}{': ' + shown if count else ''}")
        if result.message:
            self.stdout.write(result.message)
        raise CommandError(f"{job.name}: not in sync")
