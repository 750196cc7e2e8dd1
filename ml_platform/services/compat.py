"""Helpers of the schema check (`ml_platform/schema_check.py`, the one place that decides compatibility).

Options, the column mapping read off a report, the "add these columns" consistency rule and the
source-data validation scan. Nothing here decides compatibility on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from ml_platform.etl import compatibility as engine
from ml_platform.etl.compat_model import DEFAULT_TAG_COLUMN as TAG_COLUMN
from ml_platform.etl.compat_model import default_load_strategy
from ml_platform.etl.sources import validate as validation
from ml_platform.etl.types import BigQueryField, SourceColumn, TableSchema
from ml_platform.models import Connection
from ml_platform.services import sources


@dataclass
class TableState:
    """What already is in the destination table, and what the runner will do about it."""

    row_count: int | None = None
    max_cursor: Any = None
    sentence: str = ""


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
        load_strategy=load_strategy or default_load_strategy(existing_table=True),
        merge_key=tuple(merge_key or ()),
        cursor_column=cursor_column or None,
        source_tag=source_tag or None,
        tag_column=TAG_COLUMN,
        relax_required=relax_required,
        validation=validation or {},
    )


def format_value(value: Any) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


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
    specs = engine.narrowing_checks(source_columns, destination, options)
    if not specs:
        return {}
    params = sources.params_for(connection)
    return sources.interactive(
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
