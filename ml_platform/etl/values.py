"""What a raw driver value means, given its column's canonical type and the source database.

The one reading of source values, shared by the extraction (what is loaded) and the
wizard's preview (what the user sees), so the two cannot disagree. Each rule here fixes
a driver value that does not say what the column holds:
- MySQL BIT(n) arrives as big-endian bytes: it is the number those bytes spell
  (b'\\x00\\x0c' -> 12), never their ASCII text;
- MySQL TIMESTAMP arrives naive, read in a UTC session: it is that UTC instant;
- MySQL TIME arrives as a timedelta (it is a duration, -838:59:59..838:59:59): a value
  within a day is that time of day; any other is MySQL's own text ('-01:30:00',
  '100:00:00'), which a STRING column keeps and a TIME column refuses by name;
- SQLite DATETIME/DATE columns may hold INTEGER Unix times (SQLite's documented
  convention: seconds since 1970-01-01 UTC); they are those instants, not microseconds;
- SQLite NUMERIC/DECIMAL columns store non-integral values as REAL: such a value is the
  decimal it was written as, its shortest round-trip text (19.99 -> Decimal('19.99')),
  never the binary expansion 19.989999999999998436805981327779591083526611328125.
A duration (a driver's timedelta) is written as an ISO-8601 duration by `iso_duration`,
the one formatter the preview and the load share.
Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from ml_platform.etl.types import Family, SourceColumn

__all__ = ["iso_duration", "needs_reading", "read_value"]

_EPOCH = dt.datetime(1970, 1, 1)


def needs_reading(col: SourceColumn, dialect: str) -> bool:
    """Whether `read_value` may change any value of `col` (so the extraction can skip the others)."""
    family = col.type.family
    if dialect in ("mysql", "mariadb"):
        return (family is Family.INTEGER and col.type.detail in ("bit", "unsigned64")) or family in (
            Family.TIME,
            Family.BOOLEAN,
            Family.TIMESTAMP,
        )
    if dialect == "sqlite":
        return family in (Family.TIMESTAMP, Family.DATE, Family.DECIMAL)
    return False


def read_value(value: Any, col: SourceColumn, dialect: str) -> Any:
    """`value` as its column means it (see the module notes); anything else is returned unchanged."""
    if value is None:
        return None
    family = col.type.family
    if dialect in ("mysql", "mariadb"):
        if isinstance(value, bytes | bytearray) and col.source_type.lower().startswith("bit"):
            return int.from_bytes(value, "big")
        if family is Family.TIME and isinstance(value, dt.timedelta):
            return mysql_time(value)
        if family is Family.TIMESTAMP and col.type.tz and isinstance(value, dt.datetime) and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)  # TIMESTAMP is read in a UTC session: it is a UTC instant
    elif dialect == "sqlite":
        if family in (Family.TIMESTAMP, Family.DATE) and isinstance(value, int) and not isinstance(value, bool):
            instant = _EPOCH + dt.timedelta(seconds=value)
            if family is Family.DATE and instant.time() == dt.time(0):
                return instant.date()
            return instant
        if family is Family.DECIMAL and isinstance(value, float):
            return decimal.Decimal(repr(value)) if value == value and abs(value) != float("inf") else value
        if family is Family.DECIMAL and isinstance(value, int) and not isinstance(value, bool):
            return decimal.Decimal(value)
    return value


def mysql_time(value: dt.timedelta) -> dt.time | str:
    """A MySQL TIME value: a time of day when it is one, else MySQL's text for the duration."""
    if dt.timedelta(0) <= value < dt.timedelta(days=1):
        return (dt.datetime.min + value).time()
    sign = "-" if value < dt.timedelta(0) else ""
    total = abs(value)
    micros = total.microseconds
    hours, rest = divmod(total.days * 86_400 + total.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{text}.{micros:06d}" if micros else text


def iso_duration(value: dt.timedelta) -> str:
    """ISO-8601 duration: timedelta(days=1, hours=2, seconds=3.5) -> 'P1DT2H0M3.5S' minus zero parts."""
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    hours, remainder = divmod(value.seconds, 3600)
    minutes, seconds = divmod(remainder, 60)
    out = f"P{value.days}D" if value.days else "P"
    clock = ""
    if hours:
        clock += f"{hours}H"
    if minutes:
        clock += f"{minutes}M"
    if seconds or value.microseconds:
        clock += (f"{seconds}.{value.microseconds:06d}".rstrip("0") if value.microseconds else str(seconds)) + "S"
    if clock:
        out += "T" + clock
    return sign + (out if out != "P" else "PT0S")
