"""Range planning and the contiguous-prefix watermark of a split first load (ml_platform/etl/ranges.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ml_platform.etl import ledger, ranges
from ml_platform.etl.types import Family


def refusal(**overrides) -> str | None:
    args = {
        "strategy": "incremental",
        "cursor_family": Family.INTEGER,
        "has_key": True,
        "first_run": True,
        "estimated_rows": 4_000_000,
        "min_rows": 2_000_000,
        "workers": 2,
    }
    return ranges.split_refusal(**{**args, **overrides})


def test_it_splits_a_large_first_incremental_or_merge_load_on_an_integer_cursor() -> None:
    assert refusal() is None
    assert refusal(strategy="merge") is None


def test_it_does_not_split_what_cannot_commit_range_by_range() -> None:
    assert "commits once" in refusal(strategy="replace")
    assert "commits once" in refusal(strategy="append")
    assert "not an integer" in refusal(cursor_family=Family.TIMESTAMP)
    assert "not an integer" in refusal(cursor_family=None)
    assert "no key" in refusal(has_key=False)
    assert "watermark" in refusal(first_run=False)
    assert "fewer than 2,000,000" in refusal(estimated_rows=1_999_999)
    assert "fewer than" in refusal(estimated_rows=None)
    assert refusal(min_rows=0) == "splitting is off"


def test_it_does_not_split_for_a_single_task_worker() -> None:
    # One worker would run the ranges one after another: the split only adds its overhead.
    assert "one task worker" in refusal(workers=1)
    assert refusal(workers=4) is None


def test_it_sizes_ranges_by_rows_with_at_least_two_and_a_cap() -> None:
    assert ranges.range_count(4_000_000, range_rows=500_000, max_ranges=64) == 8
    assert ranges.range_count(4_000_001, range_rows=500_000, max_ranges=64) == 9
    assert ranges.range_count(600_000, range_rows=500_000, max_ranges=64) == 2
    assert ranges.range_count(10**9, range_rows=500_000, max_ranges=64) == 64


def test_it_plans_contiguous_equal_ranges_from_min_with_the_last_open_above() -> None:
    planned = ranges.plan_ranges(1, 4_000_000, 4)
    assert [(r.after, r.through) for r in planned] == [
        (0, 1_000_000),
        (1_000_000, 2_000_000),
        (2_000_000, 3_000_000),
        (3_000_000, None),
    ]
    assert planned[1].describe("id") == "1000000 < id <= 2000000"


def test_it_never_plans_more_ranges_than_keys() -> None:
    assert [(r.after, r.through) for r in ranges.plan_ranges(5, 6, 8)] == [(4, 5), (5, None)]
    assert len(ranges.plan_ranges(7, 7, 8)) == 1


@given(low=st.integers(-(2**63), 2**63 - 2), width=st.integers(0, 2**63), parts=st.integers(1, 64))
def test_it_covers_every_key_exactly_once(low: int, width: int, parts: int) -> None:
    high = min(low + width, 2**63 - 1)
    planned = ranges.plan_ranges(low, high, parts)
    assert planned[0].after == low - 1 and planned[-1].through is None
    for a, b in zip(planned, planned[1:], strict=False):
        assert a.through == b.after and a.after < a.through  # no gap, no overlap, none empty
    assert [r.index for r in planned] == list(range(len(planned)))


def test_it_moves_the_watermark_only_over_the_contiguous_committed_prefix() -> None:
    planned = ranges.plan_ranges(1, 400, 4)  # (0,100] (100,200] (200,300] (300,∞)
    assert ranges.contiguous_prefix(planned, {}) == (0, 0)
    # A later range committing first does not move it: the next run must still read range 0.
    assert ranges.contiguous_prefix(planned, {1: 200, 3: 400}) == (0, 0)
    assert ranges.contiguous_prefix(planned, {0: 100, 2: 300}) == (1, 100)
    # Below a gap the upper bound counts, even when the range's largest row was lower.
    assert ranges.contiguous_prefix(planned, {0: 97, 1: 150, 3: 400}) == (2, 200)
    assert ranges.contiguous_prefix(planned, {0: 100, 1: 200, 2: 300, 3: 412}) == (4, 412)
    # The last range held no row: the watermark is where it started.
    assert ranges.contiguous_prefix(planned, {0: 100, 1: 200, 2: None, 3: None}) == (4, 300)


def test_a_ranges_ledger_rows_never_carry_the_jobs_signature() -> None:
    job = ledger.signature("incremental", "id", None)
    assert ranges.range_signature(job, "12r3") != job
    assert ranges.range_signature(job, "12r3") != ranges.range_signature(job, "12r4")


def test_the_prefix_row_is_fenced_and_written_once() -> None:
    who = ledger.Identity(
        dataset="d",
        table="t",
        job="5",
        tag=None,
        run="12",
        fence=12,
        signature=ledger.signature("incremental", "id", None),
    )
    script = ranges.watermark_script(who, 3, 300)
    assert script.startswith("BEGIN TRANSACTION; ") and script.endswith("COMMIT TRANSACTION;")
    assert "fence > 12" in script  # a later run's claim refuses it
    assert "'5:12:3'" in script and "kind = 'unit'" in script  # the same prefix row twice is refused
    assert '"value": "300"' in script
