"""Verify: does a job's BigQuery rows equal its source? Checksums over key ranges, then bisection.

The algorithm of data-diff / reladiff, on an integer key, or on the 60-bit hash of a text or composite
key (`Side.hashed_keys`: the same ranges, over the hash instead of the key):

1. Both sides count and checksum their rows in (at most) `TOP_SEGMENTS` key ranges, in one
   GROUP BY query each, run concurrently. Equal everywhere: in sync, and no row left a database.
2. A range whose count or checksum differs is split into `FACTOR` sub-ranges, again one query
   per side for all differing ranges of a level; until a differing range holds at most
   `LOCAL_ROWS` rows on either side.
3. Those small ranges are fetched as (key, row hash) and compared key by key: missing (in the
   source only), extra (in BigQuery only, or a key BigQuery holds twice), changed (hashes differ).

Range widths are powers of two, so every sub-range lies inside one parent range. The hashing
(`verify_sql`) normalises values so that equal-after-the-job's-casts means equal hashes on every
engine. Pure: the two `Side`s do the database work.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

TOP_SEGMENTS = 64
FACTOR = 32
LOCAL_ROWS = 64
EXAMPLE_KEYS = 50
IN_LIST_MAX = 2000


class Side(Protocol):
    """One database's view of the compared rows (the source table, or the job's rows in BigQuery)."""

    hashed_keys: bool  # bucketed by the hash of a text / composite key (else by an integer key)
    key_columns: tuple[str, ...]  # that key's columns (source names)

    def bounds(self) -> tuple[int | None, int | None, int]:
        """(min key, max key, row count)."""

    def buckets(self, lo: int, width: int, within: tuple[int, list[int]] | None) -> dict[int, tuple[int, int]]:
        """{bucket: (rows, checksum)} for keys >= lo grouped by (key - lo) // width; `within`
        = (parent width, parent buckets) restricts to those parents."""

    def rows(self, lo: int, width: int, buckets: list[int]) -> list[tuple[int, Any, int]]:
        """(bucketed integer, key, row hash) of every row in the given buckets; the key is the integer, or
        the tuple of the key columns' canonical texts."""

    def total(self) -> tuple[int, int]:
        """(rows, checksum) of the whole scope (tables without a key)."""


@dataclass(frozen=True)
class Segment:
    """One range of the picture: keys [lo, hi), rows on each side, differing rows found in it."""

    lo: int
    hi: int
    source_rows: int
    dest_rows: int
    differing: int


@dataclass(frozen=True)
class Progress:
    phase: str  # "counting" | "bisecting" | "comparing" | "done"
    level: int
    ranges: int  # differing ranges at this level
    rows_fetched: int


@dataclass
class VerifyResult:
    in_sync: bool
    keyed: bool
    key: str | None
    source_rows: int
    dest_rows: int
    missing: int = 0
    extra: int = 0
    changed: int = 0
    # Integers; for a text key its values, for a composite key lists of the columns' canonical texts.
    missing_keys: list[Any] = field(default_factory=list)
    extra_keys: list[Any] = field(default_factory=list)
    changed_keys: list[Any] = field(default_factory=list)
    repair_ranges: list[tuple[int, int]] = field(default_factory=list)  # [lo, hi) covering every differing key
    hashed: bool = False  # a text / composite key: segments are ranges of its hash, Repair takes `repair_keys`
    repair_keys: list[list[str]] = field(default_factory=list)  # every differing key (hashed: canonical texts)
    key_columns: list[str] = field(default_factory=list)  # the hashed key's columns (source names)
    segments: list[Segment] = field(default_factory=list)
    key_min: int | None = None
    key_max: int | None = None
    rows_fetched: int = 0
    queries: int = 0
    seconds: float = 0.0
    message: str = ""

    @property
    def differing(self) -> int:
        return self.missing + self.extra + self.changed

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["segments"] = [asdict(s) for s in self.segments]
        data["repair_ranges"] = [list(r) for r in self.repair_ranges]
        for name in ("missing_keys", "extra_keys", "changed_keys"):
            data[name] = data[name][:EXAMPLE_KEYS]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VerifyResult:
        data = dict(data)
        data["segments"] = [Segment(**s) for s in data.get("segments", [])]
        data["repair_ranges"] = [tuple(r) for r in data.get("repair_ranges", [])]
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


