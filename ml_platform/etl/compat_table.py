"""Table-level rules of the compatibility engine: REQUIRED columns, destination-only columns, the tag column.

A mixin of `compatibility._Engine` (it reads the engine's index of the destination and
writes rows, errors and offers through the engine's helpers).
"""

from __future__ import annotations

import re

from ml_platform.etl.bqsql import partition_filter
from ml_platform.etl.bqsql import shown_name as _quote
from ml_platform.etl.compat_model import AlterAction, ValidationResult, _Dest, _Finding, _fmt
from ml_platform.etl.errors import SchemaMismatchError
from ml_platform.etl.type_rules import UNLOADABLE_TYPES
from ml_platform.etl.types import TableSchema

_COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")
_MAX_EXAMPLES = 5


class TableChecks:
    """REQUIRED, destination-only and source-tag checks; expects the attributes `compatibility._Engine` sets."""

    def _offer_relax(self, dest: _Dest) -> None:
        """Offer to relax a REQUIRED destination column to NULLABLE."""
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

    def _required_but_nullable(self, dest: _Dest, validation: ValidationResult | None) -> _Finding:
        self._offer_relax(dest)
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
                self._offer_relax(dest)
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
            self._row(source=None, source_type=None, dest=dest, findings=[finding], subject=subject)

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
            self._row(source=None, source_type=source_type, dest=(self.tag_column, "STRING", "NULLABLE"),
                      findings=[finding], subject=subject)
            return
        if dest.type != "STRING" or dest.mode == "REPEATED":
            finding = _Finding(
                "error",
                f"It holds source tags, so it must be a STRING column, but it is {dest.mode} {dest.label}.",
                "Choose another source tag column name.",
            )
        else:
            finding = _Finding("ok", f"Rows loaded by this job are tagged {self.tag!r}.")
        self._row(source=None, source_type=source_type, dest=dest, findings=[finding], subject=subject)

    # -- the table's partitioning

    def _check_partitioning(self) -> None:
        """What the destination's partitioning means for this job: one report row, read from the table options."""
        table = self.destination
        if not table.partitioning:
            return
        findings = [_filter_finding(table, self.options.load_strategy), _partition_limit_finding(table)]
        expiration = _expiration_finding(table)
        if expiration is not None:
            findings.insert(1, expiration)
        self._row(
            source=None,
            source_type="table partitioning",
            dest=(None, table.partitioning, "require_partition_filter" if table.require_partition_filter else None),
            findings=findings,
            subject=f"Partitioning {table.partitioning}",
        )

    # -- keys, cursor and strategy


# --------------------------------------------------------------------------- partitioning

# BigQuery's limit on the partitions one job (a load, or a query/DML statement) may modify.
MAX_PARTITIONS_PER_JOB = 4000
# What 4,000 partitions of each type span, said the way a user plans a first load.
_PARTITION_SPAN = {
    "HOUR": "about 166 days of data",
    "DAY": "about 11 years of data",
    "MONTH": "about 333 years of data",
    "YEAR": "4,000 years of data",
}
# The statements of these strategies read or change the job's existing rows (DELETE, MAX, MERGE, anti-join).
_FILTERED_STRATEGIES = ("replace", "incremental", "merge")
_MS_PER_DAY = 86_400_000


def _filter_finding(table: TableSchema, strategy: str) -> _Finding:
    """Whether the runner's statements can name the partitioning column (bqsql.partition_filter's refusals)."""
    required = table.require_partition_filter
    if strategy in _FILTERED_STRATEGIES:
        try:
            partition_filter(table.partitioning, {f.name: f.field_type for f in table.fields})
        except SchemaMismatchError as exc:
            fix = "Use the append strategy (its INSERTs read no existing rows), or load into a table partitioned on a "
            fix += "DATE, DATETIME, TIMESTAMP or INT64 column"
            if required:
                fix += (f" (or remove the option: ALTER TABLE {_quote(table.dataset)}.{_quote(table.table)} "
                        "SET OPTIONS (require_partition_filter = false))")
            return _Finding(
                "error",
                f"Every {strategy} run filters the job's rows of the table on its partitioning column, and this "
                f"partitioning cannot be filtered on: {exc}.",
                fix + ".",
            )
    if not required:
        return _Finding("ok", "")
    column = table.partition_column or "the partitioning column"
    if strategy in _FILTERED_STRATEGIES:
        return _Finding(
            "ok",
            f"The table requires a partition filter: every DELETE, MAX, MERGE and lookup of existing rows the runner "
            f"issues filters on {column} (a filter true for every row, so no row is skipped).",
        )
    return _Finding(
        "ok",
        f"The table requires a partition filter: an {strategy} run only INSERTs, which needs none; any statement "
        f"the runner issues on existing rows filters on {column}.",
    )


def _expiration_finding(table: TableSchema) -> _Finding | None:
    ms = table.partition_expiration_ms
    if not ms or ms <= 0:
        return None
    days = ms / _MS_PER_DAY
    shown = f"{days:,.0f}" if days >= 10 or days == int(days) else f"{days:,.2f}".rstrip("0").rstrip(".")
    unit = "day" if shown == "1" else "days"
    column = table.partition_column or ""
    if column.upper() in ("_PARTITIONTIME", "_PARTITIONDATE"):
        what = (f"every row is deleted by BigQuery {shown} {unit} after the run that loaded it (the table is "
                "partitioned by load time)")
    else:
        what = (f"BigQuery deletes every partition older than {shown} {unit}, so source rows whose {column} falls "
                "in such a partition are deleted right after loading")
    return _Finding(
        "warning",
        f"Partition expiration is {shown} {unit}: {what}. They will be missing from the table, and Verify will "
        "count them missing.",
    )


def _partition_limit_finding(table: TableSchema) -> _Finding:
    kind = table.partition_type or ""
    column = table.partition_column or ""
    if column.upper() in ("_PARTITIONTIME", "_PARTITIONDATE"):
        span = ("a run's new rows land in the partition of its load time, but a replace or merge also changes "
                "every partition holding rows it deletes or updates")
    elif kind == "RANGE":
        span = f"that is 4,000 ranges of {column}"
    else:
        span = f"with {kind} partitioning that is {_PARTITION_SPAN.get(kind, '4,000 partitions')} by {column}"
    return _Finding(
        "warning",
        f"One run (one commit unit) that writes into more than {MAX_PARTITIONS_PER_JOB:,} partitions fails "
        f"(BigQuery's per-job limit); {span}.",
        "Load a long history in pieces: lower ETL_CHECKPOINT_ROWS so each checkpoint spans fewer partitions, "
        "start with a smaller first load (e.g. a recent range), or use a coarser partitioning (MONTH or YEAR).",
    )


# --------------------------------------------------------------------------- the type table


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
