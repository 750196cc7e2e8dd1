"""Writes about ETL jobs: create (with the schema check's plan), Edit, Reconnect, pause/resume, delete."""

from __future__ import annotations

from dataclasses import replace

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from ml_platform import selectors
from ml_platform.etl.compat_model import missing_strategy_choices
from ml_platform.etl.plan import table_mismatches
from ml_platform.etl.schedule import cron_error, is_valid_timezone
from ml_platform.etl.types import SourceColumn
from ml_platform.models import Connection, EtlJob, JobRun, Workspace
from ml_platform.runs import lifecycle, records
from ml_platform.services import audit, schema_check, workspaces
from ml_platform.services.warehouse import warehouse


class JobCreateError(Exception):
    """A job cannot be created as asked; the message says why, in the user's terms."""

    def __init__(self, message: str, details: list | None = None, result=None) -> None:
        super().__init__(message)
        self.details = details or []
        self.result = result  # the refusing schema check's result, when it was the check that refused


def check_column_choices(*, source_columns: list[SourceColumn], load_strategy: str, cursor_column: str,
                         merge_key: list[str], partition_field: str, clustering: list[str]) -> None:
    """The columns a job names for its strategy, partitioning and clustering are among the selected ones.

    The pages offer only those; the API is checked here, before a table is created that no run could fill.
    """
    missing = missing_strategy_choices(load_strategy, cursor_column, merge_key)
    if missing:
        raise JobCreateError(" ".join(missing.values()),
                             details=[{"field": field, "error": error} for field, error in missing.items()])
    selected = {c.name.lower() for c in source_columns}
    named = {"cursor_column": [cursor_column], "merge_key": merge_key, "partition_field": [partition_field],
             "clustering": clustering}
    unknown = [(field, name) for field, names in named.items() for name in names
               if name and name.lower() not in selected]
    if unknown:
        raise JobCreateError("Not selected source columns: " + ", ".join(repr(name) for _, name in unknown),
                             details=[{"field": field, "error": f"{name!r} is not a selected source column"}
                                      for field, name in unknown])


def _check_job_inputs(*, workspace: Workspace, connection: Connection, dataset: str,
                      source_columns: list[SourceColumn], schedule: str, schedule_timezone: str) -> None:
    if connection.workspace_id != workspace.pk or not selectors.workspace_owns_dataset(
            workspace=workspace, dataset=dataset):
        # Another workspace's connection or dataset does not exist for this one.
        raise Http404("No such dataset")
    if not source_columns:
        raise JobCreateError("Select at least one source column.")
    if schedule and (problem := cron_error(schedule)):
        raise JobCreateError(problem)
    if not is_valid_timezone(schedule_timezone):
        raise JobCreateError(f"Unknown time zone {schedule_timezone!r}.")


def job_create(
    *,
    owner: AbstractBaseUser,
    workspace: Workspace | None = None,
    name: str,
    connection: Connection,
    source_schema: str,
    source_table: str,
    source_columns: list[SourceColumn],
    destination_dataset: str,
    destination_table: str,
    use_existing_table: bool,
    load_strategy: str,
    cursor_column: str = "",
    merge_key: list[str] | None = None,
    source_tag: str = "",
    add_columns: list[str] | None = None,
    relax_required: bool = False,
    partition_field: str = "",
    clustering: list[str] | None = None,
    schedule: str = "",
    schedule_timezone: str = "UTC",
    run_now: bool = False,
    validation: dict | None = None,
    actor: AbstractBaseUser | None = None,
    confirm_replace: bool = False,
    confirm_backfill: bool = False,
    validate_data: bool = False,
) -> EtlJob:
    """Create a job: the schema check decides, the job records its load plan, then the plan's ALTERs are made.

    `confirm_replace`: the user accepted that Replace deletes the rows of its tag scope; `confirm_backfill`: the
    tag goes onto the table's untagged rows. `validation`: scan results the caller has (the wizard's "Validate
    data"); `validate_data`: the check scans the source itself (the API's `validate_data: true`).
    """
    workspace = workspace or workspaces.personal_workspace(owner)
    merge_key = list(merge_key or [])
    _check_job_inputs(workspace=workspace, connection=connection, dataset=destination_dataset,
                      source_columns=source_columns, schedule=schedule, schedule_timezone=schedule_timezone)
    check_column_choices(source_columns=source_columns, load_strategy=load_strategy, cursor_column=cursor_column,
                         merge_key=merge_key, partition_field=partition_field, clustering=clustering or [])
    choices = schema_check.Choices(
        load_strategy=load_strategy, cursor_column=cursor_column, merge_key=tuple(merge_key), source_tag=source_tag,
        add_columns=tuple(add_columns or ()), relax_required=relax_required, validation=validation or {},
        confirm_replace=confirm_replace, confirm_backfill=confirm_backfill, partition_field=partition_field,
        clustering=tuple(clustering or ()),
    )
    result = schema_check.check(
        workspace=workspace, source_columns=source_columns,
        destination=schema_check.Destination(destination_dataset, destination_table, existing=use_existing_table),
        choices=choices, dialect=connection.engine, creating=True, validate=validate_data,
        source=schema_check.SourceRef(connection, source_schema or None, source_table),
    )
    if not result.ok or (plan := result.plan) is None:
        raise JobCreateError(result.first_error(), details=result.details(), result=result)
    with transaction.atomic():
        job = EtlJob(
            workspace=workspace, owner=owner, name=name, connection=connection, source_schema=source_schema,
            source_table=source_table, selected_columns=[c.name for c in source_columns],
            column_mapping=plan.mapping(), load_plan=plan.to_json(), destination_dataset=destination_dataset,
            destination_table=destination_table,
            destination_mode=EtlJob.DestinationMode.EXISTING if use_existing_table else EtlJob.DestinationMode.NEW,
            load_strategy=load_strategy, cursor_column=cursor_column, merge_key=merge_key, source_tag=source_tag,
            schedule=schedule, schedule_timezone=schedule_timezone,
        )
        job.next_run_at = records.next_run_time(schedule=schedule, timezone_name=schedule_timezone,
                                                after=timezone.now())
        try:
            job.full_clean()
        except ValidationError as exc:
            raise JobCreateError("; ".join(exc.messages)) from None
        job.save()
        audit.record(workspace=workspace, actor=actor, action="created", target=job,
                     changes=audit.created_changes(audit.job_snapshot(job)))
        # BigQuery last: if it refuses, the job row rolls back with the exception.
        schema_check.apply_plan(plan, description=f"Loaded by ETL job {name!r} from {connection.name}")
        if run_now:
            lifecycle.run_enqueue(job=job, actor=actor)
    return job


