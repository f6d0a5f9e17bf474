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


Event = PacketReceived | StreamMalformed | Closed
