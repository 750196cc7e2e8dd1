"""The compatibility engine: the spec's type table, every incompatible scenario, and its invariants.

Pure tests (no Django, no BigQuery): schemas are built as objects, which is also
the only way to test primary-key rules (the emulator stores no constraints).
"""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml_platform.etl.compatibility import (
    AlterAction,
    ColumnReport,
    CompatibilityOptions,
    CompatibilityReport,
    ValidationResult,
    action_within_bigquery_limits,
    check_compatibility,
    in_place_change_allowed,
    narrowing_checks,
    schema_for_new_table,
)
from ml_platform.etl.types import (
    BigQueryField,
    CanonicalType,
    Family,
    SourceColumn,
    TableSchema,
    bigquery_type_for,
    normalize_column_name,
)

F = Family


def ct(family: Family, **kwargs) -> CanonicalType:
    return CanonicalType(family, **kwargs)


def col(name: str, t: CanonicalType | Family, *, nullable: bool = True, pk: bool = False) -> SourceColumn:
    canonical = t if isinstance(t, CanonicalType) else CanonicalType(t)
    return SourceColumn(name, str(canonical).lower(), canonical, nullable=nullable, primary_key=pk)


def fld(name: str, field_type: str, mode: str = "NULLABLE", **kwargs) -> BigQueryField:
    return BigQueryField(name, field_type, mode, **kwargs)


def table(*fields: BigQueryField, pk: tuple[str, ...] | None = None) -> TableSchema:
    return TableSchema("analytics", "orders", tuple(fields), primary_key=pk)


def check(source: list[SourceColumn], dest: list[BigQueryField] | TableSchema, **options) -> CompatibilityReport:
    schema = dest if isinstance(dest, TableSchema) else table(*dest)
    return check_compatibility(source, schema, CompatibilityOptions(**options))


def row(report: CompatibilityReport, name: str) -> ColumnReport:
    found = report.column(name)
    assert found is not None, f"no report row for {name!r}: {report.columns}"
    return found


def kinds(report: CompatibilityReport) -> list[tuple[str, str]]:
    return [(a.kind, a.column) for a in report.can_alter]


# --------------------------------------------------------------------------- the type table

TS_TZ = ct(F.TIMESTAMP, tz=True)
TS_NAIVE = ct(F.TIMESTAMP, tz=False)

