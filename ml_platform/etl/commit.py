"""One unit's commit: the strategy's SQL and its ledger row in one BigQuery script, applied once.

Every statement on the destination is scoped to the job's own rows (`tag = 'x'`, or
`tag IS NULL` for an untagged job on a table that has a tag column) and carries a partition
filter that is true for every row (`etl.bqsql.partition_filter`), so a table with
`require_partition_filter` accepts it. Strategies:
- replace: DELETE the job's rows, INSERT staging;
- append: INSERT staging;
- incremental: INSERT the staging rows (de-duplicated on the key, latest cursor first) whose
  key the job's rows do not hold yet; without a key, rows identical in every scalar column
  count as present (overlap "dedup") or only rows past the job's MAX(cursor) go in ("append");
- merge: staging de-duplicated per key (latest by cursor), NULL or duplicate keys refused
  before anything is submitted.
`staging` is the unit's part tables (one per Parquet part, etl.staging.Loader), read as one
relation (`bqsql.union_ref`).

Replace, append and merge commit in one transaction with their ledger row. An incremental
unit's INSERT is idempotent on its own (it inserts only rows the job's rows do not hold yet),
so its script runs without `BEGIN TRANSACTION`, in an order where stopping after any statement
is safe: fence and unit checks, the new rows into a temporary table (one anti-join, which
also counts them), INSERT into the destination, then the ledger row. A script stopped between
its INSERT and its ledger row is retried like any failed commit; the retry finds the rows
present and inserts none. (A transaction would cost a copy of the whole destination on the
emulator, which backs up every table a transaction modifies: 2M rows for 20k new ones.)
"""

from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ml_platform.etl.bqsql import bq_literal, partition_filter, quote_name, table_ref, union_ref
from ml_platform.etl.errors import SchemaMismatchError, WarehouseError
from ml_platform.etl.ledger import Identity, fence_check, ledger_insert, unit_check, unit_committed_sql

if TYPE_CHECKING:
    from ml_platform.etl.runspec import FaultHook, Plan
    from ml_platform.etl.staging import Heartbeat, Warehouse

_UNCOMPARABLE = ("JSON", "GEOGRAPHY", "RECORD", "STRUCT")
EXAMPLES = 5


def scope(plan: Plan, alias: str = "") -> str:
    """The predicate selecting this job's rows of the destination (always with a partition filter)."""
    prefix = f"{alias}." if alias else ""
    parts = []
    if plan.tag_dest is not None:
        column = f"{prefix}{quote_name(plan.tag_dest)}"
        tag = plan.spec.source_tag
        parts.append(f"{column} IS NULL" if tag is None else f"{column} = {bq_literal(tag, 'STRING')}")
    types = {f.name: f.field_type for f in plan.fields}
    pf = partition_filter(plan.partitioning, types, alias)
    if pf:
        parts.append(pf)
    return " AND ".join(parts) or "TRUE"


def key_columns(plan: Plan) -> tuple[str, ...]:
    """Destination names of the key rows are identified by (merge key, else the source primary key)."""
    if plan.key_dest:
        return plan.key_dest
    names = plan.spec.merge_key or plan.key_columns
    if plan.spec.cursor_column and names == (plan.spec.cursor_column,) and not any(
        c.primary_key for c in plan.spec.columns
    ):
        return ()  # the runner's fallback (the cursor) is not a key
    return tuple(plan.dest_names[n] for n in names if n in plan.dest_names)


def max_cursor_sql(plan: Plan) -> str:
    assert plan.cursor_dest is not None
    spec = plan.spec
    target = table_ref(spec.destination_dataset, spec.destination_table)
    cursor = quote_name(plan.cursor_dest.name)
    return f"SELECT MAX({cursor}) AS v FROM {target} WHERE {scope(plan)}"  # noqa: S608 - quote_name/bq_literal


def _latest_per_key(plan: Plan, source: str, keys: tuple[str, ...]) -> str:
    partition = ", ".join(quote_name(k) for k in keys)
    order = f"{quote_name(plan.cursor_dest.name)} DESC" if plan.cursor_dest is not None else partition
    return f"(SELECT * FROM {source} QUALIFY ROW_NUMBER() OVER (PARTITION BY {partition} ORDER BY {order}) = 1)"  # noqa: S608


