"""The sans-IO parts of the broker: topic matching, subscription index, retained store, ACL, config,
session flow control. No sockets."""

from __future__ import annotations

import pytest

from harness.broker.auth import Acl, Authenticator, HmacSha256Auth, hmac_sha256_response
from harness.broker.config import AclEntry, AuthConfig, ConfigError, config_from_mapping, parse_listen
from harness.broker.retained import Message, RetainedStore
from harness.broker.sessions import Session
from harness.broker.topics import (
    Subscription,
    SubscriptionIndex,
    filter_covers,
    filter_problem,
    matches,
    parse_shared,
    topic_problem,
)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/#", "a", True),  # "#" includes the parent level
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("+/+", "/x", True),  # empty levels are levels
        ("+", "/x", False),
        ("#", "$SYS/x", False),  # MQTT-4.7.2-1
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
        ("A/b", "a/b", False),  # no normalisation, MQTT-4.7.3-4
        ("sport/tennis/+", "sport/tennis/player1", True),
        ("sport/+/player1", "sport/tennis/player1", True),
    ],
)
def test_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert matches(topic_filter, topic) is expected
    index = SubscriptionIndex()
    index.add("k", Subscription(None, topic_filter, topic_filter, 0))
    subs, _ = index.match(topic)
    assert bool(subs) is expected


def test_filter_and_topic_syntax() -> None:
    assert filter_problem("a/#") is None and filter_problem("+/+/#") is None
    for bad in ("", "a/#/b", "a#", "a/b+", "#/a"):
        assert filter_problem(bad), bad
    assert topic_problem("a/+") and topic_problem("") and topic_problem("a\x00") and not topic_problem("a/b")
    assert parse_shared("$share/g/a/#") == ("g", "a/#")
    assert parse_shared("a/b") is None
    for bad in ("$share//a", "$share/g", "$share/g/", "$share/g+/a", "$share/g/a/#/b"):
        with pytest.raises(ValueError):
            parse_shared(bad)


def test_index_overlap_replace_remove_and_prune() -> None:
    index = SubscriptionIndex()
    s1 = Subscription("S1", "a/+", "a/+", 1)
    s2 = Subscription("S1", "a/#", "a/#", 2)
    s3 = Subscription("S2", "$share/g/a/b", "a/b", 0, share="g")
    assert index.add("S1", s1) is False
    assert index.add("S1", s2) is False
    index.add("S2", s3)
    subs, groups = index.match("a/b")
    assert set(map(id, subs)) == {id(s1), id(s2)} and groups[0].members == {"S2": s3}
    replacement = Subscription("S1", "a/+", "a/+", 0)
    assert index.add("S1", replacement) is True  # same filter: replaced
    assert replacement in index.match("a/b")[0] and s1 not in index.match("a/b")[0]
    assert index.remove("S1", replacement) and index.remove("S1", s2) and index.remove("S2", s3)
    assert index.match("a/b") == ([], []) and index._root.children == {}  # branches pruned
    assert index.count == 0


def test_acl_patterns_and_substitution() -> None:
    acl = Acl([
        AclEntry("alice", [("acl/allowed/#", "readwrite"), ("in/%u/#", "write"), ("out/%c/+", "read")]),
        AclEntry("*", [("public/#", "read")]),
    ])
    alice = acl.for_client("alice", "dev1")
    assert alice.can_publish("acl/allowed/x") and alice.can_publish("in/alice/t")
    assert not alice.can_publish("in/bob/t") and not alice.can_publish("out/dev1/x")
    assert alice.can_subscribe("out/dev1/+") and alice.can_subscribe("out/dev1/a")
    assert not alice.can_subscribe("out/dev1/#")  # reaches deeper than the pattern
    assert not alice.can_subscribe("out/+/a") and not alice.can_subscribe("#")
    assert alice.can_subscribe("public/x/#")
    anonymous = acl.for_client(None, "x")
    assert anonymous.can_subscribe("public/#") and not anonymous.can_publish("public/a")
    # a ClientId with a wildcard must not widen a %c pattern
    assert not acl.for_client("alice", "+").can_subscribe("out/+/a")
    assert Acl(None).for_client(None, "x").can_publish("anything")


def test_authenticator_and_hmac_method() -> None:
    auth = Authenticator(AuthConfig(allow_anonymous=False, users={"u": "pw"}))
    assert auth.check("u", b"pw") == "ok"
    assert auth.check("u", b"no") == "bad_credentials"
    assert auth.check("v", b"pw") == "bad_credentials"
    assert auth.check(None, None) == "anonymous"
    exchange = HmacSha256Auth(auth)
    step = exchange.start(b"u", None)
    assert step.status == "continue" and step.data and len(step.data) == 16
    ok = exchange.step(hmac_sha256_response("pw", step.data))
    assert ok.status == "success" and ok.username == "u"
    again = HmacSha256Auth(auth)
    nonce = again.start(b"u", None).data
    assert nonce is not None and again.step(hmac_sha256_response("wrong", nonce)).status == "failure"


