"""parse_source_type: type text as each database reports it -> canonical family.

Pure and table-driven: no database, no Django.
"""

from __future__ import annotations

import pytest

from ml_platform.etl.source_types import parse_source_type
from ml_platform.etl.types import (
    CanonicalType,
    Family,
    naming_collisions,
    normalize_column_name,
    normalize_column_names,
)

INTEGER = CanonicalType(Family.INTEGER)
FLOAT = CanonicalType(Family.FLOAT)
STRING = CanonicalType(Family.STRING)
BOOLEAN = CanonicalType(Family.BOOLEAN)
INT_BOOLEAN = CanonicalType(Family.BOOLEAN, detail="int")
MYSQL_TIME = CanonicalType(Family.TIME, detail="duration")
DATE = CanonicalType(Family.DATE)
TIME = CanonicalType(Family.TIME)
NAIVE_TS = CanonicalType(Family.TIMESTAMP, tz=False)
AWARE_TS = CanonicalType(Family.TIMESTAMP, tz=True)
# PostgreSQL dates/timestamps may be ±infinity or outside 0001..9999 (the type rules warn about it).
PG_DATE = CanonicalType(Family.DATE, detail="infinite")
PG_NAIVE_TS = CanonicalType(Family.TIMESTAMP, tz=False, detail="infinite")
PG_AWARE_TS = CanonicalType(Family.TIMESTAMP, tz=True, detail="infinite")
JSON = CanonicalType(Family.JSON)
BYTES = CanonicalType(Family.BYTES)
UNKNOWN = CanonicalType(Family.UNKNOWN)


def decimal(precision: int | None = None, scale: int | None = None) -> CanonicalType:
    return CanonicalType(Family.DECIMAL, precision=precision, scale=scale)


def pg_decimal(precision: int | None = None, scale: int | None = None) -> CanonicalType:
    """A PostgreSQL numeric: it may hold 'NaN' (the type rules load it as NULL and say so)."""
    return CanonicalType(Family.DECIMAL, precision=precision, scale=scale, detail="nan")


def array(element: CanonicalType) -> CanonicalType:
    return CanonicalType(Family.ARRAY, element=element)


POSTGRESQL = [
    ("smallint", INTEGER),
    ("integer", INTEGER),
    ("bigint", INTEGER),
    ("int4", INTEGER),
    ("serial", INTEGER),
    ("bigserial", INTEGER),
    ("numeric(12,2)", pg_decimal(12, 2)),
    ("numeric(10)", pg_decimal(10, 0)),
    ("numeric", pg_decimal()),
    ("numeric(5,-2)", pg_decimal(5, -2)),
    ("decimal(38,9)", pg_decimal(38, 9)),
    ("real", FLOAT),
    ("double precision", FLOAT),
    ("float8", FLOAT),
    ("text", STRING),
    ("character varying(255)", STRING),
    ("character varying", STRING),
    ("varchar(10)", STRING),
    ("character(3)", STRING),
    ("char(3)", STRING),
    ("bpchar", STRING),
    ('"char"', STRING),
    ("name", STRING),
    ("uuid", CanonicalType(Family.STRING, detail="uuid")),
    ("boolean", BOOLEAN),
    ("bool", BOOLEAN),
    ("date", PG_DATE),
    ("time without time zone", TIME),
    ("time(3) without time zone", TIME),
    ("time", TIME),
    ("time with time zone", CanonicalType(Family.TIME, detail="tz")),
    ("timestamp without time zone", PG_NAIVE_TS),
    ("timestamp(3) without time zone", PG_NAIVE_TS),
    ("timestamp", PG_NAIVE_TS),
    ("timestamp with time zone", PG_AWARE_TS),
    ("timestamp(6) with time zone", PG_AWARE_TS),
    ("timestamptz", PG_AWARE_TS),
    ("interval", CanonicalType(Family.INTERVAL)),
    ("interval hour to minute", CanonicalType(Family.INTERVAL)),
    ("json", JSON),
    ("jsonb", CanonicalType(Family.JSON, detail="jsonb")),
    ("bytea", BYTES),
    ("integer[]", array(INTEGER)),
    ("text[]", array(STRING)),
    ("character varying(10)[]", array(STRING)),
    ("numeric(12,2)[]", array(decimal(12, 2))),
    ("timestamp with time zone[]", array(PG_AWARE_TS)),
    ("integer[3][]", array(INTEGER)),
    ("_int4", array(INTEGER)),
    ("money", CanonicalType(Family.STRING, detail="money")),
    ("inet", CanonicalType(Family.STRING, detail="inet")),
    ("cidr", CanonicalType(Family.STRING, detail="cidr")),
    ("macaddr", CanonicalType(Family.STRING, detail="macaddr")),
    ("xml", CanonicalType(Family.STRING, detail="xml")),
    ("bit varying(4)", CanonicalType(Family.STRING, detail="bit varying")),
    ("int4range", CanonicalType(Family.STRING, detail="int4range")),
    ("  Double   Precision ", FLOAT),
    ("mood", UNKNOWN),
    ('"My Type"', UNKNOWN),
    ("public.geometry", UNKNOWN),
    ("", UNKNOWN),
]

