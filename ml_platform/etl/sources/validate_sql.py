"""SQL expressions that say whether a source value converts to a BigQuery type, per dialect.

Built with SQLAlchemy so every identifier is quoted by the dialect and every literal is a
bound parameter. `etl/sources/validate.py` plans the scan and runs it; the rules for what
"fails" are in its module notes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Date,
    Integer,
    Numeric,
    String,
    Text,
    Time,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.sql.elements import ColumnElement

from ml_platform.etl.types import CanonicalType, Family

__all__ = ["Builder", "Expr", "Target", "builder_for"]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_TWO_63 = float(2**63)
# Text the cast step would parse: the whitespace it trims (Arrow's utf8_trim_whitespace, ASCII part).
_WHITESPACE = " \t\n\r\x0b\x0c"


# --- text grammar (PostgreSQL ARE and MariaDB PCRE share these) -----------------------

_INT_RE = r"^\s*-?[0-9]+\s*$"
_FLOAT_RE = r"(?i)^\s*[-+]?(([0-9]+\.?[0-9]*|\.[0-9]+)(e[-+]?[0-9]+)?|inf|infinity|nan)\s*$"
# The exponent is capped at 9 digits so it can be cast to an integer for the digit arithmetic.
_DECIMAL_RE = r"(?i)^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)(e[-+]?[0-9]{1,9})?\s*$"
_BOOL_RE = r"(?i)^\s*(true|false|t|f|yes|no|y|n|1|0|on|off)\s*$"
_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_CLOCK = r"([01][0-9]|2[0-3])(:[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?)?"
_ZONE = r"(Z|[-+]([01][0-9]|2[0-3])(:?[0-5][0-9])?)"
_DATE_RE = rf"^\s*{_DATE}\s*$"
_TIMESTAMP_RE = rf"^\s*{_DATE}([T ]{_CLOCK}{_ZONE}?)?\s*$"
_TIME_RE = rf"^\s*{_CLOCK}\s*$"
# PostgreSQL before 16: a JSON scalar, or something bracketed like an object/array.
_JSON_SHAPE_RE = (
    r'^\s*(\{.*\}|\[.*\]|"([^"\\]|\\.)*"|-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?|true|false|null)\s*$'
)
# Well-formed UTF-8 (RFC 3629) over the lower-case hex of the bytes.
_UTF8_HEX_RE = (
    r"^([0-7][0-9a-f]"
    r"|(c[2-9a-f]|d[0-9a-f])[89ab][0-9a-f]"
    r"|e0[ab][0-9a-f][89ab][0-9a-f]"
    r"|(e[1-9a-c]|e[ef])[89ab][0-9a-f][89ab][0-9a-f]"
    r"|ed[89][0-9a-f][89ab][0-9a-f]"
    r"|f0(9[0-9a-f]|[ab][0-9a-f])[89ab][0-9a-f][89ab][0-9a-f]"
    r"|f[1-3][89ab][0-9a-f][89ab][0-9a-f][89ab][0-9a-f]"
    r"|f48[0-9a-f][89ab][0-9a-f][89ab][0-9a-f])*$"
)
# SQLite layouts (digits as '9'): what _CLOCK, _ZONE and _TIMESTAMP_RE accept, spelled out.
_CLOCK_SHAPES = ("99", "99:99", "99:99:99") + tuple("99:99:99." + "9" * n for n in range(1, 7))
_TIMESTAMP_SHAPES = ("9999+99+99",) + tuple(
    f"9999+99+99 {clock}{zone}" for clock in _CLOCK_SHAPES for zone in ("", "Z", "+99", "+9999", "+99:99")
)
_TRUE_FALSE = ("true", "false", "t", "f", "yes", "no", "y", "n", "1", "0", "on", "off")

Expr = ColumnElement[Any]


@dataclass(frozen=True)
class Target:
    """A spec's target type with the digit limits of NUMERIC/BIGNUMERIC."""

    kind: str
    whole_digits: int = 0
    places: int = 0
    # The cast rounds extra decimal places (type_rules "decimal_round"/"float_to_decimal"):
    # only values too large once rounded fail, not the ones with more places.
    rounds: bool = False
    nan_null: bool = False  # a PostgreSQL numeric 'NaN' loads as NULL



# --- expression builders ----------------------------------------------------------


