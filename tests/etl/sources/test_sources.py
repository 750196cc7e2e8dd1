"""`etl/sources/` describe, preview and catalog against one all-types table per dialect (real PostgreSQL, MariaDB, SQLite).

Each dialect gets one throw-away database per module, holding a table with a column of
every common type (a row of values and a row of NULLs), a view, and tables whose names
are hostile to naive SQL building.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pymysql
import pytest
from psycopg import sql

from ml_platform.etl import sources as cm
from ml_platform.etl.types import CanonicalType, Family, SourceColumn
from tests.plugins.harness import IN_CI, MYSQL_HOST, MYSQL_PORT, MYSQL_USER, PG_HOST, PG_PORT, PG_USER

integration = pytest.mark.integration

MYSQL_PASSWORD = os.environ.get("TEST_MYSQL_PASSWORD", "")

INTEGER = CanonicalType(Family.INTEGER)
FLOAT = CanonicalType(Family.FLOAT)
STRING = CanonicalType(Family.STRING)
BOOLEAN = CanonicalType(Family.BOOLEAN)
DATE = CanonicalType(Family.DATE)
TIME = CanonicalType(Family.TIME)
MYSQL_TIME = CanonicalType(Family.TIME, detail="duration")
INT_BOOLEAN = CanonicalType(Family.BOOLEAN, detail="int")
NAIVE_TS = CanonicalType(Family.TIMESTAMP, tz=False)
AWARE_TS = CanonicalType(Family.TIMESTAMP, tz=True)
PG_DATE = CanonicalType(Family.DATE, detail="infinite")  # may be ±infinity, BC
PG_NAIVE_TS = CanonicalType(Family.TIMESTAMP, tz=False, detail="infinite")
PG_AWARE_TS = CanonicalType(Family.TIMESTAMP, tz=True, detail="infinite")
JSON = CanonicalType(Family.JSON)
BYTES = CanonicalType(Family.BYTES)
UNKNOWN = CanonicalType(Family.UNKNOWN)
ENUM = CanonicalType(Family.STRING, detail="enum")


def pg_numeric(precision: int | None = None, scale: int | None = None) -> CanonicalType:
    """A PostgreSQL numeric, which may hold 'NaN'."""
    return CanonicalType(Family.DECIMAL, precision=precision, scale=scale, detail="nan")


def decimal(precision: int | None = None, scale: int | None = None) -> CanonicalType:
    return CanonicalType(Family.DECIMAL, precision=precision, scale=scale)


def array(element: CanonicalType) -> CanonicalType:
    return CanonicalType(Family.ARRAY, element=element)


def is_instant(expected: dt.datetime) -> Callable[[Any], bool]:
    """The JSON value is an ISO timestamp with an offset denoting `expected`."""

    def check(value: Any) -> bool:
        parsed = dt.datetime.fromisoformat(value)
        return parsed.tzinfo is not None and parsed == expected

    return check


@dataclass(frozen=True)
class Col:
    """One column of the all-types table: its DDL, what introspection must say, a value and its JSON form."""

    name: str
    ddl: str
    source_type: str | tuple[str, ...]
    type: CanonicalType
    literal: str | None  # SQL literal for the values row; None = let the default fill it
    expected: Any  # json_safe() of the previewed value, or a predicate on it
    nullable: bool = True


PG_COLUMNS = [
    Col("id", "serial PRIMARY KEY", "integer", INTEGER, None, 1, nullable=False),
    Col("c_smallint", "smallint NOT NULL DEFAULT 7", "smallint", INTEGER, "-32768", -32768, nullable=False),
    Col("c_integer", "integer", "integer", INTEGER, "2147483647", 2147483647),
    Col("c_bigint", "bigint", "bigint", INTEGER, "9223372036854775807", "9223372036854775807"),
    Col("c_bigserial", "bigserial", "bigint", INTEGER, None, 1, nullable=False),
    Col("c_numeric_ps", "numeric(12,2)", "numeric(12,2)", pg_numeric(12, 2), "1234567890.12", "1234567890.12"),
    Col(
        "c_numeric", "numeric", "numeric", pg_numeric(), "3.14159265358979323846264338", "3.14159265358979323846264338"
    ),
    Col("c_real", "real", "real", FLOAT, "1.5", 1.5),
    Col("c_double", "double precision", "double precision", FLOAT, "2.25", 2.25),
    Col("c_text", "text", "text", STRING, "'héllo wörld'", "héllo wörld"),
    Col("c_varchar", "varchar(20)", "character varying(20)", STRING, "'v'", "v"),
    Col("c_char", "char(3)", "character(3)", STRING, "'ab'", "ab "),
    Col(
        "c_uuid",
        "uuid",
        "uuid",
        CanonicalType(Family.STRING, detail="uuid"),
        "'12345678-1234-5678-1234-567812345678'",
        "12345678-1234-5678-1234-567812345678",
    ),
    Col("c_boolean", "boolean", "boolean", BOOLEAN, "true", True),
    Col("c_date", "date", "date", PG_DATE, "'2024-02-29'", "2024-02-29"),
    Col("c_time", "time", "time without time zone", TIME, "'13:14:15.5'", "13:14:15.500000"),
    Col(
        "c_timetz",
        "time with time zone",
        "time with time zone",
        CanonicalType(Family.TIME, detail="tz"),
        "'13:14:15+02'",
        "13:14:15+02",
    ),
    Col(
        "c_timestamp",
        "timestamp",
        "timestamp without time zone",
        PG_NAIVE_TS,
        "'2024-01-02 03:04:05'",
        "2024-01-02T03:04:05",
    ),
    Col(
        "c_timestamptz",
        "timestamptz",
        "timestamp with time zone",
        PG_AWARE_TS,
        "'2024-01-02 03:04:05+02'",
        is_instant(dt.datetime(2024, 1, 2, 1, 4, 5, tzinfo=dt.UTC)),
    ),
    # Read as the load reads them: PostgreSQL's own text (the load stores '1 day 02:03:04.5', not a timedelta).
    Col("c_interval", "interval", "interval", CanonicalType(Family.INTERVAL), "'1 day 02:03:04.5'", "1 day 02:03:04.5"),
    Col("c_json", "json", "json", JSON, """'{"k": [1, 2]}'""", {"k": [1, 2]}),
    Col("c_jsonb", "jsonb", "jsonb", CanonicalType(Family.JSON, detail="jsonb"), """'{"k": "v"}'""", {"k": "v"}),
    Col("c_bytea", "bytea", "bytea", BYTES, "'\\x00ff'::bytea", "base64:AP8="),
    Col("c_int_array", "integer[]", "integer[]", array(INTEGER), "'{1,NULL,3}'", [1, None, 3]),
    Col("c_text_array", "text[]", "text[]", array(STRING), "ARRAY['a', 'b c']", ["a", "b c"]),
    Col("c_varchar_array", "varchar(10)[]", "character varying(10)[]", array(STRING), "'{x}'", ["x"]),
    Col("c_enum", "mood", "mood", ENUM, "'happy'", "happy"),
    Col("c_enum_array", "mood[]", "mood[]", array(ENUM), "'{sad,happy}'", ["sad", "happy"]),
    Col("c_money", "money", "money", CanonicalType(Family.STRING, detail="money"), "12.5", lambda v: "12.50" in v),
    # CAST(inet AS text), as the load stores it.
    Col("c_inet", "inet", "inet", CanonicalType(Family.STRING, detail="inet"), "'10.0.0.1'", "10.0.0.1/32"),
    Col("c_domain", "positive_int", "positive_int", INTEGER, "5", 5),
]

MYSQL_COLUMNS = [
    Col("id", "int AUTO_INCREMENT PRIMARY KEY", ("int(11)", "int"), INTEGER, None, 1, nullable=False),
    Col("c_bool", "tinyint(1) NOT NULL DEFAULT 0", "tinyint(1)", INT_BOOLEAN, "1", True, nullable=False),
    Col("c_int", "int", ("int(11)", "int"), INTEGER, "-5", -5),
    Col(
        "c_bigint_unsigned",
        "bigint unsigned",
        ("bigint(20) unsigned", "bigint unsigned"),
        CanonicalType(Family.INTEGER, detail="unsigned64"),
        "18446744073709551615",
        "18446744073709551615",
    ),
    Col("c_decimal", "decimal(12,2)", "decimal(12,2)", decimal(12, 2), "1234567890.12", "1234567890.12"),
    Col("c_float", "float", "float", FLOAT, "1.5", 1.5),
    Col("c_double", "double", "double", FLOAT, "2.25", 2.25),
    Col("c_varchar", "varchar(20)", "varchar(20)", STRING, "'héllo 表'", "héllo 表"),
    Col("c_char", "char(3)", "char(3)", STRING, "'ab'", "ab"),
    Col("c_text", "text", "text", STRING, "'long text'", "long text"),
    Col("c_date", "date", "date", DATE, "'2024-02-29'", "2024-02-29"),
    Col(
        "c_datetime",
        "datetime(6)",
        "datetime(6)",
        NAIVE_TS,
        "'2024-01-02 03:04:05.123456'",
        "2024-01-02T03:04:05.123456",
    ),
    Col("c_timestamp", "timestamp NULL", "timestamp", AWARE_TS, "'2024-01-02 03:04:05'", "2024-01-02T03:04:05+00:00"),
    Col("c_time", "time", "time", MYSQL_TIME, "'13:14:15'", "13:14:15"),
    Col("c_year", "year", ("year(4)", "year"), CanonicalType(Family.INTEGER, detail="year"), "2024", 2024),
    # MariaDB stores JSON as longtext + CHECK (json_valid(...)); MySQL 8 has a native type.
    Col("c_json", "json", ("longtext", "json"), JSON, """'{"k": [1, 2]}'""", {"k": [1, 2]}),
    Col("c_blob", "blob", "blob", BYTES, "x'00ff'", "base64:AP8="),
    Col("c_varbinary", "varbinary(4)", "varbinary(4)", BYTES, "x'01'", "base64:AQ=="),
    Col("c_enum", "enum('a','b c')", "enum('a','b c')", ENUM, "'b c'", "b c"),
    Col("c_set", "set('x','y')", "set('x','y')", CanonicalType(Family.STRING, detail="set"), "'x,y'", "x,y"),
    Col("c_bit", "bit(1)", "bit(1)", CanonicalType(Family.BOOLEAN, detail="bit"), "b'1'", True),
    Col("c_boolean_alias", "boolean", "tinyint(1)", INT_BOOLEAN, "0", False),
]

SQLITE_COLUMNS = [
    Col("id", "INTEGER PRIMARY KEY", "INTEGER", INTEGER, None, 1, nullable=False),
    Col("c_int", "INT NOT NULL DEFAULT 0", "INT", INTEGER, "42", 42, nullable=False),
    Col("c_bigint", "BIGINT", "BIGINT", INTEGER, "9007199254740993", "9007199254740993"),
    Col("c_text", "TEXT", "TEXT", STRING, "'héllo'", "héllo"),
    Col("c_varchar", "VARCHAR(20)", "VARCHAR(20)", STRING, "'v'", "v"),
    Col("c_clob", "CLOB", "CLOB", STRING, "'c'", "c"),
    Col("c_blob", "BLOB", "BLOB", BYTES, "x'00ff'", "base64:AP8="),
    Col("c_untyped", "", "", UNKNOWN, "'anything'", "anything"),
    Col("c_real", "REAL", "REAL", FLOAT, "1.5", 1.5),
    Col("c_double", "DOUBLE", "DOUBLE", FLOAT, "2.25", 2.25),
    Col("c_float", "FLOAT", "FLOAT", FLOAT, "0.5", 0.5),
    # SQLite keeps 12.5 as REAL: it is read as the decimal written, as the load reads it.
    Col("c_numeric", "NUMERIC", "NUMERIC", decimal(), "10", "10"),
    Col("c_decimal", "DECIMAL(10,2)", "DECIMAL(10,2)", decimal(10, 2), "12.5", "12.5"),
    Col("c_boolean", "BOOLEAN", "BOOLEAN", INT_BOOLEAN, "1", True),
    Col("c_date", "DATE", "DATE", DATE, "'2024-02-29'", "2024-02-29"),
    Col("c_datetime", "DATETIME", "DATETIME", NAIVE_TS, "'2024-01-02 03:04:05'", "2024-01-02 03:04:05"),
    Col("c_timestamp", "TIMESTAMP", "TIMESTAMP", NAIVE_TS, "'2024-01-02 03:04:05'", "2024-01-02 03:04:05"),
    Col("c_json", "JSON", "JSON", JSON, """'{"k": 1}'""", {"k": 1}),
    Col(
        "c_json_checked",
        "TEXT CHECK (c_json_checked IS NULL OR json_valid(c_json_checked))",
        "TEXT",
        JSON,
        "'[1]'",
        [1],
    ),
    Col("c_weird", "FOOBAR", "FOOBAR", UNKNOWN, "'w'", "w"),
]

COLUMNS = {"postgresql": PG_COLUMNS, "mysql": MYSQL_COLUMNS, "sqlite": SQLITE_COLUMNS}
DIALECTS = list(COLUMNS)

# Names that break any code pasting identifiers into SQL.
HOSTILE_NAMES = [
    "my table",
    'it\'s "quoted"',
    "semi;colon; DROP TABLE x; --",
    "ünïcødé 表",
    "select",
    "Mixed Case",
    "per%cent",
    "back`tick",
    "colon :name",
]
HOSTILE_COLUMNS = ["select", "col with space", 'Quote\'d "col"', "per%cent"]


def service_missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"required service unavailable in CI: {reason}")
    pytest.skip(reason)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def mysql_quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def sqlite_quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal_row(columns: list[Col]) -> tuple[list[str], list[str]]:
    given = [c for c in columns if c.literal is not None]
    return [c.name for c in given], [c.literal for c in given if c.literal is not None]


# --------------------------------------------------------------------------- fixtures


def pg_admin(dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, autocommit=True, connect_timeout=5)


@pytest.fixture(scope="module")
def postgresql_params() -> Iterator[cm.ConnectionParams]:
    try:
        admin = pg_admin()
    except psycopg.Error as exc:
        service_missing(f"PostgreSQL not reachable: {exc}")
    name = unique("cm_test")
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with pg_admin(name) as db:
            db.execute("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')")
            db.execute("CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0)")
            ddl = ", ".join(f"{c.name} {c.ddl}" for c in PG_COLUMNS)
            db.execute(f"CREATE TABLE all_types ({ddl})")
            names, literals = literal_row(PG_COLUMNS)
            db.execute(f"INSERT INTO all_types ({', '.join(names)}) VALUES ({', '.join(literals)})")
            db.execute("INSERT INTO all_types DEFAULT VALUES")
            db.execute("ANALYZE all_types")
            db.execute("CREATE TABLE never_analyzed (id integer)")
            db.execute("CREATE VIEW all_types_view AS SELECT id, c_text FROM all_types")
            db.execute("CREATE MATERIALIZED VIEW all_types_matview AS SELECT id FROM all_types")
            db.execute("CREATE TABLE composite (a text, b integer, note text NOT NULL, PRIMARY KEY (a, b))")
            db.execute(
                "CREATE TABLE sentinels (d date, ts timestamp, tstz timestamptz);"
                "INSERT INTO sentinels VALUES ('-infinity', 'infinity', 'infinity')"
            )
            db.execute('CREATE SCHEMA "Other Schema"')
            db.execute('CREATE TABLE "Other Schema"."Thing" (id integer PRIMARY KEY, label text)')
            db.execute("""INSERT INTO "Other Schema"."Thing" VALUES (1, 'one')""")
            for table_name in HOSTILE_NAMES:
                columns = sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL("integer PRIMARY KEY" if i == 0 else "text"))
                    for i, c in enumerate(HOSTILE_COLUMNS)
                )
                db.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(table_name), columns))
                db.execute(
                    sql.SQL("INSERT INTO {} VALUES (1, 'a', 'b', 'c')").format(sql.Identifier(table_name)),
                )
        yield cm.ConnectionParams(
            engine="postgresql", host=PG_HOST, port=PG_PORT, database=name, username=PG_USER, password="unused-trust"
        )
    finally:
        cm.dispose_engines()
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


def mysql_admin(database: str | None = None) -> pymysql.Connection:
    return pymysql.connect(
        host=MYSQL_HOST,
        port=MYSQL_PORT,
        user=MYSQL_USER,
        password=MYSQL_PASSWORD,
        database=database,
        autocommit=True,
        charset="utf8mb4",
        connect_timeout=5,
    )


@pytest.fixture(scope="module")
def mysql_params() -> Iterator[cm.ConnectionParams]:
    try:
        admin = mysql_admin()
    except pymysql.Error as exc:
        service_missing(f"MariaDB/MySQL not reachable: {exc}")
    name = unique("cm_test")
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {mysql_quote(name)} CHARACTER SET utf8mb4")
    try:
        db = mysql_admin(name)
        with db.cursor() as cursor:
            # Literals for TIMESTAMP are read in the session zone: make it UTC like the product does.
            cursor.execute("SET time_zone = '+00:00'")
            ddl = ", ".join(f"{c.name} {c.ddl}" for c in MYSQL_COLUMNS)
            cursor.execute(f"CREATE TABLE all_types ({ddl})")
            names, literals = literal_row(MYSQL_COLUMNS)
            cursor.execute(f"INSERT INTO all_types ({', '.join(names)}) VALUES ({', '.join(literals)})")
            cursor.execute("INSERT INTO all_types () VALUES ()")
            cursor.execute("CREATE VIEW all_types_view AS SELECT id, c_text FROM all_types")
            cursor.execute("CREATE TABLE composite (a varchar(10), b int, note text NOT NULL, PRIMARY KEY (a, b))")
            for table_name in HOSTILE_NAMES:
                columns = ", ".join(
                    f"{mysql_quote(c)} {'int PRIMARY KEY' if i == 0 else 'text'}" for i, c in enumerate(HOSTILE_COLUMNS)
                )
                cursor.execute(f"CREATE TABLE {mysql_quote(table_name)} ({columns})")
                cursor.execute(f"INSERT INTO {mysql_quote(table_name)} VALUES (1, 'a', 'b', 'c')")
        db.close()
        yield cm.ConnectionParams(
            engine="mysql",
            host=MYSQL_HOST,
            port=MYSQL_PORT,
            database=name,
            username=MYSQL_USER,
            password=MYSQL_PASSWORD,
        )
    finally:
        cm.dispose_engines()
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {mysql_quote(name)}")
        admin.close()


@pytest.fixture(scope="module")
def sqlite_params(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cm.ConnectionParams]:
    # "?", "#", "%" and a space in the path: the read-only URI filename must escape them.
    path = tmp_path_factory.mktemp("sqlite") / "source db #1 ?x=%20.sqlite3"
    db = sqlite3.connect(path)
    ddl = ", ".join(f"{c.name} {c.ddl}".strip() for c in SQLITE_COLUMNS)
    db.execute(f"CREATE TABLE all_types ({ddl})")
    names, literals = literal_row(SQLITE_COLUMNS)
    db.execute(f"INSERT INTO all_types ({', '.join(names)}) VALUES ({', '.join(literals)})")
    db.execute("INSERT INTO all_types DEFAULT VALUES")
    db.execute("CREATE VIEW all_types_view AS SELECT id, c_text FROM all_types")
    db.execute("CREATE TABLE composite (a TEXT, b INT, note TEXT NOT NULL, PRIMARY KEY (a, b)) WITHOUT ROWID")
    for table_name in HOSTILE_NAMES:
        columns = ", ".join(
            f"{sqlite_quote(c)} {'INTEGER PRIMARY KEY' if i == 0 else 'TEXT'}" for i, c in enumerate(HOSTILE_COLUMNS)
        )
        db.execute(f"CREATE TABLE {sqlite_quote(table_name)} ({columns})")
        db.execute(f"INSERT INTO {sqlite_quote(table_name)} VALUES (1, 'a', 'b', 'c')")
    db.commit()
    db.close()
    yield cm.ConnectionParams(engine="sqlite", database=str(path))
    cm.dispose_engines()


@pytest.fixture(scope="module")
def introspected(request: pytest.FixtureRequest) -> Callable[[str], dict[str, SourceColumn]]:
    """get_columns of each dialect's all_types table, fetched once per module."""
    cache: dict[str, dict[str, SourceColumn]] = {}

    def columns_of(dialect: str) -> dict[str, SourceColumn]:
        if dialect not in cache:
            params = request.getfixturevalue(f"{dialect}_params")
            cache[dialect] = {c.name: c for c in cm.get_columns(params, None, "all_types")}
        return cache[dialect]

    return columns_of