TYPE_TABLE = [
    # spec rows
    ("INTEGER -> INT64", ct(F.INTEGER), fld("c", "INT64"), "ok"),
    ("VARCHAR/TEXT -> STRING", ct(F.STRING), fld("c", "STRING"), "ok"),
    ("DECIMAL -> NUMERIC", ct(F.DECIMAL, precision=12, scale=2), fld("c", "NUMERIC"), "ok"),
    ("DECIMAL -> FLOAT64", ct(F.DECIMAL, precision=12, scale=2), fld("c", "FLOAT64"), "warning"),
    ("BOOLEAN -> BOOL", ct(F.BOOLEAN), fld("c", "BOOL"), "ok"),
    ("TIMESTAMP tz -> TIMESTAMP", TS_TZ, fld("c", "TIMESTAMP"), "ok"),
    ("DATE -> DATE", ct(F.DATE), fld("c", "DATE"), "ok"),
    ("JSON -> JSON", ct(F.JSON), fld("c", "JSON"), "ok"),
    ("JSON -> STRING", ct(F.JSON), fld("c", "STRING"), "ok"),
    # integers
    ("INTEGER -> NUMERIC", ct(F.INTEGER), fld("c", "NUMERIC"), "ok"),
    ("INTEGER -> BIGNUMERIC", ct(F.INTEGER), fld("c", "BIGNUMERIC"), "ok"),
    ("INTEGER -> FLOAT64 loses precision beyond 2^53", ct(F.INTEGER), fld("c", "FLOAT64"), "warning"),
    (
        "INTEGER -> NUMERIC(10,0) may overflow",
        ct(F.INTEGER),
        fld("c", "NUMERIC", precision=10, scale=0),
        "needs_validation",
    ),
    (
        "unsigned 64-bit -> INT64 may overflow",
        ct(F.INTEGER, detail="unsigned64"),
        fld("c", "INT64"),
        "needs_validation",
    ),
    ("unsigned 64-bit -> NUMERIC", ct(F.INTEGER, detail="unsigned64"), fld("c", "NUMERIC"), "ok"),
    ("INTEGER -> STRING", ct(F.INTEGER), fld("c", "STRING"), "warning"),
    ("INTEGER -> BOOL narrows", ct(F.INTEGER), fld("c", "BOOL"), "needs_validation"),
    ("INTEGER -> DATE unrelated", ct(F.INTEGER), fld("c", "DATE"), "error"),
    # decimals and the NUMERIC/BIGNUMERIC limits
    ("DECIMAL(38,9) fills NUMERIC exactly", ct(F.DECIMAL, precision=38, scale=9), fld("c", "NUMERIC"), "ok"),
    ("DECIMAL(40,2) overflows NUMERIC", ct(F.DECIMAL, precision=40, scale=2), fld("c", "NUMERIC"), "needs_validation"),
    ("DECIMAL(20,12) is rounded by NUMERIC", ct(F.DECIMAL, precision=20, scale=12), fld("c", "NUMERIC"), "warning"),
    ("DECIMAL(40,2) -> BIGNUMERIC", ct(F.DECIMAL, precision=40, scale=2), fld("c", "BIGNUMERIC"), "ok"),
    (
        "unconstrained DECIMAL -> BIGNUMERIC may exceed 38 digits",
        ct(F.DECIMAL),
        fld("c", "BIGNUMERIC"),
        "needs_validation",
    ),
    ("DECIMAL(13,12) is rounded by NUMERIC", ct(F.DECIMAL, precision=13, scale=12), fld("c", "NUMERIC"), "warning"),
    (
        "DECIMAL(5,3) is rounded by NUMERIC(10,2)",
        ct(F.DECIMAL, precision=5, scale=3),
        fld("c", "NUMERIC", precision=10, scale=2),
        "warning",
    ),
    (
        "DECIMAL(4,2) rounded into NUMERIC(3,1) may gain a digit (9.99 -> 10.0)",
        ct(F.DECIMAL, precision=4, scale=2),
        fld("c", "NUMERIC", precision=3, scale=1),
        "needs_validation",
    ),
    (
        "DECIMAL(60,2) overflows BIGNUMERIC",
        ct(F.DECIMAL, precision=60, scale=2),
        fld("c", "BIGNUMERIC"),
        "needs_validation",
    ),
    ("unconstrained DECIMAL -> NUMERIC", ct(F.DECIMAL), fld("c", "NUMERIC"), "needs_validation"),
    (
        "DECIMAL(12,2) -> NUMERIC(12,2)",
        ct(F.DECIMAL, precision=12, scale=2),
        fld("c", "NUMERIC", precision=12, scale=2),
        "ok",
    ),
    (
        "DECIMAL(12,2) -> NUMERIC(8,2)",
        ct(F.DECIMAL, precision=12, scale=2),
        fld("c", "NUMERIC", precision=8, scale=2),
        "needs_validation",
    ),
    ("DECIMAL(12,2) -> INT64 narrows", ct(F.DECIMAL, precision=12, scale=2), fld("c", "INT64"), "needs_validation"),
    ("DECIMAL(10,0) -> INT64 always fits", ct(F.DECIMAL, precision=10, scale=0), fld("c", "INT64"), "ok"),
    (
        "DECIMAL(19,0) -> INT64 may overflow",
        ct(F.DECIMAL, precision=19, scale=0),
        fld("c", "INT64"),
        "needs_validation",
    ),
    # floats
    ("FLOAT -> FLOAT64", ct(F.FLOAT), fld("c", "FLOAT64"), "ok"),
    ("FLOAT -> INT64 narrows", ct(F.FLOAT), fld("c", "INT64"), "needs_validation"),
    ("FLOAT -> NUMERIC narrows", ct(F.FLOAT), fld("c", "NUMERIC"), "needs_validation"),
    # strings narrowing into everything
    ("STRING -> INT64", ct(F.STRING), fld("c", "INT64"), "needs_validation"),
    ("STRING -> FLOAT64", ct(F.STRING), fld("c", "FLOAT64"), "needs_validation"),
    ("STRING -> NUMERIC", ct(F.STRING), fld("c", "NUMERIC"), "needs_validation"),
    ("STRING -> BOOL", ct(F.STRING), fld("c", "BOOL"), "needs_validation"),
    ("STRING -> DATE", ct(F.STRING), fld("c", "DATE"), "needs_validation"),
    ("STRING -> TIMESTAMP", ct(F.STRING), fld("c", "TIMESTAMP"), "needs_validation"),
    ("STRING -> JSON", ct(F.STRING), fld("c", "JSON"), "needs_validation"),
    ("STRING -> GEOGRAPHY", ct(F.STRING), fld("c", "GEOGRAPHY"), "needs_validation"),
    ("uuid STRING -> STRING", ct(F.STRING, detail="uuid"), fld("c", "STRING"), "ok"),
    # booleans, dates, times
    ("BOOLEAN -> INT64 as 0/1", ct(F.BOOLEAN), fld("c", "INT64"), "warning"),
    ("BOOLEAN -> TIMESTAMP unrelated", ct(F.BOOLEAN), fld("c", "TIMESTAMP"), "error"),
    ("DATE -> DATETIME widens", ct(F.DATE), fld("c", "DATETIME"), "warning"),
    ("DATE -> TIMESTAMP widens", ct(F.DATE), fld("c", "TIMESTAMP"), "warning"),
    ("DATE -> INT64 unrelated", ct(F.DATE), fld("c", "INT64"), "error"),
    ("TIME -> TIME", ct(F.TIME), fld("c", "TIME"), "ok"),
    ("timetz -> TIME at UTC", ct(F.TIME, detail="tz"), fld("c", "TIME"), "warning"),
    ("MySQL TIME (a duration) -> TIME", ct(F.TIME, detail="duration"), fld("c", "TIME"), "needs_validation"),
    ("MySQL TIME -> STRING", ct(F.TIME, detail="duration"), fld("c", "STRING"), "warning"),
    ("TINYINT(1) -> BOOL may hold 2", ct(F.BOOLEAN, detail="int"), fld("c", "BOOL"), "needs_validation"),
    ("TINYINT(1) -> INT64", ct(F.BOOLEAN, detail="int"), fld("c", "INT64"), "ok"),
    ("INTERVAL -> INTERVAL cannot be loaded", ct(F.INTERVAL), fld("c", "INTERVAL"), "error"),
    ("STRING -> RANGE cannot be loaded", ct(F.STRING), fld("c", "RANGE"), "error"),
    ("TIMESTAMP naive -> DATETIME", TS_NAIVE, fld("c", "DATETIME"), "ok"),
    ("TIMESTAMP naive -> TIMESTAMP is read as UTC", TS_NAIVE, fld("c", "TIMESTAMP"), "warning"),
    ("TIMESTAMP tz -> DATETIME drops the zone", TS_TZ, fld("c", "DATETIME"), "warning"),
    ("TIMESTAMP -> DATE narrows", TS_TZ, fld("c", "DATE"), "needs_validation"),
    # JSON, bytes, intervals, unknown types
    ("JSON -> INT64", ct(F.JSON), fld("c", "INT64"), "error"),
    ("BYTES -> BYTES", ct(F.BYTES), fld("c", "BYTES"), "ok"),
    ("BYTES -> INT64 unrelated", ct(F.BYTES), fld("c", "INT64"), "error"),
    ("BYTES -> STRING must be UTF-8", ct(F.BYTES), fld("c", "STRING"), "needs_validation"),
    ("INTERVAL -> STRING", ct(F.INTERVAL), fld("c", "STRING"), "warning"),
    ("unknown source type -> STRING", ct(F.UNKNOWN), fld("c", "STRING"), "warning"),
    ("unknown source type -> INT64", ct(F.UNKNOWN), fld("c", "INT64"), "error"),
    # destinations spelled the legacy way, or not at all
    ("INTEGER -> legacy INTEGER", ct(F.INTEGER), fld("c", "INTEGER"), "ok"),
    ("FLOAT -> legacy FLOAT", ct(F.FLOAT), fld("c", "FLOAT"), "ok"),
    ("BOOLEAN -> legacy BOOLEAN", ct(F.BOOLEAN), fld("c", "BOOLEAN"), "ok"),
    ("STRING -> unsupported destination type", ct(F.STRING), fld("c", "WIDGET"), "error"),
]