def builder_for(conn: Connection, kind: str) -> Builder:
    if kind == "postgresql":
        version = tuple(conn.dialect.server_version_info or (0,))
        return _Postgres(version)
    if kind == "mysql":
        return _MariaDB()
    return _SQLite()


def _number(value: int) -> Expr:
    """An exact numeric literal: a Python int this large would be bound as BIGINT."""
    return literal(decimal.Decimal(value), Numeric(asdecimal=True))


def _calendar_ok(day: Expr) -> Expr:
    """`day` ('YYYY-MM-DD', digits already checked) is a real day of years 1-9999."""
    year = cast(func.substr(day, 1, 4), Integer)
    month = cast(func.substr(day, 6, 2), Integer)
    dom = cast(func.substr(day, 9, 2), Integer)
    leap = or_(and_(year % 4 == 0, year % 100 != 0), year % 400 == 0)
    last = case(
        (month.in_([4, 6, 9, 11]), 30),
        (month == 2, case((leap, 29), else_=28)),
        else_=31,
    )
    return and_(year >= 1, month >= 1, month <= 12, dom >= 1, dom <= last)


def _digits_fit(b: Builder, digits: Expr, whole_length: Expr, exponent: Expr, target: Target) -> Expr:
    """A decimal literal fits `target` without losing digits.

    `digits` are all its digits (no sign, point or exponent), the first `whole_length`
    of them before the point. With D the digits without leading zeros and p the
    position of the point within D (after the exponent moves it), the value needs p
    whole digits and len(rtrim(D, '0')) - p decimal places.
    """
    significant = b.ltrim_zeros(digits)
    point = whole_length + exponent - (b.length(digits) - b.length(significant))
    kept = b.rtrim_zeros(significant)
    if target.rounds:  # extra places are rounded, not refused
        return or_(kept == "", point <= target.whole_digits)
    return or_(kept == "", and_(point <= target.whole_digits, b.length(kept) - point <= target.places))


def _int_digits_fit(b: Builder, digits: Expr, negative: Expr) -> Expr:
    """`digits` (decimal, no sign) is within INT64 for the sign given."""
    significant = b.ltrim_zeros(digits)
    limit = case((negative, str(-INT64_MIN)), else_=str(INT64_MAX))
    return case(
        (b.length(significant) < 19, true()),
        (b.length(significant) == 19, significant <= limit),
        else_=false(),
    )


class Builder:
    """SQL for one dialect: whether a value converts to a target type."""

    name = ""

    # primitives ---------------------------------------------------------------
    def as_text(self, x: Expr) -> Expr:
        return cast(x, Text)

    def length(self, x: Expr) -> Expr:
        return func.char_length(x)

    def concat(self, a: Expr, b: Expr) -> Expr:
        return a.op("||")(b)

    def ltrim_zeros(self, x: Expr) -> Expr:
        return func.ltrim(x, "0", type_=String)

    def rtrim_zeros(self, x: Expr) -> Expr:
        return func.rtrim(x, "0", type_=String)

    # capability ---------------------------------------------------------------
    def can_check(self, source: CanonicalType, target: Target, repeated: bool) -> bool:
        return not repeated

    def failing_elements(self, value: Expr, source: CanonicalType, target: Target) -> Expr:
        raise NotImplementedError

    def failing_element_values(self, sample: Any, value: Expr, source: CanonicalType, target: Target) -> Any:
        raise NotImplementedError

    def value_ok(self, x: Expr, source: CanonicalType, target: Target) -> Expr:
        raise NotImplementedError


