"""Canonical source types and the source -> BigQuery mapping.

Pure domain code: no Django, no I/O. Every other layer (introspection, the
compatibility engine, the runner, the wizard) speaks these types so one source
column has exactly one meaning everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum


class Family(StrEnum):
    INTEGER = "INTEGER"
    DECIMAL = "DECIMAL"
    FLOAT = "FLOAT"
    STRING = "STRING"
    BOOLEAN = "BOOLEAN"
    DATE = "DATE"
    TIME = "TIME"
    TIMESTAMP = "TIMESTAMP"
    JSON = "JSON"
    BYTES = "BYTES"
    ARRAY = "ARRAY"
    INTERVAL = "INTERVAL"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class CanonicalType:
    """A source column's type, independent of the database that declared it.

    `precision`/`scale` are set for DECIMAL when the source declares them (an
    unconstrained `numeric` has both None). `tz` is meaningful for TIMESTAMP only.
    `element` is the element type of an ARRAY. `detail` keeps a refinement that
    does not change the family (`uuid`, `enum`, `set`, `unsigned`, `bit`...).
    """

    family: Family
    precision: int | None = None
    scale: int | None = None
    tz: bool = False
    element: CanonicalType | None = None
    detail: str = ""

    def __str__(self) -> str:
        if self.family is Family.DECIMAL and self.precision is not None:
            return f"DECIMAL({self.precision},{self.scale or 0})"
        if self.family is Family.TIMESTAMP:
            return "TIMESTAMP WITH TIME ZONE" if self.tz else "TIMESTAMP"
        if self.family is Family.ARRAY:
            return f"ARRAY<{self.element or 'UNKNOWN'}>"
        return self.family.value


@dataclass(frozen=True)
class SourceColumn:
    """One column of a source table, as introspected (or as sent to the API)."""

    name: str
    source_type: str  # as the database names it: "numeric(12,2)", "integer[]", "tinyint(1)"
    type: CanonicalType
    nullable: bool = True
    primary_key: bool = False
    default: str | None = None


@dataclass(frozen=True)
class BigQueryField:
    """A BigQuery schema field (a plain mirror of `SchemaField`, so `etl/` stays testable without the client)."""

    name: str
    field_type: str  # INT64, NUMERIC, BIGNUMERIC, FLOAT64, STRING, BOOL, DATE, TIME, DATETIME, TIMESTAMP, JSON, BYTES, RECORD...
    mode: str = "NULLABLE"  # NULLABLE | REQUIRED | REPEATED
    fields: tuple[BigQueryField, ...] = ()
    precision: int | None = None
    scale: int | None = None
    description: str | None = None

    @property
    def is_required(self) -> bool:
        return self.mode == "REQUIRED"

    @property
    def is_repeated(self) -> bool:
        return self.mode == "REPEATED"


@dataclass(frozen=True)
class TableSchema:
    """An existing BigQuery table as the compatibility engine sees it.

    `primary_key` is None when unknown (the emulator does not store constraints;
    real BigQuery may have none): absent is never treated as "no key".

    `partitioning` is `DAY(col)`, `HOUR(col)`, `MONTH(col)`, `YEAR(col)`, `DAY(_PARTITIONTIME)`
    (ingestion time) or `RANGE(col)`; `partition_expiration_ms` and `require_partition_filter`
    are the table's partition options, read with the same `get_table` call (None / False when
    unset or unknown).
    """

    dataset: str
    table: str
    fields: tuple[BigQueryField, ...]
    primary_key: tuple[str, ...] | None = None
    partitioning: str | None = None
    clustering: tuple[str, ...] = ()
    num_rows: int | None = None
    extra: dict = field(default_factory=dict, compare=False)
    partition_expiration_ms: int | None = None
    require_partition_filter: bool = False

    @property
    def partition_type(self) -> str | None:
        """`DAY`, `HOUR`, `MONTH`, `YEAR` or `RANGE` (None when the table is not partitioned)."""
        return self.partitioning.split("(", 1)[0].strip().upper() if self.partitioning else None

    @property
    def partition_column(self) -> str | None:
        """The partitioning column (`_PARTITIONTIME` for ingestion-time partitioning)."""
        if not self.partitioning or "(" not in self.partitioning:
            return None
        return self.partitioning.split("(", 1)[1].rstrip(") ").strip() or None

    def field_by_name(self, name: str) -> BigQueryField | None:
        lowered = name.lower()
        for f in self.fields:
            if f.name.lower() == lowered:
                return f
        return None


# BigQuery NUMERIC holds precision 38 with scale 9 (29 integer digits);
# anything outside that needs BIGNUMERIC (76.76 digits, scale up to 38).
NUMERIC_MAX_SCALE = 9
NUMERIC_MAX_INTEGER_DIGITS = 29
BIGNUMERIC_MAX_SCALE = 38


def bigquery_type_for(t: CanonicalType) -> tuple[str, str]:
    """The BigQuery (type, mode) a new table gets for a source column of type `t`."""
    if t.family is Family.ARRAY:
        inner, _ = bigquery_type_for(t.element or CanonicalType(Family.STRING))
        return inner, "REPEATED"
    return _scalar_bigquery_type(t), "NULLABLE"


def _scalar_bigquery_type(t: CanonicalType) -> str:
    match t.family:
        case Family.INTEGER:
            # An unsigned 64-bit source may exceed INT64: keep every value exactly.
            return "NUMERIC" if t.detail == "unsigned64" else "INT64"
        case Family.DECIMAL:
            if t.precision is None:
                # Unconstrained numeric: arbitrary scale, BIGNUMERIC keeps the most.
                return "BIGNUMERIC"
            scale = t.scale or 0
            if scale <= NUMERIC_MAX_SCALE and (t.precision - scale) <= NUMERIC_MAX_INTEGER_DIGITS:
                return "NUMERIC"
            return "BIGNUMERIC"
        case Family.FLOAT:
            return "FLOAT64"
        case Family.STRING:
            return "STRING"
        case Family.BOOLEAN:
            return "BOOL"
        case Family.DATE:
            return "DATE"
        case Family.TIME:
            return "TIME"
        case Family.TIMESTAMP:
            return "TIMESTAMP" if t.tz else "DATETIME"
        case Family.JSON:
            return "JSON"
        case Family.BYTES:
            return "BYTES"
        case Family.INTERVAL:
            return "STRING"
        case _:
            return "STRING"


_INVALID_NAME_CHARS = re.compile(r"[^0-9A-Za-z_]+")
_RESERVED_PREFIXES = ("_table_", "_file_", "_partition", "_row_timestamp", "__root__", "_colidentifier")
MAX_COLUMN_NAME = 300


_VALID_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def normalize_column_name(name: str) -> str:
    """A column name BigQuery accepts, derived deterministically from a source name.

    BigQuery allows letters, digits and underscores, must not start with a digit
    or a reserved prefix, and caps names at 300 characters. A name BigQuery already
    accepts is kept exactly (`_id` stays `_id`; it is not `id`); only the underscores
    that replace invalid characters at either end are trimmed (`(total)` -> `total`).
    """
    stripped = name.strip()
    if _VALID_NAME.match(stripped) and len(stripped) <= MAX_COLUMN_NAME:
        cleaned = stripped
    else:
        # Trim only the underscores the substitution produces, not the source's own.
        cleaned = _trim_substituted(stripped) or "column"
    if cleaned[0].isdigit():
        cleaned = f"_{cleaned}"
    if cleaned.lower().startswith(_RESERVED_PREFIXES):
        cleaned = f"c{cleaned}"
    return cleaned[:MAX_COLUMN_NAME]


def _trim_substituted(original: str) -> str:
    """`original` with invalid characters as `_`, minus those at either end."""
    start = 0
    while start < len(original) and not re.match(r"[0-9A-Za-z_]", original[start]):
        start += 1
    end = len(original)
    while end > start and not re.match(r"[0-9A-Za-z_]", original[end - 1]):
        end -= 1
    return _INVALID_NAME_CHARS.sub("_", original[start:end])


def normalize_column_names(names: list[str] | tuple[str, ...]) -> list[str]:
    """BigQuery-valid names for `names`, in order, unique case-insensitively. Deterministic.

    BigQuery column names are case-insensitive, so `id` and `ID` collide, as do `a b`
    and `a-b` once normalized. Who keeps a contested name, in this order:
    1. a source column whose own name is already valid keeps it (first one wins among
       names differing only by case), so `a_b` is never renamed because of `a b`;
    2. the other columns get their normalized name when nobody holds it;
    3. the rest get `_2`, `_3`... suffixes, skipping any name another column holds.
    `naming_collisions` explains each renaming.
    """
    normalized = [normalize_column_name(n) for n in names]
    claimed: set[str] = set()
    result: list[str | None] = [None] * len(normalized)
    for keep_own in (True, False):
        for index, name in enumerate(normalized):
            if result[index] is not None or (keep_own and name != names[index]):
                continue
            if name.lower() not in claimed:
                claimed.add(name.lower())
                result[index] = name
    for index, name in enumerate(normalized):
        if result[index] is not None:
            continue
        counter = 2
        while True:
            suffix = f"_{counter}"
            candidate = name[: MAX_COLUMN_NAME - len(suffix)] + suffix
            if candidate.lower() not in claimed:
                break
            counter += 1
        claimed.add(candidate.lower())
        result[index] = candidate
    return [name for name in result if name is not None]


def naming_collisions(names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Source name -> why its column is not named after it (only for suffixed names)."""
    final = normalize_column_names(names)
    owner = {n.lower(): src for src, n in zip(names, final, strict=True)}
    notes: dict[str, str] = {}
    for src, name in zip(names, final, strict=True):
        wanted = normalize_column_name(src)
        if name.lower() != wanted.lower():
            holder = owner.get(wanted.lower(), wanted)
            notes[src] = (
                f"Named {name!r} because {wanted!r} is taken by source column {holder!r} (BigQuery names are "
                "case-insensitive; a column whose own name is already valid keeps it, then the first one in order)."
            )
    return notes


# BIGNUMERIC holds 76.76 digits with scale 38: 38 whole integer digits are always safe.
BIGNUMERIC_MAX_INTEGER_DIGITS = 38

# The REST API and older tables still speak legacy SQL type names; the engine and the
# wrapper compare types by their GoogleSQL names only.
_LEGACY_TYPE_NAMES = {
    "INTEGER": "INT64",
    "FLOAT": "FLOAT64",
    "BOOLEAN": "BOOL",
    "STRUCT": "RECORD",
    "DECIMAL": "NUMERIC",
    "BIGDECIMAL": "BIGNUMERIC",
}


def standard_bigquery_type(field_type: str) -> str:
    """The GoogleSQL name of a BigQuery field type (`INTEGER` -> `INT64`, `numeric(10,2)` -> `NUMERIC`)."""
    base = (field_type or "").split("(", 1)[0].split("<", 1)[0].strip().upper()
    return _LEGACY_TYPE_NAMES.get(base, base)
