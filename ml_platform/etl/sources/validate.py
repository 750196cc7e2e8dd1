"""Data validation: how many source values would not survive the load into a BigQuery type.

`validate_columns` settles the `needs_validation` verdicts of the compatibility engine
(`ml_platform.etl.compatibility.narrowing_checks` says what to scan). Free of Django,
like `connection_manager`, so it runs against real databases in tests.

How a table is scanned
- One set-based query per table counts, for every spec at once, the rows read, the
  values that fail the conversion and (for a REQUIRED destination) the NULLs. Only when
  something failed does a second query fetch up to 5 distinct failing values per
  column (from the first 1,000 failing rows, in text order). Nothing is looped over in
  Python.
- Tables the catalog estimates (as `connection_manager.list_tables` does) at more
  than `sample_above` rows are sampled: PostgreSQL reads `TABLESAMPLE SYSTEM` blocks
  (with a fixed seed, so both queries see the same rows) when the table has enough
  pages for block sampling to mean anything; otherwise, and on MariaDB/SQLite, the
  scan stops after `sample_above` rows (`LIMIT`). A table with no estimate (never
  analysed, a view) gets the same cap. `sampled` is True when the scan did not read
  every row: always for block sampling, and for a capped scan when the cap was
  reached. `checked_rows` is the number of rows read.
- Identifiers reach SQL only through `sqlalchemy.table()/column()`, quoted by the
  dialect; every literal (patterns, bounds) is a bound parameter.
- Reads run in a read-only transaction (REPEATABLE READ on PostgreSQL) on a
  connection of their own, with a longer statement timeout than interactive reads.
  Database errors become `SourceError` with the password scrubbed.

What "fails" means: what `ml_platform.etl.conform` (the runner's cast step) would
reject, so a clean validation predicts a clean load:
- INT64: text must be an optional '-' and decimal digits (surrounding whitespace
  allowed; '+', hexadecimal, '1e3' and '2.0' fail) within the INT64 range. A float
  or decimal value must be whole and in range: 2.0 converts to 2, 1.5 fails, and so
  do NaN and infinities.
- FLOAT64: text must be a decimal/scientific number, or inf/infinity/nan in any
  case ('1e400' converts, to infinity, as the cast step does).
- NUMERIC / BIGNUMERIC (or NUMERIC(P, S) when the spec carries precision): at most
  29 (38; P - S) whole digits, and decimal places beyond 9 (38; S) fail only when
  they would lose digits: '1.1234567890' fits NUMERIC, '1.1234567891' does not.
  Text may use an exponent. Exact (string arithmetic) for text and decimal sources;
  a float source only fails on NaN, infinity or magnitude (its extra places are
  rounded by the cast step, not rejected).
- BOOL: text true/false, t/f, yes/no, y/n, 1/0, on/off in any case; numbers 0 and 1.
- DATE: text 'YYYY-MM-DD' that is a real calendar day in years 1-9999; a timestamp
  source fails when its time of day (UTC for a zoned one) is not midnight.
- DATETIME / TIMESTAMP: text 'YYYY-MM-DD' optionally followed by 'T' or a space and
  HH[:MM[:SS[.ffffff]]] and a zone Z, ±HH, ±HHMM or ±HH:MM, hours 00-23; typed
  dates/timestamps fail outside years 1-9999 (PostgreSQL infinity, MySQL zero dates).
- TIME: text HH[:MM[:SS[.ffffff]]]; a typed time fails outside 00:00-23:59:59.999999
  (PostgreSQL 24:00, MySQL negative or >24h durations).
- JSON: text must be valid JSON (MariaDB JSON_VALID, SQLite json_valid, PostgreSQL
  16+ pg_input_is_valid). PostgreSQL 15 and older have no error-free JSON parser, so
  they use a shape check: a JSON scalar, or text that starts with '{'/'[' and ends
  with the matching bracket (the inside is not parsed).
- STRING from BYTES: the bytes must be UTF-8. SQLite cannot test that in SQL, so a
  blob with any non-ASCII byte is reported there (a possible false alarm, never a
  miss).
- Dates in text are checked against the calendar with plain arithmetic; on
  PostgreSQL 16+ `pg_input_is_valid(text, 'date')` does it instead.
- `failures` counts non-NULL values that fail; NULLs count only in `null_failures`,
  and only when the spec's `check_nulls` is set. A repeated (array) spec counts array
  elements, and a NULL element is a failure (BigQuery arrays cannot hold NULL).
- A spec this module cannot check (GEOGRAPHY, INTERVAL and other targets the cast
  step does not handle, arrays outside PostgreSQL) is left out of the result, so the
  compatibility verdict stays `needs_validation` instead of claiming a clean scan.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Date,
    Engine,
    Float,
    Integer,
    Numeric,
    String,
    Text,
    Time,
    and_,
    case,
    cast,
    column,
    create_engine,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy import table as sa_table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.elements import ColumnElement

from ml_platform.etl.compatibility import ValidationResult, ValidationSpec
from ml_platform.etl.sources.engines import (
    ConnectionParams,
    SourceError,
    _describe,
    _guard,
    build_url,
    connect_args,
    describe_error,
)
from ml_platform.etl.types import (
    BIGNUMERIC_MAX_INTEGER_DIGITS,
    BIGNUMERIC_MAX_SCALE,
    NUMERIC_MAX_INTEGER_DIGITS,
    NUMERIC_MAX_SCALE,
    CanonicalType,
    Family,
    SourceColumn,
    standard_bigquery_type,
)

__all__ = ["VALIDATION_TIMEOUT_S", "ValidationResult", "ValidationSpec", "validate_columns"]

# A validation scan reads up to `sample_above` rows: allow it more time than a preview.
VALIDATION_TIMEOUT_S = 120  # = ETL_VALIDATION_TIMEOUT's default: a web request waits for it
MAX_EXAMPLES = 5
# Examples are drawn from the first failing rows only, so a column full of bad
# values costs a bounded read, not a sort of every failure.
EXAMPLE_SCAN_ROWS = 1000
MAX_EXAMPLE_CHARS = 200
# Below this many pages TABLESAMPLE SYSTEM picks all or nothing of a few blocks.
BLOCK_SAMPLE_MIN_PAGES = 100
_SAMPLE_SEED = 20240601

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_TWO_63 = float(2**63)
# Text the cast step would parse: the whitespace it trims (Arrow's utf8_trim_whitespace, ASCII part).
_WHITESPACE = " \t\n\r\x0b\x0c"

_ALIASES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "DECIMAL": "NUMERIC", "BIGDECIMAL": "BIGNUMERIC"}
_CHECKABLE = frozenset(
    {
        "INT64",
        "FLOAT64",
        "NUMERIC",
        "BIGNUMERIC",
        "BOOL",
        "DATE",
        "DATETIME",
        "TIMESTAMP",
        "TIME",
        "JSON",
        "STRING",
        "BYTES",
    }
)
_ROUNDING_CASTS = frozenset({"decimal_round", "float_to_decimal", "decimal_round_nan_null"})
# PostgreSQL numeric 'NaN' loads as NULL with these casts (type_rules): it does not fail.
_NAN_NULL_CASTS = frozenset({"decimal_round_nan_null", "decimal_to_int_nan_null"})
_PARAMETERS = re.compile(r"\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")

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
class _Target:
    """A spec's target type with the digit limits of NUMERIC/BIGNUMERIC."""

    kind: str
    whole_digits: int = 0
    places: int = 0
    # The cast rounds extra decimal places (type_rules "decimal_round"/"float_to_decimal"):
    # only values too large once rounded fail, not the ones with more places.
    rounds: bool = False
    nan_null: bool = False  # a PostgreSQL numeric 'NaN' loads as NULL


