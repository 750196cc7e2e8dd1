"""Load-strategy rules of the compatibility engine: merge keys, declared primary keys, the cursor.

A mixin of `compatibility._Engine` (it reads the engine's mapping and writes its
errors/warnings); kept apart so each rule set reads on its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ml_platform.etl.compat_model import SourceColumn, _Dest, _source_label, missing_strategy_choices
from ml_platform.etl.types import Family

# Cursor columns must sort the way the data grows; FLOAT64 is left out on purpose
# (equal-looking values compare unequal and the watermark could skip rows).
_ORDERABLE_SOURCE_FAMILIES = frozenset({Family.INTEGER, Family.DECIMAL, Family.DATE, Family.TIMESTAMP})
_ORDERABLE_DESTINATION_TYPES = frozenset({"INT64", "NUMERIC", "BIGNUMERIC", "DATE", "DATETIME", "TIMESTAMP"})
# MERGE ... ON compares keys with `=`, which BigQuery refuses for these types.
_UNCOMPARABLE_KEY_TYPES = frozenset({"JSON", "GEOGRAPHY", "RECORD"})


class StrategyChecks:
    """Strategy, key and cursor checks; expects the attributes `compatibility._Engine` sets."""

    def _source(self, role: str, name: str) -> SourceColumn | None:
        """The selected source column `name` that plays `role` ("Cursor column"...), or None with an error."""
        column = self.by_source.get(name.lower())
        if column is None:
            self.errors.append(f"{role} {name!r} is not among the selected source columns.")
        return column

    def _mapped(self, role: str, column: SourceColumn, name: str, why: str) -> _Dest | None:
        """The destination column `column` loads into, or None with an error saying `why` it must exist."""
        dest = self.mapped.get(column.name.lower())
        if dest is None:
            self.errors.append(f"{role} {name!r} is not in the destination table: {why}")
        return dest

    def _check_strategy(self) -> None:
        strategy = self.options.load_strategy
        merge_dest_key: list[str] | None = None
        if strategy == "merge":
            merge_dest_key = self._check_merge_key()
            if self.options.cursor_column:
                self._check_cursor(strategy)
        if strategy == "incremental":
            self._check_cursor(strategy)
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
        if missing := missing_strategy_choices("merge", None, keys):
            self.errors.append(f"{missing['merge_key']} Choose the column(s) that identify a row on both sides.")
            return None
        dest_names: list[str] = []
        complete = True
        for key in keys:
            column = self._source("Merge key column", key)
            dest = None if column is None else self._mapped(
                "Merge key column", column, key, "MERGE matches rows on columns that exist on both sides.")
            if column is None or dest is None:
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

    def _key_differs(self, declared: Sequence[str], key: Sequence[str]) -> bool:
        """Whether the declared PRIMARY KEY is another than `key` (or `key` plus the tag column); names ignore case."""
        key_set = {k.lower() for k in key}
        tag_set = {self.tag_column.lower()} if self.tag is not None else set()
        return {k.lower() for k in declared} not in (key_set, key_set | tag_set)

    def _check_primary_key(self, strategy: str, merge_dest_key: list[str] | None) -> None:
        declared = self.destination.primary_key
        if not declared:
            # None: unknown (the emulator stores no constraints, and many tables have none);
            # an empty key declares nothing. Either way there is nothing to contradict.
            return
        declared_text = ", ".join(declared)
        if strategy == "merge":
            if merge_dest_key is None:
                return
            if self._key_differs(declared, merge_dest_key):
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
        if self._key_differs(declared, source_key):
            self.warnings.append(
                f"The destination's PRIMARY KEY ({declared_text}) differs from the source's primary key "
                f"({', '.join(source_key)}): {strategy} can load rows that duplicate the declared key."
            )

    def _check_cursor(self, strategy: str) -> None:
        """The same rules for incremental and for merge with a cursor: both read `cursor > watermark`."""
        name = self.options.cursor_column
        if missing := missing_strategy_choices("incremental", name, ()):
            self.errors.append(
                f"{missing['cursor_column']} Choose an INTEGER, DECIMAL, DATE or TIMESTAMP column that grows with "
                "new rows."
            )
            return
        column = self._source("Cursor column", name)
        if column is None:
            return
        if column.type.family not in _ORDERABLE_SOURCE_FAMILIES:
            self.errors.append(_unorderable_cursor(name, column, strategy))
            return
        why = f"the run resumes after MAX({name}) of the destination, so the column must exist on both sides."
        dest = self._mapped("Cursor column", column, name, why)
        if dest is None:
            return
        if dest.type not in _ORDERABLE_DESTINATION_TYPES or dest.mode == "REPEATED":
            self.errors.append(
                f"Cursor column {name!r} is {dest.mode} {dest.label} in the destination, which does not order "
                "like the source values: MAX() of it cannot be the resume point."
            )
            return
        if column.nullable:
            self.warnings.append(
                f"Cursor column {name!r} allows NULL: {strategy} runs read only rows with cursor > the last loaded "
                "value, so rows whose cursor is NULL are never loaded (not now, not later). Fix: make the column NOT "
                "NULL in the source (fill the NULLs, e.g. with the row's creation time), or choose a cursor that is "
                "never NULL."
            )
        coarse = _coarse_cursor(column)
        if coarse:
            self.warnings.append(
                f"Cursor column {name!r} is {coarse}: a row written after a run with the same {name} as the last "
                "loaded value is never loaded, because the next run reads only rows with a greater value. Fix: set "
                "a re-read window (for example 1 day for a DATE, a few minutes for a timestamp) so each run re-reads "
                "rows from the last loaded value minus the window and skips those already loaded, by the key; or use "
                "a finer cursor (a timestamp with microseconds, or an id that only grows)."
            )


def _unorderable_cursor(name: str, column: SourceColumn, strategy: str) -> str:
    label = _source_label(column)
    why = {
        Family.JSON: "JSON values cannot be compared with > (the database refuses the filter)",
        Family.FLOAT: "floating-point values are not exact, so equal-looking values can compare unequal",
        Family.ARRAY: "arrays have no order that grows with new rows",
        Family.BOOLEAN: "a boolean has only two values",
    }.get(column.type.family, "its values have no order that grows with new rows")
    return (
        f"Cursor column {name!r} is {label}, which cannot be the cursor of {strategy} runs: {why}. Choose an INTEGER, "
        "DECIMAL, DATE or TIMESTAMP column that grows with new rows (an id, an updated_at)."
    )


_FRACTION_DIGITS = re.compile(r"\(\s*(\d+)\s*\)")


def _coarse_cursor(column: SourceColumn) -> str | None:
    """How a cursor is coarse enough for new rows to share the last loaded value (None: fine-grained)."""
    if column.type.family is Family.DATE:
        return "a DATE"
    if column.type.family is not Family.TIMESTAMP:
        return None
    text = (column.source_type or "").strip().lower()
    declared = _FRACTION_DIGITS.search(text)
    if declared is not None:
        seconds_only = int(declared.group(1)) == 0
    else:
        # MySQL/MariaDB DATETIME and TIMESTAMP default to whole seconds; so do SQLite's usual
        # CURRENT_TIMESTAMP texts. PostgreSQL's (spelled "timestamp with[out] time zone") keep microseconds.
        seconds_only = text in ("datetime", "timestamp")
    return f"{text.upper()} with whole-second precision" if seconds_only else None