@pytest.fixture(scope="module")
def previewed(request: pytest.FixtureRequest) -> Callable[[str], dict[int, dict[str, Any]]]:
    """preview_rows of each dialect's all_types table as {id: {column: json_safe value}}."""
    cache: dict[str, dict[int, dict[str, Any]]] = {}

    def rows_of(dialect: str) -> dict[int, dict[str, Any]]:
        if dialect not in cache:
            params = request.getfixturevalue(f"{dialect}_params")
            preview = cm.preview_rows(params, None, "all_types")
            names = [c.name for c in preview.columns]
            cache[dialect] = {row[0]: dict(zip(names, row, strict=True)) for row in preview.json_rows()}
        return cache[dialect]

    return rows_of


def params_for(dialect: str, request: pytest.FixtureRequest) -> cm.ConnectionParams:
    return request.getfixturevalue(f"{dialect}_params")


def all_type_cases() -> list[Any]:
    return [pytest.param(d, c, id=f"{d}-{c.name}") for d in DIALECTS for c in COLUMNS[d]]


def schema_of(dialect: str, params: cm.ConnectionParams) -> str | None:
    return {"postgresql": "public", "mysql": params.database, "sqlite": None}[dialect]


# --------------------------------------------------------------------------- types


@integration
@pytest.mark.parametrize(("dialect", "col"), all_type_cases())
def test_it_maps_every_common_type_to_its_family(
    dialect: str, col: Col, introspected: Callable[[str], dict[str, SourceColumn]]
) -> None:
    found = introspected(dialect)[col.name]
    expected_texts = col.source_type if isinstance(col.source_type, tuple) else (col.source_type,)
    assert found.source_type in expected_texts
    assert found.type == col.type


