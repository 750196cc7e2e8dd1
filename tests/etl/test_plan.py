"""The load plan a job records, and the run-time check that the table still matches it (pure)."""

from __future__ import annotations

from ml_platform.etl.plan import LoadPlan, PlannedColumn, mismatch_message, table_mismatches
from ml_platform.etl.types import BigQueryField, TableSchema

PLAN = LoadPlan(dataset="d", table="t", mode="existing",
                columns=(PlannedColumn("id", "id", "INT64", "REQUIRED"), PlannedColumn("Amount", "amount", "NUMERIC")),
                tag_column="_source_tag", source_tag="eu")


def table(*fields: BigQueryField) -> TableSchema:
    return TableSchema("d", "t", fields)


SAME = table(BigQueryField("id", "INTEGER", "REQUIRED"), BigQueryField("AMOUNT", "NUMERIC"),
             BigQueryField("_source_tag", "STRING"), BigQueryField("other", "STRING"))


def test_it_accepts_the_table_the_plan_was_made_for() -> None:
    assert table_mismatches(PLAN, SAME) == []  # legacy type names and another case are the same column
    assert table_mismatches(PLAN.to_json(), SAME) == []  # the stored JSON form


def test_it_round_trips_through_json() -> None:
    assert LoadPlan.from_json(PLAN.to_json()) == PLAN


def test_it_names_a_dropped_column_a_changed_type_and_a_tightened_mode() -> None:
    changed = table(BigQueryField("id", "STRING", "REQUIRED"), BigQueryField("_source_tag", "STRING"))
    problems = table_mismatches(PLAN, changed)
    assert "Column 'id' changed type from INT64 to STRING." in problems
    assert any("'amount'" in p and "no longer in d.t" in p for p in problems)
    tightened = table(BigQueryField("id", "INT64", "REQUIRED"), BigQueryField("amount", "NUMERIC", "REQUIRED"),
                      BigQueryField("_source_tag", "STRING"))
    assert table_mismatches(PLAN, tightened) == ["Column 'amount' changed mode from NULLABLE to REQUIRED."]


def test_it_lets_a_relaxed_column_pass_but_not_a_new_required_one() -> None:
    relaxed = table(BigQueryField("id", "INT64"), BigQueryField("amount", "NUMERIC"),
                    BigQueryField("_source_tag", "STRING"))
    assert table_mismatches(PLAN, relaxed) == []
    grown = table(*SAME.fields, BigQueryField("region", "STRING", "REQUIRED"))
    assert table_mismatches(PLAN, grown) == ["d.t gained REQUIRED column 'region', which this job does not fill."]


def test_it_requires_the_tag_column_and_the_table_of_an_existing_plan() -> None:
    untagged = table(BigQueryField("id", "INT64", "REQUIRED"), BigQueryField("amount", "NUMERIC"))
    assert table_mismatches(PLAN, untagged) == ["The source tag column '_source_tag' is no longer in d.t."]
    assert table_mismatches(PLAN, None) == ["The table d.t no longer exists."]
    new = LoadPlan(dataset="d", table="t", mode="new", columns=PLAN.columns)
    assert table_mismatches(new, None) == []  # a job that created its table creates it again


def test_it_says_what_changed_and_how_to_fix_it() -> None:
    message = mismatch_message(PLAN, ["Column 'id' changed type from INT64 to STRING."])
    assert "no longer matches the load plan" in message and "changed type from INT64 to STRING" in message
    assert "edit the job" in message