def new_rows_condition(plan: Plan) -> str:
    """Staging rows (alias S) the job's rows of the destination (alias T) do not hold yet."""
    spec = plan.spec
    target = table_ref(spec.destination_dataset, spec.destination_table)
    keys = key_columns(plan)
    if not keys and spec.overlap == "append":
        assert plan.cursor_dest is not None
        cursor = quote_name(plan.cursor_dest.name)
        return f"IFNULL(S.{cursor} > (SELECT MAX(T.{cursor}) FROM {target} T WHERE {scope(plan, 'T')}), TRUE)"  # noqa: S608
    if keys:
        match = " AND ".join(f"T.{quote_name(k)} = S.{quote_name(k)}" for k in keys)
    else:
        comparable = [f.name for f in plan.fields if f.name in plan.fed and f.mode != "REPEATED"
                      and f.field_type.upper() not in _UNCOMPARABLE]
        match = " AND ".join(f"T.{quote_name(c)} IS NOT DISTINCT FROM S.{quote_name(c)}" for c in comparable)
    return f"NOT EXISTS (SELECT 1 FROM {target} T WHERE {scope(plan, 'T')} AND {match})"  # noqa: S608


def incremental_source(plan: Plan, staging: Sequence[str]) -> str:
    source = union_ref(plan.spec.destination_dataset, staging)
    keys = key_columns(plan)
    primary = tuple(plan.dest_names[c.name] for c in plan.spec.columns if c.primary_key)
    if not keys or (primary and set(primary) <= set(keys)):
        return source  # the source's primary key already makes staging unique per key: no window pass
    return _latest_per_key(plan, source, keys)


