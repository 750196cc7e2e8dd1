"""The first rows of a source table, read as the load reads them, and their JSON and display forms."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import enum
import ipaddress
import json
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy import table as sa_table

from ml_platform.etl import pg_temporal
from ml_platform.etl.errors import SourceError
from ml_platform.etl.extract import select_list
from ml_platform.etl.sources.describe import describe
from ml_platform.etl.sources.engines import ConnectionParams, connect, guard
from ml_platform.etl.types import Family, SourceColumn
from ml_platform.etl.values import iso_duration, read_value

__all__ = ["MAX_PREVIEW_ROWS", "Preview", "display_value", "json_safe", "preview_rows"]

MAX_PREVIEW_ROWS = 1000


@dataclass(frozen=True)
class Preview:
    """First rows of a table: raw Python values, one list per row, in `columns` order."""

    columns: list[SourceColumn]
    rows: list[list[Any]]

    def json_rows(self) -> list[list[Any]]:
        return [[json_safe(v) for v in row] for row in self.rows]

    def display_rows(self) -> list[list[str]]:
        return [[display_value(v) for v in row] for row in self.rows]


def preview_rows(
    params: ConnectionParams,
    schema: str | None,
    table: str,
    limit: int = 20,
    columns: list[str] | None = None,
) -> Preview:
    """The first `limit` rows (capped at MAX_PREVIEW_ROWS) of the chosen columns, in no particular order."""
    limit = max(0, min(int(limit), MAX_PREVIEW_ROWS))
    with connect(params) as conn:
        resolved_schema, resolved_name, available = describe(conn, params.dialect, schema, table)
        selected = _select_columns(available, columns)
        if not selected:
            return Preview(columns=[], rows=[])
        qualified_schema = resolved_schema if params.dialect != "sqlite" or schema not in (None, "main") else None
        # Read as the load reads them (PostgreSQL intervals, time with zone, JSON... as their text).
        source = sa_table(resolved_name, schema=qualified_schema)
        statement = select(*select_list(params.dialect, selected)).select_from(source).limit(limit)
        arrays = [c.source_type for c in selected if c.type.family is Family.ARRAY]
        raw_rows = _fetch(conn, statement, arrays)
    return Preview(
        columns=selected,
        rows=[
            [_conform(value, col, params.dialect) for value, col in zip(row, selected, strict=True)] for row in raw_rows
        ],
    )


def _select_columns(available: list[SourceColumn], wanted: list[str] | None) -> list[SourceColumn]:
    if wanted is None:
        return list(available)
    by_name = {c.name: c for c in available}
    chosen: list[SourceColumn] = []
    missing = []
    for name in dict.fromkeys(wanted):  # keeps order, drops repeats
        if name in by_name:
            chosen.append(by_name[name])
        else:
            missing.append(name)
    if missing:
        raise SourceError(f"Column{'s' if len(missing) > 1 else ''} not found: {', '.join(repr(m) for m in missing)}")
    return chosen


def _fetch(conn: Connection, statement: Any, array_types: Sequence[str] = ()) -> list[Sequence[Any]]:
    if conn.dialect.name != "postgresql":
        return [tuple(row) for row in conn.execute(statement)]
    # PostgreSQL dates and timestamps may be 'infinity', which Python's datetime cannot
    # hold and psycopg refuses to load. A cursor-scoped loader turns those into strings,
    # so one sentinel value cannot break a preview, without touching the pooled
    # connection's loaders that extraction relies on.
    compiled = statement.compile(dialect=conn.dialect)
    driver_connection = conn.connection.driver_connection
    with driver_connection.cursor() as cursor:
        _register_lenient_datetime_loaders(cursor)
        _register_array_loaders(conn, cursor, array_types)
        cursor.execute(str(compiled), compiled.params)
        return list(cursor.fetchall())


def _register_array_loaders(conn: Connection, cursor: Any, array_types: Sequence[str]) -> None:
    """Teach the cursor arrays psycopg does not know (of enums, domains, extension types).

    Without this such arrays arrive as their text literal ('{sad,ok}') instead of a list.
    """
    if not array_types:
        return
    from psycopg.types import TypeInfo  # lazy: psycopg is needed for PostgreSQL previews only
    from psycopg.types.array import register_array  # lazy: as above

    for type_text in dict.fromkeys(array_types):
        element = re.sub(r"(\s*\[\d*\])+$", "", type_text)
        try:
            with guard(conn):
                info = TypeInfo.fetch(cursor.connection, element)
        except Exception:  # noqa: BLE001 - a preview without typed arrays beats no preview
            continue
        if info is not None and info.array_oid and cursor.adapters.types.get(info.array_oid) is None:
            register_array(info, cursor)


def _register_lenient_datetime_loaders(cursor: Any) -> None:
    for type_name, _, lenient in pg_temporal.lenient_loaders():
        cursor.adapters.register_loader(type_name, lenient)


def _conform(value: Any, col: SourceColumn, kind: str) -> Any:
    """Make a raw driver value look like its canonical family, where the driver does not.

    Only lossless conversions: a tinyint(1) holding 2 stays 2.
    """
    if value is None:
        return None
    family = col.type.family
    if isinstance(value, memoryview):
        value = value.tobytes()
    # The reading the load uses too (MySQL BIT and TIME, SQLite epoch DATETIME, SQLite NUMERIC REAL).
    value = read_value(value, col, kind)
    if kind == "mysql":
        if family is Family.BOOLEAN:
            if value in (0, 1) and not isinstance(value, bool):
                return bool(value)
    if kind == "sqlite" and family is Family.BOOLEAN and value in (0, 1) and not isinstance(value, bool):
        return bool(value)
    if family is Family.JSON and isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# --- rendering --------------------------------------------------------------------

# Beyond 2**53 a JSON number loses digits in JavaScript: send such integers as strings.
_JS_SAFE_INTEGER = 2**53 - 1


def json_safe(value: Any) -> Any:
    """`value` as something `json.dumps` writes without loss of meaning."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -_JS_SAFE_INTEGER <= value <= _JS_SAFE_INTEGER else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)  # exact, unlike float
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "base64:" + base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return iso_duration(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((json_safe(v) for v in value), key=str)
    if isinstance(value, enum.Enum):
        return json_safe(value.value)
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return str(value)
    return str(value)  # ranges, geometry objects, anything a driver invents


def display_value(value: Any) -> str:
    """`value` as text for a preview cell: NULL for None, pretty JSON for objects."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(json_safe(value), indent=2, ensure_ascii=False)
    if isinstance(value, int):
        return str(value)  # json_safe would turn big ones into strings anyway
    safe = json_safe(value)
    return safe if isinstance(safe, str) else json.dumps(safe, ensure_ascii=False)
