"""The value conversions named by the type rules (`etl/type_rules.py`) that need more than an Arrow cast.

Each function takes an Arrow array and returns the converted one, or raises ValueError
naming what is wrong; the conformer finds the failing row. What each does is exactly
what its rule's message promises (the tests compare landed values with those words):
- decimals are rounded half away from zero to the destination's scale (BigQuery's own
  rounding for NUMERIC), and refused when the rounded value has too many whole digits;
- a float becomes a decimal through its shortest text form (0.1 -> 0.1, never
  0.1000000000000000055511151231257827...);
- text of a temporal value is its ISO form (`render_text`, also used by the preview);
- a time with a zone becomes its UTC time of day.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["nan_as_null", "render_text", "rounded_decimals", "text_array", "utc_time_of_day"]

_DAY_MICROS = 86_400_000_000


def _as_decimal(value: Any) -> decimal.Decimal:
    if isinstance(value, decimal.Decimal):
        return value
    if isinstance(value, bool):
        raise ValueError("a boolean is not a decimal number")
    if isinstance(value, float):
        return decimal.Decimal(repr(value))  # the shortest text that reads back as this float
    if isinstance(value, int):
        return decimal.Decimal(value)
    try:
        return decimal.Decimal(str(value).strip())
    except decimal.InvalidOperation:
        raise ValueError("not a decimal number") from None


def rounded_decimals(arr: pa.Array, whole: int, places: int, target: pa.DataType) -> pa.Array:
    """Every value rounded half away from zero to `places` decimals; more than `whole` whole digits fails."""
    quantum = decimal.Decimal(1).scaleb(-places)
    limit = decimal.Decimal(10) ** whole
    out: list[decimal.Decimal | None] = []
    with decimal.localcontext() as ctx:
        ctx.prec = whole + places + 2
        ctx.Emax, ctx.Emin = 999_999, -999_999
        for value in arr.to_pylist():
            if value is None:
                out.append(None)
                continue
            number = _as_decimal(value)
            if not number.is_finite():
                raise ValueError(f"{number} is not a finite number")
            if number != 0 and number.adjusted() >= whole:
                raise ValueError(f"more than {whole} whole digits")
            rounded = number.quantize(quantum, rounding=decimal.ROUND_HALF_UP)
            if abs(rounded) >= limit:
                raise ValueError(f"more than {whole} whole digits once rounded to {places} places")
            out.append(rounded)
    return pa.array(out, target)


def nan_as_null(convert: Callable[[pa.Array], pa.Array]) -> Callable[[pa.Array], pa.Array]:
    """`convert` after PostgreSQL numeric 'NaN' (text, as extracted; or a float NaN) became NULL, as its rule says."""

    def nulled(arr: pa.Array) -> pa.Array:
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            is_nan = pc.equal(pc.utf8_lower(pc.utf8_trim_whitespace(arr)), "nan")
        elif pa.types.is_floating(arr.type):
            is_nan = pc.is_nan(arr)
        else:
            return convert(arr)  # decimals and integers cannot hold NaN
        return convert(pc.if_else(pc.fill_null(is_nan, False), pa.scalar(None, arr.type), arr))

    return nulled


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def whole_decimals(arr: pa.Array) -> pa.Array:
    """Decimal values (or their text, '12.000') as INT64: a fractional part or a value beyond INT64 fails."""
    out: list[int | None] = []
    for value in arr.to_pylist():
        if value is None:
            out.append(None)
            continue
        number = _as_decimal(value)
        if not number.is_finite() or number != number.to_integral_value():
            raise ValueError("not a whole number")
        whole = int(number)
        if not _INT64_MIN <= whole <= _INT64_MAX:
            raise ValueError("beyond the INT64 range")
        out.append(whole)
    return pa.array(out, pa.int64())


def in_bigquery_range(arr: pa.Array) -> pa.Array:
    """`arr` (DATE/DATETIME/TIMESTAMP) unchanged, or ValueError for a value outside 0001-01-01..9999-12-31.

    PostgreSQL's ±infinity and years beyond 9999 would load without an error and then break
    every query on the table; real BigQuery refuses them.
    """
    valid = arr.drop_null()
    if len(valid) == 0:
        return arr
    as_int = pc.cast(valid, pa.int32() if pa.types.is_date32(arr.type) else pa.int64())
    low, high = _RANGE[pa.types.is_date32(arr.type)]
    bounds = pc.min_max(as_int)
    if bounds["min"].as_py() < low or bounds["max"].as_py() > high:
        raise ValueError("outside BigQuery's range 0001-01-01 to 9999-12-31")
    return arr


_EPOCH_DATE = dt.date(1970, 1, 1)
_RANGE = {
    True: ((dt.date(1, 1, 1) - _EPOCH_DATE).days, (dt.date(9999, 12, 31) - _EPOCH_DATE).days),
    False: (
        (dt.date(1, 1, 1) - _EPOCH_DATE).days * 86_400_000_000,
        ((dt.date(9999, 12, 31) - _EPOCH_DATE).days + 1) * 86_400_000_000 - 1,
    ),
}


def render_text(value: Any) -> str:
    """The one text form of a source value (STRING destinations and the preview agree on it)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | dict):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def text_array(arr: pa.Array) -> pa.Array:
    """`arr` as text, temporal values in their ISO form (Arrow would write '01:00:00.000000')."""
    kind = arr.type
    if pa.types.is_string(kind):
        return arr
    if pa.types.is_temporal(kind) or pa.types.is_nested(kind) or pa.types.is_floating(kind):
        return pa.array([None if v is None else render_text(v) for v in arr.to_pylist()], pa.string())
    return pc.cast(arr, pa.string())


def utc_time_of_day(arr: pa.Array) -> pa.Array:
    """Times with an offset ('12:00:00+02') as their UTC time of day (10:00:00); plain times unchanged."""
    if pa.types.is_time(arr.type):
        return pc.cast(arr, pa.time64("us"))
    text = pc.binary_join_element_wise("1970-01-01T", pc.utf8_trim_whitespace(arr), "")
    instants = pc.cast(pc.cast(text, pa.timestamp("us", tz="UTC")), pa.int64())
    micros = [None if v is None else v % _DAY_MICROS for v in instants.to_pylist()]
    return pc.cast(pa.array(micros, pa.int64()), pa.time64("us"))