@pytest.mark.parametrize(
    ("source_type", "dest", "expected"), [case[1:] for case in TYPE_TABLE], ids=[case[0] for case in TYPE_TABLE]
)
def test_it_gives_the_type_table_verdict(source_type: CanonicalType, dest: BigQueryField, expected: str) -> None:
    report = check([col("c", source_type, nullable=True)], [dest])

    assert row(report, "c").verdict == expected
    assert report.compatible is (expected in ("ok", "warning"))
    assert (report.needs_validation == ["c"]) is (expected == "needs_validation")
    assert bool(report.errors) is (expected == "error")


def test_it_writes_messages_a_data_engineer_can_act_on() -> None:
    report = check([col("amount", ct(F.STRING))], [fld("amount", "INT64")])

    message = row(report, "amount").message
    assert "STRING → INT64 narrows the type" in message
    assert "validated" in message
    assert row(report, "amount").fix == "Validate the source data."


# --------------------------------------------------------------------------- arrays


def test_it_asks_to_validate_an_array_for_null_elements() -> None:
    report = check([col("tags", ct(F.ARRAY, element=ct(F.STRING)))], [fld("tags", "STRING", "REPEATED")])
    specs = narrowing_checks([col("tags", ct(F.ARRAY, element=ct(F.STRING)))], table(fld("tags", "STRING", "REPEATED")))

    assert report.needs_validation == ["tags"]
    assert "cannot hold NULL elements" in row(report, "tags").message
    assert [(s.column, s.repeated) for s in specs] == [("tags", True)]


def test_it_accepts_an_array_once_a_scan_found_no_null_elements() -> None:
    result = ValidationResult("tags", checked_rows=10, failures=0)

    report = check(
        [col("tags", ct(F.ARRAY, element=ct(F.STRING)))],
        [fld("tags", "STRING", "REPEATED")],
        validation={"tags": result},
    )

    assert report.compatible and row(report, "tags").verdict == "warning"


def test_it_needs_validation_for_array_elements_that_narrow() -> None:
    source = [col("codes", ct(F.ARRAY, element=ct(F.STRING)))]
    dest = [fld("codes", "INT64", "REPEATED")]

    report = check(source, dest)
    specs = narrowing_checks(source, table(*dest))

    assert report.needs_validation == ["codes"]
    assert [(s.column, s.target_type, s.repeated) for s in specs] == [("codes", "INT64", True)]
    assert not any(a.kind == "widen_type" for a in report.can_alter)  # SET DATA TYPE is for scalars only


def test_it_refuses_array_elements_of_an_unrelated_type() -> None:
    report = check([col("blobs", ct(F.ARRAY, element=ct(F.BYTES)))], [fld("blobs", "INT64", "REPEATED")])

    assert row(report, "blobs").verdict == "error"


def test_it_refuses_an_array_into_a_non_repeated_column() -> None:
    report = check([col("tags", ct(F.ARRAY, element=ct(F.STRING)))], [fld("tags", "STRING")])

    assert not report.compatible
    assert "needs a REPEATED column" in row(report, "tags").message


def test_it_refuses_a_scalar_into_a_repeated_column() -> None:
    report = check([col("tag", ct(F.STRING))], [fld("tag", "STRING", "REPEATED")])

    assert not report.compatible
    assert "REPEATED" in row(report, "tag").message


def test_it_refuses_multi_dimensional_arrays() -> None:
    matrix = ct(F.ARRAY, element=ct(F.ARRAY, element=ct(F.INTEGER)))

    report = check([col("m", matrix)], [fld("m", "INT64", "REPEATED")])

    assert row(report, "m").verdict == "error"
    assert "arrays cannot contain arrays" in row(report, "m").message


def test_it_offers_a_repeated_column_for_a_new_array_column() -> None:
    report = check([col("id", F.INTEGER), col("tags", ct(F.ARRAY, element=ct(F.INTEGER)))], [fld("id", "INT64")])

    (action,) = report.can_alter
    assert (action.kind, action.column, action.field_type, action.mode) == ("add_column", "tags", "INT64", "REPEATED")
    assert action.sql == "ALTER TABLE `analytics`.`orders` ADD COLUMN `tags` ARRAY<INT64>"


# --------------------------------------------------------------------------- missing columns


def test_it_offers_to_add_a_source_column_missing_from_the_destination() -> None:
    report = check(
        [col("id", F.INTEGER), col("amount", ct(F.DECIMAL, precision=12, scale=2), nullable=False)],
        [fld("id", "INT64")],
    )

    assert report.compatible
    assert row(report, "amount").verdict == "warning"
    (action,) = report.can_alter
    assert action == AlterAction(
        kind="add_column",
        column="amount",
        field_type="NUMERIC",
        mode="NULLABLE",
        description="Add NULLABLE NUMERIC column 'amount' for source column 'amount'.",
        sql="ALTER TABLE `analytics`.`orders` ADD COLUMN `amount` NUMERIC",
    )
    assert action.to_field() == BigQueryField("amount", "NUMERIC", "NULLABLE")


def test_it_adds_a_new_column_under_its_normalized_name() -> None:
    report = check([col("id", F.INTEGER), col("Unit Price", F.FLOAT)], [fld("id", "INT64")])

    assert kinds(report) == [("add_column", "Unit_Price")]
    assert row(report, "Unit Price").destination_name == "Unit_Price"


def test_it_warns_that_a_nullable_destination_column_missing_from_the_source_will_be_null() -> None:
    report = check([col("id", F.INTEGER)], [fld("id", "INT64"), fld("note", "STRING")])

    assert report.compatible
    assert row(report, "note").verdict == "warning"
    assert "will be NULL for new rows" in row(report, "note").message


def test_it_warns_that_a_repeated_destination_column_missing_from_the_source_will_be_empty() -> None:
    report = check([col("id", F.INTEGER)], [fld("id", "INT64"), fld("tags", "STRING", "REPEATED")])

    assert report.compatible
    assert "empty for new rows" in row(report, "tags").message


def test_it_refuses_a_required_destination_column_missing_from_the_source() -> None:
    report = check([col("id", F.INTEGER)], [fld("id", "INT64"), fld("region", "STRING", "REQUIRED")])

    assert not report.compatible
    assert row(report, "region").verdict == "error"
    assert kinds(report) == [("relax_required", "region")]


def test_it_accepts_a_missing_required_column_once_the_user_opts_to_relax_it() -> None:
    report = check(
        [col("id", F.INTEGER)], [fld("id", "INT64"), fld("region", "STRING", "REQUIRED")], relax_required=True
    )

    assert report.compatible
    assert row(report, "region").verdict == "warning"


# --------------------------------------------------------------------------- NOT NULL in the destination


