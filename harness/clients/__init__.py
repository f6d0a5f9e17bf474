"""Clients that talk to the broker under test and report what happens as events."""

from harness.clients.addressing import TlsMaterial, apply_tls_overrides
from harness.clients.events import Closed, Event, PacketReceived, StreamMalformed
from harness.clients.raw import RawClient
from harness.clients.tls import TlsFailure, TlsOptions
from harness.clients.transport import (
    Address,
    HandshakeFailed,
    TcpTransport,
    Transport,
    open_transport,
    parse_address,
)

__all__ = [
    "Address", "Closed", "Event", "HandshakeFailed", "PacketReceived", "RawClient", "StreamMalformed", "TcpTransport",
    "TlsFailure", "TlsMaterial", "TlsOptions", "Transport", "apply_tls_overrides", "open_transport", "parse_address",
]