def test_retained_store_replace_clear_limit() -> None:
    store = RetainedStore(limit=2)
    store.store(Message("a", b"1", 1, True))
    store.store(Message("a", b"2", 0, True))
    assert store.get("a").payload == b"2"  # type: ignore[union-attr]
    store.store(Message("a", b"", 0, True))
    assert store.get("a") is None and len(store) == 0  # empty payload clears, never stored
    store.store(Message("b", b"x", 0, True))
    store.store(Message("c", b"x", 0, True))
    assert store.store(Message("d", b"x", 0, True)) is False  # full: bounded
    assert [m.topic for m in store.matching("+")] == ["b", "c"]
    expired = Message("e", b"x", 0, True, expiry_interval=0)
    store.clear("b")
    store.store(expired)
    assert [m.topic for m in store.matching("#")] == ["c"]


class FakeSink:
    def __init__(self, window: int = 2, limit: int | None = None) -> None:
        self.writable = True
        self.window = window
        self.limit = limit
        self.sent: list[tuple[str, int, int | None, bool]] = []
        self.pubrels: list[int] = []

    def send_publish(self, message: Message, qos: int, retain: bool, packet_id: int | None, dup: bool,
                     sub_ids: tuple[int, ...] | None) -> bool:
        if self.limit is not None and len(message.payload) > self.limit:
            return False
        self.sent.append((message.topic, qos, packet_id, dup))
        return True

    def send_pubrel(self, packet_id: int) -> None:
        self.pubrels.append(packet_id)


def test_session_window_queue_and_redelivery() -> None:
    session = Session("c", "c", queue_limit=3)
    sink = FakeSink(window=2)
    session.attach(sink)
    for i in range(6):
        session.deliver(Message(f"t{i}", b"x", 1), 1, False, None)
    # two in flight, three queued, the sixth dropped (bounded queue)
    assert [s[0] for s in sink.sent] == ["t0", "t1"] and len(session.queue) == 3 and session.dropped == 1
    session.deliver(Message("q0", b"x", 0), 0, False, None)
    assert sink.sent[-1][0] == "q0"  # QoS 0 needs no window slot
    assert session.puback(sink.sent[0][2])  # type: ignore[arg-type]
    assert sink.sent[-1][0] == "t2"
    session.detach()
    session.deliver(Message("offline0", b"x", 0), 0, False, None)  # QoS 0 not kept offline
    resumed = FakeSink(window=2)
    session.attach(resumed)
    # unacknowledged t1, t2 resent first with DUP and their ids, in order (MQTT-4.4.0-1, 4.6.0-1)
    assert [(s[0], s[3]) for s in resumed.sent] == [("t1", True), ("t2", True)]


def test_session_qos2_outgoing_states_and_too_large() -> None:
    session = Session("c", "c", queue_limit=10)
    sink = FakeSink(window=5, limit=3)
    session.attach(sink)
    session.deliver(Message("big", b"xxxx", 2), 2, False, None)
    assert sink.sent == [] and session.inflight == {}  # over the client's limit: dropped (MQTT-3.1.2-25)
    session.deliver(Message("t", b"x", 2), 2, False, None)
    pid = sink.sent[0][2]
    assert pid is not None
    assert session.pubrec(pid, 0) is True
    session.detach()
    again = FakeSink(window=5)
    session.attach(again)
    assert again.pubrels == [pid] and again.sent == []  # PUBREL resent, never the PUBLISH (4.3.3-6)
    assert session.pubcomp(pid) and not session.inflight


def test_config_errors_name_file_line_and_field() -> None:
    with pytest.raises(ConfigError, match=r"f\.yaml: limits\.maximum_qos: 3 is out of range"):
        config_from_mapping({"limits": {"maximum_qos": 3}}, "f.yaml")
    with pytest.raises(ConfigError, match=r"listeners\[0\]\.transport"):
        config_from_mapping({"listeners": [{"port": 1, "transport": "quic"}]}, "f.yaml")
    with pytest.raises(ConfigError, match=r"unknown field"):
        config_from_mapping({"limitz": {}}, "f.yaml")
    with pytest.raises(ConfigError, match=r"acl\[0\]\.allow\[0\]\.topic"):
        config_from_mapping({"acl": [{"user": "u", "allow": [{"topic": "a/#/b"}]}]}, "f.yaml")
    with pytest.raises(ConfigError, match="personality"):
        config_from_mapping({"personality": "nope"}, "f.yaml")
    cfg = config_from_mapping({
        "listeners": [{"host": "127.0.0.1", "port": 0, "transport": "tcp"}],
        "auth": {"allow_anonymous": False, "users": {"harness": "pw1", "n": 123}},
        "acl": [{"user": "harness", "allow": [{"topic": "#", "access": "readwrite"}]}],
        "limits": {"max_connections": 5, "server_keep_alive": None, "max_queued_messages": 0},
        "denied_publish": "disconnect",
    })
    assert cfg.auth.users == {"harness": "pw1", "n": "123"} and cfg.limits.max_connections == 5
    assert parse_listen("0.0.0.0:1883").port == 1883 and parse_listen("[::1]:5").host == "::1"
    with pytest.raises(ConfigError):
        parse_listen("nohost")


