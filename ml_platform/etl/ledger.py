"""The commit ledger: one row per committed unit, written in the same BigQuery transaction as its data.

The ledger (`_etl_ledger` in the destination dataset) is the runner's memory of what landed:
- a unit's row exists if and only if its data change committed, so after an unknown outcome
  (a client timeout, a 5xx while polling, a worker killed mid-commit) the retry reads the
  ledger instead of guessing, and never applies a unit twice;
- the watermark of a job is the one its latest unit recorded for the same *signature*
  (strategy, cursor column, tag): change any of them and the watermark is derived afresh
  from the destination, never carried over from a different cursor;
- `claim` rows carry fencing tokens: a run's commit fails inside its transaction once a run
  of the same job with a larger token has claimed the table, so a run declared dead can
  never commit after its successor started.

Every commit job has a deterministic id (job, run, unit, attempt): a retry looks the job up
(waits for it when it still runs) before it submits anything.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ml_platform.etl.bqsql import bq_literal, quote_name, table_ref
from ml_platform.etl.types import BigQueryField
from ml_platform.etl.watermark import watermark_from_json, watermark_to_json

LEDGER_TABLE = "_etl_ledger"
STAGING_TABLE_PREFIX = "_stg_"  # `bqsql.staging_prefix`
LEDGER_FIELDS = (
    BigQueryField("target_table", "STRING"),
    BigQueryField("job", "STRING"),
    BigQueryField("tag", "STRING"),
    BigQueryField("signature", "STRING"),
    BigQueryField("run", "STRING"),
    BigQueryField("unit", "STRING"),
    BigQueryField("kind", "STRING"),
    BigQueryField("fence", "INT64"),
    BigQueryField("watermark", "STRING"),
    BigQueryField("row_count", "INT64"),
    BigQueryField("committed_at", "TIMESTAMP"),
)


@dataclass(frozen=True)
class Identity:
    """Who commits: the destination table, the job, its tag, the run and its fencing token."""

    dataset: str
    table: str
    job: str
    tag: str | None
    run: str
    fence: int
    signature: str

    def unit_id(self, number: int) -> str:
        return f"{self.job}:{self.run}:{number}"

    def commit_job_id(self, number: int, attempt: int) -> str:
        """A BigQuery job id that names this unit's commit (and the attempt at it) on every retry."""
        raw = f"etl_commit_{self.dataset}_{self.table}_{self.job}_{self.run}_{number}_a{attempt}"
        return re.sub(r"[^0-9A-Za-z_-]", "_", raw)[:1024]


def internal_table(name: str) -> bool:
    """The runner's own tables in a destination dataset (the ledger, staging): never shown as user tables."""
    return name == LEDGER_TABLE or name.startswith(STAGING_TABLE_PREFIX)


def signature(strategy: str, cursor: str | None, tag: str | None) -> str:
    return f"{strategy}|{(cursor or '').lower()}|{tag or ''}"


def ledger_ref(dataset: str) -> str:
    return table_ref(dataset, LEDGER_TABLE)


def _mine(who: Identity) -> str:
    return (
        f"target_table = {bq_literal(who.table, 'STRING')} AND job = {bq_literal(who.job, 'STRING')}"
    )


def fence_check(who: Identity) -> str:
    """A statement that fails the script when a later run of the same job has claimed the table."""
    message = bq_literal(
        f"Run {who.run} was superseded by a later run of this job; its commit was refused", "STRING"
    )
    return (
        f"SELECT ERROR({message}) FROM {ledger_ref(who.dataset)} "  # noqa: S608 - bq_literal/quote_name
        f"WHERE {_mine(who)} AND fence > {int(who.fence)} LIMIT 1"
    )


def unit_check(who: Identity, number: int) -> str:
    """A statement that fails the script when this unit already committed (a duplicate delivery)."""
    message = bq_literal(f"Unit {who.unit_id(number)} is already committed", "STRING")
    return (
        f"SELECT ERROR({message}) FROM {ledger_ref(who.dataset)} "  # noqa: S608 - bq_literal/quote_name
        f"WHERE unit = {bq_literal(who.unit_id(number), 'STRING')} AND kind = 'unit' LIMIT 1"
    )


def unit_committed_sql(who: Identity, number: int) -> str:
    return (
        f"SELECT COUNT(*) AS n FROM {ledger_ref(who.dataset)} "  # noqa: S608
        f"WHERE unit = {bq_literal(who.unit_id(number), 'STRING')} AND kind = 'unit'"
    )


def unit_rows_sql(who: Identity, number: int) -> str:
    """The rows a committed unit recorded (no row: not committed)."""
    return (
        f"SELECT row_count AS n FROM {ledger_ref(who.dataset)} "  # noqa: S608
        f"WHERE unit = {bq_literal(who.unit_id(number), 'STRING')} AND kind = 'unit' LIMIT 1"
    )


def ledger_insert(who: Identity, number: int, *, kind: str, watermark: Any, rows: int | str) -> str:
    """The unit's ledger row; `rows` is a count, or the name of the script variable holding it."""
    values = ", ".join(
        [
            bq_literal(who.table, "STRING"),
            bq_literal(who.job, "STRING"),
            bq_literal(who.tag, "STRING"),
            bq_literal(who.signature, "STRING"),
            bq_literal(who.run, "STRING"),
            bq_literal(who.unit_id(number), "STRING"),
            bq_literal(kind, "STRING"),
            str(int(who.fence)),
            bq_literal(_json_text(watermark), "STRING"),
            _rows_sql(rows),
            "CURRENT_TIMESTAMP()",
        ]
    )
    cols = ", ".join(quote_name(f.name) for f in LEDGER_FIELDS)
    return f"INSERT INTO {ledger_ref(who.dataset)} ({cols}) VALUES ({values})"  # noqa: S608


def _rows_sql(rows: int | str) -> str:
    if isinstance(rows, str):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rows):
            raise ValueError(f"{rows!r} is not a script variable name")
        return rows
    return str(int(rows))


def claim_script(who: Identity) -> str:
    """The run's claim on the table: from now on every earlier run of the job is fenced off."""
    return f"BEGIN TRANSACTION; {fence_check(who)}; {ledger_insert(who, -1, kind='claim', watermark=None, rows=0)}; COMMIT TRANSACTION;"


def resume_sql(who: Identity) -> str:
    """The job's committed units that matter to a starting run: this run's, and those carrying a watermark."""
    return (
        f"SELECT run, unit, signature, fence, committed_at, watermark FROM {ledger_ref(who.dataset)} "  # noqa: S608
        f"WHERE {_mine(who)} AND kind = 'unit' AND (run = {bq_literal(who.run, 'STRING')} OR "
        f"(signature = {bq_literal(who.signature, 'STRING')} AND watermark IS NOT NULL))"
    )


def unit_number(unit: str) -> int:
    return int(unit.rsplit(":", 1)[1])


def parse_watermark(text: str | None) -> Any:
    if text is None:
        return None
    return watermark_from_json(json.loads(text))


def _json_text(watermark: Any) -> str | None:
    data = watermark_to_json(watermark)
    return None if data is None else json.dumps(data, sort_keys=True)


def claim_and_resume_script(who: Identity) -> str:
    """The claim, then the ledger read of `resume_sql`, in one script (one round trip; its rows are the read's)."""
    return f"{claim_script(who)} {resume_sql(who)};"