class _RegexBuilder(Builder):
    """PostgreSQL and MariaDB: typed columns, regular expressions for text."""

    def matches(self, x: Expr, pattern: str) -> Expr:
        return x.regexp_match(pattern)

    def case_sensitive(self, pattern: str) -> str:
        return pattern

    def group(self, x: Expr, pattern: str) -> Expr:
        """The first capture group of `pattern`, which must match the whole text."""
        return func.regexp_replace(x, pattern, r"\1", type_=String)

    def json_ok(self, t: Expr) -> Expr:
        raise NotImplementedError

    def calendar_ok(self, day: Expr) -> Expr:
        return _calendar_ok(day)

    def utf8_ok(self, x: Expr) -> Expr:
        raise NotImplementedError

    def float_bounds_ok(self, x: Expr) -> Expr:
        """A float value is finite (PostgreSQL floats may be NaN or infinite)."""
        return true()

    # value checks -------------------------------------------------------------
    def value_ok(self, x: Expr, source: CanonicalType, target: Target) -> Expr:
        family, kind = source.family, target.kind
        if kind in ("STRING", "BYTES"):
            return self.utf8_ok(x) if family is Family.BYTES and kind == "STRING" else true()
        if family is Family.INTEGER:
            if kind == "INT64":
                return x <= INT64_MAX if source.detail == "unsigned64" else true()
            if kind in ("NUMERIC", "BIGNUMERIC"):
                return func.abs(x) < _number(10**target.whole_digits)
            if kind == "BOOL":
                return x.in_([0, 1])
            if kind in ("FLOAT64", "JSON"):
                return true()
        if family is Family.DECIMAL and target.nan_null:
            other = self.value_ok(x, source, dataclasses.replace(target, nan_null=False))
            return case((x == cast(literal("NaN"), Numeric), true()), else_=other)
        if family is Family.DECIMAL:
            if kind == "INT64":
                return case((and_(x >= _number(INT64_MIN), x <= _number(INT64_MAX)), x == func.floor(x)), else_=false())
            if kind in ("NUMERIC", "BIGNUMERIC") and target.rounds:
                # Rounded half away from zero (PostgreSQL and MariaDB round() on decimals do the same).
                return func.abs(func.round(x, target.places)) < _number(10**target.whole_digits)
            if kind in ("NUMERIC", "BIGNUMERIC"):
                return case(
                    (func.abs(x) < _number(10**target.whole_digits), x == func.round(x, target.places)), else_=false()
                )
        if family is Family.FLOAT:
            if kind == "INT64":
                # NaN compares greater than everything in PostgreSQL, so it fails the range.
                return case((and_(x >= -_TWO_63, x < _TWO_63), x == func.floor(x)), else_=false())
            if kind in ("NUMERIC", "BIGNUMERIC"):
                return func.abs(x) < float(10**target.whole_digits)
        if family in (Family.DECIMAL, Family.FLOAT) and kind in ("BOOL", "FLOAT64", "JSON"):
            if kind == "BOOL":
                return x.in_([0, 1] if family is Family.DECIMAL else [0.0, 1.0])
            return true() if kind == "FLOAT64" else self.float_bounds_ok(x)
        if family is Family.BOOLEAN and kind in ("BOOL", "INT64", "FLOAT64", "NUMERIC", "BIGNUMERIC"):
            # MySQL's BOOLEAN is tinyint(1): any other number is not a boolean.
            return x.in_([0, 1]) if self.name == "mysql" else true()
        if family is Family.DATE and kind in ("DATE", "DATETIME", "TIMESTAMP"):
            return and_(x >= literal(dt.date(1, 1, 1)), x <= literal(dt.date(9999, 12, 31)))
        if family is Family.TIMESTAMP and kind in ("DATE", "DATETIME", "TIMESTAMP"):
            utc = self.utc_timestamp(x, source)
            in_range = and_(
                utc >= literal(dt.datetime(1, 1, 1)), utc <= literal(dt.datetime(9999, 12, 31, 23, 59, 59, 999999))
            )
            if kind != "DATE":
                return in_range
            return case((in_range, utc == cast(utc, Date)), else_=false())
        if family is Family.TIME and kind == "TIME":
            clock = self.time_of_day(x, source)
            return and_(clock >= literal(dt.time(0, 0)), clock <= literal(dt.time(23, 59, 59, 999999)))
        if family is Family.JSON and kind == "JSON":
            return true()
        return self.text_ok(self.as_text(x), target)

    def utc_timestamp(self, x: Expr, source: CanonicalType) -> Expr:
        return x

    def time_of_day(self, x: Expr, source: CanonicalType) -> Expr:
        return x

    def text_ok(self, t: Expr, target: Target) -> Expr:
        kind = target.kind
        cs = self.case_sensitive
        if kind == "INT64":
            digits = self.group(t, r"(?s)^\s*-?([0-9]*).*$")
            return case(
                (not_(self.matches(t, _INT_RE)), false()),
                else_=_int_digits_fit(self, digits, self.matches(t, r"^\s*-")),
            )
        if kind == "FLOAT64":
            return self.matches(t, _FLOAT_RE)
        if kind in ("NUMERIC", "BIGNUMERIC"):
            digits = func.regexp_replace(t, r"(?s)^\s*[-+]?([0-9]*)\.?([0-9]*).*$", r"\1\2", type_=String)
            whole_length = self.length(self.group(t, r"(?s)^\s*[-+]?([0-9]*).*$"))
            exponent = case(
                (self.matches(t, "[eE]"), cast(self.group(t, r"(?s)^.*[eE]([-+]?[0-9]+).*$"), Integer)),
                else_=0,
            )
            return case(
                (not_(self.matches(t, _DECIMAL_RE)), false()),
                else_=_digits_fit(self, digits, whole_length, exponent, target),
            )
        if kind == "BOOL":
            return self.matches(t, _BOOL_RE)
        if kind in ("DATE", "DATETIME", "TIMESTAMP"):
            shape = _DATE_RE if kind == "DATE" else _TIMESTAMP_RE
            day = self.group(t, rf"(?s)^\s*({_DATE}).*$")
            return case((not_(self.matches(t, cs(shape))), false()), else_=self.calendar_ok(day))
        if kind == "TIME":
            return self.matches(t, cs(_TIME_RE))
        if kind == "JSON":
            return self.json_ok(t)
        return true()


