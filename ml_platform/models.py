from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from ml_platform.fields import EncryptedTextField


class Workspace(models.Model):
    """The isolation boundary: owns connections, jobs, runs and a set of BigQuery datasets."""

    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer"
        EDITOR = "editor", "Editor"
        ADMIN = "admin", "Admin"

    RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2}

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["workspace__name", "user__username"]
        constraints = [models.UniqueConstraint(fields=["workspace", "user"], name="membership_unique_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"

    def allows(self, role: str) -> bool:
        return self.RANK[self.role] >= self.RANK[role]


class WorkspaceDataset(models.Model):
    """A BigQuery dataset and the one workspace that may read and write it."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="datasets")
    dataset = models.CharField(max_length=1024, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset"]

    def __str__(self) -> str:
        return f"{self.dataset} ({self.workspace})"


class Connection(models.Model):
    class Engine(models.TextChoices):
        POSTGRESQL = "postgresql", "PostgreSQL"
        MYSQL = "mysql", "MySQL / MariaDB"
        SQLITE = "sqlite", "SQLite"

    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="connections")
    # Who created it; the workspace, not the creator, owns it.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="connections")
    name = models.CharField(max_length=100)
    engine = models.CharField(max_length=20, choices=Engine.choices)
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    database = models.CharField(max_length=1024, help_text="Database name, or the file path for SQLite")
    username = models.CharField(max_length=255, blank=True)
    password = EncryptedTextField(blank=True)
    options = models.JSONField(default=dict, blank=True)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_message = models.TextField(blank=True)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="connection_unique_name_per_workspace")
        ]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        # The default repr is safe too, but be explicit: never the password.
        return f"<Connection {self.pk} {self.name!r} {self.engine}>"

    @property
    def location(self) -> str:
        if self.engine == self.Engine.SQLITE:
            return self.database
        port = f":{self.port}" if self.port else ""
        return f"{self.host}{port}/{self.database}"


class EtlJob(models.Model):
    """A scheduled copy of one source table into one BigQuery table (the spec's DataSource)."""

    class DestinationMode(models.TextChoices):
        NEW = "new", "Create new BigQuery table"
        EXISTING = "existing", "Use existing BigQuery table"

    class LoadStrategy(models.TextChoices):
        REPLACE = "replace", "Replace"
        APPEND = "append", "Append"
        INCREMENTAL = "incremental", "Incremental"
        MERGE = "merge", "Merge (upsert)"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"

    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="jobs")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="etl_jobs")
    name = models.CharField(max_length=200)
    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="jobs")
    source_schema = models.CharField(max_length=255, blank=True)
    source_table = models.CharField(max_length=255)
    selected_columns = models.JSONField(default=list)
    # source column name -> BigQuery column name, for names BigQuery rejects
    column_mapping = models.JSONField(default=dict, blank=True)
    destination_dataset = models.CharField(max_length=1024)
    destination_table = models.CharField(max_length=1024)
    destination_mode = models.CharField(max_length=10, choices=DestinationMode.choices, default=DestinationMode.NEW)
    load_strategy = models.CharField(max_length=12, choices=LoadStrategy.choices, default=LoadStrategy.REPLACE)
    cursor_column = models.CharField(max_length=255, blank=True)
    merge_key = models.JSONField(default=list, blank=True)
    # The load plan the schema check recorded (ml_platform/etl/plan.py); empty for jobs made before it existed.
    load_plan = models.JSONField(default=dict, blank=True)
    source_tag = models.CharField(max_length=100, blank=True)
    schedule = models.CharField(max_length=100, blank=True, help_text="Cron expression; blank = manual")
    schedule_timezone = models.CharField(max_length=64, default="UTC")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    # {"type": "int"|"decimal"|"timestamp"|"date"|"string", "value": "<text>"}; None = nothing loaded yet
    watermark = models.JSONField(null=True, blank=True)
    # Incremental runs re-read this far below the watermark (cursor units; seconds for timestamps,
    # days for dates); NULL = the cursor type's default. See etl.watermark.
    reread_window = models.FloatField(null=True, blank=True)
    # Incremental without a key: "dedup" (whole-row) or "append" (append-with-overlap, no re-read).
    incremental_overlap = models.CharField(max_length=10, default="dedup", blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Verify (ml_platform/runs/verify.py) after every successful run.
    verify_after_run = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="etljob_unique_name_per_workspace")]

    def __str__(self) -> str:
        return self.name

    @property
    def source_display(self) -> str:
        return f"{self.source_schema}.{self.source_table}" if self.source_schema else self.source_table

    @property
    def destination_display(self) -> str:
        return f"{self.destination_dataset}.{self.destination_table}"


class JobRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Manual"
        SCHEDULE = "schedule", "Schedule"

    class Kind(models.TextChoices):
        RUN = "run", "Run"
        VERIFY = "verify", "Verify"
        REPAIR = "repair", "Repair"

    job = models.ForeignKey(EtlJob, on_delete=models.CASCADE, related_name="runs")
    # Past runs keep showing the connection they used, even after a Reconnect.
    connection = models.ForeignKey(Connection, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    connection_name = models.CharField(max_length=100, blank=True)
    source_display = models.CharField(max_length=512, blank=True)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    rows_extracted = models.BigIntegerField(default=0)
    rows_loaded = models.BigIntegerField(default=0)
    bytes_processed = models.BigIntegerField(default=0)
    progress_rows = models.BigIntegerField(default=0)
    progress_total = models.BigIntegerField(null=True, blank=True)
    watermark_before = models.JSONField(null=True, blank=True)
    watermark_after = models.JSONField(null=True, blank=True)
    attempt = models.PositiveIntegerField(default=1)
    error = models.TextField(blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.RUN)
    # A verify or repair run's result (etl.verify.VerifyResult.to_json()).
    verification = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One active run per job, enforced by the database, not by hope.
            models.UniqueConstraint(
                fields=["job"], condition=Q(status__in=["queued", "running"]), name="jobrun_one_active_per_job"
            )
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.job_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class AuditEvent(models.Model):
    """Who did what to which object, when, with the fields that changed (never a secret)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="audit_events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="+")
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=40)
    target_type = models.CharField(max_length=40)
    target_id = models.BigIntegerField(null=True, blank=True)
    target_name = models.CharField(max_length=200, blank=True)
    # {"field": {"before": ..., "after": ...}}
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "target_type", "target_id"], name="audit_target")]

    def __str__(self) -> str:
        return f"{self.actor_name} {self.action} {self.target_type} {self.target_name}"


class ApiToken(models.Model):
    """A personal token for automation: stored hashed, shown once, scoped to one workspace and its role."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, db_index=True)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"token {self.prefix}… of {self.user_id}"


class RunRange(models.Model):
    """One key range of a first load split across workers (issue 18, `ml_platform/runs/key_ranges.py`).

    The parent `JobRun` stays running until its last range commits; a range failing transiently is
    retried alone. `after`/`through` bound the cursor (`after < cursor <= through`, NULL = open).
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        COMMITTED = "committed", "Committed"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(JobRun, on_delete=models.CASCADE, related_name="ranges")
    index = models.PositiveIntegerField()
    after = models.BigIntegerField(null=True, blank=True)
    through = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempt = models.PositiveIntegerField(default=1)
    rows_extracted = models.BigIntegerField(default=0)
    rows_loaded = models.BigIntegerField(default=0)
    # The largest cursor value the range loaded ({"type", "value"} as JobRun's watermarks); NULL: no rows.
    max_cursor = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="runrange_unique_index")]

    def __str__(self) -> str:
        return f"range {self.index} of run {self.run_id} ({self.status})"
