"""The ONE schema check: can these source columns go into this BigQuery table, and what must change?

Every caller asks here and nowhere else: the wizard's live report and its step-4 submit, Edit,
Reconnect, `jobs.job_create` (which the JSON API calls) and the API's validate endpoint.
The answer (`SchemaCheckResult`) holds the report the user sees AND the load plan the job
records (`ml_platform/etl/plan.py`: column mapping, ALTER actions, per-column casts); the
runner only checks that the table still matches that stored plan.

One check costs at most two BigQuery calls: the table is fetched once, and one query reads
everything the report says about its rows (row count, MAX(cursor) in the job's tag scope, the
rows a Replace would delete, the untagged rows).

Multi-source rules (checked across every workspace, but no foreign job is ever named): on a
table other jobs load into, this job needs a source tag and no other job may use it; a new
tagged job on a table holding untagged rows must confirm the back-fill of its tag onto them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from django.http import Http404

from ml_platform import selectors
from ml_platform.etl import compatibility as engine
from ml_platform.etl.bigquery import BigQuery
from ml_platform.etl.bqsql import partition_filter
from ml_platform.etl.bqsql import quote_name as quote_identifier
from ml_platform.etl.compat_model import default_load_strategy
from ml_platform.etl.errors import SchemaMismatchError
from ml_platform.etl.plan import LoadPlan, PlannedAlter, PlannedColumn
from ml_platform.etl.types import BigQueryField, SourceColumn, TableSchema
from ml_platform.models import Connection, EtlJob, Workspace
from ml_platform.services import compat, sources
from ml_platform.services.warehouse import warehouse

TAG_COLUMN = compat.TAG_COLUMN
ORDERABLE_CURSOR_TYPES = {"INT64", "INTEGER", "NUMERIC", "BIGNUMERIC", "DATE", "DATETIME", "TIMESTAMP", "STRING"}


@dataclass(frozen=True)
class Choices:
    """What the user chose (the options of the check)."""

    load_strategy: str = default_load_strategy(existing_table=True)
    cursor_column: str = ""
    merge_key: tuple[str, ...] = ()
    source_tag: str = ""
    add_columns: tuple[str, ...] = ()
    relax_required: bool = False
    validation: Mapping[str, engine.ValidationResult] = field(default_factory=dict)
    confirm_replace: bool = False
    confirm_backfill: bool = False
    partition_field: str = ""
    clustering: tuple[str, ...] = ()

    def options(self) -> engine.CompatibilityOptions:
        return compat.options_from(load_strategy=self.load_strategy, cursor_column=self.cursor_column,
                                   merge_key=self.merge_key, source_tag=self.source_tag,
                                   relax_required=self.relax_required, validation=dict(self.validation))


@dataclass(frozen=True)
class Destination:
    dataset: str
    table: str
    existing: bool = True


@dataclass(frozen=True)
class SourceRef:
    """Where the source columns live: given, the check may scan the data (needs-validation verdicts)."""

    connection: Connection
    schema: str | None
    table: str


@dataclass
class Problem:
    """Why a submit is refused, tied to the form field / API body field the user fixes."""

    field: str | None
    message: str


@dataclass
class SchemaCheckResult:
    target: Destination
    report: engine.CompatibilityReport
    destination: TableSchema  # the fetched table, or the planned schema of a new one
    state: compat.TableState
    choices: Choices
    other_jobs: list[EtlJob] = field(default_factory=list)  # of this workspace: they may be named
    foreign_jobs: int = 0  # of other workspaces: only counted, never named
    other_tags: list[str] = field(default_factory=list)  # every other job's tag ("" = untagged)
    untagged_rows: int = 0
    replace_deletes: int = 0
    problems: list[Problem] = field(default_factory=list)
    plan: LoadPlan | None = None
    validation: dict[str, engine.ValidationResult] = field(default_factory=dict)

    @property
    def compatible(self) -> bool:
        return self.report.compatible

    @property
    def ok(self) -> bool:
        """Whether a job can be created/saved with these choices."""
        return self.report.compatible and not self.problems and self.plan is not None

    @property
    def other_job_count(self) -> int:
        return len(self.other_jobs) + self.foreign_jobs

    @property
    def new_columns(self) -> list[str]:
        return compat.new_columns(self.report)

    @property
    def relax_columns(self) -> list[str]:
        return [a.column for a in self.report.can_alter if a.kind == "relax_required"]

    @property
    def backfill_offered(self) -> bool:
        return bool(self.choices.source_tag and self.untagged_rows and self.target.existing)

    def details(self) -> list[Any]:
        """Every reason for refusing, for a JSON error's `details` (never empty when refused)."""
        unvalidated = []
        for name in self.report.needs_validation:
            row = self.report.column(name)
            unvalidated.append({"column": name, "error": (row.message + " " if row else "")
                                + "Validate the source data (API: validate_data: true; wizard: Validate data)."})
        return (list(self.report.errors) + unvalidated
                + [{"field": p.field, "error": p.message} if p.field else p.message for p in self.problems])

    def first_error(self) -> str:
        """The refusal's message: the choices to fix when there are some, else "Schema incompatible" (see details)."""
        if self.problems:
            return " ".join(p.message for p in self.problems)
        if not self.report.compatible:
            return "Schema incompatible"
        return "The schema check did not produce a load plan."


