"""The raw-socket client: sends any bytes, decodes everything the broker sends, reports it as events.

It is pull-based and single-threaded: bytes are read from the socket only when the scenario asks
for the next event, so a connection costs no thread and events keep the order they arrived in. The
kernel buffers whatever arrives in between. Every byte in both directions is kept in `transcript`,
which is the evidence a failure message or a packet capture is built from.
"""

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from harness.clients.events import Closed, Event, PacketReceived, StreamMalformed
from harness.clients.transport import Transport
from harness.wire import Decoded, Decoder, Malformed, Version, encode


@dataclass(frozen=True)
class TranscriptEntry:
    direction: Literal["sent", "received"]
    data: bytes
    at: float


@dataclass
class RawClient:
    transport: Transport
    version: Version
    name: str = "main"
    max_packet_size: int | None = None
    transcript: list[TranscriptEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._decoder = Decoder(self.version, role="client", max_packet_size=self.max_packet_size)
        self._pending: deque[Event] = deque()
        self._started = time.monotonic()
        self.closed: Closed | None = None
        self._closed_by_us = False

    def _now(self) -> float:
        return time.monotonic() - self._started

    def send_packet(self, packet: object, **overrides: object) -> bytes:
        data = encode(packet, self.version, **overrides)  # type: ignore[arg-type]
        self.send_bytes(data)
        return data

    def send_bytes(self, data: bytes) -> None:
        self.transcript.append(TranscriptEntry("sent", data, self._now()))
        try:
            self.transport.send(data)
        except OSError as exc:
            # The broker may already have closed: that is an observation, reported by the next read.
            self._mark_closed("reset" if isinstance(exc, ConnectionResetError) else "error", str(exc))

    def next_event(self, timeout: float) -> Event | None:
        """The next event, or None if nothing arrived within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not self._pending:
            if self.closed is not None:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._read_once(remaining)
        return self._pending.popleft()

    def _read_once(self, timeout: float) -> None:
        try:
            data = self.transport.recv(timeout)
        except TimeoutError:  # also socket.timeout, an alias since Python 3.10
            return
        except ConnectionResetError as exc:
            self._mark_closed("reset", str(exc) or "connection reset by peer")
            return
        except OSError as exc:
            self._mark_closed("error", str(exc))
            return
        if not data:
            self._mark_closed("fin", "connection closed by peer")
            return
        self.transcript.append(TranscriptEntry("received", data, self._now()))
        for item in self._decoder.feed(data):
            if isinstance(item, Decoded):
                self._pending.append(PacketReceived(item, self._now()))
            elif isinstance(item, Malformed):
                self._pending.append(StreamMalformed(item, self._now()))

    def _mark_closed(self, how: Literal["fin", "reset", "error"], detail: str) -> None:
        if self.closed is None:
            self.closed = Closed(how, detail, self._now())
            self._pending.append(self.closed)

    def close(self, abort: bool = False) -> None:
        self._closed_by_us = True
        self.transport.close(abort=abort)