# --- entry point ------------------------------------------------------------------


def validate_columns(
    params: ConnectionParams,
    schema: str | None,
    table: str,
    specs: Sequence[ValidationSpec],
    *,
    sample_above: int = 1_000_000,
) -> dict[str, ValidationResult]:
    """Scan `schema.table` once and report, per spec (keyed by `spec.column`), what would not load.

    Specs this module cannot check are left out of the result (see the module notes).
    """
    if sample_above < 1:
        raise ValueError("sample_above must be at least 1")
    specs = list(specs)
    if not specs:
        return {}
    seen: set[str] = set()
    for spec in specs:
        if spec.column in seen:
            raise ValueError(f"Column {spec.column!r} appears in more than one spec")
        seen.add(spec.column)
    kind = params.dialect
    try:
        with _read_only(params) as conn:
            resolved_schema, resolved_name, columns = _describe(conn, kind, schema, table)
            builder = _builder(conn, kind)
            scans = _plan_scans(specs, columns, builder)
            if not scans:
                return {}
            qualified_schema = resolved_schema if kind != "sqlite" or schema not in (None, "main") else None
            estimate, pages, block_sampling = _estimate(conn, kind, resolved_schema, resolved_name, schema)
            source = _Source(
                name=resolved_name,
                schema=qualified_schema,
                columns=tuple(dict.fromkeys(s.source.name for s in scans)),
                cap=None if estimate is not None and estimate <= sample_above else sample_above,
                percent=_block_percent(estimate, pages, sample_above) if block_sampling else None,
            )
            counts = conn.execute(_count_statement(source, scans, builder)).one()
            checked = int(counts[0] or 0)
            sampled = source.percent is not None or (source.cap is not None and checked >= source.cap)
            failures = [int(counts[1 + 2 * i] or 0) for i in range(len(scans))]
            nulls = [int(counts[2 + 2 * i] or 0) for i in range(len(scans))]
            failing = [i for i, n in enumerate(failures) if n]
            examples = _examples(conn, source, scans, builder, failing) if failing else {}
    except SourceError:
        raise
    except (SQLAlchemyError, OSError) as exc:
        # `from None`: the chained driver exception may quote the DSN in a traceback.
        raise SourceError(describe_error(exc, params)) from None
    return {
        scan.spec.column: ValidationResult(
            column=scan.spec.column,
            checked_rows=checked,
            failures=failures[i],
            null_failures=nulls[i] if scan.spec.check_nulls else 0,
            examples=tuple(examples.get(i, ())),
            sampled=sampled,
        )
        for i, scan in enumerate(scans)
    }