ProgressCallback = Callable[[Progress], None]
NO_KEY_MESSAGE = (
    "The job has no key (a primary key or merge key) of integer or string columns, so only the row counts and "
    "one checksum of the whole job scope are compared: finding which rows differ needs a key."
)


HEARTBEAT_SECONDS = 10.0


class _Pool(concurrent.futures.ThreadPoolExecutor):
    """Runs the two sides' queries concurrently; while waiting, re-sends the last progress as a heartbeat
    (a checksum of a large table is one long query, and a silent worker looks dead to the reaper)."""

    def __init__(self, report: ProgressCallback) -> None:
        super().__init__(max_workers=2, thread_name_prefix="verify")
        self.report = report
        self.last = Progress("counting", 0, 0, 0)

    def tell(self, progress: Progress) -> None:
        self.last = progress
        self.report(progress)


def _both[T](pool: _Pool, a: Callable[[], T], b: Callable[[], T]) -> tuple[T, T]:
    futures = [pool.submit(a), pool.submit(b)]
    while True:
        done, pending = concurrent.futures.wait(futures, timeout=HEARTBEAT_SECONDS,
                                                return_when=concurrent.futures.FIRST_EXCEPTION)
        if not pending or any(f.exception() is not None for f in done):
            return futures[0].result(), futures[1].result()
        pool.report(pool.last)


def _top_width(lo: int, hi: int) -> int:
    width = 1
    while (hi - lo + width - 1) // width > TOP_SEGMENTS:
        width *= 2
    return width


def verify(source: Side, dest: Side, *, key: str | None, progress: ProgressCallback | None = None) -> VerifyResult:
    """Compare `source` with `dest`. `progress` is called between steps; raising from it cancels."""
    started = time.monotonic()
    report = progress or (lambda _p: None)
    with _Pool(report) as pool:
        if key is None:
            pool.tell(Progress("counting", 0, 0, 0))
            (sn, ss), (dn, ds) = _both(pool, source.total, dest.total)
            result = VerifyResult(in_sync=(sn, ss) == (dn, ds), keyed=False, key=None, source_rows=sn, dest_rows=dn,
                                  queries=2, message=NO_KEY_MESSAGE)
        else:
            result = _bisect(pool, source, dest, key)
    result.seconds = round(time.monotonic() - started, 3)
    report(Progress("done", 0, 0, result.rows_fetched))
    return result