@integration
@pytest.mark.parametrize(("dialect", "col"), all_type_cases())
def test_it_reports_nullability_and_primary_key(
    dialect: str, col: Col, introspected: Callable[[str], dict[str, SourceColumn]]
) -> None:
    found = introspected(dialect)[col.name]
    assert found.nullable is col.nullable
    assert found.primary_key is (col.name == "id")


@integration
@pytest.mark.parametrize("dialect", DIALECTS)
def test_it_returns_columns_in_declaration_order(
    dialect: str, introspected: Callable[[str], dict[str, SourceColumn]]
) -> None:
    assert list(introspected(dialect)) == [c.name for c in COLUMNS[dialect]]


@integration
@pytest.mark.parametrize(("dialect", "col"), all_type_cases())
def test_it_previews_values_of_every_type(
    dialect: str, col: Col, previewed: Callable[[str], dict[int, dict[str, Any]]]
) -> None:
    value = previewed(dialect)[1][col.name]
    if callable(col.expected):
        assert col.expected(value), value
    else:
        assert value == col.expected


@integration
@pytest.mark.parametrize("dialect", DIALECTS)
def test_it_previews_nulls_of_every_type(dialect: str, previewed: Callable[[str], dict[int, dict[str, Any]]]) -> None:
    null_row = previewed(dialect)[2]
    non_null = {c.name for c in COLUMNS[dialect] if not c.nullable}
    assert {name for name, value in null_row.items() if value is not None} == non_null