@transaction.atomic
def job_pause(*, job: EtlJob, actor: AbstractBaseUser | None = None) -> EtlJob:
    before = job.status
    job.status = EtlJob.Status.PAUSED
    job.save(update_fields=["status", "updated_at"])
    audit.record(workspace=job.workspace, actor=actor, action="paused", target=job,
                 changes={"status": {"before": before, "after": job.status}})
    return job


@transaction.atomic
def job_resume(*, job: EtlJob, actor: AbstractBaseUser | None = None) -> EtlJob:
    before = job.status
    job.status = EtlJob.Status.ACTIVE
    # A resumed job continues from now: missed slots are not replayed in a burst.
    job.next_run_at = records.next_run_time(schedule=job.schedule, timezone_name=job.schedule_timezone,
                                            after=timezone.now())
    job.save(update_fields=["status", "next_run_at", "updated_at"])
    audit.record(workspace=job.workspace, actor=actor, action="resumed", target=job,
                 changes={"status": {"before": before, "after": job.status}})
    return job


class JobBusy(Exception):
    pass


@transaction.atomic
def job_delete(*, job: EtlJob, actor: AbstractBaseUser | None = None) -> None:
    """Delete the job and its run history; the BigQuery table and its rows stay (and so does its audit trail)."""
    if job.runs.filter(status__in=JobRun.ACTIVE_STATUSES).exists():
        raise JobBusy(f"Job {job.name!r} is running: wait for the run to finish before deleting it.")
    # Recorded first: the event keeps the name and id of the job that is gone.
    audit.record(workspace=job.workspace, actor=actor, action="deleted", target=job,
                 changes={k: {"before": v, "after": None} for k, v in audit.job_snapshot(job).items()
                          if k in ("connection", "source_table") and v})
    job.delete()


