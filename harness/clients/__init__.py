"""Clients that talk to the broker under test and report what happens as events."""

from harness.clients.events import Closed, Event, PacketReceived, StreamMalformed
from harness.clients.raw import RawClient
from harness.clients.transport import TcpTransport, Transport

__all__ = ["Closed", "Event", "PacketReceived", "RawClient", "StreamMalformed", "TcpTransport", "Transport"]
