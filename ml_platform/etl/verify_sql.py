"""Per-dialect SQL that normalises a row to one canonical text and hashes it, inside each database.

Two values that are equal after the job's casts must give the same text on every engine:

| destination type | canonical text |
|---|---|
| INT64 | the integer in decimal |
| NUMERIC / BIGNUMERIC | rounded to the destination's scale `s`; inside ±10^6: the integer value × 10^s in decimal, else `~` and the decimal with trailing zeros (and a bare `.`) removed |
| FLOAT64 | rounded to 6 decimals, then as NUMERIC |
| BOOL | `1` / `0` |
| TIMESTAMP / DATETIME | microseconds since 1970-01-01 UTC (a naive source timestamp is UTC, as the runner loads it) |
| DATE | days since 1970-01-01 |
| JSON | the JSON text with every space, tab, line feed and carriage return removed |
| BYTES | lower-case hex |
| anything else | the value as text |

NULL is `\\N`; columns are joined with `|`. A row's hash is the first 15 hex digits of the MD5 of
that text, as an integer (60 bits): PostgreSQL and MySQL sum it whole (their SUM of integers is exact),
BigQuery and SQLite in two halves that each fit 64 bits. SQLite has no MD5: `register_sqlite` adds
Python functions with the same normalisation.

Why these forms (bench/bench_verify.py): the cheapest exact text per engine. A decimal inside ±10^6
goes through FLOAT64 on the BigQuery side (x × 10^s < 10^15 < 2^53, so rounding the double product
gives the exact integer; the emulator's DECIMAL-to-text cast costs 20x more), and its source computes
the same integer exactly in decimal arithmetic (a BIGNUMERIC holding more than 9 decimals is rounded
through the double: one exactly halfway at its 10th decimal may show as changed); PostgreSQL `jsonb`
text holds no whitespace but single spaces (and BigQuery's `TO_JSON_STRING` none outside strings), so a
`replace` of spaces there equals the general `translate`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import re
import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

from ml_platform.etl.bqsql import quote_name

Dialect = Literal["postgresql", "mysql", "sqlite", "bigquery"]
Kind = Literal["int", "numeric", "float", "bool", "timestamp", "datetime", "date", "json", "bytes", "text"]

NULL_TEXT = "\\N"
SEPARATOR = "|"
HASH_HEX = 15
HASH_MAX = 2**60 - 1
FLOAT_DECIMALS = 6
SMALL = 1_000_000  # a decimal inside ±SMALL hashes as its integer value x 10^scale (see above)
BIG_MARK = "~"  # precedes the text of a decimal outside ±SMALL (no collision with the integer form)
# JSON whitespace (RFC 8259): space, tab, line feed, carriage return.
_WS = re.compile(r"[ \t\n\r]+")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class VerifyColumn:
    """One compared column: its name on each side and how its values are normalised."""

    source: str
    dest: str
    kind: Kind
    scale: int = 9
    source_type: str = ""  # the source's type name, lower case ("jsonb" is hashed more cheaply)


def kind_for(field_type: str) -> Kind:
    t = field_type.upper()
    if t in ("INT64", "INTEGER"):
        return "int"
    if t in ("NUMERIC", "DECIMAL", "BIGNUMERIC", "BIGDECIMAL"):
        return "numeric"
    if t in ("FLOAT64", "FLOAT"):
        return "float"
    if t in ("BOOL", "BOOLEAN"):
        return "bool"
    if t == "TIMESTAMP":
        return "timestamp"
    if t == "DATETIME":
        return "datetime"
    if t == "DATE":
        return "date"
    if t == "JSON":
        return "json"
    if t == "BYTES":
        return "bytes"
    return "text"


def scale_for(field_type: str, scale: int | None) -> int:
    """The destination's scale: declared, else BigQuery's default (9 for NUMERIC, capped at 9 for BIGNUMERIC)."""
    if scale is not None:
        return min(scale, 9)
    return FLOAT_DECIMALS if kind_for(field_type) == "float" else 9


def quote(dialect: Dialect, name: str) -> str:
    if dialect == "bigquery":
        return quote_name(name)
    if dialect == "mysql":
        if "`" in name:
            raise ValueError(f"Invalid column name {name!r}")
        return f"`{name}`"
    return '"' + name.replace('"', '""') + '"'


def _small_bound(scale: int) -> str:
    """|x| < this exactly when x rounded (half away from zero) to `scale` decimals is inside ±SMALL."""
    return format(decimal.Decimal(SMALL) - decimal.Decimal(5).scaleb(-(scale + 1)), "f")


# --- PostgreSQL ----------------------------------------------------------------------------------


def _pg(col: VerifyColumn, ref: str) -> str:
    match col.kind:
        case "int":
            return f"({ref})::bigint::text"
        case "numeric":
            # Rounded to the scale inside ±SMALL exactly when inside ±bound; ::bigint rounds half away from zero.
            x, bound = f"({ref})::numeric", _small_bound(col.scale)
            return (f"CASE WHEN {x} > -{bound} AND {x} < {bound} THEN ({x} * 1{'0' * col.scale})::bigint::text "
                    f"ELSE '{BIG_MARK}' || trim_scale(round({x}, {col.scale}))::text END")
        case "float":
            return f"trim_scale(round(({ref})::numeric, {FLOAT_DECIMALS}))::text"
        case "bool":
            return f"CASE WHEN ({ref})::boolean THEN '1' WHEN NOT ({ref})::boolean THEN '0' END"
        case "timestamp" | "datetime":
            return f"(extract(epoch from {ref}) * 1000000)::bigint::text"
        case "date":
            return f"(({ref})::date - DATE '1970-01-01')::text"
        case "json":
            if col.source_type == "jsonb":  # its text: no whitespace but single spaces
                return f"replace(({ref})::text, ' ', '')"
            return f"translate(({ref})::text, E' \\t\\n\\r', '')"
        case "bytes":
            return f"encode({ref}, 'hex')"
    return f"({ref})::text"


def _mysql(col: VerifyColumn, ref: str) -> str:
    def strip(text: str) -> str:
        return f"IF(INSTR({text}, '.') > 0, TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM {text})), {text})"

    match col.kind:
        case "int":
            return f"CAST({ref} AS CHAR)"
        case "numeric":
            r, bound = f"CAST({ref} AS DECIMAL(65,{col.scale}))", _small_bound(col.scale)
            x = f"CAST({ref} AS DECIMAL(65,30))"  # exact decimal arithmetic also for a DOUBLE source column
            return (f"CASE WHEN {x} > -{bound} AND {x} < {bound} "
                    f"THEN CAST(CAST({x} * 1{'0' * col.scale} AS SIGNED) AS CHAR) "
                    f"ELSE CONCAT('{BIG_MARK}', {strip(f'CAST({r} AS CHAR)')}) END")
        case "float":
            return strip(f"CAST(CAST(ROUND({ref}, {FLOAT_DECIMALS}) AS DECIMAL(65,{FLOAT_DECIMALS})) AS CHAR)")
        case "bool":
            return f"CASE WHEN {ref} <> 0 THEN '1' WHEN {ref} = 0 THEN '0' END"
        case "timestamp" | "datetime":
            return f"CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {ref}) AS CHAR)"
        case "date":
            return f"CAST(DATEDIFF({ref}, '1970-01-01') AS CHAR)"
        case "json":
            return f"REGEXP_REPLACE(CAST({ref} AS CHAR), '[ \\t\\n\\r]+', '')"
        case "bytes":
            return f"LOWER(HEX({ref}))"
    return f"CAST({ref} AS CHAR)"


def _bq(col: VerifyColumn, ref: str) -> str:
    def strip(text: str) -> str:
        return f"IF(STRPOS({text}, '.') > 0, RTRIM(RTRIM({text}, '0'), '.'), {text})"

    match col.kind:
        case "int":
            return f"CAST({ref} AS STRING)"
        case "numeric":
            # The stored value has at most the column's scale: no ROUND on the fast path (the double
            # product is rounded to an integer anyway).
            fast = f"CAST(CAST(ROUND(CAST({ref} AS FLOAT64) * 1e{col.scale}) AS INT64) AS STRING)"
            slow = strip(f"CAST(ROUND({ref}, {col.scale}) AS STRING)")
            return f"CASE WHEN {ref} > -{SMALL} AND {ref} < {SMALL} THEN {fast} ELSE CONCAT('{BIG_MARK}', {slow}) END"
        case "float":
            return strip(f"FORMAT('%.{FLOAT_DECIMALS}f', {ref})")
        case "bool":
            return f"CASE WHEN {ref} THEN '1' WHEN NOT {ref} THEN '0' END"
        case "timestamp":
            return f"CAST(UNIX_MICROS({ref}) AS STRING)"
        case "datetime":
            return f"CAST(UNIX_MICROS(TIMESTAMP({ref})) AS STRING)"
        case "date":
            return f"CAST(UNIX_DATE({ref}) AS STRING)"
        case "json":
            # TO_JSON_STRING is compact (BigQuery and the emulator): only spaces inside strings are left.
            return f"REPLACE(TO_JSON_STRING({ref}), ' ', '')"
        case "bytes":
            return f"TO_HEX({ref})"
    return f"CAST({ref} AS STRING)"


_EXPR = {"postgresql": _pg, "mysql": _mysql, "bigquery": _bq}


def row_text(dialect: Dialect, columns: tuple[VerifyColumn, ...], *, dest: bool) -> str:
    """SQL for the row's canonical text (not for SQLite, which hashes in Python)."""
    expr = _EXPR[dialect]
    # MySQL and BigQuery read a backslash in a string literal as an escape; PostgreSQL does not.
    null = NULL_TEXT if dialect == "postgresql" else NULL_TEXT.replace("\\", "\\\\")
    parts = [f"COALESCE({expr(c, quote(dialect, c.dest if dest else c.source))}, '{null}')" for c in columns]
    if dialect == "postgresql":
        return " || '|' || ".join(parts)
    if dialect == "bigquery":
        # One ARRAY_TO_STRING, not CONCAT: the emulator turns CONCAT into a chain of `||` that copies
        # the growing text once per column (twice the cost; bench/bench_verify.py).
        return "ARRAY_TO_STRING([" + ", ".join(parts) + "], '|')"
    return "CONCAT(" + ", '|', ".join(parts) + ")"


