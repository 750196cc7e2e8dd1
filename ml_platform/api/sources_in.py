"""The source columns a request names: typed in the body, or read from the source by name."""

from __future__ import annotations

from ml_platform.api.parsing import BadRequest
from ml_platform.api.schemas import ColumnIn
from ml_platform.etl.source_types import parse_source_type
from ml_platform.etl.types import SourceColumn
from ml_platform.models import Connection
from ml_platform.services import schema_check


def typed_columns(columns: list[ColumnIn], dialect: str) -> list[SourceColumn]:
    return [SourceColumn(name=c.name, source_type=c.type, type=parse_source_type(c.type, dialect),
                         nullable=c.nullable, primary_key=c.primary_key) for c in columns]


def introspected(connection: Connection, source_table: str, names: list[str] | None, *,
                 field: str) -> list[SourceColumn]:
    """The columns of `source_table` ("schema.table"), typed by the source (`schema_check.source_columns_named`),
    narrowed to `names` in their order; an unknown name is a 400 naming `field`. Raises the source's errors
    (SourceError: a missing table is a 404)."""
    try:
        return schema_check.source_columns_named(connection, source_table, names)
    except schema_check.UnknownColumns as exc:
        raise BadRequest("Unknown source columns",
                         details=[{"field": field, "error": f"{n!r} is not a column of {source_table}"}
                                  for n in exc.names]) from None