@integration
@pytest.mark.parametrize("dialect", DIALECTS)
def test_it_renders_every_previewed_value_for_display(dialect: str, request: pytest.FixtureRequest) -> None:
    preview = cm.preview_rows(params_for(dialect, request), None, "all_types")
    display = preview.display_rows()
    assert all(isinstance(cell, str) for row in display for cell in row)
    assert "NULL" in display[1]


@integration
@pytest.mark.parametrize("dialect", DIALECTS)
def test_it_reports_a_composite_primary_key(dialect: str, request: pytest.FixtureRequest) -> None:
    columns = cm.get_columns(params_for(dialect, request), None, "composite")
    assert [(c.name, c.primary_key, c.nullable) for c in columns] == [
        ("a", True, False),
        ("b", True, False),
        ("note", False, False),
    ]


@integration
def test_it_detects_mariadb_json_through_its_check_constraint(
    introspected: Callable[[str], dict[str, SourceColumn]],
) -> None:
    column = introspected("mysql")["c_json"]
    assert column.type.family is Family.JSON
    assert column.source_type in ("longtext", "json")  # the database's own name, not ours


@integration
def test_it_previews_postgresql_infinite_dates_as_text(postgresql_params: cm.ConnectionParams) -> None:
    preview = cm.preview_rows(postgresql_params, "public", "sentinels")
    assert preview.rows == [["-infinity", "infinity", "infinity"]]


