"""Compatibility checks with I/O: fetch both schemas, run the pure engine, describe the table's state.

Shared by the wizard, the Edit and Reconnect flows and the JSON API, so every
place shows the same verdict for the same input.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.http import Http404

from ml_platform import selectors
from ml_platform.etl import compatibility as engine
from ml_platform.etl.types import BigQueryField, SourceColumn, TableSchema
from ml_platform.models import Connection, EtlJob, Workspace
from ml_platform.warehouse import warehouse

TAG_COLUMN = "_source_tag"


@dataclass
class TableState:
    """What already is in the destination table, and what the runner will do about it."""

    row_count: int | None = None
    max_cursor: Any = None
    sentence: str = ""


@dataclass
class ReportContext:
    report: engine.CompatibilityReport
    destination: TableSchema
    state: TableState
    other_jobs: list[EtlJob] = field(default_factory=list)

    @property
    def relax_columns(self) -> list[str]:
        return [a.column for a in self.report.can_alter if a.kind == "relax_required"]

    @property
    def other_tags(self) -> list[str] | None:
        if not self.other_jobs:
            return None
        return [j.source_tag for j in self.other_jobs]


def column_mapping(report: engine.CompatibilityReport, destination: TableSchema,
                   added: list[BigQueryField]) -> dict[str, str]:
    """Source name -> destination name for every source column that lands in an existing (or added) column.

    The engine decides the matching (case-insensitive, or by the normalised name).
    A selected column neither present nor approved for adding has no entry: callers refuse
    such a selection (`check_new_columns`) rather than drop the column silently.
    """
    present = {f.name.lower() for f in destination.fields} | {f.name.lower() for f in added}
    return {row.source_name: row.destination_name for row in report.columns
            if row.source_name and row.destination_name and row.destination_name.lower() in present}


def options_from(
    *,
    load_strategy: str,
    cursor_column: str = "",
    merge_key: list[str] | tuple[str, ...] = (),
    source_tag: str = "",
    relax_required: bool = False,
    validation: dict[str, engine.ValidationResult] | None = None,
) -> engine.CompatibilityOptions:
    return engine.CompatibilityOptions(
        load_strategy=load_strategy or "append",
        merge_key=tuple(merge_key or ()),
        cursor_column=cursor_column or None,
        source_tag=source_tag or None,
        tag_column=TAG_COLUMN,
        relax_required=relax_required,
        validation=validation or {},
    )


def table_state(
    *, destination: TableSchema, options: engine.CompatibilityOptions, row_count: int | None = None
) -> TableState:
    """Row count and MAX(cursor) of the destination, and the sentence the runner will act on."""
    bq = warehouse()
    if row_count is None:
        row_count = bq.row_count(destination.dataset, destination.table)
    state = TableState(row_count=row_count)
    if not row_count:
        state.sentence = "The table is empty: the first run loads every selected source row."
        return state
    strategy = options.load_strategy
    cursor = options.cursor_column
    dest_cursor = destination.field_by_name(cursor) if cursor else None
    tag_filter = None
    if options.source_tag and destination.field_by_name(options.tag_column):
        tag_filter = (options.tag_column, options.source_tag)
    if strategy == "incremental" and dest_cursor is not None:
        state.max_cursor = bq.max_value(destination.dataset, destination.table, dest_cursor.name, where_tag=tag_filter)
        scope = f" for source tag {options.source_tag!r}" if tag_filter else ""
        if state.max_cursor is None:
            state.sentence = f"No rows{scope} yet: the first run loads every selected source row."
        else:
            state.sentence = (
                f"Resumes after {cursor} {format_value(state.max_cursor)}{scope}: only source rows with "
                f"{cursor} > {format_value(state.max_cursor)} are loaded, so no row is loaded twice."
            )
    elif strategy == "replace":
        scope = f"the rows tagged {options.source_tag!r}" if options.source_tag else f"all {row_count:,} rows"
        state.sentence = f"Each run replaces {scope} atomically with the current source rows."
    elif strategy == "merge":
        keys = ", ".join(options.merge_key) or "the key"
        state.sentence = f"Each run updates rows matching on {keys} and inserts the others."
    else:
        state.sentence = f"Each run appends the selected source rows to the {row_count:,} rows already there."
    return state


def format_value(value: Any) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def report_for(
    *,
    workspace: Workspace,
    source_columns: list[SourceColumn],
    dataset: str,
    table: str,
    options: engine.CompatibilityOptions,
    exclude_job: EtlJob | None = None,
    with_state: bool = True,
) -> ReportContext:
    if not selectors.workspace_owns_dataset(workspace=workspace, dataset=dataset):
        # Another workspace's dataset: no schema, no row count, no MAX() — it does not exist here.
        raise Http404("No such dataset")
    destination = warehouse().get_table_schema(dataset, table)
    report = engine.check_compatibility(source_columns, destination, options)
    others = list(selectors.jobs_loading_into(workspace=workspace, dataset=dataset, table=table))
    if exclude_job is not None:
        others = [j for j in others if j.pk != exclude_job.pk]
    state = table_state(destination=destination, options=options) if with_state else TableState()
    return ReportContext(report=report, destination=destination, state=state, other_jobs=others)


def validate_data(
    *,
    connection: Connection,
    schema: str | None,
    table: str,
    source_columns: list[SourceColumn],
    destination: TableSchema,
    options: engine.CompatibilityOptions,
) -> dict[str, engine.ValidationResult]:
    """Scan the source for values that would fail the narrowing casts (set-based, sampled on big tables)."""
    from ml_platform.sources import interactive, params_for
    from ml_platform.utils import validation

    specs = engine.narrowing_checks(source_columns, destination, options)
    if not specs:
        return {}
    params = params_for(connection)
    return interactive(
        lambda: validation.validate_columns(params, schema, table, specs,
                                            sample_above=settings.ETL_VALIDATION_SAMPLE_ROWS),
        timeout=settings.ETL_VALIDATION_TIMEOUT, what="The data validation",
    )


def new_columns(report: engine.CompatibilityReport) -> list[str]:
    """The destination names of the selected source columns the table lacks (offered for adding)."""
    return [a.column for a in report.can_alter if a.kind == "add_column" and a.column != TAG_COLUMN]


def check_new_columns(report: engine.CompatibilityReport, add_columns: list[str] | tuple[str, ...]) -> list[str]:
    """What is wrong with the "Add these columns" choice, in the user's terms (empty: consistent).

    Every selected column the table lacks must be ticked for adding (or unselected), and only
    such columns can be ticked: the job's selected columns and the table's columns then agree,
    so no selected column is silently left out of the loads.
    """
    offered = new_columns(report)
    ticked = {c.lower() for c in add_columns}
    problems = []
    unticked = [c for c in offered if c.lower() not in ticked]
    if unticked:
        problems.append(
            "Selected column(s) " + ", ".join(repr(c) for c in unticked) + " are not in the table: tick them "
            "under \"Add these columns to the table\", or unselect them."
        )
    unknown = sorted(ticked - {c.lower() for c in offered})
    if unknown:
        problems.append("Cannot add " + ", ".join(repr(c) for c in unknown) + ": not a selected source column "
                        "missing from the table.")
    return problems


def report_delay() -> None:
    """TEST ONLY (settings.ETL_TEST_REPORT_DELAY_MS): hold a live report answer back to widen races."""
    delay = getattr(settings, "ETL_TEST_REPORT_DELAY_MS", 0)
    if delay > 0:
        time.sleep(delay / 1000)
