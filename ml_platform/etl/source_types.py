"""Map a column type, spelled the way a source database reports it, to a canonical family.

Pure domain code: no Django, no I/O. The introspector hands over the exact text the
catalog gives (`format_type()` on PostgreSQL, `COLUMN_TYPE` on MySQL/MariaDB, the
declared type on SQLite) plus the facts that text alone cannot carry (a PostgreSQL
user enum looks like any other type name; MariaDB's JSON is reported as `longtext`).

Unknown types become `Family.UNKNOWN`; this module never raises, because one odd
column must not stop a whole table from being listed.
"""

from __future__ import annotations

import re
from dataclasses import replace

from ml_platform.etl.types import CanonicalType, Family

__all__ = ["parse_source_type", "UNKNOWN"]

UNKNOWN = CanonicalType(Family.UNKNOWN)
# A boolean kept in an integer column (MySQL TINYINT(1), SQLite BOOLEAN): 2 is a possible value.
INT_BOOLEAN = CanonicalType(Family.BOOLEAN, detail="int")
# PostgreSQL dates/timestamps: ±infinity and years outside 0001..9999 (see etl/pg_temporal.py).
PG_UNBOUNDED = "infinite"
# A PostgreSQL numeric (any precision), which may hold 'NaN' (type_rules: loaded as NULL, the report says so).
PG_NAN = "nan"

_DIALECT_ALIASES = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "pg": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlite": "sqlite",
    "sqlite3": "sqlite",
}


def parse_source_type(
    text: str,
    dialect: str,
    *,
    is_enum: bool = False,
    is_json: bool = False,
) -> CanonicalType:
    """The canonical type of a column declared as `text` in `dialect`.

    `is_enum`: the catalog says the type (or, for an array, its element) is a user enum
    (PostgreSQL `pg_type.typtype = 'e'`). `is_json`: the catalog proved the column holds
    JSON although the type name does not say so (MariaDB `longtext` + `CHECK json_valid`).
    """
    try:
        kind = _DIALECT_ALIASES.get((dialect or "").strip().lower())
        if not isinstance(text, str):
            return UNKNOWN
        normalized = " ".join(text.strip().split())
        match kind:
            case "postgresql":
                return _parse_postgresql(normalized, is_enum=is_enum, is_json=is_json)
            case "mysql":
                return _parse_mysql(normalized, is_enum=is_enum, is_json=is_json)
            case "sqlite":
                return _parse_sqlite(normalized, is_json=is_json)
            case _:
                return UNKNOWN
    except Exception:  # noqa: BLE001 - the contract is "UNKNOWN, never an exception"
        return UNKNOWN


# --- shared helpers ---------------------------------------------------------------

_ARGS = re.compile(r"\(([^()]*)\)")


def _split_args(text: str) -> tuple[str, list[str]]:
    """`'timestamp(3) with time zone'` -> `('timestamp with time zone', ['3'])`.

    Type modifiers sit in the middle of multi-word PostgreSQL names, so they are cut
    out wherever they are rather than only at the end.
    """
    found = _ARGS.search(text)
    if not found:
        return text.lower(), []
    base = (text[: found.start()] + " " + text[found.end() :]).lower()
    args = [a.strip() for a in found.group(1).split(",") if a.strip()]
    return " ".join(base.split()), args


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _decimal(args: list[str], *, default_precision: int | None = None) -> CanonicalType:
    precision = _int_or_none(args[0]) if args else default_precision
    if precision is None:
        return CanonicalType(Family.DECIMAL)
    scale = _int_or_none(args[1]) if len(args) > 1 else 0
    return CanonicalType(Family.DECIMAL, precision=precision, scale=scale or 0)


# --- PostgreSQL -------------------------------------------------------------------

_PG_ARRAY_SUFFIX = re.compile(r"(\s*\[\d*\])+$")

_PG_INTEGER = {
    "smallint", "int2", "integer", "int", "int4", "bigint", "int8",
    "smallserial", "serial2", "serial", "serial4", "bigserial", "serial8",
}  # fmt: skip
_PG_FLOAT = {"real", "float4", "double precision", "float8", "float"}
_PG_STRING = {"text", "character varying", "varchar", "character", "char", "bpchar", "name", '"char"', "citext"}
# Types with no BigQuery counterpart that still read naturally as text; `detail`
# keeps the original so the UI can explain what the string holds.
_PG_STRING_LIKE = {
    "money", "inet", "cidr", "macaddr", "macaddr8", "xml", "tsvector", "tsquery",
    "point", "line", "lseg", "box", "path", "polygon", "circle", "bit", "bit varying", "varbit",
    "pg_lsn", "oid", "regclass", "regtype", "regproc", "xid", "xid8", "cid", "tid", "txid_snapshot",
    "pg_snapshot", "int4range", "int8range", "numrange", "tsrange", "tstzrange", "daterange",
    "int4multirange", "int8multirange", "nummultirange", "tsmultirange", "tstzmultirange", "datemultirange",
}  # fmt: skip