class _Postgres(_RegexBuilder):
    name = "postgresql"

    def __init__(self, version: tuple[int, ...]) -> None:
        # pg_input_is_valid (an error-free type-input test) exists from PostgreSQL 16.
        self.has_input_is_valid = version[:1] >= (16,)

    def as_text(self, x: Expr) -> Expr:
        # Byte-wise collation: regexes work on any column collation, digit strings compare as digits.
        return cast(x, Text).collate("C")

    def calendar_ok(self, day: Expr) -> Expr:
        if self.has_input_is_valid:
            return func.pg_input_is_valid(day, "date")
        return _calendar_ok(day)

    def json_ok(self, t: Expr) -> Expr:
        if self.has_input_is_valid:
            return func.pg_input_is_valid(t, "json")
        return self.matches(t, _JSON_SHAPE_RE)

    def utf8_ok(self, x: Expr) -> Expr:
        return self.matches(func.encode(x, "hex", type_=String), _UTF8_HEX_RE)

    def float_bounds_ok(self, x: Expr) -> Expr:
        # NaN and ±Infinity are not JSON numbers; NaN is greater than infinity in PostgreSQL.
        return and_(x > float("-inf"), x < float("inf"))

    def utc_timestamp(self, x: Expr, source: CanonicalType) -> Expr:
        return func.timezone("UTC", x) if source.tz else x

    def time_of_day(self, x: Expr, source: CanonicalType) -> Expr:
        return cast(x, Time) if source.detail == "tz" else x

    def can_check(self, source: CanonicalType, target: Target, repeated: bool) -> bool:
        return not repeated or source.family is Family.ARRAY

    def _elements(self, value: Expr) -> Any:
        return func.unnest(value).table_valued("v").render_derived(name="e")

    def failing_elements(self, value: Expr, source: CanonicalType, target: Target) -> Expr:
        element_type = source.element or CanonicalType(Family.UNKNOWN)
        elements = self._elements(value)
        ok = self.value_ok(elements.c.v, element_type, target)
        counted = (
            select(func.count())
            .select_from(elements)
            .where(or_(elements.c.v.is_(None), case((ok, 0), else_=1) == 1))
            .scalar_subquery()
        )
        # The load refuses a whole row for one bad element: count arrays, not elements.
        return case((value.is_(None), 0), (counted > 0, 1), else_=0)

    def failing_element_values(self, sample: Any, value: Expr, source: CanonicalType, target: Target) -> Any:
        element_type = source.element or CanonicalType(Family.UNKNOWN)
        elements = self._elements(value).lateral()
        ok = self.value_ok(elements.c.v, element_type, target)
        return (
            select(func.coalesce(self.as_text(elements.c.v), "NULL").label("ex"))
            .select_from(sample)
            .join(elements, true())
            .where(or_(elements.c.v.is_(None), case((ok, 0), else_=1) == 1))
        )