MYSQL = [
    ("tinyint(1)", INT_BOOLEAN),
    ("bool", INT_BOOLEAN),
    ("boolean", INT_BOOLEAN),
    ("bit(1)", CanonicalType(Family.BOOLEAN, detail="bit")),
    ("bit", CanonicalType(Family.BOOLEAN, detail="bit")),
    ("bit(8)", CanonicalType(Family.INTEGER, detail="bit")),
    ("bit(64)", CanonicalType(Family.INTEGER, detail="unsigned64")),
    ("tinyint(4)", INTEGER),
    ("tinyint", INTEGER),
    ("tinyint(3) unsigned", CanonicalType(Family.INTEGER, detail="unsigned")),
    ("smallint(6)", INTEGER),
    ("mediumint(9)", INTEGER),
    ("int(11)", INTEGER),
    ("int", INTEGER),
    ("int(10) unsigned", CanonicalType(Family.INTEGER, detail="unsigned")),
    ("int(11) unsigned zerofill", CanonicalType(Family.INTEGER, detail="unsigned")),
    ("bigint(20)", INTEGER),
    ("bigint(20) unsigned", CanonicalType(Family.INTEGER, detail="unsigned64")),
    ("bigint unsigned", CanonicalType(Family.INTEGER, detail="unsigned64")),
    ("BIGINT UNSIGNED", CanonicalType(Family.INTEGER, detail="unsigned64")),
    ("serial", CanonicalType(Family.INTEGER, detail="unsigned64")),
    ("decimal(12,2)", decimal(12, 2)),
    ("decimal(65,30)", decimal(65, 30)),
    ("decimal(10)", decimal(10, 0)),
    ("decimal", decimal(10, 0)),
    ("decimal(12,2) unsigned", decimal(12, 2)),
    ("numeric(5,1)", decimal(5, 1)),
    ("float", FLOAT),
    ("float(10,2)", FLOAT),
    ("double", FLOAT),
    ("double precision", FLOAT),
    ("real", FLOAT),
    ("varchar(255)", STRING),
    ("char(3)", STRING),
    ("char(10) binary", STRING),
    ("varchar(20) character set utf8mb4 collate utf8mb4_bin", STRING),
    ("tinytext", STRING),
    ("text", STRING),
    ("mediumtext", STRING),
    ("longtext", STRING),
    ("uuid", CanonicalType(Family.STRING, detail="uuid")),
    ("inet6", CanonicalType(Family.STRING, detail="inet6")),
    ("date", DATE),
    ("datetime", NAIVE_TS),
    ("datetime(6)", NAIVE_TS),
    ("timestamp", AWARE_TS),
    ("timestamp(3)", AWARE_TS),
    ("time", MYSQL_TIME),
    ("time(3)", MYSQL_TIME),
    ("year(4)", CanonicalType(Family.INTEGER, detail="year")),
    ("year", CanonicalType(Family.INTEGER, detail="year")),
    ("json", JSON),
    ("binary(16)", BYTES),
    ("binary", BYTES),
    ("varbinary(255)", BYTES),
    ("tinyblob", BYTES),
    ("blob", BYTES),
    ("mediumblob", BYTES),
    ("longblob", BYTES),
    ("geometry", CanonicalType(Family.BYTES, detail="geometry")),
    ("point", CanonicalType(Family.BYTES, detail="geometry")),
    ("enum('a','b')", CanonicalType(Family.STRING, detail="enum")),
    ("enum('x)','y,z')", CanonicalType(Family.STRING, detail="enum")),
    ("set('a','b')", CanonicalType(Family.STRING, detail="set")),
    ("vector(3)", UNKNOWN),
    ("", UNKNOWN),
]

SQLITE = [
    ("INTEGER", INTEGER),
    ("INT", INTEGER),
    ("BIGINT", INTEGER),
    ("UNSIGNED BIG INT", INTEGER),
    ("INT8", INTEGER),
    ("integer unsigned", INTEGER),
    ("TINYINT(1)", INTEGER),  # SQLite has no tinyint(1)-means-bool convention
    ("POINT", INTEGER),  # SQLite's own quirk: the name contains "INT"
    ("TEXT", STRING),
    ("VARCHAR(255)", STRING),
    ("NVARCHAR(100)", STRING),
    ("CHARACTER(20)", STRING),
    ("VARYING CHARACTER(255)", STRING),
    ("CLOB", STRING),
    ("BLOB", BYTES),
    ("", UNKNOWN),
    ("REAL", FLOAT),
    ("DOUBLE", FLOAT),
    ("DOUBLE PRECISION", FLOAT),
    ("FLOAT", FLOAT),
    ("NUMERIC", decimal()),
    ("DECIMAL(10,5)", decimal(10, 5)),
    ("decimal", decimal()),
    ("BOOLEAN", INT_BOOLEAN),
    ("bool", INT_BOOLEAN),
    ("DATE", DATE),
    ("DATETIME", NAIVE_TS),
    ("TIMESTAMP", NAIVE_TS),
    ("TIME", TIME),
    ("JSON", JSON),
    ("UUID", CanonicalType(Family.STRING, detail="uuid")),
    ("FOOBAR", UNKNOWN),
    ("MONEY", UNKNOWN),
]


