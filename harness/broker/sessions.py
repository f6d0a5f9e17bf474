"""Session state (MQTT 4.1): what outlives a network connection, and the outgoing message flow.

A `Session` owns the subscriptions, the outgoing QoS 1/2 messages in flight, the queue of
messages not yet sent, and the incoming QoS 2 packet identifiers awaiting PUBREL. It talks to its
connection only through the small `Sink` protocol, so the flow logic (windows, queue bounds,
redelivery with DUP, ordering) is testable without sockets.

Memory is bounded per session: at most `window` messages in flight, `queue_limit` queued (QoS 0
is never queued for an offline session, and is the first thing dropped for a slow online one),
at most 65535 incoming QoS 2 identifiers.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from harness.broker.retained import Message
from harness.broker.topics import Subscription

# states of an outgoing QoS > 0 message
AWAIT_ACK = 0  # PUBLISH sent (QoS 1 or 2), waiting for PUBACK / PUBREC
AWAIT_COMP = 1  # PUBREL sent, waiting for PUBCOMP


# Deliveries dropped because a session's queue was full (reported in the shutdown stats).
dropped = [0]

# Sessions whose queue just rose past half full while their client was connected (a subscriber
# slower than its publishers). The connection layer makes the publisher that caused it wait until
# the queue is down to a quarter, or at most a moment: see Connection._process.
congested: list[Session] = []


class Sink(Protocol):
    """The connection side of a session: how a session puts packets on the wire."""

    writable: bool  # False while the transport's buffer is over its high-water mark
    window: int  # how many QoS > 0 messages may be unacknowledged (Receive Maximum)

    def send_publish(self, message: Message, qos: int, retain: bool, packet_id: int | None,
                     dup: bool, sub_ids: tuple[int, ...] | None) -> bool:
        """Write one PUBLISH; False if it was dropped (e.g. over the client's Maximum Packet Size)."""
        ...

    def send_pubrel(self, packet_id: int) -> None: ...


class Outgoing:
    """One delivery to this session: the shared message plus what is particular to this subscriber."""

    __slots__ = ("message", "qos", "retain", "sub_ids", "state")

    def __init__(self, message: Message, qos: int, retain: bool, sub_ids: tuple[int, ...] | None) -> None:
        self.message = message
        self.qos = qos
        self.retain = retain
        self.sub_ids = sub_ids
        self.state = AWAIT_ACK


class Session:
    __slots__ = (
        "client_id", "key", "version", "expiry", "subscriptions", "inflight", "queue", "incoming_qos2",
        "sink", "queue_limit", "dropped", "will", "will_delay", "will_timer", "expiry_timer", "_next_id",
        "username", "extra", "waiters", "high_water", "low_water",
    )

    def __init__(self, client_id: str, key: str, queue_limit: int) -> None:
        self.client_id = client_id
        self.key = key  # identity used for lookup and takeover (the personality may differ from client_id)
        self.version = 4
        # seconds the session outlives its connection; 0 ends it with the connection, None never ends
        self.expiry: int | None = 0
        self.subscriptions: dict[str, Subscription] = {}  # by filter as written (incl. $share/...)
        self.inflight: dict[int, Outgoing] = {}  # packet id -> delivery, in send order
        self.queue: deque[Outgoing] = deque()
        self.incoming_qos2: set[int] = set()
        self.sink: Sink | None = None
        self.queue_limit = queue_limit
        self.high_water = max(queue_limit // 2, 1)
        self.low_water = queue_limit // 4
        self.waiters: list[Any] = []  # publishers' connections waiting for this queue to drain
        self.dropped = 0
        self.will: Any = None  # the will Message, kept until published or discarded
        self.will_delay = 0
        self.will_timer: Any = None
        self.expiry_timer: Any = None
        self._next_id = 1
        self.username: str | None = None
        self.extra: dict[str, Any] = {}  # room for personalities

    @property
    def connected(self) -> bool:
        return self.sink is not None

    def has_state(self) -> bool:
        return bool(self.subscriptions or self.inflight or self.queue or self.incoming_qos2)

    # -- outgoing ---------------------------------------------------------------------------------

    def _new_packet_id(self) -> int:
        # MQTT-2.2.1-4: non-zero and not in use. The window is below 65535, so a free id exists.
        inflight = self.inflight
        pid = self._next_id
        while pid in inflight:
            pid = pid % 65535 + 1
        self._next_id = pid % 65535 + 1
        return pid

    def deliver(self, message: Message, qos: int, retain: bool, sub_ids: tuple[int, ...] | None) -> None:
        """Hand one message to this session: send it now, queue it, or drop it when over the bounds."""
        sink = self.sink
        if sink is None:
            if qos:  # QoS 0 is never stored for an offline client
                self._enqueue(Outgoing(message, qos, retain, sub_ids))
            return
        if qos == 0:
            # QoS 0 takes no window slot, so only a full writer holds it back (bounded by the queue).
            if sink.writable:
                sink.send_publish(message, 0, retain, None, False, sub_ids)
            else:
                self._enqueue(Outgoing(message, 0, retain, sub_ids))
            return
        if self.queue or not sink.writable or len(self.inflight) >= sink.window:
            self._enqueue(Outgoing(message, qos, retain, sub_ids))  # behind older ones: MQTT-4.6.0-6
            return
        self._send_new(sink, Outgoing(message, qos, retain, sub_ids))

    def _enqueue(self, item: Outgoing) -> None:
        if len(self.queue) >= self.queue_limit:
            self.dropped += 1  # bounded memory: the newest message loses
            dropped[0] += 1
            return
        self.queue.append(item)
        if self.sink is not None and len(self.queue) == self.high_water:
            # Signalled once per crossing: a client that stopped acknowledging fills its queue once
            # and then merely loses messages, so it can delay publishers only briefly.
            congested.append(self)

    def _send_new(self, sink: Sink, item: Outgoing) -> None:
        pid = self._new_packet_id()
        self.inflight[pid] = item
        if not sink.send_publish(item.message, item.qos, item.retain, pid, False, item.sub_ids):
            # Too large for this client: dropped as if delivered (MQTT-3.1.2-25).
            del self.inflight[pid]

    def pump(self) -> None:
        """Send queued messages while the connection is writable and the window has room."""
        sink = self.sink
        queue = self.queue
        if sink is None:
            return
        while queue and sink.writable:
            item = queue[0]
            if item.qos and len(self.inflight) >= sink.window:
                # Only QoS 0 can pass a full window; keep QoS>0 order by stopping at the first one.
                return
            queue.popleft()
            if item.message.expired():
                continue  # MQTT-3.3.2-5: expired before delivery started
            if item.qos == 0:
                sink.send_publish(item.message, 0, item.retain, None, False, item.sub_ids)
            else:
                self._send_new(sink, item)
        if self.waiters and len(queue) <= self.low_water:
            self.wake()

    def wake(self) -> None:
        waiters, self.waiters = self.waiters, []
        for conn in waiters:
            conn.wake()

    def puback(self, packet_id: int) -> bool:
        item = self.inflight.get(packet_id)
        if item is None or item.qos != 1:
            return False
        del self.inflight[packet_id]
        self.pump()
        return True

    def pubrec(self, packet_id: int, reason_code: int) -> bool:
        """True if a PUBREL should be sent for this id."""
        item = self.inflight.get(packet_id)
        if item is None or item.qos != 2:
            return False
        if reason_code >= 0x80:
            # MQTT-4.4.0-2 / 4.3.3-9: a failure PUBREC ends the exchange; the id is free again.
            del self.inflight[packet_id]
            self.pump()
            return False
        item.state = AWAIT_COMP
        item.message = _RELEASED  # the payload is no longer needed: only the id is kept
        return True

    def pubcomp(self, packet_id: int) -> bool:
        item = self.inflight.get(packet_id)
        if item is None or item.state != AWAIT_COMP:
            return False
        del self.inflight[packet_id]
        self.pump()
        return True

    def attach(self, sink: Sink) -> None:
        """A connection resumed this session: resend everything unacknowledged (MQTT-4.4.0-1)."""
        self.sink = sink
        for pid, item in list(self.inflight.items()):
            if item.state == AWAIT_COMP:
                sink.send_pubrel(pid)
            elif not sink.send_publish(item.message, item.qos, item.retain, pid, True, item.sub_ids):
                del self.inflight[pid]
        self.pump()

    def detach(self) -> None:
        self.sink = None
        self.wake()
        # QoS 0 waiting for a slow writer is not session state for an offline client.
        if self.queue:
            self.queue = deque(item for item in self.queue if item.qos > 0)

    def clear(self) -> None:
        self.subscriptions.clear()
        self.inflight.clear()
        self.queue.clear()
        self.incoming_qos2.clear()


_RELEASED = Message("", b"", 2)