# --- connection -------------------------------------------------------------------


@contextmanager
def _read_only(params: ConnectionParams) -> Iterator[Connection]:
    """A fresh (unpooled) read-only connection, so session settings never leak into the shared pool."""
    kind = params.dialect
    args = connect_args(params)
    if kind == "mysql" and "read_timeout" not in params.options:
        args["read_timeout"] = VALIDATION_TIMEOUT_S
    engine: Engine = create_engine(build_url(params), connect_args=args, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if kind == "postgresql":
                # Both queries see one snapshot, so the examples come from the rows counted.
                conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(VALIDATION_TIMEOUT_S * 1000)}")
            elif kind == "mysql":
                # TIMESTAMP values are read in UTC, as the runner reads them.
                conn.exec_driver_sql("SET time_zone = '+00:00'")
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            else:
                _sqlite_deadline(conn, time.monotonic() + VALIDATION_TIMEOUT_S)
            yield conn
    finally:
        engine.dispose()


def _sqlite_deadline(conn: Connection, deadline: float) -> None:
    """SQLite has no statement timeout: interrupt a statement still running at the deadline."""
    driver = conn.connection.driver_connection
    driver.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 100_000)


# --- planning ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Scan:
    spec: ValidationSpec
    source: SourceColumn
    target: _Target | None  # None: count NULLs only
    repeated: bool


