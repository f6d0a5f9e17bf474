"""What the probe asks a broker, one function per question, each leaving findings with their evidence.

Only well-formed traffic, within what the broker announced: a 5.0 broker that says Maximum QoS 1 is
not sent a QoS 2 PUBLISH (that would be a protocol error, not a question). Every answer is awaited
for a bounded time; every search (ClientId length, payload and topic sizes) has a cap.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.clients import Closed, PacketReceived, RawClient
from harness.clients.raw import last_sent
from harness.errors import HarnessError
from harness.probe.session import ANSWER_S, BrokerStopped, Connection, ProbeSession
from harness.wire import (
    Disconnect,
    Packet,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Version,
    Will,
)

# The longest ClientId the search tries: a UTF-8 string's limit in both 3.1.1 and 5.0.
CLIENT_ID_CAP = 65535
# Payload sizes tried, largest last (bounded by a 5.0 broker's Maximum Packet Size).
PAYLOAD_LADDER = (1024, 65536, 262144, 1048576)
# Topic lengths tried.
TOPIC_LADDER = (256, 4096, 65000)
# How long past 1.5 x Keep Alive the enforcement check waits for the close.
KEEPALIVE_WAIT_S = 8.0


@dataclass
class Finding:
    value: Any
    evidence: str


@dataclass
class Draft:
    """What the probe found: profile fields (protocols, capabilities, settings) and observations."""

    protocols: dict[Version, Finding] = field(default_factory=dict)
    capabilities: dict[str, Finding] = field(default_factory=dict)
    settings: dict[str, Finding] = field(default_factory=dict)
    observations: dict[str, Finding] = field(default_factory=dict)
    announced: dict[str, Any] = field(default_factory=dict)  # the 5.0 CONNACK's properties
    version: Version | None = None  # the version the other checks speak: the newest accepted
    stopped: str | None = None  # why the probe ended early
    durations: dict[str, float] = field(default_factory=dict)

    def accepted(self) -> list[Version]:
        return [v for v, f in self.protocols.items() if f.value]


Check = Callable[[ProbeSession, Draft], str]


def _packet(answer: Packet | Closed | None, kind: type) -> Any:
    return answer if isinstance(answer, kind) else None


def _must_connect(s: ProbeSession, d: Draft, suffix: str, **fields: Any) -> Connection:
    assert d.version is not None
    connection = s.connect(d.version, client_id=s.client_id(suffix), **fields)
    if not connection.accepted:
        s.close(connection, disconnect=False)
        if connection.connack is None:
            raise BrokerStopped(f"the broker stopped answering CONNECT during the {s.check} check: {connection.outcome}")
        # A refusal now (a connection limit, a rate limit) ends the probe too, keeping what it found.
        raise BrokerStopped(f"the broker refused a plain CONNECT during the {s.check} check: {connection.outcome}")
    return connection


def _subscribe(s: ProbeSession, client: RawClient, topic: str, qos: int, packet_id: int = 1,
               properties: dict[str, Any] | None = None) -> tuple[int | None, str]:
    """The SUBACK code for one filter (None: no SUBACK), and what came back."""
    answer = s.exchange(client, Subscribe(packet_id=packet_id, subscriptions=[{"topic_filter": topic, "qos": qos}],
                                          properties=properties or {}))
    suback = _packet(answer, Suback)
    return (suback.reason_codes[0] if suback and suback.reason_codes else None), s.said(answer)


def _receive_publish(s: ProbeSession, client: RawClient, wait: float = ANSWER_S, ack: bool = True) -> Publish | None:
    """The next PUBLISH to `client` (acknowledged unless told not to), skipping other packets."""
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        answer = s.next(client, left)
        if isinstance(answer, Publish):
            s.log("", s.said(answer))
            if ack:
                _acknowledge(s, client, answer)
            return answer
        if answer is None or isinstance(answer, Closed):
            s.log("", s.said(answer, wait))
            return None
    return None


def _acknowledge(s: ProbeSession, client: RawClient, publish: Publish) -> None:
    if publish.qos == 1:
        s.send(client, Puback(packet_id=publish.packet_id or 0))
    elif publish.qos == 2:
        s.send(client, Pubrec(packet_id=publish.packet_id or 0))
        answer = s.next(client)
        if isinstance(answer, Pubrel):
            s.send(client, Pubcomp(packet_id=publish.packet_id or 0))


def _publish(s: ProbeSession, client: RawClient, topic: str, payload: bytes, qos: int, retain: bool = False,
             packet_id: int = 1) -> tuple[bool, str]:
    """Publish and finish the sender's side of the flow; (completed, what came back)."""
    packet = Publish(topic=topic, payload=payload, qos=qos, retain=retain, packet_id=packet_id if qos else None)
    if qos == 0:
        failed = s.send(client, packet)
        s.log(_short(packet), s.said(failed) if failed else "(QoS 0: no answer)")
        return failed is None, s.said(failed) if failed else "sent"
    answer = s.exchange(client, packet)
    if qos == 1:
        return isinstance(answer, Puback) and answer.reason_code < 0x80, s.said(answer)
    if not isinstance(answer, Pubrec) or answer.reason_code >= 0x80:
        return False, s.said(answer)
    final = s.exchange(client, Pubrel(packet_id=packet_id))
    return isinstance(final, Pubcomp), f"{s.said(answer)}, then {s.said(final)}"


