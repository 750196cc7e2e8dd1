"""The in-place schema changes BigQuery allows, which bound every fix the engine offers."""

from __future__ import annotations

from ml_platform.etl.compat_model import AlterAction, _Dest
from ml_platform.etl.type_rules import decimal_digits
from ml_platform.etl.types import (
    NUMERIC_MAX_INTEGER_DIGITS,
    NUMERIC_MAX_SCALE,
    CanonicalType,
    Family,
    bigquery_type_for,
    standard_bigquery_type,
)


def in_place_change_allowed(
    from_type: str,
    to_type: str,
    *,
    from_precision: int | None = None,
    from_scale: int | None = None,
    to_precision: int | None = None,
    to_scale: int | None = None,
) -> bool:
    """Whether BigQuery's `ALTER COLUMN ... SET DATA TYPE` accepts this change on a table with data.

    INT64 -> NUMERIC/BIGNUMERIC/FLOAT64, NUMERIC -> BIGNUMERIC/FLOAT64, and parameter
    widening of NUMERIC(P,S)/BIGNUMERIC(P,S) where neither the whole digits nor the
    scale shrink (an unparameterized type counts as its full width).
    """
    a, b = standard_bigquery_type(from_type), standard_bigquery_type(to_type)
    if b == "FLOAT64":
        return a in ("INT64", "NUMERIC")
    if b not in ("NUMERIC", "BIGNUMERIC"):
        return False
    to_whole, to_places = decimal_digits(b, to_precision, to_scale)
    if a == "INT64":
        return to_whole >= 19
    if a not in ("NUMERIC", "BIGNUMERIC") or (a == "BIGNUMERIC" and b == "NUMERIC"):
        return False
    from_whole, from_places = decimal_digits(a, from_precision, from_scale)
    same = (a, from_whole, from_places) == (b, to_whole, to_places)
    return not same and to_whole >= from_whole and to_places >= from_places


def action_within_bigquery_limits(action: AlterAction) -> bool:
    """The in-place rules that bound every offered fix (also asserted by the tests)."""
    if action.kind == "add_column":
        return action.mode in ("NULLABLE", "REPEATED")
    if action.kind == "relax_required":
        return action.mode == "NULLABLE"
    if action.kind == "widen_type":
        return action.from_type is not None and in_place_change_allowed(
            action.from_type,
            action.field_type,
            from_precision=action.from_precision,
            from_scale=action.from_scale,
            to_precision=action.precision,
            to_scale=action.scale,
        )
    return False


def _widen_target(t: CanonicalType, dest: _Dest) -> tuple[str, int | None, int | None] | None:
    """An in-place SET DATA TYPE that makes a narrowing source type fit, when BigQuery allows one."""
    target, _ = bigquery_type_for(t)
    d = dest.type
    parameterized = dest.field.precision is not None
    if d == "INT64" and target in ("NUMERIC", "BIGNUMERIC", "FLOAT64"):
        return target, None, None
    if d == "NUMERIC":
        if target in ("BIGNUMERIC", "FLOAT64"):
            return target, None, None
        if parameterized and target in ("INT64", "NUMERIC"):
            if t.family is Family.DECIMAL and t.precision is not None:
                # Keep the column parameterized, just wide enough: BigQuery allows growing both parts.
                whole, places = decimal_digits(dest.type, dest.field.precision, dest.field.scale)
                new_places = max(places, t.scale or 0)
                new_whole = max(whole, t.precision - (t.scale or 0))
                if new_places <= NUMERIC_MAX_SCALE and new_whole <= NUMERIC_MAX_INTEGER_DIGITS:
                    return "NUMERIC", new_whole + new_places, new_places
                return "BIGNUMERIC", None, None
            return "NUMERIC", None, None
    if d == "BIGNUMERIC" and parameterized and target in ("INT64", "NUMERIC", "BIGNUMERIC"):
        return "BIGNUMERIC", None, None
    return None