@integration
def test_it_keeps_mysql_timestamps_in_utc(mysql_params: cm.ConnectionParams) -> None:
    preview = cm.preview_rows(mysql_params, None, "all_types", columns=["c_timestamp", "c_datetime"])
    aware, naive = preview.rows[0]
    assert aware == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert naive.tzinfo is None


# --------------------------------------------------------------------------- tables


@integration
def test_it_lists_postgresql_tables_views_and_catalog_estimates(postgresql_params: cm.ConnectionParams) -> None:
    tables = {(t.schema, t.name): t for t in cm.list_tables(postgresql_params)}
    assert tables[("public", "all_types")] == cm.TableInfo("public", "all_types", 2, "table")
    assert tables[("public", "never_analyzed")].estimated_rows is None  # reltuples = -1, not 0
    assert tables[("public", "all_types_view")].kind == "view"
    assert tables[("public", "all_types_view")].estimated_rows is None
    assert tables[("public", "all_types_matview")].kind == "view"
    assert ("Other Schema", "Thing") in tables
    assert not {schema for schema, _ in tables} & {"pg_catalog", "information_schema"}


@integration
def test_it_lists_mysql_tables_views_and_catalog_estimates(mysql_params: cm.ConnectionParams) -> None:
    tables = {t.name: t for t in cm.list_tables(mysql_params)}
    assert tables["all_types"].schema == mysql_params.database
    assert tables["all_types"].kind == "table"
    assert isinstance(tables["all_types"].estimated_rows, int)
    assert tables["all_types_view"].kind == "view"
    assert tables["all_types_view"].estimated_rows is None
    assert {t.schema for t in tables.values()} == {mysql_params.database}


