"""The MySQL fast path opens its own connection: a hostile server gets no more from it than from the generic path.

A small fake MySQL server asks the client for a local file (LOAD DATA LOCAL INFILE) in answer
to its first query, or for the password in clear text during the handshake, and records every
byte the client sends. Both extraction paths must fail without sending either.
"""

from __future__ import annotations

import multiprocessing
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from ml_platform.etl.errors import RunError
from ml_platform.etl.extract import ExtractQuery, extract_batches
from ml_platform.etl.fast_extract import mysql_url
from ml_platform.etl.sources import ConnectionParams, get_engine
from ml_platform.etl.types import CanonicalType, Family, SourceColumn

PASSWORD = "s3cret-never-in-clear"  # noqa: S105 - a test password the fake server must never receive
CAPABILITIES = 0x1 | 0x4 | 0x8 | 0x80 | 0x200 | 0x2000 | 0x8000 | 0x80000  # incl. CLIENT_LOCAL_FILES, PLUGIN_AUTH


class HostileMySQL:
    """Speaks just enough of the MySQL protocol to get a client to a query, then asks for `mode`'s bait."""

    def __init__(self, mode: str, bait_file: Path, record: Path) -> None:
        self.mode, self.bait_file, self.record = mode, bait_file, record
        self.received = bytearray()
        self.queries: list[bytes] = []
        self.asked = False
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.5)
        self.port = self._sock.getsockname()[1]
        # A process, not a thread: connectorx holds the GIL while it connects and waits for a result.
        self._process = multiprocessing.get_context("fork").Process(target=self._serve, daemon=True)
        self._process.start()

    def close(self) -> None:
        self._process.terminate()
        self._process.join(timeout=5)
        self._sock.close()

    def seen(self) -> tuple[bool, bytes]:
        """(whether the server got as far as asking, every byte the client sent)."""
        data = self.record.read_bytes() if self.record.exists() else b""
        return data.startswith(b"ASKED"), data

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(3)
                try:
                    self._session(conn)
                except OSError:
                    pass

    def _send(self, conn: socket.socket, seq: int, payload: bytes) -> None:
        conn.sendall(struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload)

    def _read(self, conn: socket.socket) -> tuple[int, bytes]:
        header = self._exact(conn, 4)
        length = int.from_bytes(header[:3], "little")
        payload = self._exact(conn, length)
        return header[3], payload

    def _exact(self, conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise OSError("closed")
            self.received += chunk
            data += chunk
        self.record.write_bytes((b"ASKED" if self.asked else b"") + bytes(self.received))
        return data

    def _session(self, conn: socket.socket) -> None:
        salt = b"abcdefghijklmnopqrst"
        greeting = (b"\x0a8.0.36\x00" + struct.pack("<I", 7) + salt[:8] + b"\x00"
                    + struct.pack("<H", CAPABILITIES & 0xFFFF) + b"\x21" + struct.pack("<H", 2)
                    + struct.pack("<H", CAPABILITIES >> 16) + bytes([21]) + b"\x00" * 10 + salt[8:] + b"\x00"
                    + b"mysql_native_password\x00")  # fmt: skip
        self._send(conn, 0, greeting)
        seq, _ = self._read(conn)
        if self.mode == "cleartext":
            self.asked = True
            self.record.write_bytes(b"ASKED" + bytes(self.received))
            self._send(conn, seq + 1, b"\xfemysql_clear_password\x00")
            self._read(conn)  # whatever comes back is recorded; the password must not be in it
            return
        self._send(conn, seq + 1, b"\x00\x00\x00\x02\x00\x00\x00")  # OK: logged in
        while True:
            _, command = self._read(conn)
            if command[:1] == b"\x03":  # COM_QUERY: answer with a LOCAL INFILE request
                self.queries.append(command[1:])
                self.asked = True
                self.record.write_bytes(b"ASKED" + bytes(self.received))
                self._send(conn, 1, b"\xfb" + str(self.bait_file).encode())
                seq, data = self._read(conn)
                while data:  # a file's contents until an empty packet; a client that refuses sends only that
                    seq, data = self._read(conn)
                self._send(conn, seq + 1, b"\xff" + struct.pack("<H", 1105) + b"#HY000refused")
            elif command[:1] == b"\x01":  # COM_QUIT
                return
            elif command[:1] in (b"\x0e", b"\x02", b"\x1f"):  # COM_PING, COM_INIT_DB, COM_RESET_CONNECTION
                self._send(conn, 1, b"\x00\x00\x00\x02\x00\x00\x00")
            else:
                self._send(conn, 1, b"\xff" + struct.pack("<H", 1047) + b"#08S01unknown command")


@pytest.fixture
def bait_file(tmp_path: Path) -> Path:
    bait = tmp_path / "service-secret.txt"
    bait.write_text("THE-SERVICE-PRIVATE-KEY-CONTENTS")
    return bait


@pytest.fixture(params=["local_infile", "cleartext"])
def hostile(request, bait_file: Path, tmp_path: Path) -> Iterator[HostileMySQL]:
    server = HostileMySQL(request.param, bait_file, tmp_path / "received.bin")
    yield server
    server.close()


@pytest.mark.parametrize("reader", ["generic", "pymysql", "connectorx"])
def test_a_hostile_server_gets_neither_a_local_file_nor_the_password(hostile, reader, monkeypatch) -> None:
    monkeypatch.setenv("ETL_MYSQL_CONNECTORX", "1" if reader == "connectorx" else "0")
    params = ConnectionParams(engine="mysql", host="127.0.0.1", port=hostile.port, database="shop",
                              username="etl", password=PASSWORD)  # fmt: skip
    engine = get_engine(params)
    query = ExtractQuery(None, "t", (SourceColumn("id", "int", CanonicalType(Family.INTEGER)),))
    if reader == "connectorx":
        assert mysql_url(engine) is not None  # the connectorx reader is really the one under test
    method = "sqlalchemy" if reader == "generic" else "fast"
    with pytest.raises(RunError) as failure:
        list(extract_batches(engine, query, method=method))
    asked, received = hostile.seen()
    assert asked, "the client never got as far as the server's request"
    assert b"THE-SERVICE-PRIVATE-KEY-CONTENTS" not in received
    assert PASSWORD.encode() not in received
    assert PASSWORD not in str(failure.value)
