"""The product's BigQuery vocabulary in and out of the client's: fields, table schemas, DDL types, parameters.

Pure conversions (no requests): `BigQueryField` <-> `SchemaField`, a client `Table` ->
`TableSchema`, the GoogleSQL DDL spelling of a type, typed query parameters.
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass
from typing import Any

from google.cloud import bigquery

from ml_platform.etl.bq_errors import QueryFailed
from ml_platform.etl.bqsql import quote_name
from ml_platform.etl.types import BigQueryField, TableSchema, standard_bigquery_type

# --------------------------------------------------------------------------- value objects


@dataclass(frozen=True)
class TableInfo:
    table_id: str
    row_count: int | None  # exact (COUNT(*)); None for views and external tables, which are not counted
    column_count: int
    table_type: str = "TABLE"


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


# --------------------------------------------------------------------------- conversions (pure)


def field_from_schema_field(f: bigquery.SchemaField) -> BigQueryField:
    """The product's mirror of a client `SchemaField` (GoogleSQL type names, nested fields kept)."""
    return BigQueryField(
        name=f.name,
        field_type=standard_bigquery_type(f.field_type or "STRING"),
        mode=(f.mode or "NULLABLE").upper(),
        fields=tuple(field_from_schema_field(sub) for sub in (f.fields or ())),
        precision=_int_or_none(f.precision),
        scale=_int_or_none(f.scale),
        description=f.description,
    )


def schema_field_for(f: BigQueryField) -> bigquery.SchemaField:
    field_type = standard_bigquery_type(f.field_type)
    # Unset options are left out rather than sent as nulls; only numbers take precision/scale.
    options: dict[str, Any] = {}
    if f.description:
        options["description"] = f.description
    if field_type in ("NUMERIC", "BIGNUMERIC") and f.precision is not None:
        options["precision"] = f.precision
        if f.scale is not None:
            options["scale"] = f.scale
    return bigquery.SchemaField(
        name=f.name,
        field_type=field_type,
        mode=(f.mode or "NULLABLE").upper(),
        fields=tuple(schema_field_for(sub) for sub in f.fields),
        **options,
    )


def ddl_type(f: BigQueryField) -> str:
    """The GoogleSQL DDL spelling of a field's type (`ARRAY<...>`, `STRUCT<...>`, `NUMERIC(p,s)`)."""
    base = standard_bigquery_type(f.field_type)
    if base == "RECORD":
        inner = ", ".join(f"{quote_name(sub.name)} {ddl_type(sub)}" for sub in f.fields)
        base = f"STRUCT<{inner}>"
    elif base in ("NUMERIC", "BIGNUMERIC") and f.precision is not None:
        base = f"{base}({f.precision}, {f.scale or 0})"
    return f"ARRAY<{base}>" if (f.mode or "").upper() == "REPEATED" else base


def table_schema_from(table: bigquery.Table, *, num_rows: int | None = None) -> TableSchema:
    partitioning = None
    tp = table.time_partitioning
    if tp is not None:
        partitioning = f"{tp.type_}({tp.field})" if tp.field else f"{tp.type_}(_PARTITIONTIME)"
    elif table.range_partitioning is not None:
        partitioning = f"RANGE({table.range_partitioning.field})"
    return TableSchema(
        dataset=table.dataset_id,
        table=table.table_id,
        fields=tuple(field_from_schema_field(f) for f in table.schema),
        primary_key=_primary_key(table),
        partitioning=partitioning,
        clustering=tuple(table.clustering_fields or ()),
        num_rows=num_rows,
        partition_expiration_ms=_int_or_none(tp.expiration_ms) if tp is not None else None,
        require_partition_filter=_requires_partition_filter(table),
        extra={
            "description": table.description,
            "table_type": table.table_type,
            "created": table.created.isoformat() if table.created else None,
            "location": table.location,
        },
    )


def _requires_partition_filter(table: bigquery.Table) -> bool:
    # The table-level option, or the older `timePartitioning.requirePartitionFilter` some tables
    # still carry (read from the resource: the client's property for it is deprecated).
    if table.require_partition_filter:
        return True
    legacy = (table._properties.get("timePartitioning") or {}).get("requirePartitionFilter")  # noqa: SLF001
    return str(legacy).lower() == "true"


def _primary_key(table: bigquery.Table) -> tuple[str, ...] | None:
    # Absent constraints are "unknown", never "no key": the emulator stores none and older
    # client versions do not expose them. Read every step defensively.
    try:
        constraints = getattr(table, "table_constraints", None)
    except (KeyError, TypeError, ValueError):
        return None
    primary = getattr(constraints, "primary_key", None) if constraints is not None else None
    columns = getattr(primary, "columns", None) if primary is not None else None
    if not columns:
        return None
    return tuple(str(c) for c in columns)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def query_parameter(name: str, value: Any) -> bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter:
    """A typed query parameter for a Python value (pass a ready `ScalarQueryParameter` to force a type)."""
    if isinstance(value, bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter):
        return value
    if isinstance(value, list | tuple):
        element_types = {_scalar_type(v) for v in value if v is not None}
        if len(element_types) > 1 and element_types <= {"INT64", "FLOAT64"}:
            element_types = {"FLOAT64"}
        if len(element_types) > 1:
            raise QueryFailed(f"Query parameter @{name} mixes element types {sorted(element_types)}.")
        element_type = element_types.pop() if element_types else "STRING"
        return bigquery.ArrayQueryParameter(name, element_type, list(value))
    return bigquery.ScalarQueryParameter(name, _scalar_type(value), value)


def _scalar_type(value: Any) -> str:
    # bool before int: True is an int in Python but a BOOL to BigQuery.
    if value is None:
        return "STRING"  # an untyped NULL; pass a ScalarQueryParameter for a typed one
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64" if _INT64_MIN <= value <= _INT64_MAX else "BIGNUMERIC"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, decimal.Decimal):
        exponent = value.as_tuple().exponent
        scale = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        whole = len(value.as_tuple().digits) - scale
        return "NUMERIC" if scale <= 9 and whole <= 29 else "BIGNUMERIC"
    if isinstance(value, str):
        return "STRING"
    if isinstance(value, bytes | bytearray):
        return "BYTES"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP" if value.tzinfo is not None else "DATETIME"
    if isinstance(value, dt.date):
        return "DATE"
    if isinstance(value, dt.time):
        return "TIME"
    raise QueryFailed(f"Cannot send a {type(value).__name__} as a BigQuery query parameter.")