@pytest.mark.parametrize(("text", "expected"), POSTGRESQL, ids=[t or "<empty>" for t, _ in POSTGRESQL])
def test_it_maps_postgresql_types(text: str, expected: CanonicalType) -> None:
    assert parse_source_type(text, "postgresql") == expected


@pytest.mark.parametrize(("text", "expected"), MYSQL, ids=[t or "<empty>" for t, _ in MYSQL])
def test_it_maps_mysql_types(text: str, expected: CanonicalType) -> None:
    assert parse_source_type(text, "mysql") == expected


@pytest.mark.parametrize(("text", "expected"), SQLITE, ids=[t or "<empty>" for t, _ in SQLITE])
def test_it_maps_sqlite_types_by_affinity(text: str, expected: CanonicalType) -> None:
    assert parse_source_type(text, "sqlite") == expected


def test_it_maps_postgresql_enums_the_introspector_flags() -> None:
    assert parse_source_type("mood", "postgresql", is_enum=True) == CanonicalType(Family.STRING, detail="enum")
    assert parse_source_type('"My Schema"."Mood"', "postgresql", is_enum=True).detail == "enum"


def test_it_maps_arrays_of_postgresql_enums_to_enum_elements() -> None:
    parsed = parse_source_type("mood[]", "postgresql", is_enum=True)
    assert parsed == array(CanonicalType(Family.STRING, detail="enum"))


def test_it_maps_mariadb_json_reported_as_longtext_when_flagged() -> None:
    assert parse_source_type("longtext", "mysql", is_json=True) == JSON
    assert parse_source_type("longtext", "mysql") == STRING


def test_it_maps_sqlite_json_checked_text_when_flagged() -> None:
    assert parse_source_type("TEXT", "sqlite", is_json=True) == JSON


def test_it_accepts_dialect_aliases() -> None:
    assert parse_source_type("jsonb", "postgres").family is Family.JSON
    assert parse_source_type("tinyint(1)", "mariadb") == INT_BOOLEAN
    assert parse_source_type("INTEGER", "sqlite3") == INTEGER


@pytest.mark.parametrize(
    ("text", "dialect"),
    [
        ("integer", "oracle"),
        ("integer", ""),
        (None, "postgresql"),
        ("numeric(abc,def)", "postgresql"),
        ("decimal(", "mysql"),
        ("))((", "sqlite"),
        ("\x00\x01", "mysql"),
        ("integer" * 10_000, "postgresql"),
    ],
)
def test_it_returns_unknown_or_a_family_but_never_raises(text: str, dialect: str) -> None:
    result = parse_source_type(text, dialect)  # type: ignore[arg-type]
    assert isinstance(result, CanonicalType)


def test_it_returns_unknown_for_an_unknown_dialect() -> None:
    assert parse_source_type("integer", "oracle") == UNKNOWN


def test_it_keeps_decimal_precision_for_malformed_scale() -> None:
    assert parse_source_type("numeric(12,x)", "postgresql") == pg_decimal(12, 0)


def test_it_renders_canonical_types_readably() -> None:
    assert str(parse_source_type("numeric(12,2)", "postgresql")) == "DECIMAL(12,2)"
    assert str(parse_source_type("timestamptz", "postgresql")) == "TIMESTAMP WITH TIME ZONE"
    assert str(parse_source_type("integer[]", "postgresql")) == "ARRAY<INTEGER>"


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["id", "name"], ["id", "name"]),
        (["id", "ID", "Id"], ["id", "ID_2", "Id_3"]),
        (["a b", "a-b", "a_b"], ["a_b_2", "a_b_3", "a_b"]),
        (["_id", "id"], ["_id", "id"]),
        (["id", "_id", "(id)"], ["id", "_id", "id_2"]),
        (["x", "X", "x_2"], ["x", "X_3", "x_2"]),
        (["1st", "a.b"], ["_1st", "a_b"]),
        (["", "!!!"], ["column", "column_2"]),
        (["ünï", "uni"], ["n", "uni"]),
    ],
)
def test_it_normalizes_column_names_uniquely_case_insensitively(names: list[str], expected: list[str]) -> None:
    assert normalize_column_names(names) == expected


def test_it_keeps_suffixed_column_names_within_the_bigquery_limit() -> None:
    long = "a" * 400
    result = normalize_column_names([long, long.upper()])
    assert [len(n) for n in result] == [300, 300]
    assert result[1].endswith("_2")


def test_it_keeps_a_leading_underscore_so_id_and_underscore_id_stay_apart() -> None:
    assert normalize_column_name("_id") == "_id"
    assert normalize_column_name("(total)") == "total"


def test_it_explains_every_renamed_column() -> None:
    notes = naming_collisions(["a b", "a_b", "ID", "id"])

    assert set(notes) == {"a b", "id"}
    assert "Named 'a_b_2' because 'a_b' is taken by source column 'a_b'" in notes["a b"]
    assert "Named 'id_2' because 'id' is taken by source column 'ID'" in notes["id"]
