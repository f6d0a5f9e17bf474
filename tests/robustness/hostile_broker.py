"""Fake brokers that misbehave on purpose, each on a free loopback port, for the tests that check a
verdict can be trusted against any target (issue 20's table, plus a slow drip and a half-close).

    with HostileBroker("reset") as broker:
        ... pytest --broker mqtt://127.0.0.1:{broker.port} ...
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from types import TracebackType

# Each behaviour: what the fake does with every connection it accepts.
BEHAVIOURS = {
    "reset": "accepts, then resets the connection",
    "flood": "answers CONNACK 0, then floods unsolicited QoS 0 PUBLISH (and answers PINGREQ)",
    "silent": "accepts and never answers",
    "garbage": "answers every read with random bytes",
    "drip": "answers CONNECT with a CONNACK header announcing a 200 MB body, one byte at a time",
    "half-close": "accepts, then closes its sending side at once and keeps reading",
}
CONNACK_ACCEPTED = bytes([0x20, 0x02, 0x00, 0x00])
PINGRESP = bytes([0xD0, 0x00])
# A CONNACK fixed header whose Remaining Length says 200 MB (variable byte integer 0x80 0x80 0x80 0x60).
DRIP = bytes([0x20, 0x80, 0x80, 0x80, 0x60])
# Bytes no MQTT stream starts with: packet type 0 is reserved. The same every run, so a failure repeats.
GARBAGE = bytes([0x00]) + random.Random(7).randbytes(63)


def _publish(number: int) -> bytes:
    topic = b"flood/unsolicited"
    payload = f"message {number}".encode()
    body = struct.pack("!H", len(topic)) + topic + payload
    return bytes([0x30, len(body)]) + body


class HostileBroker:
    def __init__(self, behaviour: str) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r} (known: {', '.join(BEHAVIOURS)})")
        self.behaviour = behaviour
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.accepted = 0

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def __enter__(self) -> HostileBroker:
        thread = threading.Thread(target=self._serve, name=f"hostile-{self.behaviour}", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            thread = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            thread.start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            getattr(self, "_" + self.behaviour.replace("-", "_"))(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def _read(self, conn: socket.socket, timeout: float = 0.05) -> bytes | None:
        """What arrived within `timeout` (b"" when nothing did); None once the client has gone."""
        conn.settimeout(timeout)
        try:
            data = conn.recv(65536)
        except TimeoutError:
            return b""
        return data or None

    def _until_stopped(self, conn: socket.socket) -> None:
        while not self._stop.is_set() and self._read(conn, 0.1) is not None:
            pass

    def _reset(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST

    def _silent(self, conn: socket.socket) -> None:
        self._until_stopped(conn)

    def _half_close(self, conn: socket.socket) -> None:
        conn.shutdown(socket.SHUT_WR)
        self._until_stopped(conn)

    def _garbage(self, conn: socket.socket) -> None:
        while not self._stop.is_set():
            data = self._read(conn, 0.1)
            if data is None:
                return
            if data:
                conn.sendall(GARBAGE)

    def _drip(self, conn: socket.socket) -> None:
        while not self._stop.is_set() and self._read(conn, 0.1) == b"":
            pass
        for byte in DRIP + bytes(1000):
            if self._stop.is_set():
                return
            conn.sendall(bytes([byte]))
            time.sleep(0.3)

    def _flood(self, conn: socket.socket) -> None:
        data = b""
        while not data and not self._stop.is_set():
            data = self._read(conn, 0.1)
            if data is None:
                return
        conn.sendall(CONNACK_ACCEPTED)
        number = 0
        while not self._stop.is_set():
            data = self._read(conn, 0.002)
            if data is None:
                return
            if b"\xc0\x00" in data:  # PINGREQ
                conn.sendall(PINGRESP)
            number += 1
            conn.sendall(_publish(number))


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
