"""The compatibility engine's inputs and outputs (re-exported by `etl.compatibility`).

Pure data: what the caller passes (`CompatibilityOptions`, `ValidationResult`) and what the
engine answers (`CompatibilityReport` with its `ColumnReport` rows, `AlterAction` offers and
`ValidationSpec` scans), plus the small value helpers the engine's parts share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ml_platform.etl.types import BigQueryField, Family, SourceColumn, standard_bigquery_type

LoadStrategy = Literal["replace", "append", "incremental", "merge"]
Verdict = Literal["ok", "warning", "needs_validation", "error"]
AlterKind = Literal["add_column", "relax_required", "widen_type"]

LOAD_STRATEGIES: tuple[str, ...] = ("replace", "append", "incremental", "merge")
DEFAULT_TAG_COLUMN = "_source_tag"
CURSOR_REQUIRED = "Incremental loads need a cursor column."
KEY_REQUIRED = "Merge needs at least one key column."


def default_load_strategy(*, existing_table: bool) -> LoadStrategy:
    """The strategy a job gets when none is chosen.

    A new table holds only this job's rows, so Replace loses nothing. An existing table holds
    rows someone else put there: Append never deletes and needs no cursor guess (a wrong
    guessed cursor would silently skip rows), so it is the safe default there.
    """
    return "append" if existing_table else "replace"


def missing_strategy_choices(load_strategy: str, cursor_column: str | None, merge_key: object) -> dict[str, str]:
    """The one rule "incremental needs a cursor, merge needs a key": {field name: message} for what is missing."""
    problems: dict[str, str] = {}
    if load_strategy == "incremental" and not cursor_column:
        problems["cursor_column"] = CURSOR_REQUIRED
    if load_strategy == "merge" and not merge_key:
        problems["merge_key"] = KEY_REQUIRED
    return problems


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ValidationResult:
    """What a scan of one source column found (see `narrowing_checks`).

    `failures` counts values that do not convert to the target type, `null_failures`
    the NULLs found when the destination column is REQUIRED. `sampled` is True when
    only part of the table was read: a clean sample is evidence, not proof.
    """

    column: str
    checked_rows: int
    failures: int
    null_failures: int = 0
    examples: tuple[str, ...] = ()
    sampled: bool = False


@dataclass(frozen=True)
class CompatibilityOptions:
    load_strategy: str = default_load_strategy(existing_table=True)
    merge_key: tuple[str, ...] = ()
    cursor_column: str | None = None
    source_tag: str | None = None
    tag_column: str = DEFAULT_TAG_COLUMN
    relax_required: bool = False
    validation: Mapping[str, ValidationResult] = field(default_factory=dict)


# --------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class AlterAction:
    """A schema change BigQuery can make in place, offered to the user (never applied by the engine)."""

    kind: AlterKind
    column: str
    field_type: str
    mode: str = "NULLABLE"
    description: str = ""
    sql: str = ""
    precision: int | None = None
    scale: int | None = None
    from_type: str | None = None  # widen_type: the column's current type and parameters
    from_precision: int | None = None
    from_scale: int | None = None

    def to_field(self) -> BigQueryField:
        return BigQueryField(self.column, self.field_type, self.mode, precision=self.precision, scale=self.scale)


@dataclass(frozen=True)
class ColumnReport:
    """One row of the report: a source column, a destination-only column, or the source tag column."""

    source_name: str | None
    source_type: str | None
    destination_name: str | None
    destination_type: str | None
    destination_mode: str | None
    verdict: Verdict
    message: str
    fix: str | None = None


@dataclass(frozen=True)
class ValidationSpec:
    """A scan the I/O layer must run on the source before the verdict can be final.

    With `check_cast` the scan counts values of `column` that do not convert to
    `target_type` (each array element when `repeated`); with `check_nulls` it counts
    NULLs (the destination is REQUIRED). The result goes back in
    `CompatibilityOptions.validation`, keyed by the source column name.
    """

    column: str
    target_type: str
    check_nulls: bool
    check_cast: bool = True
    precision: int | None = None
    scale: int | None = None
    repeated: bool = False
    destination_column: str | None = None
    # The conformer's cast (type_rules) the scan must predict: e.g. "decimal_round" rounds extra
    # decimal places (only values too large after rounding fail), "parse" refuses them.
    cast: str | None = None


@dataclass
class CompatibilityReport:
    compatible: bool
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    can_alter: list[AlterAction] = field(default_factory=list)
    columns: list[ColumnReport] = field(default_factory=list)
    needs_validation: list[str] = field(default_factory=list)

    def column(self, name: str) -> ColumnReport | None:
        """The row for a source (or else destination) column, case-insensitively."""
        lowered = name.lower()
        for row in self.columns:
            if row.source_name is not None and row.source_name.lower() == lowered:
                return row
        for row in self.columns:
            if row.source_name is None and (row.destination_name or "").lower() == lowered:
                return row
        return None

    def to_dict(self) -> dict[str, Any]:
        """The API shape from the spec (`compatible, errors, warnings, can_alter`) plus per-column detail."""
        return {
            "compatible": self.compatible,
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "can_alter": [asdict(a) for a in self.can_alter],
            "columns": [asdict(c) for c in self.columns],
            "needs_validation": list(self.needs_validation),
        }


# --------------------------------------------------------------------------- shared helpers


@dataclass
class _Finding:
    verdict: Verdict
    message: str
    fix: str | None = None


@dataclass(frozen=True)
class _Dest:
    """A destination field with its type spelled the GoogleSQL way."""

    field: BigQueryField
    type: str
    mode: str

    @property
    def name(self) -> str:
        return self.field.name

    @property
    def label(self) -> str:
        return _type_label(self.type, self.field.precision, self.field.scale)


def _dest(f: BigQueryField) -> _Dest:
    mode = (f.mode or "NULLABLE").upper()
    if mode not in ("NULLABLE", "REQUIRED", "REPEATED"):
        mode = "NULLABLE"
    return _Dest(f, standard_bigquery_type(f.field_type), mode)


def _type_label(bq_type: str, precision: int | None, scale: int | None) -> str:
    if bq_type in ("NUMERIC", "BIGNUMERIC") and precision is not None:
        return f"{bq_type}({precision},{scale or 0})"
    return bq_type or "(no type)"


def _source_label(column: SourceColumn) -> str:
    if column.type.family is Family.UNKNOWN:
        return column.source_type or "UNKNOWN"
    return str(column.type)


def _fmt(n: int) -> str:
    return f"{n:,}"