def test_it_refuses_a_nullable_source_into_a_required_column() -> None:
    report = check([col("email", F.STRING, nullable=True)], [fld("email", "STRING", "REQUIRED")])

    assert not report.compatible
    assert "would require removing NOT NULL from the destination" in report.errors[0]
    (action,) = report.can_alter
    assert (action.kind, action.column, action.mode) == ("relax_required", "email", "NULLABLE")
    assert action.sql == "ALTER TABLE `analytics`.`orders` ALTER COLUMN `email` DROP NOT NULL"
    assert row(report, "email").fix == "Relax 'email' from REQUIRED to NULLABLE (explicit opt-in)."


def test_it_accepts_a_not_null_source_into_a_required_column() -> None:
    report = check([col("email", F.STRING, nullable=False)], [fld("email", "STRING", "REQUIRED")])

    assert report.compatible
    assert report.can_alter == []


def test_it_applies_the_relax_fix_only_when_the_user_chooses_it() -> None:
    report = check([col("email", F.STRING)], [fld("email", "STRING", "REQUIRED")], relax_required=True)

    assert report.compatible
    assert row(report, "email").verdict == "warning"
    assert kinds(report) == [("relax_required", "email")]


def test_it_accepts_a_nullable_source_whose_full_scan_found_no_nulls() -> None:
    clean = ValidationResult("email", checked_rows=500, failures=0, null_failures=0, sampled=False)

    report = check([col("email", F.STRING)], [fld("email", "STRING", "REQUIRED")], validation={"email": clean})

    assert report.compatible
    assert "found none" in row(report, "email").message


@pytest.mark.parametrize(
    "result",
    [
        ValidationResult("email", checked_rows=500, failures=0, null_failures=0, sampled=True),
        ValidationResult("email", checked_rows=500, failures=0, null_failures=7, sampled=False),
    ],
    ids=["a sample proves nothing", "nulls found"],
)
def test_it_keeps_the_not_null_error_unless_a_full_scan_found_no_nulls(result: ValidationResult) -> None:
    report = check([col("email", F.STRING)], [fld("email", "STRING", "REQUIRED")], validation={"email": result})

    assert not report.compatible


def test_it_asks_for_a_null_scan_on_nullable_sources_into_required_columns() -> None:
    source = [col("email", F.STRING), col("id", F.INTEGER, nullable=False)]
    dest = table(fld("email", "STRING", "REQUIRED"), fld("id", "INT64", "REQUIRED"))

    (spec,) = narrowing_checks(source, dest)

    assert (spec.column, spec.check_nulls, spec.check_cast) == ("email", True, False)


# --------------------------------------------------------------------------- data validation


def test_it_turns_a_passed_validation_into_a_warning() -> None:
    result = ValidationResult("code", checked_rows=1200, failures=0)

    report = check([col("code", F.STRING)], [fld("code", "INT64")], validation={"code": result})

    assert report.compatible
    assert row(report, "code").verdict == "warning"
    assert "Validated: all 1,200 rows convert to INT64" in row(report, "code").message


def test_it_turns_a_failed_validation_into_an_error_with_count_and_examples() -> None:
    result = ValidationResult("code", checked_rows=1000, failures=3, examples=("abc", "12.5", "n/a"))

    report = check([col("code", F.STRING)], [fld("code", "INT64")], validation={"code": result})

    assert not report.compatible
    assert row(report, "code").verdict == "error"
    assert "3 of 1,000 checked values cannot be converted to INT64, e.g. 'abc', '12.5', 'n/a'" in report.errors[0]


def test_it_says_when_a_passed_validation_was_only_a_sample() -> None:
    result = ValidationResult("code", checked_rows=100_000, failures=0, sampled=True)

    report = check([col("code", F.STRING)], [fld("code", "INT64")], validation={"code": result})

    assert report.compatible
    assert "a sample of 100,000 rows" in row(report, "code").message


def test_it_matches_validation_results_case_insensitively() -> None:
    result = ValidationResult("CODE", checked_rows=10, failures=0)

    report = check([col("code", F.STRING)], [fld("code", "INT64")], validation={"CODE": result})

    assert report.compatible


def test_it_lists_the_scans_that_settle_narrowing_columns() -> None:
    source = [col("id", F.INTEGER), col("code", F.STRING), col("price", F.FLOAT)]
    dest = table(fld("id", "INT64"), fld("code", "INT64"), fld("price", "NUMERIC", precision=10, scale=2))

    specs = narrowing_checks(source, dest, CompatibilityOptions(validation={"code": ValidationResult("code", 1, 0)}))

    assert [(s.column, s.target_type, s.precision, s.scale) for s in specs] == [
        ("code", "INT64", None, None),
        ("price", "NUMERIC", 10, 2),
    ]


# --------------------------------------------------------------------------- names


def test_it_matches_columns_case_insensitively() -> None:
    report = check(
        [col("OrderID", F.INTEGER), col("Amount", F.FLOAT)], [fld("orderid", "INT64"), fld("AMOUNT", "FLOAT64")]
    )

    assert report.compatible
    assert report.can_alter == []
    assert [r.destination_name for r in report.columns] == ["orderid", "AMOUNT"]


def test_it_matches_a_source_name_to_the_column_a_new_table_would_have_given_it() -> None:
    report = check([col("Order ID", F.INTEGER)], [fld("Order_ID", "INT64")])

    assert report.compatible
    assert row(report, "Order ID").destination_name == "Order_ID"


def test_it_prefers_an_exact_name_to_a_normalized_one() -> None:
    report = check([col("_id", F.INTEGER)], [fld("id", "STRING"), fld("_id", "INT64")])

    assert row(report, "_id").destination_name == "_id"
    assert row(report, "_id").verdict == "ok"


def test_it_refuses_source_columns_that_differ_only_by_case() -> None:
    report = check([col("id", F.INTEGER), col("ID", F.INTEGER)], [fld("id", "INT64")])

    assert not report.compatible
    assert "only by case" in report.errors[0]


def test_it_refuses_a_destination_with_duplicate_names() -> None:
    report = check([col("id", F.INTEGER)], [fld("id", "INT64"), fld("ID", "INT64")])

    assert not report.compatible


# --------------------------------------------------------------------------- primary keys and strategies


def test_it_needs_a_merge_key_for_merge() -> None:
    report = check([col("id", F.INTEGER, nullable=False, pk=True)], [fld("id", "INT64")], load_strategy="merge")

    assert not report.compatible
    assert "Merge needs at least one key column" in report.errors[0]


