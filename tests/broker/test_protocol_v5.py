"""MQTT 5.0 behaviour of the reference broker (statement ids are 5.0's)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from broker_helpers import BrokerProcess, Client, running_broker, uid

from harness.wire import (
    Connack,
    Connect,
    Disconnect,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Subscribe,
    Subscription,
    Version,
    Will,
)

V5 = Version.V5
MakeClient = Callable[..., Client]


@pytest.fixture(scope="module")
def limited() -> Iterator[BrokerProcess]:
    """A broker with every capability narrowed, to see each one announced and enforced."""
    with running_broker({
        "auth": {"allow_anonymous": True},
        "limits": {"max_packet_size": 2000, "receive_maximum": 2, "maximum_qos": 1, "retain_available": False,
                   "topic_alias_maximum": 0, "max_client_id_length": 30},
        "response_information": "resp",
    }) as proc:
        yield proc


def v5(client: MakeClient) -> Client:
    return client(V5)


def sub(topic_filter: str, qos: int = 0, **options: object) -> Subscription:
    return Subscription(topic_filter=topic_filter, qos=qos, **options)  # type: ignore[arg-type]


# -- CONNECT / CONNACK ---------------------------------------------------------------------------

def test_connack_properties_and_assigned_client_id(client: MakeClient) -> None:
    c = v5(client)
    connack = c.connect("")
    props = connack.properties
    assert props["assigned_client_identifier"].startswith("auto-")  # MQTT-3.2.2-16
    assert props["topic_alias_maximum"] == 10
    assert "response_information" not in props  # MQTT-3.1.2-28: not requested (and none configured)
    other = v5(client)
    assert other.connect("").properties["assigned_client_identifier"] != props["assigned_client_identifier"]


def test_narrowed_capabilities_are_announced(limited: BrokerProcess, make_client: MakeClient) -> None:
    c = make_client(limited.port, V5)
    connack = c.connect(uid(), properties={"request_response_information": 1})
    assert connack.properties == {
        "maximum_packet_size": 2000, "receive_maximum": 2, "maximum_qos": 1, "retain_available": 0,
        "response_information": f"resp/{connack.properties.get('response_information', '/').split('/', 1)[1]}",
    }
    assert c.subscribe("cap/" + uid(), qos=2) == [1]  # MQTT-3.2.2-10: accepted, granted 1


def test_will_beyond_capabilities_refused(limited: BrokerProcess, make_client: MakeClient) -> None:
    c = make_client(limited.port, V5)
    c.send(Connect(client_id=uid(), will=Will(topic="w", payload=b"x", qos=2)))
    assert [p.reason_code for p in c.expect_closed()] == [0x9B]  # MQTT-3.2.2-12
    c = make_client(limited.port, V5)
    c.send(Connect(client_id=uid(), will=Will(topic="w", payload=b"x", retain=True)))
    assert [p.reason_code for p in c.expect_closed()] == [0x9A]  # MQTT-3.2.2-13
    c = make_client(limited.port, V5)
    c.send(Connect(client_id="x" * 31))
    assert [p.reason_code for p in c.expect_closed()] == [0x85]


def test_publish_beyond_capabilities_disconnects(limited: BrokerProcess, make_client: MakeClient) -> None:
    for publish, code in ((Publish(topic="a", qos=2, packet_id=1), 0x9B),
                          (Publish(topic="a", retain=True), 0x9A),
                          (Publish(topic="a", payload=b"x" * 2000), 0x95)):
        c = make_client(limited.port, V5)
        c.connect(uid())
        c.send(publish)
        got = c.expect_closed()
        assert [(type(p), p.reason_code) for p in got] == [(Disconnect, code)]


def test_malformed_connect_gets_connack_reason(client: MakeClient) -> None:
    c = v5(client)
    c.send(Connect(client_id=uid(), reserved_flag=True))
    assert [p.reason_code for p in c.expect_closed()] == [0x81]  # MQTT-3.1.2-3
    c = v5(client)
    c.send(Connect(client_id=uid(), properties=[("session_expiry_interval", 1), ("session_expiry_interval", 2)]))
    assert [p.reason_code for p in c.expect_closed()] == [0x82]  # duplicated property


def test_wrong_protocol_name_closes(client: MakeClient) -> None:
    c = v5(client)
    c.send(Connect(client_id=uid(), protocol_name="MQIsdp"))
    got = c.expect_closed()
    assert len(got) <= 1 and all(isinstance(p, Connack) and p.reason_code >= 0x01 for p in got)


# -- sessions ------------------------------------------------------------------------------------

def test_session_expiry_and_clean_start(client: MakeClient) -> None:
    cid, topic = uid(), "se/" + uid()
    c = v5(client)
    assert c.connect(cid, clean=True, properties={"session_expiry_interval": 1}).session_present is False
    c.subscribe(sub(topic, 1))
    c.disconnect()
    pub = v5(client)
    pub.connect(uid())
    pub.publish(topic, b"kept", qos=1)
    c = v5(client)
    assert c.connect(cid, clean=False, properties={"session_expiry_interval": 1}).session_present is True
    assert c.receive_publish().payload == b"kept"  # MQTT-3.1.2-5
    c.disconnect()
    time.sleep(1.3)  # a timer, not a barrier: the session must have expired (MQTT-4.1.0-2)
    c = v5(client)
    assert c.connect(cid, clean=False).session_present is False
    c.disconnect()  # expiry 0: ends with the connection
    c = v5(client)
    assert c.connect(cid, clean=False).session_present is False


def test_disconnect_cannot_set_expiry_after_zero(client: MakeClient) -> None:
    c = v5(client)
    c.connect(uid())
    c.send(Disconnect(properties={"session_expiry_interval": 30}))
    assert [(type(p), p.reason_code) for p in c.expect_closed()] == [(Disconnect, 0x82)]


def test_takeover_sends_0x8e(client: MakeClient) -> None:
    cid = uid()
    old = v5(client)
    old.connect(cid)
    new = v5(client)
    new.connect(cid)
    assert [(type(p), p.reason_code) for p in old.expect_closed()] == [(Disconnect, 0x8E)]  # MQTT-3.1.4-3


# -- wills ---------------------------------------------------------------------------------------

def test_will_delay_properties_and_reason_0x04(client: MakeClient) -> None:
    topic = "wd/" + uid()
    watcher = v5(client)
    watcher.connect(uid())
    watcher.subscribe(sub(topic, 1))
    will = Will(topic=topic, payload=b"delayed", qos=1, properties={
        "will_delay_interval": 1, "content_type": "text/plain", "user_property": [("b", "2"), ("a", "1")]})
    dying = v5(client)
    dying.connect(uid(), will=will, properties={"session_expiry_interval": 10})
    dying.close(abort=True)
    assert watcher.ping() == []  # not yet: delayed
    got = watcher.receive_publish()  # arrives about a second later
    assert got.payload == b"delayed"
    assert got.properties["content_type"] == "text/plain"
    assert got.properties["user_property"] == [("b", "2"), ("a", "1")]  # MQTT-3.1.3-10: order kept
    # Reconnecting within the delay cancels the will (MQTT-3.1.3-9).
    cid = uid()
    back = v5(client)
    back.connect(cid, will=Will(topic=topic, payload=b"cancelled", properties={"will_delay_interval": 1}),
                 properties={"session_expiry_interval": 10})
    back.close(abort=True)
    back = v5(client)
    back.connect(cid, clean=False, properties={"session_expiry_interval": 0})
    # DISCONNECT 0x04 publishes the will (here the new connection's, none) ...
    explicit = v5(client)
    explicit.connect(uid(), will=Will(topic=topic, payload=b"explicit"))
    explicit.disconnect(reason_code=0x04)
    assert watcher.receive_publish().payload == b"explicit"
    time.sleep(1.2)
    assert watcher.ping() == []  # ... and the cancelled will never came


# -- publish properties --------------------------------------------------------------------------

def test_publish_properties_forwarded_unchanged(client: MakeClient) -> None:
    topic = "pp/" + uid()
    s = v5(client)
    s.connect(uid())
    s.subscribe(sub(topic, 1))
    p = v5(client)
    p.connect(uid())
    props = {"payload_format_indicator": 1, "content_type": "application/json", "response_topic": "resp/x",
             "correlation_data": b"\x00\x01", "user_property": [("z", "1"), ("a", "2"), ("z", "3")]}
    p.publish(topic, b"{}", qos=1, properties=dict(props))
    got = s.receive_publish()
    assert {k: got.properties[k] for k in props} == props  # MQTT-3.3.2-4, -15..-20


def test_message_expiry(client: MakeClient) -> None:
    cid, topic = uid(), "me/" + uid()
    c = v5(client)
    c.connect(cid, properties={"session_expiry_interval": 30})
    c.subscribe(sub(topic, 1))
    c.disconnect()
    p = v5(client)
    p.connect(uid())
    p.publish(topic, b"short", qos=1, properties={"message_expiry_interval": 1})
    p.publish(topic, b"long", qos=1, properties={"message_expiry_interval": 100})
    time.sleep(1.2)
    c = v5(client)
    c.connect(cid, clean=False, properties={"session_expiry_interval": 0})
    got = c.receive_publish()
    assert got.payload == b"long"  # MQTT-3.3.2-5: the expired one was deleted
    assert 98 <= got.properties["message_expiry_interval"] <= 99  # MQTT-3.3.2-6: time waited subtracted
    assert c.ping() == []


def test_puback_reason_no_matching_subscribers(client: MakeClient) -> None:
    c = v5(client)
    c.connect(uid())
    ack = c.publish("nobody/" + uid(), b"x", qos=1)
    assert ack is not None and ack.reason_code == 0x10
    c.send(Publish(topic="nobody/" + uid(), qos=2, packet_id=2))
    assert c.expect(Pubrec).reason_code == 0x10
    c.send(Pubrel(packet_id=2))
    assert c.expect(Pubcomp).reason_code == 0
    c.send(Pubrel(packet_id=77))
    comp = c.expect(Pubcomp)
    assert comp.reason_code == 0x92 and comp.properties.get("reason_string")


def test_request_problem_information_zero_strips_reason_strings(client: MakeClient) -> None:
    c = v5(client)
    c.connect(uid(), properties={"request_problem_information": 0})
    c.send(Pubrel(packet_id=77))
    comp = c.expect(Pubcomp)
    assert comp.reason_code == 0x92 and "reason_string" not in comp.properties  # MQTT-3.1.2-29


# -- subscriptions -------------------------------------------------------------------------------

def test_subscription_identifiers_overlapping(client: MakeClient) -> None:
    base = uid()
    s = v5(client)
    s.connect(uid())
    s.subscribe(sub(f"{base}/+", 1), properties={"subscription_identifier": 5})
    s.subscribe(sub(f"{base}/#", 0), properties={"subscription_identifier": 9}, packet_id=2)
    s.subscribe(sub(f"{base}/x/#", 0), packet_id=3)  # no identifier
    p = v5(client)
    p.connect(uid())
    p.publish(f"{base}/x", b"both", qos=1)
    got = s.receive_publish()
    assert got.qos == 1 and sorted(got.properties["subscription_identifier"]) == [5, 9]  # MQTT-3.3.4-3/-4
    assert s.ping() == []


def test_subscription_identifier_zero_is_protocol_error(client: MakeClient) -> None:
    c = v5(client)
    c.connect(uid())
    c.send(Subscribe(packet_id=1, subscriptions=[sub("a")], properties={"subscription_identifier": 0}))
    got = c.expect_closed()
    assert [(type(p), p.reason_code) for p in got] == [(Disconnect, 0x82)]


def test_no_local_and_retain_as_published(client: MakeClient) -> None:
    topic = "nl/" + uid()
    c = v5(client)
    c.connect(uid())
    c.subscribe(sub(topic, 1, no_local=True, retain_as_published=True))
    other = v5(client)
    other.connect(uid())
    other.subscribe(sub(topic, 1, retain_as_published=True))
    c.publish(topic, b"mine", qos=1, retain=True)
    assert c.ping() == []  # MQTT-3.8.3-3
    got = other.receive_publish()
    assert got.payload == b"mine" and got.retain is True  # MQTT-3.3.1-13
    plain = v5(client)
    plain.connect(uid())
    plain.subscribe(sub(topic, 0))
    assert plain.receive_publish().retain is True  # retained delivery on subscribe
    other.publish(topic, b"again", retain=True)
    assert plain.receive_publish().retain is False  # MQTT-3.3.1-12
    other.publish(topic, b"", retain=True)


def test_retain_handling(client: MakeClient) -> None:
    topic = "rh/" + uid()
    p = v5(client)
    p.connect(uid())
    p.publish(topic, b"kept", retain=True)
    c = v5(client)
    c.connect(uid())
    c.subscribe(sub(topic, 0, retain_handling=2))
    assert c.ping() == []  # MQTT-3.3.1-11
    c.subscribe(sub(topic, 0, retain_handling=1), packet_id=2)
    assert c.ping() == []  # MQTT-3.3.1-10: subscription existed
    c.subscribe(sub(topic, 0, retain_handling=0), packet_id=3)
    assert c.receive_publish().payload == b"kept"  # MQTT-3.3.1-9 / 3.8.4-4
    fresh = v5(client)
    fresh.connect(uid())
    fresh.subscribe(sub(topic, 0, retain_handling=1))
    assert fresh.receive_publish().payload == b"kept"
    p.publish(topic, b"", retain=True)


def test_shared_subscriptions(client: MakeClient) -> None:
    topic = "sh/" + uid()
    p = v5(client)
    p.connect(uid())
    p.publish(topic, b"retained", retain=True)
    members = []
    for _ in range(2):
        m = v5(client)
        m.connect(uid())
        assert m.subscribe(sub(f"$share/g/{topic}", 1)) == [1]
        members.append(m)
    for m in members:
        assert m.ping() == []  # no retained messages for shared subscriptions
    for i in range(4):
        p.publish(topic, b"%d" % i, qos=1, packet_id=i + 1)
    counts = [len([m.receive_publish() for _ in range(2)]) for m in members]
    assert counts == [2, 2]
    for m in members:
        assert m.ping() == []  # each message went to exactly one member
    bad = v5(client)
    bad.connect(uid())
    bad.send(Subscribe(packet_id=1, subscriptions=[sub(f"$share/g/{topic}", 0, no_local=True)]))
    assert [p.reason_code for p in bad.expect_closed()] == [0x82]  # MQTT-3.8.3-4
    p.publish(topic, b"", retain=True)


def test_unsuback_reason_codes(client: MakeClient) -> None:
    c = v5(client)
    c.connect(uid())
    c.subscribe(sub("us/" + uid()))
    unsuback = c.unsubscribe("us/none")
    assert unsuback.reason_codes == [0x11]


# -- topic aliases -------------------------------------------------------------------------------

def test_topic_alias_from_client(client: MakeClient) -> None:
    topic = "ta/" + uid()
    s = v5(client)
    s.connect(uid())
    s.subscribe(sub(topic))
    p = v5(client)
    p.connect(uid())
    p.publish(topic, b"1", properties={"topic_alias": 3})
    p.publish("", b"2", properties={"topic_alias": 3})  # MQTT-3.3.2-12
    assert [(m.topic, m.payload) for m in (s.receive_publish(), s.receive_publish())] == [(topic, b"1"), (topic, b"2")]
    p.send(Publish(topic="x", properties={"topic_alias": 11}))  # above the maximum 10
    assert [(type(x), x.reason_code) for x in p.expect_closed()] == [(Disconnect, 0x94)]
    q = v5(client)
    q.connect(uid())
    q.send(Publish(topic="", properties={"topic_alias": 4}))  # never set on this connection
    assert [x.reason_code for x in q.expect_closed()] == [0x82]


def test_topic_alias_to_client(client: MakeClient) -> None:
    topic = "tb/" + uid()
    s = v5(client)
    s.connect(uid(), properties={"topic_alias_maximum": 1})
    s.subscribe(sub(topic), sub(topic + "/other"))
    p = v5(client)
    p.connect(uid())
    for t in (topic, topic, topic + "/other"):
        p.publish(t, b"x")
    first, second, third = (s.expect(Publish) for _ in range(3))
    assert (first.topic, first.properties.get("topic_alias")) == (topic, 1)
    assert (second.topic, second.properties.get("topic_alias")) == ("", 1)
    assert third.topic == topic + "/other" and "topic_alias" not in third.properties  # MQTT-3.2.2-... max 1
    plain = v5(client)
    plain.connect(uid())
    plain.subscribe(sub(topic))
    p.publish(topic, b"x")
    assert "topic_alias" not in plain.expect(Publish).properties  # MQTT-3.1.2-27


# -- flow control and sizes ----------------------------------------------------------------------

def test_client_receive_maximum(client: MakeClient) -> None:
    topic = "rx/" + uid()
    s = v5(client)
    s.connect(uid(), properties={"receive_maximum": 2})
    s.subscribe(sub(topic, 1))
    p = v5(client)
    p.connect(uid())
    for i in range(4):
        p.publish(topic, b"%d" % i, qos=1, packet_id=i + 1)
    got = [s.expect(Publish), s.expect(Publish)]
    assert s.ping() == []  # MQTT-3.3.4-9: no more than 2 unacknowledged
    s.send(Puback(packet_id=got[0].packet_id))
    assert s.expect(Publish).payload == b"2"


def test_client_maximum_packet_size(client: MakeClient) -> None:
    topic = "mp/" + uid()
    s = v5(client)
    s.connect(uid(), properties={"maximum_packet_size": 100})
    s.subscribe(sub(topic, 1))
    p = v5(client)
    p.connect(uid())
    p.publish(topic, b"x" * 200, qos=1)
    p.publish(topic, b"small", qos=1, packet_id=2)
    assert s.receive_publish().payload == b"small"  # MQTT-3.1.2-24/-25: the big one was dropped
    assert s.ping() == []


def test_keep_alive_timeout_disconnect_reason(client: MakeClient) -> None:
    c = v5(client)
    c.connect(uid(), keep_alive=1)
    got = c.expect_closed(timeout=4)
    assert [(type(p), p.reason_code) for p in got] == [(Disconnect, 0x8D)]


def test_server_keep_alive_and_receive_maximum() -> None:
    with running_broker({"limits": {"server_keep_alive": 1, "receive_maximum": 2}}) as proc:
        c = Client(proc.port, V5)
        flood = Client(proc.port, V5)
        try:
            connack = c.connect(uid(), keep_alive=600)
            assert connack.properties["server_keep_alive"] == 1  # MQTT-3.2.2-22: the server's applies
            assert connack.properties["receive_maximum"] == 2
            start = time.monotonic()
            flood.connect(uid())
            for pid in (1, 2):  # QoS 2 without PUBREL: two unacknowledged, the limit
                flood.send(Publish(topic="rm", qos=2, packet_id=pid))
                flood.expect(Pubrec)
            flood.send(Publish(topic="rm", qos=2, packet_id=3))
            assert [(type(p), p.reason_code) for p in flood.expect_closed()] == [(Disconnect, 0x93)]
            assert [p.reason_code for p in c.expect_closed(timeout=4)] == [0x8D]
            assert 1.3 < time.monotonic() - start < 3.0
        finally:
            c.close()
            flood.close()


def test_protocol_error_after_connack_is_disconnect(client: MakeClient) -> None:
    c = v5(client)
    c.connect(uid())
    c.send(Publish(topic="a", properties={"subscription_identifier": [3]}))  # client may not send it
    assert [(type(p), p.reason_code) for p in c.expect_closed()] == [(Disconnect, 0x82)]
    c = v5(client)
    c.connect(uid())
    c.send(Subscribe(packet_id=1, subscriptions=[sub("a")]), flags=0)
    assert [(type(p), p.reason_code) for p in c.expect_closed()] == [(Disconnect, 0x81)]  # MQTT-3.8.1-1


def test_unavailable_subscription_features_are_announced_and_refused() -> None:
    """Wildcard, shared and identified subscriptions switched off: CONNACK says 0, a SUBSCRIBE using
    one is a Protocol Error answered with DISCONNECT 0xA2 / 0x9E / 0xA1 (5.0 §3.2.2.3.11-13)."""
    limits = {"wildcard_subscription_available": False, "shared_subscription_available": False,
              "subscription_identifier_available": False, "max_client_id_length": 23}
    with running_broker({"auth": {"allow_anonymous": True}, "limits": limits}) as proc:
        c = Client(proc.port, V5)
        props = c.connect(uid()).properties
        assert (props["wildcard_subscription_available"], props["shared_subscription_available"],
                props["subscription_identifier_available"]) == (0, 0, 0)
        assert c.subscribe("plain/" + uid(), qos=1) == [1]  # what it does offer still works
        for subscribe, code in ((Subscribe(packet_id=1, subscriptions=[sub("a/+")]), 0xA2),
                                (Subscribe(packet_id=1, subscriptions=[sub("$share/g/a")]), 0x9E),
                                (Subscribe(packet_id=1, subscriptions=[sub("a")], properties={"subscription_identifier": 5}), 0xA1)):
            c = Client(proc.port, V5)
            c.connect(uid())
            c.send(subscribe)
            assert [(type(p), p.reason_code) for p in c.expect_closed()] == [(Disconnect, code)]
        c = Client(proc.port, V5)
        assert c.connect("").properties["assigned_client_identifier"]  # an assigned id is not held to the limit


def test_limits_protocols_refuses_the_other_versions() -> None:
    """limits.protocols: the reference-limited target speaks 5.0 only, as its profile says (harness probe checks it)."""
    with running_broker({"auth": {"allow_anonymous": True}, "limits": {"protocols": ["5.0"]}}) as proc:
        assert Client(proc.port, V5).connect(uid()).reason_code == 0
        for version in (Version.V31, Version.V311):
            c = Client(proc.port, version)
            c.connect(uid()[:20], expect_code=1)  # unacceptable protocol version
            assert c.expect_closed() == []
