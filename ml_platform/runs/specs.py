"""The runner's view of a job: a `RunSpec` built from the job and the source's columns as they are now."""

from __future__ import annotations

from django.conf import settings

from ml_platform.etl.errors import RunError
from ml_platform.etl.runner import RunSpec, watermark_from_json
from ml_platform.models import EtlJob
from ml_platform.services import sources


def spec_for(job: EtlJob) -> RunSpec:
    """The runner's view of a job: the selected columns as the source has them now."""
    schema = job.source_schema or None
    available = {c.name.lower(): c for c in sources.get_columns(job.connection, schema, job.source_table)}
    missing = [c for c in job.selected_columns if c.lower() not in available]
    if missing:
        raise RunError(
            f"The source table {job.source_display} no longer has the column(s) {', '.join(missing)}: "
            "edit or reconnect the job."
        )
    columns = tuple(available[c.lower()] for c in job.selected_columns)
    mapping = {available[k.lower()].name: v for k, v in (job.column_mapping or {}).items() if k.lower() in available}
    return RunSpec(
        source_schema=schema,
        source_table=job.source_table,
        columns=columns,
        destination_dataset=job.destination_dataset,
        destination_table=job.destination_table,
        load_strategy=job.load_strategy,
        column_mapping=mapping,
        cursor_column=(available[job.cursor_column.lower()].name if job.cursor_column.lower() in available
                       else job.cursor_column) or None,
        # Every column reference is spelled as the source spells it now (Reconnect may change the case).
        merge_key=tuple(available[k.lower()].name if k.lower() in available else k for k in job.merge_key or ()),
        reread_window=job.reread_window,
        overlap="append" if job.incremental_overlap == "append" else "dedup",
        source_tag=job.source_tag or None,
        watermark=watermark_from_json(job.watermark),
        chunk_rows=settings.ETL_CHUNK_ROWS,
        checkpoint_rows=settings.ETL_CHECKPOINT_ROWS,
        job_id=job.pk,
        plan=job.load_plan or None,
    )