def test_it_needs_the_merge_key_on_both_sides() -> None:
    source = [col("id", F.INTEGER, nullable=False, pk=True), col("sku", F.STRING, nullable=False)]

    not_selected = check(
        source, [fld("id", "INT64"), fld("sku", "STRING")], load_strategy="merge", merge_key=("order_no",)
    )
    not_in_table = check(source, [fld("id", "INT64")], load_strategy="merge", merge_key=("sku",))

    assert "'order_no' is not among the selected source columns" in not_selected.errors[0]
    assert "'sku' is not in the destination table" in not_in_table.errors[0]


def test_it_merges_when_the_key_is_on_both_sides_and_the_destination_key_is_unknown() -> None:
    report = check(
        [col("id", F.INTEGER, nullable=False, pk=True)],
        table(fld("id", "INT64"), pk=None),
        load_strategy="merge",
        merge_key=("id",),
    )

    assert report.compatible
    assert report.warnings == []


def test_it_refuses_merge_when_the_destination_primary_key_differs() -> None:
    source = [col("id", F.INTEGER, nullable=False, pk=True), col("sku", F.STRING, nullable=False)]

    report = check(
        source, table(fld("id", "INT64"), fld("sku", "STRING"), pk=("sku",)), load_strategy="merge", merge_key=("id",)
    )

    assert not report.compatible
    assert "PRIMARY KEY (sku) differs from the merge key (id)" in report.errors[0]


def test_it_accepts_a_destination_key_of_merge_key_plus_source_tag() -> None:
    source = [col("id", F.INTEGER, nullable=False, pk=True)]
    dest = table(fld("id", "INT64"), fld("_source_tag", "STRING"), pk=("id", "_source_tag"))

    report = check(source, dest, load_strategy="merge", merge_key=("id",), source_tag="eu")

    assert report.compatible


@pytest.mark.parametrize("strategy", ["append", "incremental", "replace"])
def test_it_only_warns_about_a_differing_primary_key_when_not_merging(strategy: str) -> None:
    source = [col("id", F.INTEGER, nullable=False, pk=True), col("sku", F.STRING, nullable=False)]

    report = check(
        source, table(fld("id", "INT64"), fld("sku", "STRING"), pk=("sku",)), load_strategy=strategy, cursor_column="id"
    )

    assert report.compatible
    assert any("PRIMARY KEY (sku) differs from the source's primary key (id)" in w for w in report.warnings)


def test_it_says_nothing_about_keys_when_they_agree_or_the_table_declares_none() -> None:
    source = [col("id", F.INTEGER, nullable=False, pk=True)]

    same = check(source, table(fld("id", "INT64"), pk=("id",)))
    none_declared = check(source, table(fld("id", "INT64"), pk=()))

    assert same.warnings == [] and none_declared.warnings == []


def test_it_warns_when_the_destination_declares_a_key_the_source_lacks() -> None:
    report = check([col("id", F.INTEGER)], table(fld("id", "INT64"), pk=("id",)))

    assert report.compatible
    assert "the source has no primary key" in report.warnings[0]


def test_it_refuses_a_merge_key_bigquery_cannot_compare() -> None:
    report = check([col("doc", F.JSON)], [fld("doc", "JSON")], load_strategy="merge", merge_key=("doc",))

    assert not report.compatible


def test_it_refuses_an_unknown_load_strategy() -> None:
    report = check([col("id", F.INTEGER)], [fld("id", "INT64")], load_strategy="upsert")

    assert "Unknown load strategy 'upsert'" in report.errors[0]


def test_it_warns_that_replace_deletes_the_rows_already_in_the_table() -> None:
    everything = check([col("id", F.INTEGER)], [fld("id", "INT64")], load_strategy="replace")
    tagged = check(
        [col("id", F.INTEGER)],
        [fld("id", "INT64"), fld("_source_tag", "STRING")],
        load_strategy="replace",
        source_tag="eu",
    )

    assert "deletes every row already in analytics.orders" in everything.warnings[0]
    assert "deletes the rows tagged 'eu'" in tagged.warnings[0]


# --------------------------------------------------------------------------- incremental cursor


@pytest.mark.parametrize("cursor_type", [ct(F.INTEGER), ct(F.DECIMAL, precision=18, scale=0), ct(F.DATE), TS_TZ])
def test_it_accepts_an_orderable_cursor_present_on_both_sides(cursor_type: CanonicalType) -> None:
    source = [col("id", F.INTEGER, nullable=False), col("cursor", cursor_type, nullable=False)]
    dest_type, _ = bigquery_type_for(cursor_type)

    report = check(
        source, [fld("id", "INT64"), fld("cursor", dest_type)], load_strategy="incremental", cursor_column="cursor"
    )

    assert report.compatible, report.errors


@pytest.mark.parametrize(
    ("source", "dest", "cursor", "expected"),
    [
        ([col("id", F.INTEGER)], [fld("id", "INT64")], None, "need a cursor column"),
        ([col("id", F.INTEGER)], [fld("id", "INT64")], "updated_at", "not among the selected source columns"),
        ([col("code", F.STRING)], [fld("code", "STRING")], "code", "Choose an INTEGER, DECIMAL, DATE or TIMESTAMP"),
        ([col("score", F.FLOAT)], [fld("score", "FLOAT64")], "score", "floating-point values are not exact"),
        ([col("id", F.INTEGER), col("seq", F.INTEGER)], [fld("id", "INT64")], "seq", "not in the destination table"),
        ([col("seq", F.INTEGER)], [fld("seq", "STRING")], "seq", "does not order like the source values"),
    ],
    ids=["no cursor", "not selected", "string cursor", "float cursor", "missing in destination", "string destination"],
)
def test_it_refuses_an_unusable_incremental_cursor(source, dest, cursor, expected) -> None:
    report = check(source, dest, load_strategy="incremental", cursor_column=cursor)

    assert not report.compatible
    assert any(expected in e for e in report.errors), report.errors


@pytest.mark.parametrize("strategy", ["incremental", "merge"])
def test_it_warns_that_rows_with_a_null_cursor_are_never_loaded_and_says_how_to_fix_it(strategy: str) -> None:
    report = check(
        [col("id", F.INTEGER, nullable=False, pk=True), col("seq", F.INTEGER, nullable=True)],
        [fld("id", "INT64"), fld("seq", "INT64")],
        load_strategy=strategy,
        cursor_column="SEQ",
        merge_key=("id",),
    )

    assert report.compatible
    (warning,) = [w for w in report.warnings if "allows NULL" in w]
    assert "rows whose cursor is NULL are never loaded" in warning
    assert "Fix: make the column NOT NULL" in warning