def _plan_scans(specs: Sequence[ValidationSpec], columns: Sequence[SourceColumn], builder: _Builder) -> list[_Scan]:
    by_name = {c.name: c for c in columns}
    by_lower: dict[str, list[SourceColumn]] = {}
    for c in columns:
        by_lower.setdefault(c.name.lower(), []).append(c)
    scans: list[_Scan] = []
    missing: list[str] = []
    for spec in specs:
        source = by_name.get(spec.column)
        if source is None:
            candidates = by_lower.get(spec.column.lower(), [])
            source = candidates[0] if len(candidates) == 1 else None
        if source is None:
            missing.append(spec.column)
            continue
        check_cast = spec.check_cast
        repeated = spec.repeated and check_cast
        target = _target(spec) if check_cast else None
        if check_cast and (target is None or not builder.can_check(source.type, target, repeated)):
            continue  # left out: the verdict stays "needs validation"
        scans.append(_Scan(spec, source, target, repeated))
    if missing:
        raise SourceError(f"Column{'s' if len(missing) > 1 else ''} not found: {', '.join(repr(m) for m in missing)}")
    return scans


def _target(spec: ValidationSpec) -> _Target | None:
    kind = standard_bigquery_type(spec.target_type)
    kind = _ALIASES.get(kind, kind)
    if kind not in _CHECKABLE:
        return None
    nan_null = spec.cast in _NAN_NULL_CASTS
    if kind not in ("NUMERIC", "BIGNUMERIC"):
        return _Target(kind, nan_null=nan_null)
    precision, scale = spec.precision, spec.scale
    declared = _PARAMETERS.search(spec.target_type or "")
    if precision is None and declared:
        precision, scale = int(declared.group(1)), int(declared.group(2) or 0)
    rounds = spec.cast in _ROUNDING_CASTS
    if precision is not None:
        places = int(scale or 0)
        return _Target(kind, max(int(precision) - places, 0), places, rounds, nan_null)
    if kind == "BIGNUMERIC":
        return _Target(kind, BIGNUMERIC_MAX_INTEGER_DIGITS, BIGNUMERIC_MAX_SCALE, rounds, nan_null)
    return _Target(kind, NUMERIC_MAX_INTEGER_DIGITS, NUMERIC_MAX_SCALE, rounds, nan_null)


def _estimate(
    conn: Connection, kind: str, schema: str | None, name: str, requested_schema: str | None
) -> tuple[int | None, int | None, bool]:
    """(estimated rows, pages, block sampling possible) from catalog statistics, never a COUNT(*)."""
    if kind == "postgresql":
        row = conn.execute(
            text(
                """
                SELECT c.relkind,
                       CASE WHEN c.relkind = 'p' THEN (
                                SELECT sum(leaf.reltuples) FILTER (WHERE leaf.reltuples >= 0)
                                FROM pg_partition_tree(c.oid) tree JOIN pg_class leaf ON leaf.oid = tree.relid
                                WHERE tree.isleaf)
                            ELSE c.reltuples END,
                       CASE WHEN c.relkind = 'p' THEN (
                                SELECT sum(leaf.relpages)
                                FROM pg_partition_tree(c.oid) tree JOIN pg_class leaf ON leaf.oid = tree.relid
                                WHERE tree.isleaf)
                            ELSE c.relpages END
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = :schema AND c.relname = :name
                """
            ),
            {"schema": schema, "name": name},
        ).first()
        if row is None:
            return None, None, False
        relkind, tuples, pages = row
        # reltuples is -1 until the table is first vacuumed/analysed: unknown, not empty.
        estimate = int(tuples) if tuples is not None and tuples >= 0 and relkind not in ("v", "f") else None
        return estimate, int(pages or 0), relkind in ("r", "m", "p")
    if kind == "mysql":
        row = conn.execute(
            text(
                "SELECT TABLE_TYPE, TABLE_ROWS FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = :schema AND TABLE_NAME = :name"
            ),
            {"schema": schema, "name": name},
        ).first()
        if row is None or row[1] is None or "VIEW" in str(row[0]).upper():
            return None, None, False
        return int(row[1]), None, False
    return (
        _sqlite_estimate(conn, requested_schema if requested_schema not in (None, "main") else None, name),
        None,
        False,
    )


