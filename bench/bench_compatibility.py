"""Benchmark the compatibility engine on a 500-column table (`python bench/bench_compatibility.py`).

The wizard re-renders the report on every change of the destination form, so the
pure engine must stay far below an HTTP round trip even for wide tables. The
schemas mix every kind of verdict (ok, warnings, narrowing, additions, a REQUIRED
column, arrays) so no fast path is measured alone. Prints a markdown table: the
median of REPEAT timed runs after one warm-up.

Environment: BENCH_COLUMNS (500), BENCH_REPEAT (20).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml_platform.etl.compatibility import (  # noqa: E402 - after the path set-up for a plain `python` run
    CompatibilityOptions,
    check_compatibility,
    narrowing_checks,
    schema_for_new_table,
)
from ml_platform.etl.types import (  # noqa: E402
    BigQueryField,
    CanonicalType,
    Family,
    SourceColumn,
    TableSchema,
)

COLUMNS = int(os.environ.get("BENCH_COLUMNS", "500"))
REPEAT = max(1, int(os.environ.get("BENCH_REPEAT", "20")))

_TYPES: list[tuple[CanonicalType, BigQueryField | None]] = [
    (CanonicalType(Family.INTEGER), BigQueryField("", "INT64")),
    (CanonicalType(Family.STRING), BigQueryField("", "STRING")),
    (CanonicalType(Family.DECIMAL, precision=12, scale=2), BigQueryField("", "NUMERIC")),
    (CanonicalType(Family.TIMESTAMP, tz=True), BigQueryField("", "TIMESTAMP")),
    (CanonicalType(Family.STRING), BigQueryField("", "INT64")),  # narrowing
    (CanonicalType(Family.INTEGER), BigQueryField("", "FLOAT64")),  # lossy widening
    (CanonicalType(Family.ARRAY, element=CanonicalType(Family.STRING)), BigQueryField("", "STRING", "REPEATED")),
    (CanonicalType(Family.BOOLEAN), BigQueryField("", "BOOL", "REQUIRED")),  # NOT NULL vs nullable
    (CanonicalType(Family.DATE), None),  # missing from the destination: add_column
    (CanonicalType(Family.JSON), BigQueryField("", "JSON")),
]


def build(columns: int) -> tuple[list[SourceColumn], TableSchema, CompatibilityOptions]:
    source: list[SourceColumn] = []
    fields: list[BigQueryField] = []
    for i in range(columns):
        canonical, dest = _TYPES[i % len(_TYPES)]
        name = f"Column {i}" if i % 7 == 0 else f"col_{i}"  # some names only match once normalized
        source.append(SourceColumn(name, str(canonical).lower(), canonical, nullable=i % 3 != 0, primary_key=i == 0))
        if dest is not None:
            fields.append(BigQueryField(name.replace(" ", "_").upper(), dest.field_type, dest.mode))
    fields.append(BigQueryField("legacy_note", "STRING"))
    destination = TableSchema("analytics", "wide", tuple(fields), primary_key=(fields[0].name,))
    options = CompatibilityOptions(load_strategy="merge", merge_key=(source[0].name,), source_tag="eu")
    return source, destination, options


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    fn()  # warm-up
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - started) * 1000)
    return runs


def main() -> int:
    source, destination, options = build(COLUMNS)
    report = check_compatibility(source, destination, options)
    own = TableSchema("analytics", "own", schema_for_new_table(source))
    cases = [
        ("check_compatibility (mixed verdicts)", lambda: check_compatibility(source, destination, options)),
        ("check_compatibility (table from its own mapping)", lambda: check_compatibility(source, own)),
        ("narrowing_checks", lambda: narrowing_checks(source, destination, options)),
        ("report.to_dict()", report.to_dict),
    ]
    print(
        f"Compatibility engine: {COLUMNS} source columns vs {len(destination.fields)} destination columns "
        f"({len(report.errors)} errors, {len(report.warnings)} warnings, {len(report.can_alter)} fixes offered), "
        f"median of {REPEAT} runs.\n"
    )
    print("| operation | median ms | min ms | max ms |")
    print("| --- | ---: | ---: | ---: |")
    for label, fn in cases:
        runs = timed(fn, REPEAT)
        print(f"| {label} | {statistics.median(runs):.2f} | {min(runs):.2f} | {max(runs):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