@pytest.mark.parametrize("strategy", ["incremental", "merge"])
def test_it_refuses_a_json_cursor_for_incremental_and_merge_alike(strategy: str) -> None:
    report = check(
        [col("id", F.INTEGER, nullable=False, pk=True), col("doc", F.JSON, nullable=False)],
        [fld("id", "INT64"), fld("doc", "JSON")],
        load_strategy=strategy,
        cursor_column="doc",
        merge_key=("id",),
    )

    assert not report.compatible
    assert any("JSON values cannot be compared with >" in e for e in report.errors), report.errors


def test_it_checks_no_cursor_for_a_merge_without_one() -> None:
    report = check(
        [col("id", F.INTEGER, nullable=False, pk=True)], [fld("id", "INT64")], load_strategy="merge", merge_key=("id",)
    )

    assert report.compatible and not report.warnings


@pytest.mark.parametrize(
    ("source_type", "text", "dest_type"),
    [
        (ct(F.DATE), "date", "DATE"),
        (TS_NAIVE, "datetime", "DATETIME"),  # MySQL DATETIME: whole seconds unless DATETIME(n)
        (TS_TZ, "timestamp", "TIMESTAMP"),
        (TS_NAIVE, "timestamp(0) without time zone", "DATETIME"),
        (TS_NAIVE, "datetime(0)", "DATETIME"),
    ],
)
def test_it_warns_about_a_coarse_cursor_and_spells_out_the_re_read_window(source_type, text, dest_type) -> None:
    source = [
        SourceColumn("id", "bigint", ct(F.INTEGER), nullable=False),
        SourceColumn("at", text, source_type, nullable=False),
    ]

    report = check(source, [fld("id", "INT64"), fld("at", dest_type)], load_strategy="incremental", cursor_column="at")

    assert report.compatible
    (warning,) = [w for w in report.warnings if "Cursor column 'at'" in w]
    assert "is never loaded" in warning and "set a re-read window" in warning


@pytest.mark.parametrize(
    ("source_type", "text"),
    [(TS_NAIVE, "datetime(6)"), (TS_NAIVE, "timestamp without time zone"), (TS_TZ, "timestamp(3) with time zone")],
)
def test_it_does_not_warn_about_a_sub_second_timestamp_cursor(source_type, text) -> None:
    source = [SourceColumn("at", text, source_type, nullable=False)]
    dest_type, _ = bigquery_type_for(source_type)

    report = check(source, [fld("at", dest_type)], load_strategy="incremental", cursor_column="at")

    assert not [w for w in report.warnings if "Cursor column" in w]


# --------------------------------------------------------------------------- source tag


def test_it_offers_to_add_the_source_tag_column() -> None:
    report = check([col("id", F.INTEGER)], [fld("id", "INT64")], source_tag="eu")

    assert report.compatible
    (action,) = report.can_alter
    assert (action.kind, action.column, action.field_type, action.mode) == (
        "add_column",
        "_source_tag",
        "STRING",
        "NULLABLE",
    )
    assert any("tagged 'eu'" in w for w in report.warnings)


def test_it_uses_an_existing_string_tag_column() -> None:
    report = check(
        [col("id", F.INTEGER)],
        [fld("id", "INT64"), fld("region", "STRING", "REQUIRED")],
        source_tag="us",
        tag_column="region",
    )

    assert report.compatible
    assert report.can_alter == []
    assert row(report, "region").verdict == "ok"


def test_it_refuses_a_tag_column_that_is_not_a_string() -> None:
    report = check([col("id", F.INTEGER)], [fld("id", "INT64"), fld("_source_tag", "INT64")], source_tag="eu")

    assert not report.compatible
    assert "must be a STRING column" in report.errors[0]


def test_it_refuses_a_source_column_that_collides_with_the_tag_column() -> None:
    report = check([col("id", F.INTEGER), col("_source_tag", F.STRING)], [fld("id", "INT64")], source_tag="eu")

    assert not report.compatible


def test_it_hints_at_a_source_tag_when_the_table_has_a_tag_column_but_the_job_none() -> None:
    report = check([col("id", F.INTEGER)], [fld("id", "INT64"), fld("_source_tag", "STRING")])

    assert report.compatible
    assert "set a source tag" in row(report, "_source_tag").message


# --------------------------------------------------------------------------- BigQuery's in-place limits


@pytest.mark.parametrize(
    ("source_type", "dest", "expected"),
    [
        (ct(F.DECIMAL, precision=12, scale=2), fld("c", "INT64"), ("INT64", "NUMERIC", None, None)),
        (ct(F.DECIMAL, precision=50, scale=2), fld("c", "INT64"), ("INT64", "BIGNUMERIC", None, None)),
        (ct(F.FLOAT), fld("c", "INT64"), ("INT64", "FLOAT64", None, None)),
        (ct(F.INTEGER, detail="unsigned64"), fld("c", "INT64"), ("INT64", "NUMERIC", None, None)),
        (ct(F.DECIMAL, precision=40, scale=2), fld("c", "NUMERIC"), ("NUMERIC", "BIGNUMERIC", None, None)),
        (ct(F.FLOAT), fld("c", "NUMERIC"), ("NUMERIC", "FLOAT64", None, None)),
        (
            ct(F.DECIMAL, precision=14, scale=4),
            fld("c", "NUMERIC", precision=10, scale=2),
            ("NUMERIC", "NUMERIC", 14, 4),
        ),
        (ct(F.INTEGER), fld("c", "NUMERIC", precision=10, scale=0), ("NUMERIC", "NUMERIC", None, None)),
    ],
)
def test_it_offers_only_the_widenings_bigquery_makes_in_place(source_type, dest, expected) -> None:
    report = check([col("c", source_type)], [dest])

    (action,) = report.can_alter
    assert (action.kind, action.from_type, action.field_type, action.precision, action.scale) == (
        "widen_type",
        *expected,
    )
    assert action_within_bigquery_limits(action)
    assert report.needs_validation == ["c"]  # offered, never applied


