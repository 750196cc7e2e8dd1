"""The type rules as data: (source kind, BigQuery type) -> verdict, cast, message, fix.

The table is `type_rules.toml` (next to this module, read once at import); this module derives the kinds of a
PostgreSQL numeric that may hold NaN from it and matches a column to its rule.
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

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
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

# PostgreSQL numeric (any precision) may hold 'NaN', which NUMERIC/BIGNUMERIC/INT64 cannot: it loads as
# NULL (industry convention, as Fivetran does) and the report says so; FLOAT64 keeps NaN, STRING 'NaN'.
# Into a REQUIRED column NULL cannot stand in, so NaN is refused and counted by the validation instead.
_NAN_NULL = "PostgreSQL numeric can hold 'NaN', which BigQuery {dest} cannot: a NaN loads as NULL."
_NAN_REQUIRED = (
    "PostgreSQL numeric can hold 'NaN', which BigQuery {dest} cannot, and the column is REQUIRED (a NaN cannot "
    "load as NULL), so the source data must be validated (the scan counts the NaN values)."
)


def _nan_rules(case: str, rule: Rule, null_cast: str) -> dict[str, Rule]:
    """The kinds `DECIMAL:nan:<case>` and `DECIMAL:nan:required:<case>` of a PostgreSQL numeric: `rule` with the NaN
    promise added to its message (a nullable and a REQUIRED destination)."""
    other = "" if rule.verdict == "ok" else " " + rule.message.replace("(or NaN/Infinity)", "(or ±Infinity)")
    tail = " Every other {label} value fits {dest} exactly." if rule.verdict == "ok" else other
    verdict: Verdict = "warning" if rule.verdict == "ok" else rule.verdict
    return {
        "DECIMAL:nan:" + case: _r(verdict, null_cast, _NAN_NULL + tail, rule.fix),
        "DECIMAL:nan:required:" + case: _r("needs_validation", rule.cast, _NAN_REQUIRED + other, _VALIDATE),
    }


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _load_rules(path: Path) -> dict[tuple[str, str], Rule]:
    """The table in `type_rules.toml` (its header says what each key means)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    fragments: dict[str, str] = data["fragments"]
    rules: dict[tuple[str, str], Rule] = {}
    for entry in data["rule"]:
        message = entry["message"]
        for name, text in fragments.items():
            message = message.replace("{" + name + "}", text)
        verdict = entry["verdict"]
        rule = _r(verdict, entry["cast"], message, _VALIDATE if verdict == "needs_validation" else None)
        kinds = {source: rule for source in _listed(entry["source"])}
        if "nan" in entry:
            (source,) = kinds
            case = entry["nan"].get("case") or source.removeprefix("DECIMAL:")
            kinds |= _nan_rules(case, rule, entry["nan"]["cast"])
        for source, kind_rule in kinds.items():
            for dest in _listed(entry["dest"]):
                if (source, dest) in rules:
                    raise ValueError(f"type_rules.toml: ({source}, {dest}) is listed twice")
                rules[source, dest] = kind_rule
    return rules


# Read once, at import.
RULES: Mapping[tuple[str, str], Rule] = MappingProxyType(_load_rules(Path(__file__).with_suffix(".toml")))


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