def _array_element(element: CanonicalType) -> CanonicalType:
    # A NaN element cannot become NULL (arrays hold no NULL elements): it is refused and counted as before.
    return replace(element, detail="") if element.detail == PG_NAN else element


def _parse_postgresql(text: str, *, is_enum: bool, is_json: bool) -> CanonicalType:
    if not text:
        return UNKNOWN
    # format_type() prints one "[]" whatever the dimensions; declared text may carry "[3][]".
    array = _PG_ARRAY_SUFFIX.search(text)
    if array:
        element = _parse_postgresql(text[: array.start()].strip(), is_enum=is_enum, is_json=is_json)
        return CanonicalType(Family.ARRAY, element=_array_element(element))
    if is_enum:
        return CanonicalType(Family.STRING, detail="enum")
    if is_json:
        return CanonicalType(Family.JSON)
    if text.startswith('"') and text != '"char"':
        # A quoted identifier is a user-defined type the caller did not flag: unknowable here.
        return UNKNOWN

    base, args = _split_args(text)
    # Internal array names ("_int4") appear when callers read pg_type.typname directly.
    if base.startswith("_") and base[1:] in _PG_INTEGER | _PG_FLOAT | _PG_STRING | {"bool", "numeric", "uuid"}:
        element = _parse_postgresql(base[1:], is_enum=False, is_json=False)
        return CanonicalType(Family.ARRAY, element=_array_element(element))

    if base in _PG_INTEGER:
        return CanonicalType(Family.INTEGER)
    if base in ("numeric", "decimal"):
        return replace(_decimal(args), detail=PG_NAN)
    if base in _PG_FLOAT:
        return CanonicalType(Family.FLOAT)
    if base in _PG_STRING:
        return CanonicalType(Family.STRING)
    if base == "uuid":
        return CanonicalType(Family.STRING, detail="uuid")
    if base in ("boolean", "bool"):
        return CanonicalType(Family.BOOLEAN)
    if base == "date":
        return CanonicalType(Family.DATE, detail=PG_UNBOUNDED)
    if base in ("time", "time without time zone"):
        return CanonicalType(Family.TIME)
    if base in ("time with time zone", "timetz"):
        return CanonicalType(Family.TIME, detail="tz")
    if base in ("timestamp", "timestamp without time zone"):
        return CanonicalType(Family.TIMESTAMP, tz=False, detail=PG_UNBOUNDED)
    if base in ("timestamp with time zone", "timestamptz"):
        return CanonicalType(Family.TIMESTAMP, tz=True, detail=PG_UNBOUNDED)
    if base == "interval" or base.startswith("interval "):
        return CanonicalType(Family.INTERVAL)
    if base == "json":
        return CanonicalType(Family.JSON)
    if base == "jsonb":
        return CanonicalType(Family.JSON, detail="jsonb")
    if base == "bytea":
        return CanonicalType(Family.BYTES)
    if base in _PG_STRING_LIKE:
        return CanonicalType(Family.STRING, detail=base)
    return UNKNOWN


# --- MySQL / MariaDB --------------------------------------------------------------

_MYSQL_INTEGER = {
    "tinyint",
    "smallint",
    "mediumint",
    "int",
    "integer",
    "bigint",
    "middleint",
    "int1",
    "int2",
    "int3",
    "int4",
    "int8",
}
_MYSQL_64BIT = {"bigint", "int8"}
_MYSQL_STRING = {
    "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "long", "long varchar",
    "character", "character varying", "national char", "national varchar", "nchar", "nvarchar",
}  # fmt: skip
_MYSQL_BYTES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "long varbinary", "char byte"}
_MYSQL_GEOMETRY = {
    "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
    "geometrycollection", "geomcollection",
}  # fmt: skip
# Trailing attributes COLUMN_TYPE or a DDL fragment may carry; none changes the family.
_MYSQL_NOISE = re.compile(r"\b(zerofill|signed|character set \S+|charset \S+|collate \S+|binary)\b")