def _short(packet: Publish) -> str:
    return (f"PUBLISH topic=<{len(str(packet.topic))} characters> qos={packet.qos} retain={int(packet.retain)} "
            f"payload=<{len(packet.payload)} bytes>")


def _v5(d: Draft) -> bool:
    return d.version is Version.V5


# -- protocol versions ----------------------------------------------------------------------------

# CONNACK codes that refuse the login rather than the version: 3.x 4 and 5, 5.0 0x86 and 0x87.
LOGIN_REFUSED = {Version.V31: (4, 5), Version.V311: (4, 5), Version.V5: (0x86, 0x87)}


def check_protocols(s: ProbeSession, d: Draft) -> str:
    login_refused = []
    for version in (Version.V31, Version.V311, Version.V5):
        connection = s.connect(version, client_id=s.client_id(f"v{version.value}"))
        d.protocols[version] = Finding(connection.accepted, f"CONNECT {version.label}: {connection.outcome}")
        if connection.connack is not None and connection.connack.reason_code in LOGIN_REFUSED[version]:
            login_refused.append(version.label)
        if connection.accepted and version is Version.V5 and connection.connack is not None:
            d.announced = dict(connection.connack.properties or {})
        s.close(connection, disconnect=connection.accepted)
    accepted = d.accepted()
    if not accepted and login_refused:
        who = "without credentials" if s.account.username is None and s.account.password is None else "with the credentials given"
        raise HarnessError(f"the broker refused the login {who} ({', '.join(login_refused)}): "
                           + "; ".join(f.evidence for f in d.protocols.values()))
    if not accepted:
        outcomes = "; ".join(f.evidence for f in d.protocols.values())
        raise HarnessError(f"the broker accepted no CONNECT (3.1, 3.1.1 or 5.0): {outcomes}")
    d.version = accepted[-1]
    return "accepts " + ", ".join(v.label for v in accepted)


def check_announcements(s: ProbeSession, d: Draft) -> str:
    if not d.announced:
        return "no 5.0 CONNACK properties" if Version.V5 in d.accepted() else "not a 5.0 broker: nothing announced"
    for name, value in sorted(d.announced.items()):
        d.observations[f"announced {name}"] = Finding(value, "a plain 5.0 CONNECT's CONNACK")
    return ", ".join(f"{k}={v}" for k, v in sorted(d.announced.items())) or "nothing"


