"""MQTT 3.1.1 and 3.1 behaviour of the reference broker, driven byte-exactly with the raw client.

Statement ids are 3.1.1's unless a test says otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from broker_helpers import Client, uid

from harness.wire import (
    Connack,
    Connect,
    Pingreq,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
    Unsubscribe,
    Version,
    Will,
)

V31, V311 = Version.V31, Version.V311
MakeClient = Callable[..., Client]


# -- CONNECT / CONNACK ---------------------------------------------------------------------------

def test_session_present_semantics(client: MakeClient) -> None:
    cid = uid()
    c = client()
    assert c.connect(cid, clean=False).session_present is False  # MQTT-3.2.2-3
    c.subscribe("sp/" + cid, qos=1)
    c.disconnect()
    c = client()
    assert c.connect(cid, clean=False).session_present is True  # MQTT-3.2.2-2
    c.disconnect()
    c = client()
    assert c.connect(cid, clean=True).session_present is False  # MQTT-3.2.2-1: discarded
    c.disconnect()
    c = client()
    assert c.connect(cid, clean=False).session_present is False  # the clean session was not kept
    c.disconnect()


def test_v31_connack_has_no_session_present(client: MakeClient) -> None:
    cid = uid()
    c = client(V31)
    c.connect(cid, clean=False)
    c.subscribe("x/" + cid)
    c.disconnect()
    c = client(V31)
    connack = c.connect(cid, clean=False)
    assert connack.session_present is False and connack.ack_flags in (None, 0)


@pytest.mark.parametrize("level", [2, 6, 0x83])
def test_unsupported_protocol_level_gets_connack_1_then_close(client: MakeClient, level: int) -> None:
    c = client()
    c.send(Connect(client_id=uid(), protocol_level=level))
    got = c.expect_closed()
    assert len(got) == 1 and isinstance(got[0], Connack) and got[0].reason_code == 1  # MQTT-3.1.2-2


def test_unknown_protocol_name_closes_without_connack(client: MakeClient) -> None:
    c = client()
    c.send(Connect(client_id=uid(), protocol_name="MQTX"))
    assert c.expect_closed() == []  # MQTT-3.1.2-1 / 3.1.4-1


def test_reserved_connect_flag_closes_without_connack(client: MakeClient) -> None:
    c = client()
    c.send(Connect(client_id=uid(), reserved_flag=True))
    assert c.expect_closed() == []  # MQTT-3.1.2-3


def test_will_flags_without_will_close(client: MakeClient) -> None:
    c = client()
    c.send(Connect(client_id=uid(), connect_flags=0x02 | 0x08))  # will QoS 1 with will flag 0
    assert c.expect_closed() == []


def test_will_topic_must_be_a_topic_name(client: MakeClient) -> None:
    for topic in ("a/#", ""):
        c = client()
        c.send(Connect(client_id=uid(), will=Will(topic=topic, payload=b"x")))
        assert c.expect_closed() == []  # MQTT-3.1.3-11 / 4.7.3-1: not a valid topic name


def test_empty_client_id(client: MakeClient) -> None:
    c = client()
    c.send(Connect(client_id="", clean_session=False))
    got = c.expect_closed()
    assert [p.reason_code for p in got] == [2]  # MQTT-3.1.3-8
    c = client()
    c.connect("", clean=True)  # MQTT-3.1.3-6: assigned
    assert c.ping() == []


def test_v31_client_id_rules(client: MakeClient) -> None:
    for bad in ("", "a" * 24):
        c = client(V31)
        c.send(Connect(client_id=bad))
        assert [p.reason_code for p in c.expect_closed()] == [2]
    c = client(V31)
    c.connect("a" * 23)


def test_first_packet_must_be_connect(client: MakeClient) -> None:
    c = client()
    c.send(Pingreq())
    assert c.expect_closed() == []


def test_second_connect_closes(client: MakeClient) -> None:
    c = client()
    c.connect(uid())
    c.send(Connect(client_id=uid()))
    assert c.expect_closed() == []  # MQTT-3.1.0-2


def test_password_without_username_closes(client: MakeClient) -> None:
    c = client()
    c.send(Connect(client_id=uid(), password=b"pw"))
    assert c.expect_closed() == []  # MQTT-3.1.2-22


# -- QoS flows -----------------------------------------------------------------------------------

def test_qos_flows_and_downgrade(client: MakeClient) -> None:
    topic = "q/" + uid()
    sub = client()
    sub.connect(uid())
    assert sub.subscribe(topic, qos=2) == [2]
    pub = client()
    pub.connect(uid())
    for qos in (0, 1, 2):
        pub.publish(topic, b"m%d" % qos, qos=qos, packet_id=10 + qos)
        got = sub.receive_publish()
        assert (got.payload, got.qos, got.retain, got.dup) == (b"m%d" % qos, qos, False, False)
        if qos:
            assert got.packet_id != 0
    low = client()
    low.connect(uid())
    assert low.subscribe(topic, qos=1) == [1]
    pub.publish(topic, b"two", qos=2)
    assert low.receive_publish().qos == 1  # MQTT-3.8.4-6: min(published, granted)
    assert sub.receive_publish().qos == 2


def test_qos2_duplicate_before_pubrel_is_not_delivered_twice(client: MakeClient) -> None:
    topic = "q2/" + uid()
    sub = client()
    sub.connect(uid())
    sub.subscribe(topic, qos=2)
    pub = client()
    pub.connect(uid())
    pub.send(Publish(topic=topic, payload=b"once", qos=2, packet_id=7))
    assert pub.expect(Pubrec).packet_id == 7
    pub.send(Publish(topic=topic, payload=b"once", qos=2, packet_id=7, dup=True))
    assert pub.expect(Pubrec).packet_id == 7
    pub.send(Pubrel(packet_id=7))
    assert pub.expect(Pubcomp).packet_id == 7
    assert sub.receive_publish().payload == b"once"
    assert sub.ping() == []  # MQTT-4.3.3-2: not delivered twice
    pub.send(Pubrel(packet_id=99))  # unknown id: still completed
    assert pub.expect(Pubcomp).packet_id == 99


def test_outgoing_qos2_flow(client: MakeClient) -> None:
    topic = "o2/" + uid()
    sub = client()
    sub.connect(uid())
    sub.subscribe(topic, qos=2)
    pub = client()
    pub.connect(uid())
    pub.publish(topic, b"x", qos=2)
    got = sub.expect(Publish)
    sub.send(Pubrec(packet_id=got.packet_id))
    assert sub.expect(Pubrel).packet_id == got.packet_id  # MQTT-4.3.3-1
    sub.send(Pubcomp(packet_id=got.packet_id))
    assert sub.ping() == []


def test_inflight_window_and_order(broker, client: MakeClient) -> None:  # noqa: ANN001
    topic = "w/" + uid()
    sub = client()
    sub.connect(uid())
    sub.subscribe(topic, qos=1)
    pub = client()
    pub.connect(uid())
    for i in range(25):
        pub.publish(topic, b"%d" % i, qos=1, packet_id=i + 1)
    first = [sub.expect(Publish) for _ in range(20)]  # max_inflight default 20
    assert [p.payload for p in first] == [b"%d" % i for i in range(20)]  # MQTT-4.6.0-6
    assert sub.ping() == []  # window full: nothing more
    sub.send(Puback(packet_id=first[0].packet_id))
    assert sub.expect(Publish).payload == b"20"
    ids = {p.packet_id for p in first}
    assert len(ids) == 20  # MQTT-2.3.1-4: distinct ids in use


# -- retained ------------------------------------------------------------------------------------

def test_retained_set_replace_clear(client: MakeClient) -> None:
    topic = "r/" + uid()
    pub = client()
    pub.connect(uid())
    pub.publish(topic, b"one", qos=1, retain=True)
    pub.publish(topic, b"two", qos=0, retain=True)  # MQTT-3.3.1-7: replaces
    sub = client()
    sub.connect(uid())
    sub.subscribe(topic, qos=1)
    got = sub.receive_publish()
    assert (got.payload, got.retain, got.qos) == (b"two", True, 0)  # MQTT-3.3.1-6/-8
    pub.publish(topic, b"live", qos=1, retain=True)
    live = sub.receive_publish()
    assert (live.payload, live.retain) == (b"live", False)  # MQTT-3.3.1-9
    pub.publish(topic, b"not retained", qos=0, retain=False)  # MQTT-3.3.1-12: leaves it
    assert sub.receive_publish().retain is False
    sub.subscribe(topic, qos=1)  # MQTT-3.8.4-3: re-subscribing resends retained
    assert sub.receive_publish().payload == b"live"
    pub.publish(topic, b"", qos=0, retain=True)  # MQTT-3.3.1-10: forwarded, and clears
    cleared = sub.receive_publish()
    assert cleared.payload == b"" and cleared.retain is False
    fresh = client()
    fresh.connect(uid())
    fresh.subscribe(topic)
    assert fresh.ping() == []  # MQTT-3.3.1-11: nothing stored


def test_retained_wildcard_and_dollar(client: MakeClient) -> None:
    base = uid()
    pub = client()
    pub.connect(uid())
    pub.publish(f"{base}/a", b"a", retain=True)
    pub.publish(f"{base}/b/c", b"bc", retain=True)
    pub.publish(f"${base}/x", b"dollar", retain=True)
    sub = client()
    sub.connect(uid())
    sub.subscribe(f"{base}/#")
    got = sorted(sub.receive_publish().payload for _ in range(2))
    assert got == [b"a", b"bc"]
    sub.subscribe("+/a", packet_id=3)
    assert sub.receive_publish().payload == b"a"
    sub.subscribe("#", packet_id=4)
    payloads = {p.payload for p in sub.ping()}
    assert b"dollar" not in payloads  # MQTT-4.7.2-1
    sub.subscribe(f"${base}/+", packet_id=5)
    assert sub.receive_publish().payload == b"dollar"
    for t in (f"{base}/a", f"{base}/b/c", f"${base}/x"):
        pub.publish(t, b"", retain=True)


# -- wills ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [V311, V31])
def test_will_on_abnormal_close_not_on_disconnect(client: MakeClient, version: Version) -> None:
    topic = "will/" + uid()
    watcher = client(version)
    watcher.connect(uid())
    watcher.subscribe(topic, qos=1)
    polite = client(version)
    polite.connect(uid(), will=Will(topic=topic, payload=b"polite", qos=1))
    polite.disconnect()  # MQTT-3.1.2-10 / 3.14.4-3
    dying = client(version)
    dying.connect(uid(), will=Will(topic=topic, payload=b"gone", qos=1, retain=True))
    dying.close(abort=True)
    got = watcher.receive_publish()
    assert (got.payload, got.qos, got.retain) == (b"gone", 1, False)  # live delivery: RETAIN 0
    assert watcher.ping() == []  # the polite one's will never came
    late = client(version)
    late.connect(uid())
    late.subscribe(topic)
    assert late.receive_publish().retain is True  # MQTT-3.1.2-17: stored as retained
    late.publish(topic, b"", retain=True)


def test_will_on_protocol_violation(client: MakeClient) -> None:
    topic = "willv/" + uid()
    watcher = client()
    watcher.connect(uid())
    watcher.subscribe(topic)
    bad = client()
    bad.connect(uid(), will=Will(topic=topic, payload=b"violated"))
    bad.send(Publish(topic="a/+", payload=b"x"))  # wildcard topic: violation, close
    assert bad.expect_closed() == []
    assert watcher.receive_publish().payload == b"violated"


# -- sessions ------------------------------------------------------------------------------------

def test_persistent_session_queues_qos1_not_qos0(client: MakeClient) -> None:
    cid, topic = uid(), "ps/" + uid()
    c = client()
    c.connect(cid, clean=False)
    c.subscribe(topic, qos=2)
    c.disconnect()
    pub = client()
    pub.connect(uid())
    pub.publish(topic, b"q0", qos=0)
    pub.publish(topic, b"q1", qos=1)
    pub.publish(topic, b"q2", qos=2)
    c = client()
    assert c.connect(cid, clean=False).session_present is True
    got = [c.receive_publish() for _ in range(2)]
    assert [(p.payload, p.qos) for p in got] == [(b"q1", 1), (b"q2", 2)]  # MQTT-3.1.2-5
    assert c.ping() == []
    c.disconnect()
    c = client()
    c.connect(cid, clean=True)
    c.disconnect()


def test_redelivery_with_dup_on_reconnect(client: MakeClient) -> None:
    cid, topic = uid(), "dup/" + uid()
    c = client()
    c.connect(cid, clean=False)
    c.subscribe(topic, qos=2)
    pub = client()
    pub.connect(uid())
    pub.publish(topic, b"one", qos=1)
    pub.publish(topic, b"two", qos=2)
    first = c.expect(Publish)
    second = c.expect(Publish)
    c.send(Pubrec(packet_id=second.packet_id))
    assert c.expect(Pubrel).packet_id == second.packet_id
    c.close(abort=True)  # neither PUBACK nor PUBCOMP sent
    c = client()
    assert c.connect(cid, clean=False).session_present is True
    again = c.expect(Publish)
    assert (again.payload, again.packet_id, again.dup) == (b"one", first.packet_id, True)  # MQTT-4.4.0-1
    assert c.expect(Pubrel).packet_id == second.packet_id  # PUBREL resent, never the PUBLISH
    c.send(Puback(packet_id=again.packet_id))
    c.send(Pubcomp(packet_id=second.packet_id))
    assert c.ping() == []
    c.disconnect()
    c = client()
    c.connect(cid, clean=True)


def test_takeover_closes_old_connection_and_publishes_its_will(client: MakeClient) -> None:
    cid, topic = uid(), "to/" + uid()
    watcher = client()
    watcher.connect(uid())
    watcher.subscribe(topic)
    old = client()
    old.connect(cid, will=Will(topic=topic, payload=b"old will"))
    new = client()
    new.connect(cid)
    assert old.expect_closed() == []  # MQTT-3.1.4-2
    assert watcher.receive_publish().payload == b"old will"
    assert new.ping() == []


def test_keep_alive_enforced_at_one_and_a_half(client: MakeClient) -> None:
    topic = "ka/" + uid()
    watcher = client()
    watcher.connect(uid())
    watcher.subscribe(topic)
    c = client()
    c.connect(uid(), keep_alive=1, will=Will(topic=topic, payload=b"timeout"))
    start = time.monotonic()
    time.sleep(0.5)
    c.send(Pingreq())  # traffic resets the timer
    assert c.expect_closed(timeout=4) != []  # the PINGRESP, then the close
    elapsed = time.monotonic() - start
    assert 1.9 <= elapsed < 3.5, elapsed  # 0.5 s + 1.5 x 1 s
    assert watcher.receive_publish().payload == b"timeout"  # as a network failure: will sent


# -- subscriptions -------------------------------------------------------------------------------

def test_overlapping_subscriptions_one_copy_highest_qos(client: MakeClient) -> None:
    base = uid()
    sub = client()
    sub.connect(uid())
    sub.subscribe(Subscription(topic_filter=f"{base}/+", qos=0), Subscription(topic_filter=f"{base}/#", qos=2))
    pub = client()
    pub.connect(uid())
    pub.publish(f"{base}/x", b"x", qos=2)
    got = sub.receive_publish()
    assert got.qos == 2  # MQTT-3.3.5-1
    assert sub.ping() == []


def test_unsubscribe(client: MakeClient) -> None:
    topic = "u/" + uid()
    sub = client()
    sub.connect(uid())
    sub.subscribe(topic, "other/" + topic)
    sub.unsubscribe("nothing/here", packet_id=5)  # MQTT-3.10.4-5: answered anyway
    sub.unsubscribe(topic + "/#")  # not the same string: nothing removed (MQTT-3.10.4-1)
    pub = client()
    pub.connect(uid())
    pub.publish(topic, b"1")
    assert sub.receive_publish().payload == b"1"
    sub.unsubscribe(topic)
    pub.publish(topic, b"2")
    pub.publish("other/" + topic, b"3")
    assert [p.payload for p in sub.ping()] == [b"3"]  # MQTT-3.10.4-2


def test_dollar_topics_not_matched_by_leading_wildcards(client: MakeClient) -> None:
    base = uid()
    sub = client()
    sub.connect(uid())
    sub.subscribe("#", "+/" + base)
    pub = client()
    pub.connect(uid())
    pub.publish(f"${base}/x", b"hidden")
    pub.publish(f"$x/{base}", b"hidden too")
    assert all(p.payload not in (b"hidden", b"hidden too") for p in sub.ping())


# -- violations ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("SUBSCRIBE flags 0", lambda: Subscribe(packet_id=1, subscriptions=[Subscription(topic_filter="a")])),
        ("PUBLISH QoS 3", lambda: Publish(topic="a", qos=1, packet_id=1)),
        ("PUBREL flags 0", lambda: Pubrel(packet_id=1)),
        ("UNSUBSCRIBE flags 0", lambda: Unsubscribe(packet_id=1, topic_filters=["a"])),
    ],
)
def test_bad_fixed_header_flags_close(client: MakeClient, name: str, data: Callable) -> None:
    c = client()
    c.connect(uid())
    flags = {"PUBLISH QoS 3": 0b0110}.get(name, 0)
    c.send(data(), flags=flags)
    assert c.expect_closed() == []  # MQTT-2.2.2-2, 3.3.1-4, 3.6.1-1, 3.8.1-1, 3.10.1-1


def test_v31_accepts_retry_flags(client: MakeClient) -> None:
    c = client(V31)
    c.connect(uid())
    c.send(Subscribe(packet_id=3, subscriptions=[Subscription(topic_filter="a/" + uid())]), flags=0b1010)
    assert c.expect(Suback).packet_id == 3  # 3.1 allows DUP / QoS 1 flags on SUBSCRIBE (NOTES.md)


@pytest.mark.parametrize(
    "packet",
    [
        Subscribe(packet_id=1, subscriptions=[Subscription(topic_filter="a/#/b")]),
        Subscribe(packet_id=1, subscriptions=[Subscription(topic_filter="a+")]),
        Subscribe(packet_id=1, subscriptions=[]),  # MQTT-3.8.3-3
        Subscribe(packet_id=1, subscriptions=[Subscription(topic_filter="a", qos=3)]),  # MQTT-3.8.3-4
        Subscribe(packet_id=0, subscriptions=[Subscription(topic_filter="a")]),  # MQTT-2.3.1-1
        Unsubscribe(packet_id=1, topic_filters=[]),  # MQTT-3.10.3-2
        Publish(topic="a/#", payload=b"x"),  # MQTT-3.3.2-2
        Publish(topic="", payload=b"x"),  # MQTT-4.7.3-1
        Publish(topic="a", payload=b"x", qos=1, packet_id=0),
        Publish(topic=b"\xff\xfe", payload=b"x"),  # MQTT-1.5.3-1
        Publish(topic="a\x00b", payload=b"x"),  # MQTT-1.5.3-2
        Publish(topic="a", payload=b"x", dup=True),  # MQTT-3.3.1-2
    ],
    ids=["hash-mid", "plus-partial", "empty-subscribe", "sub-qos3", "pid0", "empty-unsubscribe",
         "wildcard-topic", "empty-topic", "publish-pid0", "bad-utf8", "nul", "dup-qos0"],
)
def test_protocol_violations_close(client: MakeClient, packet: object) -> None:
    c = client()
    c.connect(uid())
    c.send(packet)  # type: ignore[arg-type]
    assert c.expect_closed() == []  # MQTT-4.8.0-1
