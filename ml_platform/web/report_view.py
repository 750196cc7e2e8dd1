"""The explicit context of the compatibility report partial (wizard step 4, Edit, Reconnect).

The partial reads only what is built here from the schema check's result and the user's ticks,
never the caller's form, so each page builds its form once and every page shows the same report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ml_platform.services.schema_check import TAG_COLUMN, SchemaCheckResult


@dataclass
class ReportView:
    check: SchemaCheckResult
    add_choices: list[str]
    add_ticked: list[str]
    relax_columns: list[str]
    relax_checked: bool
    replace_deletes: int
    confirm_replace_checked: bool
    confirm_replace_label: str
    backfill_rows: int
    confirm_backfill_checked: bool
    confirm_backfill_label: str
    cursor_column: str
    errors: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @property
    def report(self) -> Any:
        return self.check.report

    @property
    def compatible(self) -> bool:
        return self.check.report.compatible

    def field_errors(self, name: str) -> list[str]:
        return list(self.errors.get(name) or [])

    @property
    def add_errors(self) -> list[str]:
        return self.field_errors("add_columns")

    @property
    def confirm_replace_errors(self) -> list[str]:
        return self.field_errors("confirm_replace")


def report_view(check: SchemaCheckResult, *, errors: Mapping[str, Sequence[str]] | None = None) -> ReportView:
    """The partial's context from one check: the ticks are the choices the check was run with."""
    choices = check.choices
    target = f"{check.target.dataset}.{check.target.table}"
    tag = choices.source_tag
    return ReportView(
        check=check,
        add_choices=check.new_columns,
        add_ticked=list(choices.add_columns),
        relax_columns=check.relax_columns,
        relax_checked=choices.relax_required,
        replace_deletes=check.replace_deletes,
        confirm_replace_checked=choices.confirm_replace,
        confirm_replace_label=f"Delete the {check.replace_deletes:,} rows this job loads into {target}",
        backfill_rows=check.untagged_rows if check.backfill_offered else 0,
        confirm_backfill_checked=choices.confirm_backfill,
        confirm_backfill_label=f"Set {TAG_COLUMN} = '{tag}' on the {check.untagged_rows:,} untagged rows "
                               "(one UPDATE when the job is created)",
        cursor_column=choices.cursor_column,
        errors=dict(errors or {}),
    )
