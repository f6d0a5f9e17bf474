"""The paho client kind: a scenario driven through paho-mqtt 2.x, reported as the raw client's events.

`PahoClient` has the raw client's interface (send_packet, next_event, close, transcript), so the
runner and every `expect` step read the same. Underneath, each step is a paho call and each event
is what paho *reports*, through its callbacks (CallbackAPIVersion.VERSION2):

    step                          paho call
    connect / connected           Client(...), username_pw_set, will_set, tls/ws options, connect, then our
                                  network thread (harness.clients.paho_loop; not loop_start, see there)
    send publish                  publish(topic, payload, qos, retain, properties)
    send subscribe / unsubscribe  subscribe([...]) / unsubscribe([...])
    disconnect                    disconnect(reasoncode, properties)
    send pingreq, expect_nothing  paho's own PINGREQ (private `_send_pingreq`): paho has no public ping

    event (expect ...)            from paho
    CONNACK                       on_connect: reason code (3.x: paho's ReasonCode mapped back to the
                                  3.x return code by name), session present, properties
    PUBLISH                       on_message: topic, payload, qos, retain, dup, packet id (mid), properties
    SUBACK / UNSUBACK             on_subscribe / on_unsubscribe: reason codes, properties
    PUBACK (QoS 1), PUBCOMP (QoS 2)  on_publish: reason code, properties
    DISCONNECT (5.0, from broker) on_disconnect with is_disconnect_packet_from_server
    PINGRESP                      paho's handling of it, only for PINGREQs the scenario sent
    Closed                        on_disconnect for a connection the scenario did not end itself

paho chooses packet identifiers; acknowledgements are reported under the id the scenario gave
(PUBACK packet_id 7 for the PUBLISH the scenario sent as packet_id 7). PUBREC and PUBREL belong
to paho's QoS 2 flow and are not reported (a scenario that expects them needs the raw client).

What arrives is not taken on trust from paho: the bytes paho reads are tapped and fed to the
harness decoder, so the transcript is the real byte stream and every protocol violation the
decoder finds is attached to the next reported event (and fails it) exactly as for the raw
client. Steps paho cannot do (malformed packets, exact flags, chosen packet ids on QoS 0, raw
bytes, WebSocket frame control) make a scenario require `raw`: `raw_only_reason` says which step,
and a scenario that declares `clients: [paho]` anyway is a collection error.
"""

from __future__ import annotations

import contextlib
import queue
import re
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.exception import MQTTException
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from harness.clients.events import Closed, Event, PacketReceived, StreamMalformed
from harness.clients.paho_loop import PahoNetworkThread
from harness.clients.raw import TranscriptEntry, last_sent
from harness.clients.tls import TlsFailure, TlsOptions, classify, failed_send
from harness.clients.transport import Address
from harness.clients.websocket import HandshakeFailed
from harness.wire import (
    PROPERTIES,
    Connack,
    Connect,
    Decoded,
    Decoder,
    Disconnect,
    Malformed,
    PacketType,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    RawField,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
    Version,
)
from harness.wire.topics import filter_problem

PROTOCOLS = {Version.V31: mqtt.MQTTv31, Version.V311: mqtt.MQTTv311, Version.V5: mqtt.MQTTv5}
# paho turns 3.x CONNACK return codes into 5.0 reason codes; these names map them back.
_V3_CONNACK = {"Success": 0, "Unsupported protocol version": 1, "Client identifier not valid": 2,
               "Server unavailable": 3, "Bad user name or password": 4, "Not authorized": 5}
_RST_LINGER = b"\x01\x00\x00\x00\x00\x00\x00\x00"

# -- which steps paho can do --------------------------------------------------------------------

