"""TLS and WebSocket listeners: the transports behind `Connection`, which itself only sees MQTT bytes.

- `tls`: TLS done here over a plain TCP transport (`TlsLayer`, memory BIOs) rather than with
  `create_server(ssl=...)`: asyncio drops the alert of a failed handshake, and a client refused
  for its certificate must be told why (an unknown CA, a missing certificate), not just see EOF.
  The listener's certfile/keyfile; with `require_client_cert`, certificates signed by `cafile`.
- `ws` / `wss`: an HTTP upgrade that must offer the `mqtt` subprotocol and gets it back
  (MQTT-6.0.0-3/-4), then binary frames carry MQTT bytes with any boundaries (MQTT-6.0.0-2); a
  text frame closes the connection (MQTT-6.0.0-1). Outgoing bytes go out as binary frames.
- `client_id_from_cn` (TLS and wss): as Cumulocity does with device certificates, the
  certificate authenticates the client and the ClientId's device identifier
  (`[type:]id[:template]`, harness.broker.identifiers) must equal the certificate's common name,
  else CONNACK 5 / 0x87.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
from typing import Any

from harness.broker.config import ListenerConfig
from harness.broker.connection import Connection
from harness.broker.core import Broker
from harness.broker.identifiers import device_identifier
from harness.broker.personality import ClientInfo, Refusal
from harness.clients.websocket import OPCODES, accept_key, encode_frame, parse_frame

log = logging.getLogger("harness.broker")
_MAX_REQUEST = 16384
NOT_AUTHORIZED, NOT_AUTHORIZED_5 = 5, 0x87


def server_context(listener: ListenerConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(listener.certfile, listener.keyfile)  # type: ignore[arg-type]
    if listener.cafile:
        context.load_verify_locations(cafile=listener.cafile)
        context.verify_mode = ssl.CERT_REQUIRED if listener.require_client_cert else ssl.CERT_OPTIONAL
    return context


def common_name(certificate: dict[str, Any] | None) -> str | None:
    for rdn in (certificate or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class CertificateAware(Connection):
    """A connection that knows its client certificate's common name (TLS, wss)."""

    def __init__(self, broker: Broker, transport_name: str, listener: ListenerConfig) -> None:
        super().__init__(broker, transport_name)
        self.listener_config = listener
        self.certificate_cn: str | None = None

    def remember_certificate(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.certificate_cn = common_name(ssl_object.getpeercert())

    def check_certificate(self, info: ClientInfo) -> Refusal | None:
        if self.listener_config.client_id_from_cn and self.certificate_cn is not None \
                and device_identifier(info.client_id) != self.certificate_cn:
            return Refusal(NOT_AUTHORIZED, NOT_AUTHORIZED_5,
                           f"ClientId {info.client_id!r} does not match the certificate's common name {self.certificate_cn!r}")
        return None

    def certificate_authenticates(self, info: ClientInfo) -> bool:
        return self.listener_config.client_id_from_cn and self.certificate_cn is not None


class TlsConnection(CertificateAware):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # called by TlsLayer once established
        self.remember_certificate(transport)
        super().connection_made(transport)


class _TlsTransport:
    """What the protocol above TLS writes to: bytes are encrypted, then go out on the TCP transport."""

    def __init__(self, layer: TlsLayer) -> None:
        self.layer = layer

    def write(self, data: bytes) -> None:
        layer = self.layer
        if layer.raw.is_closing():
            return
        with contextlib.suppress(ssl.SSLError):
            layer.sslobj.write(data)
        layer.flush()

    def close(self) -> None:
        layer = self.layer
        if not layer.raw.is_closing():
            with contextlib.suppress(ssl.SSLError):
                layer.sslobj.unwrap()  # close_notify: a clean end of the TLS stream
            layer.flush()
            layer.raw.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self.layer.sslobj
        if name == "peercert":
            return self.layer.sslobj.getpeercert()
        return self.layer.raw.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:  # abort, is_closing, pause_reading, set_write_buffer_limits, ...
        return getattr(self.layer.raw, name)


class TlsLayer(asyncio.Protocol):
    """TLS over a TCP connection, in front of another protocol (a Connection, or WebSocket then Connection)."""

    def __init__(self, inner: asyncio.Protocol, context: ssl.SSLContext) -> None:
        self.inner = inner
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.sslobj = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.raw: asyncio.Transport = None  # type: ignore[assignment]
        self.established = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = transport  # type: ignore[assignment]

    def flush(self) -> None:
        data = self.outgoing.read()
        if data and not self.raw.is_closing():
            self.raw.write(data)

    def data_received(self, data: bytes) -> None:
        self.incoming.write(data)
        if not self.established:
            try:
                self.sslobj.do_handshake()
            except ssl.SSLWantReadError:
                self.flush()
                return
            except ssl.SSLError as exc:
                # The alert (unknown CA, certificate required, ...) is in the outgoing BIO: send it.
                log.info("TLS handshake with %s failed: %s", self.raw.get_extra_info("peername"), exc)
                self.flush()
                self.raw.close()
                return
            self.established = True
            self.flush()
            self.inner.connection_made(_TlsTransport(self))  # type: ignore[arg-type]
        self._read()

    def _read(self) -> None:
        while not self.raw.is_closing():
            try:
                chunk = self.sslobj.read(65536)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLError) as exc:
                if not isinstance(exc, ssl.SSLZeroReturnError):
                    log.info("TLS error from %s: %s", self.raw.get_extra_info("peername"), exc)
                self.flush()
                self.raw.close()
                break
            if not chunk:
                break
            self.inner.data_received(chunk)
        self.flush()  # what reading produced (a TLS 1.3 key update, session tickets)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.established:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.established:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.established:
            self.inner.resume_writing()


