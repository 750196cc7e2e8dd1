"""How many BigQuery API calls an incremental run makes: a regression guard on the run's fixed cost.

An incremental run with a few new rows is dominated by round trips, not by data (issue 15's bench:
+1 % rows must cost <= 10 % of a full run). The calls are counted by a passthrough on the client:
each one still goes to the emulator, and the run must still load exactly the new rows.
"""

from __future__ import annotations

from collections import Counter

import pytest
from google.cloud import bigquery

from tests.etl.test_exactly_once import dest_fingerprint, run, source_fingerprint, strategy_job
from tests.etl.test_runner import accounts_table

pytestmark = pytest.mark.integration

EXPECTED = 7  # 11, then 8 once the claim + ledger read became one script and the load created staging; 7 since
# the incremental commit script counts the rows it inserts

# Every google-cloud-bigquery Client method that talks to the API.
CLIENT_CALLS = ("get_table", "get_dataset", "list_datasets", "list_tables", "query", "query_and_wait",
                "create_table", "update_table", "delete_table", "list_rows", "load_table_from_file", "get_job",
                "insert_rows", "create_dataset", "delete_dataset")


@pytest.fixture
def bq_calls(monkeypatch) -> Counter:
    counted: Counter = Counter()

    def counting(name, method):
        def passthrough(self, *args, **kwargs):
            counted[name] += 1
            return method(self, *args, **kwargs)
        return passthrough

    for name in CLIENT_CALLS:
        monkeypatch.setattr(bigquery.Client, name, counting(name, getattr(bigquery.Client, name)))
    return counted


def test_an_incremental_run_with_new_rows_makes_a_fixed_small_number_of_bigquery_calls(
    pg_source, bq, bq_dataset, tmp_path, bq_calls
) -> None:
    accounts_table(pg_source, 300)
    job = strategy_job(pg_source, bq, bq_dataset, tmp_path, "incremental")
    job.create_destination()
    run(job)
    accounts_table(pg_source, 3, start=301)
    bq_calls.clear()

    result = run(job)

    calls = dict(bq_calls)
    assert result.rows_loaded == 3 and result.checkpoints == 1
    assert dest_fingerprint(job) == source_fingerprint(pg_source)
    # list tables (leftover staging), destination schema, claim + ledger read in one script, the settle look-up,
    # the load creating staging, the commit (which counts the new rows), dropping staging.
    assert sum(calls.values()) == EXPECTED, calls
