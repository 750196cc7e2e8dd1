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

import dataclasses
from collections.abc import Sequence

from ml_platform.etl.bqsql import shown_name as _quote
from ml_platform.etl.compat_alter import (
    _widen_target,
    action_within_bigquery_limits,
    in_place_change_allowed,
)
from ml_platform.etl.compat_model import (
    DEFAULT_TAG_COLUMN,
    LOAD_STRATEGIES,
    AlterAction,
    AlterKind,
    ColumnReport,
    CompatibilityOptions,
    CompatibilityReport,
    LoadStrategy,
    ValidationResult,
    ValidationSpec,
    Verdict,
    _Dest,
    _dest,
    _Finding,
    _source_label,
    _type_label,
)
from ml_platform.etl.compat_strategy import StrategyChecks
from ml_platform.etl.compat_table import _COLUMN_NAME, TableChecks, _validated
from ml_platform.etl.type_rules import rule_for
from ml_platform.etl.types import (
    BigQueryField,
    CanonicalType,
    Family,
    SourceColumn,
    TableSchema,
    bigquery_type_for,
    naming_collisions,
    normalize_column_names,
)

__all__ = [
    "DEFAULT_TAG_COLUMN",
    "LOAD_STRATEGIES",
    "AlterAction",
    "AlterKind",
    "ColumnReport",
    "CompatibilityOptions",
    "CompatibilityReport",
    "LoadStrategy",
    "ValidationResult",
    "ValidationSpec",
    "Verdict",
    "action_within_bigquery_limits",
    "check_compatibility",
    "destination_column_names",
    "in_place_change_allowed",
    "narrowing_checks",
    "schema_for_new_table",
]

_SEVERITY: dict[str, int] = {"ok": 0, "warning": 1, "needs_validation": 2, "error": 3}


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
    unvalidated = dataclasses.replace(options or CompatibilityOptions(), validation={})
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


# --------------------------------------------------------------------------- the engine


# A report row's destination cells (name, type, mode) where there is no destination column (yet).
_Target = tuple[str | None, str | None, str | None]


