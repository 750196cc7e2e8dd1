"""Columns of a source table: names, declared types parsed to canonical ones, nullability, keys, defaults."""

from __future__ import annotations

import re

from sqlalchemy import Connection, column, inspect, select, text
from sqlalchemy import table as sa_table
from sqlalchemy.exc import SQLAlchemyError

from ml_platform.etl.errors import SourceError, TableNotFoundError
from ml_platform.etl.source_types import parse_source_type
from ml_platform.etl.sources.engines import ConnectionParams, connect, guard, text_value
from ml_platform.etl.types import SourceColumn

__all__ = ["describe", "get_columns", "not_found"]

Described = tuple[str | None, str, list[SourceColumn]]


def get_columns(params: ConnectionParams, schema: str | None, table: str) -> list[SourceColumn]:
    """The columns of `schema.table` in declaration order, typed as the database names them."""
    with connect(params) as conn:
        _, _, columns = describe(conn, params.dialect, schema, table)
        return columns


def describe(conn: Connection, kind: str, schema: str | None, name: str) -> Described:
    """(resolved schema, resolved table name, columns) or TableNotFoundError."""
    if "\x00" in name or "\x00" in (schema or ""):
        # No database names a table with NUL, and the drivers refuse to send one: it cannot exist.
        raise not_found(schema, name)
    match kind:
        case "postgresql":
            return _pg_describe(conn, schema, name)
        case "mysql":
            return _mysql_describe(conn, schema, name)
        case _:
            return _sqlite_describe(conn, schema, name)


def not_found(schema: str | None, name: str) -> TableNotFoundError:
    where = f" in schema {schema!r}" if schema else ""
    return TableNotFoundError(f"Table {name!r} not found{where}")


def _primary_key(conn: Connection, schema: str | None, name: str) -> list[str] | None:
    """PK columns per SQLAlchemy's Inspector; None when it cannot tell (views, odd DDL)."""
    try:
        with guard(conn):
            constraint = inspect(conn).get_pk_constraint(name, schema=schema)
    except SQLAlchemyError:
        return None
    return list(constraint.get("constrained_columns") or [])


def _pg_describe(conn: Connection, schema: str | None, name: str) -> Described:
    if schema is None:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
    oid = conn.execute(
        text(
            """
            SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = :schema AND c.relname = :name AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
            """
        ),
        {"schema": schema, "name": name},
    ).scalar()
    if oid is None:
        raise not_found(schema, name)
    rows = conn.execute(
        text(
            """
            SELECT a.attname,
                   format_type(a.atttypid, a.atttypmod),
                   a.attnotnull,
                   pg_get_expr(d.adbin, d.adrelid),
                   a.attidentity,
                   a.attgenerated,
                   t.typtype,
                   elem.typtype,
                   CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END
            FROM pg_attribute a
            JOIN pg_type t ON t.oid = a.atttypid
            LEFT JOIN pg_type elem ON elem.oid = t.typelem AND t.typcategory = 'A'
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = CAST(:oid AS oid) AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """
        ),
        {"oid": int(oid)},
    ).all()
    pk = set(_primary_key(conn, schema, name) or ())
    columns = []
    for attname, type_text, notnull, default, identity, generated, typtype, elem_typtype, domain_base in rows:
        is_enum = typtype == "e" or elem_typtype == "e"
        # A domain is named by the user but behaves as its base type.
        parse_text = domain_base if typtype == "d" and domain_base else type_text
        if identity in ("a", "d"):
            default = f"generated {'always' if identity == 'a' else 'by default'} as identity"
        elif generated == "s" and default:
            default = f"generated always as ({default}) stored"
        columns.append(
            SourceColumn(
                name=attname,
                source_type=type_text,
                type=parse_source_type(parse_text, "postgresql", is_enum=is_enum),
                nullable=not notnull,
                primary_key=attname in pk,
                default=default,
            )
        )
    return schema, name, columns


_MARIADB_JSON_CHECK = re.compile(r"json_valid\s*\(\s*`((?:[^`]|``)+)`\s*\)", re.IGNORECASE)