@integration
def test_it_lists_sqlite_tables_and_views(sqlite_params: cm.ConnectionParams) -> None:
    tables = {t.name: t for t in cm.list_tables(sqlite_params)}
    assert tables["all_types"] == cm.TableInfo(None, "all_types", 2, "table")
    assert tables["all_types_view"] == cm.TableInfo(None, "all_types_view", None, "view")
    # WITHOUT ROWID tables have no cheap estimate: unknown rather than a full count.
    assert tables["composite"].estimated_rows is None


@integration
def test_it_prefers_sqlite_stat1_over_max_rowid(tmp_path: Path) -> None:
    path = tmp_path / "stats.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    db.execute("CREATE INDEX t_v ON t (v)")
    db.executemany("INSERT INTO t (v) VALUES (?)", [(str(i),) for i in range(5)])
    db.execute("ANALYZE")
    db.execute("INSERT INTO t (id, v) VALUES (1000, 'far')")  # max(rowid) would now say 1000
    db.commit()
    db.close()
    tables = {t.name: t for t in cm.list_tables(cm.ConnectionParams(engine="sqlite", database=str(path)))}
    assert tables["t"].estimated_rows == 5
    assert "sqlite_stat1" not in tables


@integration
@pytest.mark.parametrize("dialect", DIALECTS)
def test_it_raises_not_found_for_an_unknown_table(dialect: str, request: pytest.FixtureRequest) -> None:
    params = params_for(dialect, request)
    with pytest.raises(cm.TableNotFoundError, match="not found"):
        cm.get_columns(params, None, "no_such_table")
    with pytest.raises(cm.SourceError, match="not found"):
        cm.preview_rows(params, None, "no_such_table")