# --------------------------------------------------------------------------- the entry point


def check(
    *,
    workspace: Workspace,
    source_columns: Sequence[SourceColumn],
    destination: Destination,
    choices: Choices,
    dialect: str = "",
    exclude_job: EtlJob | None = None,
    creating: bool = True,
    source: SourceRef | None = None,
    validate: bool = False,
) -> SchemaCheckResult:
    """The schema check. `exclude_job`: the job being edited/reconnected; `creating`: a new job (back-fill rule).

    With `validate` (and `source`), the narrowing columns are scanned in the source first and
    the verdicts use what the scan found.
    """
    if not selectors.workspace_owns_dataset(workspace=workspace, dataset=destination.dataset):
        raise Http404("No such dataset")  # another workspace's dataset: no schema, no count, no MAX()
    bq = warehouse()
    if not destination.existing:
        return _check_new(bq, source_columns, destination, choices, dialect, source if validate else None)
    table = bq.get_table_schema(destination.dataset, destination.table)
    if validate and source is not None:
        choices = _scanned(choices, source, source_columns, table)
    report = engine.check_compatibility(source_columns, table, choices.options())
    result = SchemaCheckResult(target=destination, report=report, destination=table, state=compat.TableState(),
                               choices=choices, validation=dict(choices.validation))
    _other_jobs(result, workspace, exclude_job)
    _table_rows(bq, result)
    _multi_source_rules(result, creating)
    _submit_problems(result, creating)
    if result.report.compatible and not result.problems:
        result.plan = _existing_plan(result, source_columns, dialect)
    return result


def _scanned(choices: Choices, source: SourceRef, source_columns: Sequence[SourceColumn],
             table: TableSchema) -> Choices:
    """The choices with the source scan's results for the columns that need one (the "Validate data" scan)."""
    found = compat.validate_data(connection=source.connection, schema=source.schema, table=source.table,
                                 source_columns=list(source_columns), destination=table, options=choices.options())
    return replace(choices, validation={**choices.validation, **found})


def _check_new(bq: BigQuery, source_columns: Sequence[SourceColumn], destination: Destination, choices: Choices,
               dialect: str, scan: SourceRef | None = None) -> SchemaCheckResult:
    """A new table: its planned schema is checked like an existing one (cursor, key), without BigQuery reads.

    With `scan`, the columns whose planned type needs validation are scanned in the source first.
    """
    tag = TAG_COLUMN if choices.source_tag else None
    fields = engine.schema_for_new_table(source_columns, tag_column=tag)
    mapping = {c.name: f.name for c, f in zip(source_columns, fields, strict=False)}
    partitioned = mapping.get(choices.partition_field) if choices.partition_field else None
    planned = TableSchema(destination.dataset, destination.table, fields,
                          partitioning=f"DAY({partitioned})" if partitioned else None)
    if scan is not None:
        choices = _scanned(choices, scan, source_columns, planned)
    report = engine.check_compatibility(source_columns, planned, choices.options())
    result = SchemaCheckResult(target=destination, report=report, destination=planned, state=compat.TableState(),
                               choices=choices, validation=dict(choices.validation))
    if bq.table_exists(destination.dataset, destination.table):
        result.problems.append(Problem("new_table", f"A table named {destination.table!r} already exists in "
                                                    f"{destination.dataset}: pick another name or use the "
                                                    "existing table."))
    if choices.partition_field and choices.partition_field not in mapping:
        result.problems.append(Problem("partition_field", f"{choices.partition_field!r} is not a selected column."))
    if result.report.compatible and not result.problems:
        columns = tuple(_planned(c, mapping[c.name], f.field_type, f.mode) for c, f in
                        zip(source_columns, fields, strict=False))
        result.plan = LoadPlan(
            dataset=destination.dataset, table=destination.table, mode="new", dialect=dialect, columns=columns,
            tag_column=tag, source_tag=choices.source_tag or None,
            alters=(PlannedAlter("create_table", detail=f"{len(fields)} columns"),),
            partition_field=mapping.get(choices.partition_field) if choices.partition_field else None,
            clustering=tuple(mapping[c] for c in choices.clustering if c in mapping),
        )
    return result


