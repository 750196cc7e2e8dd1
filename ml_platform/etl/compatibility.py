"""Can these source columns be loaded into that BigQuery table? The rules engine behind every answer.

`check_compatibility` is a pure function of the selected source columns, the
destination's schema and the job's options: the wizard, Edit, Reconnect, the JSON
API and the job-creation service all call it, so the same input always gets the
same verdict. It never raises on well-typed input, however odd: a report that
says "error" is useful to a user, a traceback is not.

How columns are matched: by name, case-insensitively (BigQuery names are). A
source column whose own name is not in the table is looked up under the name a
new table would give it (`normalize_column_names`, the runner's default mapping),
so a table this product created from `Order ID` (column `Order_ID`) still matches.
`ColumnReport.destination_name` is the resulting mapping; callers should load by it.

Every fix offered in `can_alter` is one BigQuery applies in place to a table with
data (add a NULLABLE/REPEATED column, relax REQUIRED to NULLABLE, the few allowed
SET DATA TYPE widenings); anything else would mean recreating the table, which is
never offered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ml_platform.etl.type_rules import UNLOADABLE_TYPES, rule_for
from ml_platform.etl.types import (
    BIGNUMERIC_MAX_INTEGER_DIGITS,
    BIGNUMERIC_MAX_SCALE,
    NUMERIC_MAX_INTEGER_DIGITS,
    NUMERIC_MAX_SCALE,
    BigQueryField,
    CanonicalType,
    Family,
    SourceColumn,
    TableSchema,
    bigquery_type_for,
    normalize_column_names,
    standard_bigquery_type,
)

LoadStrategy = Literal["replace", "append", "incremental", "merge"]
Verdict = Literal["ok", "warning", "needs_validation", "error"]
AlterKind = Literal["add_column", "relax_required", "widen_type"]

LOAD_STRATEGIES: tuple[str, ...] = ("replace", "append", "incremental", "merge")
DEFAULT_TAG_COLUMN = "_source_tag"

_SEVERITY: dict[str, int] = {"ok": 0, "warning": 1, "needs_validation": 2, "error": 3}
# Cursor columns must sort the way the data grows; FLOAT64 is left out on purpose
# (equal-looking values compare unequal and the watermark could skip rows).
_ORDERABLE_SOURCE_FAMILIES = frozenset({Family.INTEGER, Family.DECIMAL, Family.DATE, Family.TIMESTAMP})
_ORDERABLE_DESTINATION_TYPES = frozenset({"INT64", "NUMERIC", "BIGNUMERIC", "DATE", "DATETIME", "TIMESTAMP"})
# MERGE ... ON compares keys with `=`, which BigQuery refuses for these types.
_UNCOMPARABLE_KEY_TYPES = frozenset({"JSON", "GEOGRAPHY", "RECORD"})
_COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")
_MAX_EXAMPLES = 5


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
    load_strategy: str = "append"
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


# --------------------------------------------------------------------------- public helpers


def destination_column_names(source_columns: Sequence[SourceColumn]) -> list[str]:
    """The names a new table gives these columns (the runner's default mapping)."""
    return normalize_column_names([c.name for c in source_columns])


def schema_for_new_table(
    source_columns: Sequence[SourceColumn], *, tag_column: str | None = None
) -> tuple[BigQueryField, ...]:
    """The BigQuery schema "Create new table" uses: one field per source column, in order.

    Every field is NULLABLE (arrays REPEATED), even for NOT NULL source columns:
    BigQuery can relax REQUIRED later but never tighten it, a second source loading
    into the same table (multi-source, Reconnect) may allow NULLs where the first did
    not, and REQUIRED buys nothing for an analytics copy. That choice is also what
    makes a source always compatible with the table created from its own mapping.
    Pass `tag_column` to append the multi-source tag column.
    """
    names = destination_column_names(source_columns)
    fields: list[BigQueryField] = []
    for column, name in zip(source_columns, names, strict=True):
        field_type, mode = bigquery_type_for(column.type)
        description = None
        if name != column.name:
            description = f"Source column {column.name!r}"[:1024]
        fields.append(BigQueryField(name, field_type, mode, description=description))
    if tag_column:
        fields.append(BigQueryField(tag_column, "STRING", "NULLABLE", description="Source tag of the loading job"))
    return tuple(fields)


def narrowing_checks(
    source_columns: Sequence[SourceColumn],
    destination: TableSchema,
    options: CompatibilityOptions | None = None,
) -> list[ValidationSpec]:
    """The source scans that would settle every `needs_validation` (and REQUIRED-vs-nullable) verdict."""
    base = options or CompatibilityOptions()
    unvalidated = CompatibilityOptions(
        load_strategy=base.load_strategy,
        merge_key=base.merge_key,
        cursor_column=base.cursor_column,
        source_tag=base.source_tag,
        tag_column=base.tag_column,
        relax_required=base.relax_required,
        validation={},
    )
    engine = _Engine(source_columns, destination, unvalidated)
    engine.run()
    return list(engine.specs.values())


def check_compatibility(
    source_columns: Sequence[SourceColumn],
    destination: TableSchema,
    options: CompatibilityOptions | None = None,
) -> CompatibilityReport:
    """Compare the selected source columns with an existing BigQuery table. Pure; never raises."""
    return _Engine(source_columns, destination, options or CompatibilityOptions()).run()


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
    to_whole, to_places = _digits(b, to_precision, to_scale)
    if a == "INT64":
        return to_whole >= 19
    if a not in ("NUMERIC", "BIGNUMERIC") or (a == "BIGNUMERIC" and b == "NUMERIC"):
        return False
    from_whole, from_places = _digits(a, from_precision, from_scale)
    same = (a, from_whole, from_places) == (b, to_whole, to_places)
    return not same and to_whole >= from_whole and to_places >= from_places


def _digits(bq_type: str, precision: int | None, scale: int | None) -> tuple[int, int]:
    """(whole digits, decimal places) of a NUMERIC/BIGNUMERIC type, parameterized or not."""
    if precision is not None:
        places = scale or 0
        return precision - places, places
    if bq_type == "BIGNUMERIC":
        return BIGNUMERIC_MAX_INTEGER_DIGITS, BIGNUMERIC_MAX_SCALE
    return NUMERIC_MAX_INTEGER_DIGITS, NUMERIC_MAX_SCALE


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


# --------------------------------------------------------------------------- the engine


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


def _quote(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _fmt(n: int) -> str:
    return f"{n:,}"


class _Engine:
    def __init__(
        self, source_columns: Sequence[SourceColumn], destination: TableSchema, options: CompatibilityOptions
    ) -> None:
        self.sources = list(source_columns)
        self.destination = destination
        self.options = options
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.actions: dict[tuple[str, str], AlterAction] = {}
        self.rows: list[ColumnReport] = []
        self.needs_validation: list[str] = []
        self.specs: dict[str, ValidationSpec] = {}
        self.validation = {str(k).lower(): v for k, v in (options.validation or {}).items()}
        self.tag = options.source_tag or None
        self.tag_column = options.tag_column or DEFAULT_TAG_COLUMN
        self.table_ref = f"{_quote(destination.dataset)}.{_quote(destination.table)}"
        self.dest_index: dict[str, _Dest] = {}
        self.mapped: dict[str, _Dest | None] = {}  # source name (lower) -> destination field
        self.by_source: dict[str, SourceColumn] = {}
        self.claimed: dict[str, str] = {}  # destination name (lower) -> the source column filling it

    # -- bookkeeping

    def _offer(self, action: AlterAction) -> None:
        # Belt and braces: whatever the rules above decided, nothing outside BigQuery's
        # in-place limits is ever offered.
        if not action_within_bigquery_limits(action):
            return
        self.actions.setdefault((action.kind, action.column.lower()), action)

    def _row(
        self,
        *,
        source: SourceColumn | None,
        source_type: str | None,
        dest_name: str | None,
        dest_type: str | None,
        dest_mode: str | None,
        findings: list[_Finding],
        subject: str,
    ) -> ColumnReport:
        if not findings:
            findings = [_Finding("ok", "Compatible.")]
        verdict: Verdict = max((f.verdict for f in findings), key=lambda v: _SEVERITY[v])
        for f in findings:
            if f.verdict == "error":
                self.errors.append(f"{subject}: {f.message}")
            elif f.verdict != "ok":
                # needs_validation is listed with the warnings too, so an API client that reads
                # only errors/warnings still learns why `compatible` is false.
                self.warnings.append(f"{subject}: {f.message}")
        # Listed even when another finding makes the column an error: a scan can still settle
        # this part, and the user should see both.
        if source is not None and any(f.verdict == "needs_validation" for f in findings):
            self.needs_validation.append(source.name)
        fixes = [f.fix for f in findings if f.fix]
        row = ColumnReport(
            source_name=source.name if source is not None else None,
            source_type=source_type,
            destination_name=dest_name,
            destination_type=dest_type,
            destination_mode=dest_mode,
            verdict=verdict,
            message=" ".join(f.message for f in findings if f.message),
            fix=" ".join(dict.fromkeys(fixes)) or None,
        )
        self.rows.append(row)
        return row

    # -- the run

    def run(self) -> CompatibilityReport:
        self._check_options()
        self._index_destination()
        if not self.sources:
            self.errors.append("No source columns are selected: choose at least one column to load.")
        self._match_and_check_columns()
        self._check_destination_only_columns()
        self._check_source_tag()
        self._check_strategy()
        return CompatibilityReport(
            compatible=not self.errors and not self.needs_validation,
            errors=list(dict.fromkeys(self.errors)),
            warnings=list(dict.fromkeys(self.warnings)),
            can_alter=list(self.actions.values()),
            columns=self.rows,
            needs_validation=self.needs_validation,
        )

    def _check_options(self) -> None:
        if self.options.load_strategy not in LOAD_STRATEGIES:
            self.errors.append(
                f"Unknown load strategy {self.options.load_strategy!r}: choose one of {', '.join(LOAD_STRATEGIES)}."
            )
        if self.tag is not None and not _COLUMN_NAME.match(self.tag_column):
            self.errors.append(
                f"The source tag column name {self.tag_column!r} is not a valid BigQuery column name "
                "(letters, digits and underscores, not starting with a digit)."
            )

    def _index_destination(self) -> None:
        seen: dict[str, str] = {}
        for f in self.destination.fields:
            key = f.name.lower()
            if key in seen:
                self.errors.append(
                    f"The destination lists columns {seen[key]!r} and {f.name!r}, which BigQuery treats as the same "
                    "name; re-read the table schema."
                )
                continue
            seen[key] = f.name
            self.dest_index[key] = _dest(f)

    def _match_and_check_columns(self) -> None:
        planned = destination_column_names(self.sources)
        owner_of_planned = {name.lower(): i for i, name in enumerate(planned)}
        claimed = self.claimed
        first_by_name: dict[str, str] = {}
        tag_key = self.tag_column.lower() if self.tag is not None else None

        for index, column in enumerate(self.sources):
            subject = f"Column {column.name!r}"
            key = column.name.lower()
            if key in first_by_name:
                twin = first_by_name[key]
                problem = (
                    "It is selected twice."
                    if twin == column.name
                    else f"It differs from source column {twin!r} only by case; BigQuery column names are "
                    "case-insensitive, so only one of them can be loaded."
                )
                self._row(
                    source=column,
                    source_type=_source_label(column),
                    dest_name=None,
                    dest_type=None,
                    dest_mode=None,
                    subject=subject,
                    findings=[_Finding("error", problem, "Deselect one of the two columns.")],
                )
                continue
            first_by_name[key] = column.name
            self.by_source[key] = column

            # The column's own name wins unless another source column is the one a new
            # table would have given that name (then this one is looked up by its own mapping).
            dest: _Dest | None = None
            exact = self.dest_index.get(key)
            if exact is not None and owner_of_planned.get(key, index) == index:
                dest = exact
            else:
                dest = self.dest_index.get(planned[index].lower())
            if tag_key is not None and (
                (dest is not None and dest.name.lower() == tag_key)
                or (dest is None and planned[index].lower() == tag_key)
                or key == tag_key
            ):
                self.mapped[key] = None
                self._row(
                    source=column,
                    source_type=_source_label(column),
                    dest_name=self.tag_column,
                    dest_type=None,
                    dest_mode=None,
                    subject=subject,
                    findings=[
                        _Finding(
                            "error",
                            f"It maps to {self.tag_column!r}, the column that holds this job's source tag.",
                            "Deselect the column or choose another source tag column.",
                        )
                    ],
                )
                continue
            if dest is not None and dest.name.lower() in claimed:
                self.mapped[key] = None
                self._row(
                    source=column,
                    source_type=_source_label(column),
                    dest_name=dest.name,
                    dest_type=dest.label,
                    dest_mode=dest.mode,
                    subject=subject,
                    findings=[
                        _Finding(
                            "error",
                            f"It maps to destination column {dest.name!r}, which source column "
                            f"{claimed[dest.name.lower()]!r} already fills.",
                            "Deselect one of the two columns.",
                        )
                    ],
                )
                continue
            self.mapped[key] = dest
            if dest is None:
                self._missing_in_destination(column, planned[index], subject)
            else:
                claimed[dest.name.lower()] = column.name
                self._matched(column, dest, subject)

    # -- one source column

    def _missing_in_destination(self, column: SourceColumn, name: str, subject: str) -> None:
        field_type, mode = bigquery_type_for(column.type)
        label = _source_label(column)
        element = column.type.element
        if column.type.family is Family.ARRAY and element is not None and element.family is Family.ARRAY:
            self._row(
                source=column,
                source_type=label,
                dest_name=None,
                dest_type=None,
                dest_mode=None,
                subject=subject,
                findings=[
                    _Finding(
                        "error",
                        "It is a multi-dimensional array, which BigQuery cannot store (no arrays of arrays), and it is "
                        "not in the destination table.",
                        "Deselect the column.",
                    )
                ],
            )
            return
        if name.lower() in self.dest_index:
            self._row(
                source=column,
                source_type=label,
                dest_name=name,
                dest_type=None,
                dest_mode=None,
                subject=subject,
                findings=[
                    _Finding(
                        "error",
                        f"It would be added as {name!r}, but the table already has a column of that name.",
                        "Deselect the column.",
                    )
                ],
            )
            return
        action = AlterAction(
            kind="add_column",
            column=name,
            field_type=field_type,
            mode=mode,
            description=f"Add {mode} {field_type} column {name!r} for source column {column.name!r}.",
            sql=f"ALTER TABLE {self.table_ref} ADD COLUMN {_quote(name)} "
            + (f"ARRAY<{field_type}>" if mode == "REPEATED" else field_type),
        )
        self._offer(action)
        existing = "an empty array" if mode == "REPEATED" else "NULL"
        self._row(
            source=column,
            source_type=label,
            dest_name=name,
            dest_type=field_type,
            dest_mode=mode,
            subject=subject,
            findings=[
                _Finding(
                    "warning",
                    f"It is not in the destination table. It can be added as a {mode} {field_type} column "
                    f"(existing rows get {existing}); if it is not added, it is not loaded.",
                    f"Add column {name!r} ({mode} {field_type}).",
                )
            ],
        )

    def _matched(self, column: SourceColumn, dest: _Dest, subject: str) -> None:
        label = _source_label(column)
        findings: list[_Finding] = []
        validation = self.validation.get(column.name.lower())
        spec_target: str | None = None
        spec_cast: str | None = None
        t = column.type
        is_array = t.family is Family.ARRAY

        if dest.type == "RECORD":
            findings.append(
                _Finding(
                    "error",
                    f"Destination column {dest.name!r} is a nested RECORD: nested records are not supported as a "
                    "destination for a flat source column.",
                    "Deselect the column or load into a table whose column is not a RECORD.",
                )
            )
        elif is_array and dest.mode != "REPEATED":
            findings.append(
                _Finding(
                    "error",
                    f"It is an array in the source, but {dest.name!r} holds a single {dest.label} value; an array "
                    "needs a REPEATED column.",
                    "Deselect the column or load into a table with a REPEATED column.",
                )
            )
        elif not is_array and dest.mode == "REPEATED":
            findings.append(
                _Finding(
                    "error",
                    f"{dest.name!r} is a REPEATED (array) column, but the source holds a single {label} value.",
                    "Deselect the column or load into a table with a non-repeated column.",
                )
            )
        else:
            # An array is as compatible as its elements: the table applies element by element.
            scalar = (t.element or CanonicalType(Family.UNKNOWN)) if is_array else t
            scalar_label = str(scalar) if is_array else label
            match = rule_for(scalar, dest.type, dest.field.precision, dest.field.scale, label=scalar_label)
            verdict, message = match.verdict, match.message
            finding = _Finding(verdict, f"Array elements: {message}" if is_array else message)
            if verdict == "needs_validation":
                spec_target, spec_cast = dest.type, match.cast
                finding.fix = "Validate the source data."
                # SET DATA TYPE does not apply to array columns, so only scalars get a widening offer.
                widen = None if is_array else _widen_target(scalar, dest)
                if widen is not None:
                    to_type, precision, scale = widen
                    to_label = _type_label(to_type, precision, scale)
                    self._offer(
                        AlterAction(
                            kind="widen_type",
                            column=dest.name,
                            field_type=to_type,
                            mode=dest.mode,
                            precision=precision,
                            scale=scale,
                            from_type=dest.type,
                            from_precision=dest.field.precision,
                            from_scale=dest.field.scale,
                            description=f"Widen {dest.name!r} from {dest.label} to {to_label}.",
                            sql=f"ALTER TABLE {self.table_ref} ALTER COLUMN {_quote(dest.name)} SET DATA TYPE {to_label}",
                        )
                    )
                    finding.fix = f"Validate the source data, or widen {dest.name!r} to {to_label} in place."
                if validation is not None:
                    finding = _validated(finding, validation, dest)
            elif verdict == "error":
                finding.fix = match.fix or "Deselect the column or choose a table whose column type fits."
            findings.append(finding)
            if is_array and verdict != "error":
                findings.append(
                    _Finding(
                        "warning",
                        "BigQuery arrays cannot hold NULL elements: a row whose array contains NULL fails the load, "
                        "and a NULL array is stored as an empty one.",
                    )
                )

        check_nulls = dest.mode == "REQUIRED" and column.nullable and dest.type != "RECORD" and not is_array
        if check_nulls:
            findings.append(self._required_but_nullable(dest, validation))

        if spec_target is not None or check_nulls:
            self.specs[column.name] = ValidationSpec(
                column=column.name,
                target_type=spec_target or dest.type,
                check_nulls=check_nulls,
                check_cast=spec_target is not None,
                precision=dest.field.precision,
                scale=dest.field.scale,
                repeated=is_array,
                destination_column=dest.name,
                cast=spec_cast,
            )
        self._row(
            source=column,
            source_type=label,
            dest_name=dest.name,
            dest_type=dest.label,
            dest_mode=dest.mode,
            findings=findings,
            subject=subject,
        )

    def _required_but_nullable(self, dest: _Dest, validation: ValidationResult | None) -> _Finding:
        self._offer(
            AlterAction(
                kind="relax_required",
                column=dest.name,
                field_type=dest.type,
                mode="NULLABLE",
                precision=dest.field.precision,
                scale=dest.field.scale,
                description=f"Relax {dest.name!r} from REQUIRED to NULLABLE.",
                sql=f"ALTER TABLE {self.table_ref} ALTER COLUMN {_quote(dest.name)} DROP NOT NULL",
            )
        )
        fix = f"Relax {dest.name!r} from REQUIRED to NULLABLE (explicit opt-in)."
        if self.options.relax_required:
            return _Finding(
                "warning",
                "The destination column is REQUIRED but the source column allows NULL: it will be relaxed to "
                "NULLABLE before loading, as you chose.",
            )
        # A validation result here comes from a scan that counted NULLs (narrowing_checks
        # asks for it on exactly these columns). Only a full scan proves "no NULLs today";
        # a sample cannot, so it keeps the error.
        if validation is not None and validation.null_failures > 0:
            return _Finding(
                "error",
                f"The destination column is REQUIRED but the source holds {_fmt(validation.null_failures)} NULLs; "
                "loading would require removing NOT NULL from the destination.",
                fix,
            )
        if validation is not None and not validation.sampled:
            return _Finding(
                "warning",
                "The destination column is REQUIRED and the source column allows NULL, but a full scan of "
                f"{_fmt(validation.checked_rows)} rows found none; a NULL arriving later would fail that run.",
            )
        return _Finding(
            "error",
            "The destination column is REQUIRED but the source column allows NULL: loading would require removing "
            "NOT NULL from the destination.",
            fix,
        )

    # -- the rest of the table

    def _check_destination_only_columns(self) -> None:
        claimed = self.claimed
        tag_key = self.tag_column.lower() if self.tag is not None else None
        for key, dest in self.dest_index.items():
            if key in claimed or key == tag_key:
                continue
            subject = f"Destination column {dest.name!r}"
            hint = ""
            if key == self.tag_column.lower():
                hint = " Other jobs may tag their rows here: set a source tag so this job's rows are tagged too."
            if dest.mode == "REQUIRED":
                self._offer(
                    AlterAction(
                        kind="relax_required",
                        column=dest.name,
                        field_type=dest.type,
                        mode="NULLABLE",
                        precision=dest.field.precision,
                        scale=dest.field.scale,
                        description=f"Relax {dest.name!r} from REQUIRED to NULLABLE.",
                        sql=f"ALTER TABLE {self.table_ref} ALTER COLUMN {_quote(dest.name)} DROP NOT NULL",
                    )
                )
                if self.options.relax_required:
                    finding = _Finding(
                        "warning",
                        "It is REQUIRED and not among the source columns: it will be relaxed to NULLABLE, as you "
                        "chose, and be NULL for new rows." + hint,
                    )
                else:
                    finding = _Finding(
                        "error",
                        "It is REQUIRED but not among the source columns, so every new row would lack a value; "
                        "loading would require removing NOT NULL from the destination." + hint,
                        f"Relax {dest.name!r} from REQUIRED to NULLABLE (explicit opt-in), or select a source "
                        "column for it.",
                    )
            elif dest.type in UNLOADABLE_TYPES:
                finding = _Finding(
                    "error",
                    f"It is a BigQuery {dest.type} column: no Parquet type loads into it, not even NULL, so no "
                    "load into this table can succeed.",
                    f"Load into a table without {dest.type} columns (or make it a STRING column).",
                )
            elif dest.mode == "REPEATED":
                finding = _Finding(
                    "warning", "It is not among the source columns: it will be empty for new rows." + hint
                )
            else:
                finding = _Finding(
                    "warning", "It is not among the source columns: it will be NULL for new rows." + hint
                )
            self._row(
                source=None,
                source_type=None,
                dest_name=dest.name,
                dest_type=dest.label,
                dest_mode=dest.mode,
                findings=[finding],
                subject=subject,
            )

    def _check_source_tag(self) -> None:
        if self.tag is None or not _COLUMN_NAME.match(self.tag_column):
            return
        subject = f"Source tag column {self.tag_column!r}"
        source_type = f"source tag {self.tag!r}"
        dest = self.dest_index.get(self.tag_column.lower())
        if dest is None:
            self._offer(
                AlterAction(
                    kind="add_column",
                    column=self.tag_column,
                    field_type="STRING",
                    mode="NULLABLE",
                    description=f"Add NULLABLE STRING column {self.tag_column!r} to hold each row's source tag.",
                    sql=f"ALTER TABLE {self.table_ref} ADD COLUMN {_quote(self.tag_column)} STRING",
                )
            )
            finding = _Finding(
                "warning",
                f"The table has no {self.tag_column!r} column: it will be added so this job's rows are tagged "
                f"{self.tag!r}; rows already in the table keep NULL there.",
                f"Add column {self.tag_column!r} (NULLABLE STRING).",
            )
            self._row(
                source=None,
                source_type=source_type,
                dest_name=self.tag_column,
                dest_type="STRING",
                dest_mode="NULLABLE",
                findings=[finding],
                subject=subject,
            )
            return
        if dest.type != "STRING" or dest.mode == "REPEATED":
            finding = _Finding(
                "error",
                f"It holds source tags, so it must be a STRING column, but it is {dest.mode} {dest.label}.",
                "Choose another source tag column name.",
            )
        else:
            finding = _Finding("ok", f"Rows loaded by this job are tagged {self.tag!r}.")
        self._row(
            source=None,
            source_type=source_type,
            dest_name=dest.name,
            dest_type=dest.label,
            dest_mode=dest.mode,
            findings=[finding],
            subject=subject,
        )

    # -- keys, cursor and strategy

    def _source(self, name: str) -> SourceColumn | None:
        return self.by_source.get(name.lower())

    def _check_strategy(self) -> None:
        strategy = self.options.load_strategy
        merge_dest_key: list[str] | None = None
        if strategy == "merge":
            merge_dest_key = self._check_merge_key()
        if strategy == "incremental":
            self._check_cursor()
        if strategy == "replace":
            if self.tag is not None:
                self.warnings.append(
                    f"Replace: each run deletes the rows tagged {self.tag!r} and loads the current source rows; "
                    "other sources' rows are kept."
                )
            else:
                self.warnings.append(
                    f"Replace: each run deletes every row already in {self.destination.dataset}."
                    f"{self.destination.table} and loads the current source rows."
                )
        self._check_primary_key(strategy, merge_dest_key)

    def _check_merge_key(self) -> list[str] | None:
        keys = list(dict.fromkeys(k for k in self.options.merge_key if k))
        if not keys:
            self.errors.append("Merge needs a merge key: choose the column(s) that identify a row on both sides.")
            return None
        dest_names: list[str] = []
        complete = True
        for key in keys:
            column = self._source(key)
            if column is None:
                self.errors.append(f"Merge key column {key!r} is not among the selected source columns.")
                complete = False
                continue
            dest = self.mapped.get(column.name.lower())
            if dest is None:
                self.errors.append(
                    f"Merge key column {key!r} is not in the destination table: MERGE matches rows on columns that "
                    "exist on both sides."
                )
                complete = False
                continue
            dest_names.append(dest.name)
            if column.type.family is Family.ARRAY or dest.type in _UNCOMPARABLE_KEY_TYPES or dest.mode == "REPEATED":
                self.errors.append(
                    f"Merge key column {key!r} is {dest.mode} {dest.label}, which BigQuery cannot compare with '='."
                )
            elif column.type.family is Family.FLOAT or dest.type == "FLOAT64":
                self.warnings.append(
                    f"Merge key column {key!r} is a floating-point number: equal-looking values may not match."
                )
            if column.nullable and not column.primary_key:
                self.warnings.append(
                    f"Merge key column {key!r} allows NULL: rows with a NULL key never match and are always inserted."
                )
        source_pk = [c.name for c in self.sources if c.primary_key]
        if source_pk and {k.lower() for k in keys} != {k.lower() for k in source_pk}:
            self.warnings.append(
                f"The merge key ({', '.join(keys)}) is not the source's primary key ({', '.join(source_pk)}): "
                "if two source rows share a merge key, MERGE fails."
            )
        return dest_names if complete else None

    def _check_primary_key(self, strategy: str, merge_dest_key: list[str] | None) -> None:
        declared = self.destination.primary_key
        if not declared:
            # None: unknown (the emulator stores no constraints, and many tables have none);
            # an empty key declares nothing. Either way there is nothing to contradict.
            return
        declared_set = {k.lower() for k in declared}
        tag_set = {self.tag_column.lower()} if self.tag is not None else set()
        declared_text = ", ".join(declared)
        if strategy == "merge":
            if merge_dest_key is None:
                return
            key_set = {k.lower() for k in merge_dest_key}
            if declared_set not in (key_set, key_set | tag_set):
                self.errors.append(
                    f"The destination's PRIMARY KEY ({declared_text}) differs from the merge key "
                    f"({', '.join(merge_dest_key)}): MERGE would update rows the table considers different, or "
                    "insert duplicates of the declared key."
                )
            return
        source_key: list[str] = []
        for column in self.sources:
            if column.primary_key:
                dest = self.mapped.get(column.name.lower())
                source_key.append(dest.name if dest is not None else column.name)
        if not source_key:
            self.warnings.append(
                f"The destination declares PRIMARY KEY ({declared_text}) (not enforced by BigQuery), but the source "
                f"has no primary key: {strategy} can load rows that duplicate the declared key."
            )
            return
        key_set = {k.lower() for k in source_key}
        if declared_set not in (key_set, key_set | tag_set):
            self.warnings.append(
                f"The destination's PRIMARY KEY ({declared_text}) differs from the source's primary key "
                f"({', '.join(source_key)}): {strategy} can load rows that duplicate the declared key."
            )

    def _check_cursor(self) -> None:
        name = self.options.cursor_column
        if not name:
            self.errors.append(
                "Incremental loading needs a cursor column: an INTEGER, DECIMAL, DATE or TIMESTAMP column that "
                "grows with new rows."
            )
            return
        column = self._source(name)
        if column is None:
            self.errors.append(f"Cursor column {name!r} is not among the selected source columns.")
            return
        if column.type.family not in _ORDERABLE_SOURCE_FAMILIES:
            self.errors.append(
                f"Cursor column {name!r} is {_source_label(column)}: an incremental cursor must be an INTEGER, "
                "DECIMAL, DATE or TIMESTAMP column."
            )
            return
        dest = self.mapped.get(column.name.lower())
        if dest is None:
            self.errors.append(
                f"Cursor column {name!r} is not in the destination table: the run resumes after MAX({name}) of the "
                "destination, so the column must exist on both sides."
            )
            return
        if dest.type not in _ORDERABLE_DESTINATION_TYPES or dest.mode == "REPEATED":
            self.errors.append(
                f"Cursor column {name!r} is {dest.mode} {dest.label} in the destination, which does not order "
                "like the source values: MAX() of it cannot be the resume point."
            )
            return
        if column.nullable:
            self.warnings.append(
                f"Cursor column {name!r} allows NULL: rows with a NULL cursor are never picked up by incremental runs."
            )


# --------------------------------------------------------------------------- the type table


def _integer_digits(dest: _Dest) -> tuple[int, int]:
    """(whole digits, decimal places) a NUMERIC/BIGNUMERIC destination holds."""
    whole, places = _digits(dest.type, dest.field.precision, dest.field.scale)
    return max(whole, 0), places


def _validated(finding: _Finding, result: ValidationResult, dest: _Dest) -> _Finding:
    """Settle a needs_validation verdict with what the scan of the source found."""
    if result.failures > 0:
        examples = ", ".join(repr(str(e)[:40]) for e in list(result.examples)[:_MAX_EXAMPLES])
        example_text = f", e.g. {examples}" if examples else ""
        return _Finding(
            "error",
            f"{finding.message} Data validation: {_fmt(result.failures)} of {_fmt(result.checked_rows)} checked "
            f"values cannot be converted to {dest.label}{example_text}.",
            "Fix or exclude the failing source values"
            + (finding.fix.removeprefix("Validate the source data")[:-1] if finding.fix else "")
            + ".",
        )
    if result.sampled:
        scope = (
            f"a sample of {_fmt(result.checked_rows)} rows converts to {dest.label}; values outside the sample "
            "are not checked and would fail the run if they do not convert"
        )
    else:
        scope = f"all {_fmt(result.checked_rows)} rows convert to {dest.label}"
    return _Finding("warning", f"{finding.message} Validated: {scope}.")


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
                whole, places = _integer_digits(dest)
                new_places = max(places, t.scale or 0)
                new_whole = max(whole, t.precision - (t.scale or 0))
                if new_places <= NUMERIC_MAX_SCALE and new_whole <= NUMERIC_MAX_INTEGER_DIGITS:
                    return "NUMERIC", new_whole + new_places, new_places
                return "BIGNUMERIC", None, None
            return "NUMERIC", None, None
    if d == "BIGNUMERIC" and parameterized and target in ("INT64", "NUMERIC", "BIGNUMERIC"):
        return "BIGNUMERIC", None, None
    return None