def strategy_statements(plan: Plan, staging: Sequence[str]) -> list[str]:
    spec = plan.spec
    target = table_ref(spec.destination_dataset, spec.destination_table)
    source = union_ref(spec.destination_dataset, staging)
    cols = ", ".join(quote_name(c) for c in plan.fed)
    match spec.load_strategy:
        case "replace":
            return [f"DELETE FROM {target} WHERE {scope(plan)}", f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {source}"]  # noqa: S608
        case "append":
            return [f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {source}"]  # noqa: S608
        case "incremental":
            return [f"INSERT INTO {target} ({cols}) {new_rows_select(plan, staging)}"]  # noqa: S608
        case "merge":
            return [_merge_statement(plan, staging)]
    raise SchemaMismatchError(f"Unknown load strategy {spec.load_strategy!r}")


def _merge_statement(plan: Plan, staging: Sequence[str]) -> str:
    spec = plan.spec
    target = table_ref(spec.destination_dataset, spec.destination_table)
    source = _latest_per_key(plan, union_ref(spec.destination_dataset, staging), plan.key_dest)
    on = " AND ".join(f"T.{quote_name(k)} = S.{quote_name(k)}" for k in plan.key_dest)
    keys_lower = {k.lower() for k in plan.key_dest}
    if plan.tag_dest is not None:
        keys_lower.add(plan.tag_dest.lower())
    cols = ", ".join(quote_name(c) for c in plan.fed)
    updates = ", ".join(f"{quote_name(c)} = S.{quote_name(c)}" for c in plan.fed if c.lower() not in keys_lower)
    values = ", ".join(f"S.{quote_name(c)}" for c in plan.fed)
    merge = f"MERGE {target} T USING {source} S ON {on} AND {scope(plan, 'T')}"
    if updates:
        merge += f" WHEN MATCHED THEN UPDATE SET {updates}"
    return merge + f" WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({values})"  # noqa: S608


def commit_script(
    plan: Plan, staging: Sequence[str], who: Identity, number: int, *, watermark: Any, rows: int | None
) -> str:
    """The unit's commit: fence check, unit check, the strategy's change, the ledger row.

    `rows` is None for incremental, whose script counts the rows it inserts and returns them
    (one row, column `n`); the other strategies' scripts are one transaction and return nothing.
    """
    checks = [fence_check(who), unit_check(who, number)]
    if plan.spec.load_strategy == "incremental":
        return _incremental_script(plan, staging, who, number, checks, watermark)
    assert rows is not None
    body = [*checks, *strategy_statements(plan, staging)]
    body.append(ledger_insert(who, number, kind="unit", watermark=watermark, rows=rows))
    return "BEGIN TRANSACTION; " + "; ".join(body) + "; COMMIT TRANSACTION;"


ROWS_VARIABLE = "etl_new_rows"


def _incremental_script(
    plan: Plan, staging: Sequence[str], who: Identity, number: int, checks: list[str], watermark: Any
) -> str:
    """No transaction (see the module docstring): each prefix of these statements leaves a state a retry settles."""
    target = table_ref(plan.spec.destination_dataset, plan.spec.destination_table)
    cols = ", ".join(quote_name(c) for c in plan.fed)
    # A temporary table lives as long as its script; the name is unique anyway (the emulator
    # keeps a failed script's temporary tables, and runs scripts side by side).
    new = quote_name(f"_etl_new_{uuid.uuid4().hex}")
    body = [
        f"DECLARE {ROWS_VARIABLE} INT64 DEFAULT 0",
        *checks,
        f"CREATE TEMP TABLE {new} AS {new_rows_select(plan, staging)}",
        f"SET {ROWS_VARIABLE} = (SELECT COUNT(*) FROM {new})",  # noqa: S608 - quote_name
        f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {new}",  # noqa: S608
        ledger_insert(who, number, kind="unit", watermark=watermark, rows=ROWS_VARIABLE),
        f"DROP TABLE {new}",
        f"SELECT {ROWS_VARIABLE} AS n",
    ]
    return "; ".join(body) + ";"


def new_rows_select(plan: Plan, staging: Sequence[str]) -> str:
    """The staging rows an incremental unit inserts: de-duplicated per key, absent from the job's rows."""
    cols = ", ".join(quote_name(c) for c in plan.fed)
    rows = incremental_source(plan, staging)
    return f"SELECT {cols} FROM {rows} S WHERE {new_rows_condition(plan)}"  # noqa: S608


def check_merge_keys(warehouse: Warehouse, plan: Plan, staging: Sequence[str]) -> None:
    """Refuse NULL keys (count and examples) and, without a cursor to pick the latest, duplicate keys."""
    source = union_ref(plan.spec.destination_dataset, staging)
    keys = [quote_name(k) for k in plan.key_dest]
    nulls = " OR ".join(f"{k} IS NULL" for k in keys)
    shown = ", ".join(quote_name(c) for c in plan.fed[:4])
    rows = warehouse.query(f"SELECT COUNT(*) AS n FROM {source} WHERE {nulls}")  # noqa: S608
    if rows and int(rows[0]["n"]):
        examples = warehouse.query(f"SELECT {shown} FROM {source} WHERE {nulls} LIMIT {EXAMPLES}")  # noqa: S608
        raise SchemaMismatchError(
            f"{int(rows[0]['n'])} source row(s) have a NULL merge key ({', '.join(plan.key_dest)}), which a merge "
            f"cannot match; e.g. {_describe(examples)}. Filter them out at the source or choose another key"
        )
    if plan.cursor_dest is not None:
        return  # duplicates are resolved: the row with the latest cursor wins
    grouped = ", ".join(keys)
    dup = warehouse.query(
        f"SELECT {grouped}, COUNT(*) AS copies FROM {source} GROUP BY {grouped} HAVING COUNT(*) > 1 "  # noqa: S608
        f"ORDER BY copies DESC LIMIT {EXAMPLES}"
    )
    if dup:
        total = warehouse.query(
            f"SELECT COUNT(*) AS n FROM (SELECT {grouped} FROM {source} GROUP BY {grouped} HAVING COUNT(*) > 1)"  # noqa: S608
        )
        raise SchemaMismatchError(
            f"{int(total[0]['n'])} merge key value(s) appear more than once in the source, e.g. {_describe(dup)}: "
            "a merge needs one row per key. Choose a unique key, or set a cursor column so the latest row wins"
        )


def _describe(rows: list[dict[str, Any]]) -> str:
    return "; ".join(", ".join(f"{k}={v!r}" for k, v in row.items()) for row in rows)


def apply_once(
    warehouse: Warehouse,
    who: Identity,
    number: int,
    script: str,
    heartbeat: Heartbeat,
    fault: FaultHook,
    attempt: int | None = None,
) -> list[dict[str, Any]] | None:
    """Submit the unit's commit under a deterministic job id unless an earlier attempt already committed it.

    `attempt` is the next attempt number when the caller has just settled this unit. Returns the
    script's result rows, or None when the unit was found committed (nothing was submitted).
    """
    if attempt is None:
        attempt = settle(warehouse, who, number, heartbeat)
    if attempt is None:
        return None
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="etl-commit") as pool:
        try:
            job = warehouse.submit(script, who.commit_job_id(number, attempt))
            fault("commit_submitted")
            return heartbeat.wait(pool.submit(warehouse.wait, job))
        except WarehouseError:
            # Another delivery of this very run may have committed the unit meanwhile (its job id
            # was taken, or its ledger row refused ours): then the unit is done, not failed.
            if int(warehouse.query(unit_committed_sql(who, number))[0]["n"]):
                return None
            raise


def settle(warehouse: Warehouse, who: Identity, number: int, heartbeat: Heartbeat) -> int | None:
    """Wait for any earlier attempt at this unit; None when one committed, else the next attempt number."""
    attempt = 0
    while True:
        job = warehouse.find_job(who.commit_job_id(number, attempt))
        if job is None:
            return attempt
        with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="etl-settle") as pool:
            try:
                heartbeat.wait(pool.submit(warehouse.wait, job))
                return None
            except WarehouseError:
                attempt += 1  # that attempt failed (rolled back): the next one gets a new id