@pytest.mark.parametrize(
    ("source_type", "dest"),
    [
        (ct(F.STRING), fld("c", "INT64")),
        (ct(F.STRING), fld("c", "DATE")),
        (TS_TZ, fld("c", "DATE")),
        (ct(F.FLOAT), fld("c", "BOOL")),
    ],
)
def test_it_offers_no_type_change_bigquery_cannot_make_in_place(source_type, dest) -> None:
    report = check([col("c", source_type)], [dest])

    assert report.can_alter == []


@pytest.mark.parametrize(
    ("change", "allowed"),
    [
        (("INT64", "NUMERIC"), True),
        (("INT64", "BIGNUMERIC"), True),
        (("INTEGER", "FLOAT64"), True),
        (("NUMERIC", "BIGNUMERIC"), True),
        (("NUMERIC", "FLOAT64"), True),
        (("INT64", "STRING"), False),
        (("NUMERIC", "INT64"), False),
        (("FLOAT64", "NUMERIC"), False),
        (("BIGNUMERIC", "NUMERIC"), False),
        (("STRING", "BYTES"), False),
        (("DATE", "TIMESTAMP"), False),
    ],
)
def test_it_knows_bigquerys_in_place_type_changes(change: tuple[str, str], allowed: bool) -> None:
    assert in_place_change_allowed(*change) is allowed


@pytest.mark.parametrize(
    ("from_params", "to_params", "allowed"),
    [
        ((10, 2), (12, 4), True),
        ((10, 2), (None, None), True),  # NUMERIC is NUMERIC(38,9): 29 whole digits, 9 places
        ((38, 0), (None, None), False),  # 38 whole digits do not fit NUMERIC's 29
        ((10, 2), (10, 4), False),  # whole digits would shrink from 8 to 6
        ((10, 2), (10, 2), False),  # not a change
        ((None, None), (None, None), False),
    ],
)
def test_it_knows_bigquerys_parameter_widening_rules(from_params, to_params, allowed: bool) -> None:
    (fp, fs), (tp, ts) = from_params, to_params

    assert (
        in_place_change_allowed("NUMERIC", "NUMERIC", from_precision=fp, from_scale=fs, to_precision=tp, to_scale=ts)
        is allowed
    )


def test_it_never_widens_an_integer_into_a_narrower_parameterized_numeric() -> None:
    assert not in_place_change_allowed("INT64", "NUMERIC", to_precision=10, to_scale=0)
    assert in_place_change_allowed("INT64", "NUMERIC", to_precision=20, to_scale=0)


def test_it_never_offers_to_add_a_required_column() -> None:
    report = check(
        [col("id", F.INTEGER, nullable=False, pk=True), col("sku", F.STRING, nullable=False)],
        [fld("id", "INT64", "REQUIRED")],
    )

    (action,) = report.can_alter
    assert (action.column, action.mode) == ("sku", "NULLABLE")


def test_it_reports_a_nested_record_destination_without_crashing() -> None:
    record = fld("address", "RECORD", fields=(fld("city", "STRING"), fld("zip", "STRING")))

    report = check([col("id", F.INTEGER), col("address", F.STRING)], [fld("id", "INT64"), record])
    unused = check([col("id", F.INTEGER)], [fld("id", "INT64"), record])

    assert "nested records are not supported as a destination for a flat source column" in report.errors[0]
    assert unused.compatible


# --------------------------------------------------------------------------- report shape


def test_it_serializes_the_report_in_the_spec_shape() -> None:
    report = check(
        [col("id", F.INTEGER), col("code", F.STRING), col("extra", F.DATE)],
        [fld("id", "INT64"), fld("code", "INT64", "REQUIRED")],
        source_tag="eu",
    )

    data = json.loads(json.dumps(report.to_dict()))

    assert {"compatible", "errors", "warnings", "can_alter", "columns"} <= set(data)
    assert data["compatible"] is False
    assert {a["kind"] for a in data["can_alter"]} == {"add_column", "relax_required"}
    assert data["columns"][0] == {
        "source_name": "id",
        "source_type": "INTEGER",
        "destination_name": "id",
        "destination_type": "INT64",
        "destination_mode": "NULLABLE",
        "verdict": "ok",
        "message": "INTEGER loads into INT64 unchanged.",
        "fix": None,
    }
    assert data["needs_validation"] == ["code"]


def test_it_refuses_an_empty_column_selection() -> None:
    report = check([], [fld("id", "INT64")])

    assert not report.compatible
    assert "No source columns are selected" in report.errors[0]


# --------------------------------------------------------------------------- properties

_NAME_CHARS = string.ascii_letters + string.digits + "_ -.$#é"

names = st.text(alphabet=_NAME_CHARS, min_size=0, max_size=12)
any_names = st.text(max_size=12)  # any unicode, including empty and control characters

scalar_types = st.one_of(
    st.builds(CanonicalType, st.sampled_from([f for f in Family if f is not Family.ARRAY])),
    st.builds(
        CanonicalType,
        st.just(Family.DECIMAL),
        precision=st.none() | st.integers(-5, 90),
        scale=st.none() | st.integers(-5, 50),
    ),
    st.builds(CanonicalType, st.just(Family.TIMESTAMP), tz=st.booleans()),
    st.builds(CanonicalType, st.just(Family.INTEGER), detail=st.sampled_from(["", "unsigned64", "smallint"])),
)
loadable_types = st.one_of(
    scalar_types, st.builds(CanonicalType, st.just(Family.ARRAY), element=st.none() | scalar_types)
)
any_types = st.recursive(
    scalar_types, lambda inner: st.builds(CanonicalType, st.just(Family.ARRAY), element=st.none() | inner), max_leaves=4
)


def source_columns(name_strategy, type_strategy):
    return st.builds(
        SourceColumn,
        name=name_strategy,
        source_type=st.text(max_size=8),
        type=type_strategy,
        nullable=st.booleans(),
        primary_key=st.booleans(),
    )


bq_types = st.sampled_from(
    [
        "INT64",
        "INTEGER",
        "NUMERIC",
        "BIGNUMERIC",
        "FLOAT64",
        "FLOAT",
        "STRING",
        "BYTES",
        "BOOL",
        "BOOLEAN",
        "DATE",
        "TIME",
        "DATETIME",
        "TIMESTAMP",
        "JSON",
        "GEOGRAPHY",
        "INTERVAL",
        "RANGE",
        "RECORD",
        "STRUCT",
    ]
) | st.text(max_size=6)
modes = st.sampled_from(["NULLABLE", "REQUIRED", "REPEATED"]) | st.text(max_size=4)
bq_fields = st.recursive(
    st.builds(
        BigQueryField,
        name=any_names,
        field_type=bq_types,
        mode=modes,
        precision=st.none() | st.integers(-3, 80),
        scale=st.none() | st.integers(-3, 40),
    ),
    lambda inner: st.builds(
        BigQueryField,
        name=any_names,
        field_type=st.just("RECORD"),
        mode=modes,
        fields=st.lists(inner, max_size=3).map(tuple),
    ),
    max_leaves=6,
)
validation_results = st.builds(
    ValidationResult,
    column=any_names,
    checked_rows=st.integers(-1, 10**6),
    failures=st.integers(-1, 10),
    null_failures=st.integers(-1, 10),
    examples=st.lists(st.text(max_size=50), max_size=7).map(tuple),
    sampled=st.booleans(),
)


