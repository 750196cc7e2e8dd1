"""Large initial loads split into key ranges that run as separate tasks (issue 18).

Pure planning, no Django:
- `split_refusal`: which runs may split — with at least two task workers, the first run of an
  incremental or merge job whose cursor is an integer and whose rows have a key (the commit
  de-duplicates on it, so ranges committing in any order, or a range re-read after a crash,
  never duplicate a row);
- `plan_ranges`: equal-width ranges over the cursor's MIN..MAX (the last open above, so rows
  inserted while the load runs still land in it);
- `contiguous_prefix`: the job's watermark after a set of committed ranges — the upper bound
  of the longest run of committed ranges from the first one, or MIN - 1 when the first is not
  committed. A committed range past a gap never moves it: the next run must still read the gap.
  That MIN - 1 is written to the ledger before any range runs, so a job whose first range
  never commits does not fall back to the destination's MAX(cursor), which lies past the gap;
- `watermark_script`: the ledger row that records that watermark, fenced like every commit.

A range runs through the runner's ordinary path (claim, checkpoints, the idempotent commit)
under its own run id (`<parent>r<index>`) and the parent's fencing token; its ledger rows
carry a signature of their own (`range_signature`), so they are never read as the job's
watermark: only the prefix rows written here are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, column, func, select, table
from sqlalchemy.exc import SQLAlchemyError

from ml_platform.etl.errors import classify_source_error
from ml_platform.etl.ledger import Identity, fence_check, ledger_insert, unit_check
from ml_platform.etl.types import Family

SPLIT_STRATEGIES = ("incremental", "merge")


@dataclass(frozen=True)
class KeyRange:
    """Cursor values `after < cursor <= through` (None: that side is open)."""

    index: int
    after: int
    through: int | None

    def describe(self, cursor: str) -> str:
        low = f"{self.after} < "
        high = "" if self.through is None else f" <= {self.through}"
        return f"{low}{cursor}{high}"


def split_refusal(
    *,
    strategy: str,
    cursor_family: Family | None,
    has_key: bool,
    first_run: bool,
    estimated_rows: int | None,
    min_rows: int,
    workers: int,
) -> str | None:
    """Why this run is not split (None: it is). `min_rows` <= 0 turns splitting off.

    `workers` is how many task workers can run the ranges at once. With one, the ranges run one after
    another and the split is pure overhead (bench/bench_split.py: 4M rows in 20.1 s split vs 11.3 s as
    one task), so it takes two.
    """
    if min_rows <= 0:
        return "splitting is off"
    if workers < 2:
        return "one task worker would run the ranges one after another (ETL_TASK_WORKERS)"
    if strategy not in SPLIT_STRATEGIES:
        # replace swaps the job's rows in one transaction and append inserts the whole table each run:
        # ranges committed one by one would break either promise (see README).
        return f"a {strategy} run commits once"
    if cursor_family is not Family.INTEGER:
        return "the cursor is not an integer"
    if not has_key:
        return "the rows have no key to de-duplicate on"
    if not first_run:
        return "the job has a watermark: an incremental run reads only the new rows"
    if estimated_rows is None or estimated_rows < min_rows:
        return f"fewer than {min_rows:,} rows (estimated)"
    return None


def range_count(estimated_rows: int, *, range_rows: int, max_ranges: int) -> int:
    """How many ranges: about `range_rows` each, at least 2, at most `max_ranges`."""
    wanted = -(-estimated_rows // max(range_rows, 1))
    return max(2, min(max_ranges, wanted))


def plan_ranges(low: int, high: int, parts: int) -> tuple[KeyRange, ...]:
    """`parts` contiguous ranges of equal width over low..high, the first from `low`, the last open above.

    Equal widths follow the key, not the rows: a skewed key gives uneven ranges, which is why
    a job gets several ranges per worker (a worker that finishes early takes the next one).
    """
    if high < low:
        raise ValueError("high < low")
    parts = max(1, min(parts, high - low + 1))
    span = high - low + 1
    bounds = [low - 1 + span * i // parts for i in range(1, parts)]  # integers: exact for any BIGINT
    lows = [low - 1, *bounds]
    highs: list[int | None] = [*bounds, None]
    return tuple(KeyRange(i, lows[i], highs[i]) for i in range(parts))


def contiguous_prefix(ranges: Sequence[KeyRange], committed: Mapping[int, Any]) -> tuple[int, Any]:
    """(how many ranges from the first are committed, the job's watermark over them).

    `committed` maps a committed range's index to the largest cursor it loaded (None when it
    held no rows). Below a gap the watermark is the last committed range's upper bound: every
    row up to it was read, whatever the largest one was. Past the last range (open above) it is
    the largest cursor loaded. With the first range not committed it is the first range's lower
    bound (MIN - 1): the next run reads everything.
    """
    ordered = sorted(ranges, key=lambda r: r.index)
    count = 0
    for r in ordered:
        if r.index not in committed:
            break
        count += 1
    if count == 0:
        return 0, ordered[0].after
    last = ordered[count - 1]
    if last.through is not None:
        return count, last.through
    loaded = [v for i, v in committed.items() if i < count and v is not None]
    below = last.after
    return count, max([below, *loaded])


def range_signature(signature: str, run_id: str | int) -> str:
    """A range's own ledger signature: its checkpoints resume the range, never the job."""
    return f"{signature}|range {run_id}"


def watermark_script(who: Identity, number: int, watermark: Any) -> str:
    """The ledger row that moves the job's watermark to `watermark` (prefix number `number` of run `who.run`).

    Fenced like a commit: once a later run of the job has claimed the table this is refused.
    Refused too when that prefix row is already there (a retried write).
    """
    body = [
        fence_check(who),
        unit_check(who, number),
        ledger_insert(who, number, kind="unit", watermark=watermark, rows=0),
    ]
    return "BEGIN TRANSACTION; " + "; ".join(body) + "; COMMIT TRANSACTION;"


def cursor_span(engine: Engine, schema: str | None, table_name: str, cursor: str) -> tuple[Any, Any]:
    """MIN and MAX of the cursor (one index look-up each on a keyed cursor)."""
    stmt = select(func.min(column(cursor)), func.max(column(cursor))).select_from(table(table_name, schema=schema))
    try:
        with engine.connect() as conn:
            low, high = conn.execute(stmt).one()
    except SQLAlchemyError as exc:
        secrets = [str(engine.url.password)] if engine.url.password else []
        raise classify_source_error(exc, secrets=secrets, context=f"reading the range of {cursor}") from None
    return low, high