# -- ClientIds ----------------------------------------------------------------------------------

def _accepts_client_id(s: ProbeSession, d: Draft, client_id: str) -> tuple[bool, str]:
    assert d.version is not None
    connection = s.connect(d.version, client_id=client_id)
    s.close(connection, disconnect=connection.accepted)
    if connection.connack is None and not isinstance(connection.client.closed, Closed):
        raise BrokerStopped(f"the broker stopped answering CONNECT during the {s.check} check: {connection.outcome}")
    return connection.accepted, connection.outcome


def _client_id_of(s: ProbeSession, length: int) -> str:
    head = s.client_id("l")
    return (head + "a" * length)[:length]


def check_client_ids(s: ProbeSession, d: Draft) -> str:
    ok23, said23 = _accepts_client_id(s, d, _client_id_of(s, 23))
    ok24, said24 = _accepts_client_id(s, d, _client_id_of(s, 24))
    d.capabilities["client_id_over_23_refused"] = Finding(not ok24, f"a 24-character ClientId: {said24}")
    longest, refused_at = (23 if ok23 else 0), None
    if ok24:
        longest = 24
        for length in (64, 256, 1024, 4096, 16384, CLIENT_ID_CAP):
            ok, _ = _accepts_client_id(s, d, _client_id_of(s, length))
            if not ok:
                refused_at = length
                break
            longest = length
        while refused_at is not None and refused_at - longest > 1:  # bisect: about 16 steps at most
            middle = (longest + refused_at) // 2
            ok, _ = _accepts_client_id(s, d, _client_id_of(s, middle))
            longest, refused_at = (middle, refused_at) if ok else (longest, middle)
    cap = "" if refused_at is not None or longest < CLIENT_ID_CAP else " (the search's cap)"
    searched = (f"refused from {refused_at} characters" if refused_at is not None
                else f"24: {said24}" if not ok24 else f"accepted up to the search's cap of {CLIENT_ID_CAP}")
    d.observations["longest ClientId accepted"] = Finding(longest, f"{searched}; 23: {said23}")
    odd = s.client_id("x")[:14] + "-_.:/é"
    ok, said = _accepts_client_id(s, d, odd)
    d.observations["ClientId with characters outside 0-9a-zA-Z"] = Finding(ok, f"ClientId {odd!r}: {said}")
    assert d.version is not None
    empty = s.connect(d.version, client_id="", clean_session=True)
    s.close(empty, disconnect=empty.accepted)
    d.capabilities["zero_length_client_id"] = Finding(empty.accepted, f"an empty ClientId with clean session 1: {empty.outcome}")
    if empty.accepted and _v5(d) and empty.connack is not None:
        assigned = (empty.connack.properties or {}).get("assigned_client_identifier")
        d.observations["assigned ClientId"] = Finding(assigned, "the CONNACK's Assigned Client Identifier")
    empty0 = s.connect(d.version, client_id="", clean_session=False,
                       properties={"session_expiry_interval": 0} if _v5(d) else {})
    s.close(empty0, disconnect=empty0.accepted)
    d.observations["empty ClientId with clean session 0"] = Finding(empty0.accepted, empty0.outcome)
    return f"longest accepted {longest}{cap}; 24 characters {'accepted' if ok24 else 'refused'}; empty {'accepted' if empty.accepted else 'refused'}"


def check_anonymous(s: ProbeSession, d: Draft) -> str:
    if s.account.username is None and s.account.password is None:
        d.observations["anonymous access"] = Finding(True, "the probe itself connected without credentials")
        return "allowed (the probe connects without credentials)"
    assert d.version is not None
    connection = s.connect(d.version, client_id=s.client_id("anon"), credentials=False)
    s.close(connection, disconnect=connection.accepted)
    d.observations["anonymous access"] = Finding(connection.accepted, f"CONNECT without credentials: {connection.outcome}")
    return "allowed" if connection.accepted else f"refused ({connection.outcome})"