def _planned(column: SourceColumn, destination: str, field_type: str, mode: str) -> PlannedColumn:
    family = getattr(column.type.family, "value", str(column.type.family))
    return PlannedColumn(source=column.name, destination=destination, field_type=field_type, mode=mode,
                         source_type=column.source_type, cast=f"{family} -> {field_type}")


# --------------------------------------------------------------------------- the table's rows (one query)


def _table_rows(bq: BigQuery, result: SchemaCheckResult) -> None:
    """Row count, untagged rows, this tag's rows and MAX(cursor) over them: one query, then the sentence."""
    table, choices = result.destination, result.choices
    tag_field = table.field_by_name(TAG_COLUMN)
    tag = choices.source_tag
    selects = ["COUNT(*) AS n"]
    params: dict[str, Any] = {}
    if tag_field is not None:
        quoted = quote_identifier(tag_field.name)
        selects.append(f"SUM(CASE WHEN {quoted} IS NULL THEN 1 ELSE 0 END) AS untagged")
        if tag:
            selects.append(f"SUM(CASE WHEN {quoted} = @tag THEN 1 ELSE 0 END) AS tagged")
            params["tag"] = tag
    cursor = table.field_by_name(_cursor_destination(result)) if choices.cursor_column else None
    if (choices.load_strategy == "incremental" and cursor is not None and cursor.mode != "REPEATED"
            and cursor.field_type.upper() in ORDERABLE_CURSOR_TYPES):
        scope = f"CASE WHEN {quote_identifier(tag_field.name)} = @tag THEN {quote_identifier(cursor.name)} END" \
            if tag and tag_field is not None else quote_identifier(cursor.name)
        selects.append(f"MAX({scope}) AS max_cursor")
    sql = f"SELECT {', '.join(selects)} FROM {bq.sql_table(table.dataset, table.table)}"  # noqa: S608 - quoted ids
    sql += _all_partitions(table)
    row = (bq.query(sql, params) or [{}])[0]
    rows = int(row.get("n") or 0)
    result.untagged_rows = int(row.get("untagged") or 0) if tag_field is not None else rows
    tagged = int(row.get("tagged") or 0)
    if choices.load_strategy == "replace":
        result.replace_deletes = tagged if tag else rows
    result.state = _state(rows, row.get("max_cursor"), choices, has_cursor="max_cursor" in row,
                          tag_scoped=bool(tag and tag_field is not None))


def _all_partitions(table: TableSchema) -> str:
    """` WHERE <true for every row, on the partitioning column>`, which `require_partition_filter` asks for."""
    try:
        condition = partition_filter(table.partitioning, {f.name: f.field_type for f in table.fields})
    except SchemaMismatchError:
        return ""  # the report already says the runner cannot filter this table
    return f" WHERE {condition}" if condition else ""


def _cursor_destination(result: SchemaCheckResult) -> str:
    row = result.report.column(result.choices.cursor_column)
    return (row.destination_name if row and row.destination_name else result.choices.cursor_column)


def _state(rows: int, max_cursor: Any, choices: Choices, *, has_cursor: bool, tag_scoped: bool) -> compat.TableState:
    state = compat.TableState(row_count=rows)
    if not rows:
        state.sentence = "The table is empty: the first run loads every selected source row."
        return state
    tag = choices.source_tag
    if choices.load_strategy == "incremental" and has_cursor:
        state.max_cursor = max_cursor
        scope = f" for source tag {tag!r}" if tag_scoped else ""
        cursor = choices.cursor_column
        if max_cursor is None:
            state.sentence = f"No rows{scope} yet: the first run loads every selected source row."
        else:
            shown = compat.format_value(max_cursor)
            state.sentence = (f"Resumes after {cursor} {shown}{scope}: only source rows with {cursor} > {shown} "
                              "are loaded, so no row is loaded twice.")
    elif choices.load_strategy == "replace":
        scope = f"the rows tagged {tag!r}" if tag else f"all {rows:,} rows"
        state.sentence = f"Each run replaces {scope} atomically with the current source rows."
    elif choices.load_strategy == "merge":
        keys = ", ".join(choices.merge_key) or "the key"
        state.sentence = f"Each run updates rows matching on {keys} and inserts the others."
    else:
        state.sentence = f"Each run appends the selected source rows to the {rows:,} rows already there."
    return state


