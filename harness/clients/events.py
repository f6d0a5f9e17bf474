"""What a connection can report: a packet, an undecodable stream, or the end of the connection."""

from dataclasses import dataclass
from typing import Literal

from harness.wire import Decoded, Malformed


@dataclass(frozen=True)
class PacketReceived:
    decoded: Decoded
    at: float  # monotonic seconds since the connection opened


@dataclass(frozen=True)
class StreamMalformed:
    malformed: Malformed
    at: float


@dataclass(frozen=True)
class Closed:
    how: Literal["fin", "reset", "error"]
    detail: str
    at: float
    # For a TLS failure after the handshake (a TLS 1.3 server refusing our certificate): its reason
    # key from harness.clients.tls (client_cert_required, client_cert_refused, ...).
    tls_reason: str | None = None


Event = PacketReceived | StreamMalformed | Closed