# -- delivery -------------------------------------------------------------------------------------

def check_qos(s: ProbeSession, d: Draft) -> str:
    maximum = d.announced.get("maximum_qos", 2) if _v5(d) else 2
    sub = _must_connect(s, d, "qs")
    pub = _must_connect(s, d, "qp")
    try:
        code, said = _subscribe(s, sub.client, f"{s.topic}/q", 2)
        granted = code if code is not None and code < 0x80 else None
        d.observations["granted QoS for a QoS 2 request"] = Finding(granted, f"SUBSCRIBE QoS 2: {said}")
        results = []
        for qos in (1, 2):
            name = f"qos{qos}"
            if maximum < qos:
                d.capabilities[name] = Finding(False, f"the CONNACK announces Maximum QoS {maximum}")
                results.append(f"QoS {qos} not offered (Maximum QoS {maximum})")
                continue
            done, flow = _publish(s, pub.client, f"{s.topic}/q", f"qos{qos}".encode(), qos, packet_id=qos)
            delivered = _receive_publish(s, sub.client)
            got = delivered.qos if delivered else None
            # Delivered at a higher QoS than published is a deviation the suite reports; QoS 1 still works.
            offered = done and delivered is not None and (granted or 0) >= qos and (got or 0) >= qos
            why = f"PUBLISH QoS {qos}: {flow}; delivered {'at QoS ' + str(got) if delivered else 'nothing'}; SUBACK granted {granted}"
            d.capabilities[name] = Finding(offered, why)
            results.append(f"QoS {qos} {'works' if offered else 'not offered'}")
        return "; ".join(results)
    finally:
        s.close(sub)
        s.close(pub)


def check_retain(s: ProbeSession, d: Draft) -> str:
    if _v5(d) and d.announced.get("retain_available", 1) == 0:
        d.capabilities["retain"] = Finding(False, "the CONNACK announces Retain Available 0")
        return "not offered (announced)"
    topic = f"{s.topic}/r"
    pub = _must_connect(s, d, "rp")
    qos = 1 if d.capabilities.get("qos1", Finding(False, "")).value else 0
    done, flow = _publish(s, pub.client, topic, b"kept", qos, retain=True)
    later = _must_connect(s, d, "rs")
    try:
        _subscribe(s, later.client, topic, qos)
        got = _receive_publish(s, later.client)
        offered = got is not None and got.retain and got.payload == b"kept"
        d.capabilities["retain"] = Finding(offered, f"retained PUBLISH ({flow}), then a new subscriber got "
                                                    f"{'RETAIN 1 ' + repr(got.payload) if got is not None and got.retain else s.said(got)}")
        return "works" if offered else "not offered"
    finally:
        _publish(s, pub.client, topic, b"", qos, retain=True, packet_id=2)  # clear it again
        s.close(later)
        s.close(pub)


def check_will(s: ProbeSession, d: Draft) -> str:
    topic = f"{s.topic}/w"
    watch = _must_connect(s, d, "ww")
    try:
        _subscribe(s, watch.client, topic, 0)
        willer = _must_connect(s, d, "wd", will=Will(topic=topic, payload=b"gone", qos=0))
        s.close(willer, abort=True)
        s.log("(closed the connection without DISCONNECT)", "")
        got = _receive_publish(s, watch.client)
        offered = got is not None and got.payload == b"gone"
        d.capabilities["will"] = Finding(offered, f"a will on a connection closed without DISCONNECT: watcher got {s.said(got)}")
        return "published" if offered else "not published"
    finally:
        s.close(watch)


