"""Writes. Keyword-only, typed; views and tasks call these and nothing else writes."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone

from ml_platform import selectors
from ml_platform.etl.schedule import cron_error, is_valid_timezone, next_runs
from ml_platform.etl.types import SourceColumn
from ml_platform.models import ApiToken, AuditEvent, Connection, EtlJob, JobRun, Membership, Workspace, WorkspaceDataset

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- workspaces and audit


def audit(*, workspace: Workspace, actor: AbstractBaseUser | None, action: str, target: Any,
          changes: dict[str, Any] | None = None) -> AuditEvent:
    """Record who did what to which object. `changes` is {field: {"before", "after"}}; never a secret in it."""
    return AuditEvent.objects.create(
        workspace=workspace, actor=actor if actor is not None and actor.pk else None,
        actor_name=actor.get_username() if actor is not None and actor.pk else "system",
        action=action, target_type=target._meta.model_name, target_id=target.pk, target_name=str(target)[:200],
        changes=changes or {},
    )


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{field: {"before", "after"}} for the fields whose value differs."""
    return {k: {"before": before.get(k), "after": after.get(k)} for k in after if before.get(k) != after.get(k)}


# Option keys that may hold a credential: their values never reach an audit event (nor the API).
SECRET_OPTION_WORDS = ("pass", "pwd", "secret", "key", "token", "credential", "auth", "cert")


def is_secret_option(key: Any) -> bool:
    return any(word in str(key).lower() for word in SECRET_OPTION_WORDS)


def masked_options(options: Any, compare_to: Any = None) -> Any:
    """`options` with every secret-looking key's value masked (recursively).

    With `compare_to` (the other side of a change), a secret value that differs says "*** (changed)".
    """
    if not isinstance(options, dict):
        return options
    other = compare_to if isinstance(compare_to, dict) else {}
    out: dict[str, Any] = {}
    for key, value in options.items():
        if is_secret_option(key):
            out[key] = "*** (changed)" if compare_to is not None and other.get(key) != value else "***"
        else:
            out[key] = masked_options(value, other.get(key) if compare_to is not None else None)
    return out


def connection_snapshot(connection: Connection) -> dict[str, Any]:
    """The audited fields of a connection, secrets masked; never the password."""
    return {"name": connection.name, "engine": connection.engine, "host": connection.host,
            "port": connection.port, "database": connection.database, "username": connection.username,
            "options": connection.options or {}}


def _connection_changes(before: dict[str, Any], after: dict[str, Any], *, password_before: str,
                        password_after: str) -> dict[str, dict[str, Any]]:
    changes = changed_fields(before, after)
    if "options" in changes:
        changes["options"] = {"before": masked_options(before["options"], None),
                              "after": masked_options(after["options"], before["options"])}
    if password_after != password_before:
        # Only that it changed: never the password, its length or any part of it.
        changes["password"] = {"before": "***" if password_before else None,
                               "after": "*** (changed)" if password_after else None}
    return changes


def job_snapshot(job: EtlJob) -> dict[str, Any]:
    """The audited fields of a job (the connection by name: the event outlives it)."""
    return {"name": job.name, "connection": job.connection.name if job.connection_id else None,
            "source_table": job.source_display, "selected_columns": list(job.selected_columns or []),
            "load_strategy": job.load_strategy, "cursor_column": job.cursor_column,
            "merge_key": list(job.merge_key or []), "source_tag": job.source_tag, "schedule": job.schedule,
            "schedule_timezone": job.schedule_timezone, "status": job.status}


def _created(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: {"before": None, "after": v} for k, v in snapshot.items() if v not in (None, "", [], {})}



def personal_workspace(user: AbstractBaseUser) -> Workspace:
    """The user's first workspace; a user with none gets a personal one (admin) — for commands and scripts.

    Web requests never come here: they act in the workspace chosen in the navigation.
    """
    membership = Membership.objects.filter(user=user).select_related("workspace").order_by("workspace__name").first()
    if membership is not None:
        return membership.workspace
    return workspace_create(name=user.get_username(), admin=user)