# --------------------------------------------------------------------------- multi-source rules


def _other_jobs(result: SchemaCheckResult, workspace: Workspace, exclude_job: EtlJob | None) -> None:
    """Every job loading into the table, whatever its workspace: the tag rules hold across all of them."""
    others = EtlJob.objects.filter(destination_dataset=result.target.dataset,
                                   destination_table__iexact=result.target.table)
    if exclude_job is not None:
        others = others.exclude(pk=exclude_job.pk)
    for job in others.select_related("connection"):
        if job.workspace_id == workspace.pk:
            result.other_jobs.append(job)
        else:
            result.foreign_jobs += 1
    result.other_tags = [j.source_tag or "" for j in others]


def _fail(result: SchemaCheckResult, field_name: str, message: str) -> None:
    """An error in the report (so Next is disabled) that also refuses the submit on the field to fix."""
    result.report.errors.append(message)
    result.report.compatible = False
    result.problems.append(Problem(field_name, message))


def _multi_source_rules(result: SchemaCheckResult, creating: bool) -> None:
    tag = result.choices.source_tag
    if result.other_job_count:
        if not tag:
            _fail(result, "source_tag", "Another job loads into this table: give this source its own tag "
                                        "(every job loading into a shared table needs one, so each job's runs "
                                        "touch only its own rows).")
        elif tag.casefold() in {t.casefold() for t in result.other_tags}:
            _fail(result, "source_tag", f"The tag {tag!r} is already used by another job on this table (tags are "
                                        "compared ignoring case): choose another tag.")
        if creating and any(not t for t in result.other_tags):
            _fail(result, "source_tag", "Another job loads into this table without a source tag: its runs would "
                                        "touch every row, this job's too. Give that job a tag before adding "
                                        "another source.")
    if creating and tag and result.untagged_rows:
        n = result.untagged_rows
        if result.choices.confirm_backfill:
            result.report.warnings.append(f"On creation, the {n:,} untagged rows get {TAG_COLUMN} = {tag!r} (one "
                                          "UPDATE): this job then owns them.")
        else:
            _fail(result, "confirm_backfill",
                  f"The table holds {n:,} rows without a source tag. Confirm the back-fill (set {TAG_COLUMN} = "
                  f"{tag!r} on the {n:,} untagged rows) so this job owns them, or choose another table.")


def _submit_problems(result: SchemaCheckResult, creating: bool) -> None:
    choices = result.choices
    for message in compat.check_new_columns(result.report, list(choices.add_columns)):
        result.problems.append(Problem("add_columns", message))
    if creating and choices.load_strategy == "replace" and result.replace_deletes and not choices.confirm_replace:
        d = result.target
        result.problems.append(Problem(
            "confirm_replace", f"Replace deletes the {result.replace_deletes:,} rows this job loads into "
                               f"{d.dataset}.{d.table} on its first run: tick the box to confirm (confirm_replace), "
                               "or choose Append or Incremental."))


# --------------------------------------------------------------------------- the plan of an existing table


def _existing_plan(result: SchemaCheckResult, source_columns: Sequence[SourceColumn], dialect: str) -> LoadPlan | None:
    report, table, choices = result.report, result.destination, result.choices
    wanted = {c.lower() for c in choices.add_columns}
    add_fields = [a.to_field() for a in report.can_alter
                  if a.kind == "add_column" and (a.column.lower() in wanted or a.column == TAG_COLUMN)]
    relax = [a.column for a in report.can_alter if a.kind == "relax_required" and choices.relax_required]
    mapping = compat.column_mapping(report, table, add_fields)
    unmapped = [c.name for c in source_columns if c.name not in mapping]
    if unmapped:  # never a selected column silently left out of the loads
        result.problems.append(Problem("add_columns", "Selected column(s) " + ", ".join(repr(c) for c in unmapped)
                                       + " have no column in the table: approve adding them, or unselect them."))
        return None
    added = {f.name.lower(): f for f in add_fields}
    relaxed = {c.lower() for c in relax}
    columns = []
    for c in source_columns:
        dest = mapping[c.name]
        f = table.field_by_name(dest) or added[dest.lower()]
        columns.append(_planned(c, f.name, f.field_type, "NULLABLE" if f.name.lower() in relaxed else f.mode))
    alters = [PlannedAlter("add_column", f.name, f.field_type, f.mode) for f in add_fields]
    alters += [PlannedAlter("relax_required", c) for c in relax]
    if result.backfill_offered and choices.confirm_backfill:
        alters.append(PlannedAlter("backfill_tag", TAG_COLUMN, detail=f"{result.untagged_rows} rows"))
    tag_field = table.field_by_name(TAG_COLUMN)
    return LoadPlan(dataset=table.dataset, table=table.table, mode="existing", dialect=dialect,
                    columns=tuple(columns), tag_column=(tag_field.name if tag_field else TAG_COLUMN)
                    if choices.source_tag else None, source_tag=choices.source_tag or None, alters=tuple(alters))