def check_persistent_session(s: ProbeSession, d: Draft) -> str:
    """A persistent session is one that keeps a QoS 1 message published while its client was away
    (QoS 0 messages need not be queued, MQTT-3.1.2-5: a QoS 0-only broker has nothing to keep)."""
    if not d.capabilities.get("qos1", Finding(False, "")).value:
        d.capabilities["persistent_session"] = Finding(False, "no QoS 1: nothing a session would queue for an absent client")
        return "not checked (no QoS 1)"
    topic, cid = f"{s.topic}/p", s.client_id("ps")
    qos = 1
    keep = {"session_expiry_interval": 300} if _v5(d) else {}
    # 5.0: Clean Start 1 with an expiry keeps the session; 3.x: clean session 0 on a fresh ClientId.
    first = _must_connect(s, d, "ps", clean_session=_v5(d), properties=keep)
    if _v5(d) and first.connack is not None:
        granted = (first.connack.properties or {}).get("session_expiry_interval")
        d.observations["session expiry granted for 300 s asked"] = Finding(
            300 if granted is None else granted, f"CONNACK Session Expiry Interval {'absent (as asked)' if granted is None else granted}")
    _subscribe(s, first.client, topic, qos)
    s.close(first)
    pub = _must_connect(s, d, "pp")
    _publish(s, pub.client, topic, b"queued", qos)
    s.close(pub)
    assert d.version is not None
    again = s.connect(d.version, client_id=cid, clean_session=False, properties=keep)
    try:
        present = bool(again.connack and again.connack.session_present)
        got = _receive_publish(s, again.client) if again.accepted else None
        offered = again.accepted and present and got is not None
        d.capabilities["persistent_session"] = Finding(offered, f"reconnect with clean session 0: {again.outcome}; "
                                                                f"the message published meanwhile: {s.said(got)}")
        return "kept" if offered else "not kept"
    finally:
        s.close(again, disconnect=again.accepted)
        gone = s.connect(d.version, client_id=cid, clean_session=True)  # end the session again
        s.close(gone, disconnect=gone.accepted)


def check_in_flight(s: ProbeSession, d: Draft) -> str:
    if not d.capabilities.get("qos1", Finding(False, "")).value:
        return "not checked (no QoS 1)"
    topic = f"{s.topic}/f"
    sub = _must_connect(s, d, "fs")
    pub = _must_connect(s, d, "fp")
    try:
        _subscribe(s, sub.client, topic, 1)
        for packet_id in (1, 2):
            _publish(s, pub.client, topic, f"m{packet_id}".encode(), 1, packet_id=packet_id)
        first = _receive_publish(s, sub.client, ack=False)
        second = _receive_publish(s, sub.client, wait=2.0, ack=False)
        several = first is not None and second is not None
        for message in (first, second):
            if message is not None:
                _acknowledge(s, sub.client, message)
        late = None if several or first is None else _receive_publish(s, sub.client)
        why = ("two QoS 1 messages delivered before either was acknowledged" if several
               else f"the second QoS 1 message {'came only after the first PUBACK' if late is not None else 'did not come'}")
        d.capabilities["several_in_flight"] = Finding(several, why)
        return "several" if several else "one at a time"
    finally:
        s.close(sub)
        s.close(pub)


# -- subscriptions --------------------------------------------------------------------------------