def _sqlite_estimate(conn: Connection, schema: str | None, name: str) -> int | None:
    master = sa_table("sqlite_master", column("type"), column("name"), schema=schema or "main")
    kind = conn.execute(select(master.c.type).where(master.c.name == name)).scalar()
    if kind != "table":
        return None
    has_stats = conn.execute(
        select(master.c.name).where(master.c.type == "table", master.c.name == "sqlite_stat1")
    ).first()
    if has_stats:
        stat1 = sa_table("sqlite_stat1", column("tbl"), column("stat"), schema=schema or "main")
        estimates = [
            int(str(stat).split(" ", 1)[0])
            for (stat,) in conn.execute(select(stat1.c.stat).where(stat1.c.tbl == name))
            if str(stat or "").split(" ", 1)[0].isdigit()
        ]
        if estimates:
            return max(estimates)
    # max(rowid) is one b-tree seek; it overestimates after deletes, which errs towards sampling.
    try:
        with _guard(conn):
            value = conn.execute(select(func.max(column("rowid"))).select_from(sa_table(name, schema=schema))).scalar()
    except SQLAlchemyError:
        return None  # WITHOUT ROWID
    return int(value) if value is not None else 0


def _block_percent(estimate: int | None, pages: int | None, sample_above: int) -> float | None:
    """The TABLESAMPLE SYSTEM percentage for about `sample_above` rows, or None when a LIMIT scan is better."""
    if estimate is None or estimate <= sample_above or (pages or 0) < BLOCK_SAMPLE_MIN_PAGES:
        return None
    # A little over the target, the LIMIT trims the rest.
    percent = 100.0 * sample_above * 1.1 / estimate
    return percent if percent < 100.0 else None


# --- queries ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    name: str
    schema: str | None
    columns: tuple[str, ...]
    cap: int | None
    percent: float | None

    def sample(self) -> Any:
        """A fresh subquery over the rows to check, each source column labelled c0, c1..."""
        base = sa_table(self.name, *(column(c) for c in self.columns), schema=self.schema)
        origin: Any = base
        if self.percent is not None:
            origin = base.tablesample(func.system(literal(self.percent, Float)), seed=literal_column(str(_SAMPLE_SEED)))
        statement = select(*(origin.c[c].label(f"c{i}") for i, c in enumerate(self.columns))).select_from(origin)
        if self.cap is not None:
            statement = statement.limit(self.cap)
        return statement.subquery()

    def ref(self, sample: Any, name: str) -> Any:
        return sample.c[f"c{self.columns.index(name)}"]


def _count_statement(source: _Source, scans: Sequence[_Scan], builder: _Builder) -> Any:
    sample = source.sample()
    aggregates: list[Any] = [func.count().label("checked")]
    for i, scan in enumerate(scans):
        value = source.ref(sample, scan.source.name)
        if scan.target is None:
            failing: Expr = literal(0, Integer)
        elif scan.repeated:
            failing = builder.failing_elements(value, scan.source.type, scan.target)
        else:
            failing = case((value.is_(None), 0), (builder.value_ok(value, scan.source.type, scan.target), 0), else_=1)
        aggregates.append(func.sum(failing).label(f"f{i}"))
        aggregates.append(func.sum(case((value.is_(None), 1), else_=0)).label(f"n{i}"))
    return select(*aggregates).select_from(sample)


def _examples(
    conn: Connection, source: _Source, scans: Sequence[_Scan], builder: _Builder, failing: Sequence[int]
) -> dict[int, list[str]]:
    branches = []
    for i in failing:
        scan = scans[i]
        assert scan.target is not None
        sample = source.sample()
        value = source.ref(sample, scan.source.name)
        if scan.repeated:
            rows = builder.failing_element_values(sample, value, scan.source.type, scan.target)
        else:
            ok = builder.value_ok(value, scan.source.type, scan.target)
            rows = (
                select(builder.as_text(value).label("ex"))
                .select_from(sample)
                .where(value.is_not(None), case((ok, 0), else_=1) == 1)
            )
        first = rows.limit(EXAMPLE_SCAN_ROWS).subquery()
        distinct = select(first.c.ex).distinct().order_by(first.c.ex).limit(MAX_EXAMPLES).subquery()
        branches.append(select(literal(i, Integer).label("k"), distinct.c.ex))
    statement = branches[0] if len(branches) == 1 else union_all(*branches)
    found: dict[int, list[str]] = {}
    for key, value in conn.execute(statement):
        found.setdefault(int(key), []).append(_example_text(value))
    return {k: sorted(v)[:MAX_EXAMPLES] for k, v in found.items()}


