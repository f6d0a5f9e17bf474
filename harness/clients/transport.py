"""Byte transports under the raw client: TCP, TLS, and WebSocket over either.

Everything above a transport (the raw client, the decoder, the runner) sees one byte stream; the
transport alone knows about certificates and frames. `open_transport(address)` picks the one an
`Address` (a parsed `mqtt://`, `mqtts://`, `ws://` or `wss://` URL) asks for.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from dataclasses import dataclass, replace
from typing import Protocol
from urllib.parse import urlsplit

from harness.clients.tls import TlsFailure, TlsOptions, classify, failed_send
from harness.clients.websocket import HandshakeFailed, WebSocketTransport

TRANSPORTS = ("tcp", "tls", "ws", "wss")
# URL scheme -> transport. `mqtts`, `ssl` and `tls` are the names brokers and clients use for MQTT over TLS.
SCHEMES = {"mqtt": "tcp", "tcp": "tcp", "mqtts": "tls", "ssl": "tls", "tls": "tls", "ws": "ws", "wss": "wss"}
URL_SCHEME = {"tcp": "mqtt", "tls": "mqtts", "ws": "ws", "wss": "wss"}
DEFAULT_PORTS = {"tcp": 1883, "tls": 8883, "ws": 80, "wss": 443}
DEFAULT_WS_PATH = "/mqtt"  # what mosquitto, HiveMQ, Cumulocity and most brokers serve MQTT on
_RST_LINGER = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # SO_LINGER on, 0 s: close() sends RST instead of FIN
_SEND_TIMEOUT = 5.0


class Transport(Protocol):
    """A connected byte stream. recv returns b"" on a clean close and raises on reset or timeout."""

    def send(self, data: bytes) -> None: ...
    def recv(self, timeout: float) -> bytes: ...
    def close(self, abort: bool = False) -> None: ...


@dataclass(frozen=True)
class Address:
    """Where and how to reach a broker: transport, host, port, WebSocket path, TLS options."""

    transport: str
    host: str
    port: int
    path: str = DEFAULT_WS_PATH
    tls: TlsOptions | None = None

    @property
    def uses_tls(self) -> bool:
        return self.transport in ("tls", "wss")

    @property
    def url(self) -> str:
        path = self.path if self.transport in ("ws", "wss") else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{URL_SCHEME[self.transport]}://{host}:{self.port}{path}"

    def with_tls(self, tls: TlsOptions | None) -> Address:
        return replace(self, tls=tls)


def parse_address(url: str, tls: TlsOptions | None = None) -> Address:
    """An Address from a URL; ValueError names what is wrong. Credentials in the URL are ignored here."""
    parts = urlsplit(url)
    transport = SCHEMES.get(parts.scheme)
    if transport is None:
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} (supported: mqtt://, mqtts://, ws://, wss://)")
    if not parts.hostname:
        raise ValueError(f"no host (expected {parts.scheme}://host:port)")
    try:
        port = parts.port or DEFAULT_PORTS[transport]
    except ValueError:
        raise ValueError("bad port") from None
    path = parts.path or DEFAULT_WS_PATH
    if parts.query:
        path += "?" + parts.query
    if transport in ("tls", "wss") and tls is None:
        tls = TlsOptions()
    return Address(transport, parts.hostname, port, path if transport in ("ws", "wss") else DEFAULT_WS_PATH,
                   tls if transport in ("tls", "wss") else None)


class SocketTransport:
    """A transport over one socket (plain or TLS): what TCP and TLS share."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, data: bytes) -> None:
        self.sock.settimeout(_SEND_TIMEOUT)
        self.sock.sendall(data)

    def recv(self, timeout: float) -> bytes:
        self.sock.settimeout(max(timeout, 0.0001))
        return self.sock.recv(65536)

    def close(self, abort: bool = False) -> None:
        with contextlib.suppress(OSError):  # the broker may have closed first
            if abort:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_LINGER)
            self.sock.close()


def tcp_socket(host: str, port: int, connect_timeout: float) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=connect_timeout)
    # Scenarios are many small request/response exchanges: Nagle would add 40 ms stalls.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class TcpTransport(SocketTransport):
    def __init__(self, host: str, port: int, connect_timeout: float = 5.0) -> None:
        super().__init__(tcp_socket(host, port, connect_timeout))


def tls_socket(sock: socket.socket, host: str, options: TlsOptions, timeout: float) -> ssl.SSLSocket:
    """Wrap a connected socket and complete the handshake; TlsFailure says why it failed."""
    context = options.context()
    sock.settimeout(timeout)
    try:
        # An IP address is not sent as SNI but is still checked against the certificate's IP SANs.
        return context.wrap_socket(sock, server_hostname=options.server_name or host)
    except (ssl.SSLError, ConnectionError) as exc:
        sock.close()
        raise classify(exc, sent_client_cert=bool(options.cert_file)) from None


class TlsTransport(SocketTransport):
    """MQTT over TLS (mqtts://). Alerts after the handshake (TLS 1.3 client-certificate refusal) raise TlsFailure."""

    def __init__(self, host: str, port: int, options: TlsOptions, connect_timeout: float = 5.0) -> None:
        self.options = options
        super().__init__(tls_socket(tcp_socket(host, port, connect_timeout), host, options, connect_timeout))

    def recv(self, timeout: float) -> bytes:
        try:
            return super().recv(timeout)
        except ssl.SSLError as exc:
            # In TLS 1.3 the server checks our certificate after our side of the handshake is done:
            # its refusal arrives as an alert on the first read.
            raise classify(exc, sent_client_cert=bool(self.options.cert_file), during_handshake=False) from None

    def send(self, data: bytes) -> None:
        try:
            super().send(data)
        except (ssl.SSLError, ConnectionError) as exc:
            raise failed_send(self.sock, exc, sent_client_cert=bool(self.options.cert_file)) from None


def open_transport(address: Address, connect_timeout: float = 5.0, subprotocols: tuple[str, ...] = ("mqtt",)) -> Transport:
    """Connect to `address`. OSError if unreachable, TlsFailure or HandshakeFailed if the handshake fails."""
    if address.transport == "tcp":
        return TcpTransport(address.host, address.port, connect_timeout)
    if address.transport == "tls":
        return TlsTransport(address.host, address.port, address.tls or TlsOptions(), connect_timeout)
    if address.transport in ("ws", "wss"):
        sock: socket.socket = tcp_socket(address.host, address.port, connect_timeout)
        options = (address.tls or TlsOptions()) if address.transport == "wss" else None
        if options is not None:
            sock = tls_socket(sock, address.host, options, connect_timeout)
        return WebSocketTransport(sock, address.host, address.port, address.path, connect_timeout, tls=options,
                                  subprotocols=subprotocols)
    raise ValueError(f"unknown transport {address.transport!r} (known: {', '.join(TRANSPORTS)})")


__all__ = [
    "DEFAULT_PORTS", "DEFAULT_WS_PATH", "SCHEMES", "TRANSPORTS", "Address", "HandshakeFailed", "SocketTransport",
    "TcpTransport", "TlsFailure", "TlsOptions", "TlsTransport", "Transport", "WebSocketTransport", "open_transport",
    "parse_address",
]
