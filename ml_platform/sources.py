"""Django-side glue between saved Connections and the pure introspection code.

Views and services call these; `utils/connection_manager.py` never sees a model.
"""

from __future__ import annotations

from ml_platform.etl.types import SourceColumn
from ml_platform.models import Connection
from ml_platform.utils import connection_manager as cm


def params_for(connection: Connection) -> cm.ConnectionParams:
    return cm.ConnectionParams(
        engine=connection.engine,
        host=connection.host,
        port=connection.port,
        database=connection.database,
        username=connection.username,
        password=connection.password,
        options=dict(connection.options or {}),
    )


def split_table(qualified: str) -> tuple[str | None, str]:
    """'schema.table' -> (schema, table); a bare name has no schema.

    Only the first dot separates: table names may contain dots themselves.
    """
    if "." in qualified:
        schema, table = qualified.split(".", 1)
        return (schema or None), table
    return None, qualified


def qualified_name(schema: str | None, table: str) -> str:
    return f"{schema}.{table}" if schema else table


def list_tables(connection: Connection) -> list[cm.TableInfo]:
    return cm.list_tables(params_for(connection))


def get_columns(connection: Connection, schema: str | None, table: str) -> list[SourceColumn]:
    return cm.get_columns(params_for(connection), schema, table)


def preview(connection: Connection, schema: str | None, table: str, *, limit: int = 20,
            columns: list[str] | None = None) -> cm.Preview:
    return cm.preview_rows(params_for(connection), schema, table, limit=limit, columns=columns)


def test_connection(connection: Connection) -> cm.TestResult:
    return cm.test_connection(params_for(connection))