def check_subscriptions(s: ProbeSession, d: Draft) -> str:
    sub = _must_connect(s, d, "ss")
    pub = _must_connect(s, d, "sp")
    results = []
    try:
        # A 5.0 broker announcing a feature unavailable is not sent it: that SUBSCRIBE is a Protocol Error.
        if _v5(d) and d.announced.get("wildcard_subscription_available", 1) == 0:
            d.capabilities["wildcard_subscriptions"] = Finding(False, "the CONNACK announces Wildcard Subscription Available 0")
        else:
            code, said = _subscribe(s, sub.client, f"{s.topic}/+/x", 0, packet_id=1)
            d.capabilities["wildcard_subscriptions"] = Finding(code is not None and code < 0x80, f"SUBSCRIBE {s.topic}/+/x: {said}")
        results.append(f"wildcards {'yes' if d.capabilities['wildcard_subscriptions'].value else 'no'}")
        if _v5(d):
            if d.announced.get("shared_subscription_available", 1) == 0:
                d.capabilities["shared_subscriptions"] = Finding(False, "the CONNACK announces Shared Subscription Available 0")
            else:
                code, said = _subscribe(s, sub.client, f"$share/g{s.token}/{s.topic}/s", 0, packet_id=2)
                d.capabilities["shared_subscriptions"] = Finding(code is not None and code < 0x80, f"SUBSCRIBE $share/...: {said}")
            results.append(f"shared {'yes' if d.capabilities['shared_subscriptions'].value else 'no'}")
            if d.announced.get("subscription_identifier_available", 1) == 0:
                d.capabilities["subscription_identifiers"] = Finding(False, "the CONNACK announces Subscription Identifier Available 0")
            else:
                _subscribe(s, sub.client, f"{s.topic}/i", 0, packet_id=3, properties={"subscription_identifier": 7})
                _publish(s, pub.client, f"{s.topic}/i", b"id", 0)
                got = _receive_publish(s, sub.client)
                ids = list((got.properties or {}).get("subscription_identifier") or []) if got is not None else None
                d.capabilities["subscription_identifiers"] = Finding(ids == [7], f"subscribed with identifier 7; delivered with {ids}")
            results.append(f"subscription identifiers {'yes' if d.capabilities['subscription_identifiers'].value else 'no'}")
            alias = d.announced.get("topic_alias_maximum", 0)
            d.capabilities["topic_alias"] = Finding(bool(alias), f"the CONNACK announces Topic Alias Maximum {alias}")
        return ", ".join(results)
    finally:
        s.close(sub)
        s.close(pub)


# 5.0 CONNACK availability properties (absent means available) and the capability that shows the behaviour.
ANNOUNCED_AVAILABLE = {"retain_available": "retain", "wildcard_subscription_available": "wildcard_subscriptions",
                       "shared_subscription_available": "shared_subscriptions",
                       "subscription_identifier_available": "subscription_identifiers"}


def check_announced_behaviour(s: ProbeSession, d: Draft) -> str:
    """Whether what the broker did matches what its 5.0 CONNACK announced (the draft follows the behaviour)."""
    if not _v5(d):
        return "not a 5.0 broker"
    unlike = [f"{prop} {d.announced.get(prop, 1)} but {capability} {'works' if d.capabilities[capability].value else 'does not work'}"
              for prop, capability in ANNOUNCED_AVAILABLE.items()
              if capability in d.capabilities and bool(d.announced.get(prop, 1)) != d.capabilities[capability].value]
    d.observations["behaviour unlike the announcement"] = Finding(unlike or "none", "the CONNACK's availability "
                                                                  "properties against the checks above")
    return "; ".join(unlike) if unlike else "as announced"


def check_sys(s: ProbeSession, d: Draft) -> str:
    wildcards = d.capabilities.get("wildcard_subscriptions")
    if wildcards is not None and not wildcards.value:
        d.observations["$SYS topics"] = Finding(None, "not asked: $SYS/# is a wildcard filter, which the broker does not take")
        return "not asked (no wildcard subscriptions)"
    watch = _must_connect(s, d, "sys")
    try:
        code, said = _subscribe(s, watch.client, "$SYS/#", 0)
        got = _receive_publish(s, watch.client, wait=2.0) if code is not None and code < 0x80 else None
        d.observations["$SYS topics"] = Finding(got is not None, f"SUBSCRIBE $SYS/#: {said}; within 2 s: "
                                                                 f"{got.topic if got is not None else 'no message'}")
        return f"present ({got.topic})" if got is not None else "none seen"
    finally:
        s.close(watch)