@transaction.atomic
def workspace_create(*, name: str, admin: AbstractBaseUser) -> Workspace:
    base, n = name.strip()[:90] or "workspace", 1
    candidate = base
    while Workspace.objects.filter(name=candidate).exists():
        n += 1
        candidate = f"{base} ({n})"
    workspace = Workspace.objects.create(name=candidate)
    Membership.objects.create(workspace=workspace, user=admin, role=Membership.Role.ADMIN)
    return workspace


class DatasetTaken(Exception):
    """The dataset already belongs to another workspace."""


def dataset_assign(*, workspace: Workspace, dataset: str) -> WorkspaceDataset:
    """Give `dataset` to `workspace` (a dataset belongs to exactly one workspace)."""
    existing = WorkspaceDataset.objects.filter(dataset=dataset).select_related("workspace").first()
    if existing is not None and existing.workspace_id != workspace.pk:
        raise DatasetTaken(f"Dataset {dataset!r} belongs to workspace {existing.workspace.name!r}.")
    return existing or WorkspaceDataset.objects.create(workspace=workspace, dataset=dataset)


@transaction.atomic
def connection_create(
    *,
    owner: AbstractBaseUser,
    workspace: Workspace | None = None,
    name: str,
    engine: str,
    database: str,
    host: str = "",
    port: int | None = None,
    username: str = "",
    password: str = "",
    options: dict[str, Any] | None = None,
    actor: AbstractBaseUser | None = None,
) -> Connection:
    connection = Connection(
        workspace=workspace or personal_workspace(owner),
        owner=owner,
        name=name,
        engine=engine,
        host=host,
        port=port,
        database=database,
        username=username,
        password=password,
        options=options or {},
    )
    connection.full_clean()
    connection.save()
    changes = _created(connection_snapshot(connection))
    if "options" in changes:
        changes["options"]["after"] = masked_options(connection.options)
    if password:
        changes["password"] = {"before": None, "after": "*** (set)"}
    audit(workspace=connection.workspace, actor=actor, action="created", target=connection, changes=changes)
    return connection


CONNECTION_FIELDS = ("name", "engine", "host", "port", "database", "username", "options")


@transaction.atomic
def connection_update(*, connection: Connection, password: str = "", actor: AbstractBaseUser | None = None,
                      **fields: Any) -> Connection:
    """Update a connection; a blank password keeps the stored one (the UI never shows it)."""
    # The stored row, not the instance: a ModelForm's validation has already set the new values on it.
    stored = Connection.objects.select_for_update().get(pk=connection.pk)
    before, password_before = connection_snapshot(stored), stored.password
    for key, value in fields.items():
        if key not in CONNECTION_FIELDS:
            raise TypeError(f"unknown connection field {key!r}")
        setattr(connection, key, value)
    if password:
        connection.password = password
    connection.full_clean()
    connection.save()
    audit(workspace=connection.workspace, actor=actor, action="edited", target=connection,
          changes=_connection_changes(before, connection_snapshot(connection), password_before=password_before,
                                      password_after=connection.password))
    # A changed host or credential must not reuse a pooled session of the old one.
    from ml_platform.etl.sources import dispose_engines

    dispose_engines()
    return connection


class ConnectionInUse(Exception):
    def __init__(self, jobs: list[str]) -> None:
        self.jobs = jobs
        super().__init__(
            "This connection is used by " + ", ".join(repr(j) for j in jobs)
            + ": reconnect or delete those jobs first."
        )


@transaction.atomic
def connection_delete(*, connection: Connection, actor: AbstractBaseUser | None = None) -> None:
    jobs = list(connection.jobs.order_by("name").values_list("name", flat=True))
    if jobs:
        raise ConnectionInUse(jobs)
    # Recorded first: the event keeps the name and id of the object that is gone.
    audit(workspace=connection.workspace, actor=actor, action="deleted", target=connection)
    connection.delete()


def connection_record_test(*, connection: Connection, ok: bool, message: str) -> None:
    Connection.objects.filter(pk=connection.pk).update(
        last_test_ok=ok, last_test_message=message[:2000], last_tested_at=timezone.now()
    )


def secrets_rotate() -> int:
    """Re-encrypt every stored secret with the primary key (after prepending a new key).

    Reading decrypts with any configured key; saving encrypts with the first.
    """
    count = 0
    with transaction.atomic():
        for connection in Connection.objects.select_for_update().exclude(password=""):
            connection.save(update_fields=["password"])
            count += 1
    return count


