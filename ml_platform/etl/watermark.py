"""Watermarks: their JSON form (the app keeps a cached copy) and the re-read window below them.

A run re-reads the rows whose cursor lies within `window` below the committed watermark
(inclusive), so rows that share the watermark's value or that committed late (PostgreSQL
sequences and `now()` values commit out of order) still arrive; the commit de-duplicates them.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

# Defaults when a job sets no window: a sequence re-reads its last 1,000 ids, a timestamp its
# last 15 minutes (longer than any transaction we expect to see), a DATE the watermark's day
# and the day before (rows keep arriving for "today").
DEFAULT_WINDOW_SEQUENCE = 1000
DEFAULT_WINDOW_SECONDS = 15 * 60
DEFAULT_WINDOW_DAYS = 1


def reread_from(watermark: Any, window: float | None) -> Any:
    """The exclusive lower bound (`cursor > bound`) that re-reads `window` below `watermark`, ties included.

    `window` is in the cursor's own unit for numbers, in seconds for timestamps and times of
    day, in days for dates; None means the default for the cursor's type. A cursor that has no
    "below" (text, bytes) keeps `cursor > watermark` and cannot catch late rows.
    """
    if watermark is None or isinstance(watermark, bool):
        return watermark
    if isinstance(watermark, int):
        span = DEFAULT_WINDOW_SEQUENCE if window is None else int(window)
        return watermark - span - 1
    if isinstance(watermark, decimal.Decimal):
        span = decimal.Decimal(DEFAULT_WINDOW_SEQUENCE if window is None else str(window))
        # `> bound` with the bound just below watermark - span: the watermark row itself is re-read.
        return watermark - span - decimal.Decimal("1e-9")
    if isinstance(watermark, float):
        return watermark - (DEFAULT_WINDOW_SEQUENCE if window is None else float(window)) - 1e-9
    if isinstance(watermark, dt.datetime):
        seconds = DEFAULT_WINDOW_SECONDS if window is None else float(window)
        return watermark - dt.timedelta(seconds=seconds, microseconds=1)
    if isinstance(watermark, dt.date):
        days = DEFAULT_WINDOW_DAYS if window is None else int(window)
        return watermark - dt.timedelta(days=days + 1)
    return watermark



def watermark_to_json(value: Any) -> Any:
    """A JSON-safe, type-preserving form of a watermark (the job model keeps it in a JSONField)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return {"type": "bool", "value": value}
    if isinstance(value, int):
        return {"type": "int", "value": str(value)}
    if isinstance(value, float):
        return {"type": "float", "value": repr(value)}
    if isinstance(value, decimal.Decimal):
        return {"type": "decimal", "value": str(value)}
    if isinstance(value, dt.datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, dt.date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, dt.time):
        return {"type": "time", "value": value.isoformat()}
    if isinstance(value, bytes):
        return {"type": "bytes", "value": value.hex()}
    return {"type": "str", "value": str(value)}


def watermark_from_json(data: Any) -> Any:
    if data is None:
        return None
    if not isinstance(data, dict) or "type" not in data:
        return data  # a bare JSON scalar written by hand or by an older version
    kind, raw = data["type"], data.get("value")
    if raw is None:
        return None
    match kind:
        case "bool":
            return bool(raw)
        case "int":
            return int(raw)
        case "float":
            return float(raw)
        case "decimal":
            return decimal.Decimal(raw)
        case "datetime":
            return dt.datetime.fromisoformat(raw)
        case "date":
            return dt.date.fromisoformat(raw)
        case "time":
            return dt.time.fromisoformat(raw)
        case "bytes":
            return bytes.fromhex(raw)
        case _:
            return str(raw)

