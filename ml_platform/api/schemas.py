"""Request bodies as pydantic models: unknown fields and values of the wrong type or shape are a 400 naming the
field (`extra="forbid"`), before any source or BigQuery call."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from ml_platform.etl.compat_model import default_load_strategy
from ml_platform.etl.schedule import cron_error, is_valid_timezone

Name = Annotated[str, StringConstraints(min_length=1, max_length=300)]
Strategy = Literal["replace", "append", "incremental", "merge"]
QualifiedTable = Annotated[str, StringConstraints(min_length=3, max_length=1100)]
SourceTable = Annotated[str, StringConstraints(min_length=1, max_length=600)]
Tag = Annotated[str, StringConstraints(max_length=64, pattern=r"^[A-Za-z0-9_.:-]*$")]
Cron = Annotated[str, StringConstraints(max_length=100)]
TimeZone = Annotated[str, StringConstraints(max_length=64)]


def has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def no_nul(cls, value: Any) -> Any:
        # No database stores a NUL inside text (PostgreSQL refuses it): a bad value, never a 500 later on.
        if has_nul(value):
            raise ValueError("must not contain NUL characters")
        return value


def runnable_cron(value: str | None) -> str | None:
    # A schema error (400 naming `schedule`), before any source or BigQuery call.
    if value is None:
        return None
    value = value.strip()
    if value and (problem := cron_error(value)):
        raise ValueError(problem)
    return value


def known_timezone(value: str | None) -> str | None:
    if value is not None and not is_valid_timezone(value):
        raise ValueError(f"unknown time zone {value!r}")
    return value


def qualified(value: str | None) -> str | None:
    if value is not None and value.count(".") != 1:
        raise ValueError("must be 'dataset.table'")
    return value


# --------------------------------------------------------------------------- connections


class ConnectionIn(Body):
    """A connection's fields as JSON types; null blanks a field. The shared `ConnectionForm` then applies the
    domain rules (engines, ports, allow-listed options, SQLite paths) exactly as on the page."""

    name: str | None = None
    engine: str | None = None
    host: str | None = None
    port: StrictInt | None = None
    database: str | None = None
    username: str | None = None
    password: str | None = None
    options: dict[str, Any] | None = None


# --------------------------------------------------------------------------- compatibility and job creation


class ColumnIn(Body):
    name: Name
    type: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    nullable: bool = True
    primary_key: bool = False


class CompatibilityIn(Body):
    # Typed columns (as the database names the types), or plain names with connection_id + source_table.
    source_columns: list[ColumnIn] | list[Name] | None = Field(default=None, max_length=10_000)
    destination_table: QualifiedTable
    load_strategy: Strategy = default_load_strategy(existing_table=True)  # a check against an existing table
    merge_key: list[Name] = Field(default_factory=list, max_length=64)
    cursor_column: Name | None = None
    source_tag: Tag | None = None
    relax_required: bool = False
    connection_id: int | None = None
    source_table: SourceTable | None = None
    dialect: Literal["postgresql", "mysql", "sqlite"] | None = None
    validate_data: bool = False

    _qualified = field_validator("destination_table")(qualified)


class JobIn(Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    connection_id: int
    source_table: SourceTable
    # The selected columns, by name (types come from the source): `columns`, or `source_columns` as the spec's
    # example body names them. None = every column of the table.
    columns: list[Name] | None = Field(default=None, max_length=10_000)
    source_columns: list[Name] | None = Field(default=None, max_length=10_000)
    use_existing_table: bool = False
    existing_table_name: QualifiedTable | None = None
    destination_table: QualifiedTable | None = None
    load_strategy: Strategy | None = None  # default: Replace into a new table, Append into an existing one
    merge_key: list[Name] = Field(default_factory=list, max_length=64)
    cursor_column: Name | None = None
    source_tag: Tag | None = None
    relax_required: bool = False
    add_columns: list[Name] = Field(default_factory=list)
    partition_field: Name | None = None
    clustering: list[Name] = Field(default_factory=list, max_length=4)
    schedule: Cron = ""
    schedule_timezone: TimeZone = "UTC"
    run_now: bool = False
    # Replace into an existing table with rows in this job's tag scope deletes them: the caller confirms it.
    confirm_replace: bool = False
    # A tagged job on a table holding untagged rows: the tag is set on those rows (one UPDATE) when confirmed.
    confirm_backfill: bool = False
    # Scan the source for values the table's narrower types would refuse (as the wizard's "Validate data").
    validate_data: bool = False

    _cron = field_validator("schedule")(runnable_cron)
    _timezone = field_validator("schedule_timezone")(known_timezone)
    _qualified = field_validator("existing_table_name", "destination_table")(qualified)

    @model_validator(mode="after")
    def one_column_list(self) -> JobIn:
        if self.columns is not None and self.source_columns is not None and self.columns != self.source_columns:
            raise ValueError("give the selected columns once: `columns` or `source_columns`")
        return self

    @property
    def selected(self) -> list[str] | None:
        return self.columns if self.columns is not None else self.source_columns

    @property
    def target(self) -> tuple[str, str | None]:
        """The field naming the destination and its value."""
        if self.use_existing_table:
            return "existing_table_name", self.existing_table_name
        return "destination_table", self.destination_table


# --------------------------------------------------------------------------- the job page's actions


class JobPatchIn(Body):
    """Edit: what the Edit page changes. Absent fields keep their value."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)] | None = None
    columns: list[Name] | None = Field(default=None, min_length=1, max_length=10_000)
    load_strategy: Strategy | None = None
    cursor_column: Name | None = None
    merge_key: list[Name] | None = Field(default=None, max_length=64)
    schedule: Cron | None = None
    schedule_timezone: TimeZone | None = None
    # Selected columns the table lacks, approved for adding (NULLABLE), as the Edit page's ticks.
    add_columns: list[Name] = Field(default_factory=list)

    _cron = field_validator("schedule")(runnable_cron)
    _timezone = field_validator("schedule_timezone")(known_timezone)


class ReconnectIn(Body):
    """Reconnect: the new connection and/or source table (absent: the job's current one)."""

    connection_id: int | None = None
    source_table: SourceTable | None = None


class VerifyIn(Body):
    """Verify: `wait` answers with the result instead of queueing; `repair` reloads the differing key ranges."""

    wait: StrictBool = False  # "yes" is not a yes: a 400, never a verification the caller did not ask for
    repair: StrictBool = False