def test_filter_covers() -> None:
    assert filter_covers("a/#", "a/b/+") and filter_covers("#", "#") and filter_covers("a/+", "a/b")
    assert not filter_covers("a/+", "a/#") and not filter_covers("a/b", "a/+")


def test_congestion_signalled_once_per_crossing() -> None:
    from harness.broker import sessions

    session = Session("c", "c", queue_limit=8)
    sink = FakeSink(window=1)
    session.attach(sink)
    sessions.congested.clear()
    for i in range(8):
        session.deliver(Message(f"t{i}", b"x", 1), 1, False, None)
    assert sessions.congested == [session]  # 1 in flight; the queue crossed 4 (half) once
    sessions.congested.clear()
    for i in range(4):
        session.deliver(Message(f"more{i}", b"x", 1), 1, False, None)
    assert sessions.congested == [] and session.dropped == 3  # 7 + 1 queued, 3 dropped; no new signal

    class Waiter:
        woken = 0

        def wake(self) -> None:
            self.woken += 1

    waiter = Waiter()
    session.waiters.append(waiter)
    while session.inflight and waiter.woken == 0:
        session.puback(next(iter(session.inflight)))
    assert waiter.woken == 1 and len(session.queue) <= session.low_water


def test_core_routing_wills_and_expiry_without_sockets() -> None:
    """The Broker core runs on fake sinks and a fake clock: no sockets, no event loop."""
    from harness.broker.config import BrokerConfig
    from harness.broker.core import Broker

    timers: list[tuple[float, object]] = []

    class Timer:
        def __init__(self, delay: float, fn: object) -> None:
            self.entry = (delay, fn)
            timers.append(self.entry)

        def cancel(self) -> None:
            if self.entry in timers:
                timers.remove(self.entry)

    broker = Broker(BrokerConfig(), Timer)  # type: ignore[arg-type]
    a, _ = broker.take_session("a", "a", clean=True)
    b, _ = broker.take_session("b", "b", clean=True)
    sink_a, sink_b = FakeSink(window=10), FakeSink(window=10)
    a.attach(sink_a)
    b.attach(sink_b)
    broker.subscribe(a, Subscription(a, "t/+", "t/+", 1, identifier=1))
    broker.subscribe(a, Subscription(a, "t/#", "t/#", 2, identifier=2))
    broker.subscribe(b, Subscription(b, "t/x", "t/x", 0, no_local=True))
    for member in (a, b):
        broker.subscribe(member, Subscription(member, "$share/g/s", "s", 0, share="g"))
    assert broker.publish(Message("t/x", b"1", 2, origin="b")) == 1  # b: No Local; a: one copy
    assert sink_a.sent == [("t/x", 2, 1, False)] and sink_b.sent == []
    for i in range(4):
        broker.publish(Message("s", b"%d" % i, 0))
    assert len([s for s in sink_a.sent if s[0] == "s"]) == 2 and len(sink_b.sent) == 2  # round robin
    # a 5.0-style session with a delayed will and an expiry
    b.expiry = 30
    b.will = Message("will/b", b"gone", 0, origin="b")
    b.will_delay = 5
    broker.connections["b"] = type("Conn", (), {"session": b})()
    broker.connection_closed(b, will=True)
    assert sorted(delay for delay, _ in timers) == [5, 30] and not b.connected
    will_timer = next(fn for delay, fn in timers if delay == 5)
    broker.subscribe(a, Subscription(a, "will/#", "will/#", 0))
    will_timer()  # type: ignore[operator]
    assert sink_a.sent[-1][0] == "will/b"
    expire = next(fn for delay, fn in timers if delay == 30)
    expire()  # type: ignore[operator]
    assert "b" not in broker.sessions  # expired: its subscriptions went with it
    assert all(sub.session is not b for sub in broker.index)
    assert {sub.session for sub in broker.index.match("t/x")[0]} == {a}