def _mysql_describe(conn: Connection, schema: str | None, name: str) -> Described:
    if schema is None:
        schema = conn.exec_driver_sql("SELECT DATABASE()").scalar()
        if not schema:
            raise SourceError("No database selected: set the connection's database or pass a schema.")
    found = conn.execute(
        text("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = :schema AND TABLE_NAME = :name"),
        {"schema": schema, "name": name},
    ).all()
    names = [text_value(r[0]) for r in found]
    if not names:
        raise not_found(schema, name)
    # information_schema may compare case-insensitively: prefer the exact spelling.
    name = name if name in names else names[0]
    rows = conn.execute(
        text(
            """
            SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, COLUMN_KEY
            FROM information_schema.COLUMNS
            WHERE TABLE_SCHEMA = :schema AND TABLE_NAME = :name
            ORDER BY ORDINAL_POSITION
            """
        ),
        {"schema": schema, "name": name},
    ).all()
    is_mariadb = bool(getattr(conn.dialect, "is_mariadb", False))
    json_columns = _mariadb_json_columns(conn, schema, name) if is_mariadb else set()
    pk = _primary_key(conn, schema, name)
    columns = []
    for col_name, col_type, nullable, default, extra, key in rows:
        col_name, col_type, extra = text_value(col_name), text_value(col_type), text_value(extra or "")
        default = text_value(default) if default is not None else None
        # MariaDB spells a NULL default as the bare word NULL (string literals come quoted).
        if is_mariadb and default == "NULL":
            default = None
        if default is None and "auto_increment" in extra.lower():
            default = "auto_increment"
        columns.append(
            SourceColumn(
                name=col_name,
                source_type=col_type,
                type=parse_source_type(col_type, "mysql", is_json=col_name in json_columns),
                nullable=text_value(nullable).upper() == "YES",
                primary_key=col_name in pk if pk is not None else text_value(key) == "PRI",
                default=default,
            )
        )
    return schema, name, columns


def _mariadb_json_columns(conn: Connection, schema: str, name: str) -> set[str]:
    """Columns MariaDB guards with CHECK (json_valid(col)), which is how its JSON alias is stored."""
    try:
        with guard(conn):
            clauses = conn.execute(
                text(
                    "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                    "WHERE CONSTRAINT_SCHEMA = :schema AND TABLE_NAME = :name"
                ),
                {"schema": schema, "name": name},
            ).scalars()
            found = set()
            for clause in clauses:
                found.update(m.replace("``", "`") for m in _MARIADB_JSON_CHECK.findall(text_value(clause)))
            return found
    except SQLAlchemyError:
        return set()  # servers before 10.3.10 have no CHECK_CONSTRAINTS view


_SQLITE_IDENT = r'(?:"((?:[^"]|"")+)"|`((?:[^`]|``)+)`|\[([^\]]+)\]|([A-Za-z_][A-Za-z0-9_$]*))'
_SQLITE_JSON_CHECK = re.compile(r"json_valid\s*\(\s*" + _SQLITE_IDENT + r"\s*\)", re.IGNORECASE)


def _sqlite_describe(conn: Connection, schema: str | None, name: str) -> Described:
    schema_name = schema or "main"
    master = sa_table("sqlite_master", column("type"), column("name"), column("sql"), schema=schema_name)
    try:
        found = conn.execute(
            select(master.c.name, master.c.sql).where(master.c.type.in_(["table", "view"]), master.c.name == name)
        ).first()
    except SQLAlchemyError:  # an unknown schema (not attached) is just "not found" here
        raise not_found(schema, name) from None
    if found is None:
        raise not_found(schema, name)
    create_sql = found[1] or ""
    rows = conn.execute(
        text('SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(:name, :schema) ORDER BY cid'),
        {"name": name, "schema": schema_name},
    ).all()
    json_columns = {next(g for g in m if g) for m in _SQLITE_JSON_CHECK.findall(create_sql)}
    pk_from_pragma = [r[0] for r in sorted((r for r in rows if r[4]), key=lambda r: r[4])]
    pk = _primary_key(conn, schema, name)
    if pk is None:
        pk = pk_from_pragma
    # An INTEGER PRIMARY KEY is the rowid and can never be NULL, though the pragma says "nullable".
    rowid_alias = (
        len(pk_from_pragma) == 1
        and not re.search(r"\bwithout\s+rowid\b", create_sql, re.IGNORECASE)
        and next(str(r[1]).strip().upper() for r in rows if r[0] == pk_from_pragma[0]) == "INTEGER"
    )
    columns = []
    for col_name, declared, notnull, default, _pk in rows:
        declared = declared or ""
        columns.append(
            SourceColumn(
                name=col_name,
                source_type=declared,
                type=parse_source_type(declared, "sqlite", is_json=col_name in json_columns),
                nullable=not notnull and not (rowid_alias and col_name == pk_from_pragma[0]),
                primary_key=col_name in pk,
                default=default,
            )
        )
    return schema, name, columns