def check_sizes(s: ProbeSession, d: Draft) -> str:
    limit = d.announced.get("maximum_packet_size") if _v5(d) else None
    largest, topic = 0, f"{s.topic}/z"
    sub = _must_connect(s, d, "zs")
    pub = _must_connect(s, d, "zp")
    try:
        _subscribe(s, sub.client, topic, 0)
        for size in PAYLOAD_LADDER:
            if limit is not None and size + len(topic) + 16 > limit:
                break
            _publish(s, pub.client, topic, b"p" * size, 0)
            got = _receive_publish(s, sub.client, wait=ANSWER_S)
            if got is None or len(got.payload) != size:
                break
            largest = size
    finally:
        s.close(sub)
        s.close(pub)
    d.observations["largest payload delivered"] = Finding(largest, f"tried {', '.join(map(str, PAYLOAD_LADDER))} bytes"
                                                          + (f" (Maximum Packet Size {limit})" if limit else ""))
    longest = 0
    for length in TOPIC_LADDER:
        if limit is not None and length + 16 > limit:
            break
        long_topic = (f"{s.topic}/" + "t" * length)[:length]
        sub = _must_connect(s, d, "ts")
        try:
            code, _ = _subscribe(s, sub.client, long_topic, 0)
            if code is None or code >= 0x80:
                break
            _publish(s, sub.client, long_topic, b"t", 0)
            if _receive_publish(s, sub.client) is None:
                break
            longest = length
        finally:
            s.close(sub)
    d.observations["longest topic delivered"] = Finding(longest, f"tried {', '.join(map(str, TOPIC_LADDER))} characters")
    return f"payload {largest} bytes, topic {longest} characters"


# -- keep alive -----------------------------------------------------------------------------------

