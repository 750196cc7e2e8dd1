"""The scheduler loop: enqueue due runs exactly once, fail runs whose worker died."""

from __future__ import annotations

import signal
import time

from django.core.management.base import BaseCommand

from ml_platform.runs import lifecycle, records


class Command(BaseCommand):
    help = "Enqueue due scheduled ETL runs and mark stale runs failed, every --interval seconds."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--interval", type=float, default=10.0)
        parser.add_argument("--once", action="store_true", help="Run one pass and exit")

    def handle(self, *args, **options) -> None:
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        while not stop:
            stale = records.runs_fail_stale()
            enqueued = lifecycle.enqueue_due_jobs()
            if stale or enqueued:
                self.stdout.write(f"scheduler: enqueued {len(enqueued)} run(s), failed {stale} stale run(s)")
            if options["once"]:
                return
            slept = 0.0
            while not stop and slept < options["interval"]:
                time.sleep(0.25)
                slept += 0.25