def _bisect(pool: _Pool, source: Side, dest: Side, key: str) -> VerifyResult:
    report = pool.tell
    report(Progress("counting", 0, 0, 0))
    (smin, smax, sn), (dmin, dmax, dn) = _both(pool, source.bounds, dest.bounds)
    result = VerifyResult(in_sync=True, keyed=True, key=key, source_rows=sn, dest_rows=dn, queries=2)
    mins = [v for v in (smin, dmin) if v is not None]
    if not mins:
        return result
    lo, hi = min(mins), max(v for v in (smax, dmax) if v is not None) + 1
    result.key_min, result.key_max = lo, hi - 1
    width = _top_width(lo, hi)
    src, dst = _both(pool, lambda: source.buckets(lo, width, None), lambda: dest.buckets(lo, width, None))
    result.queries += 2
    top_width = width
    top = sorted(set(src) | set(dst))
    differing = [b for b in top if src.get(b, (0, 0)) != dst.get(b, (0, 0))]
    counts = {b: (src.get(b, (0, 0))[0], dst.get(b, (0, 0))[0]) for b in top}
    missing: list[Any] = []
    extra: list[Any] = []
    changed: list[Any] = []
    where: dict[Any, int] = {}  # differing key -> its bucketed integer
    level = 0
    while differing:
        level += 1
        report(Progress("bisecting", level, len(differing), result.rows_fetched))
        small = [b for b in differing if width == 1 or max(src.get(b, (0, 0))[0], dst.get(b, (0, 0))[0]) <= LOCAL_ROWS]
        large = [b for b in differing if b not in set(small)]
        if small:
            report(Progress("comparing", level, len(small), result.rows_fetched))
            for chunk in _chunks(small):
                s_rows, d_rows = _both(pool, lambda c=chunk, w=width: source.rows(lo, w, c),
                                       lambda c=chunk, w=width: dest.rows(lo, w, c))
                result.queries += 2
                result.rows_fetched += len(s_rows) + len(d_rows)
                _compare(s_rows, d_rows, missing, extra, changed)
                where.update((k, b) for b, k, _ in (*s_rows, *d_rows))
        if not large:
            break
        child = max(1, width // FACTOR)
        src, dst = {}, {}
        for chunk in _chunks(large):
            within = (width, chunk)
            s, d = _both(pool, lambda w=within, c=child: source.buckets(lo, c, w),
                         lambda w=within, c=child: dest.buckets(lo, c, w))
            result.queries += 2
            src.update(s)
            dst.update(d)
        width = child
        differing = [b for b in sorted(set(src) | set(dst)) if src.get(b, (0, 0)) != dst.get(b, (0, 0))]

    result.missing, result.extra, result.changed = len(missing), len(extra), len(changed)
    shown = _shown if source.hashed_keys else (lambda k: k)
    result.missing_keys, result.extra_keys, result.changed_keys = (
        [shown(k) for k in sorted(keys)] for keys in (missing, extra, changed))
    result.in_sync = result.differing == 0 and sn == dn
    if not result.in_sync and result.differing == 0:
        result.message = "The checksums differ but no differing row was found (a concurrent change?): verify again."
    if source.hashed_keys:
        result.hashed, result.key_columns = True, list(source.key_columns)
        result.repair_keys = [list(k) for k in sorted(set(missing) | set(extra) | set(changed))]
    else:
        result.repair_ranges = ranges_of(set(missing) | set(extra) | set(changed))
    per_top: dict[int, int] = {}
    for k in (*missing, *extra, *changed):
        b = (where[k] - lo) // top_width
        per_top[b] = per_top.get(b, 0) + 1
    result.segments = [Segment(lo + b * top_width, min(lo + (b + 1) * top_width, hi), *counts[b], per_top.get(b, 0))
                       for b in top]
    return result


def _shown(key: tuple[str, ...]) -> Any:
    """A hashed key as reported: a one-column key as its text, a composite key as the list of its texts."""
    return key[0] if len(key) == 1 else list(key)


def _chunks(items: list[int]) -> Iterable[list[int]]:
    for i in range(0, len(items), IN_LIST_MAX):
        yield items[i:i + IN_LIST_MAX]


def _compare(s_rows: list[tuple[int, Any, int]], d_rows: list[tuple[int, Any, int]],
             missing: list[Any], extra: list[Any], changed: list[Any]) -> None:
    source = {k: h for _, k, h in s_rows}
    seen: set[Any] = set()
    for _, k, h in d_rows:
        if k in seen or k not in source:
            extra.append(k)  # a key BigQuery holds twice is one extra row
            continue
        seen.add(k)
        if source[k] != h:
            changed.append(k)
    missing.extend(k for k in source if k not in seen)


def ranges_of(keys: set[int]) -> list[tuple[int, int]]:
    """Consecutive keys merged into [lo, hi) ranges."""
    out: list[tuple[int, int]] = []
    for k in sorted(keys):
        if out and out[-1][1] == k:
            out[-1] = (out[-1][0], k + 1)
        else:
            out.append((k, k + 1))
    return out
