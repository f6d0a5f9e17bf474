"""Scripted peers for the transport tests: a one-connection TCP, TLS or WebSocket server on loopback.

Imported by the test modules (not a conftest), so the tests also run with --noconftest.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

from harness.certs import KeyPair, Pki
from harness.clients.websocket import GUID, OPCODES, encode_frame, parse_frame

WAIT = 5.0  # upper bound for a peer's step; only reached when a test fails


def serve_once(script: Callable[[socket.socket], None], context: ssl.SSLContext | None = None) -> tuple[str, int]:
    """A server on a free loopback port that accepts one connection (TLS if `context`) and runs `script`.

    A failed server-side handshake (what the client tests provoke) ends the peer quietly.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    host, port = listener.getsockname()

    def serve() -> None:
        connection, _ = listener.accept()
        listener.close()
        connection.settimeout(WAIT)
        try:
            if context is not None:
                connection = context.wrap_socket(connection, server_side=True)
            script(connection)
        except (OSError, ssl.SSLError):
            pass
        finally:
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    return host, port


def server_context(pair: KeyPair, *, client_ca: Path | None = None, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pair.cert, pair.key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=client_ca)
    if max_version is not None:
        context.maximum_version = max_version
    return context


def tls_server(pki: Pki, script: Callable[[socket.socket], None], pair: KeyPair | None = None, **options: object) -> tuple[str, int]:
    return serve_once(script, server_context(pair or pki.server, **options))  # type: ignore[arg-type]


def read_request(connection: socket.socket) -> tuple[str, dict[str, str], bytes]:
    """The HTTP request line, headers (lower-case names) and any bytes after them."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(4096)
        if not chunk:
            raise ConnectionError("client went away during the upgrade")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers, rest


def accept_upgrade(connection: socket.socket, subprotocol: str | None = "mqtt", accept: str | None = None) -> dict[str, str]:
    """Answer a WebSocket upgrade with 101; returns the request headers."""
    request_line, headers, _ = read_request(connection)
    headers["request-line"] = request_line
    key = headers.get("sec-websocket-key", "")
    digest = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Accept: {accept or digest}"]
    if subprotocol:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return headers


def server_frame(payload: bytes, opcode: str = "binary", fin: bool = True) -> bytes:
    return encode_frame(payload, OPCODES[opcode], fin=fin, masked=False)


class FrameReader:
    """Reads the client's frames on the server side."""

    def __init__(self, connection: socket.socket) -> None:
        self.connection = connection
        self.buffer = bytearray()

    def next(self) -> tuple[bool, int, bool, bytes]:
        while True:
            frame = parse_frame(self.buffer)
            if frame is not None:
                fin, opcode, masked, payload, size = frame
                del self.buffer[:size]
                return fin, opcode, masked, payload
            chunk = self.connection.recv(65536)
            if not chunk:
                raise ConnectionError("client closed")
            self.buffer += chunk