@st.composite
def arbitrary_inputs(draw):
    source = draw(st.lists(source_columns(any_names, any_types), max_size=8))
    fields = draw(st.lists(bq_fields, max_size=8))
    known = [c.name for c in source] + [f.name for f in fields] + ["x"]
    pk = draw(st.none() | st.lists(st.sampled_from(known) | any_names, max_size=3).map(tuple))
    options = CompatibilityOptions(
        load_strategy=draw(st.sampled_from(["replace", "append", "incremental", "merge"]) | st.text(max_size=5)),
        merge_key=tuple(draw(st.lists(st.sampled_from(known) | any_names, max_size=3))),
        cursor_column=draw(st.none() | st.sampled_from(known) | any_names),
        source_tag=draw(st.none() | st.text(max_size=5)),
        tag_column=draw(st.sampled_from(["_source_tag", "region"]) | any_names),
        relax_required=draw(st.booleans()),
        validation=draw(st.dictionaries(st.sampled_from(known) | any_names, validation_results, max_size=3)),
    )
    return source, TableSchema(draw(any_names), draw(any_names), tuple(fields), primary_key=pk), options


FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(arbitrary_inputs())
def test_it_never_raises_and_keeps_its_invariants_on_arbitrary_schemas(inputs) -> None:
    source, destination, options = inputs

    report = check_compatibility(source, destination, options)
    narrowing_checks(source, destination, options)

    json.dumps(report.to_dict())
    assert report.compatible == (not report.errors and not report.needs_validation)
    assert all(action_within_bigquery_limits(a) for a in report.can_alter)
    assert all(a.mode in ("NULLABLE", "REPEATED") for a in report.can_alter if a.kind == "add_column")
    assert {r.verdict for r in report.columns} <= {"ok", "warning", "needs_validation", "error"}


def _distinct_names(columns: list[SourceColumn]) -> bool:
    # Names BigQuery would consider the same (by case, or once normalized) are a
    # separate, reported conflict; the mapping properties hold for distinct columns.
    lowered = [c.name.lower() for c in columns]
    normalized = [normalize_column_name(c.name).lower() for c in columns]
    return len(set(lowered)) == len(lowered) and len(set(normalized)) == len(normalized)


def _beyond_bigquery(t: CanonicalType) -> bool:
    """A type no BigQuery type holds every value of: a decimal without precision or with over 38 whole
    digits, or an array (which may hold NULL elements)."""
    if t.family is F.ARRAY:
        return True
    return t.family is F.DECIMAL and (t.precision is None or t.precision - max(t.scale or 0, 0) > 38)


def assert_compatible_but_for_unbounded_decimals(report: CompatibilityReport, source: list[SourceColumn]) -> None:
    """Compatible, except that decimals BigQuery cannot always hold are (only) flagged for validation."""
    assert not report.errors, report.errors
    assert report.needs_validation == [c.name for c in source if _beyond_bigquery(c.type)]


distinct_sources = st.lists(source_columns(names, loadable_types), min_size=1, max_size=10).filter(_distinct_names)


@FAST
@given(distinct_sources, st.sampled_from(["append", "replace"]), st.booleans())
def test_it_finds_a_source_compatible_with_the_table_created_from_its_own_mapping(source, strategy, tagged) -> None:
    tag_column = "_source_tag" if tagged else None
    if tagged and any(c.name.lower() == "_source_tag" for c in source):
        return
    destination = TableSchema("ds", "t", schema_for_new_table(source, tag_column=tag_column))

    report = check_compatibility(
        source, destination, CompatibilityOptions(load_strategy=strategy, source_tag="eu" if tagged else None)
    )

    assert_compatible_but_for_unbounded_decimals(report, source)
    assert report.can_alter == []
    assert [r.destination_name for r in report.columns[: len(source)]] == [f.name for f in destination.fields][
        : len(source)
    ]


@FAST
@given(distinct_sources, source_columns(names, loadable_types))
def test_it_offers_exactly_one_change_when_the_source_gains_a_column(source, extra) -> None:
    grown = [*source, extra]
    if not _distinct_names(grown):
        return
    destination = TableSchema("ds", "t", schema_for_new_table(source))

    report = check_compatibility(grown, destination, CompatibilityOptions())

    (action,) = report.can_alter
    expected_type, expected_mode = bigquery_type_for(extra.type)
    assert (action.kind, action.column, action.field_type, action.mode) == (
        "add_column",
        normalize_column_name(extra.name),
        expected_type,
        expected_mode,
    )
    assert_compatible_but_for_unbounded_decimals(report, source)  # the added column is only offered


# --------------------------------------------------------------------------- naming collisions


def test_it_maps_underscore_id_and_id_to_their_own_columns() -> None:
    report = check([col("_id", F.STRING), col("id", F.INTEGER)], [fld("id", "INT64"), fld("_id", "STRING")])

    assert report.compatible and report.can_alter == []
    assert (row(report, "_id").destination_name, row(report, "id").destination_name) == ("_id", "id")


def test_it_never_maps_source_id_to_a_new_column_when_the_table_has_id() -> None:
    report = check([col("_id", F.STRING), col("id", F.INTEGER)], [fld("id", "INT64")])

    assert row(report, "id").destination_name == "id" and row(report, "id").verdict == "ok"
    assert kinds(report) == [("add_column", "_id")]


def test_it_explains_a_renamed_new_column_in_the_report() -> None:
    report = check([col("a b", F.STRING), col("a_b", F.STRING)], [fld("a_b", "STRING")])

    assert row(report, "a_b").destination_name == "a_b"
    assert kinds(report) == [("add_column", "a_b_2")]
    assert "Named 'a_b_2' because 'a_b' is taken by source column 'a_b'" in row(report, "a b").message
