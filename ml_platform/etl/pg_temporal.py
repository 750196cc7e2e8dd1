"""PostgreSQL dates and timestamps beyond BigQuery's range: 'infinity', '-infinity', BC, years after 9999.

PostgreSQL holds dates from 4713 BC to 5874897 AD and the sentinels ±infinity; BigQuery's
DATE/DATETIME/TIMESTAMP hold 0001-01-01..9999-12-31. The type rules say (a warning) what
happens to the others, and this module does it:
- read (`out_of_range_as_text`): such a value is PostgreSQL's own text ('infinity',
  '0044-03-15 BC', '0001-12-31 19:30:00+00 BC'), the text the preview's lenient psycopg
  loaders give too; a column holding one is handed on as text (the other values in their
  ISO form, `casts.render_text`), so a STRING column keeps every value as PostgreSQL wrote it;
- load into DATE/DATETIME/TIMESTAMP (`clamp`): the nearest end of BigQuery's range, the
  industry convention (Fivetran, Debezium): 'infinity' and anything after 9999-12-31 as
  9999-12-31 (23:59:59.999999), '-infinity' and anything before 0001-01-01 (UTC) as
  0001-01-01 (00:00:00).
The ADBC driver hands ±infinity over as int sentinels, shifted by the 2000 -> 1970 epoch
change with wrap-around (date 'infinity' is -2147472692 days); both forms are recognised.
Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ml_platform.etl.casts import render_text

__all__ = ["clamp", "out_of_range_as_text"]

_EPOCH_DATE = dt.date(1970, 1, 1)
_PG_EPOCH_DAYS = 10_957  # 2000-01-01, PostgreSQL's epoch, in days since 1970-01-01
_DAY_MICROS = 86_400_000_000
_MIN_DAYS = (dt.date(1, 1, 1) - _EPOCH_DATE).days
_MAX_DAYS = (dt.date(9999, 12, 31) - _EPOCH_DATE).days
_MIN_MICROS = _MIN_DAYS * _DAY_MICROS
_MAX_MICROS = (_MAX_DAYS + 1) * _DAY_MICROS - 1


def _wrap(value: int, bits: int) -> int:
    half = 1 << (bits - 1)
    return (value + half) % (1 << bits) - half


# PostgreSQL's sentinels (DATEVAL_NOEND = INT32_MAX, DT_NOEND = INT64_MAX, ...) as they arrive.
_DATE_INFINITY = {
    2**31 - 1: "infinity",
    -(2**31): "-infinity",
    _wrap(2**31 - 1 + _PG_EPOCH_DAYS, 32): "infinity",
    _wrap(-(2**31) + _PG_EPOCH_DAYS, 32): "-infinity",
}
_TS_INFINITY = {
    2**63 - 1: "infinity",
    -(2**63): "-infinity",
    _wrap(2**63 - 1 + _PG_EPOCH_DAYS * _DAY_MICROS, 64): "infinity",
    _wrap(-(2**63) + _PG_EPOCH_DAYS * _DAY_MICROS, 64): "-infinity",
}


def _civil(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day count since 1970-01-01, proleptic Gregorian, any year (0 = 1 BC)."""
    z = days + 719_468
    era = z // 146_097  # floor division: correct for days before year 0 too
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def _pg_text(days: int, micros: int | None, tz: bool) -> str:
    """PostgreSQL's ISO text of a date (micros None) or timestamp beyond 0001..9999."""
    year, month, day = _civil(days)
    bc = year <= 0
    text = f"{1 - year if bc else year:04d}-{month:02d}-{day:02d}"
    if micros is not None:
        seconds, fraction = divmod(micros, 1_000_000)
        text += f" {seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if fraction:
            text += f".{fraction:06d}".rstrip("0")
        if tz:
            text += "+00"
    return text + " BC" if bc else text


def out_of_range_as_text(arr: pa.Array) -> pa.Array:
    """A date32 / timestamp[us] column unchanged when every value is in BigQuery's range, else as text."""
    is_date = pa.types.is_date32(arr.type)
    if not (is_date or (pa.types.is_timestamp(arr.type) and arr.type.unit == "us")):
        return arr
    raw = arr.view(pa.int32() if is_date else pa.int64())
    low, high = (_MIN_DAYS, _MAX_DAYS) if is_date else (_MIN_MICROS, _MAX_MICROS)
    bounds = pc.min_max(raw)
    if bounds["min"].as_py() is None or (bounds["min"].as_py() >= low and bounds["max"].as_py() <= high):
        return arr
    sentinels = _DATE_INFINITY if is_date else _TS_INFINITY
    tz = not is_date and arr.type.tz is not None
    texts: list[str | None] = []
    for index, value in enumerate(raw.to_pylist()):
        if value is None:
            texts.append(None)
        elif low <= value <= high:
            texts.append(render_text(arr[index].as_py()))
        elif value in sentinels:
            texts.append(sentinels[value])
        elif is_date:
            texts.append(_pg_text(value, None, tz))
        else:
            days, micros = divmod(value, _DAY_MICROS)
            texts.append(_pg_text(days, micros, tz))
    return pa.array(texts, pa.string())


_EDGES = {
    "date": ("0001-01-01", "9999-12-31"),
    "timestamp": ("0001-01-01 00:00:00", "9999-12-31 23:59:59.999999"),
}
_LATE = r"^\s*(infinity|\+infinity|\d{5,}-.*)$"  # 'infinity', or a year after 9999 (no ' BC')
_EARLY = r"^\s*(-infinity|.* BC)\s*$"


def clamp(arr: pa.Array, target: pa.DataType) -> pa.Array:
    """Values beyond BigQuery's range as the text of its nearest end, for a DATE (date32) or
    DATETIME/TIMESTAMP target; still to be parsed by the target's conversion.

    A date32/timestamp column holding such a value (sentinels included) is read as text first.
    """
    arr = out_of_range_as_text(arr)
    if not pa.types.is_string(arr.type):
        return arr
    low, high = _EDGES["date" if pa.types.is_date32(target) else "timestamp"]
    late = pc.fill_null(pc.match_substring_regex(arr, _LATE, ignore_case=True), False)
    early = pc.fill_null(pc.match_substring_regex(arr, _EARLY, ignore_case=True), False)
    arr = pc.if_else(late, pa.scalar(high), arr)
    return pc.if_else(early, pa.scalar(low), arr)


def lenient_loaders() -> list[tuple[str, type, type]]:
    """(type name, psycopg's loader, a loader that hands over what psycopg cannot load as PostgreSQL's text).

    ±infinity, BC dates and years after 9999 have no Python form: the generic extraction and the
    preview register these so one such value reads as PostgreSQL writes it instead of failing.
    """
    import psycopg  # lazy: psycopg is needed for PostgreSQL sources only
    from psycopg.types import datetime as pg_datetime  # lazy: as above

    loaders: list[tuple[str, type, type]] = []
    for name, base in (
        ("date", pg_datetime.DateLoader),
        ("timestamp", pg_datetime.TimestampLoader),
        ("timestamptz", pg_datetime.TimestamptzLoader),
    ):

        class Lenient(base):  # type: ignore[misc,valid-type]
            def load(self, data: Any) -> Any:
                try:
                    return super().load(data)
                except psycopg.DataError:
                    return bytes(data).decode()

        loaders.append((name, base, Lenient))
    return loaders
