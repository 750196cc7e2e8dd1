"""The source columns a request names: typed in the body, or read from the source by name."""

from __future__ import annotations

from ml_platform import sources
from ml_platform.api.parsing import BadRequest
from ml_platform.api.schemas import ColumnIn
from ml_platform.etl.source_types import parse_source_type
from ml_platform.etl.types import SourceColumn
from ml_platform.models import Connection


def typed_columns(columns: list[ColumnIn], dialect: str) -> list[SourceColumn]:
    return [SourceColumn(name=c.name, source_type=c.type, type=parse_source_type(c.type, dialect),
                         nullable=c.nullable, primary_key=c.primary_key) for c in columns]


def introspected(connection: Connection, schema: str | None, table: str, names: list[str] | None, *,
                 field: str) -> list[SourceColumn]:
    """The table's columns (types from the source), narrowed to `names` in their order; an unknown name is a 400
    naming `field`. Raises the source's errors (SourceError: a missing table is a 404)."""
    available = sources.get_columns(connection, schema, table)
    if names is None:
        return available
    by_name = {c.name.lower(): c for c in available}
    unknown = [n for n in names if n.lower() not in by_name]
    if unknown:
        raise BadRequest("Unknown source columns",
                         details=[{"field": field, "error": f"{n!r} is not a column of {sources.qualified_name(schema, table)}"}
                                  for n in unknown])
    return [by_name[n.lower()] for n in names]