_RAW_OPTIONS = ("flags", "remaining_length", "truncate", "trailing", "body", "frames", "hold", "ws_opcode")
_SENDABLE = {"connect", "publish", "subscribe", "unsubscribe", "disconnect", "pingreq"}
_REPORTED = {"connack", "publish", "suback", "unsuback", "puback", "pubcomp", "disconnect", "pingresp"}
_RAW_CONNECT_FIELDS = ("protocol_name", "protocol_level", "reserved_flag", "connect_flags")


class NeedsRawClient(Exception):
    """paho refused to send what a step asks for (a value it validates away): the raw client is needed."""


def raw_only_reason(step: Any, version: Version | None = None) -> str | None:
    """Why paho cannot do this step (so the scenario needs the raw client), or None if it can."""
    kind, args = step.kind, step.args
    if kind == "expect_close" and "keepalive" in args:
        return "expect_close on the Keep Alive timer: paho sends PINGREQ itself when Keep Alive is due"
    if kind == "expect_close" and "idle_setting" in args:
        return "expect_close on an idle limit: paho sends PINGREQ itself when Keep Alive is due"
    if kind in ("send_raw", "expect_websocket"):
        return f"{kind}: paho sends only well-formed packets and hides the WebSocket handshake"
    if kind in ("connect", "connected", "send"):
        used = [key for key in _RAW_OPTIONS if key in args]
        if used:
            return f"{kind} with {', '.join(used)}: paho writes its own bytes and frames"
        packet = "connect" if kind != "send" else str(args.get("packet", "")).lower()
        if packet not in _SENDABLE:
            return f"sending {packet.upper()}: paho sends it itself (acknowledgements) or never"
        if packet == "disconnect" and kind == "send":
            return "DISCONNECT with send (the connection stays read): paho closes its side right after DISCONNECT"
        if packet == "connect":
            if kind == "send":
                return "a CONNECT sent with send: paho connects only through its connect()"
            used = [key for key in _RAW_CONNECT_FIELDS if key in args]
            if used:
                return f"CONNECT with {', '.join(used)}: paho always writes a valid CONNECT"
            if args.get("client_id") == "" and version is not Version.V5:
                return "an empty ClientId under 3.x: paho replaces it with a random one"
            no_user = ("username" in args and args["username"] is None) or \
                ("username" not in args and "account" in args and args["account"] in (None, "none"))
            if "password" in args and no_user:
                return "a password without a user name: paho sends neither"
        if "packet_id" in args and args["packet_id"] == 0:
            return f"{packet.upper()} with packet id 0: paho never sends it"
        if any(_invalid_text(v) for v in _strings(args)):
            return f"{packet.upper()} with U+0000 or a surrogate in a string: paho encodes only valid UTF-8"
        if packet == "publish":
            topic = str(args.get("topic", ""))
            if not topic or "+" in topic or "#" in topic:
                return "a PUBLISH topic that is empty or has wildcards: paho refuses to send it"
            if args.get("dup"):
                return "PUBLISH with DUP set: paho sets DUP only on its own retries"
            if "packet_id" in args and not args.get("qos"):
                return "a QoS 0 PUBLISH with a packet id: paho writes none"
        if packet == "subscribe" and any(isinstance(s, Mapping) and "options" in s for s in args.get("subscriptions", []) or []):
            return "SUBSCRIBE with a raw options byte: paho builds the options from its fields"
        if packet in ("subscribe", "unsubscribe"):
            filters = [s.get("topic_filter", "") if isinstance(s, Mapping) else s for s in args.get("subscriptions", []) or []] \
                if packet == "subscribe" else list(args.get("topic_filters", []) or [])
            if not filters:
                return f"{packet.upper()} without topic filters: paho refuses an empty list"
            for text in filters:
                problem = filter_problem(re.sub(r"\$\{[^}]*\}", "x", str(text)), version or Version.V311)
                if not text or problem:
                    return f"{packet.upper()} with the invalid filter {text!r}: paho refuses to send it"
        if _has_raw_value(args) or _ordered_properties(args):
            return f"{packet.upper()} with raw bytes or ordered/duplicated properties: paho encodes its own"
    if kind == "expect":
        if "flags" in args:
            return "expect with flags: paho does not report fixed-header flags"
        packet = str(args.get("packet", "")).lower()
        if packet not in _REPORTED:
            return f"expecting {packet.upper()}: paho handles it internally and does not report it"
    if kind == "expect_close" and any(str(m.get("packet", "")).lower() not in _REPORTED for m in args.get("may_send", []) or []):
        return "expect_close allowing a packet paho does not report"
    return None


