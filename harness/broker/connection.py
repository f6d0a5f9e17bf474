"""One client connection: the MQTT 3.1 / 3.1.1 / 5.0 protocol state machine over an asyncio transport.

Bytes go into `harness.wire.Decoder` (role "server"); every packet it returns is checked against its
findings first. A fatal finding, and every other violation the spec says to close on, ends the
connection: 5.0 gets a CONNACK (before CONNACK) or DISCONNECT with 0x81 Malformed Packet / 0x82
Protocol Error (or the specific code) first, 3.x is just closed (MQTT-4.8.0-1, 5.0 MQTT-4.13.1-1).

Output is appended to a per-connection list and written once per event by `Broker.flush()`.
Backpressure: when the transport's buffer passes its high-water mark the connection stops
reading from its client (a client that does not read cannot make the broker buffer without bound)
and the session queues (bounded) instead of writing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from typing import Any

from harness.broker.auth import ENHANCED_METHODS, AuthStep, EnhancedAuth
from harness.broker.core import Broker
from harness.broker.personality import ClientInfo, Decision, Refusal
from harness.broker.retained import FORWARDED, Message
from harness.broker.sessions import Session, congested
from harness.broker.topics import Subscription, parse_shared, topic_problem
from harness.wire import (
    Auth,
    Connack,
    Connect,
    Decoded,
    Decoder,
    Disconnect,
    Finding,
    Malformed,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
    Version,
    encode,
)

log = logging.getLogger("harness.broker")

NEW, AUTHENTICATING, CONNECTED, CLOSED = range(4)
MALFORMED, PROTOCOL_ERROR = 0x81, 0x82

# Findings the decoder leaves non-fatal (a server may choose) that the strict broker closes on:
# MQTT-4.8.0-1 (3.1.1) and MQTT-4.13.1-1 (5.0) make every protocol violation a reason to close.
ESCALATED_RULES = frozenset({
    "MQTT-3.3.1-2",  # DUP 1 on QoS 0
    "MQTT-4.7.1-1", "MQTT-4.7.1-2", "MQTT-4.7.1-3",  # wildcard syntax in a topic filter
    "MQTT-4.7.3-1",  # empty topic filter
    "MQTT-4.8.2-1", "MQTT-4.8.2-2",  # shared subscription syntax
    "MQTT-3.8.3-4",  # 3.1: requested QoS 3 "should" close
})

# 5.0 spec wording decides Malformed (0x81) vs Protocol Error (0x82): property misuse and values
# ("It is a Protocol Error to..."), packet types the client may not send, No Local on a share.
_PROTOCOL_ERROR_RULES = ("§2.2.2.2", "§3.", "§2.1.2", "MQTT-3.3.2-8", "MQTT-3.8.3-4", "MQTT-3.3.4-6",
                         "MQTT-3.3.2-14", "MQTT-4.8.2")

# Packets handled per connection before the loop serves other connections (see _process).
FAIRNESS_QUANTUM = 64
CONGESTION_WAIT_S = 0.1
# Reasons to stop reading from a client (bits of Connection.paused).
WRITER_FULL, BACKLOG = 1, 2

# Grace for a client that does not read its last packets before we close: then abort.
CLOSE_GRACE_S = 2.0


def reason_for(finding: Finding) -> int:
    if finding.rule == "MQTT-3.2.2-15" or "maximum packet size" in finding.message:
        return 0x95  # Packet too large
    if finding.rule.startswith(_PROTOCOL_ERROR_RULES):
        return PROTOCOL_ERROR
    return MALFORMED


def packet_level_is_5(raw: bytes) -> bool:
    """Whether a CONNECT's protocol level byte is 5 (read past the header and the protocol name)."""
    index = 1
    while index < len(raw) and raw[index] & 0x80:
        index += 1
    index += 1
    if index + 2 > len(raw):
        return False
    level_at = index + 2 + (raw[index] << 8 | raw[index + 1])
    return level_at < len(raw) and raw[level_at] == 5


def _patch_packet_id(data: bytes, offset: int, packet_id: int, dup: bool) -> bytes:
    first = data[0] | 0x08 if dup else data[0]
    return b"%c%s%c%c%s" % (first, data[1:offset], packet_id >> 8, packet_id & 0xFF, data[offset + 2 :])


def _packet_id_offset(data: bytes) -> int:
    """Where the packet identifier sits in a PUBLISH we encoded (after the header and topic)."""
    index = 1
    while data[index] & 0x80:
        index += 1
    index += 1
    topic_length = data[index] << 8 | data[index + 1]
    return index + 2 + topic_length


