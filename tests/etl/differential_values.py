"""Value classes, SQL literals and the expected landing of every value for the differential suite.

Each `Kind` is one source column type on one engine: the DDL that declares it, a
hypothesis strategy of the values the source can hold (as Python values, or `Raw`
for values Python cannot represent, such as PostgreSQL `'infinity'`), the boundary
values every table always holds, and how to spell a value as a SQL literal.

`expected(kind, dest, value, verdict)` is the oracle: what BigQuery should hold after
the load (`REJECT` when the value cannot go into that destination at all). It encodes
the documented meaning of each verdict and warning kind:

- same family: the value itself (a REPEATED column has no NULL: a NULL array is []);
- decimals into NUMERIC(P,S)/NUMERIC: rounded half away from zero to S places (BigQuery's
  rounding), rejected when the whole digits do not fit;
- integers/decimals into FLOAT64: the nearest double ("beyond ±2^53 lose precision");
- "stored as text": any text that parses back to the same value (the format is not promised);
- BOOL into numbers: 1/0; DATE into DATETIME/TIMESTAMP: midnight (UTC);
- TIMESTAMP without time zone into TIMESTAMP: read as UTC; with a time zone into DATETIME:
  the UTC wall-clock time;
- narrowing (needs validation): the value when it converts exactly, else REJECT.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import re
import sqlite3
import struct
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

UTC = dt.UTC
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
TWO_53 = 2**53


class _Reject:
    def __repr__(self) -> str:
        return "REJECT"


REJECT = _Reject()


@dataclass(frozen=True)
class Raw:
    """A source value Python cannot hold (e.g. PostgreSQL 'infinity'), spelled as its SQL literal."""

    sql: str
    text: str  # how the source spells it as text ('infinity')

    def __repr__(self) -> str:
        return f"Raw({self.sql})"


@dataclass(frozen=True)
class Dest:
    """A destination column: BigQuery type, mode and NUMERIC parameters."""

    type: str
    mode: str = "NULLABLE"
    precision: int | None = None
    scale: int | None = None

    @property
    def label(self) -> str:
        params = f"({self.precision},{self.scale or 0})" if self.precision is not None else ""
        return (
            ("ARRAY<" if self.mode == "REPEATED" else "")
            + self.type
            + params
            + (">" if self.mode == "REPEATED" else "")
        )


@dataclass(frozen=True)
class Kind:
    engine: str
    ddl: str
    family: str  # the oracle's key: int, uint64, bool, tinyint1, decimal, float, text, bytes, date, ts, tstz,
    #              time, mytime, timetz, json, int_array, text_array, epoch_ts
    values: st.SearchStrategy
    boundary: tuple = ()
    literal: Callable[[Any], str] = repr
    precision: int | None = None
    scale: int | None = None
    tags: frozenset = field(default_factory=frozenset)

    @property
    def label(self) -> str:
        return f"{self.engine}:{self.ddl}"


# --------------------------------------------------------------------------- SQL literals


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _mysql_q(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def lit_plain(v: Any) -> str:
    return str(v)


def lit_pg_numeric(v: decimal.Decimal) -> str:
    return "'NaN'::numeric" if v.is_nan() else str(v)


def lit_pg_float(v: float) -> str:
    if math.isnan(v):
        return "'NaN'::float8"
    if math.isinf(v):
        return "'Infinity'::float8" if v > 0 else "'-Infinity'::float8"
    return f"{v!r}::float8"


def lit_sqlite_float(v: float) -> str:
    if math.isinf(v):
        return "9e999" if v > 0 else "-9e999"
    return repr(v)


def sqlite_stored_float(v: float) -> float:
    """The REAL SQLite stores for the literal `lit_sqlite_float(v)`: the source's value, which the suite compares.

    SQLite's text-to-double conversion is not always correctly rounded: it reads
    -3.5119967003102123e-307 as -3.5119967003102127e-307 (SQLite 3.40), before the product sees it.
    """
    with closing(sqlite3.connect(":memory:")) as db:
        return db.execute(f"SELECT {lit_sqlite_float(v)}").fetchone()[0]


def lit_text(engine: str) -> Callable[[str], str]:
    return _mysql_q if engine == "mysql" else _q


def lit_bytes(engine: str) -> Callable[[bytes], str]:
    if engine == "postgresql":
        return lambda v: f"'\\x{v.hex()}'::bytea"
    return lambda v: f"X'{v.hex()}'"


def lit_bool(engine: str) -> Callable[[bool], str]:
    if engine == "postgresql":
        return lambda v: "TRUE" if v else "FALSE"
    return lambda v: "1" if v else "0"


def _date_text(d: dt.date) -> str:
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"


def _dt_text(v: dt.datetime) -> str:
    return f"{_date_text(v.date())} {v.strftime('%H:%M:%S')}.{v.microsecond:06d}"


def lit_date(engine: str) -> Callable[[Any], str]:
    def lit(v: Any) -> str:
        if isinstance(v, Raw):
            return v.sql
        return ("DATE " if engine == "postgresql" else "") + _q(_date_text(v))

    return lit


def lit_ts(engine: str) -> Callable[[Any], str]:
    def lit(v: Any) -> str:
        if isinstance(v, Raw):
            return v.sql
        if isinstance(v, int):
            return str(v)
        text = _dt_text(v)
        if v.tzinfo is not None:
            off = v.utcoffset()
            sign = "-" if off < dt.timedelta(0) else "+"
            minutes = abs(int(off.total_seconds())) // 60
            text += f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
        return _q(text)

    return lit


def lit_time(v: Any) -> str:
    if isinstance(v, dt.timedelta):
        return _q(mysql_time_text(v))
    text = v.strftime("%H:%M:%S.%f")
    if v.tzinfo is not None:
        off = v.utcoffset()
        sign = "-" if off < dt.timedelta(0) else "+"
        minutes = abs(int(off.total_seconds())) // 60
        text += f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return _q(text)


def mysql_time_text(v: dt.timedelta) -> str:
    micros = abs(v) // dt.timedelta(microseconds=1)
    sign = "-" if v < dt.timedelta(0) else ""
    seconds, micro = divmod(micros, 1_000_000)
    hours, rest = divmod(seconds, 3600)
    return f"{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}.{micro:06d}"


def lit_json(engine: str) -> Callable[[Any], str]:
    def lit(v: Any) -> str:
        text = json.dumps(v, ensure_ascii=False, allow_nan=False)
        return _mysql_q(text) if engine == "mysql" else _q(text)

    return lit


def lit_pg_array(element_type: str, element: Callable[[Any], str]) -> Callable[[list | None], str]:
    def lit(v: list) -> str:
        if not v:
            return f"'{{}}'::{element_type}[]"
        return "ARRAY[" + ", ".join("NULL" if e is None else element(e) for e in v) + f"]::{element_type}[]"

    return lit


def literal(kind: Kind, value: Any) -> str:
    return "NULL" if value is None else kind.literal(value)


# --------------------------------------------------------------------------- strategies


def decimals(precision: int, scale: int) -> st.SearchStrategy:
    with decimal.localcontext() as ctx:
        ctx.prec = 200
        limit = 10 ** (precision - scale) - decimal.Decimal(1).scaleb(-scale)
        low = -limit  # in this context: with the default 28 digits, -(10^29 - 10^-9) rounds to -10^29
    return st.decimals(min_value=low, max_value=limit, places=scale, allow_nan=False, allow_infinity=False)


def decimal_boundary(precision: int, scale: int) -> tuple:
    with decimal.localcontext() as ctx:
        ctx.prec = 200
        return _decimal_boundary(precision, scale)


def _decimal_boundary(precision: int, scale: int) -> tuple:
    top = decimal.Decimal(10**precision - 1).scaleb(-scale)
    tiny = decimal.Decimal(1).scaleb(-scale)
    values = [decimal.Decimal(0), top, -top, tiny, -tiny, decimal.Decimal("1.5") if scale else decimal.Decimal(2)]
    if scale > 9:
        # A digit that rounds up (and one that rounds away from zero for negatives) at 9 places.
        values += [decimal.Decimal("0.0000000015"), decimal.Decimal("-0.0000000025"), decimal.Decimal("1.0000000005")]
    if scale >= 2:
        # Short decimals with no exact binary form: FLOAT64 must get their nearest double.
        values += [decimal.Decimal("-19.40"), decimal.Decimal("0.30"), decimal.Decimal("19.99")]
    if scale > 2:
        values += [decimal.Decimal("0.125"), decimal.Decimal("-0.125"), decimal.Decimal("0.135")]
    return tuple(v for v in values if abs(v) <= top and v == v.quantize(tiny))


def unconstrained_decimals() -> st.SearchStrategy:
    return st.builds(lambda i, s: decimal.Decimal(i).scaleb(-s), st.integers(-(10**45), 10**45), st.integers(0, 45))


UNCONSTRAINED_BOUNDARY = (
    decimal.Decimal("19.99"),
    decimal.Decimal("0.1"),
    decimal.Decimal("-0.000000000123456789"),
    decimal.Decimal("1" * 29),
    decimal.Decimal("1" * 30),  # 29 whole digits fit NUMERIC, 30 do not
    decimal.Decimal("3.14159265358979323846264338327950288419716939937510"),  # 50 decimals
    decimal.Decimal("12345678901234567890123456789.123456789"),
)

INT_BOUNDARY = (0, 1, -1, TWO_53 - 1, TWO_53, TWO_53 + 1, -(TWO_53 + 1), INT64_MAX, INT64_MIN, 2)
FLOAT_BOUNDARY = (0.0, 1.5, 0.1, -2.5e-8, 1e300, -1e300, 5e-324, 2.0**53, 123456.789012345)
FLOAT_SPECIAL = (math.nan, math.inf, -math.inf)
NEGATIVE_ZERO = (-0.0,)  # PostgreSQL keeps it; MariaDB and SQLite store 0
TEXT_BOUNDARY = (
    "",
    " ",
    "a'b",
    "back\\slash",
    "Zürich – 東京 🚀",
    "42",
    "-7",
    "9223372036854775808",
    '{"a": [1, {"b": null}], "c": "ü"}',
    "[1, 2.5, true]",
    "null",
    "NaN",
    "true",
)
BYTES_BOUNDARY = (b"", b"\x00", b"\xff\xfe", "Grüße".encode(), b"12", bytes(range(32)))
JSON_BOUNDARY = (
    {},
    [],
    {"a": {"b": [1, 2, {"c": None}]}},
    {"ü": "🚀", "e": ""},
    [1, "two", 3.5, False, None],
    {"big": TWO_53 + 1},
    "just a string",
    0,
    True,
)


def texts(engine: str) -> st.SearchStrategy:
    return st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=30)


def json_values() -> st.SearchStrategy:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**53), 2**53)
        | st.floats(allow_nan=False, allow_infinity=False, width=32).map(float)
        | st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=8)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=4),
                inner,
                max_size=3,
            )
        ),
        max_leaves=6,
    )


def offsets() -> st.SearchStrategy:
    return st.integers(-14 * 60, 14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))


DATE_MIN, DATE_MAX = dt.date(1, 1, 1), dt.date(9999, 12, 31)
DT_MIN, DT_MAX = dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)


# --------------------------------------------------------------------------- comparison


def _float_same(a: float, b: Any) -> bool:
    if not isinstance(b, float | int) or isinstance(b, bool):
        return False
    b = float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return struct.pack("<d", a) == struct.pack("<d", b)  # tells 0.0 from -0.0


@dataclass(frozen=True)
class AsText:
    """ "Stored as text": any text whose parse gives back the source value."""

    value: Any
    parse: Callable[[str], Any]

    def __repr__(self) -> str:
        return f"text of {self.value!r}"


_INSTANT = re.compile(
    r"^(-?\d{4,})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?\s*(Z|UTC|[+-]\d\d(?::?\d\d)?)?"
    r"( BC)?$"
)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar, for any year (0 and below too)."""
    y -= m <= 2
    era = y // 400  # Python floors (the C original adjusts for truncation)
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def epoch_micros(fields: tuple[int, ...], offset_minutes: int) -> int:
    y, mo, d, h, mi, s, us = fields
    return ((_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset_minutes * 60) * 1_000_000) + us


