"""The runner confined to one key range of a split first load (RunSpec.key_range), on PostgreSQL and the emulator."""

from __future__ import annotations

import pytest

from tests.etl.test_runner import Job, accounts_table

pytestmark = pytest.mark.integration


def ids(job: Job) -> list[int]:
    return [int(r["id"]) for r in job.rows("id")]


def test_a_range_reads_only_its_keys_commits_in_checkpoints_and_a_retry_adds_nothing(
    pg_source, bq, bq_dataset, tmp_path
) -> None:
    accounts_table(pg_source, 1000)
    job = Job(pg_source, bq, bq_dataset, tmp_path, load_strategy="incremental", cursor_column="id", checkpoint_rows=150)
    job.create_destination()
    # Two ranges of one split run (one fencing token), the upper one committing first.
    upper = job.run(run_id="p9r1", fence=9, key_range=(600, None))
    assert ids(job) == list(range(601, 1001))
    assert upper.checkpoints == 3 and upper.rows_loaded == 400 and upper.watermark_after == 1000

    lower = job.run(run_id="p9r0", fence=9, key_range=(0, 600))
    assert ids(job) == list(range(1, 1001))  # every row once
    assert lower.checkpoints == 4 and lower.rows_loaded == 600 and lower.watermark_after == 600

    # The lower range delivered again (a worker died after its commit): it resumes after its own checkpoints.
    again = job.run(run_id="p9r0", fence=9, key_range=(0, 600))
    assert again.rows_loaded == 0 and ids(job) == list(range(1, 1001))

    # The ranges' ledger rows are never the job's watermark (the lower range committed last, at 600): an ordinary
    # run with no watermark row of the job's own finds its start in the table, at its top.
    later = job.run(fence=10)
    assert later.watermark_before == 1000 and later.watermark_derived and later.rows_loaded == 0
