"""The worker's side of a split first load (issue 18): run one key range through the ordinary runner.

A range is `etl.runner.run_job` with the parent run's spec narrowed to `after < cursor <= through`,
run id `<parent>r<index>` (its ledger units and commit job ids) and the parent's fencing token
(a later run of the job fences every range off). It keeps the parent's heartbeat alive while it
works; `range_runs` records its outcome.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from django.conf import settings

from ml_platform import range_runs, runs, sources, verification
from ml_platform.etl.errors import RunError, scrub
from ml_platform.etl.runner import RunProgress, run_job
from ml_platform.models import RunRange
from ml_platform.utils import connection_manager as cm
from ml_platform.warehouse import warehouse

logger = logging.getLogger(__name__)


class _RangeRecorder:
    """Progress of one range, written at most once a second (and the parent's sum with it)."""

    def __init__(self, rng: RunRange) -> None:
        self.rng, self.last = rng, 0.0

    def __call__(self, p: RunProgress) -> None:
        now = time.monotonic()
        if p.phase != "checkpoint" and now - self.last < runs.HEARTBEAT_EVERY_S:
            return
        self.last = now
        if not range_runs.record_progress(self.rng, p.rows_extracted, p.rows_loaded):
            raise runs.RunAborted("the run was closed while this range was running")


def execute_range(*, range_id: int) -> RunRange | None:
    """Run one range of a split run; a transient failure requeues this range alone."""
    rng = range_runs.claim(range_id)
    if rng is None:
        return None
    job = rng.run.job
    secrets = cm.ConnectionParams(engine=job.connection.engine, password=job.connection.password).secrets()
    try:
        spec = dataclasses.replace(
            runs.spec_for(job), run_id=f"{rng.run_id}r{rng.index}", fence=rng.run_id, key_range=(rng.after, rng.through)
        )
        engine = cm.get_engine(sources.params_for(job.connection))
        spool = Path(settings.ETL_SPOOL_DIR)
        spool.mkdir(parents=True, exist_ok=True)
        with runs.HeartbeatThread(rng.run_id):
            result = run_job(
                spec,
                bq=warehouse(),
                engine=engine,
                progress=_RangeRecorder(rng),
                spool_dir=spool,
                fault=runs.FAULT_HOOK,
            )
        parent = range_runs.record_commit(rng, spec, result)
    except runs.RunAborted:
        logger.warning("range %s of run %s was aborted", rng.index, rng.run_id)
        range_runs.record_failure(rng, "The run was closed while this range was running.", transient=False)
    except (RunError, cm.SourceError) as exc:
        message = runs.storable_text(scrub(runs.run_error_text(exc), secrets))
        range_runs.record_failure(rng, message, transient=getattr(exc, "transient", False))
    except Exception as exc:  # noqa: BLE001 - a range must end with a record, whatever broke
        logger.exception("range %s of run %s crashed", rng.index, rng.run_id)
        text = runs.storable_text(scrub(str(exc), secrets) or type(exc).__name__)
        range_runs.record_failure(rng, f"Unexpected error: {text}", transient=False)
    else:
        if parent.status == parent.Status.SUCCEEDED:
            verification.after_run(run_id=parent.pk)
    rng.refresh_from_db()
    return rng