@integration
def test_it_raises_not_found_for_an_unknown_postgresql_schema(postgresql_params: cm.ConnectionParams) -> None:
    with pytest.raises(cm.TableNotFoundError, match="no_such_schema"):
        cm.get_columns(postgresql_params, "no_such_schema", "all_types")


@integration
def test_it_introspects_and_previews_a_table_in_a_quoted_postgresql_schema(
    postgresql_params: cm.ConnectionParams,
) -> None:
    columns = cm.get_columns(postgresql_params, "Other Schema", "Thing")
    assert [(c.name, c.primary_key) for c in columns] == [("id", True), ("label", False)]
    assert cm.preview_rows(postgresql_params, "Other Schema", "Thing").rows == [[1, "one"]]


# --------------------------------------------------------------------------- preview options


@integration
@pytest.mark.parametrize("dialect", DIALECTS)
def test_it_previews_chosen_columns_in_the_requested_order_up_to_the_limit(
    dialect: str, request: pytest.FixtureRequest
) -> None:
    params = params_for(dialect, request)
    preview = cm.preview_rows(params, schema_of(dialect, params), "all_types", limit=1, columns=["c_date", "id"])
    assert [c.name for c in preview.columns] == ["c_date", "id"]
    assert len(preview.rows) == 1
    assert len(preview.rows[0]) == 2


@integration
@pytest.mark.parametrize("dialect", DIALECTS)
def test_it_rejects_an_unknown_preview_column(dialect: str, request: pytest.FixtureRequest) -> None:
    with pytest.raises(cm.SourceError, match="nope"):
        cm.preview_rows(params_for(dialect, request), None, "all_types", columns=["id", "nope"])


@integration
@pytest.mark.parametrize("dialect", DIALECTS)
def test_it_previews_a_view(dialect: str, request: pytest.FixtureRequest) -> None:
    preview = cm.preview_rows(params_for(dialect, request), None, "all_types_view")
    assert sorted(row[0] for row in preview.rows) == [1, 2]


@integration
def test_it_returns_no_rows_for_a_zero_limit(sqlite_params: cm.ConnectionParams) -> None:
    preview = cm.preview_rows(sqlite_params, None, "all_types", limit=0)
    assert preview.rows == []
    assert len(preview.columns) == len(SQLITE_COLUMNS)


# --------------------------------------------------------------------------- hostile names


@integration
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("table_name", HOSTILE_NAMES)
def test_it_introspects_and_previews_hostile_table_names(
    dialect: str, table_name: str, request: pytest.FixtureRequest
) -> None:
    params = params_for(dialect, request)
    listed = [t for t in cm.list_tables(params) if t.name == table_name]
    assert len(listed) == 1
    columns = cm.get_columns(params, listed[0].schema, table_name)
    assert [c.name for c in columns] == HOSTILE_COLUMNS
    assert [c.primary_key for c in columns] == [True, False, False, False]
    preview = cm.preview_rows(params, listed[0].schema, table_name)
    assert preview.rows == [[1, "a", "b", "c"]]
    subset = cm.preview_rows(params, listed[0].schema, table_name, columns=["per%cent", "select"])
    assert subset.rows == [["c", 1]]


