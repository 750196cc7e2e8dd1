"""The connectorx reader's own process: MySQL/MariaDB rows to Arrow batches, framed on stdout.

connectorx holds the GIL while it connects and waits for a result, so in the worker's own
process a silent server would freeze every thread (the heartbeat included) beyond the read
timeout. Here it runs in a child process (etl/fast_extract.py starts it with
`python -I cx_child.py`, reads the frames on a thread and kills it when the read times out or
the consumer stops), and it also does the per-batch normalisation there, on the other core.

Protocol: one JSON request on stdin (URL with the password, SQL, batch size, session
statements, column names, which columns hold MySQL temporal text); frames on stdout, each a
tag byte, an 8-byte big-endian length and a payload: b"B" one batch as Arrow IPC messages (an 8-byte
big-endian length, the batch's schema, then the batch: each serialised once into a buffer of its
size, where an IPC stream grew a buffer by copies), b"E" a JSON error message (the parent scrubs
secrets and classifies it), b"Z" the end.

Imports only pyarrow, connectorx and the standard library: it must not start Django or SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["TEMPORAL_TYPES", "batch_parts", "main", "normalise", "read_batch", "temporal"]

# A MySQL TIMESTAMP is read in a UTC session: the generic path's reader (etl/values.py) makes it that UTC instant.
UTC = pa.timestamp("us", tz="UTC")
TEMPORAL_TYPES: dict[str, pa.DataType] = {"date": pa.date32(), "datetime": pa.timestamp("us"), "timestamp": UTC}


def normalise(batch: pa.RecordBatch, names: Sequence[str], temporal_by_name: Mapping[str, pa.DataType]) -> Any:
    """connectorx's batch with the generic path's Arrow types (int64 integers, binary bytes, parsed dates)."""
    arrays = []
    for name, array in zip(names, batch.columns, strict=True):
        if name in temporal_by_name:
            array = temporal(array, temporal_by_name[name])
        elif pa.types.is_integer(array.type):
            array = array.cast(pa.int64())
        elif pa.types.is_large_binary(array.type):
            array = array.cast(pa.binary())
        elif pa.types.is_large_string(array.type):
            array = array.cast(pa.string())
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, names=list(names))


def temporal(array: pa.Array, target: pa.DataType) -> pa.Array:
    """MySQL's text form of a date/datetime parsed into `target`; left as text when a value does not parse.

    That is what the generic path does with a batch holding a zero date ('0000-00-00'):
    PyMySQL returns it as text, and the batch goes on as text for the conform step to judge.
    """
    text = array.cast(pa.string())
    wall = pa.timestamp("us") if target == UTC else target  # a TIMESTAMP's text is its UTC wall time
    try:
        return pc.cast(text, wall).cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # The generic path's form of such a batch: valid values as Python's isoformat (a TIMESTAMP's with
        # its +00:00, as etl/values.py reads it), the others as the server wrote them.
        return pa.array([_iso(value, wall, target) for value in text.to_pylist()], pa.string())


def _iso(value: str | None, wall: pa.DataType, target: pa.DataType) -> str | None:
    if value is None:
        return None
    try:
        parsed = pc.cast(pa.array([value]), wall)[0].as_py()
        return (parsed.replace(tzinfo=dt.UTC) if target == UTC else parsed).isoformat()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        return value


def _frame(out: BinaryIO, tag: bytes, *parts: bytes | pa.Buffer) -> None:
    out.write(tag + sum(len(part) for part in parts).to_bytes(8, "big"))
    for part in parts:
        out.write(part)
    out.flush()


def batch_parts(batch: pa.RecordBatch) -> tuple[bytes, pa.Buffer, pa.Buffer]:
    """A b"B" frame's payload: the schema's length, the schema and the batch (read back by `read_batch`).

    IPC messages are padded to 8 bytes, so with an 8-byte length the batch's buffers stay 8-byte aligned.
    """
    schema = batch.schema.serialize()
    return len(schema).to_bytes(8, "big"), schema, batch.serialize()


def read_batch(payload: bytes) -> pa.RecordBatch:
    """The batch of a b"B" frame's payload (`batch_parts`), its buffers pointing into `payload`."""
    buffer = pa.py_buffer(payload)
    size = int.from_bytes(payload[:8], "big")
    return pa.ipc.read_record_batch(buffer.slice(8 + size), pa.ipc.read_schema(buffer.slice(8, size)))


def serve(request: Mapping[str, Any], out: BinaryIO) -> None:
    """Read `request`'s SQL with connectorx and write its batches, normalised, as frames on `out`."""
    import connectorx  # lazy: only this process loads connectorx's Rust runtime

    names = request["columns"]
    temporal_by_name = {name: TEMPORAL_TYPES[kind] for name, kind in request["temporal"].items()}
    reader = connectorx.read_sql(
        request["url"],
        request["sql"],
        return_type="arrow_stream",
        batch_size=int(request["batch_rows"]),
        pre_execution_query=list(request["pre"]),
    )
    for batch in reader:
        if batch.num_rows:  # connectorx may end with an empty batch; the generic path yields none
            _frame(out, b"B", *batch_parts(normalise(batch, names, temporal_by_name)))
    _frame(out, b"Z", b"")


def main() -> int:
    out = sys.stdout.buffer
    try:
        serve(json.loads(sys.stdin.buffer.read()), out)
    except BaseException as exc:  # noqa: BLE001 - connectorx panics are BaseExceptions; all go to the parent
        try:
            _frame(out, b"E", json.dumps({"error": str(exc) or type(exc).__name__}).encode())
        except OSError:
            return 1  # the parent has gone (it stopped reading): nothing left to tell
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