class _FramedTransport:
    """What `Connection` writes to, over WebSocket: its bytes go out as binary frames."""

    def __init__(self, real: asyncio.Transport) -> None:
        self.real = real

    def write(self, data: bytes) -> None:
        self.real.write(encode_frame(data, OPCODES["binary"], masked=False))

    def close(self) -> None:
        if not self.real.is_closing():
            self.real.write(encode_frame(struct.pack("!H", 1000), OPCODES["close"], masked=False))
            self.real.close()

    def __getattr__(self, name: str) -> Any:  # abort, is_closing, pause_reading, get_extra_info, ...
        return getattr(self.real, name)


class WebSocketConnection(CertificateAware):
    """MQTT over WebSocket: the upgrade, then frames in and out around the MQTT connection."""

    def __init__(self, broker: Broker, transport_name: str, listener: ListenerConfig) -> None:
        super().__init__(broker, transport_name, listener)
        self.raw: asyncio.Transport | None = None
        self.request = bytearray()
        self.frames: bytearray | None = None  # None until the upgrade is done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = transport  # type: ignore[assignment]
        self.remember_certificate(transport)
        super().connection_made(_FramedTransport(transport))  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        if self.frames is None:
            self._upgrade(data)
            return
        self.frames += data
        payload = bytearray()
        while True:
            frame = parse_frame(self.frames)
            if frame is None:
                break
            _, opcode, masked, body, size = frame
            del self.frames[:size]
            if not masked:
                self._fail(1002, "client frames must be masked (RFC 6455 5.1)")
                return
            if opcode in (OPCODES["binary"], OPCODES["continuation"]):
                payload += body
            elif opcode == OPCODES["text"]:
                # MQTT-6.0.0-1: MQTT data is carried in binary frames only; anything else closes.
                if payload:
                    super().data_received(bytes(payload))
                self._fail(1003, "MQTT-6.0.0-1: MQTT over WebSocket uses binary frames only")
                return
            elif opcode == OPCODES["ping"]:
                assert self.raw is not None
                self.raw.write(encode_frame(body, OPCODES["pong"], masked=False))
            elif opcode == OPCODES["close"]:
                if payload:
                    super().data_received(bytes(payload))
                assert self.raw is not None
                with contextlib.suppress(Exception):
                    self.raw.write(encode_frame(body[:2], OPCODES["close"], masked=False))
                self.raw.close()  # connection_lost follows: without DISCONNECT the will goes out
                return
            elif opcode != OPCODES["pong"]:
                self._fail(1002, f"unknown opcode {opcode:#x}")
                return
        if payload:
            super().data_received(bytes(payload))

    def _upgrade(self, data: bytes) -> None:
        assert self.raw is not None
        self.request += data
        if bytes(self.request[:4]) != b"GET "[: len(self.request)]:
            self._refuse_upgrade("400 Bad Request", "expected a WebSocket upgrade (is this a TLS client?)")
            return
        if b"\r\n\r\n" not in self.request:
            if len(self.request) > _MAX_REQUEST:
                self._refuse_upgrade("431 Request Header Fields Too Large")
            return
        head, _, rest = bytes(self.request).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        method, _, target = lines[0].partition(" ")
        path = target.rsplit(" ", 1)[0]
        offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
        if method != "GET" or "websocket" not in headers.get("upgrade", "").lower() or "sec-websocket-key" not in headers:
            self._refuse_upgrade("400 Bad Request")
            return
        if self.listener_config.path and path.split("?")[0] != self.listener_config.path:
            self._refuse_upgrade("404 Not Found")
            return
        if "mqtt" not in offered:
            # MQTT-6.0.0-3/-4: the mqtt subprotocol is how both sides agree to speak MQTT.
            self._refuse_upgrade("400 Bad Request", "the mqtt WebSocket subprotocol must be offered")
            return
        self.raw.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Accept: {accept_key(headers['sec-websocket-key'])}\r\n"
                        "Sec-WebSocket-Protocol: mqtt\r\n\r\n").encode("ascii"))
        self.frames = bytearray()
        self.request = bytearray()
        if rest:
            self.data_received(rest)

    def _refuse_upgrade(self, status: str, why: str = "") -> None:
        assert self.raw is not None
        body = why.encode()
        self.raw.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        self.raw.close()

    def _fail(self, code: int, reason: str) -> None:
        log.info("WebSocket violation by %s: %s", self.peer, reason)
        assert self.raw is not None
        with contextlib.suppress(Exception):
            self.raw.write(encode_frame(struct.pack("!H", code) + reason.encode()[:120], OPCODES["close"], masked=False))
        self.raw.close()  # connection_lost follows; the MQTT connection ends as if the network had failed


async def serve_tls(broker: Broker, listener: ListenerConfig) -> asyncio.AbstractServer:
    loop = asyncio.get_running_loop()
    context = server_context(listener)
    return await loop.create_server(lambda: TlsLayer(TlsConnection(broker, "tls", listener), context),
                                    listener.host, listener.port, reuse_address=True, backlog=4096)


async def serve_ws(broker: Broker, listener: ListenerConfig) -> asyncio.AbstractServer:
    loop = asyncio.get_running_loop()
    if listener.transport == "wss":
        context = server_context(listener)
        factory: Any = lambda: TlsLayer(WebSocketConnection(broker, "wss", listener), context)  # noqa: E731
    else:
        factory = lambda: WebSocketConnection(broker, "ws", listener)  # noqa: E731
    return await loop.create_server(factory, listener.host, listener.port, reuse_address=True, backlog=4096)