class _MariaDB(_RegexBuilder):
    name = "mysql"

    def case_sensitive(self, pattern: str) -> str:
        # REGEXP follows the column collation, usually case-insensitive: 't' is not 'T' here.
        return "(?-i)" + pattern

    def concat(self, a: Expr, b: Expr) -> Expr:
        return func.concat(a, b, type_=String)

    def ltrim_zeros(self, x: Expr) -> Expr:
        return func.regexp_replace(x, "^0+", "", type_=String)

    def rtrim_zeros(self, x: Expr) -> Expr:
        return func.regexp_replace(x, "0+$", "", type_=String)

    def json_ok(self, t: Expr) -> Expr:
        return func.json_valid(t) == 1

    def utf8_ok(self, x: Expr) -> Expr:
        # Invalid sequences become '?' in the conversion, so the bytes no longer round-trip.
        # (MariaDB's utf8mb4 lets UTF-16 surrogates through, which Arrow would reject.)
        as_text = func.convert(x, literal_column("CHAR CHARACTER SET utf8mb4"))
        return func.convert(as_text, literal_column("BINARY")) == x


class _SQLite(Builder):
    """SQLite: values keep their own storage class, so checks dispatch on typeof(), with GLOB for text."""

    name = "sqlite"

    def as_text(self, x: Expr) -> Expr:
        # A blob need not be UTF-8: show it as a hex literal rather than fail to decode it.
        hex_literal = self.concat(self.concat(literal("x'"), func.hex(x, type_=String)), literal("'"))
        return case((func.typeof(x) == "blob", hex_literal), else_=cast(x, Text))

    def length(self, x: Expr) -> Expr:
        return func.length(x)

    def value_ok(self, x: Expr, source: CanonicalType, target: Target) -> Expr:
        kind = target.kind
        storage = func.typeof(x)
        t = func.trim(x, _WHITESPACE, type_=String)
        if kind == "STRING":
            if source.family is not Family.BYTES:
                return true()
            # No UTF-8 validation in SQLite's SQL: report any blob with a non-ASCII byte.
            return case(
                (storage == "blob", not_(self._glob(cast(x, Text), "*[^\x01-\x7f]*"))),
                else_=true(),
            )
        if kind == "BYTES":
            return true()
        branches: dict[str, Expr] = {}
        if kind == "INT64":
            branches = {
                "integer": true(),
                "real": case((and_(x >= -_TWO_63, x < _TWO_63), x == cast(x, Integer)), else_=false()),
                "text": self._int_text_ok(t),
            }
        elif kind == "FLOAT64":
            branches = {"integer": true(), "real": true(), "text": self._float_text_ok(t)}
        elif kind in ("NUMERIC", "BIGNUMERIC"):
            branches = {
                "integer": func.abs(x) < 10**target.whole_digits if target.whole_digits < 19 else true(),
                "real": func.abs(x) < float(10**target.whole_digits),
                "text": self._decimal_text_ok(t, target),
            }
        elif kind == "BOOL":
            branches = {
                "integer": x.in_([0, 1]),
                "real": x.in_([0.0, 1.0]),
                "text": func.lower(t).in_(_TRUE_FALSE),
            }
        elif kind == "DATE":
            if source.family is Family.TIMESTAMP:
                midnight = or_(self.length(t) == 10, func.strftime("%H:%M:%f", t) == "00:00:00.000")
                branches = {"text": and_(self._timestamp_text_ok(t), midnight)}
            else:
                branches = {"text": self._date_text_ok(t)}
        elif kind in ("DATETIME", "TIMESTAMP"):
            branches = {"text": self._timestamp_text_ok(t)}
        elif kind == "TIME":
            branches = {"text": self._clock_ok(t)}
        elif kind == "JSON":
            branches = {
                "integer": true(),
                "real": and_(x > float("-inf"), x < float("inf")),
                "text": func.json_valid(x) == 1,
            }
        whens = [(storage == name, check) for name, check in branches.items()]
        return case(*whens, else_=false()) if whens else false()

    # text checks without regular expressions -------------------------------------
    @staticmethod
    def _glob(x: Expr, pattern: str) -> Expr:
        return x.op("GLOB", is_comparison=True)(pattern)

    def _all_digits(self, x: Expr) -> Expr:
        return and_(x != "", not_(self._glob(x, "*[^0-9]*")))

    def _int_text_ok(self, t: Expr) -> Expr:
        negative = self._glob(t, "-*")
        digits = case((negative, func.substr(t, 2)), else_=t)
        return case((not_(self._all_digits(digits)), false()), else_=_int_digits_fit(self, digits, negative))

    def _sign_length(self, t: Expr) -> Expr:
        """1 when `t` starts with a sign, else 0."""
        return cast(self._glob(t, "[+-]*"), Integer)

    def _decimal_parts(self, t: Expr) -> tuple[Expr, Expr, Expr, Expr]:
        """(shape ok, mantissa without sign, exponent text, position of the 'e' or 0) of a number literal.

        Positions are taken in `t` itself, not in nested substrings, to keep the SQL small.
        """
        sign = self._sign_length(t)
        e_at = func.instr(func.lower(t), "e")
        end = case((e_at > 0, e_at), else_=self.length(t) + 1)
        mantissa = func.substr(t, sign + 1, end - sign - 1)
        exponent_text = func.substr(t, e_at + 1)
        exponent_digits = func.substr(exponent_text, self._sign_length(exponent_text) + 1)
        shape = and_(
            self._glob(mantissa, "*[0-9]*"),
            not_(self._glob(mantissa, "*[^0-9.]*")),
            not_(self._glob(mantissa, "*.*.*")),
            or_(e_at == 0, and_(self._all_digits(exponent_digits), self.length(exponent_digits) <= 9)),
        )
        return shape, mantissa, exponent_text, e_at

    def _float_text_ok(self, t: Expr) -> Expr:
        special = func.lower(func.substr(t, self._sign_length(t) + 1)).in_(["inf", "infinity", "nan"])
        shape, _, _, _ = self._decimal_parts(t)
        return or_(special, shape)

    def _decimal_text_ok(self, t: Expr, target: Target) -> Expr:
        shape, mantissa, exponent_text, e_at = self._decimal_parts(t)
        dot = func.instr(mantissa, ".")
        whole_length = case((dot > 0, dot - 1), else_=self.length(mantissa))
        exponent = case((e_at > 0, cast(exponent_text, Integer)), else_=0)
        digits = func.replace(mantissa, ".", "", type_=String)
        return case(
            (not_(shape), false()),
            else_=_digits_fit(self, digits, whole_length, exponent, target),
        )

    @staticmethod
    def _shape(x: Expr) -> Expr:
        """`x` with every digit replaced by '9': '2024-01-31' -> '9999-99-99'."""
        for digit in "012345678":
            x = func.replace(x, digit, "9", type_=String)
        return x

    def _date_text_ok(self, t: Expr) -> Expr:
        return case((self._shape(t) != "9999-99-99", false()), else_=_calendar_ok(t))

    @staticmethod
    def _clock_ranges_ok(clock: Expr) -> Expr:
        """Hour 00-23, minute and second 00-59, for text already shaped like HH[:MM[:SS...]]."""
        return and_(
            func.substr(clock, 1, 2) <= "23",
            or_(func.substr(clock, 3, 1) != ":", func.substr(clock, 4, 1) <= "5"),
            or_(func.substr(clock, 6, 1) != ":", func.substr(clock, 7, 1) <= "5"),
        )

    def _clock_ok(self, t: Expr) -> Expr:
        return and_(self._shape(t).in_(_CLOCK_SHAPES), self._clock_ranges_ok(t))

    def _timestamp_text_ok(self, t: Expr) -> Expr:
        # One comparison of the text's layout against every allowed one; the separator
        # is read as ' ' and the zone sign as '+' to keep the list short (the date's
        # dashes become '+' too).
        layout = func.replace(func.replace(self._shape(t), "T", " ", type_=String), "-", "+", type_=String)
        rest = func.substr(t, 12)
        zone_at = func.instr(rest, "+") + func.instr(rest, "-") + func.instr(rest, "Z")
        zone = func.substr(rest, zone_at + 1)
        zone_ok = or_(
            zone_at == 0,
            and_(
                func.substr(zone, 1, 2) <= "23",
                func.substr(func.replace(zone, ":", "", type_=String), 3, 2) <= "59",
            ),
        )
        return case(
            (not_(layout.in_(_TIMESTAMP_SHAPES)), false()),
            else_=and_(_calendar_ok(func.substr(t, 1, 10)), self._clock_ranges_ok(rest), zone_ok),
        )
