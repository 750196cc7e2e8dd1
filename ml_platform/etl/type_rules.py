"""The type rules as data: (source kind, BigQuery type) -> verdict, cast, message, fix.

One table, read by two readers that must never disagree:
- the compatibility engine (`etl/compatibility.py`) takes the verdict and the message;
- the conformer (`etl/conform.py`) executes the cast the same entry names.
So a verdict and the cast that proves it are one row: change one, you see the other.

A *source kind* is a canonical family, refined where the refinement changes the
answer: `DECIMAL:rounds` (a declared scale beyond the destination's), `INTEGER:unsigned64`,
`BOOLEAN:int` (a boolean stored in an integer column, which can hold 2), `TIME:tz`,
`TIME:duration` (MySQL TIME, which spans -838..838 hours), `DATE:infinite` / `TIMESTAMP:infinite` /
`TIMESTAMP:tz:infinite` (PostgreSQL, which also holds ±infinity and years outside 0001..9999). `source_kind` derives it from a
`CanonicalType` and the destination's parameters.

Verdict contract (what the differential tests hold every row to):
- ok: every value lands unchanged;
- warning: the run succeeds and each value lands exactly as the message says;
- needs_validation: some values may not convert; the data validation counts exactly those,
  and the cast refuses exactly those (naming column, value and key) before any commit;
- error: the job cannot be created with this pairing; the fix says what to do instead.

Pure: no Django, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from ml_platform.etl.types import (
    BIGNUMERIC_MAX_INTEGER_DIGITS,
    BIGNUMERIC_MAX_SCALE,
    NUMERIC_MAX_INTEGER_DIGITS,
    NUMERIC_MAX_SCALE,
    CanonicalType,
    Family,
    standard_bigquery_type,
)

__all__ = ["RULES", "Rule", "RuleMatch", "decimal_digits", "rounding_example", "rule_for", "source_kind"]

Verdict = Literal["ok", "warning", "needs_validation", "error"]

# BigQuery types the runner can write a Parquet column for (see conform.arrow_type_for).
LOADABLE_TYPES = frozenset(
    {"INT64", "NUMERIC", "BIGNUMERIC", "FLOAT64", "STRING", "BYTES", "BOOL", "DATE", "TIME", "DATETIME",
     "TIMESTAMP", "JSON", "GEOGRAPHY"}
)  # fmt: skip
# Known to BigQuery, but no Parquet type loads into them: refused, whatever the source.
UNLOADABLE_TYPES = frozenset({"INTERVAL", "RANGE"})
FLOAT64_EXACT_INTEGER = 2**53


@dataclass(frozen=True)
class Rule:
    """One row of the table. `message`/`fix` are templates (see `RuleMatch`); `cast` names a
    conformer cast (`conform.CASTS`), None only for an error."""

    verdict: Verdict
    cast: str | None
    message: str
    fix: str | None = None


@dataclass(frozen=True)
class RuleMatch:
    """A rule applied to one column: the rule plus its message with the parameters filled in."""

    key: tuple[str, str]
    rule: Rule
    message: str
    fix: str | None

    @property
    def verdict(self) -> Verdict:
        return self.rule.verdict

    @property
    def cast(self) -> str | None:
        return self.rule.cast


def _r(verdict: Verdict, cast: str | None, message: str, fix: str | None = None) -> Rule:
    return Rule(verdict, cast, message, fix)


_VALIDATE = "Validate the source data."
_NUMBERS_DEST = ("INT64", "NUMERIC", "BIGNUMERIC", "FLOAT64")

_DECIMAL_INTO_NUMBER = {
    "fits": _r("ok", "decimal_round", "Every {label} value fits {dest} exactly."),
    "rounds": _r(
        "warning",
        "decimal_round",
        "{label} values are rounded half away from zero from {scale} to {places} decimal places in {dest} "
        "(e.g. {example}); every value fits its whole digits.",
    ),
    "overflows": _r(
        "needs_validation",
        "decimal_round",
        "{label} → {dest}: {dest} holds {whole} whole digits and {places} decimal places. Values are rounded "
        "half away from zero to {places} places (e.g. {example}); a value that then has more than {whole} whole "
        "digits cannot be stored, so the source data must be validated.",
        _VALIDATE,
    ),
    "unbounded": _r(
        "needs_validation",
        "decimal_round",
        "{label} has no declared precision, and {dest} holds {whole} whole digits and {places} decimal places: "
        "values are rounded half away from zero to {places} places (e.g. {example}); a value that then has more "
        "than {whole} whole digits (or NaN/Infinity) cannot be stored, so the source data must be validated.",
        _VALIDATE,
    ),
}

# PostgreSQL numeric (any precision) may hold 'NaN', which NUMERIC/BIGNUMERIC/INT64 cannot: it loads as
# NULL (industry convention, as Fivetran does) and the report says so; FLOAT64 keeps NaN, STRING 'NaN'.
# Into a REQUIRED column NULL cannot stand in, so NaN is refused and counted by the validation instead.
_NAN_NULL = "PostgreSQL numeric can hold 'NaN', which BigQuery {dest} cannot: a NaN loads as NULL."
_NAN_REQUIRED = (
    "PostgreSQL numeric can hold 'NaN', which BigQuery {dest} cannot, and the column is REQUIRED (a NaN cannot "
    "load as NULL), so the source data must be validated (the scan counts the NaN values)."
)


def _nan_rules(base: Mapping[str, Rule], null_cast: str) -> dict[str, Rule]:
    """The rules of a PostgreSQL numeric: each `base` rule with the NaN promise added to its message."""
    out: dict[str, Rule] = {}
    for case, rule in base.items():
        other = "" if rule.verdict == "ok" else " " + rule.message.replace("(or NaN/Infinity)", "(or ±Infinity)")
        tail = " Every other {label} value fits {dest} exactly." if rule.verdict == "ok" else other
        verdict: Verdict = "warning" if rule.verdict == "ok" else rule.verdict
        out["nan:" + case] = _r(verdict, null_cast, _NAN_NULL + tail, rule.fix)
        out["nan:required:" + case] = _r("needs_validation", rule.cast, _NAN_REQUIRED + other, _VALIDATE)
    return out


_DECIMAL_INTO_INT = {
    "whole": _r("ok", "decimal_to_int", "Every {label} value is a whole number that fits INT64."),
    "narrows": _r(
        "needs_validation",
        "decimal_to_int",
        "{label} → INT64 narrows the type: values with a fractional part or beyond INT64's range would fail, so "
        "validate the data.",
        _VALIDATE,
    ),
}

# PostgreSQL date/timestamp/timestamptz may hold ±infinity and years outside 0001..9999
# (etl/pg_temporal.py): loaded as the nearest end of BigQuery's range, kept as PostgreSQL's text in STRING.
_CLAMP = (
    " PostgreSQL values beyond BigQuery's range load as its nearest end: 'infinity' and values after 9999-12-31 as "
    "{late}, '-infinity' and values before 0001-01-01 (UTC) as {early}."
)
_CLAMP_DATE = _CLAMP.format(late="9999-12-31", early="0001-01-01")
_CLAMP_TS = _CLAMP.format(late="9999-12-31 23:59:59.999999", early="0001-01-01 00:00:00")
_PG_TEXT = (
    " 'infinity', '-infinity' and values BigQuery cannot hold are kept as PostgreSQL writes them ('0044-03-15 BC')."
)
_PG_TEMPORAL: dict[tuple[str, str], Rule] = {
    ("DATE:infinite", "DATE"): _r("warning", "clamp_range", "{label} loads into DATE unchanged." + _CLAMP_DATE),
    ("DATE:infinite", "DATETIME"): _r(
        "warning",
        "clamp_range",
        "DATE → DATETIME widens the type: each date is stored as midnight of that day." + _CLAMP_TS,
    ),
    ("DATE:infinite", "TIMESTAMP"): _r(
        "warning",
        "clamp_range",
        "DATE → TIMESTAMP widens the type: each date is stored as midnight UTC of that day." + _CLAMP_TS,
    ),
    ("DATE:infinite", "STRING"): _r(
        "warning", "text", "{label} values are stored as ISO text ('2024-01-31');" + _PG_TEXT
    ),
    ("TIMESTAMP:infinite", "DATETIME"): _r(
        "warning", "clamp_range", "{label} (no time zone) loads into DATETIME unchanged." + _CLAMP_TS
    ),
    ("TIMESTAMP:infinite", "TIMESTAMP"): _r(
        "warning",
        "clamp_range",
        "{label} has no time zone; TIMESTAMP stores an instant, so the values are read as UTC." + _CLAMP_TS,
    ),
    ("TIMESTAMP:infinite", "STRING"): _r(
        "warning", "text", "{label} values are stored as ISO text ('2024-01-31T10:00:00');" + _PG_TEXT
    ),
    ("TIMESTAMP:tz:infinite", "TIMESTAMP"): _r(
        "warning", "clamp_range", "{label} loads into TIMESTAMP unchanged." + _CLAMP_TS
    ),
    ("TIMESTAMP:tz:infinite", "DATETIME"): _r(
        "warning",
        "clamp_range",
        "{label} → DATETIME drops the time zone: values are stored as UTC wall-clock time." + _CLAMP_TS,
    ),
    ("TIMESTAMP:tz:infinite", "STRING"): _r(
        "warning", "text", "{label} values are stored as ISO text in UTC ('2024-01-31T10:00:00+00:00');" + _PG_TEXT
    ),
}

RULES: Mapping[tuple[str, str], Rule] = {
    # integers
    ("INTEGER", "INT64"): _r("ok", "same", "{label} loads into INT64 unchanged."),
    ("INTEGER:unsigned64", "INT64"): _r(
        "needs_validation",
        "same",
        "{label} is unsigned 64-bit: values above 9,223,372,036,854,775,807 do not fit INT64, so the source data "
        "must be validated.",
        _VALIDATE,
    ),
    ("INTEGER:fits", "NUMERIC"): _r("ok", "same", "Every {label} value fits {dest} exactly."),
    ("INTEGER:fits", "BIGNUMERIC"): _r("ok", "same", "Every {label} value fits {dest} exactly."),
    ("INTEGER:overflows", "NUMERIC"): _r(
        "needs_validation", "same", "{dest} holds {whole} whole digits: larger {label} values would fail.", _VALIDATE
    ),
    ("INTEGER:overflows", "BIGNUMERIC"): _r(
        "needs_validation", "same", "{dest} holds {whole} whole digits: larger {label} values would fail.", _VALIDATE
    ),
    ("INTEGER", "FLOAT64"): _r(
        "warning",
        "int_to_float",
        "{label} → FLOAT64: integers up to ±2^53 (9,007,199,254,740,992) are stored exactly; larger ones are stored "
        "as the nearest FLOAT64 value, ties to even (9,007,199,254,740,993 → 9,007,199,254,740,992).",
    ),
    ("INTEGER", "STRING"): _r("warning", "text", "{label} values are stored as decimal text in STRING (42 → '42')."),
    ("INTEGER", "JSON"): _r("warning", "json_text", "{label} values are stored as JSON numbers (42 → 42)."),
    ("INTEGER", "BOOL"): _r(
        "needs_validation",
        "bool_01",
        "{label} → BOOL narrows the type: only 0 and 1 convert, so validate the data.",
        _VALIDATE,
    ),
    # decimals
    **{("DECIMAL:" + case, d): rule for case, rule in _DECIMAL_INTO_NUMBER.items() for d in ("NUMERIC", "BIGNUMERIC")},
    **{
        ("DECIMAL:" + case, d): rule
        for case, rule in _nan_rules(_DECIMAL_INTO_NUMBER, "decimal_round_nan_null").items()
        for d in ("NUMERIC", "BIGNUMERIC")
    },
    **{
        ("DECIMAL:" + case, "INT64"): rule
        for case, rule in _nan_rules(_DECIMAL_INTO_INT, "decimal_to_int_nan_null").items()
    },
    ("DECIMAL", "FLOAT64"): _r(
        "warning",
        "decimal_to_float",
        "{label} → FLOAT64: each value is stored as the nearest FLOAT64 value (about 15-17 significant digits, "
        "e.g. 0.1 stays 0.1 but 1234567890.123456789 → 1234567890.1234567).",
    ),
    ("DECIMAL:whole", "INT64"): _DECIMAL_INTO_INT["whole"],
    ("DECIMAL", "INT64"): _DECIMAL_INTO_INT["narrows"],
    ("DECIMAL", "STRING"): _r(
        "warning", "text", "{label} values are stored as decimal text in STRING (12.50 → '12.50')."
    ),
    ("DECIMAL", "JSON"): _r("warning", "json_text", "{label} values are stored as JSON numbers (12.50 → 12.5)."),
    ("DECIMAL", "BOOL"): _r(
        "needs_validation",
        "bool_01",
        "{label} → BOOL narrows the type: only 0 and 1 convert, so validate the data.",
        _VALIDATE,
    ),
    # floats
    ("FLOAT", "FLOAT64"): _r("ok", "same", "{label} loads into FLOAT64 unchanged."),
    **{
        ("FLOAT", d): _r(
            "needs_validation",
            "float_to_decimal",
            "{label} → {dest} narrows the type: each value is read as its shortest decimal form (0.1 → 0.1) and "
            "rounded half away from zero to {places} places; NaN, infinity and values beyond {whole} whole digits "
            "fail, so validate the data.",
            _VALIDATE,
        )
        for d in ("NUMERIC", "BIGNUMERIC")
    },
    ("FLOAT", "INT64"): _r(
        "needs_validation",
        "same",
        "{label} → INT64 narrows the type: values with a fractional part fail, so validate the data.",
        _VALIDATE,
    ),
    ("FLOAT", "STRING"): _r("warning", "text", "{label} values are stored as their shortest text form (0.1 → '0.1')."),
    ("FLOAT", "JSON"): _r(
        "needs_validation",
        "json_text",
        "{label} → JSON: values are stored as JSON numbers; NaN and infinity are not JSON, so validate the data.",
        _VALIDATE,
    ),
    ("FLOAT", "BOOL"): _r(
        "needs_validation",
        "bool_01",
        "{label} → BOOL narrows the type: only 0 and 1 convert, so validate the data.",
        _VALIDATE,
    ),
    # text
    ("STRING", "STRING"): _r("ok", "same", "{label} loads into STRING unchanged."),
    ("STRING", "BYTES"): _r("warning", "same", "{label} values are stored as their UTF-8 bytes."),
    ("STRING", "JSON"): _r(
        "needs_validation",
        "json_text",
        "{label} → JSON: every value must be valid JSON, so the source data must be validated.",
        _VALIDATE,
    ),
    **{
        ("STRING", d): _r(
            "needs_validation",
            "parse",
            "{label} → {dest} narrows the type: every value must parse as {dest}, so the source data must be "
            "validated.",
            _VALIDATE,
        )
        for d in (
            "INT64",
            "NUMERIC",
            "BIGNUMERIC",
            "FLOAT64",
            "BOOL",
            "DATE",
            "TIME",
            "DATETIME",
            "TIMESTAMP",
            "GEOGRAPHY",
        )
    },  # fmt: skip
    # booleans
    ("BOOLEAN", "BOOL"): _r("ok", "same", "{label} loads into BOOL unchanged."),
    ("BOOLEAN:int", "BOOL"): _r(
        "needs_validation",
        "bool_01",
        "{label} is stored in an integer column (MySQL TINYINT(1), SQLite BOOLEAN), which can hold other numbers "
        "than 0 and 1; only 0 and 1 convert to BOOL, so validate the data.",
        _VALIDATE,
    ),
    **{
        ("BOOLEAN", d): _r("warning", "bool_to_number", "{label} values are stored as 1 and 0 in {dest}.")
        for d in _NUMBERS_DEST
    },  # fmt: skip
    **{
        ("BOOLEAN:int", d): _r("ok", "same", "{label} values load as the integers the source holds (1, 0, ...).")
        for d in _NUMBERS_DEST
    },  # fmt: skip
    ("BOOLEAN", "STRING"): _r("warning", "bool_text", "{label} values are stored as the text 'true' and 'false'."),
    ("BOOLEAN:int", "STRING"): _r(
        "warning", "text", "{label} values are stored as the integers the source holds, as text ('1', '0')."
    ),
    ("BOOLEAN", "JSON"): _r("warning", "bool_text", "{label} values are stored as JSON true/false."),
    ("BOOLEAN:int", "JSON"): _r("warning", "json_text", "{label} values are stored as JSON numbers (1, 0)."),
    # dates and times
    ("DATE", "DATE"): _r("ok", "same", "DATE loads into DATE unchanged."),
    ("DATE", "DATETIME"): _r(
        "warning", "same", "DATE → DATETIME widens the type: each date is stored as midnight of that day."
    ),
    ("DATE", "TIMESTAMP"): _r(
        "warning", "same", "DATE → TIMESTAMP widens the type: each date is stored as midnight UTC of that day."
    ),
    ("DATE", "STRING"): _r("warning", "text", "{label} values are stored as ISO text ('2024-01-31')."),
    ("TIME", "TIME"): _r("ok", "same", "TIME loads into TIME unchanged."),
    ("TIME", "STRING"): _r("warning", "text", "{label} values are stored as ISO text ('01:00:00', '01:00:00.250000')."),
    ("TIME:duration", "TIME"): _r(
        "needs_validation",
        "same",
        "MySQL TIME is a duration (-838:59:59 to 838:59:59); only values from 00:00:00 to 23:59:59.999999 are a "
        "time of day, so validate the data.",
        _VALIDATE,
    ),
    ("TIME:duration", "STRING"): _r(
        "warning",
        "text",
        "{label} values are stored as MySQL writes them ('01:00:00', '-01:30:00', '100:00:00.250000').",
    ),
    ("TIME:tz", "TIME"): _r(
        "warning",
        "timetz_to_utc",
        "TIME WITH TIME ZONE → TIME: BigQuery TIME has no zone, so each value is stored as its UTC time of day "
        "(12:00:00+02 → 10:00:00).",
    ),
    ("TIME:tz", "STRING"): _r(
        "warning", "text", "{label} values are stored as PostgreSQL writes them ('12:00:00+02')."
    ),
    ("TIMESTAMP:tz", "TIMESTAMP"): _r("ok", "same", "{label} loads into TIMESTAMP unchanged."),
    ("TIMESTAMP:tz", "DATETIME"): _r(
        "warning", "same", "{label} → DATETIME drops the time zone: values are stored as UTC wall-clock time."
    ),
    ("TIMESTAMP", "DATETIME"): _r("ok", "same", "{label} (no time zone) loads into DATETIME unchanged."),
    ("TIMESTAMP", "TIMESTAMP"): _r(
        "warning", "same", "{label} has no time zone; TIMESTAMP stores an instant, so the values are read as UTC."
    ),
    **{
        (k, "DATE"): _r(
            "needs_validation",
            "same",
            "{label} → DATE narrows the type: a time of day other than midnight would be lost, so validate the data.",
            _VALIDATE,
        )
        for k in ("TIMESTAMP", "TIMESTAMP:tz")
    },
    ("TIMESTAMP", "STRING"): _r("warning", "text", "{label} values are stored as ISO text ('2024-01-31T10:00:00')."),
    ("TIMESTAMP:tz", "STRING"): _r(
        "warning", "text", "{label} values are stored as ISO text in UTC ('2024-01-31T10:00:00+00:00')."
    ),
    **_PG_TEMPORAL,
    # documents, bytes, the rest
    ("JSON", "JSON"): _r("ok", "json_text", "JSON loads into JSON unchanged."),
    ("JSON", "STRING"): _r("ok", "text", "JSON documents are stored as JSON text in STRING."),
    ("BYTES", "BYTES"): _r("ok", "same", "BYTES loads into BYTES unchanged."),
    ("BYTES", "STRING"): _r(
        "needs_validation",
        "same",
        "{label} → STRING: every value must be valid UTF-8 text, so the source data must be validated.",
        _VALIDATE,
    ),
    ("INTERVAL", "STRING"): _r(
        "warning", "text", "{label} values are stored as the source writes them ('1 day 02:00:00')."
    ),
    ("UNKNOWN", "STRING"): _r(
        "warning", "text", "Source type {label} is not recognised; its values are stored as the text the source gives."
    ),
}


def decimal_digits(bq_type: str, precision: int | None, scale: int | None) -> tuple[int, int]:
    """(whole digits, decimal places) a NUMERIC/BIGNUMERIC type holds, parameterized or not."""
    if precision is not None:
        places = max(scale or 0, 0)
        return max(precision - places, 0), places
    if bq_type == "BIGNUMERIC":
        return BIGNUMERIC_MAX_INTEGER_DIGITS, BIGNUMERIC_MAX_SCALE
    return NUMERIC_MAX_INTEGER_DIGITS, NUMERIC_MAX_SCALE


def rounding_example(places: int) -> str:
    """A value that shows the rounding to `places` decimal places (half away from zero)."""
    if places <= 0:
        return "2.5 → 3, -2.5 → -3"
    tail = "0" * (places - 1)
    return f"0.{tail}05 → 0.{tail}1, -0.{tail}05 → -0.{tail}1"


def source_kind(
    t: CanonicalType, dest: str, precision: int | None = None, scale: int | None = None, *, required: bool = False
) -> str:
    """The refined source key of `t` for destination `dest` (parameters `precision`/`scale`, REQUIRED or not)."""
    family = t.family
    if family is Family.DECIMAL and t.detail == "nan" and dest in ("NUMERIC", "BIGNUMERIC", "INT64"):
        plain = source_kind(CanonicalType(Family.DECIMAL, t.precision, t.scale), dest, precision, scale)
        case = plain.removeprefix("DECIMAL").removeprefix(":") or "narrows"
        return ("DECIMAL:nan:required:" if required else "DECIMAL:nan:") + case
    if family is Family.INTEGER:
        if dest in ("NUMERIC", "BIGNUMERIC"):
            whole, _ = decimal_digits(dest, precision, scale)
            return "INTEGER:fits" if whole >= (20 if t.detail == "unsigned64" else 19) else "INTEGER:overflows"
        return "INTEGER:unsigned64" if t.detail == "unsigned64" and dest == "INT64" else "INTEGER"
    if family is Family.DECIMAL:
        if dest in ("NUMERIC", "BIGNUMERIC"):
            return "DECIMAL:" + _decimal_case(t, dest, precision, scale)
        if dest == "INT64" and t.precision is not None and (t.scale or 0) <= 0 and t.precision <= 18:
            return "DECIMAL:whole"
        return "DECIMAL"
    if family is Family.BOOLEAN:
        return "BOOLEAN:int" if t.detail == "int" else "BOOLEAN"
    if family is Family.TIME:
        return f"TIME:{t.detail}" if t.detail in ("tz", "duration") else "TIME"
    if family is Family.TIMESTAMP:
        kind = "TIMESTAMP:tz" if t.tz else "TIMESTAMP"
        return f"{kind}:infinite" if t.detail == "infinite" and (f"{kind}:infinite", dest) in RULES else kind
    if family is Family.DATE and t.detail == "infinite" and ("DATE:infinite", dest) in RULES:
        return "DATE:infinite"
    return family.value


def _decimal_case(t: CanonicalType, dest: str, precision: int | None, scale: int | None) -> str:
    whole, places = decimal_digits(dest, precision, scale)
    if t.precision is None:
        return "unbounded"
    source_scale = max(t.scale or 0, 0)
    source_whole = t.precision - source_scale
    if source_scale <= places:
        return "fits" if source_whole <= whole else "overflows"
    # Rounding up can add a whole digit (9.99 -> 10.0): safe only with a digit to spare.
    return "rounds" if source_whole < whole else "overflows"


def rule_for(
    t: CanonicalType,
    dest_type: str,
    precision: int | None = None,
    scale: int | None = None,
    *,
    label: str = "",
    required: bool = False,
) -> RuleMatch:
    """The rule for one (non-array) source type into one (non-RECORD) BigQuery type (REQUIRED or not), with its
    message."""
    dest = standard_bigquery_type(dest_type)
    dest_label = _dest_label(dest, precision, scale)
    label = label or str(t)
    if dest in UNLOADABLE_TYPES:
        rule = _r(
            "error", None,
            f"BigQuery {dest} columns cannot be loaded by this product (no Parquet type loads into them).",
            "Deselect the column, or load into a table whose column is STRING.",
        )  # fmt: skip
        return RuleMatch(("*", dest), rule, rule.message, rule.fix)
    if dest not in LOADABLE_TYPES:
        message = f"BigQuery type {dest_label} is not supported as a load destination."
        return RuleMatch(("*", dest), _r("error", None, message), message, None)
    key = (source_kind(t, dest, precision, scale, required=required), dest)
    rule = RULES.get(key)
    if rule is None:
        rule = _fallback(t, dest)
    whole, places = decimal_digits(dest, precision, scale) if dest in ("NUMERIC", "BIGNUMERIC") else (0, 0)
    values = {
        "label": label, "dest": dest_label, "whole": whole, "places": places,
        "scale": max(t.scale or 0, 0), "example": rounding_example(places),
    }  # fmt: skip
    return RuleMatch(key, rule, rule.message.format(**values), rule.fix.format(**values) if rule.fix else None)


def _fallback(t: CanonicalType, dest: str) -> Rule:
    if t.family is Family.ARRAY:
        return _r("error", None, "It is a multi-dimensional array; BigQuery arrays cannot contain arrays.")
    if t.family is Family.JSON:
        return _r("error", None, "JSON documents cannot be loaded into {dest}: use a JSON or STRING column.")
    if t.family is Family.UNKNOWN:
        return _r("error", None, "Source type {label} is not recognised; only a STRING column can hold it.")
    return _r("error", None, "{label} cannot be loaded into {dest}: the types are unrelated.")


def _dest_label(bq_type: str, precision: int | None, scale: int | None) -> str:
    if bq_type in ("NUMERIC", "BIGNUMERIC") and precision is not None:
        return f"{bq_type}({precision},{scale or 0})"
    return bq_type or "(no type)"


def all_rules() -> list[tuple[tuple[str, str], Rule]]:
    """Every entry of the table (for the tests that walk it)."""
    return list(RULES.items())