@dataclass(frozen=True)
class TextInstant:
    """ "Stored as text" for an instant: any text naming the same instant (UTC when it names no zone).

    Compared by arithmetic rather than `datetime`, so an instant before 0001-01-01 UTC (a
    PostgreSQL timestamptz of 0001-01-01 01:00+05:30) can be spelled as year 0000 and still match.
    """

    value: dt.datetime

    def __repr__(self) -> str:
        return f"text of the instant {self.value.isoformat()}"

    def micros(self) -> int:
        v = self.value
        offset = int(v.utcoffset().total_seconds()) // 60 if v.tzinfo else 0
        return epoch_micros((v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond), offset)

    @staticmethod
    def parse(text: str) -> int:
        found = _INSTANT.match(text.strip())
        if not found:
            raise ValueError(f"not an instant: {text!r}")
        y, mo, d, h, mi, s, frac, zone, bc = found.groups()
        if bc:  # PostgreSQL's text for years before 1: 1 BC is year 0, 2 BC year -1
            y = str(1 - int(y))
        offset = 0
        if zone and zone not in ("Z", "UTC"):
            digits = zone[1:].replace(":", "")
            offset = int(digits[:2]) * 60 + int(digits[2:4] or 0)
            offset = -offset if zone[0] == "-" else offset
        fields = (int(y), int(mo), int(d), int(h), int(mi), int(s), int((frac or "0").ljust(6, "0")))
        return epoch_micros(fields, offset)