def _example_text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, memoryview):
        value = value.tobytes()
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    value = str(value)
    return value if len(value) <= MAX_EXAMPLE_CHARS else value[:MAX_EXAMPLE_CHARS] + "…"


# --- expression builders ----------------------------------------------------------


def _builder(conn: Connection, kind: str) -> _Builder:
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


def _digits_fit(b: _Builder, digits: Expr, whole_length: Expr, exponent: Expr, target: _Target) -> Expr:
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


def _int_digits_fit(b: _Builder, digits: Expr, negative: Expr) -> Expr:
    """`digits` (decimal, no sign) is within INT64 for the sign given."""
    significant = b.ltrim_zeros(digits)
    limit = case((negative, str(-INT64_MIN)), else_=str(INT64_MAX))
    return case(
        (b.length(significant) < 19, true()),
        (b.length(significant) == 19, significant <= limit),
        else_=false(),
    )


class _Builder:
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
    def can_check(self, source: CanonicalType, target: _Target, repeated: bool) -> bool:
        return not repeated

    def failing_elements(self, value: Expr, source: CanonicalType, target: _Target) -> Expr:
        raise NotImplementedError

    def failing_element_values(self, sample: Any, value: Expr, source: CanonicalType, target: _Target) -> Any:
        raise NotImplementedError

    def value_ok(self, x: Expr, source: CanonicalType, target: _Target) -> Expr:
        raise NotImplementedError


class _RegexBuilder(_Builder):
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
    def value_ok(self, x: Expr, source: CanonicalType, target: _Target) -> Expr:
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
            if kind == "BOOL":
                return x.in_([0, 1])
            if kind == "FLOAT64":
                return true()
            if kind == "JSON":
                return self.float_bounds_ok(x)
        if family is Family.FLOAT:
            if kind == "INT64":
                # NaN compares greater than everything in PostgreSQL, so it fails the range.
                return case((and_(x >= -_TWO_63, x < _TWO_63), x == func.floor(x)), else_=false())
            if kind in ("NUMERIC", "BIGNUMERIC"):
                return func.abs(x) < float(10**target.whole_digits)
            if kind == "BOOL":
                return x.in_([0.0, 1.0])
            if kind == "FLOAT64":
                return true()
            if kind == "JSON":
                return self.float_bounds_ok(x)
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

    def text_ok(self, t: Expr, target: _Target) -> Expr:
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

    def can_check(self, source: CanonicalType, target: _Target, repeated: bool) -> bool:
        return not repeated or source.family is Family.ARRAY

    def _elements(self, value: Expr) -> Any:
        return func.unnest(value).table_valued("v").render_derived(name="e")

    def failing_elements(self, value: Expr, source: CanonicalType, target: _Target) -> Expr:
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

    def failing_element_values(self, sample: Any, value: Expr, source: CanonicalType, target: _Target) -> Any:
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


class _SQLite(_Builder):
    """SQLite: values keep their own storage class, so checks dispatch on typeof(), with GLOB for text."""

    name = "sqlite"

    def as_text(self, x: Expr) -> Expr:
        # A blob need not be UTF-8: show it as a hex literal rather than fail to decode it.
        hex_literal = self.concat(self.concat(literal("x'"), func.hex(x, type_=String)), literal("'"))
        return case((func.typeof(x) == "blob", hex_literal), else_=cast(x, Text))

    def length(self, x: Expr) -> Expr:
        return func.length(x)

    def value_ok(self, x: Expr, source: CanonicalType, target: _Target) -> Expr:
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

    def _decimal_text_ok(self, t: Expr, target: _Target) -> Expr:
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
