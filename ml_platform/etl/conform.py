"""Conform extracted Arrow batches to a BigQuery destination schema.

The emulator (and any Parquet load that does not name columns) matches Parquet
columns to table columns by position, so every batch leaving here has exactly
the destination's columns, in its order, with the Arrow type BigQuery expects
for each column. Values that do not fit are rejected here, with the column, the
value and the row's source key, before anything reaches BigQuery: a load job
would reject the same value with a message naming neither.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ml_platform.etl import casts, pg_temporal
from ml_platform.etl.batch_meta import json_checked
from ml_platform.etl.errors import CastError, SchemaMismatchError
from ml_platform.etl.type_rules import decimal_digits, rule_for
from ml_platform.etl.types import BigQueryField, CanonicalType, Family, standard_bigquery_type

__all__ = ["CASTS", "Conformer", "ColumnSource", "arrow_schema_for", "arrow_type_for"]

NUMERIC_TYPE = pa.decimal128(38, 9)
BIGNUMERIC_TYPE = pa.decimal256(76, 38)

_SCALAR_TYPES: dict[str, pa.DataType] = {
    "INT64": pa.int64(),
    "INTEGER": pa.int64(),
    "NUMERIC": NUMERIC_TYPE,
    "DECIMAL": NUMERIC_TYPE,
    "BIGNUMERIC": BIGNUMERIC_TYPE,
    "BIGDECIMAL": BIGNUMERIC_TYPE,
    "FLOAT64": pa.float64(),
    "FLOAT": pa.float64(),
    "STRING": pa.string(),
    "BOOL": pa.bool_(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "DATETIME": pa.timestamp("us"),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "TIME": pa.time64("us"),
    "JSON": pa.string(),
    "BYTES": pa.binary(),
    "GEOGRAPHY": pa.string(),
}

_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError, OverflowError, TypeError)
_TIME_CAST = pc.CastOptions  # alias keeps the call sites short


def arrow_type_for(field: BigQueryField) -> pa.DataType:
    """The Arrow type a Parquet column needs so BigQuery loads it into `field` unchanged."""
    kind = field.field_type.upper()
    scalar = _SCALAR_TYPES.get(kind)
    if scalar is None and kind in ("RECORD", "STRUCT") and field.fields:
        # Only ever loaded as NULL (a SQL source has no structs), but the file needs the type.
        scalar = pa.struct([pa.field(f.name, arrow_type_for(f)) for f in field.fields])
    if scalar is None:
        raise SchemaMismatchError(f"Destination column {field.name!r} has type {kind}, which the runner cannot fill")
    return pa.list_(scalar) if field.is_repeated else scalar


def arrow_schema_for(fields: Sequence[BigQueryField]) -> pa.Schema:
    return pa.schema(
        [pa.field(f.name, arrow_type_for(f), nullable=not (f.is_required or f.is_repeated)) for f in fields]
    )


@dataclass(frozen=True)
class ColumnSource:
    """Where one destination column's values come from.

    `source` names a column of the extracted batch; `constant` fills the column with
    one value (the source tag); both None means the job does not feed the column and
    it is loaded as NULL. `validate_json` asks for a parse of every value, for
    sources that do not guarantee valid JSON themselves.
    """

    source: str | None = None
    constant: str | None = None
    validate_json: bool = False
    # The source column's canonical type: with it, the cast is the one the type rules name
    # for (this type, the destination type), the same entry the report's verdict came from.
    source_type: CanonicalType | None = None


class Conformer:
    """Turns source batches into batches of the destination schema, validating every value."""

    def __init__(
        self,
        fields: Sequence[BigQueryField],
        sources: Mapping[str, ColumnSource],
        *,
        key_columns: Sequence[str] = (),
    ) -> None:
        self.fields = tuple(fields)
        self.schema = arrow_schema_for(self.fields)
        by_lower = {name.lower(): src for name, src in sources.items()}
        self.sources = [by_lower.get(f.name.lower(), ColumnSource()) for f in self.fields]
        self.key_columns = tuple(key_columns)
        for f, src in zip(self.fields, self.sources, strict=True):
            if f.is_required and src.source is None and src.constant is None:
                raise SchemaMismatchError(
                    f"Destination column {f.name!r} is REQUIRED but the job does not fill it; "
                    "select a source column for it or relax it to NULLABLE"
                )

    def conform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays, checked = [], json_checked(batch.schema)  # JSON its reader validated (etl/batch_meta.py)
        for f, src, target in zip(self.fields, self.sources, self.schema.types, strict=True):
            if src.constant is not None:
                arrays.append(pa.repeat(pa.scalar(src.constant, pa.string()), batch.num_rows).cast(target))
                continue
            if src.source is None:
                arrays.append(
                    _empty_lists(batch.num_rows, target) if f.is_repeated else pa.nulls(batch.num_rows, target)
                )
                continue
            if src.validate_json and src.source in checked:
                src = replace(src, validate_json=False)
            arrays.append(self._conform_column(batch.column(src.source), f, target, src, batch))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    # --- per column ---------------------------------------------------------------

    def _conform_column(
        self, column: pa.Array, f: BigQueryField, target: pa.DataType, src: ColumnSource, batch: pa.RecordBatch
    ) -> pa.Array:
        column = _normalize(column)
        target_name = _describe_target(f)

        def fail(index: int, reason: str) -> CastError:
            return CastError(
                column=src.source or f.name,
                value=_value_at(column, index),
                key=self._key_at(batch, index),
                target=target_name,
                reason=reason,
            )

        if f.is_repeated:
            result = self._conform_list(column, f, target, fail, src)
        else:
            convert = _cast_for(column.type, f, target, src, src.source_type)
            result = _apply(column, convert, fail)
            if f.is_required and result.null_count:
                raise fail(_first_null(result), "the destination column is REQUIRED")
        return result

    def _conform_list(
        self,
        column: pa.Array,
        f: BigQueryField,
        target: pa.DataType,
        fail: Callable[[int, str], CastError],
        src: ColumnSource,
    ) -> pa.Array:
        if pa.types.is_null(column.type):
            return _empty_lists(len(column), target)
        if pa.types.is_string(column.type):
            column = _apply(column, _parse_json_lists, fail)
        if pa.types.is_large_list(column.type) or pa.types.is_fixed_size_list(column.type):
            column = column.cast(pa.list_(column.type.value_type))
        if not pa.types.is_list(column.type):
            raise fail(_first_valid(column), "the destination column is REPEATED and the value is not an array")
        offsets = column.offsets
        start = offsets[0].as_py()
        values = column.values.slice(start, offsets[-1].as_py() - start)
        rebased = pc.subtract(offsets, pa.scalar(start, offsets.type))
        element_field = BigQueryField(f.name, f.field_type, "NULLABLE", precision=f.precision, scale=f.scale)
        element_type = target.value_type
        values = _normalize(values)
        element = src.source_type.element if src.source_type is not None else None
        if src.source_type is not None and element is None:
            element = CanonicalType(Family.UNKNOWN)
        convert = _cast_for(values.type, element_field, element_type, ColumnSource(source=src.source), element)

        def element_fail(index: int, reason: str) -> CastError:
            row = int(pc.sum(pc.less_equal(rebased.slice(1), pa.scalar(index, rebased.type))).as_py())
            return fail(row, f"array element {_value_at(values, index)!r}: {reason}")

        converted = _apply(values, convert, element_fail)
        if converted.null_count:
            raise element_fail(_first_null(converted), "BigQuery arrays cannot hold NULL elements")
        # A NULL array is stored by BigQuery as an empty one; say so explicitly in the file.
        result = pa.ListArray.from_arrays(rebased, converted)
        return result.cast(target)

    def _key_at(self, batch: pa.RecordBatch, index: int) -> str | None:
        parts = []
        for name in self.key_columns:
            if name in batch.schema.names:
                parts.append(f"{name}={_value_at(batch.column(name), index)!r}")
        return ", ".join(parts) or None


# --- helpers ----------------------------------------------------------------------


def _describe_target(f: BigQueryField) -> str:
    kind = f.field_type.upper()
    if f.precision is not None:
        kind = f"{kind}({f.precision}{f', {f.scale}' if f.scale is not None else ''})"
    return f"ARRAY<{kind}>" if f.is_repeated else kind


def _empty_lists(length: int, target: pa.DataType) -> pa.Array:
    offsets = pa.array([0] * (length + 1), pa.int32())
    return pa.ListArray.from_arrays(offsets, pa.array([], target.value_type)).cast(target)


def _normalize(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Strip representations that carry no meaning for BigQuery (extensions, dictionaries, 64-bit offsets)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if isinstance(column.type, pa.ExtensionType):
        column = column.storage
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_large_string(column.type) or pa.types.is_string_view(column.type):
        column = column.cast(pa.string())
    elif pa.types.is_large_binary(column.type) or pa.types.is_binary_view(column.type):
        column = column.cast(pa.binary())
    return column


def _value_at(column: pa.Array, index: int) -> Any:
    try:
        return column[index].as_py()
    except Exception:  # noqa: BLE001 - a value Arrow cannot render is still worth a message
        pass
    raw = column.slice(index, 1)
    if pa.types.is_temporal(raw.type) and raw.type.bit_width in (32, 64):
        # PostgreSQL ±infinity and years beyond 9999 do not fit Python's calendar: show the raw count.
        raw_value = raw.view(pa.int32() if raw.type.bit_width == 32 else pa.int64())[0].as_py()
        return f"{raw_value} ({raw.type} outside the calendar, e.g. PostgreSQL infinity)"
    try:
        return str(column[index])
    except Exception:  # noqa: BLE001
        return f"(a {raw.type} value that cannot be shown)"


def _first_null(column: pa.Array) -> int:
    return int(pc.index(column.is_null(), True).as_py())


def _first_valid(column: pa.Array) -> int:
    found = pc.index(column.is_valid(), True).as_py()
    return 0 if found is None or found < 0 else int(found)


def _apply(
    column: pa.Array, convert: Callable[[pa.Array], pa.Array], fail: Callable[[int, str], CastError]
) -> pa.Array:
    """`convert(column)`, or a CastError for the first row that makes it fail.

    Conversions here are element-wise, so the failing row is found by bisection
    with O(log n) conversions of shrinking slices instead of one per row.
    """
    try:
        return convert(column)
    except _ARROW_ERRORS as exc:
        first_reason = _reason(exc)
    lo, hi = 0, len(column)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _fails(convert, column.slice(lo, mid - lo)):
            hi = mid
        else:
            lo = mid
    reason = first_reason
    try:
        convert(column.slice(lo, 1))
    except _ARROW_ERRORS as exc:
        reason = _reason(exc)
    raise fail(lo, reason)


def _fails(convert: Callable[[pa.Array], pa.Array], part: pa.Array) -> bool:
    try:
        convert(part)
    except _ARROW_ERRORS:
        return True
    return False


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


Converter = Callable[[pa.Array], pa.Array]
CastFactory = Callable[[pa.DataType, BigQueryField, pa.DataType, bool], Converter]


def _cast_for(
    source: pa.DataType, f: BigQueryField, target: pa.DataType, src: ColumnSource, canonical: CanonicalType | None
) -> Converter:
    """The converter the type rules name for (canonical source type, destination type)."""
    if canonical is None:  # a caller without types (benchmarks): convert by the Arrow type alone
        return _converter(source, f, target, validate_json=src.validate_json)
    match = rule_for(canonical, f.field_type, f.precision, f.scale, required=f.is_required)
    if match.cast is None:
        raise SchemaMismatchError(
            f"Source column {src.source!r} ({canonical}) cannot be loaded into {f.name!r} ({_describe_target(f)}): "
            f"{match.message}"
        )
    if pa.types.is_null(source):
        return lambda arr: pa.nulls(len(arr), target)
    convert = CASTS[match.cast](source, f, target, src.validate_json)
    if pa.types.is_date32(target) or pa.types.is_timestamp(target):
        return lambda arr: casts.in_bigquery_range(convert(arr))
    return convert


def _same(source: pa.DataType, f: BigQueryField, target: pa.DataType, validate_json: bool) -> Converter:
    return _converter(source, f, target, validate_json=validate_json)


def _text(source: pa.DataType, f: BigQueryField, target: pa.DataType, validate_json: bool) -> Converter:
    if standard_bigquery_type(f.field_type) != "STRING":
        return _same(source, f, target, validate_json)
    return lambda arr: casts.text_array(pg_temporal.out_of_range_as_text(arr))  # PostgreSQL's 'infinity', BC


def _int_to_float(source: pa.DataType, f: BigQueryField, target: pa.DataType, validate_json: bool) -> Converter:
    if pa.types.is_integer(source):
        # Round to nearest, ties to even, as the rule's message says (a safe cast would refuse > 2^53).
        return lambda arr: pc.cast(arr, pa.float64(), safe=False)
    return _same(source, f, target, validate_json)


def _decimal_to_float(source: pa.DataType, f: BigQueryField, target: pa.DataType, validate_json: bool) -> Converter:
    if pa.types.is_decimal(source):
        # Through the decimal text: the text -> float parse is correctly rounded to the nearest double.
        return lambda arr: pc.cast(pc.cast(arr, pa.string()), pa.float64())
    return _same(source, f, target, validate_json)


def _decimal_round(source: pa.DataType, f: BigQueryField, target: pa.DataType, validate_json: bool) -> Converter:
    whole, places = decimal_digits(standard_bigquery_type(f.field_type), f.precision, f.scale)
    if pa.types.is_floating(source):
        return lambda arr: casts.rounded_decimals(arr, whole, places, target)
    exact = _to_decimal(source, f, target)

    def convert(arr: pa.Array) -> pa.Array:
        try:
            return exact(arr)  # the fast path, whenever no value needs rounding
        except _ARROW_ERRORS:
            return casts.rounded_decimals(arr, whole, places, target)

    return convert


def _bool_to_number(source: pa.DataType, f: BigQueryField, target: pa.DataType, validate_json: bool) -> Converter:
    if pa.types.is_boolean(source):
        return lambda arr: pc.cast(pc.cast(arr, pa.int64()), target)
    return _same(source, f, target, validate_json)


def _bool_text(source: pa.DataType, f: BigQueryField, target: pa.DataType, validate_json: bool) -> Converter:
    # A boolean stored as 0/1 (MySQL BIT(1)) is still written 'true'/'false', as the rule says.
    to_bool = _to_bool(source)
    return lambda arr: pc.cast(to_bool(arr), pa.string())


def _decimal_to_int(source: pa.DataType, f: BigQueryField, target: pa.DataType, validate_json: bool) -> Converter:
    if pa.types.is_decimal(source):
        return lambda arr: pc.cast(arr, pa.int64())  # a safe cast: a fractional part fails
    if pa.types.is_string(source) or pa.types.is_floating(source):
        return casts.whole_decimals  # '12.000' (PostgreSQL numeric as text) is the whole number 12
    return _same(source, f, target, validate_json)


def _bool_01(source: pa.DataType, f: BigQueryField, target: pa.DataType, validate_json: bool) -> Converter:
    return _to_bool(source)


def _clamp_range(source: pa.DataType, f: BigQueryField, target: pa.DataType, validate_json: bool) -> Converter:
    # PostgreSQL ±infinity, BC and years after 9999: the nearest end of BigQuery's range (etl/pg_temporal.py).
    return lambda arr: _same((c := pg_temporal.clamp(arr, target)).type, f, target, validate_json)(c)


def _timetz_to_utc(source: pa.DataType, f: BigQueryField, target: pa.DataType, validate_json: bool) -> Converter:
    return casts.utc_time_of_day


# Every cast a type rule may name (tests/test_type_rules.py walks the table against this).
CASTS: dict[str, CastFactory] = {
    "same": _same,
    "parse": _same,
    "json_text": _same,
    "text": _text,
    "int_to_float": _int_to_float,
    "decimal_to_float": _decimal_to_float,
    "decimal_round": _decimal_round,
    "float_to_decimal": _decimal_round,
    "bool_to_number": _bool_to_number,
    "bool_01": _bool_01,
    "decimal_to_int": _decimal_to_int,
    "decimal_round_nan_null": lambda s, f, t, v: casts.nan_as_null(_decimal_round(s, f, t, v)),  # PostgreSQL NaN
    "decimal_to_int_nan_null": lambda s, f, t, v: casts.nan_as_null(_decimal_to_int(s, f, t, v)),
    "bool_text": _bool_text,
    "timetz_to_utc": _timetz_to_utc,
    "clamp_range": _clamp_range,
}


def _converter(
    source: pa.DataType, f: BigQueryField, target: pa.DataType, *, validate_json: bool
) -> Callable[[pa.Array], pa.Array]:
    """A function converting arrays of type `source` into `target` for field `f`, raising on any bad value."""
    kind = f.field_type.upper()
    if pa.types.is_null(source):
        return lambda arr: pa.nulls(len(arr), target)
    if kind in ("STRING", "JSON", "GEOGRAPHY"):
        to_text = _to_string(source)
        if kind == "JSON" and (validate_json or not pa.types.is_string(source)):
            return lambda arr: _check_json(to_text(arr))
        return to_text
    if kind in ("BOOL", "BOOLEAN"):
        return _to_bool(source)
    if kind in ("NUMERIC", "DECIMAL", "BIGNUMERIC", "BIGDECIMAL"):
        return _to_decimal(source, f, target)
    if kind in ("INT64", "INTEGER", "FLOAT64", "FLOAT"):
        if pa.types.is_string(source):
            return lambda arr: pc.cast(pc.utf8_trim_whitespace(arr), target)
        return lambda arr: pc.cast(arr, target)
    if kind == "DATE":
        return _to_date(source)
    if kind in ("DATETIME", "TIMESTAMP"):
        return _to_timestamp(source, target)
    if kind == "TIME":
        return _to_time(source)
    if kind == "BYTES":
        return lambda arr: pc.cast(arr, target)
    raise SchemaMismatchError(f"Destination column {f.name!r} has type {kind}, which the runner cannot fill")


def _to_string(source: pa.DataType) -> Callable[[pa.Array], pa.Array]:
    if pa.types.is_string(source):
        return lambda arr: arr
    if pa.types.is_nested(source):
        # Arrays and structs become their JSON text, the form a STRING/JSON column reads naturally.
        return lambda arr: pa.array(
            [None if v is None else json.dumps(v, default=str, ensure_ascii=False) for v in arr.to_pylist()],
            pa.string(),
        )
    return lambda arr: pc.cast(arr, pa.string())


def _check_json(arr: pa.Array) -> pa.Array:
    for value in arr.drop_null().to_pylist():
        json.loads(value)  # ValueError names the problem; _apply finds the row
    return arr


_TRUE = {"true", "t", "yes", "y", "1", "on"}
_FALSE = {"false", "f", "no", "n", "0", "off"}


def _to_bool(source: pa.DataType) -> Callable[[pa.Array], pa.Array]:
    if pa.types.is_boolean(source):
        return lambda arr: arr
    if pa.types.is_string(source):

        def parse(arr: pa.Array) -> pa.Array:
            lowered = pc.utf8_lower(pc.utf8_trim_whitespace(arr))
            truthy = pc.is_in(lowered, pa.array(sorted(_TRUE)))
            falsy = pc.is_in(lowered, pa.array(sorted(_FALSE)))
            if pc.any(pc.and_(arr.is_valid(), pc.invert(pc.or_(truthy, falsy)))).as_py():
                raise ValueError("not a boolean (expected true/false, t/f, yes/no, 1/0)")
            return pc.if_else(arr.is_null(), pa.scalar(None, pa.bool_()), truthy)

        return parse
    if pa.types.is_integer(source) or pa.types.is_decimal(source) or pa.types.is_floating(source):

        def from_number(arr: pa.Array) -> pa.Array:
            # 0/1 is how MySQL and SQLite store booleans; any other number is not a boolean.
            numbers = pc.cast(arr, pa.float64()).drop_null()
            if not pc.all(pc.is_in(numbers, pa.array([0.0, 1.0]))).as_py():
                raise ValueError("only 0 and 1 are booleans")
            return pc.cast(arr, pa.bool_())

        return from_number
    if pa.types.is_binary(source) or pa.types.is_fixed_size_binary(source):
        # MySQL BIT(1) arrives as one byte.
        def from_bits(arr: pa.Array) -> pa.Array:
            values = [None if v is None else int.from_bytes(v, "big") for v in arr.to_pylist()]
            if any(v not in (None, 0, 1) for v in values):
                raise ValueError("only bit values 0 and 1 are booleans")
            return pa.array([None if v is None else bool(v) for v in values], pa.bool_())

        return from_bits
    return lambda arr: pc.cast(arr, pa.bool_())


def _to_decimal(source: pa.DataType, f: BigQueryField, target: pa.DataType) -> Callable[[pa.Array], pa.Array]:
    declared: pa.DataType | None = None
    if f.precision is not None:
        scale = f.scale or 0
        # A parameterised NUMERIC(P, S) rejects what does not fit P and S: check that first.
        declared = pa.decimal128(f.precision, scale) if f.precision <= 38 else pa.decimal256(f.precision, scale)

    def convert(arr: pa.Array) -> pa.Array:
        if pa.types.is_string(arr.type):
            arr = pc.utf8_trim_whitespace(arr)
        if pa.types.is_floating(arr.type) and pc.any(pc.is_nan(arr)).as_py():
            raise ValueError("NaN is not a decimal number")
        if declared is not None:
            arr = pc.cast(arr, declared)
        return pc.cast(arr, target)

    return convert


def _to_date(source: pa.DataType) -> Callable[[pa.Array], pa.Array]:
    if pa.types.is_timestamp(source):

        def from_timestamp(arr: pa.Array) -> pa.Array:
            dates = pc.cast(arr, pa.date32())
            # Arrow truncates the time of day silently; a DATE column would lose it.
            back = pc.cast(dates, arr.type)
            if pc.any(pc.not_equal(back, arr)).as_py():
                raise ValueError("the value has a time of day")
            return dates

        return from_timestamp
    if pa.types.is_string(source):
        return lambda arr: pc.cast(pc.utf8_trim_whitespace(arr), pa.date32())
    return lambda arr: pc.cast(arr, pa.date32())


def _to_timestamp(source: pa.DataType, target: pa.DataType) -> Callable[[pa.Array], pa.Array]:
    options = _TIME_CAST(target, allow_time_truncate=True)
    if pa.types.is_string(source):

        def parse(arr: pa.Array) -> pa.Array:
            # Text may mix values with and without a UTC offset; each kind is parsed on its own
            # (text without one is read as UTC, like every naive value in the product).
            arr = pc.utf8_trim_whitespace(arr)
            has_offset = pc.fill_null(pc.match_substring_regex(arr, _OFFSET), False)
            no_text = pa.scalar(None, pa.string())
            aware = pc.cast(pc.if_else(has_offset, arr, no_text), pa.timestamp("us", tz="UTC"))
            naive = pc.cast(pc.if_else(has_offset, no_text, arr), pa.timestamp("us"))
            if target.tz:
                return pc.if_else(has_offset, aware, pc.cast(naive, target))
            return pc.if_else(has_offset, pc.cast(aware, target), naive)

        return parse
    return lambda arr: pc.cast(arr, options=options)


# A time of day followed by "Z" or +HH[:MM] (a bare date such as 2024-01-02 ends in "-02" too).
_OFFSET = r"\d:\d\d(?::\d\d(?:\.\d+)?)?(?:[zZ]|[+-]\d\d(?::?\d\d)?)$"


def _to_time(source: pa.DataType) -> Callable[[pa.Array], pa.Array]:
    target = pa.time64("us")
    if pa.types.is_string(source):

        def parse(arr: pa.Array) -> pa.Array:
            stamped = pc.binary_join_element_wise("1970-01-01T", pc.utf8_trim_whitespace(arr), "")
            micros = pc.cast(pc.cast(stamped, pa.timestamp("us")), pa.int64())
            return pc.cast(micros, target)

        return parse
    if pa.types.is_duration(source):

        def from_duration(arr: pa.Array) -> pa.Array:
            # MySQL TIME is a duration (-838:59:59 to 838:59:59); only a time of day fits BigQuery TIME.
            micros = pc.cast(pc.cast(arr, pa.duration("us")), pa.int64())
            outside = pc.or_(pc.less(micros, 0), pc.greater_equal(micros, 86_400_000_000))
            if pc.any(outside).as_py():
                raise ValueError("the duration is not a time of day (00:00:00 to 23:59:59.999999)")
            return pc.cast(micros, target)

        return from_duration
    return lambda arr: pc.cast(arr, options=_TIME_CAST(target, allow_time_truncate=True))


def _parse_json_lists(arr: pa.Array) -> pa.Array:
    """Arrays kept as JSON text (SQLite, a PostgreSQL array read as text) parsed into lists."""
    values = []
    for text in arr.to_pylist():
        if text is None:
            values.append(None)
            continue
        parsed = json.loads(text)
        if not isinstance(parsed, list):
            raise ValueError("not a JSON array")
        values.append(parsed)
    return pa.array(values)
