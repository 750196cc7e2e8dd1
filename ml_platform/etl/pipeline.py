"""A unit's pipeline: source reading, conforming, Parquet spooling and staging loads overlap, in bounded memory.

    reader thread                      the run's thread                     loader thread (staging.Loader)
    source -> Arrow -> conform  ==>  Parquet part files on disk  ==>  upload + load job into staging
             (READ_AHEAD batches)          (MAX_PENDING_PARTS parts on disk)

- The reader runs the extraction (`extract_batches`) and the conform step on its own thread and hands
  conformed batches over through a queue of `READ_AHEAD` batches: the source's driver and Arrow's
  compute kernels work while the run's thread encodes Parquet (both release the GIL for most of it).
- The run's thread writes Parquet parts (`staging.Spool`) and keeps the progress callback, the heartbeat
  and every call the caller sees on its own thread, as before.
- Closed parts go to the loader, which loads them one after another while the next ones are written;
  it holds at most `MAX_PENDING_PARTS` parts (disk, not memory), so a slow warehouse slows extraction
  down instead of filling the disk with the whole table.

Memory is bounded by the chunk size, the queue depth and one part's upload, never by the table size.
A failure anywhere stops the other stages: the reader is told to stop (and closes the source's cursor
on its own thread), queued batches are dropped, and the error is raised on the run's thread as it was
raised (a `SourceError`, a `CastError`, a `WarehouseError`...).
"""

from __future__ import annotations

import ctypes
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from ml_platform.etl.extract import ExtractQuery, extract_batches
from ml_platform.etl.staging import HEARTBEAT_SECONDS, PART_ROWS, Heartbeat, Spool

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ml_platform.etl.conform import Conformer
    from ml_platform.etl.runspec import Plan, RunSpec

__all__ = ["READ_AHEAD", "ReadAhead", "cursor_max", "part_rows", "spool_unit", "use_arrow_allocator"]