# --------------------------------------------------------------------------- applying a plan


def apply_plan(plan: LoadPlan, *, description: str = "") -> None:
    """Make the ALTERs the plan records (create the table, add columns, relax, back-fill the tag)."""
    bq = warehouse()
    kinds = {a.kind for a in plan.alters}
    if "create_table" in kinds:
        bq.create_table(plan.dataset, plan.table, list(plan.new_table_fields()), partition_field=plan.partition_field,
                        clustering=plan.clustering, description=description)
        return
    adds = [BigQueryField(a.column, a.field_type, a.mode) for a in plan.alters if a.kind == "add_column"]
    if adds:
        bq.add_columns(plan.dataset, plan.table, adds)
    relax = [a.column for a in plan.alters if a.kind == "relax_required"]
    if relax:
        bq.relax_columns(plan.dataset, plan.table, relax)
    if "backfill_tag" in kinds and plan.source_tag:
        column = quote_identifier(plan.tag_column or TAG_COLUMN)
        bq.execute(f"UPDATE {bq.sql_table(plan.dataset, plan.table)} SET {column} = @tag "  # noqa: S608
                   f"WHERE {column} IS NULL", {"tag": plan.source_tag})


class UnknownColumns(ValueError):
    """Column names the source table does not have (the API answers 400 naming them)."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__("Unknown source columns: " + ", ".join(repr(n) for n in names))
        self.names = list(names)


def source_columns_named(connection: Connection, source_table: str,
                         names: Sequence[str] | None = None) -> list[SourceColumn]:
    """The selected columns, typed by introspection, for a caller that only has names (the API's plain list).

    `source_table` is "schema.table" or "table"; `names` None selects every column. Raises
    `UnknownColumns`, or the source's `SourceError`.
    """
    schema, table = sources.split_table(source_table)
    available = sources.get_columns(connection, schema, table)
    if names is None:
        return available
    by_name = {c.name.lower(): c for c in available}
    unknown = [n for n in names if n.lower() not in by_name]
    if unknown:
        raise UnknownColumns(unknown)
    return [by_name[n.lower()] for n in names]


@dataclass(frozen=True)
class ReconnectCheck:
    """Reconnect's question: do the job's columns exist in the new source, and does the table still take them?"""

    result: SchemaCheckResult
    selected: list[SourceColumn]  # the job's columns as the new source spells them
    missing: list[str]  # the job's columns the new source lacks

    @property
    def ok(self) -> bool:
        return self.result.ok and not self.missing


def check_reconnect(*, workspace: Workspace, job: EtlJob, connection: Connection, schema: str | None,
                    table: str) -> ReconnectCheck:
    """The schema check for pointing `job` at `connection`'s `schema.table` (the page and the API ask this).

    Raises the source's `SourceError` or `BigQueryError` for the caller to show where the user is.
    """
    by_name = {c.name.lower(): c for c in sources.get_columns(connection, schema, table)}
    selected = [by_name[c.lower()] for c in job.selected_columns if c.lower() in by_name]
    missing = [c for c in job.selected_columns if c.lower() not in by_name]
    choices = Choices(load_strategy=job.load_strategy, cursor_column=job.cursor_column,
                      merge_key=tuple(job.merge_key or ()), source_tag=job.source_tag)
    result = check(workspace=workspace, source_columns=selected,
                   destination=Destination(job.destination_dataset, job.destination_table),
                   choices=choices, dialect=connection.engine, exclude_job=job, creating=False)
    return ReconnectCheck(result=result, selected=selected, missing=missing)
