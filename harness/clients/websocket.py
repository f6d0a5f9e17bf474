"""MQTT over WebSocket (RFC 6455, MQTT 5.0 chapter 6 / 3.1.1 chapter 6): a minimal client transport.

Just what MQTT needs, written out so the harness controls every frame: the HTTP upgrade offering
the `mqtt` subprotocol (MQTT-6.0.0-3), masked client frames, binary opcode for MQTT data
(MQTT-6.0.0-1), any frame boundaries from the server (MQTT-6.0.0-2: a frame may hold part of a
packet or several), ping/pong and the close handshake. What the server answered to the upgrade is
kept (`status`, `headers`, `subprotocol`) so scenarios can check MQTT-6.0.0-4.

`send(data)` sends one binary frame per call; a scenario splits or coalesces MQTT packets across
frames by how it calls send. `send_frame` sends any opcode (a text frame, on purpose).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import ssl
import struct
import time

from harness.clients.tls import TlsOptions, classify, failed_send

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
OPCODES = {"continuation": 0x0, "text": 0x1, "binary": 0x2, "close": 0x8, "ping": 0x9, "pong": 0xA}
_NAMES = {code: name for name, code in OPCODES.items()}
_MAX_HEADER = 16384
_RST_LINGER = b"\x01\x00\x00\x00\x00\x00\x00\x00"


class HandshakeFailed(ConnectionError):
    """The HTTP upgrade did not give a WebSocket: refused, not HTTP, or a wrong Sec-WebSocket-Accept."""


class WebSocketViolation(ConnectionError):
    """The server broke the WebSocket rules MQTT relies on (a text frame, a masked frame, a bad length)."""


def mask(data: bytes, key: bytes) -> bytes:
    """XOR with the repeating 4-byte key, done as one big-integer XOR (fast for any length)."""
    if not data:
        return b""
    repeated = (key * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(data), "big")


def encode_frame(payload: bytes, opcode: int = OPCODES["binary"], *, fin: bool = True, masked: bool = True) -> bytes:
    """One frame. Clients must mask every frame (RFC 6455 5.3), so `masked` is only off in tests of a server."""
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + mask(payload, key)


def parse_frame(buffer: bytes | bytearray) -> tuple[bool, int, bool, bytes, int] | None:
    """(fin, opcode, was_masked, payload, frame length) of the first complete frame, or None if incomplete."""
    if len(buffer) < 2:
        return None
    fin, opcode = bool(buffer[0] & 0x80), buffer[0] & 0x0F
    masked, length, offset = bool(buffer[1] & 0x80), buffer[1] & 0x7F, 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length, offset = struct.unpack_from("!H", buffer, 2)[0], 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        length, offset = struct.unpack_from("!Q", buffer, 2)[0], 10
    key = b""
    if masked:
        if len(buffer) < offset + 4:
            return None
        key, offset = bytes(buffer[offset : offset + 4]), offset + 4
    if len(buffer) < offset + length:
        return None
    payload = bytes(buffer[offset : offset + length])
    return fin, opcode, masked, mask(payload, key) if masked else payload, offset + length


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode("ascii")


class WebSocketTransport:
    """MQTT over a WebSocket on an already connected socket (plain for ws://, TLS for wss://)."""

    def __init__(self, sock: socket.socket, host: str, port: int, path: str = "/mqtt", timeout: float = 5.0, *,
                 tls: TlsOptions | None = None, subprotocols: tuple[str, ...] = ("mqtt",)) -> None:
        self.sock = sock
        self.tls = tls
        self.path = path
        self.status = ""
        self.headers: dict[str, str] = {}
        self.subprotocol: str | None = None
        self.close_code: int | None = None
        self.close_detail = ""
        self.received_opcodes: list[str] = []  # evidence: which frame types the server used
        self._buffer = bytearray()
        self._closed = False  # the server closed (close frame or end of stream)
        self._close_sent = False
        try:
            self._handshake(host, port, path, timeout, subprotocols)
        except BaseException:
            sock.close()
            raise

    # -- handshake -----------------------------------------------------------------------------

    def _handshake(self, host: str, port: int, path: str, timeout: float, subprotocols: tuple[str, ...]) -> None:
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        host_header = f"[{host}]" if ":" in host else host
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host_header}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if subprotocols:
            lines.append(f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}")
        self._sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"), timeout)
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self._buffer:
            if len(self._buffer) > _MAX_HEADER:
                raise HandshakeFailed(f"WebSocket upgrade to {path}: no end of the HTTP response within {_MAX_HEADER} bytes")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HandshakeFailed(f"WebSocket upgrade to {path}: no HTTP response within {timeout:g} s")
            chunk = self._recv_raw(remaining)
            if not chunk:
                raise HandshakeFailed(f"WebSocket upgrade to {path}: the server closed the connection without answering"
                                      + (f" (got {bytes(self._buffer[:60])!r})" if self._buffer else ""))
            self._buffer += chunk
        head, _, rest = bytes(self._buffer).partition(b"\r\n\r\n")
        self._buffer = bytearray(rest)  # frames the server sent right behind its answer
        text = head.decode("latin-1").split("\r\n")
        self.status = text[0]
        for line in text[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        parts = self.status.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise HandshakeFailed(f"WebSocket upgrade to {path}: not an HTTP response: {self.status[:80]!r}")
        if parts[1] != "101":
            raise HandshakeFailed(f"WebSocket upgrade to {path} refused: {self.status}")
        if self.headers.get("sec-websocket-accept") != accept_key(key):
            raise HandshakeFailed(f"WebSocket upgrade to {path}: wrong Sec-WebSocket-Accept "
                                  f"{self.headers.get('sec-websocket-accept')!r}")
        # Whether it is `mqtt` is MQTT-6.0.0-4, checked by scenarios; the transport works either way.
        self.subprotocol = self.headers.get("sec-websocket-protocol")

    # -- socket ----------------------------------------------------------------------------------

    def _sendall(self, data: bytes, timeout: float = 5.0) -> None:
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(data)
        except (ssl.SSLError, ConnectionError) as exc:
            if self.tls is None:
                raise
            raise failed_send(self.sock, exc, sent_client_cert=bool(self.tls.cert_file)) from None

    def _recv_raw(self, timeout: float) -> bytes:
        self.sock.settimeout(max(timeout, 0.0001))
        try:
            return self.sock.recv(65536)
        except ssl.SSLError as exc:
            raise classify(exc, sent_client_cert=bool(self.tls and self.tls.cert_file), during_handshake=False) from None

    # -- the Transport interface -----------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.send_frame(data, OPCODES["binary"])

    def send_frame(self, payload: bytes, opcode: int = OPCODES["binary"], fin: bool = True) -> None:
        self._sendall(encode_frame(payload, opcode, fin=fin))

    def recv(self, timeout: float) -> bytes:
        """MQTT bytes from binary frames, whatever their boundaries; b"" once the server has closed."""
        deadline = time.monotonic() + timeout
        while True:
            data = self._drain()
            if data:
                return data
            if self._closed:
                return b""
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out")
            chunk = self._recv_raw(remaining)
            if not chunk:
                self._closed = True
                if not self.close_detail:
                    self.close_detail = "the TCP connection ended without a WebSocket close frame"
                continue
            self._buffer += chunk

    def _drain(self) -> bytes:
        """Take every complete frame off the buffer; returns the MQTT data they carried."""
        data = bytearray()
        while not self._closed:
            frame = parse_frame(self._buffer)
            if frame is None:
                break
            fin, opcode, was_masked, payload, size = frame
            if was_masked:
                raise WebSocketViolation("the server sent a masked WebSocket frame (RFC 6455 5.1: servers must not mask)")
            if opcode == OPCODES["text"]:
                if data:
                    break  # hand over the MQTT data before it first; the violation is raised on the next read
                raise WebSocketViolation(
                    "the server sent a WebSocket text frame; MQTT-6.0.0-1: MQTT data travels in binary frames only")
            del self._buffer[:size]
            self.received_opcodes.append(_NAMES.get(opcode, hex(opcode)))
            if opcode in (OPCODES["binary"], OPCODES["continuation"]):
                data += payload
            elif opcode == OPCODES["ping"]:
                with contextlib.suppress(OSError):
                    self._sendall(encode_frame(payload, OPCODES["pong"]))
            elif opcode == OPCODES["close"]:
                self._closed = True
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                reason = payload[2:].decode("utf-8", "replace")
                self.close_detail = f"WebSocket close frame {self.close_code or '(no code)'}" + (f" {reason!r}" if reason else "")
                if not self._close_sent:
                    # Echo the close (RFC 6455 5.5.1). The handshake is then complete, so our side of
                    # the TCP connection goes too: some servers (mosquitto over wss) finish the MQTT
                    # connection, and publish its will, only once the socket is gone.
                    self._close_sent = True
                    with contextlib.suppress(OSError):
                        self._sendall(encode_frame(payload[:2], OPCODES["close"]))
                with contextlib.suppress(OSError):
                    self.sock.close()
            elif opcode != OPCODES["pong"]:
                raise WebSocketViolation(f"the server sent a WebSocket frame with unknown opcode {opcode:#x}")
        return bytes(data)

    def close(self, abort: bool = False) -> None:
        with contextlib.suppress(OSError):
            if abort:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_LINGER)
            elif not self._close_sent and not self._closed:
                self._close_sent = True
                self._sendall(encode_frame(struct.pack("!H", 1000), OPCODES["close"]), timeout=1.0)
            self.sock.close()