@dataclass(frozen=True)
class Json:
    """A JSON document compared by meaning (key order, spacing and number spelling do not matter).

    `parsed`: the client already parsed it (a JSON column); else the landed value is JSON text (STRING).
    """

    value: Any
    parsed: bool = True

    def __repr__(self) -> str:
        return f"JSON {json.dumps(self.value, ensure_ascii=False)}"


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b) if (isinstance(a, float) or isinstance(b, float)) else a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _strict_json(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def same(expected: Any, actual: Any) -> bool:
    """Whether BigQuery's value (as the google-cloud-bigquery client returns it) is the expected one."""
    if isinstance(expected, TextInstant):
        try:
            return isinstance(actual, str) and TextInstant.parse(actual) == expected.micros()
        except ValueError:
            return False
    if isinstance(expected, AsText):
        if not isinstance(actual, str):
            return False
        try:
            return same(expected.value, expected.parse(actual))
        except (ValueError, ArithmeticError, TypeError):
            return False
    if isinstance(expected, Json):
        if not expected.parsed:
            if not isinstance(actual, str):
                return False
            try:
                actual = _strict_json(actual)
            except ValueError:
                return False
        return _json_equal(expected.value, actual)
    if expected is None or actual is None:
        return expected is None and actual is None
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(same(e, a) for e, a in zip(expected, actual, strict=True))
        )
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, float):
        return _float_same(expected, actual)
    if isinstance(expected, decimal.Decimal):
        # NUMERIC/BIGNUMERIC come back as Decimal with the column's scale: compare the number.
        return isinstance(actual, decimal.Decimal | int) and decimal.Decimal(actual) == expected
    if isinstance(expected, dt.datetime):
        if not isinstance(actual, dt.datetime) or (expected.tzinfo is None) != (actual.tzinfo is None):
            return False
        try:
            return expected == actual  # aware datetimes compare as instants (TIMESTAMP is UTC-normalised)
        except OverflowError:
            return expected.utcoffset() == actual.utcoffset() and expected.replace(tzinfo=None) == actual.replace(
                tzinfo=None
            )
    if isinstance(expected, dt.date):
        return type(actual) is dt.date and expected == actual
    if isinstance(expected, dt.time):
        return isinstance(actual, dt.time) and expected == actual
    return type(expected) is type(actual) and expected == actual