# Conformed batches the reader may hold ahead of the Parquet writer (each at most `chunk_rows` rows).
READ_AHEAD = 1
# A unit is spooled in about this many parts (never parts above `PART_ROWS` nor below `MIN_PART_ROWS`):
# the last part's load is the only one nothing overlaps, and every part has a fixed cost (a load job,
# a table, one more branch of the UNION ALL the commit reads staging through). Measured on the
# emulator, 1M rows: 8 parts left the same tail as 4 (last load ~0.45 s) and a slower commit.
PARTS_PER_UNIT = 4
MIN_PART_ROWS = 100_000
_STOP_POLL_SECONDS = 0.2
_DONE = object()


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class ReadAhead:
    """Items of `produce()` made on a thread, at most `depth` ahead of the consumer.

    Iterate it on the consumer's thread; `close()` (also on leaving a `with` block) stops the
    producer, which then closes its iterator on its own thread, and waits for it to end.
    `idle` is called whenever the consumer has waited `HEARTBEAT_SECONDS` for an item.
    """

    def __init__(self, produce: Callable[[], Iterator[Any]], *, depth: int | None = None,
                 idle: Callable[[], None] | None = None, name: str = "etl-read") -> None:  # fmt: skip
        self._items: queue.Queue[Any] = queue.Queue(maxsize=max(1, READ_AHEAD if depth is None else depth))
        self._stop = threading.Event()
        self._idle = idle
        self._thread = threading.Thread(target=self._run, args=(produce,), name=name, daemon=True)
        self._thread.start()

    def _run(self, produce: Callable[[], Iterator[Any]]) -> None:
        try:
            items = produce()
            try:
                for item in items:
                    if not self._put(item):
                        return
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()  # a generator's `with` blocks (the source connection) end here, on this thread
            self._put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there as it was
            self._put(_Failed(exc))

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._items.put(item, timeout=_STOP_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                item = self._items.get(timeout=HEARTBEAT_SECONDS)
            except queue.Empty:
                if self._idle is not None:
                    self._idle()
                continue
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:  # make room for a producer blocked on a full queue
                self._items.get(timeout=_STOP_POLL_SECONDS)
            except queue.Empty:
                pass
        self._thread.join()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def part_rows(expected_rows: int | None) -> int:
    """Rows per spool part for a unit expected to hold `expected_rows` rows (None: unknown)."""
    if expected_rows is None or expected_rows <= 0:
        return PART_ROWS
    return max(MIN_PART_ROWS, min(PART_ROWS, -(-expected_rows // PARTS_PER_UNIT)))


_allocator_chosen = False


def use_arrow_allocator() -> None:
    """Memory policy of a process that runs pipelines (once): jemalloc for Arrow, and big buffers handed back.

    Measured on the pipelined run (bench/bench_pipeline.py):
    - the default mimalloc pool keeps the pages of the batches freed by the reader, writer and loader
      threads, ~25 MB more peak RSS than jemalloc; the speed is the same. jemalloc's decay is 0 so a
      freed batch's pages go back at once rather than seconds later, while the next batches are read.
    - Some batches live in C `malloc` memory, not Arrow's pool: ADBC's SQLite driver builds them so, and
      the MySQL child's batches are the Python bytes read from its pipe. They are freed on another thread
      than the one that allocated them. glibc raises its mmap threshold to the largest block freed (up to
      32 MB), so those buffers then come from the per-thread heaps, whose pages stay resident: fixing the
      threshold at glibc's own default (128 KiB) keeps each batch-sized buffer an mmap returned when freed.
      Full-run peak RSS at 1M rows, before vs after in alternating runs: SQLite 263 vs 231 MB, MariaDB
      208 vs 189 MB, PostgreSQL 242 vs 218 MB, at the same speed; 1M -> 4M rows after: 232 -> 236 MB,
      187 -> 200 MB, 219 -> 221 MB (before: SQLite 258 -> 277 MB, MariaDB 208 -> 250 MB).
    """
    global _allocator_chosen
    if _allocator_chosen:
        return
    _allocator_chosen = True
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
        pa.jemalloc_set_decay_ms(0)
    except NotImplementedError:  # a pyarrow built without jemalloc keeps its default
        pass
    _fix_mmap_threshold()


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


def _fix_mmap_threshold(size: int = 128 * 1024) -> None:
    """glibc only: make `size` the fixed mmap threshold (setting it turns off glibc's raising it)."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): its allocator keeps its own policy
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt(_M_MMAP_THRESHOLD, size)


def spool_unit(
    spec: RunSpec,
    engine: Engine,
    plan: Plan | None,
    conformer: Conformer,
    unit: ExtractQuery,
    spool: Spool,
    heartbeat: Heartbeat | None,
) -> tuple[int, Any]:
    """The extract -> conform -> Parquet pipeline of one unit: (rows extracted, max cursor when the run tracks one).

    The spool hands each closed part to its `on_part` (the loader) while the next one is written.
    """
    track = plan is not None and _tracks_cursor(spec, plan)
    cursor_source = spec.cursor_column
    cursor_dest = plan.cursor_dest.name if track and plan is not None and plan.cursor_dest is not None else None

    def produce() -> Iterator[tuple[pa.RecordBatch, int, Any]]:
        for batch in extract_batches(engine, unit, chunk_rows=spec.chunk_rows, method=spec.extract_method):
            conformed = conformer.conform(batch)
            batch_max = None
            if cursor_dest is not None and cursor_source is not None:
                batch_max = cursor_max(None, batch.column(cursor_source), conformed.column(cursor_dest))
            rows = batch.num_rows
            del batch  # the source's form is not needed past this point
            yield conformed, rows, batch_max

    unit_max: Any = None
    extracted = 0
    idle = (lambda: heartbeat.emit(force=True)) if heartbeat is not None else None
    with ReadAhead(produce, idle=idle) as batches:
        for conformed, rows, batch_max in batches:
            spool.write(conformed)
            del conformed
            unit_max = _larger(unit_max, batch_max)
            extracted += rows
            if heartbeat is not None:
                heartbeat.rows_extracted += rows
                heartbeat.emit()
    spool.finish()
    return extracted, unit_max


def _tracks_cursor(spec: RunSpec, plan: Plan) -> bool:
    return (
        spec.cursor_column is not None
        and spec.load_strategy in ("incremental", "merge")
        and plan.cursor_dest is not None
    )


def _larger(current: Any, value: Any) -> Any:
    if value is None:
        return current
    if current is None or value > current:
        return value
    return current


def cursor_max(current: Any, source: pa.Array, conformed: pa.Array) -> Any:
    """The larger of `current` and the batch's maximum cursor, ordered the way the source orders it.

    The source's own Arrow values are used (a watermark is compared with source values),
    except where they are text standing in for a number (PostgreSQL numeric on the ADBC
    path), whose order only the conformed decimal column has.
    """
    if isinstance(source.type, pa.ExtensionType):
        source = source.storage
    column = source
    if pa.types.is_string(source.type) and pa.types.is_decimal(conformed.type):
        column = conformed
    if len(column) == column.null_count:
        return current
    return _larger(current, pc.max(column).as_py())