# --------------------------------------------------------------------------- runs and scheduling


class RunAlreadyActive(Exception):
    """The job has a queued or running run; the database allows one at a time."""


def next_run_time(*, schedule: str, timezone_name: str, after: datetime) -> datetime | None:
    if not schedule:
        return None
    return next_runs(schedule, timezone_name or "UTC", after=after)[0]


def run_enqueue_record(*, job: EtlJob, trigger: str = JobRun.Trigger.MANUAL) -> JobRun:
    """Create the queued run row (the database allows one active run per job)."""
    try:
        with transaction.atomic():
            # Waits for an Edit of this job being saved (it holds the row): the run then loads its columns.
            EtlJob.objects.select_for_update().filter(pk=job.pk).first()
            return JobRun.objects.create(
                job=job,
                trigger=trigger,
                connection=job.connection,
                connection_name=job.connection.name,
                source_display=job.source_display,
                watermark_before=job.watermark,
            )
    except IntegrityError:
        raise RunAlreadyActive(f"Job {job.name!r} already has a run in progress") from None


def run_enqueue(*, job: EtlJob, trigger: str = JobRun.Trigger.MANUAL,
                actor: AbstractBaseUser | None = None) -> JobRun:
    """Create a queued run and hand its id to the task backend once the row is committed.

    Audited as "ran" (Run Now, by `actor`) or "scheduled run" (the scheduler, actor None = system).
    """
    from ml_platform.tasks import run_etl_job

    with transaction.atomic():
        run = run_enqueue_record(job=job, trigger=trigger)
        audit(workspace=job.workspace, actor=actor, target=job,
              action="scheduled run" if trigger == JobRun.Trigger.SCHEDULE else "ran",
              changes={"run": {"before": None, "after": run.pk},
                       "connection": {"before": None, "after": run.connection_name}})
        transaction.on_commit(lambda: run_etl_job.enqueue(run.pk))
    return run


def enqueue_due_jobs(*, now: datetime | None = None) -> list[JobRun]:
    """Enqueue every due, active, scheduled job exactly once.

    Row locks with SKIP LOCKED make concurrent schedulers take disjoint jobs;
    the unique "one active run" constraint is the backstop.
    """
    now = now or timezone.now()
    enqueued: list[JobRun] = []
    with transaction.atomic():
        due = (
            EtlJob.objects.select_for_update(skip_locked=True)
            .filter(status=EtlJob.Status.ACTIVE, next_run_at__lte=now)
            .exclude(schedule="")
            .select_related("connection")
        )
        for job in due:
            job.next_run_at = next_run_time(schedule=job.schedule, timezone_name=job.schedule_timezone, after=now)
            job.save(update_fields=["next_run_at", "updated_at"])
            try:
                enqueued.append(run_enqueue(job=job, trigger=JobRun.Trigger.SCHEDULE))
            except RunAlreadyActive:
                logger.info("job %s is still running; skipping this slot", job.pk)
    return enqueued


