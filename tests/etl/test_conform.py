"""The conform step on its own: Arrow in, destination-shaped Arrow out, bad values named."""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa
import pytest

from ml_platform.etl.conform import ColumnSource, Conformer
from ml_platform.etl.errors import CastError, SchemaMismatchError
from ml_platform.etl.types import BigQueryField


def conform(values: pa.Array, field: BigQueryField, **source: object) -> list:
    batch = pa.RecordBatch.from_arrays([pa.array(range(1, len(values) + 1)), values], names=["id", "v"])
    conformer = Conformer([field], {field.name: ColumnSource(source="v", **source)}, key_columns=["id"])
    return conformer.conform(batch).column(0).to_pylist()


def test_it_orders_and_fills_columns_like_the_destination() -> None:
    fields = [BigQueryField("b", "STRING"), BigQueryField("missing", "INT64"), BigQueryField("tag", "STRING"),
              BigQueryField("a", "INT64"), BigQueryField("arr", "INT64", "REPEATED")]  # fmt: skip
    batch = pa.RecordBatch.from_arrays([pa.array([1, 2], pa.int32()), pa.array(["x", None])], names=["A", "B"])
    sources = {"a": ColumnSource("A"), "B": ColumnSource("B"), "tag": ColumnSource(constant="eu")}

    out = Conformer(fields, sources).conform(batch)

    assert out.schema.names == ["b", "missing", "tag", "a", "arr"]
    assert out.to_pylist() == [
        {"b": "x", "missing": None, "tag": "eu", "a": 1, "arr": []},
        {"b": None, "missing": None, "tag": "eu", "a": 2, "arr": []},
    ]


def test_it_casts_text_into_typed_columns() -> None:
    assert conform(pa.array(["2024-01-02 03:04:05+02:00", "2024-01-02 03:04:05"]), BigQueryField("v", "TIMESTAMP")) == [
        dt.datetime(2024, 1, 2, 1, 4, 5, tzinfo=dt.UTC), dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    ]  # fmt: skip
    assert conform(pa.array(["12:30:00.5"]), BigQueryField("v", "TIME")) == [dt.time(12, 30, 0, 500000)]
    assert conform(pa.array(["t", "False", None]), BigQueryField("v", "BOOL")) == [True, False, None]
    assert conform(pa.array([" 1.50 "]), BigQueryField("v", "NUMERIC")) == [decimal.Decimal("1.5")]


@pytest.mark.parametrize(
    ("values", "field", "bad"),
    [
        (pa.array(["1", "x", "3"]), BigQueryField("v", "INT64"), "x"),
        (pa.array([decimal.Decimal("123.45"), decimal.Decimal("1234.5")]), BigQueryField("v", "NUMERIC", precision=5, scale=2), decimal.Decimal("1234.50")),
        (pa.array([1.0, 2.5]), BigQueryField("v", "INT64"), 2.5),
        (pa.array([0, 1, 2]), BigQueryField("v", "BOOL"), 2),
        (pa.array([dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1, 5)]), BigQueryField("v", "DATE"), dt.datetime(2024, 1, 1, 5)),
        (pa.array(['{"a": 1}', "{nope"]), BigQueryField("v", "JSON"), "{nope"),
        (pa.array([dt.timedelta(hours=1), dt.timedelta(hours=25)]), BigQueryField("v", "TIME"), dt.timedelta(hours=25)),
        (pa.array(["a", None]), BigQueryField("v", "STRING", "REQUIRED"), None),
    ],
)  # fmt: skip
def test_it_names_the_first_value_that_does_not_fit(values: pa.Array, field: BigQueryField, bad: object) -> None:
    with pytest.raises(CastError) as failure:
        conform(values, field, validate_json=True)

    index = values.to_pylist().index(bad)
    assert (failure.value.column, failure.value.value, failure.value.key) == ("v", bad, f"id={index + 1}")


def test_it_refuses_a_required_column_nobody_fills() -> None:
    with pytest.raises(SchemaMismatchError, match="REQUIRED"):
        Conformer([BigQueryField("x", "STRING", "REQUIRED")], {})
