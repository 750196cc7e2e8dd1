"""The load plan a job records when its schema is checked, and the run-time check that the table still fits it.

The schema check (`ml_platform/schema_check.py`) decides compatibility once — at job creation,
Edit and Reconnect — and stores the resulting plan on the job: which source column lands in
which destination column, with which type and mode, which ALTERs were applied, the tag. At run
time the runner never decides again: `table_mismatches` compares the table as it is now with
the plan, and a run on a table that changed fails with `mismatch_message` (what changed, how to
fix it) before anything is extracted or loaded.

Pure: no Django, no BigQuery client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ml_platform.etl.types import BigQueryField, TableSchema, standard_bigquery_type

PLAN_VERSION = 1


@dataclass(frozen=True)
class PlannedColumn:
    """One selected source column and the destination column it is loaded into."""

    source: str
    destination: str
    field_type: str  # the destination's GoogleSQL type when the plan was made (INT64, NUMERIC, ...)
    mode: str = "NULLABLE"
    source_type: str = ""  # as the source database names it
    cast: str = ""  # "<canonical family> -> <destination type>": the conversion the conformer applies


@dataclass(frozen=True)
class PlannedAlter:
    """A schema change applied to the destination when the plan was recorded."""

    kind: str  # create_table | add_column | relax_required | backfill_tag
    column: str = ""
    field_type: str = ""
    mode: str = "NULLABLE"
    detail: str = ""


@dataclass(frozen=True)
class LoadPlan:
    dataset: str
    table: str
    mode: str  # new | existing
    dialect: str = ""
    columns: tuple[PlannedColumn, ...] = ()
    tag_column: str | None = None  # set when the job tags its rows
    source_tag: str | None = None
    alters: tuple[PlannedAlter, ...] = ()
    partition_field: str | None = None
    clustering: tuple[str, ...] = ()
    version: int = PLAN_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def mapping(self) -> dict[str, str]:
        """Source name -> destination name."""
        return {c.source: c.destination for c in self.columns}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoadPlan:
        return cls(
            dataset=str(data["dataset"]),
            table=str(data["table"]),
            mode=str(data.get("mode") or "existing"),
            dialect=str(data.get("dialect") or ""),
            columns=tuple(PlannedColumn(**c) for c in data.get("columns") or ()),
            tag_column=data.get("tag_column"),
            source_tag=data.get("source_tag"),
            alters=tuple(PlannedAlter(**a) for a in data.get("alters") or ()),
            partition_field=data.get("partition_field"),
            clustering=tuple(data.get("clustering") or ()),
            version=int(data.get("version") or PLAN_VERSION),
            extra=dict(data.get("extra") or {}),
        )

    def new_table_fields(self) -> tuple[BigQueryField, ...]:
        """The schema a new table is created with (planned columns, then the tag column)."""
        fields = [BigQueryField(c.destination, c.field_type, c.mode) for c in self.columns]
        if self.tag_column:
            fields.append(BigQueryField(self.tag_column, "STRING", "NULLABLE",
                                        description="Source tag of the loading job"))
        return tuple(fields)


def _type_of(f: BigQueryField) -> str:
    return standard_bigquery_type(f.field_type)


def table_mismatches(plan: LoadPlan | Mapping[str, Any], schema: TableSchema | None) -> list[str]:
    """What differs between the recorded plan and the table as it is now (empty: the plan still holds).

    A planned column must still be there with the same type; a NULLABLE column must not have
    become REQUIRED (REQUIRED relaxed to NULLABLE is harmless); the tag column must be a STRING;
    a REQUIRED column this job does not fill must not have appeared. A table that is gone only
    matters for a job on an existing table: a job that created its table creates it again.
    """
    if not isinstance(plan, LoadPlan):
        plan = LoadPlan.from_json(plan)
    where = f"{plan.dataset}.{plan.table}"
    if schema is None:
        if plan.mode == "new":
            return []
        return [f"The table {where} no longer exists."]
    problems: list[str] = []
    for column in plan.columns:
        now = schema.field_by_name(column.destination)
        if now is None:
            problems.append(f"Column {column.destination!r} (loaded from source column {column.source!r}) is no "
                            f"longer in {where}.")
            continue
        if _type_of(now) != standard_bigquery_type(column.field_type):
            problems.append(f"Column {now.name!r} changed type from {column.field_type} to {_type_of(now)}.")
        if now.mode != column.mode and not (column.mode == "REQUIRED" and now.mode == "NULLABLE"):
            problems.append(f"Column {now.name!r} changed mode from {column.mode} to {now.mode}.")
    if plan.tag_column:
        tag = schema.field_by_name(plan.tag_column)
        if tag is None:
            problems.append(f"The source tag column {plan.tag_column!r} is no longer in {where}.")
        elif _type_of(tag) != "STRING" or tag.mode == "REPEATED":
            problems.append(f"The source tag column {plan.tag_column!r} is no longer a STRING column.")
    fed = {c.destination.lower() for c in plan.columns} | ({plan.tag_column.lower()} if plan.tag_column else set())
    for f in schema.fields:
        if f.mode == "REQUIRED" and f.name.lower() not in fed:
            problems.append(f"{where} gained REQUIRED column {f.name!r}, which this job does not fill.")
    return problems


def mismatch_message(plan: LoadPlan | Mapping[str, Any], problems: Sequence[str]) -> str:
    """The run's error: what changed and how to fix it."""
    if not isinstance(plan, LoadPlan):
        plan = LoadPlan.from_json(plan)
    return (f"The table {plan.dataset}.{plan.table} no longer matches the load plan this job was set up with: "
            + " ".join(problems)
            + " Nothing was loaded. Fix: edit the job (Edit re-runs the schema check against the table as it is "
              "now and records a new plan), or change the table back.")