def hash_int(dialect: Dialect, text: str) -> str:
    """SQL: the first 15 hex digits of MD5(`text`) as a non-negative 60-bit integer."""
    if dialect == "postgresql":
        return f"('x0' || substr(md5({text}), 1, {HASH_HEX}))::bit(64)::bigint"
    if dialect == "mysql":
        return f"CAST(CONV(SUBSTR(MD5({text}), 1, {HASH_HEX}), 16, 10) AS UNSIGNED)"
    if dialect == "bigquery":
        return f"CAST(CONCAT('0x', SUBSTR(TO_HEX(MD5({text})), 1, {HASH_HEX})) AS INT64)"
    raise ValueError("SQLite hashes through verify_row_int()")


def bucket_expr(dialect: Dialect, key: str, lo: int, width: int) -> str:
    """The bucket of an integer key: (key - lo) integer-divided by width (keys are >= lo)."""
    if dialect == "bigquery":
        return f"DIV(({key} - {lo}), {width})"
    if dialect == "mysql":
        return f"({key} - {lo}) DIV {width}"
    if dialect == "postgresql":
        return f"(({key})::bigint - {lo}) / {width}"
    return f"(CAST({key} AS INTEGER) - {lo}) / {width}"


@dataclass(frozen=True)
class Queries:
    """The SQL one side runs. `table` is quoted already; `scope` is an extra WHERE condition (the tag).

    Rows are bucketed by `key` (one integer column: key ranges) or, with `keys` (string / integer
    columns, or several: a text or composite key), by the 60-bit hash of the keys' canonical text,
    which every engine computes alike: ranges of that hash then play the part of key ranges.
    """

    dialect: Dialect
    table: str
    columns: tuple[VerifyColumn, ...]
    key: VerifyColumn | None
    dest: bool
    scope: str = "TRUE"
    keys: tuple[VerifyColumn, ...] = ()

    def _q(self, c: VerifyColumn) -> str:
        return quote(self.dialect, c.dest if self.dest else c.source)

    def _hash(self) -> str:
        """The row's hash: a 60-bit integer."""
        if self.dialect == "sqlite":
            return f"verify_row_int({', '.join(self._q(c) for c in self.columns)})"
        return hash_int(self.dialect, row_text(self.dialect, self.columns, dest=self.dest))

    def _bucket_key(self) -> str:
        """The integer the buckets divide: the key itself, or the hash of the keys' canonical text."""
        if self.keys:
            if self.dialect == "sqlite":
                return f"verify_key_int({', '.join(self._q(c) for c in self.keys)})"
            return hash_int(self.dialect, row_text(self.dialect, self.keys, dest=self.dest))
        assert self.key is not None
        return self._q(self.key)

    def _sums(self) -> str:
        # checksum = s1 * 2^32 + s2 = the sum of the hashes `h`. PostgreSQL and MySQL sum them whole (into
        # NUMERIC / DECIMAL, exact); BigQuery and SQLite in two halves (28 and 32 bits) that stay inside
        # 64-bit integers up to 2^31 rows.
        if self.dialect in ("postgresql", "mysql"):
            return "COUNT(*) AS n, 0 AS s1, SUM(h) AS s2"
        return "COUNT(*) AS n, SUM(h >> 32) AS s1, SUM(h & 4294967295) AS s2"

    def bounds(self) -> str:
        if self.keys:  # the whole hash range; no pass over the keys needed
            return f"SELECT 0 AS kmin, {HASH_MAX} AS kmax, COUNT(*) AS n FROM {self.table} WHERE {self.scope}"  # noqa: S608 - quote()d names, int() numbers
        k = self._q(self.key) if self.key else "NULL"
        return f"SELECT MIN({k}) AS kmin, MAX({k}) AS kmax, COUNT(*) AS n FROM {self.table} WHERE {self.scope}"  # noqa: S608 - quote()d names, int() numbers

    def total(self) -> str:
        inner = f"SELECT {self._hash()} AS h FROM {self.table} WHERE {self.scope}"  # noqa: S608 - quote()d names, int() numbers
        return f"SELECT {self._sums()} FROM ({inner}) x"  # noqa: S608 - quote()d names, int() numbers

    def _where(self, lo: int, within: tuple[int, list[int]] | None) -> str:
        k = self._bucket_key()
        if within is None:
            return self.scope if self.keys else f"{self.scope} AND {k} >= {int(lo)}"
        width, parents = within
        where = self.scope
        if not self.keys:
            # The key range around the parents first, so an index on the key narrows the scan.
            first, last = int(lo) + min(parents) * width, int(lo) + (max(parents) + 1) * width
            where += f" AND {k} >= {first} AND {k} < {last}"
        return where + f" AND {bucket_expr(self.dialect, k, lo, width)} IN ({', '.join(str(int(b)) for b in parents)})"

    def buckets(self, lo: int, width: int, within: tuple[int, list[int]] | None) -> str:
        bucket = bucket_expr(self.dialect, self._bucket_key(), lo, width)
        inner = f"SELECT {bucket} AS b, {self._hash()} AS h FROM {self.table} WHERE {self._where(lo, within)}"  # noqa: S608 - quote()d names, int() numbers
        return f"SELECT x.b AS b, {self._sums()} FROM ({inner}) x GROUP BY x.b"  # noqa: S608 - quote()d names, int() numbers

    def rows(self, lo: int, width: int, buckets: list[int]) -> str:
        """(b: the bucketed integer, k0..kn: the key columns' values, h: the row hash) of the buckets' rows."""
        keys = self.keys or ((self.key,) if self.key else ())
        cols = ", ".join(f"{self._q(c)} AS k{i}" for i, c in enumerate(keys))
        return (f"SELECT {self._bucket_key()} AS b, {cols}, {self._hash()} AS h FROM {self.table} "  # noqa: S608 - quote()d names, int() numbers
                f"WHERE {self._where(lo, (width, buckets))}")