def job_update(
    *,
    job: EtlJob,
    source_columns: list[SourceColumn],
    result,
    name: str,
    load_strategy: str,
    cursor_column: str,
    merge_key: list[str],
    schedule: str,
    schedule_timezone: str,
    actor: AbstractBaseUser | None = None,
) -> EtlJob:
    """Save an Edit with the plan of its schema check (`result`): approved new columns are added (NULLABLE).

    The selection and the table agree or nothing is saved (the check refuses a selected column the
    table lacks unless it is approved for adding). The job row stays locked until the edit is
    committed, so a run enqueued meanwhile (Run Now, the scheduler) waits for it and loads with the
    new columns; a job with an active run is not edited (that run would load the new columns'
    rows as NULL for good). The table is read again under the lock: if it changed since the
    report, the plan no longer fits and nothing is saved.
    """
    if not source_columns:
        raise JobCreateError("Select at least one source column.")
    if not result.ok:
        raise JobCreateError(result.first_error(), details=result.details(), result=result)
    plan = result.plan
    with transaction.atomic():
        EtlJob.objects.select_for_update().filter(pk=job.pk).first()
        if job.runs.filter(status__in=JobRun.ACTIVE_STATUSES).exists():
            raise JobBusy(f"Job {job.name!r} has a run in progress: save the edit after the run.")
        now = warehouse().get_table_schema(job.destination_dataset, job.destination_table)
        pending = {a.column.lower() for a in plan.alters if a.kind in ("add_column", "relax_required")}
        changed = [p for p in table_mismatches(_without(plan, pending), now)]
        if changed:
            raise JobCreateError("The table changed since the report: " + " ".join(changed) + " Check again.")
        before = audit.job_snapshot(job)
        # once15: a new cursor column or strategy makes the old watermark meaningless; the next run
        # derives it afresh from the ledger/destination (the runner keys its ledger watermark the same way).
        reset_watermark = (cursor_column.lower(), load_strategy) != (job.cursor_column.lower(), job.load_strategy)
        job.name = name
        job.selected_columns = [c.name for c in source_columns]
        job.column_mapping = plan.mapping()
        job.load_plan = plan.to_json()
        job.load_strategy = load_strategy
        job.cursor_column = cursor_column
        job.merge_key = merge_key
        if (schedule, schedule_timezone) != (job.schedule, job.schedule_timezone):
            job.next_run_at = records.next_run_time(schedule=schedule, timezone_name=schedule_timezone,
                                                after=timezone.now())
        job.schedule = schedule
        job.schedule_timezone = schedule_timezone
        job.full_clean()
        # Only the edited fields: the watermark a run committed since the page was loaded stays (unless reset).
        if reset_watermark:
            job.watermark = None
        job.save(update_fields=["name", "selected_columns", "column_mapping", "load_plan", "load_strategy",
                                "cursor_column", "merge_key", "next_run_at", "schedule", "schedule_timezone",
                                "updated_at"] + (["watermark"] if reset_watermark else []))
        audit.record(workspace=job.workspace, actor=actor, action="edited", target=job,
                     changes=audit.changed_fields(before, audit.job_snapshot(job)))
        # BigQuery last: if it refuses, the job row rolls back with the exception.
        schema_check.apply_plan(plan)
    return job


def _without(plan, columns: set[str]):
    """The plan minus the columns its own pending ALTERs add or relax (they are not in the table yet)."""
    kept = tuple(c for c in plan.columns if c.destination.lower() not in columns)
    tag = plan.tag_column if plan.tag_column and plan.tag_column.lower() not in columns else None
    return replace(plan, columns=kept, tag_column=tag)


@transaction.atomic
def job_reconnect(
    *, job: EtlJob, connection: Connection, source_schema: str, source_table: str, source_columns: list[SourceColumn],
    result=None, actor: AbstractBaseUser | None = None,
) -> EtlJob:
    """Point the job at a new connection/source table, with the plan of its schema check (`result`).

    The BigQuery table, its rows and the watermark stay; the check allows no ALTER here. Without
    `result` (a caller that showed no report) the schema check runs here.
    """
    if connection.workspace_id != job.workspace_id:
        raise Http404("No such connection")  # another workspace's connection does not exist for this job
    if job.runs.filter(status__in=JobRun.ACTIVE_STATUSES).exists():
        raise JobBusy(f"Job {job.name!r} is running: reconnect it after the run.")
    if result is None:
        result = schema_check.check(
            workspace=job.workspace, source_columns=source_columns,
            destination=schema_check.Destination(job.destination_dataset, job.destination_table),
            choices=schema_check.Choices(load_strategy=job.load_strategy, cursor_column=job.cursor_column,
                                         merge_key=tuple(job.merge_key or ()), source_tag=job.source_tag),
            dialect=connection.engine, exclude_job=job, creating=False)
    if not result.ok:
        raise JobCreateError(result.first_error(), details=result.details(), result=result)
    if [a for a in result.plan.alters if a.kind != "backfill_tag"]:
        raise JobCreateError("Reconnect leaves the table as it is: the new source needs a change of the table "
                             "(" + ", ".join(f"{a.kind} {a.column}" for a in result.plan.alters) + "). Use Edit.")
    before = audit.job_snapshot(job)
    job.connection = connection
    job.source_schema = source_schema
    job.source_table = source_table
    job.column_mapping = result.plan.mapping()
    job.load_plan = result.plan.to_json()
    job.selected_columns = [c.name for c in source_columns]
    # Every column reference follows the new source's spelling: the cursor and the merge key too.
    by_lower = {c.name.lower(): c.name for c in source_columns}
    job.cursor_column = by_lower.get(job.cursor_column.lower(), job.cursor_column) if job.cursor_column else ""
    job.merge_key = [by_lower.get(k.lower(), k) for k in job.merge_key or []]
    job.save(update_fields=["connection", "source_schema", "source_table", "column_mapping", "load_plan",
                            "selected_columns", "cursor_column", "merge_key", "updated_at"])
    changes = audit.changed_fields(before, audit.job_snapshot(job))
    changes.setdefault("connection", {"before": before["connection"], "after": connection.name})
    audit.record(workspace=job.workspace, actor=actor, action="reconnected", target=job, changes=changes)
    return job