def _parse_mysql(text: str, *, is_enum: bool, is_json: bool) -> CanonicalType:
    if not text:
        return UNKNOWN
    lowered = text.lower()
    # Enum/set members may themselves contain parentheses or commas: never split them.
    if lowered.startswith("enum(") or lowered.startswith("enum ("):
        return CanonicalType(Family.STRING, detail="enum")
    if lowered.startswith("set(") or lowered.startswith("set ("):
        return CanonicalType(Family.STRING, detail="set")
    if is_enum:
        return CanonicalType(Family.STRING, detail="enum")
    if is_json:
        return CanonicalType(Family.JSON)

    base, args = _split_args(text)
    unsigned = bool(re.search(r"\bunsigned\b", base))
    base = " ".join(re.sub(r"\bunsigned\b", "", base).split())
    if base not in _MYSQL_BYTES:  # BINARY is a type of its own, elsewhere only a collation attribute
        base = " ".join(_MYSQL_NOISE.sub("", base).split())

    if base in ("bool", "boolean") or (base in ("tinyint", "int1") and args == ["1"]):
        # The MySQL convention for BOOL (what every ORM and connector reads as boolean), but
        # the column is a TINYINT and may hold any of -128..127: detail "int" says so.
        return INT_BOOLEAN
    if base in _MYSQL_INTEGER:
        if unsigned and base in _MYSQL_64BIT:
            return CanonicalType(Family.INTEGER, detail="unsigned64")
        return CanonicalType(Family.INTEGER, detail="unsigned" if unsigned else "")
    if base == "serial":  # alias of BIGINT UNSIGNED NOT NULL AUTO_INCREMENT UNIQUE
        return CanonicalType(Family.INTEGER, detail="unsigned64")
    if base in ("decimal", "numeric", "dec", "fixed"):
        # An unparameterised DECIMAL is DECIMAL(10,0) in MySQL, unlike PostgreSQL.
        return _decimal(args, default_precision=10)
    if base in ("float", "double", "double precision", "real", "float4", "float8"):
        return CanonicalType(Family.FLOAT)
    if base == "bit":
        width = _int_or_none(args[0]) if args else 1
        if width == 1:
            return CanonicalType(Family.BOOLEAN, detail="bit")
        return CanonicalType(Family.INTEGER, detail="unsigned64" if width == 64 else "bit")
    if base in _MYSQL_STRING:
        return CanonicalType(Family.STRING)
    if base == "uuid":
        return CanonicalType(Family.STRING, detail="uuid")
    if base in ("inet4", "inet6"):
        return CanonicalType(Family.STRING, detail=base)
    if base == "date":
        return CanonicalType(Family.DATE)
    if base == "datetime":
        return CanonicalType(Family.TIMESTAMP, tz=False)
    if base == "timestamp":
        # MySQL stores TIMESTAMP as UTC and converts with the session time zone.
        return CanonicalType(Family.TIMESTAMP, tz=True)
    if base == "time":
        # A duration (-838:59:59 to 838:59:59), not only a time of day.
        return CanonicalType(Family.TIME, detail="duration")
    if base == "year":
        return CanonicalType(Family.INTEGER, detail="year")
    if base == "json":
        return CanonicalType(Family.JSON)
    if base in _MYSQL_BYTES:
        return CanonicalType(Family.BYTES)
    if base in _MYSQL_GEOMETRY:
        return CanonicalType(Family.BYTES, detail="geometry")
    return UNKNOWN


# --- SQLite -----------------------------------------------------------------------


def _parse_sqlite(text: str, *, is_json: bool) -> CanonicalType:
    """SQLite's affinity rules (https://sqlite.org/datatype3.html §3.1), refined by the
    conventional names ORMs declare (BOOLEAN, DATE, DATETIME, JSON) that carry intent
    the affinity alone loses."""
    if is_json:
        return CanonicalType(Family.JSON)
    if not text:
        # No declared type: any value of any storage class may be there.
        return UNKNOWN
    base, args = _split_args(text)
    upper = base.upper()

    if upper in ("BOOLEAN", "BOOL"):
        return INT_BOOLEAN  # stored as an integer, which may be any integer
    if upper == "DATE":
        return CanonicalType(Family.DATE)
    if upper in ("DATETIME", "TIMESTAMP", "TIMESTAMP WITHOUT TIME ZONE"):
        return CanonicalType(Family.TIMESTAMP, tz=False)
    if upper in ("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"):
        return CanonicalType(Family.TIMESTAMP, tz=True)
    if upper in ("TIME", "TIME WITHOUT TIME ZONE"):
        return CanonicalType(Family.TIME)
    if upper in ("JSON", "JSONB"):
        return CanonicalType(Family.JSON)
    if upper == "UUID":
        return CanonicalType(Family.STRING, detail="uuid")

    if "INT" in upper:
        return CanonicalType(Family.INTEGER)
    if "CHAR" in upper or "CLOB" in upper or "TEXT" in upper:
        return CanonicalType(Family.STRING)
    if "BLOB" in upper:
        return CanonicalType(Family.BYTES)
    if "REAL" in upper or "FLOA" in upper or "DOUB" in upper:
        return CanonicalType(Family.FLOAT)
    if "NUMERIC" in upper or "DECIMAL" in upper:
        return _decimal(args)
    return UNKNOWN