class KeepaliveCheck:
    """Two idle connections, Keep Alive 1 s and 2 s, on a thread of its own from the start (it mostly
    waits). A broker that closes a constant time late samples its timers coarsely: that lateness is
    the keepalive_grace. One that closes at the same multiple of both (RabbitMQ 3.10: 3 x) does not
    honour 1.5 x Keep Alive at all: a deviation the suite reports, which no grace should hide.
    A 5.0 broker imposing a Server Keep Alive is measured at that, unless it is over MAX_MEASURED_S."""

    KEEP_ALIVES = (1, 2)
    MAX_MEASURED_S = 10
    POLL_S = 0.05

    def __init__(self, s: ProbeSession, version: Version) -> None:
        self.s, self.version = s, version
        self.closes: dict[int, tuple[float | None, str]] = {}  # Keep Alive in force -> (closed after, how)
        self.skipped: str | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="probe keepalive", daemon=True)

    def start(self) -> KeepaliveCheck:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._measure()
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            self.error = exc
        finally:
            self.s.close_all()

    def _measure(self) -> None:
        s = self.s
        opened: dict[int, RawClient] = {}
        for keep_alive in self.KEEP_ALIVES:
            connection = s.connect(self.version, client_id=s.client_id(f"ka{keep_alive}"), keep_alive=keep_alive)
            if not connection.accepted:
                s.close(connection, disconnect=False)
                continue
            imposed = (connection.connack.properties or {}).get("server_keep_alive") if connection.connack else None
            if imposed is not None and imposed > self.MAX_MEASURED_S:
                s.close(connection)
                self.skipped = f"the CONNACK imposes Server Keep Alive {imposed} s (not measured: over {self.MAX_MEASURED_S} s)"
                continue
            in_force = imposed or keep_alive
            if in_force not in opened:  # a Server Keep Alive may make both the same
                opened[in_force] = connection.client
            else:
                s.close(connection)
        deadline = {ka: time.monotonic() + 1.5 * ka + KEEPALIVE_WAIT_S for ka in opened}
        seen: dict[int, list[str]] = {ka: [] for ka in opened}
        while opened:  # each connection in turn, briefly, so a close is timed when it comes
            for ka, client in list(opened.items()):
                result = self._poll(client, seen[ka])
                if result is None and time.monotonic() > deadline[ka]:
                    result = (None, ", ".join([*seen[ka], f"still open after {1.5 * ka + KEEPALIVE_WAIT_S:g} s"]))
                if result is not None:
                    self.closes[ka] = result
                    s.close(opened.pop(ka), disconnect=False)

    def _poll(self, client: RawClient, seen: list[str]) -> tuple[float, str] | None:
        """(seconds from our last packet to the broker's DISCONNECT or close, what came) once it came."""
        event = client.next_event(self.POLL_S)
        if isinstance(event, Closed) or (isinstance(event, PacketReceived) and isinstance(event.decoded.packet, Disconnect)):
            seen.append(self.s.said(event if isinstance(event, Closed) else event.decoded.packet))
            return event.at - last_sent(client.transcript), ", then ".join(seen)
        if isinstance(event, PacketReceived):
            seen.append(self.s.said(event.decoded.packet))
        return None

    def join(self, d: Draft) -> str:
        self._thread.join(len(self.KEEP_ALIVES) * ANSWER_S + 1.5 * self.MAX_MEASURED_S + KEEPALIVE_WAIT_S + 1)
        if self._thread.is_alive():  # bounded above; it cannot be, short of a hung machine
            d.settings["keepalive_grace"] = Finding(1.0, "the default: the measurement did not finish")
            return "not measured (did not finish)"
        if self.error is not None:
            raise self.error
        if not self.closes:
            why = self.skipped or "no idle connection was accepted"
            d.settings["keepalive_grace"] = Finding(1.0, f"the default: not measured ({why})")
            return "not measured"
        said = "; ".join(f"Keep Alive {ka} s: " + (f"closed {after:.2f} s after our last packet ({how})" if after is not None else how)
                         for ka, (after, how) in sorted(self.closes.items()))
        closed = {ka: after for ka, (after, _) in self.closes.items() if after is not None}
        d.observations["keep alive enforced"] = Finding(len(closed) == len(self.closes), said)
        if len(closed) < len(self.closes):
            d.settings["keepalive_grace"] = Finding(1.0, f"the default: not every idle connection was closed ({said})")
            return "not enforced within the wait"
        ratios = [after / ka for ka, after in sorted(closed.items())]
        if len(ratios) > 1 and min(ratios) > 1.5 + 0.25 and max(ratios) - min(ratios) < 0.25:
            d.observations["keep alive multiple"] = Finding(round(sum(ratios) / len(ratios), 2), said)
            d.settings["keepalive_grace"] = Finding(1.0, f"the default: the broker closes at {ratios[0]:.1f} x Keep Alive, "
                                                         f"not 1.5 x (a deviation, not lateness: {said})")
            return f"closes at {ratios[0]:.1f} x Keep Alive (the specification: 1.5 x)"
        late = max(after - 1.5 * ka for ka, after in closed.items())
        # The strict profile's 1 s absorbs a loaded machine's scheduling (and a broker counting whole
        # seconds, as ejabberd does: 0.5 s late); a later one gets its lateness plus 0.5 s, rounded up.
        grace = 1.0 if late <= 1.0 else float(math.ceil(late + 0.5))
        d.settings["keepalive_grace"] = Finding(grace, f"{said}: at most {late:+.2f} s past 1.5 x Keep Alive "
                                                       "(grace: 1 s up to +1 s, else that plus 0.5 s rounded up)")
        return f"closed in time plus {grace:g} s grace"


CHECKS: list[tuple[str, Check]] = [
    ("announcements", check_announcements),
    ("ClientIds", check_client_ids),
    ("anonymous access", check_anonymous),
    ("QoS 1 and 2", check_qos),
    ("retain", check_retain),
    ("will", check_will),
    ("persistent session", check_persistent_session),
    ("messages in flight", check_in_flight),
    ("subscriptions", check_subscriptions),
    ("$SYS", check_sys),
    ("sizes", check_sizes),
    ("announced against behaviour", check_announced_behaviour),
]
