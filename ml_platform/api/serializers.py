"""Model objects and reports as the API's JSON. A password is never serialised: only whether one is set."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ml_platform.etl import compatibility as engine
from ml_platform.etl.types import SourceColumn, bigquery_type_for
from ml_platform.models import Connection, EtlJob, JobRun
from ml_platform.services import audit
from ml_platform.services.schema_check import SchemaCheckResult


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _attrs(obj: object, *names: str) -> dict[str, Any]:
    """The attributes `names` of `obj`, as they are."""
    return {name: getattr(obj, name) for name in names}


def connection_to_dict(c: Connection) -> dict[str, Any]:
    return {
        "id": c.pk,
        **_attrs(c, "name", "engine", "host", "port", "database", "username"),
        "has_password": bool(c.password),
        "options": audit.masked_options(c.options or {}),
        "last_test_ok": c.last_test_ok,
        "last_tested_at": _iso(c.last_tested_at),
    }


def job_to_dict(job: EtlJob) -> dict[str, Any]:
    return {
        "id": job.pk,
        **_attrs(job, "name", "connection_id", "source_schema", "source_table", "selected_columns", "column_mapping",
                 "destination_dataset", "destination_table", "destination_mode", "load_strategy"),
        "cursor_column": job.cursor_column or None,
        "merge_key": job.merge_key,
        "source_tag": job.source_tag or None,
        "schedule": job.schedule or None,
        **_attrs(job, "schedule_timezone", "status", "watermark"),
        "next_run_at": _iso(job.next_run_at),
    }


def run_to_dict(run: JobRun) -> dict[str, Any]:
    """A run as the job page shows it (`number` is its place in the job's own history when the selector set it)."""
    return {
        "id": run.pk,
        "number": getattr(run, "number", None),
        **_attrs(run, "job_id", "trigger", "status", "connection_name"),
        "source": run.source_display,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        **_attrs(run, "duration_seconds", "rows_extracted", "rows_loaded", "progress_rows"),
        "progress_total": getattr(run, "shown_total", run.progress_total),
        **_attrs(run, "watermark_before", "watermark_after", "attempt"),
        "error": run.error or None,
        "unresponsive_since": _iso(getattr(run, "unresponsive_since", None)),
        # A split first load while it runs: {"committed": k, "total": n} key ranges (None otherwise).
        "ranges": getattr(run, "split_ranges", None),
    }


def column_to_dict(c: SourceColumn) -> dict[str, Any]:
    bq_type, mode = bigquery_type_for(c.type)
    return {"name": c.name, "type": c.source_type, "family": str(c.type), "nullable": c.nullable,
            "primary_key": c.primary_key, "default": c.default, "bigquery_type": bq_type, "bigquery_mode": mode}


def validation_to_dict(validated: dict[str, engine.ValidationResult]) -> dict[str, Any]:
    return {col: {"checked_rows": v.checked_rows, "failures": v.failures, "null_failures": v.null_failures,
                  "examples": list(v.examples), "sampled": v.sampled} for col, v in validated.items()}


def report_to_dict(result: SchemaCheckResult, missing: list[str] | None = None) -> dict[str, Any]:
    """The spec's `{compatible, errors, warnings, can_alter}` with per-column detail, what the table holds, the
    validation the check used, and the other jobs on the table: this workspace's named, other workspaces' only
    counted (never named)."""
    answer = result.report.to_dict()
    answer["other_jobs"] = [{"id": j.pk, "name": j.name, "source_tag": j.source_tag or None}
                            for j in result.other_jobs]
    answer["other_workspace_jobs"] = result.foreign_jobs
    answer["table"] = {"row_count": result.state.row_count, "summary": result.state.sentence or None}
    if result.validation:
        answer["validation"] = validation_to_dict(result.validation)
    if missing:
        answer["compatible"] = False
        answer["errors"] = [missing_message(name) for name in missing] + answer["errors"]
    return answer


def missing_message(name: str) -> str:
    return f"Source column {name!r} is gone from the new source table."


def refusal_details(result: SchemaCheckResult, missing: list[str] | None = None) -> list[str]:
    """Every reason the check refuses, one sentence each: the report's errors, each column whose data still needs
    validating (and how), then the choices to fix (prefixed with the body field that fixes them)."""
    details = [missing_message(name) for name in missing or []] + list(result.report.errors)
    for name in result.report.needs_validation:
        row = result.report.column(name)
        details.append(f"{name}: {row.message if row else 'needs validation.'} Validate the source data "
                       "(validate_data: true).")
    for problem in result.problems:
        if problem.message not in details:
            details.append(f"{problem.field}: {problem.message}" if problem.field else problem.message)
    return details