def runs_fail_stale(*, now: datetime | None = None) -> int:
    """Fail runs whose worker stopped sending heartbeats, so the job can run again."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.ETL_HEARTBEAT_TIMEOUT)
    return JobRun.objects.filter(status=JobRun.Status.RUNNING, heartbeat_at__lt=cutoff).update(
        status=JobRun.Status.FAILED,
        finished_at=now,
        error=f"The worker stopped responding (no heartbeat for {settings.ETL_HEARTBEAT_TIMEOUT} s); "
        "the run was abandoned and nothing from it was committed after its last checkpoint.",
    )


def run_execute(*, run_id: int) -> None:
    from ml_platform import verification
    from ml_platform.runs import execute_run

    execute_run(run_id=run_id)
    verification.after_run(run_id=run_id)


# --------------------------------------------------------------------------- jobs


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
    if load_strategy == EtlJob.LoadStrategy.INCREMENTAL and not cursor_column:
        raise JobCreateError("Incremental loads need a cursor column.")
    if load_strategy == EtlJob.LoadStrategy.MERGE and not merge_key:
        raise JobCreateError("Merge needs at least one key column.")
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
    from ml_platform import schema_check

    workspace = workspace or personal_workspace(owner)
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
        job.next_run_at = next_run_time(schedule=schedule, timezone_name=schedule_timezone, after=timezone.now())
        try:
            job.full_clean()
        except ValidationError as exc:
            raise JobCreateError("; ".join(exc.messages)) from None
        job.save()
        audit(workspace=workspace, actor=actor, action="created", target=job, changes=_created(job_snapshot(job)))
        # BigQuery last: if it refuses, the job row rolls back with the exception.
        schema_check.apply_plan(plan, description=f"Loaded by ETL job {name!r} from {connection.name}")
        if run_now:
            run_enqueue(job=job, actor=actor)
    return job


@transaction.atomic
def job_pause(*, job: EtlJob, actor: AbstractBaseUser | None = None) -> EtlJob:
    before = job.status
    job.status = EtlJob.Status.PAUSED
    job.save(update_fields=["status", "updated_at"])
    audit(workspace=job.workspace, actor=actor, action="paused", target=job,
          changes={"status": {"before": before, "after": job.status}})
    return job


@transaction.atomic
def job_resume(*, job: EtlJob, actor: AbstractBaseUser | None = None) -> EtlJob:
    before = job.status
    job.status = EtlJob.Status.ACTIVE
    # A resumed job continues from now: missed slots are not replayed in a burst.
    job.next_run_at = next_run_time(schedule=job.schedule, timezone_name=job.schedule_timezone, after=timezone.now())
    job.save(update_fields=["status", "next_run_at", "updated_at"])
    audit(workspace=job.workspace, actor=actor, action="resumed", target=job,
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
    audit(workspace=job.workspace, actor=actor, action="deleted", target=job,
          changes={k: {"before": v, "after": None} for k, v in job_snapshot(job).items()
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
    from ml_platform import schema_check
    from ml_platform.etl.plan import table_mismatches
    from ml_platform.warehouse import warehouse

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
        before = job_snapshot(job)
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
            job.next_run_at = next_run_time(schedule=schedule, timezone_name=schedule_timezone, after=timezone.now())
        job.schedule = schedule
        job.schedule_timezone = schedule_timezone
        job.full_clean()
        # Only the edited fields: the watermark a run committed since the page was loaded stays (unless reset).
        if reset_watermark:
            job.watermark = None
        job.save(update_fields=["name", "selected_columns", "column_mapping", "load_plan", "load_strategy",
                                "cursor_column", "merge_key", "next_run_at", "schedule", "schedule_timezone",
                                "updated_at"] + (["watermark"] if reset_watermark else []))
        audit(workspace=job.workspace, actor=actor, action="edited", target=job,
              changes=changed_fields(before, job_snapshot(job)))
        # BigQuery last: if it refuses, the job row rolls back with the exception.
        schema_check.apply_plan(plan)
    return job


def _without(plan, columns: set[str]):
    """The plan minus the columns its own pending ALTERs add or relax (they are not in the table yet)."""
    from dataclasses import replace

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
    from ml_platform import schema_check

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
    before = job_snapshot(job)
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
    changes = changed_fields(before, job_snapshot(job))
    changes.setdefault("connection", {"before": before["connection"], "after": connection.name})
    audit(workspace=job.workspace, actor=actor, action="reconnected", target=job, changes=changes)
    return job


# --------------------------------------------------------------------------- members


class MembershipError(Exception):
    """A membership change that would leave the workspace without an admin, or names no such user."""


def _admins_left(workspace: Workspace, *, without: Membership) -> bool:
    return Membership.objects.filter(workspace=workspace, role=Membership.Role.ADMIN).exclude(pk=without.pk).exists()


@transaction.atomic
def member_add(*, workspace: Workspace, actor: AbstractBaseUser | None, username: str, role: str) -> Membership:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(username=username.strip()).first()
    if user is None:
        raise MembershipError(f"No user named {username.strip()!r}.")
    membership, created = Membership.objects.get_or_create(workspace=workspace, user=user, defaults={"role": role})
    if not created:
        raise MembershipError(f"{user.get_username()} is already a member ({membership.role}).")
    audit(workspace=workspace, actor=actor, action="member added", target=membership,
          changes={"role": {"before": None, "after": role}})
    return membership


@transaction.atomic
def member_set_role(*, membership: Membership, role: str, actor: AbstractBaseUser | None) -> Membership:
    if membership.role == Membership.Role.ADMIN and role != Membership.Role.ADMIN and not _admins_left(
            membership.workspace, without=membership):
        raise MembershipError("A workspace needs at least one admin.")
    before, membership.role = membership.role, role
    membership.save(update_fields=["role"])
    audit(workspace=membership.workspace, actor=actor, action="member role changed", target=membership,
          changes={"role": {"before": before, "after": role}})
    return membership


@transaction.atomic
def member_remove(*, membership: Membership, actor: AbstractBaseUser | None) -> None:
    if membership.role == Membership.Role.ADMIN and not _admins_left(membership.workspace, without=membership):
        raise MembershipError("A workspace needs at least one admin.")
    audit(workspace=membership.workspace, actor=actor, action="member removed", target=membership)
    membership.delete()


def dataset_create(*, workspace: Workspace, dataset: str, actor: AbstractBaseUser | None) -> WorkspaceDataset:
    """A new BigQuery dataset for the workspace. An existing one is assigned only by a site administrator."""
    from ml_platform.warehouse import warehouse

    bq = warehouse()
    if WorkspaceDataset.objects.filter(dataset=dataset).exists() or dataset in bq.list_datasets():
        raise DatasetTaken(f"Dataset {dataset!r} exists already: a site administrator assigns existing datasets "
                           "(manage.py workspace_dataset).")
    bq.create_dataset(dataset, exists_ok=False)
    assigned = WorkspaceDataset.objects.create(workspace=workspace, dataset=dataset)
    audit(workspace=workspace, actor=actor, action="dataset created", target=assigned)
    return assigned


# --------------------------------------------------------------------------- API tokens

# etl_<12 hex: the stored, displayed prefix>_<secrets.token_urlsafe(32)>. The prefix finds the row, the
# SHA-256 digest of the whole text proves it: 256 random bits need no slow hash.
_TOKEN_FORMAT = re.compile(r"^(etl_[0-9a-f]{12})_[A-Za-z0-9_-]{43}$")
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


def _token_digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


@transaction.atomic
def token_create(*, user: AbstractBaseUser, workspace: Workspace, name: str) -> tuple[ApiToken, str]:
    """A new token of `user` in `workspace`; the plaintext is returned here once and stored nowhere."""
    while True:
        prefix = f"etl_{secrets.token_hex(6)}"
        plaintext = f"{prefix}_{secrets.token_urlsafe(32)}"
        if _TOKEN_FORMAT.match(plaintext) and not ApiToken.objects.filter(prefix=prefix).exists():
            break
    token = ApiToken.objects.create(user=user, workspace=workspace, name=name.strip()[:100], prefix=prefix,
                                    digest=_token_digest(plaintext))
    audit(workspace=workspace, actor=user, action="token created", target=token,
          changes={"name": {"before": None, "after": token.name}})
    return token, plaintext


@transaction.atomic
def token_revoke(*, token: ApiToken, actor: AbstractBaseUser | None) -> ApiToken:
    """Revoke for good (idempotent): the token answers 401 from the next request on."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit(workspace=token.workspace, actor=actor, action="token revoked", target=token)
    return token


def token_authenticate(plaintext: str) -> ApiToken | None:
    """The live token for `plaintext`, else None (malformed, unknown, revoked, inactive user, or a user who is
    no longer a member of the token's workspace). Records the use at most once a minute."""
    match = _TOKEN_FORMAT.match(plaintext) if isinstance(plaintext, str) else None
    if match is None:
        return None
    digest = _token_digest(plaintext)
    candidates = ApiToken.objects.filter(prefix=match.group(1), revoked_at__isnull=True,
                                         user__is_active=True).select_related("user", "workspace")
    token = next((t for t in candidates if hmac.compare_digest(t.digest, digest)), None)
    if token is None or not Membership.objects.filter(workspace=token.workspace, user=token.user).exists():
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= TOKEN_TOUCH_INTERVAL:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