# --------------------------------------------------------------------------- test connection


@integration
@pytest.mark.parametrize("dialect", DIALECTS)
def test_it_tests_a_good_connection(dialect: str, request: pytest.FixtureRequest) -> None:
    started = time.perf_counter()
    result = cm.test_connection(params_for(dialect, request))
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert result.ok, result.error
    assert result.error is None
    assert result.server_version and result.server_version.split()[0] in ("PostgreSQL", "MariaDB", "MySQL", "SQLite")
    # The probe query alone was timed, in milliseconds: more than nothing, less than the whole test (connect included).
    assert isinstance(result.round_trip_ms, float) and 0 < result.round_trip_ms < elapsed_ms


@integration
def test_it_reports_a_wrong_password_as_authentication_failure_without_the_password(
    mysql_params: cm.ConnectionParams,
) -> None:
    # PostgreSQL on this machine trusts 127.0.0.1, so only MariaDB can refuse a password.
    password = f"Wr0ng:{uuid.uuid4().hex}/p@ss word"
    params = cm.ConnectionParams(
        engine="mysql",
        host=MYSQL_HOST,
        port=MYSQL_PORT,
        database=mysql_params.database,
        username=MYSQL_USER,
        password=password,
    )
    result = cm.test_connection(params)
    assert not result.ok
    assert result.error and "authentication" in result.error.lower()
    for leaked in (password, quote(password, safe=""), password.split(":")[1]):
        assert leaked not in result.error
    with pytest.raises(cm.SourceError) as raised:
        cm.list_tables(params)
    assert "authentication" in str(raised.value).lower()
    assert password not in str(raised.value) and password not in repr(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


# --------------------------------------------------------------------------- engines


@integration
def test_it_reuses_an_engine_and_replaces_it_when_credentials_change(postgresql_params: cm.ConnectionParams) -> None:
    first = cm.get_engine(postgresql_params)
    assert cm.get_engine(cm.ConnectionParams(**vars(postgresql_params))) is first
    cm.list_tables(postgresql_params)
    # No session outlives its call (every connect logs in afresh: tests/services/test_password_rotation.py).
    assert first.pool.status().startswith("NullPool")
    rotated = cm.ConnectionParams(**{**vars(postgresql_params), "password": "rotated"})
    second = cm.get_engine(rotated)
    assert second is not first
    assert cm.get_engine(rotated) is second


# --------------------------------------------------------------------------- secrets and URLs


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, True),
        (42, 42),
        (2**63, str(2**63)),
        (1.5, 1.5),
        (float("nan"), "nan"),
        (__import__("decimal").Decimal("1234567890.120"), "1234567890.120"),
        (b"\x00\xff", "base64:AP8="),
        (memoryview(b"\x01"), "base64:AQ=="),
        (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))), "2024-01-02T03:04:05+02:00"),
        (dt.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
        (dt.date(2024, 2, 29), "2024-02-29"),
        (dt.time(13, 14, 15), "13:14:15"),
        (dt.timedelta(days=1, hours=2, minutes=3, seconds=4, microseconds=500000), "P1DT2H3M4.5S"),
        (dt.timedelta(0), "PT0S"),
        (-dt.timedelta(hours=1), "-PT1H"),
        (uuid.UUID("12345678-1234-5678-1234-567812345678"), "12345678-1234-5678-1234-567812345678"),
        ({"a": [1, __import__("decimal").Decimal("2.5")]}, {"a": [1, "2.5"]}),
        (__import__("ipaddress").ip_address("10.0.0.1"), "10.0.0.1"),
    ],
)
def test_it_makes_values_json_safe(value: Any, expected: Any) -> None:
    assert cm.json_safe(value) == expected


def test_it_renders_display_values() -> None:
    assert cm.display_value(None) == "NULL"
    assert cm.display_value(False) == "false"
    assert cm.display_value(2**63) == str(2**63)
    assert cm.display_value(__import__("decimal").Decimal("0.10")) == "0.10"
    assert cm.display_value({"k": [1, 2]}) == '{\n  "k": [\n    1,\n    2\n  ]\n}'
    assert cm.display_value("ünï") == "ünï"
    assert cm.display_value(b"\x00\xff") == "base64:AP8="
    assert cm.display_value(1.5) == "1.5"


