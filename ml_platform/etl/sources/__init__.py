"""The source layer: everything that talks to a source database (PostgreSQL, MySQL/MariaDB, SQLite).

Pure (no Django): callers hand in a plain `ConnectionParams`.
- `policy`   where a connection may go: option allow-list, SQLite root, sockets, host lists;
- `engines`  engine creation and caching, connect options, read-only sessions, "Test connection";
- `catalog`  tables and views, and the one row estimate (`estimate_rows`);
- `describe` columns and their types;
- `preview`  the first rows, read as the load reads them;
- `validate` set-based scans for narrowing casts.
Extraction for a run is `ml_platform.etl.extract` (+ `fast_extract`). Errors are `ml_platform.etl.errors`.
"""

from ml_platform.etl.errors import SourceError, SourceUnavailable, TableNotFoundError
from ml_platform.etl.sources.catalog import TableInfo, estimate_rows, list_tables
from ml_platform.etl.sources.describe import get_columns
from ml_platform.etl.sources.engines import (
    ConnectionParams,
    TestResult,
    connect_failed,
    dispose_engines,
    get_engine,
    test_connection,
)
from ml_platform.etl.sources.preview import Preview, display_value, json_safe, preview_rows
from ml_platform.etl.sources.validate import validate_columns

__all__ = [
    "ConnectionParams",
    "Preview",
    "SourceError",
    "SourceUnavailable",
    "TableInfo",
    "TableNotFoundError",
    "TestResult",
    "connect_failed",
    "display_value",
    "dispose_engines",
    "estimate_rows",
    "get_columns",
    "get_engine",
    "json_safe",
    "list_tables",
    "preview_rows",
    "test_connection",
    "validate_columns",
]