class _Engine(StrategyChecks, TableChecks):
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
        self.claimed: dict[str, str] = {}
        self.naming_notes: dict[str, str] | None = (
            None  # computed on first use  # destination name (lower) -> the source column filling it
        )

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
        dest: _Dest | _Target | None,
        findings: list[_Finding],
        subject: str,
    ) -> ColumnReport:
        """One report row. `dest`: the destination column, or (name, type, mode) of one that is not there yet."""
        if isinstance(dest, _Dest):
            dest = (dest.name, dest.label, dest.mode)
        dest_name, dest_type, dest_mode = dest or (None, None, None)
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
        self._check_partitioning()
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
                self._refuse(column, None, problem, "Deselect one of the two columns.")
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
                self._refuse(
                    column,
                    self.tag_column,
                    f"It maps to {self.tag_column!r}, the column that holds this job's source tag.",
                    "Deselect the column or choose another source tag column.",
                )
                continue
            if dest is not None and dest.name.lower() in claimed:
                self.mapped[key] = None
                self._refuse(
                    column,
                    dest,
                    f"It maps to destination column {dest.name!r}, which source column "
                    f"{claimed[dest.name.lower()]!r} already fills.",
                    "Deselect one of the two columns.",
                )
                continue
            self.mapped[key] = dest
            if dest is None:
                self._missing_in_destination(column, planned[index], subject)
            else:
                claimed[dest.name.lower()] = column.name
                self._matched(column, dest, subject)

    def _refuse(self, column: SourceColumn, dest: _Dest | str | None, problem: str, fix: str) -> None:
        """An error row for a source column that cannot be mapped (`dest`: where it would have gone)."""
        self._row(
            source=column,
            source_type=_source_label(column),
            dest=(dest, None, None) if isinstance(dest, str) else dest,
            subject=f"Column {column.name!r}",
            findings=[_Finding("error", problem, fix)],
        )

    # -- one source column

    def _missing_in_destination(self, column: SourceColumn, name: str, subject: str) -> None:
        field_type, mode = bigquery_type_for(column.type)
        label = _source_label(column)
        element = column.type.element
        if column.type.family is Family.ARRAY and element is not None and element.family is Family.ARRAY:
            problem = ("It is a multi-dimensional array, which BigQuery cannot store (no arrays of arrays), and it is "
                       "not in the destination table.")
            self._refuse(column, None, problem, "Deselect the column.")
            return
        if name.lower() in self.dest_index:
            problem = f"It would be added as {name!r}, but the table already has a column of that name."
            self._refuse(column, name, problem, "Deselect the column.")
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
            dest=(name, field_type, mode),
            subject=subject,
            findings=[
                _Finding(
                    "warning",
                    f"It is not in the destination table. It can be added as a {mode} {field_type} column "
                    f"(existing rows get {existing}); if it is not added, it is not loaded."
                    + self._naming_note(column),
                    f"Add column {name!r} ({mode} {field_type}).",
                )
            ],
        )

    def _needs_validation(self, finding: _Finding, scalar: CanonicalType, dest: _Dest, is_array: bool) -> None:
        """Point a needs_validation finding at the scan, and offer an in-place widening when BigQuery has one."""
        finding.fix = "Validate the source data."
        # SET DATA TYPE does not apply to array columns, so only scalars get a widening offer.
        widen = None if is_array else _widen_target(scalar, dest)
        if widen is None:
            return
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

    def _naming_note(self, column: SourceColumn) -> str:
        if self.naming_notes is None:
            self.naming_notes = naming_collisions([c.name for c in self.sources])
        note = self.naming_notes.get(column.name)
        return f" {note}" if note else ""

    def _matched(self, column: SourceColumn, dest: _Dest, subject: str) -> None:
        label = _source_label(column)
        findings: list[_Finding] = []
        if dest.name.lower() != column.name.lower() and self._naming_note(column):
            findings.append(_Finding("ok", self._naming_note(column).strip()))
        validation = self.validation.get(column.name.lower())
        spec_target: str | None = None
        spec_cast: str | None = None
        t = column.type
        is_array = t.family is Family.ARRAY

        shape_error = _shape_error(dest, is_array, label)
        if shape_error is not None:
            findings.append(shape_error)
        else:
            # An array is as compatible as its elements: the table applies element by element.
            scalar = (t.element or CanonicalType(Family.UNKNOWN)) if is_array else t
            scalar_label = str(scalar) if is_array else label
            match = rule_for(
                scalar, dest.type, dest.field.precision, dest.field.scale, label=scalar_label,
                required=dest.mode == "REQUIRED",
            )  # fmt: skip
            finding = _Finding(match.verdict, f"Array elements: {match.message}" if is_array else match.message)
            if match.verdict == "needs_validation":
                spec_target, spec_cast = dest.type, match.cast
                self._needs_validation(finding, scalar, dest, is_array)
                if validation is not None:
                    finding = _validated(finding, validation, dest)
            elif match.verdict == "error":
                finding.fix = match.fix or "Deselect the column or choose a table whose column type fits."
            findings.append(finding)
            if is_array and match.verdict != "error":
                # A NULL element cannot be stored at all: only a scan of the source can say there is none.
                spec_target, spec_cast = dest.type, match.cast
                nulls = _Finding(
                    "needs_validation",
                    "BigQuery arrays cannot hold NULL elements: a row whose array contains NULL cannot be loaded, "
                    "so the source data must be validated (a NULL array is stored as an empty one).",
                    "Validate the source data.",
                )
                findings.append(_validated(nulls, validation, dest) if validation is not None else nulls)

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
        self._row(source=column, source_type=label, dest=dest, findings=findings, subject=subject)


def _shape_error(dest: _Dest, is_array: bool, label: str) -> _Finding | None:
    """An error when the column shapes differ (RECORD, array vs scalar), before any type is compared."""
    if dest.type == "RECORD":
        return _Finding(
            "error",
            f"Destination column {dest.name!r} is a nested RECORD: nested records are not supported as a "
            "destination for a flat source column.",
            "Deselect the column or load into a table whose column is not a RECORD.",
        )
    if is_array and dest.mode != "REPEATED":
        return _Finding(
            "error",
            f"It is an array in the source, but {dest.name!r} holds a single {dest.label} value; an array "
            "needs a REPEATED column.",
            "Deselect the column or load into a table with a REPEATED column.",
        )
    if not is_array and dest.mode == "REPEATED":
        return _Finding(
            "error",
            f"{dest.name!r} is a REPEATED (array) column, but the source holds a single {label} value.",
            "Deselect the column or load into a table with a non-repeated column.",
        )
    return None
