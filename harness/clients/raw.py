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
from harness.clients.tls import TlsFailure
from harness.clients.transport import Transport
from harness.wire import Decoded, Decoder, Malformed, Version, encode


@dataclass(frozen=True)
class TranscriptEntry:
    direction: Literal["sent", "received"]
    data: bytes
    at: float


def last_sent(transcript: list[TranscriptEntry]) -> float:
    """When, in a transcript's own seconds, its last write was (0.0 when nothing was written)."""
    return next((entry.at for entry in reversed(transcript) if entry.direction == "sent"), 0.0)


def split(data: bytes, frames: int | list[int] | None) -> list[bytes]:
    """`data` in pieces: None -> whole; N -> N nearly equal non-empty pieces; [offsets] -> cut there."""
    if frames is None or not data:
        return [data]
    if isinstance(frames, int):
        count = max(1, min(frames, len(data)))
        size, extra = divmod(len(data), count)
        cuts, at = [], 0
        for index in range(count - 1):
            at += size + (1 if index < extra else 0)
            cuts.append(at)
    else:
        cuts = sorted({int(offset) for offset in frames if 0 < int(offset) < len(data)})
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


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
        self._held = bytearray()  # bytes a `hold` send keeps for the next write

    def _now(self) -> float:
        return time.monotonic() - self._started

    def last_sent_at(self) -> float:
        """time.monotonic() of the last write to the broker (of the opening, before any)."""
        return self._started + last_sent(self.transcript)

    def send_packet(self, packet: object, *, frames: int | list[int] | None = None, hold: bool = False,
                    ws_opcode: str | None = None, **overrides: object) -> bytes:
        data = encode(packet, self.version, **overrides)  # type: ignore[arg-type]
        self.send_bytes(data, frames=frames, hold=hold, ws_opcode=ws_opcode)
        return data

    def send_bytes(self, data: bytes, *, frames: int | list[int] | None = None, hold: bool = False,
                   ws_opcode: str | None = None) -> None:
        """Send `data` in one transport write (over WebSocket: one frame), or as the framing options say.

        `frames`: split into that many writes, or at those byte offsets; `hold`: keep the bytes and
        send them in one write with the next send (several packets in one frame); `ws_opcode`: the
        WebSocket frame type (text, to break MQTT-6.0.0-1 on purpose).
        """
        send = self.transport.send
        if ws_opcode is not None and ws_opcode != "binary":
            from harness.clients.websocket import OPCODES

            frame_sender = getattr(self.transport, "send_frame", None)
            if frame_sender is None:
                raise TypeError(f"a WebSocket {ws_opcode} frame needs a ws:// or wss:// connection")
            send = lambda payload: frame_sender(payload, OPCODES[ws_opcode])  # noqa: E731
        data = bytes(self._held) + data
        self._held.clear()
        if hold:
            self._held += data
            return
        for part in split(data, frames):
            self.transcript.append(TranscriptEntry("sent", part, self._now()))
            try:
                send(part)
            except TlsFailure as exc:
                self._mark_closed("error", str(exc), exc.reason)
                return
            except OSError as exc:
                # The broker may already have closed: that is an observation, reported by the next read.
                self._mark_closed("reset" if isinstance(exc, ConnectionResetError) else "error", str(exc))
                return

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
        except TlsFailure as exc:
            self._mark_closed("error", str(exc), exc.reason)
            return
        except OSError as exc:
            self._mark_closed("error", str(exc))
            return
        if not data:
            # A WebSocket transport knows more: the close frame's code, or that there was none.
            self._mark_closed("fin", getattr(self.transport, "close_detail", "") or "connection closed by peer")
            # Close our side too, as any client would: some brokers (mosquitto over wss) finish the
            # connection, and publish its will, only when the client's side is gone as well.
            self.transport.close()
            return
        self.transcript.append(TranscriptEntry("received", data, self._now()))
        for item in self._decoder.feed(data):
            if isinstance(item, Decoded):
                self._pending.append(PacketReceived(item, self._now()))
            elif isinstance(item, Malformed):
                self._pending.append(StreamMalformed(item, self._now()))

    def _mark_closed(self, how: Literal["fin", "reset", "error"], detail: str, tls_reason: str | None = None) -> None:
        if self.closed is None:
            self.closed = Closed(how, detail, self._now(), tls_reason)
            self._pending.append(self.closed)

    def await_peer_close(self, timeout: float) -> bool:
        """Read (and drop) what arrives until the broker closes the connection, at most `timeout`
        seconds; whether it did."""
        deadline = time.monotonic() + timeout
        while self.closed is None and (remaining := deadline - time.monotonic()) > 0:
            self.next_event(remaining)
        return self.closed is not None

    def close(self, abort: bool = False) -> None:
        self._closed_by_us = True
        self.transport.close(abort=abort)