def scenario_raw_only(steps: Sequence[Any], version: Version) -> str | None:
    """The first step of a scenario paho cannot do, as "step N (line L): why", or None."""
    connected: set[str] = set()
    for number, step in enumerate(steps, start=1):
        reason = raw_only_reason(step, version)
        if reason is None and step.kind in ("send", "disconnect") and step.on not in connected:
            reason = f"{step.kind} before CONNECT: paho opens a connection only with its CONNECT"
        if reason:
            return f"step {number} (line {step.line}): {reason}"
        if step.kind in ("connect", "connected"):
            connected.add(step.on)
    return None


def _strings(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        return [s for k, v in value.items() if k != "payload" for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def _invalid_text(text: str) -> bool:
    return "\x00" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def _ordered_properties(value: Any) -> bool:
    """Properties given as a list of pairs (order and duplicates kept): only the raw encoder writes those."""
    if isinstance(value, Mapping):
        return isinstance(value.get("properties"), list) or any(_ordered_properties(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_ordered_properties(v) for v in value)
    return False


def _has_raw_value(value: Any) -> bool:
    if isinstance(value, Mapping):
        return bool({"hex", "raw_hex"} & set(value)) and len(value) == 1 or any(_has_raw_value(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_raw_value(v) for v in value)
    return False


# -- properties ------------------------------------------------------------------------------------

def _paho_names() -> dict[int, str]:
    # paho's names have spaces ("Receive Maximum"); its attributes do not.
    return {identifier: name.replace(" ", "") for name, identifier in Properties(PacketTypes.CONNECT).names.items()}


def to_paho_properties(properties: Mapping[str, Any] | None, packet_type: int) -> Properties | None:
    if not properties:
        return None
    names = _paho_names()
    result = Properties(packet_type)
    by_name = {info.name: identifier for identifier, info in PROPERTIES.items()}
    for name, value in properties.items():
        paho_name = names[by_name[name]]
        if name == "user_property":
            value = [tuple(pair) for pair in value]
        elif name == "subscription_identifier" and isinstance(value, list):
            value = value[0] if len(value) == 1 else value
        setattr(result, paho_name, value)
    return result


def from_paho_properties(properties: Properties | None) -> dict[str, Any]:
    if properties is None:
        return {}
    names = _paho_names()
    result: dict[str, Any] = {}
    for identifier, info in PROPERTIES.items():
        paho_name = names.get(identifier)
        if paho_name is None or not hasattr(properties, paho_name):
            continue
        value = getattr(properties, paho_name)
        if info.name == "user_property":
            value = [tuple(pair) for pair in value]
        elif info.name == "subscription_identifier":
            value = list(value) if isinstance(value, list | tuple) else [value]
        result[info.name] = value
    return result


# -- the client ------------------------------------------------------------------------------------

class _TappedClient(mqtt.Client):
    """paho's client with its socket reads and writes copied to the adapter, and a server name of our choosing.

    The three overrides are paho 2.x private methods, the only places paho offers none of: no public
    hook sees the bytes paho reads and writes (the transcript, the pcap and the strict decoder of what
    the broker sent need them), and `tls_set_context` always verifies against the host connected to.
    """

    adapter: PahoClient

    def _sock_recv(self, bufsize: int) -> bytes:  # private: every byte paho reads passes here, and nowhere public
        try:
            data = super()._sock_recv(bufsize)
        except ConnectionResetError:
            self.adapter._eof = "reset"
            raise
        except ssl.SSLError as exc:
            # A TLS 1.3 server refusing our certificate: its alert arrives on paho's first read.
            address = self.adapter.address
            self.adapter._tls_failure = classify(exc, sent_client_cert=bool(address.tls and address.tls.cert_file),
                                                 during_handshake=False)
            raise
        self.adapter._tap_received(data)
        return data

    def _sock_send(self, buf: bytes | bytearray) -> int:  # private: every byte paho writes passes here
        try:
            sent = super()._sock_send(buf)
        except (ssl.SSLError, ConnectionError) as exc:
            address, sock = self.adapter.address, self.socket()
            if isinstance(sock, ssl.SSLSocket) and self.adapter._tls_failure is None:
                # The write raced a TLS alert (TLS 1.3 client certificate refusal): fetch the alert.
                self.adapter._tls_failure = failed_send(sock, exc, sent_client_cert=bool(address.tls and address.tls.cert_file))
            raise
        if sent:
            self.adapter._tap_sent(bytes(buf[:sent]))
        return sent

    def _ssl_wrap_socket(self, tcp_sock: socket.socket) -> ssl.SSLSocket:
        # Private: paho always verifies against the host it connects to (server_hostname=host), and no public
        # setting changes that; scenarios may name another (server_name).
        assert self._ssl_context is not None
        wrapped = self._ssl_context.wrap_socket(tcp_sock, server_hostname=self.adapter._server_name or self._host,
                                                do_handshake_on_connect=False)
        wrapped.settimeout(self._connect_timeout)
        wrapped.do_handshake()
        return wrapped


class PahoClient:
    """One scenario connection driven through paho-mqtt; see the module docstring for the mapping."""

    def __init__(self, address: Address, version: Version, name: str = "main", connect_timeout: float = 5.0) -> None:
        self.address = address
        self.version = version
        self.name = name
        self.connect_timeout = connect_timeout
        self.transcript: list[TranscriptEntry] = []
        self.closed: Closed | None = None
        self.transport = None  # paho owns the socket: no WebSocket handshake to inspect
        self._events: queue.Queue[Event] = queue.Queue()
        self._decoder = Decoder(version, role="client")
        self._wire: deque[Decoded] = deque()  # decoded from the tap, not yet matched to a paho report
        self._lock = threading.Lock()
        self._client: _TappedClient | None = None
        self._network: PahoNetworkThread | None = None
        self._mids: dict[int, tuple[int, int]] = {}  # paho mid -> (scenario packet id, QoS) of our PUBLISH/SUBSCRIBE/...
        self._mids_known = threading.Condition()
        self._barriers = 0  # PINGREQs the scenario sent whose PINGRESP is still due
        self._closed_by_us = False
        self._eof: Literal["fin", "reset", "error"] = "error"
        self._tls_failure: TlsFailure | None = None
        self._disconnecting = False  # disconnect() called: paho's thread writes DISCONNECT, then closes
        self._server_name = address.tls.server_name if address.tls else None
        self._started = time.monotonic()

    def _now(self) -> float:
        return time.monotonic() - self._started

    def last_sent_at(self) -> float:
        """time.monotonic() of paho's last write to the broker (of the opening, before any)."""
        return self._started + last_sent(self.transcript)  # paho's thread only appends to it

    # -- the tap (paho's network thread) ------------------------------------------------------

    def _tap_received(self, data: bytes) -> None:
        if not data:
            self._eof = "fin"
            return
        self.transcript.append(TranscriptEntry("received", data, self._now()))
        for item in self._decoder.feed(data):
            if isinstance(item, Decoded):
                with self._lock:
                    self._wire.append(item)
            elif isinstance(item, Malformed):
                self._events.put(StreamMalformed(item, self._now()))

    def _tap_sent(self, data: bytes) -> None:
        self.transcript.append(TranscriptEntry("sent", data, self._now()))

    def _report(self, packet: Any, wire_type: PacketType) -> None:
        """Queue what paho reported, with the bytes of the matching packet and every finding up to it."""
        raw, flags, findings = b"", 0, []
        with self._lock:
            while self._wire:
                decoded = self._wire.popleft()
                findings += decoded.findings
                if wire_type == decoded.packet.TYPE:
                    raw, flags = decoded.raw, decoded.flags
                    break
        self._events.put(PacketReceived(Decoded(packet=packet, raw=raw, flags=flags, findings=findings), self._now()))

    # -- paho callbacks ------------------------------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: ReasonCode, properties: Any) -> None:
        code = reason.value if self.version is Version.V5 else _V3_CONNACK.get(reason.getName(), reason.value)
        self._report(Connack(session_present=bool(flags.session_present), reason_code=code,
                             properties=from_paho_properties(properties) if self.version is Version.V5 else {}),
                     PacketType.CONNACK)

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._report(Publish(topic=message.topic, payload=message.payload, qos=message.qos, retain=bool(message.retain),
                             dup=bool(message.dup), packet_id=message.mid if message.qos else None,
                             properties=from_paho_properties(getattr(message, "properties", None))
                             if self.version is Version.V5 else {}),
                     PacketType.PUBLISH)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Sequence[ReasonCode], properties: Any) -> None:
        packet_id = self._request(mid)[0]
        self._report(Suback(packet_id=packet_id, reason_codes=[c.value for c in codes], properties=self._props(properties)),
                     PacketType.SUBACK)

    def _on_unsubscribe(self, client: Any, userdata: Any, mid: int, codes: Sequence[ReasonCode], properties: Any) -> None:
        packet_id = self._request(mid)[0]
        reason_codes = [c.value for c in codes] if self.version is Version.V5 else []
        self._report(Unsuback(packet_id=packet_id, reason_codes=reason_codes, properties=self._props(properties)),
                     PacketType.UNSUBACK)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: ReasonCode, properties: Any) -> None:
        packet_id, qos = self._request(mid)
        if qos == 0:
            return  # paho reports a QoS 0 PUBLISH as written; the broker sends nothing for it
        code = reason.value if self.version is Version.V5 else 0
        kind, wire = (Puback, PacketType.PUBACK) if qos == 1 else (Pubcomp, PacketType.PUBCOMP)
        self._report(kind(packet_id=packet_id, reason_code=code, properties=self._props(properties)), wire)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: ReasonCode, properties: Any) -> None:
        if flags.is_disconnect_packet_from_server:
            self._report(Disconnect(reason_code=reason.value, properties=self._props(properties)), PacketType.DISCONNECT)
        if self._closed_by_us or self.closed is not None:
            return
        how = self._eof if not flags.is_disconnect_packet_from_server else "fin"
        detail = f"paho reports the connection lost: {reason.getName()} ({reason.value:#04x})"
        tls = self._tls_failure
        self.closed = Closed(how, f"{tls} ({detail})" if tls else detail, self._now(), tls.reason if tls else None)
        self._events.put(self.closed)

    def _handle_pingresp(self) -> Any:
        # Installed over paho's private handler: a PINGRESP to a scenario's PINGREQ is reported in order with
        # the packets around it. paho has no on_pingresp callback; the tapped bytes are read before paho
        # handles the packets before them, so reporting from there would put the PINGRESP first.
        result = self._paho_handle_pingresp()
        if self._barriers:
            self._barriers -= 1
            self._report(Pingresp(), PacketType.PINGRESP)
        return result

    def _remember(self, mid: int, packet_id: int, qos: int) -> None:
        with self._mids_known:
            self._mids[mid] = (packet_id, qos)
            self._mids_known.notify_all()

    def _request(self, mid: int) -> tuple[int, int]:
        """The scenario's packet id and QoS for paho's `mid`. The answer can reach paho's thread before
        our call to paho has returned its mid, so wait (briefly) for it to be remembered."""
        with self._mids_known:
            self._mids_known.wait_for(lambda: mid in self._mids, timeout=self.connect_timeout)
            return self._mids.pop(mid, (mid, 0))

    def _props(self, properties: Any) -> dict[str, Any]:
        return from_paho_properties(properties) if self.version is Version.V5 else {}

    # -- the raw client's interface ------------------------------------------------------------

    def send_packet(self, packet: object, **overrides: object) -> bytes:
        """Do what the packet stands for with paho. Returns b"": paho writes from its own thread (see transcript)."""
        if overrides:
            raise NeedsRawClient(f"paho cannot send with {', '.join(overrides)}")
        if isinstance(packet, Connect):
            try:
                self._connect(packet)
            except (ValueError, TypeError, MQTTException, AttributeError, KeyError) as exc:
                raise NeedsRawClient(f"paho refuses to send this CONNECT: {exc}") from None
            return b""
        client = self._client
        if client is None:
            raise NeedsRawClient(f"paho cannot send {type(packet).__name__.upper()} before CONNECT")
        try:
            self._send(client, packet)
        except (ValueError, TypeError, MQTTException) as exc:
            raise NeedsRawClient(f"paho refuses to send this {type(packet).__name__.upper()}: {exc}") from None
        return b""

    def _send(self, client: _TappedClient, packet: object) -> None:
        if isinstance(packet, Publish):
            info = client.publish(_text(packet.topic), bytes(packet.payload), packet.qos, packet.retain,
                                  to_paho_properties(packet.properties, PacketTypes.PUBLISH) if self._v5 else None)
            self._remember(info.mid, packet.packet_id or info.mid, packet.qos)
        elif isinstance(packet, Subscribe):
            if self._v5:
                topics: list[Any] = [(_text(s.topic_filter), SubscribeOptions(qos=s.qos, noLocal=s.no_local,
                                      retainAsPublished=s.retain_as_published, retainHandling=s.retain_handling))
                                     for s in packet.subscriptions]
            else:
                topics = [(_text(s.topic_filter), s.qos) for s in packet.subscriptions]
            _, mid = client.subscribe(topics, properties=to_paho_properties(packet.properties, PacketTypes.SUBSCRIBE)
                                      if self._v5 else None)
            self._remember(mid, packet.packet_id, 1)
        elif isinstance(packet, Unsubscribe):
            _, mid = client.unsubscribe([_text(t) for t in packet.topic_filters],
                                        properties=to_paho_properties(packet.properties, PacketTypes.UNSUBSCRIBE)
                                        if self._v5 else None)
            self._remember(mid, packet.packet_id, 1)
        elif isinstance(packet, Pingreq):
            self._barriers += 1
            client._send_pingreq()  # private: paho sends PINGREQ only on its own keepalive timer, no public call
        elif isinstance(packet, Disconnect):
            self._closed_by_us = True
            self._disconnecting = True
            reason = ReasonCode(PacketTypes.DISCONNECT, identifier=packet.reason_code) if self._v5 else None
            client.disconnect(reason, to_paho_properties(packet.properties, PacketTypes.DISCONNECT) if self._v5 else None)
        else:
            raise TypeError(f"paho cannot send {type(packet).__name__.upper()}")

    def send_bytes(self, data: bytes, **framing: object) -> None:
        raise NeedsRawClient("paho cannot send raw bytes")

    @property
    def _v5(self) -> bool:
        return self.version is Version.V5

    def _connect(self, packet: Connect) -> None:
        if self._client is not None:
            raise TypeError("paho sends CONNECT once per connection (a second CONNECT needs the raw client)")
        websockets = self.address.transport in ("ws", "wss")
        client = _TappedClient(mqtt.CallbackAPIVersion.VERSION2, client_id=_text(packet.client_id),
                               clean_session=None if self._v5 else packet.clean_session, protocol=PROTOCOLS[self.version],
                               transport="websockets" if websockets else "tcp", reconnect_on_failure=False)
        client.adapter = self
        client.suppress_exceptions = True  # a bug in a callback must not kill paho's thread silently
        client.connect_timeout = self.connect_timeout
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect
        self._paho_handle_pingresp = client._handle_pingresp
        client._handle_pingresp = self._handle_pingresp  # type: ignore[method-assign]
        if packet.username is not None or packet.password is not None:
            password = packet.password
            client.username_pw_set(_text(packet.username) if packet.username is not None else None,
                                   bytes(password) if isinstance(password, bytes | bytearray) else password)
        if packet.will is not None:
            will = packet.will
            client.will_set(_text(will.topic), bytes(will.payload), will.qos, will.retain,
                            to_paho_properties(will.properties, PacketTypes.WILLMESSAGE) if self._v5 else None)
        if websockets:
            client.ws_set_options(path=self.address.path)
        if self.address.uses_tls:
            options = self.address.tls or TlsOptions()
            client.tls_set_context(options.context())
            if options.insecure:
                client.tls_insecure_set(True)
        self._client = client
        self._network = PahoNetworkThread(client, self.name, self._network_failed)
        try:
            client.connect(self.address.host, self.address.port, keepalive=packet.keep_alive,
                           clean_start=packet.clean_session if self._v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                           properties=to_paho_properties(packet.properties, PacketTypes.CONNECT) if self._v5 else None)
        except ssl.SSLError as exc:
            raise classify(exc, sent_client_cert=bool(self.address.tls and self.address.tls.cert_file)) from None
        except mqtt.WebsocketConnectionError as exc:
            raise HandshakeFailed(f"WebSocket upgrade to {self.address.path} failed (paho): {exc}") from None
        except ConnectionResetError as exc:
            if self.address.uses_tls:
                raise classify(exc, sent_client_cert=bool(self.address.tls and self.address.tls.cert_file)) from None
            raise
        self._network.start()

    def _network_failed(self, exc: BaseException) -> None:
        if self._closed_by_us or self.closed is not None:
            return
        self.closed = Closed("error", f"the paho network thread failed: {type(exc).__name__}: {exc}", self._now())
        self._events.put(self.closed)

    def next_event(self, timeout: float) -> Event | None:
        if self.closed is not None and self._events.empty():
            return None
        try:
            return self._events.get(timeout=max(timeout, 0))
        except queue.Empty:
            return None

    def close(self, abort: bool = False) -> None:
        self._closed_by_us = True
        client, self._client = self._client, None
        if client is None:
            return
        sock = client.socket()
        if sock is not None and not (self._disconnecting and not abort):
            with contextlib.suppress(OSError):
                if abort:
                    # RST when paho closes it; SHUT_RD only wakes paho's select without sending anything.
                    raw = getattr(sock, "_socket", sock)  # paho's WebSocket wrapper keeps the socket inside
                    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_LINGER)
                    raw.shutdown(socket.SHUT_RD)
                else:
                    getattr(sock, "_socket", sock).shutdown(socket.SHUT_RDWR)
        if self._network is not None:
            self._network.stop(abort, timeout=self.connect_timeout + 1)
        left = client.socket()  # what paho has not closed itself, once its network thread has stopped
        if left is not None:
            with contextlib.suppress(OSError):
                left.close()


def _text(value: Any) -> str:
    if isinstance(value, RawField | bytes | bytearray):
        return bytes(value).decode("utf-8", "surrogateescape")
    return str(value)


__all__ = ["NeedsRawClient", "PahoClient", "scenario_raw_only", "TlsFailure", "from_paho_properties", "raw_only_reason", "to_paho_properties"]
