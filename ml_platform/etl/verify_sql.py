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
Python functions with the same normalisation. The SQL forms, the hash and the bucket of each dialect are
data: `verify_sql.toml` (next to this module, read once at import), one template per dialect and kind.

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
import string
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

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


# --- The per-dialect SQL: verify_sql.toml ---------------------------------------------------------


class _Forms(string.Formatter):
    """One dialect's table of `verify_sql.toml`: `{part}` renders a part of the table by name, and
    `{part:argument}` renders it with `{arg}` = the argument; every other field is a value passed in."""

    def __init__(self, table: Mapping[str, str]) -> None:
        self.table = table

    def get_value(self, key: int | str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if key in kwargs:
            return kwargs[key]
        part = self.table[str(key)]
        return lambda argument: self.vformat(part, args, {**kwargs, "arg": argument})

    def format_field(self, value: Any, format_spec: str) -> Any:
        return value(format_spec) if callable(value) else super().format_field(value, format_spec)

    def render(self, name: str, **fields: Any) -> str:
        return self.vformat(self.table[name], (), fields)

    def canonical(self, col: VerifyColumn, ref: str) -> str:
        """SQL: the canonical text of column `ref`."""
        form = next(f for f in (f"{col.kind}:{col.source_type}", col.kind, "text") if f in self.table)
        return self.render(form, ref=ref, scale=col.scale, ten_to_scale="1" + "0" * col.scale,
                           bound=_small_bound(col.scale), small=SMALL, mark=BIG_MARK, float_decimals=FLOAT_DECIMALS)


def _load_forms(path: Path) -> dict[str, _Forms]:
    forms = {dialect: _Forms(table) for dialect, table in tomllib.loads(path.read_text(encoding="utf-8")).items()}
    for dialect, table in forms.items():  # render each once: a misspelt field or part fails here, at import
        table.render("bucket", key="k", lo=0, width=1)
        if dialect != "sqlite":
            table.render("hash", value="v", hash_hex=HASH_HEX)
            refined = [tuple(key.split(":", 1)) for key in table.table if ":" in key]
            for kind, source_type in [(kind, "") for kind in get_args(Kind)] + refined:
                table.canonical(VerifyColumn("c", "c", kind, source_type=source_type), quote(dialect, "c"))
    return forms


_FORMS = _load_forms(Path(__file__).with_suffix(".toml"))


def row_text(dialect: Dialect, columns: tuple[VerifyColumn, ...], *, dest: bool) -> str:
    """SQL for the row's canonical text (not for SQLite, which hashes in Python)."""
    forms = _FORMS[dialect]
    # MySQL and BigQuery read a backslash in a string literal as an escape; PostgreSQL does not.
    null = NULL_TEXT if dialect == "postgresql" else NULL_TEXT.replace("\\", "\\\\")
    parts = [f"COALESCE({forms.canonical(c, quote(dialect, c.dest if dest else c.source))}, '{null}')" for c in columns]
    if dialect == "postgresql":
        return " || '|' || ".join(parts)
    if dialect == "bigquery":
        # One ARRAY_TO_STRING, not CONCAT: the emulator turns CONCAT into a chain of `||` that copies
        # the growing text once per column (twice the cost; bench/bench_verify.py).
        return "ARRAY_TO_STRING([" + ", ".join(parts) + "], '|')"
    return "CONCAT(" + ", '|', ".join(parts) + ")"


def hash_int(dialect: Dialect, text: str) -> str:
    """SQL: the first 15 hex digits of MD5(`text`) as a non-negative 60-bit integer."""
    if dialect == "sqlite":
        raise ValueError("SQLite hashes through verify_row_int()")
    return _FORMS[dialect].render("hash", value=text, hash_hex=HASH_HEX)


def bucket_expr(dialect: Dialect, key: str, lo: int, width: int) -> str:
    """The bucket of an integer key: (key - lo) integer-divided by width (keys are >= lo)."""
    return _FORMS[dialect].render("bucket", key=key, lo=lo, width=width)


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
