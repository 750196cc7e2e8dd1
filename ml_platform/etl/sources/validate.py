"""Data validation: how many source values would not survive the load into a BigQuery type.

`validate_columns` settles the `needs_validation` verdicts of the compatibility engine
(`ml_platform.etl.compatibility.narrowing_checks` says what to scan). Free of Django,
like the rest of `etl/sources/`, so it runs against real databases in tests.

How a table is scanned
- One set-based query per table counts, for every spec at once, the rows read, the
  values that fail the conversion and (for a REQUIRED destination) the NULLs. Only when
  something failed does a second query fetch up to 5 distinct failing values per
  column (from the first 1,000 failing rows, in text order). Nothing is looped over in
  Python.
- Tables the catalog estimates (`catalog.table_estimate`, the one estimate) at more
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

import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Float,
    Integer,
    case,
    column,
    create_engine,
    func,
    literal,
    literal_column,
    select,
    union_all,
)
from sqlalchemy import table as sa_table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from ml_platform.etl.compatibility import ValidationResult, ValidationSpec
from ml_platform.etl.errors import SourceError
from ml_platform.etl.sources.catalog import table_estimate
from ml_platform.etl.sources.describe import describe
from ml_platform.etl.sources.engines import ConnectionParams, build_url, connect_args, query_failed
from ml_platform.etl.sources.validate_sql import Builder, Expr, Target, builder_for
from ml_platform.etl.types import (
    BIGNUMERIC_MAX_INTEGER_DIGITS,
    BIGNUMERIC_MAX_SCALE,
    NUMERIC_MAX_INTEGER_DIGITS,
    NUMERIC_MAX_SCALE,
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
            resolved_schema, resolved_name, columns = describe(conn, kind, schema, table)
            builder = builder_for(conn, kind)
            scans = _plan_scans(specs, columns, builder)
            if not scans:
                return {}
            qualified_schema = resolved_schema if kind != "sqlite" or schema not in (None, "main") else None
            # SQLite's main schema is named by no schema at all.
            estimate = table_estimate(conn, kind, resolved_schema if kind != "sqlite" else qualified_schema,
                                      resolved_name)
            source = _Source(
                name=resolved_name,
                schema=qualified_schema,
                columns=tuple(dict.fromkeys(s.source.name for s in scans)),
                cap=None if estimate.rows is not None and estimate.rows <= sample_above else sample_above,
                percent=_block_percent(estimate.rows, estimate.pages, sample_above) if estimate.block_sampling else None,
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
        raise query_failed(exc, params) from None
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
    target: Target | None  # None: count NULLs only
    repeated: bool


def _plan_scans(specs: Sequence[ValidationSpec], columns: Sequence[SourceColumn], builder: Builder) -> list[_Scan]:
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


def _target(spec: ValidationSpec) -> Target | None:
    kind = standard_bigquery_type(spec.target_type)
    kind = _ALIASES.get(kind, kind)
    if kind not in _CHECKABLE:
        return None
    nan_null = spec.cast in _NAN_NULL_CASTS
    if kind not in ("NUMERIC", "BIGNUMERIC"):
        return Target(kind, nan_null=nan_null)
    precision, scale = spec.precision, spec.scale
    declared = _PARAMETERS.search(spec.target_type or "")
    if precision is None and declared:
        precision, scale = int(declared.group(1)), int(declared.group(2) or 0)
    rounds = spec.cast in _ROUNDING_CASTS
    if precision is not None:
        places = int(scale or 0)
        return Target(kind, max(int(precision) - places, 0), places, rounds, nan_null)
    if kind == "BIGNUMERIC":
        return Target(kind, BIGNUMERIC_MAX_INTEGER_DIGITS, BIGNUMERIC_MAX_SCALE, rounds, nan_null)
    return Target(kind, NUMERIC_MAX_INTEGER_DIGITS, NUMERIC_MAX_SCALE, rounds, nan_null)




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


def _count_statement(source: _Source, scans: Sequence[_Scan], builder: Builder) -> Any:
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
    conn: Connection, source: _Source, scans: Sequence[_Scan], builder: Builder, failing: Sequence[int]
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
