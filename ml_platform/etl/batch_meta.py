"""What a reader tells the conform step about a batch, in the batch's schema metadata.

A reader that has already checked every value of some JSON columns the way the conform step
would (etl/fast_sqlite.py: SQLite's json_valid, RFC 8259, accepts no text Python's json.loads
rejects) names them here, and the conform step skips its own check of those columns in that
batch only. Batches without the mark keep every check.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pyarrow as pa

__all__ = ["json_checked", "mark_json_checked"]

_JSON_CHECKED = b"ml_platform.json_checked"


def mark_json_checked(batch: pa.RecordBatch, names: Sequence[str]) -> pa.RecordBatch:
    """`batch` with `names` marked as JSON columns whose every value is valid JSON."""
    if not names:
        return batch
    return batch.replace_schema_metadata({_JSON_CHECKED: json.dumps(list(names)).encode()})


def json_checked(schema: pa.Schema) -> frozenset[str]:
    """The columns of a batch of `schema` its reader marked as valid JSON."""
    raw = (schema.metadata or {}).get(_JSON_CHECKED)
    return frozenset(json.loads(raw)) if raw else frozenset()