# --- SQLite: the same normalisation in Python -----------------------------------------------------


def _strip(text: str) -> str:
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _decimal_text(value: Any, scale: int) -> str:
    number = value if isinstance(value, decimal.Decimal) else decimal.Decimal(str(value))
    rounded = number.quantize(decimal.Decimal(1).scaleb(-scale), rounding=decimal.ROUND_HALF_UP)
    if -SMALL < rounded < SMALL:
        return str(int(rounded.scaleb(scale)))
    return BIG_MARK + _strip(format(rounded, "f"))


def _days(value: Any) -> str:
    text = str(value).strip()[:10]
    try:
        return str((dt.date.fromisoformat(text) - _EPOCH.date()).days)
    except ValueError:
        return text  # not a date: compared as its text (and so shown as changed)


def _micros(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(int(round(value * 1_000_000)))
    text = str(value).strip().replace("Z", "+00:00")
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    delta = moment - _EPOCH
    return str((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


def py_normalise(kind: Kind, scale: int, value: Any) -> str:
    """A Python value (as SQLite stores it) as the canonical text of `kind`."""
    if value is None:
        return NULL_TEXT
    match kind:
        case "int":
            return str(int(value))
        case "numeric":
            return _decimal_text(value, scale)
        case "float":
            return _strip(format(float(value), f".{FLOAT_DECIMALS}f"))
        case "bool":
            if isinstance(value, str):
                return "1" if value.strip().lower() in ("1", "t", "true", "y", "yes") else "0"
            return "1" if value else "0"
        case "timestamp" | "datetime":
            return _micros(value)
        case "date":
            return _days(value)
        case "json":
            return _WS.sub("", value if isinstance(value, str) else str(value))
        case "bytes":
            return value.hex() if isinstance(value, bytes) else str(value).encode().hex()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def py_row_text(columns: tuple[VerifyColumn, ...], values: tuple[Any, ...]) -> str:
    return SEPARATOR.join(py_normalise(c.kind, c.scale, v) for c, v in zip(columns, values, strict=True))


def py_hash(text: str) -> int:
    """The 60-bit hash of a canonical text, as `hash_int` computes it in SQL."""
    return int(hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:HASH_HEX], 16)


def register_sqlite(conn: sqlite3.Connection, columns: tuple[VerifyColumn, ...],
                    keys: tuple[VerifyColumn, ...] = ()) -> None:
    """Register `verify_row_int(cols...)`, the row's 60-bit hash, and `verify_key_int(keys...)`, its keys'."""

    def row_int(*values: Any) -> int:
        return py_hash(py_row_text(columns, values))

    def key_int(*values: Any) -> int:
        return py_hash(py_row_text(keys, values))

    conn.create_function("verify_row_int", len(columns), row_int, deterministic=True)
    if keys:
        conn.create_function("verify_key_int", len(keys), key_int, deterministic=True)
