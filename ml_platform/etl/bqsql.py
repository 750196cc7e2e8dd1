"""BigQuery SQL text: the one place names are checked and quoted and values rendered as literals.

Every backtick in the product's BigQuery SQL comes from `quote_name` (or `shown_name`, for
SQL that is only shown to a user). The emulator does not accept query parameters in
multi-statement scripts, so every value a commit script needs is rendered as a GoogleSQL
literal here (`bq_literal`), never pasted.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections.abc import Sequence
from typing import Any

from ml_platform.etl.bq_errors import InvalidIdentifier
from ml_platform.etl.errors import SchemaMismatchError

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DATASET_ID = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_TABLE_ID = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
# Column names may be "flexible" on real BigQuery; only what cannot be quoted safely is refused.
_UNQUOTABLE = re.compile(r"[`\\\x00-\x1f\x7f]")


def check_name(name: str) -> str:
    """`name` if it can be put between backticks safely (no backtick, backslash or control character)."""
    if not isinstance(name, str) or not name or len(name) > 300 or _UNQUOTABLE.search(name):
        raise InvalidIdentifier(f"{name!r} is not a column name BigQuery can use.")
    return name


def quote_name(name: str) -> str:
    """A backtick-quoted column, table, dataset or project name."""
    return f"`{check_name(name)}`"


def shown_name(name: str) -> str:
    """`name` quoted for SQL only shown to a user (a fix to copy): escaped, never refused."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def table_ref(dataset: str, table: str) -> str:
    return f"{quote_name(dataset)}.{quote_name(table)}"


def union_ref(dataset: str, tables: Sequence[str]) -> str:
    """A FROM item reading every table of `tables` (same columns, same order): staging's parts of one unit."""
    if not tables:
        raise ValueError("union_ref needs at least one table")
    if len(tables) == 1:
        return table_ref(dataset, tables[0])
    return "(" + " UNION ALL ".join(f"SELECT * FROM {table_ref(dataset, t)}" for t in tables) + ")"  # noqa: S608


def validate_dataset_id(name: str) -> str:
    """`name` if BigQuery accepts it as a dataset id (letters, digits, underscores; at most 1024)."""
    return _validated_id(name, _DATASET_ID, "dataset")


def validate_table_id(name: str) -> str:
    """`name` if the product accepts it as a table id (letters, digits, underscores; at most 1024)."""
    return _validated_id(name, _TABLE_ID, "table")


def _validated_id(name: str, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(name, str) or not pattern.match(name):
        raise InvalidIdentifier(
            f"{name!r} is not a valid BigQuery {what} name: use letters, digits and underscores "
            "(at most 1,024 characters)."
        )
    return name


def _string_literal(value: str) -> str:
    if _CONTROL.search(value):
        raise SchemaMismatchError(f"Value {value!r} contains control characters and cannot be used in a commit")
    escaped = (
        value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    )
    return f"'{escaped}'"


def bq_literal(value: Any, field_type: str) -> str:
    """A GoogleSQL literal of `value` typed as `field_type` (for scripts, which take no parameters)."""
    if value is None:
        return "NULL"
    kind = field_type.upper()
    if kind in ("INT64", "INTEGER"):
        return str(int(value))
    if kind in ("NUMERIC", "DECIMAL", "BIGNUMERIC", "BIGDECIMAL"):
        number = decimal.Decimal(str(value)) if not isinstance(value, decimal.Decimal) else value
        if not number.is_finite():
            raise SchemaMismatchError(f"{value!r} is not a {kind} value")
        return f"{'BIGNUMERIC' if kind.startswith('BIG') else 'NUMERIC'} '{number}'"
    if kind in ("FLOAT64", "FLOAT"):
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            return f"CAST('{number}' AS FLOAT64)"
        return repr(number)
    if kind in ("BOOL", "BOOLEAN"):
        return "TRUE" if value else "FALSE"
    if kind == "DATE":
        if isinstance(value, dt.datetime):
            value = value.date()
        return f"DATE '{value.isoformat() if isinstance(value, dt.date) else str(value)}'"
    if kind == "DATETIME":
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None:
                value = value.astimezone(dt.UTC).replace(tzinfo=None)
            return f"DATETIME '{value.isoformat(sep=' ', timespec='microseconds')}'"
        return f"DATETIME {_string_literal(str(value))}"
    if kind == "TIMESTAMP":
        if isinstance(value, dt.datetime):
            aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
            utc = aware.astimezone(dt.UTC).replace(tzinfo=None)
            return f"TIMESTAMP '{utc.isoformat(sep=' ', timespec='microseconds')}+00:00'"
        return f"TIMESTAMP {_string_literal(str(value))}"
    if kind == "TIME":
        if isinstance(value, dt.time):
            return f"TIME '{value.isoformat(timespec='microseconds')}'"
        return f"TIME {_string_literal(str(value))}"
    if kind == "BYTES" and isinstance(value, bytes):
        return f"FROM_HEX('{value.hex()}')"
    return _string_literal(str(value))


def staging_prefix(job_id: str | int) -> str:
    """Every staging table of one job starts with this (so a later run can find leftovers)."""
    cleaned = re.sub(r"[^0-9A-Za-z_]+", "_", str(job_id)).strip("_") or "job"
    return f"_stg_{cleaned[:60]}_"



# The lowest value of each partitioning type: `col >= MIN OR col IS NULL` is true for every row
# and names the partitioning column, which is what `require_partition_filter` asks of a statement.
_PARTITION_FLOOR = {
    "DATE": "DATE '0001-01-01'",
    "DATETIME": "DATETIME '0001-01-01 00:00:00'",
    "TIMESTAMP": "TIMESTAMP '0001-01-01 00:00:00+00'",
    "INT64": str(-(2**63)),
}


def partition_filter(partitioning: str | None, column_types: dict[str, str], alias: str = "") -> str:
    """A predicate true for every row that satisfies `require_partition_filter` ("" when unpartitioned).

    `partitioning` is `TableSchema.partitioning` (`DAY(col)`, `DAY(_PARTITIONTIME)`, `RANGE(col)`).
    Every DELETE / MAX / MERGE / anti-join the runner issues on the destination carries it, so a
    table that requires a partition filter accepts them; the filter prunes nothing (a commit may
    touch any partition) and costs nothing on a table that does not require it.
    """
    if not partitioning:
        return ""
    match = re.fullmatch(r"\s*\w+\((\w+)\)\s*", partitioning)
    if match is None:
        raise SchemaMismatchError(f"Unrecognised partitioning {partitioning!r} on the destination table")
    column = match.group(1)
    prefix = f"{alias}." if alias else ""
    if column.upper() in ("_PARTITIONTIME", "_PARTITIONDATE"):
        floor = "TIMESTAMP '0001-01-01 00:00:00+00'" if column.upper() == "_PARTITIONTIME" else "DATE '0001-01-01'"
        return f"({prefix}{column} >= {floor} OR {prefix}{column} IS NULL)"
    kind = {k.lower(): v.upper() for k, v in column_types.items()}.get(column.lower(), "")
    kind = {"INTEGER": "INT64"}.get(kind, kind)
    floor = _PARTITION_FLOOR.get(kind)
    if floor is None:
        raise SchemaMismatchError(
            f"The destination is partitioned on {column!r} of type {kind or 'unknown'}, which the runner cannot "
            "filter on: remove require_partition_filter or partition on a DATE, DATETIME, TIMESTAMP or INT64 column"
        )
    quoted = f"{prefix}{quote_name(column)}"
    return f"({quoted} >= {floor} OR {quoted} IS NULL)"
