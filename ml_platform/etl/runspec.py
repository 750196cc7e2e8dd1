"""The runner's vocabulary: what a run is asked to do (RunSpec), what it reports, and its plan."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ml_platform.etl import compat_model
from ml_platform.etl.compat_model import DEFAULT_TAG_COLUMN, default_load_strategy
from ml_platform.etl.extract import Method
from ml_platform.etl.types import BigQueryField, SourceColumn, normalize_column_names

LoadStrategy = compat_model.LoadStrategy
Phase = Literal["starting", "extracting", "loading", "committing", "checkpoint", "done"]
# How an incremental job without a key treats the rows its re-read window reads again:
# "dedup" compares whole rows (identical rows are one row), "append" loads them again
# (the user chose append-with-overlap: the window's rows may be duplicated).
Overlap = Literal["dedup", "append"]


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs; Django-free so the runner can be driven from anywhere.

    `columns` are the selected source columns (with their canonical types and primary-key
    flags). `column_mapping` maps source names to destination names; a column not in it
    goes to its normalized name. `cursor_column` and `merge_key` are source names.
    `watermark` is the app's cached copy of the last committed cursor value, for display only: the
    runner derives the watermark from the commit ledger, else from the destination (issue 15).
    `checkpoint_rows` splits keyset-ordered loads into separately committed checkpoints
    (None or 0: one commit).

    `run_id` names the run in the commit ledger and in BigQuery job ids (a retried attempt of
    one run keeps it); `fence` is the run's fencing token, larger for every later run: a commit
    is refused once the ledger holds a unit of this job with a larger token, so a run declared
    dead can never commit after its successor. `reread_window` (None: the cursor type's default)
    and `overlap` shape incremental runs (see `etl.watermark`).
    """

    source_schema: str | None
    source_table: str
    columns: tuple[SourceColumn, ...]
    destination_dataset: str
    destination_table: str
    load_strategy: LoadStrategy = default_load_strategy(existing_table=False)
    column_mapping: Mapping[str, str] = field(default_factory=dict)
    cursor_column: str | None = None
    merge_key: tuple[str, ...] = ()
    source_tag: str | None = None
    tag_column: str = DEFAULT_TAG_COLUMN
    watermark: Any = None
    chunk_rows: int = 100_000
    checkpoint_rows: int | None = 5_000_000
    job_id: str | int = "job"
    key_columns: tuple[str, ...] = ()
    extract_method: Method = "auto"
    run_id: str | int = "run"
    fence: int = 0
    reread_window: float | None = None
    overlap: Overlap = "dedup"
    # The load plan recorded by the schema check (`etl/plan.py`); the run only checks the table still fits it.
    plan: Mapping[str, Any] | None = None
    # One key range of a split first load (`etl/ranges.py`): (after, through) on the cursor, None = open.
    key_range: tuple[Any, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        if isinstance(self.merge_key, str):
            object.__setattr__(self, "merge_key", (self.merge_key,) if self.merge_key else ())
        else:
            object.__setattr__(self, "merge_key", tuple(self.merge_key))
        object.__setattr__(self, "key_columns", tuple(self.key_columns))
        if self.source_tag == "":
            object.__setattr__(self, "source_tag", None)

    def destination_names(self) -> dict[str, str]:
        """Source column name -> destination column name, for every selected column."""
        defaults = normalize_column_names([c.name for c in self.columns])
        return {c.name: self.column_mapping.get(c.name) or d for c, d in zip(self.columns, defaults, strict=True)}


@dataclass(frozen=True)
class RunProgress:
    """A progress report; also the run's heartbeat.

    `phase == "checkpoint"` is sent after each committed checkpoint (and once for a run
    that commits once): `watermark` is then committed and the caller should persist it.
    """

    phase: Phase
    rows_extracted: int
    rows_estimate: int | None
    rows_loaded: int
    checkpoints: int
    watermark: Any


@dataclass(frozen=True)
class RunResult:
    rows_extracted: int
    rows_loaded: int
    bytes: int
    watermark_before: Any
    watermark_after: Any
    checkpoints: int
    watermark_derived: bool = False
    columns_added: tuple[str, ...] = ()
    staging_dropped: tuple[str, ...] = ()





ProgressCallback = Callable[[RunProgress], None]
# A seam for fault-injection tests: the runner calls it with the name of each point it passes
# ("before_load", "after_load", "before_commit", "commit_submitted", "after_commit"); whatever
# it raises propagates as if the run had failed there.
FaultHook = Callable[[str], None]


@dataclass
class Plan:
    spec: RunSpec
    fields: tuple[BigQueryField, ...]  # destination schema once the pending changes are made
    dest_names: dict[str, str]  # source -> destination
    fed: tuple[str, ...]  # destination columns this job writes, in destination order
    cursor_dest: BigQueryField | None
    key_dest: tuple[str, ...]
    tag_dest: str | None
    columns_added: tuple[str, ...]
    read_columns: tuple[SourceColumn, ...]
    key_columns: tuple[str, ...]
    partitioning: str | None = None
    # Schema changes wait for the first commit, so a run that fails earlier leaves the
    # destination exactly as it was, schema included.
    create_destination: bool = False
    add_fields: tuple[BigQueryField, ...] = ()

    def existing(self, name: str | None) -> bool:
        """Whether destination column `name` is there now (not only planned)."""
        if name is None or self.create_destination:
            return False
        return name.lower() not in {f.name.lower() for f in self.add_fields}
