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
