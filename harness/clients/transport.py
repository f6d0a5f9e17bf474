"""Byte transports under the raw client. TCP now; TLS and WebSocket plug in behind the same interface."""

import contextlib
import socket
from typing import Protocol


class Transport(Protocol):
    """A connected byte stream. recv returns b"" on a clean close and raises on reset or timeout."""

    def send(self, data: bytes) -> None: ...
    def recv(self, timeout: float) -> bytes: ...
    def close(self, abort: bool = False) -> None: ...


class TcpTransport:
    def __init__(self, host: str, port: int, connect_timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        # Scenarios are many small request/response exchanges: Nagle would add 40 ms stalls.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data: bytes) -> None:
        self.sock.settimeout(5.0)
        self.sock.sendall(data)

    def recv(self, timeout: float) -> bytes:
        self.sock.settimeout(max(timeout, 0.0001))
        return self.sock.recv(65536)

    def close(self, abort: bool = False) -> None:
        with contextlib.suppress(OSError):  # the broker may have closed first
            if abort:
                # SO_LINGER 0 makes close() send RST instead of FIN: an abrupt network failure.
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.sock.close()