# --------------------------------------------------------------------------- parsers for "stored as text"


def parse_datetime_text(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    return value


def parse_aware_text(text: str) -> dt.datetime:
    value = parse_datetime_text(text.removesuffix(" UTC"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_DURATION = re.compile(r"^(-)?(\d+):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$")


def parse_duration_text(text: str) -> dt.timedelta:
    found = _DURATION.match(text.strip())
    if not found:
        raise ValueError(f"not a time: {text!r}")
    sign, h, m, s, frac = found.groups()
    value = dt.timedelta(hours=int(h), minutes=int(m), seconds=int(s), microseconds=int((frac or "0").ljust(6, "0")))
    return -value if sign else value


def parse_bool_text(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "t", "1"):
        return True
    if lowered in ("false", "f", "0"):
        return False
    raise ValueError(text)


def parse_float_text(text: str) -> float:
    return float(text)


# --------------------------------------------------------------------------- the oracle


def round_half_away(value: decimal.Decimal, places: int) -> decimal.Decimal:
    return value.quantize(decimal.Decimal(1).scaleb(-places), rounding=decimal.ROUND_HALF_UP)


def _numeric(value: decimal.Decimal, dest: Dest) -> Any:
    if dest.precision is not None:
        places, whole = dest.scale or 0, dest.precision - (dest.scale or 0)
    elif dest.type == "BIGNUMERIC":
        places, whole = 38, 38
    else:
        places, whole = 9, 29
    with decimal.localcontext() as ctx:
        ctx.prec = 1000  # 1e308 has 309 digits
        rounded = round_half_away(value, places)
        if abs(rounded) >= decimal.Decimal(10) ** whole:
            return REJECT
    return rounded


def _exact_int(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return REJECT
    exact = decimal.Decimal(value)
    if exact != exact.to_integral_value() or not INT64_MIN <= int(exact) <= INT64_MAX:
        return REJECT
    return int(exact)


def _bool01(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return REJECT
    return {0: False, 1: True}.get(value, REJECT) if not isinstance(value, bool) else value


def _to_utc(value: dt.datetime) -> Any:
    try:
        instant = value.astimezone(UTC)
    except OverflowError:
        return REJECT
    return instant if DT_MIN.replace(tzinfo=UTC) <= instant else REJECT


def _epoch(value: Any) -> Any:
    """A SQLite DATETIME cell: text in ISO form, or an integer of seconds since 1970 (unixepoch)."""
    if isinstance(value, int):
        return dt.datetime(1970, 1, 1) + dt.timedelta(seconds=value)
    return value


def _clamps(kind: Kind, dest: Dest, verdict: str) -> bool:
    """PostgreSQL dates/timestamps beyond BigQuery's range load as its nearest end (the warning says so)."""
    return kind.engine == "postgresql" and verdict == "warning" and dest.type in ("DATE", "DATETIME", "TIMESTAMP")


def _clamped(low: bool, dest: Dest) -> Any:
    if dest.type == "DATE":
        return DATE_MIN if low else DATE_MAX
    edge = DT_MIN if low else DT_MAX
    return edge.replace(tzinfo=UTC) if dest.type == "TIMESTAMP" else edge


def expected(kind: Kind, dest: Dest, value: Any, verdict: str) -> Any:
    """What should land in `dest` for the source `value` (REJECT: it cannot load)."""
    if value is None:
        return [] if dest.mode == "REPEATED" else None
    if isinstance(value, Raw):
        # Outside every BigQuery range; as text it is still the source's own spelling.
        if dest.type == "STRING":
            return AsText(value.text, str)
        return _clamped(value.text.startswith("-"), dest) if _clamps(kind, dest, verdict) else REJECT
    family, d = kind.family, dest.type
    if dest.mode == "REPEATED":
        if any(e is None for e in value):
            return REJECT  # BigQuery arrays cannot hold NULL elements
        element = Kind(kind.engine, kind.ddl, family.removesuffix("_array"), kind.values)
        items = [expected(element, Dest(d), e, verdict) for e in value]
        return REJECT if any(i is REJECT for i in items) else items
    if family == "epoch_ts":
        family, value = "ts", _epoch(value)
    if family in ("int", "uint64", "tinyint1", "bit"):
        if family == "tinyint1" and d == "BOOL":
            return bool(value) if verdict == "warning" else _bool01(value)
        if d == "INT64":
            return value if INT64_MIN <= value <= INT64_MAX else REJECT
        if d in ("NUMERIC", "BIGNUMERIC"):
            return _numeric(decimal.Decimal(value), dest)
        if d == "FLOAT64":
            return float(value)
        if d == "STRING":
            return AsText(value, int)
        if d == "BOOL":
            return _bool01(value)
        if d == "JSON":
            return Json(value)
    if family == "bool":
        if d == "BOOL":
            return value
        if d in ("INT64",):
            return int(value)
        if d in ("NUMERIC", "BIGNUMERIC"):
            return decimal.Decimal(int(value))
        if d == "FLOAT64":
            return float(value)
        if d == "STRING":
            return AsText(value, parse_bool_text)
        if d == "JSON":
            return Json(value)
    if family == "decimal" and isinstance(value, decimal.Decimal) and value.is_nan():
        # PostgreSQL numeric 'NaN' (the rule's warning): NULL in NUMERIC/BIGNUMERIC/INT64 unless REQUIRED.
        if d in ("NUMERIC", "BIGNUMERIC", "INT64"):
            return REJECT if dest.mode == "REQUIRED" else None
        if d == "FLOAT64":
            return math.nan
        if d == "STRING":
            return AsText("NaN", str)
        return REJECT
    if family == "decimal":
        if d in ("NUMERIC", "BIGNUMERIC"):
            return _numeric(value, dest)
        if d == "FLOAT64":
            return float(value)
        if d == "INT64":
            return _exact_int(value)
        if d == "STRING":
            return AsText(value, decimal.Decimal)
        if d == "BOOL":
            return _bool01(value)
        if d == "JSON":
            return Json(float(value))
    if family == "float":
        if d == "FLOAT64":
            return value
        if d in ("NUMERIC", "BIGNUMERIC"):
            if math.isnan(value) or math.isinf(value):
                return REJECT
            # As the rule says: the float's shortest decimal form (repr), then rounded half away from zero.
            return _numeric(decimal.Decimal(repr(value)), dest)
        if d == "INT64":
            return _exact_int(value)
        if d == "STRING":
            return AsText(value, parse_float_text)
        if d == "BOOL":
            return _bool01(value)
    if family == "text":
        if d == "STRING":
            return value
        if d == "BYTES":
            return value.encode()
        if d == "JSON":
            try:
                return Json(_strict_json(value), parsed=True)
            except ValueError:
                return REJECT
        if d == "INT64":
            return int(value) if re.fullmatch(r"[+-]?\d+", value) and INT64_MIN <= int(value) <= INT64_MAX else REJECT
    if family == "bytes":
        if d == "BYTES":
            return value
        if d == "STRING":
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                return REJECT
    if family == "date":
        if d == "DATE":
            return value
        if d == "DATETIME":
            return dt.datetime.combine(value, dt.time())
        if d == "TIMESTAMP":
            return dt.datetime.combine(value, dt.time(), tzinfo=UTC)
        if d == "STRING":
            return AsText(value, dt.date.fromisoformat)
    if family == "ts":
        if d == "DATETIME":
            return value
        if d == "TIMESTAMP":
            return value.replace(tzinfo=UTC)
        if d == "DATE":
            return value.date() if value.time() == dt.time() else REJECT
        if d == "STRING":
            return AsText(value, parse_datetime_text)
    if family == "tstz":
        if d == "STRING":
            return TextInstant(value)  # the same instant, even one BigQuery could not hold
        instant = _to_utc(value)
        if instant is REJECT:
            return _clamped(True, dest) if _clamps(kind, dest, verdict) else REJECT
        if d == "TIMESTAMP":
            return instant
        if d == "DATETIME":
            return instant.replace(tzinfo=None)
    if family == "time":
        if d == "TIME":
            return value
        if d == "STRING":
            return AsText(value, dt.time.fromisoformat)
    if family == "timetz":
        if d == "TIME":
            # The instant's time of day in UTC, as TIMESTAMP columns normalise.
            moment = dt.datetime.combine(dt.date(2000, 1, 1), value).astimezone(UTC)
            return moment.time().replace(tzinfo=None)
    if family == "mytime":  # MySQL TIME: a signed duration up to 838:59:59
        if d == "TIME":
            if dt.timedelta(0) <= value < dt.timedelta(days=1):
                return (dt.datetime.min + value).time()
            return REJECT
        if d == "STRING":
            return AsText(value, parse_duration_text)
    if family == "json":
        if d in ("JSON", "STRING"):
            return Json(value, parsed=d == "JSON")
    raise AssertionError(f"the oracle has no rule for {kind.label} -> {dest.label}")