class Connection(asyncio.Protocol):
    def __init__(self, broker: Broker, listener: str = "tcp") -> None:
        self.broker = broker
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.state = NEW
        self.version = 4  # 3.1.1 until the CONNECT says otherwise
        self.v5 = False
        limits = broker.limits
        self.decoder = Decoder(None, role="server", max_packet_size=limits.max_packet_size)
        self.session: Session | None = None
        self.client: ClientInfo | None = None
        self.out: list[bytes] = []
        self.writable = True
        self.paused = 0
        self.backlog: list[Decoded | Malformed] = []
        self.backlog_at = 0
        self.waiting: asyncio.TimerHandle | None = None
        self.window = limits.max_inflight
        self.peer: Any = None
        self.last_rx = 0.0
        self.keep_alive = 0.0  # seconds of silence tolerated (1.5 x Keep Alive), 0: none
        self.timer: asyncio.TimerHandle | None = None
        self.close_timer: asyncio.TimerHandle | None = None
        # 5.0 per-connection state
        self.max_out: int | None = None  # the client's Maximum Packet Size
        self.problem_info = True  # Request Problem Information
        self.in_aliases: dict[int, str] = {}
        self.out_aliases: dict[str, int] = {}
        self.out_alias_max = 0
        self.auth_method: str | None = None
        self.auth_exchange: EnhancedAuth | None = None
        self.pending_connect: Connect | None = None
        self.connect_expiry = 0
        self.share_group: str | None = None  # Personality.shared_client: subscriptions join this group
        # Traffic, for ClientInfo.traffic at close: MQTT bytes and PUBLISH packets in each direction.
        self.read_bytes = self.write_bytes = self.read_msgs = self.write_msgs = 0

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio.Transport subclasses
        broker = self.broker
        broker.sockets += 1
        self.peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(high=broker.limits.write_buffer_high)
        # Sockets beyond max_connections (plus room for CONNECTs in progress, which may yet be
        # refused with a CONNACK) are closed at once: the cheapest refusal there is.
        if broker.sockets > broker.limits.max_connections + 64:
            log.warning("connection from %s refused: %d sockets open", self.peer, broker.sockets)
            self.state = CLOSED
            transport.abort()
            return
        self.last_rx = time.monotonic()
        self.timer = asyncio.get_running_loop().call_later(broker.limits.connect_timeout, self._connect_timeout)

    def data_received(self, data: bytes) -> None:
        if self.state == CLOSED:
            return
        if self.state == NEW and not self.broker.personality.serves(self.listener):
            # A transport the platform does not offer (Itron: TLS only): the listener exists so the
            # harness can check readiness and the refusal, but it answers nothing and closes.
            log.info("connection from %s over %s refused: the platform does not offer it", self.peer, self.listener)
            self._close(will=False, reason=f"{self.listener} not offered")
            return
        self.last_rx = time.monotonic()
        self.read_bytes += len(data)
        events = self.decoder.feed(data)
        if self.backlog:
            self.backlog.extend(events)  # only possible if the transport delivered data while paused
            return
        self._process(events, 0)

    def _process(self, events: list[Decoded | Malformed], start: int) -> None:
        """Handle up to FAIRNESS_QUANTUM packets, then let the loop serve other connections first.

        One read can hold thousands of packets; handling them all at once would let one busy
        publisher starve everyone else (including the subscribers whose acknowledgements free
        the in-flight windows its messages wait for).
        """
        end = min(start + FAIRNESS_QUANTUM, len(events))
        congested.clear()  # only congestion caused by this connection's packets counts
        try:
            for index in range(start, end):
                if self.state == CLOSED:
                    break
                if congested:
                    # A subscriber fell behind this publisher: wait for it to catch up instead of
                    # filling (then overflowing) its queue. Bounded by CONGESTION_WAIT_S, and only
                    # once per crossing of its half-full mark, so a stuck client cannot stall anyone.
                    end = index
                    break
                event = events[index]
                if type(event) is Malformed:
                    self._violation(event.finding)
                    break
                if event.findings and self._findings(event):  # type: ignore[union-attr]
                    break
                packet = event.packet  # type: ignore[union-attr]
                if self.state != CONNECTED:
                    self._before_connected(event)  # type: ignore[arg-type]
                elif type(packet) is Publish:
                    self._on_publish(packet, event.raw)  # type: ignore[union-attr]
                else:
                    _HANDLERS[type(packet)](self, packet)
        except Exception:
            # MQTT-4.8.0-2: an error while processing closes this connection, never the broker.
            log.exception("internal error on connection from %s; closing it", self.peer)
            self._close(will=True, code=0x83, reason="implementation specific error")
        if end < len(events) and self.state != CLOSED:
            self.backlog = events
            self.backlog_at = end
            self._pause(BACKLOG, True)
            loop = asyncio.get_running_loop()
            waiting_for = [session for session in congested if session.sink is not self]
            congested.clear()
            if waiting_for:
                for session in waiting_for:
                    session.waiters.append(self)
                self.waiting = loop.call_later(CONGESTION_WAIT_S, self.wake)
            else:
                loop.call_soon(self._continue)
        elif self.backlog:
            self.backlog = []
            self._pause(BACKLOG, False)
        self.broker.flush()

    def wake(self) -> None:
        """A queue this publisher waited for drained (or the wait timed out): carry on."""
        if self.waiting is not None:
            self.waiting.cancel()
            self.waiting = None
            asyncio.get_running_loop().call_soon(self._continue)

    def _continue(self) -> None:
        if self.state == CLOSED:
            self.backlog = []
            return
        self._process(self.backlog, self.backlog_at)

    def _pause(self, reason: int, on: bool) -> None:
        """Stop reading while any reason holds: a full writer, or unprocessed packets."""
        before = self.paused
        self.paused = before | reason if on else before & ~reason
        transport = self.transport
        if transport is None or self.state == CLOSED or bool(before) == bool(self.paused):
            return
        if self.paused:
            transport.pause_reading()
        else:
            transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.broker.sockets -= 1
        if self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = None
        if self.state != CLOSED:
            # Closed by the network or the client without DISCONNECT: the will goes out.
            self._close(will=True, reason="connection lost" if exc is None else f"connection lost: {exc}")
            self.broker.flush()
        self.out.clear()

    def pause_writing(self) -> None:
        self.writable = False
        self._pause(WRITER_FULL, True)

    def resume_writing(self) -> None:
        self.writable = True
        if self.state == CLOSED or self.transport is None:
            return
        self._pause(WRITER_FULL, False)
        if self.session is not None:
            self.session.pump()
        self.broker.flush()

    # -- output ----------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if not self.out:
            self.broker.dirty.append(self)
        self.out.append(data)

    def flush(self) -> None:
        out = self.out
        if out and self.transport is not None and not self.transport.is_closing():
            data = out[0] if len(out) == 1 else b"".join(out)
            self.write_bytes += len(data)
            self.transport.write(data)
            out.clear()

    def send(self, packet: Any) -> None:
        """Encode and queue one non-PUBLISH packet, within the client's Maximum Packet Size."""
        if self.v5 and hasattr(packet, "properties"):
            props = packet.properties
            if props and not self.problem_info and type(packet) not in (Connack, Disconnect):
                # MQTT-3.1.2-29: no Reason String / User Property unless the client asked.
                props.pop("reason_string", None)
                props.pop("user_property", None)
            data = encode(packet, Version.V5)
            if self.max_out is not None and len(data) > self.max_out:
                # MQTT-3.2.2-19/-20 and friends: drop the optional properties, never the packet.
                props.pop("reason_string", None)
                props.pop("user_property", None)
                data = encode(packet, Version.V5)
                if len(data) > self.max_out:
                    return
        else:
            data = encode(packet, Version(self.version))
        self._write(data)

    def send_ack(self, kind: type, packet_id: int) -> None:
        """A success PUBACK / PUBREC / PUBREL / PUBCOMP: the codec's bytes for it, packet id patched in."""
        template = _ACK_TEMPLATES.get(kind)
        if template is None:
            # 3.x and the 5.0 short form (reason 0, no properties) are the same four bytes.
            template = _ACK_TEMPLATES[kind] = encode(kind(packet_id=0), Version.V311)[:-2]
        self._write(template + packet_id.to_bytes(2, "big"))

    def send_publish(self, message: Message, qos: int, retain: bool, packet_id: int | None, dup: bool,
                     sub_ids: tuple[int, ...] | None) -> bool:
        v5 = self.v5
        if not v5 or (message.properties is None and message.expires_at is None and sub_ids is None
                      and not self.out_alias_max):
            # Common case: the same bytes for every subscriber; encode once per message and variant.
            cache = message.encoded
            if cache is None:
                cache = message.encoded = {}
            key = (v5, qos, retain)
            data = cache.get(key)
            if data is None:
                data = encode(Publish(topic=message.topic, payload=message.payload, qos=qos, retain=retain,
                                      packet_id=1 if qos else None), Version.V5 if v5 else Version.V311)
                cache[key] = data
                if qos:
                    cache[(v5, qos, retain, "offset")] = _packet_id_offset(data)  # type: ignore[assignment]
            if qos:
                data = _patch_packet_id(data, cache[(v5, qos, retain, "offset")], packet_id or 0, dup)  # type: ignore[arg-type]
            if self.max_out is not None and len(data) > self.max_out:
                return False
            self.write_msgs += 1
            self._write(data)
            return True
        props: dict[str, Any] = dict(message.properties) if message.properties else {}
        if message.expires_at is not None:
            props["message_expiry_interval"] = message.remaining_expiry()  # MQTT-3.3.2-6
        if sub_ids:
            props["subscription_identifier"] = list(sub_ids)
        topic = message.topic
        new_alias = 0
        if self.out_alias_max:
            alias = self.out_aliases.get(topic)
            if alias is not None:
                props["topic_alias"] = alias
                topic = ""
            elif len(self.out_aliases) < self.out_alias_max:  # MQTT-3.2.2-... never above the client's max
                new_alias = props["topic_alias"] = len(self.out_aliases) + 1
        data = encode(Publish(topic=topic, payload=message.payload, qos=qos, retain=retain, dup=dup,
                              packet_id=packet_id, properties=props), Version.V5)
        if self.max_out is not None and len(data) > self.max_out:
            return False  # MQTT-3.1.2-25: dropped as if delivered
        if new_alias:
            self.out_aliases[message.topic] = new_alias
        self.write_msgs += 1
        self._write(data)
        return True

    def send_pubrel(self, packet_id: int) -> None:
        self.send_ack(Pubrel, packet_id)

    # -- closing ---------------------------------------------------------------------------------

    def _close(self, *, will: bool, code: int | None = None, reason: str = "", connack: int | None = None) -> None:
        """Close once: optional CONNACK (refusal) or 5.0 DISCONNECT, then the session is detached."""
        if self.state == CLOSED:
            return
        was = self.state
        self.state = CLOSED
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if connack is not None:
            props = {"reason_string": reason} if self.v5 and reason else {}
            self.send(Connack(reason_code=connack, properties=props))
        elif code is not None and self.v5 and was == CONNECTED:
            props = {"reason_string": reason} if reason else {}
            self.send(Disconnect(reason_code=code, properties=props))
        session = self.session
        if session is not None and self.broker.connections.get(session.key) is self:
            self.broker.connection_closed(session, will)
        if was == CONNECTED and self.client is not None:
            self.client.traffic = {"read_bytes": self.read_bytes, "write_bytes": self.write_bytes,
                                   "read_msgs": self.read_msgs, "write_msgs": self.write_msgs}
            self.broker.personality.on_disconnected(self.client, reason or "closed")
        log.debug("closed %s (%s)", self.client.client_id if self.client else self.peer, reason or "no reason")
        transport = self.transport
        if transport is not None and not transport.is_closing():
            self.flush()
            transport.close()  # after the buffered bytes are written
            self.close_timer = asyncio.get_running_loop().call_later(CLOSE_GRACE_S, transport.abort)

    def _violation(self, finding: Finding) -> None:
        log.info("protocol violation by %s: %s", self._who(), finding)
        self._refuse_or_disconnect(reason_for(finding), finding.message)

    def _refuse_or_disconnect(self, code: int, reason: str) -> None:
        """Close for a protocol violation: 5.0 says why (CONNACK before, DISCONNECT after), 3.x just closes."""
        if self.state in (NEW, AUTHENTICATING):
            self._close(will=False, connack=code if self.v5 else None, reason=reason)
        else:
            self._close(will=True, code=code, reason=reason)

    def takeover(self) -> None:
        """Another connection claimed this session (MQTT-3.1.4-2; 5.0 MQTT-3.1.4-3 with 0x8E)."""
        self._close(will=True, code=0x8E, reason="session taken over")

    # Hooks for listeners that know a client certificate (transports.py: TLS, wss); plain TCP has none.
    def check_certificate(self, info: ClientInfo) -> Refusal | None:
        return None

    def certificate_authenticates(self, info: ClientInfo) -> bool:
        return False

    def shutdown(self) -> None:
        self._close(will=False, code=0x8B, reason="server shutting down")

    def _who(self) -> str:
        return f"{self.client.client_id!r} ({self.peer})" if self.client else str(self.peer)

    # -- timers ----------------------------------------------------------------------------------

    def _connect_timeout(self) -> None:
        self.timer = None
        if self.state in (NEW, AUTHENTICATING):
            log.info("no CONNECT from %s within %.1f s; closing", self.peer, self.broker.limits.connect_timeout)
            self._close(will=False, reason="connect timeout")
            self.broker.flush()

    def _keep_alive_check(self) -> None:
        self.timer = None
        if self.state != CONNECTED:
            return
        idle = time.monotonic() - self.last_rx
        if idle >= self.keep_alive:
            # MQTT-3.1.2-24 / 5.0 MQTT-3.1.2-22: treated as a network failure, so the will goes out.
            log.info("keep alive timeout for %s after %.1f s", self._who(), idle)
            self._close(will=True, code=0x8D, reason="keep alive timeout")
            self.broker.flush()
            return
        self.timer = asyncio.get_running_loop().call_later(self.keep_alive - idle, self._keep_alive_check)

    # -- findings --------------------------------------------------------------------------------

    def _findings(self, event: Decoded) -> bool:
        """Act on the decoder's findings; True if the connection was closed."""
        if self.state == NEW and type(event.packet) is Connect:
            return False  # the CONNECT handler checks version first, then findings
        for finding in event.findings:
            if finding.fatal or finding.rule in ESCALATED_RULES:
                self._violation(finding)
                return True
        for finding in event.findings:
            log.debug("tolerated finding from %s: %s", self._who(), finding)
        return False

    # -- before CONNACK --------------------------------------------------------------------------

    def _before_connected(self, event: Decoded) -> None:
        packet = event.packet
        kind = type(packet)
        if self.state == NEW:
            if kind is Connect:
                self._on_connect(packet, event)  # type: ignore[arg-type]
                return
            # MQTT-3.1.0-1 binds the client; the server closes (MQTT-4.8.0-1), or a personality answers.
            refusal = self.broker.personality.before_connect(int(packet.TYPE))
            if refusal is not None:
                self._close(will=False, connack=refusal.code5 if self.v5 else refusal.code, reason=refusal.reason)
            else:
                log.info("first packet from %s is %s, not CONNECT; closing", self.peer, packet.TYPE.name)
                self._close(will=False, reason="first packet not CONNECT")
            return
        # AUTHENTICATING: only AUTH continues the exchange (5.0 §4.12).
        if kind is Auth:
            self._on_auth_connecting(packet)  # type: ignore[arg-type]
        elif kind is Disconnect:
            self._close(will=False, reason="client disconnected during authentication")
        else:
            self._refuse_or_disconnect(PROTOCOL_ERROR, f"{packet.TYPE.name} during authentication")

    def _refuse(self, refusal: Refusal) -> None:
        """Refuse the CONNECT with CONNACK (MQTT-3.2.2-5 / 5.0 MQTT-3.2.2-7) and close."""
        log.info("CONNECT from %s refused: %s (0x%02X)", self.peer, refusal.reason,
                 refusal.code5 if self.v5 else refusal.code)
        if self.client is not None:
            self.broker.personality.on_refused(self.client, refusal)
        self._close(will=False, connack=refusal.code5 if self.v5 else refusal.code, reason=refusal.reason)

    def _on_connect(self, packet: Connect, event: Decoded) -> None:
        broker = self.broker
        limits = broker.limits
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        # Protocol name and level first: a wrong one gets CONNACK 0x01 (MQTT-3.1.2-2), in 3.1.1 form
        # since the client's version is unknown; an unknown name is closed on (MQTT-3.1.2-1).
        name = packet.protocol_name
        level = packet.protocol_level
        if level is not None or name is not None:
            actual = name if name is not None else "MQTT"
            if actual in ("MQTT", "MQIsdp"):
                # A known name with a level it does not go with, or an unknown level. A level-5
                # client reads a 5.0 CONNACK (0x84, 5.0 MQTT-3.1.2-1); any other a 3.1.1 one (0x01).
                log.info("CONNECT from %s with protocol %r level %s: refused", self.peer, actual, level)
                if level is None and self.decoder.version is None and packet_level_is_5(event.raw):
                    self.version, self.v5 = 5, True
                    self._close(will=False, connack=0x84, reason="unsupported protocol version")
                else:
                    self._close(will=False, connack=1, reason="unsupported protocol version")
            else:
                log.info("CONNECT from %s with unknown protocol name %r; closing", self.peer, name)
                self._close(will=False, reason="unknown protocol name")
            return
        version = int(self.decoder.version or Version.V311)
        self.version = version
        self.v5 = v5 = version == 5
        for finding in event.findings:
            if finding.fatal:
                # 5.0 may say why with a CONNACK (§4.13); 3.x closes without one (MQTT-3.1.4-1).
                self._violation(finding)
                return
        refusal = broker.personality.refuse_version(version)
        if refusal is not None:
            # A platform refusing a version does not speak it: it answers in the 3.1.1 CONNACK form.
            self.version, self.v5 = int(Version.V311), False
            self._refuse(refusal)
            return
        if version not in limits.protocols:
            log.info("CONNECT from %s with protocol level %s: not among limits.protocols; refused", self.peer, version)
            self._close(will=False, connack=0x84 if v5 else 1, reason="unsupported protocol version")
            return
        props: dict[str, Any] = packet.properties if v5 and isinstance(packet.properties, dict) else {}
        client_id = packet.client_id
        username = packet.username
        if not isinstance(client_id, str) or (username is not None and not isinstance(username, str)):
            self._close(will=False, connack=MALFORMED if v5 else None, reason="invalid UTF-8")
            return
        info = ClientInfo(client_id=client_id, version=version, username=username, password=packet.password,
                          clean_start=packet.clean_session, keep_alive=packet.keep_alive, address=self.peer,
                          properties=props, will_topic=packet.will.topic if packet.will else None,
                          transport=self.listener)
        self.client = info
        if v5:
            self.max_out = props.get("maximum_packet_size")
            self.problem_info = props.get("request_problem_information", 1) == 1
            self.out_alias_max = props.get("topic_alias_maximum", 0)
        refusal = broker.personality.check_connect(info) or self.check_certificate(info)
        if refusal is not None:
            self._refuse(refusal)
            return

        # ClientId (MQTT-3.1.3-5..-9; 3.1: 1 to 23 characters, else return code 2).
        assigned = None
        if version == 3:
            if not 1 <= len(client_id) <= 23:
                self._refuse(Refusal(2, 0x85, "3.1 ClientId must be 1 to 23 characters"))
                return
        elif not client_id:
            if version == 4 and not packet.clean_session:
                self._refuse(Refusal(2, 0x85, "empty ClientId requires CleanSession 1"))  # MQTT-3.1.3-8
                return
            if not broker.config.auth.allow_zero_length_client_id:
                self._refuse(Refusal(2, 0x85, "empty ClientId not allowed"))
                return
            client_id = assigned = "auto-" + uuid.uuid4().hex  # MQTT-3.1.3-6, unique
            info.client_id = client_id
        if assigned is None and len(client_id) > limits.max_client_id_length:  # the limit is on what clients send
            self._refuse(Refusal(2, 0x85, f"ClientId longer than {limits.max_client_id_length}"))
            return

        # Will: capabilities (5.0 MQTT-3.2.2-12/-13; 3.x has no code for it, so it closes) and syntax.
        will = packet.will
        if will is not None:
            if not isinstance(will.topic, str) or topic_problem(will.topic):
                problem = topic_problem(will.topic) if isinstance(will.topic, str) else "invalid UTF-8"
                self._close(will=False, connack=MALFORMED if v5 else None, reason=f"will topic: {problem}")
                return
            if will.qos > limits.maximum_qos:
                self._close(will=False, connack=0x9B if v5 else None, reason="will QoS not supported")
                return
            if will.retain and not limits.retain_available:
                self._close(will=False, connack=0x9A if v5 else None, reason="retain not supported")
                return

        # Authentication: 5.0 enhanced (AUTH exchange) or user name / password.
        if v5 and "authentication_method" in props:
            method = props["authentication_method"]
            if method not in broker.config.auth.methods or method not in ENHANCED_METHODS:
                self._refuse(Refusal(5, 0x8C, f"authentication method {method!r} not supported"))  # MQTT-4.12.0-1
                return
            self.auth_method = method
            self.auth_exchange = ENHANCED_METHODS[method](broker.authenticator)
            step = self.auth_exchange.start(props.get("authentication_data"), username)
            self.pending_connect = packet
            self._auth_step(step, assigned)
            return
        verdict = "ok" if broker.personality.authenticated(info) or self.certificate_authenticates(info) \
            else broker.authenticator.check(username, packet.password)
        if verdict == "bad_credentials":
            self._refuse(Refusal(4, 0x86, "bad user name or password"))
            return
        if verdict == "anonymous":
            self._refuse(Refusal(5, 0x87, "not authorized"))
            return
        self._accept(packet, info, assigned, None)

    def _auth_step(self, step: AuthStep, assigned: str | None = None) -> None:
        """Act on one move of an enhanced authentication during CONNECT."""
        if step.status == "continue":
            self.state = AUTHENTICATING
            self.send(self._challenge(step))
            if self.timer is None:
                self.timer = asyncio.get_running_loop().call_later(self.broker.limits.connect_timeout,
                                                                   self._connect_timeout)
            return
        if step.status == "failure":
            self._refuse(Refusal(5, 0x87, "authentication failed"))  # MQTT-4.12.0-4
            return
        packet = self.pending_connect
        assert packet is not None and self.client is not None
        self.pending_connect = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if step.username is not None:
            self.client.username = step.username
        if assigned is None and not packet.client_id:
            assigned = self.client.client_id
        self._accept(packet, self.client, assigned, step.data)

    def _challenge(self, step: AuthStep) -> Auth:
        """AUTH 0x18 with the method's challenge. Its Reason String and User Property are optional:
        send() drops them when the client did not ask for problem information or when they would
        exceed its Maximum Packet Size (MQTT-3.15.2-2/-3)."""
        return Auth(reason_code=0x18, properties={
            "authentication_method": self.auth_method, "authentication_data": step.data or b"",
            "reason_string": f"{self.auth_method} challenge: answer with the method's response to the data",
            "user_property": [("challenge", "1")],
        })

    def _on_auth_connecting(self, packet: Auth) -> None:
        props = packet.properties if isinstance(packet.properties, dict) else {}
        if packet.reason_code != 0x18 or props.get("authentication_method") != self.auth_method:
            self._refuse_or_disconnect(PROTOCOL_ERROR, "AUTH must continue with the CONNECT's method")
            return
        assert self.auth_exchange is not None
        self._auth_step(self.auth_exchange.step(props.get("authentication_data")))

    def _accept(self, packet: Connect, info: ClientInfo, assigned: str | None, auth_data: bytes | None) -> None:
        broker = self.broker
        limits = broker.limits
        v5 = self.v5
        version = self.version
        client_id = info.client_id
        props = info.properties
        key = broker.personality.client_key(client_id, version)
        shared = broker.personality.shared_client(info)
        if shared is not None:
            # Several connections hold this ClientId: each its own session, none taken over; the
            # subscriptions join one share group (NUL-prefixed: no `$share/NAME/` can collide).
            key = f"{key}\x00{uuid.uuid4().hex}"
            self.share_group = "\x00" + shared
        existing = broker.connections.get(key)
        if existing is None and len(broker.connections) >= limits.max_connections:
            self._refuse(Refusal(3, 0x97, "maximum number of connections reached"))
            return
        if not broker.session_capacity_left(key):
            self._refuse(Refusal(3, 0x97, "maximum number of sessions reached"))
            return
        info.acl = broker.acl.for_client(info.username, client_id)
        will = packet.will
        if will is not None and broker.personality.authorize_publish(
                info, will.topic, will.qos, will.retain) is Decision.DENY:  # type: ignore[arg-type]
            # Otherwise an abnormal close would publish where the ACL forbids the client to.
            self._refuse(Refusal(5, 0x87, f"not authorized to publish the will to {will.topic}"))
            return
        if existing is not None and existing is not self:
            if existing.client is not None and not broker.personality.takeover(info, existing.client):
                self._refuse(Refusal(2, 0x85, "ClientId in use"))
                return
            log.info("client %r taken over by a new connection from %s", client_id, self.peer)
            existing.takeover()
        session, present = broker.take_session(key, client_id, packet.clean_session)
        session.version = version
        session.username = info.username
        if v5:
            expiry = props.get("session_expiry_interval", 0)
            session.expiry = None if expiry == 0xFFFFFFFF else expiry
            self.connect_expiry = expiry
            self.window = min(props.get("receive_maximum", 65535), limits.max_inflight)
        else:
            session.expiry = 0 if packet.clean_session else None
        if version == 3:
            present = False  # 3.1 has no Session Present flag
        if will is not None:
            wprops = will.properties if isinstance(will.properties, dict) else {}
            kept = {k: wprops[k] for k in FORWARDED if k in wprops} if v5 else None
            message = Message(will.topic, will.payload, will.qos, will.retain, kept, origin=client_id)  # type: ignore[arg-type]
            if "message_expiry_interval" in wprops:
                message.expires_at = float(wprops["message_expiry_interval"])  # made absolute on publication
            session.will = message
            session.will_delay = wprops.get("will_delay_interval", 0) if v5 else 0
        else:
            session.will = None
        keep_alive = packet.keep_alive
        connack_props: dict[str, Any] = {}
        if v5:
            if limits.server_keep_alive is not None:
                keep_alive = limits.server_keep_alive
                connack_props["server_keep_alive"] = keep_alive
            if limits.receive_maximum < 65535:
                connack_props["receive_maximum"] = limits.receive_maximum
            if limits.maximum_qos < 2:
                connack_props["maximum_qos"] = limits.maximum_qos
            if not limits.retain_available:
                connack_props["retain_available"] = 0
            if not limits.wildcard_subscription_available:
                connack_props["wildcard_subscription_available"] = 0
            if not limits.subscription_identifier_available:
                connack_props["subscription_identifier_available"] = 0
            if not limits.shared_subscription_available:
                connack_props["shared_subscription_available"] = 0
            if limits.max_packet_size < 268_435_460:
                connack_props["maximum_packet_size"] = limits.max_packet_size
            if limits.topic_alias_maximum:
                connack_props["topic_alias_maximum"] = limits.topic_alias_maximum
            if assigned is not None:
                connack_props["assigned_client_identifier"] = assigned  # MQTT-3.2.2-16
            if props.get("request_response_information") == 1 and broker.config.response_information:
                connack_props["response_information"] = f"{broker.config.response_information}/{client_id}"
            if self.auth_method is not None:
                connack_props["authentication_method"] = self.auth_method  # MQTT-4.12.0-5
                if auth_data:
                    connack_props["authentication_data"] = auth_data
        self.send(Connack(session_present=present, reason_code=0, properties=connack_props))
        self.state = CONNECTED
        self.session = session
        broker.connections[key] = self
        idle = broker.personality.idle_limit
        self.keep_alive = keep_alive * 1.5 if keep_alive else 0.0
        if idle is not None:
            self.keep_alive = min(self.keep_alive, idle) if self.keep_alive else idle
        if self.keep_alive:
            self.timer = asyncio.get_running_loop().call_later(self.keep_alive, self._keep_alive_check)
        log.debug("connected %r v%d clean=%s present=%s", client_id, version, packet.clean_session, present)
        session.attach(self)  # MQTT-4.4.0-1: resend unacknowledged PUBLISH (DUP) and PUBREL
        broker.personality.on_connected(info)

    # -- after CONNACK ---------------------------------------------------------------------------

    def _on_publish(self, packet: Publish, raw: bytes = b"") -> None:
        broker = self.broker
        limits = broker.limits
        qos = packet.qos
        topic = packet.topic
        session = self.session
        assert session is not None and self.client is not None
        self.read_msgs += 1
        props = packet.properties
        if self.v5 and props:
            alias = props.get("topic_alias")
            if alias is not None:
                if alias == 0 or alias > limits.topic_alias_maximum:
                    self._close(will=True, code=0x94, reason=f"topic alias {alias} out of range")
                    return
                if topic:
                    self.in_aliases[alias] = topic  # type: ignore[assignment]
                else:
                    found = self.in_aliases.get(alias)
                    if found is None:
                        self._close(will=True, code=PROTOCOL_ERROR, reason=f"unknown topic alias {alias}")
                        return
                    topic = found
        if type(topic) is not str:
            self._close(will=True, code=MALFORMED, reason="topic name is not UTF-8")
            return
        if qos > limits.maximum_qos:
            self._close(will=True, code=0x9B, reason=f"QoS {qos} not supported")  # 5.0 §3.3.1.2
            return
        if packet.retain and not limits.retain_available:
            self._close(will=True, code=0x9A, reason="retain not supported")
            return
        packet_id = packet.packet_id or 0
        if qos == 2:
            if packet_id in session.incoming_qos2:
                # MQTT-4.3.3-10: a repeat before PUBREL is acknowledged again, not delivered again.
                self.send_ack(Pubrec, packet_id)
                return
            if self.v5 and len(session.incoming_qos2) >= limits.receive_maximum:
                self._close(will=True, code=0x93, reason="receive maximum exceeded")
                return
        decision = broker.personality.authorize_publish(self.client, topic, qos, packet.retain)
        if decision is not Decision.ALLOW:
            if decision is Decision.DENY and broker.config.denied_publish == "disconnect":
                log.info("PUBLISH to %r by %s denied; disconnecting", topic, self._who())
                self._close(will=True, code=0x87, reason=f"not authorized to publish to {topic}")
                return
            log.debug("PUBLISH to %r by %s denied; acknowledged and dropped", topic, self._who())
            # MQTT-3.3.5-2: acknowledged as usual; 5.0 says why (0x87) unless the denial is silent.
            code = 0x87 if self.v5 and decision is Decision.DENY else 0
            why = {"reason_string": f"not authorized to publish to {topic}"} if code else {}
            if qos == 1:
                self.send(Puback(packet_id=packet_id, reason_code=code, properties=why))
            elif qos == 2:
                if code < 0x80:
                    session.incoming_qos2.add(packet_id)
                self.send(Pubrec(packet_id=packet_id, reason_code=code, properties=why))
            return
        if self.v5 and props:
            kept = {k: props[k] for k in FORWARDED if k in props} or None
            message = Message(topic, packet.payload, qos, packet.retain, kept, session.client_id,
                              props.get("message_expiry_interval"))
        else:
            message = Message(topic, packet.payload, qos, packet.retain, None, session.client_id)
        result = broker.personality.on_publish(self.client, message)
        if result is message and raw and raw[0] == 0x30 | qos << 1 and (not self.v5 or not props):
            # The bytes as received are exactly what a subscriber of the same protocol family gets
            # for the same QoS with RETAIN 0 (only the packet id differs): no re-encoding.
            message.encoded = {(self.v5, qos, False): raw}
            if qos:
                message.encoded[(self.v5, qos, False, "offset")] = _packet_id_offset(raw)  # type: ignore[assignment]
        count = broker.publish(result) if result is not None else 0
        if qos == 1:
            if self.v5 and not count:
                self.send(Puback(packet_id=packet_id, reason_code=0x10))
            else:
                self.send_ack(Puback, packet_id)
        elif qos == 2:
            # Delivered onward now (method B of 4.3.3): only the identifier is kept until PUBREL.
            session.incoming_qos2.add(packet_id)
            if self.v5 and not count:
                self.send(Pubrec(packet_id=packet_id, reason_code=0x10))
            else:
                self.send_ack(Pubrec, packet_id)

    def _on_puback(self, packet: Puback) -> None:
        assert self.session is not None
        self.session.puback(packet.packet_id)

    def _on_pubrec(self, packet: Pubrec) -> None:
        assert self.session is not None
        if self.session.pubrec(packet.packet_id, packet.reason_code):
            self.send_ack(Pubrel, packet.packet_id)
        elif packet.packet_id not in self.session.inflight and packet.reason_code < 0x80:
            # Unknown identifier: release it anyway so the client can finish (5.0 says 0x92).
            self.send(Pubrel(packet_id=packet.packet_id, reason_code=0x92 if self.v5 else 0))

    def _on_pubrel(self, packet: Pubrel) -> None:
        session = self.session
        assert session is not None
        if packet.packet_id in session.incoming_qos2:
            session.incoming_qos2.discard(packet.packet_id)
            self.send_ack(Pubcomp, packet.packet_id)
        elif self.v5:
            self.send(Pubcomp(packet_id=packet.packet_id, reason_code=0x92,
                              properties={"reason_string": "packet identifier not found"}))
        else:
            self.send(Pubcomp(packet_id=packet.packet_id))

    def _on_pubcomp(self, packet: Pubcomp) -> None:
        assert self.session is not None
        self.session.pubcomp(packet.packet_id)

    def _on_subscribe(self, packet: Subscribe) -> None:
        broker = self.broker
        limits = broker.limits
        session = self.session
        client = self.client
        assert session is not None and client is not None
        v5 = self.v5
        props = packet.properties if isinstance(packet.properties, dict) else {}
        identifier = props.get("subscription_identifier")
        if isinstance(identifier, list):
            identifier = identifier[0] if identifier else None
        if v5 and identifier is not None and not limits.subscription_identifier_available:
            self._close(will=True, code=0xA1, reason="subscription identifiers not supported")  # §3.2.2.3.12
            return
        codes: list[int] = []
        refused: list[str] = []
        retained: list[Subscription] = []
        for item in packet.subscriptions:
            topic_filter = item.topic_filter
            if type(topic_filter) is not str:
                self._close(will=True, code=MALFORMED, reason="topic filter is not UTF-8")
                return
            try:
                shared = parse_shared(topic_filter) if v5 else None
            except ValueError as exc:
                self._close(will=True, code=PROTOCOL_ERROR, reason=str(exc))
                return
            share, inner = shared if shared else (None, topic_filter)
            if v5 and share is not None and not limits.shared_subscription_available:
                self._close(will=True, code=0x9E, reason="shared subscriptions not supported")  # §3.2.2.3.13
                return
            if v5 and not limits.wildcard_subscription_available and ("+" in inner or "#" in inner):
                self._close(will=True, code=0xA2, reason="wildcard subscriptions not supported")  # §3.2.2.3.11
                return
            if share is not None and item.no_local:
                self._close(will=True, code=PROTOCOL_ERROR, reason="No Local on a shared subscription")
                return
            decision = broker.personality.authorize_subscribe(client, inner, item.qos)
            if decision is Decision.DENY:
                codes.append(0x87 if v5 else 0x80)
                refused.append(f"not authorized to subscribe to {topic_filter}")
                continue
            granted = min(item.qos, limits.maximum_qos, broker.personality.max_subscribe_qos(client, inner))
            if decision is Decision.SILENT:
                codes.append(granted)
                continue
            if topic_filter not in session.subscriptions and len(session.subscriptions) >= limits.max_subscriptions_per_client:
                codes.append(0x97 if v5 else 0x80)
                refused.append(f"more than {limits.max_subscriptions_per_client} subscriptions")
                continue
            sub = Subscription(session, topic_filter, inner, granted, no_local=item.no_local,
                               retain_as_published=item.retain_as_published,
                               retain_handling=item.retain_handling, identifier=identifier,
                               share=share if share is not None else self.share_group)
            existed = broker.subscribe(session, sub)
            codes.append(granted)
            # Retained messages: 3.x always (MQTT-3.8.4-3), 5.0 per Retain Handling, shares never.
            if share is None and (sub.retain_handling == 0 or (sub.retain_handling == 1 and not existed)):
                retained.append(sub)
        why = {"reason_string": "; ".join(refused)} if v5 and refused else {}
        self.send(Suback(packet_id=packet.packet_id, reason_codes=codes, properties=why))
        for sub in retained:
            broker.send_retained(session, sub)

    def _on_unsubscribe(self, packet: Unsubscribe) -> None:
        session = self.session
        assert session is not None
        codes = []
        for topic_filter in packet.topic_filters:
            if type(topic_filter) is not str:
                self._close(will=True, code=MALFORMED, reason="topic filter is not UTF-8")
                return
            codes.append(0x00 if self.broker.unsubscribe(session, topic_filter) else 0x11)
        # MQTT-3.10.4-4/-5: always answered; 3.x UNSUBACK carries no codes.
        self.send(Unsuback(packet_id=packet.packet_id, reason_codes=codes if self.v5 else []))

    def _on_pingreq(self, packet: Pingreq) -> None:
        self.send(Pingresp())

    def _on_disconnect(self, packet: Disconnect) -> None:
        session = self.session
        assert session is not None
        will = False
        if self.v5:
            props = packet.properties if isinstance(packet.properties, dict) else {}
            expiry = props.get("session_expiry_interval")
            if expiry is not None:
                if self.connect_expiry == 0 and expiry != 0:
                    # 5.0 §3.14.2.2.2: a Protocol Error; the will goes out as for any error.
                    self._close(will=True, code=PROTOCOL_ERROR, reason="session expiry set after 0 at CONNECT")
                    return
                session.expiry = None if expiry == 0xFFFFFFFF else expiry
            # 5.0 MQTT-3.1.2-8: only Normal disconnection (0x00) discards the will; 0x04 asks for
            # it and any error code leaves it in place as well.
            will = packet.reason_code != 0x00
        # MQTT-3.14.4-3 / 5.0 MQTT-3.1.2-10: a normal DISCONNECT discards the will.
        self._close(will=will, reason="client disconnected")

    def _on_auth(self, packet: Auth) -> None:
        """Re-authentication (5.0 §4.12.1) with the method of the CONNECT."""
        props = packet.properties if isinstance(packet.properties, dict) else {}
        method = props.get("authentication_method")
        if self.auth_method is None or method != self.auth_method:
            # MQTT-4.12.0-6 / §4.12.1: AUTH without a method at CONNECT, or a different one.
            self._close(will=True, code=PROTOCOL_ERROR, reason="AUTH with a method not used at CONNECT")
            return
        if packet.reason_code == 0x19:
            self.auth_exchange = ENHANCED_METHODS[method](self.broker.authenticator)
            assert self.client is not None
            step = self.auth_exchange.start(props.get("authentication_data"), self.client.username)
        elif packet.reason_code == 0x18 and self.auth_exchange is not None:
            step = self.auth_exchange.step(props.get("authentication_data"))
        else:
            self._close(will=True, code=PROTOCOL_ERROR, reason="unexpected AUTH")
            return
        if step.status == "continue":
            self.send(self._challenge(step))
        elif step.status == "success":
            self.auth_exchange = None
            self.send(Auth(reason_code=0x00, properties={"authentication_method": method}))
        else:
            self._close(will=True, code=0x87, reason="re-authentication failed")  # MQTT-4.12.1-2

    def _on_connect_again(self, packet: Connect) -> None:
        self._close(will=True, code=PROTOCOL_ERROR, reason="second CONNECT")  # MQTT-3.1.0-2


_ACK_TEMPLATES: dict[type, bytes] = {}

_HANDLERS: dict[type, Any] = {
    Publish: Connection._on_publish,
    Puback: Connection._on_puback,
    Pubrec: Connection._on_pubrec,
    Pubrel: Connection._on_pubrel,
    Pubcomp: Connection._on_pubcomp,
    Subscribe: Connection._on_subscribe,
    Unsubscribe: Connection._on_unsubscribe,
    Pingreq: Connection._on_pingreq,
    Disconnect: Connection._on_disconnect,
    Auth: Connection._on_auth,
    Connect: Connection._on_connect_again,
}
