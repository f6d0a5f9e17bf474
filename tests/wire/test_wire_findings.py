"""For each finding kind, a crafted input that produces exactly that finding: rule, version, fatal flag.

Inputs are written as hex where the layout matters, so these do not lean on the encoder being right;
elsewhere `encode()` with overrides builds them (its own tests are in test_wire_encode.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness.wire import (
    Auth,
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
    Pubrec,
    RawField,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Version,
    Will,
    encode,
)

V31, V311, V5 = Version.V31, Version.V311, Version.V5
H = bytes.fromhex


@dataclass(frozen=True)
class Case:
    name: str
    version: Version | None  # the decoder's version
    role: str  # the decoder's side: "client" decodes what a server sent
    data: bytes
    rule: str
    fatal: bool
    reported_version: Version | None = None  # when the finding's version is not the decoder's


def e(packet: object, version: Version, **overrides: object) -> bytes:
    return encode(packet, version, **overrides)  # type: ignore[arg-type]


FINDING_CASES = [
    # Fixed-header flags.
    Case("puback flags 1 (3.1.1)", V311, "client", e(Puback(packet_id=1), V311, flags=1), "MQTT-2.2.2-1", True),
    Case("pubrel flags 0 from a client (5.0)", V5, "server", H("60 02 00 01"), "MQTT-2.1.3-1", True),
    Case("pubrel flags 0 from a server (5.0)", V5, "client", H("60 02 00 01"), "MQTT-2.1.3-1", True),
    Case("subscribe flags 0 (3.1.1)", V311, "server", e(Subscribe(packet_id=1, subscriptions=["a"]), V311, flags=0),
         "MQTT-2.2.2-1", True),
    Case("disconnect flags 1 (5.0)", V5, "server", H("e1 00"), "MQTT-2.1.3-1", True),
    Case("pingreq flags 1 (3.1: not fatal)", V31, "server", H("c1 00"), "MQTT-2.2.2-1", False),
    # Variable byte integers not in their shortest form.
    Case("remaining length 80 00 (5.0)", V5, "server", H("c0 80 00"), "MQTT-1.5.5-1", True),
    Case("remaining length 80 00 (3.1.1)", V311, "client", H("d0 80 00"), "§2.2.3", False),
    Case("property length 80 00 (5.0)", V5, "client", H("20 04 00 00 80 00"), "MQTT-1.5.5-1", True),
    Case("subscription identifier 81 00 (5.0)", V5, "server",
         e(Subscribe(packet_id=1, subscriptions=["a"], properties=[("subscription_identifier", RawField(H("81 00")))]), V5),
         "MQTT-1.5.5-1", True),
    # UTF-8.
    Case("surrogate in topic (3.1.1, from server)", V311, "client", e(Publish(topic=H("ed a0 80")), V311),
         "MQTT-1.5.3-1", True),
    Case("surrogate in topic (3.1.1, from client)", V311, "server", e(Publish(topic=H("ed a0 80")), V311),
         "MQTT-1.5.3-1", True),
    Case("invalid utf-8 in topic (5.0)", V5, "client", e(Publish(topic=H("61 ff")), V5), "MQTT-1.5.4-1", True),
    Case("overlong NUL in client id (5.0)", V5, "server", e(Connect(client_id=H("c0 80")), V5), "MQTT-1.5.4-1", True),
    Case("invalid utf-8 in 3.1 topic is not fatal", V31, "client", e(Publish(topic=H("61 ff")), V31),
         "MQTT-1.5.3-1", False),
    Case("U+0000 in topic (3.1.1)", V311, "client", e(Publish(topic="a\x00b"), V311), "MQTT-1.5.3-2", True),
    Case("U+0000 in topic filter (5.0)", V5, "server", e(Subscribe(packet_id=1, subscriptions=["a\x00"]), V5),
         "MQTT-1.5.4-2", True),
    Case("invalid utf-8 in user property (5.0)", V5, "client",
         e(Connack(properties={"user_property": [("k", H("ff"))]}), V5), "MQTT-1.5.4-1", True),
    Case("U+0000 in reason string (5.0)", V5, "client", e(Puback(packet_id=1, reason_code=0x80,
         properties={"reason_string": "a\x00"}), V5), "MQTT-1.5.4-2", True),
    Case("invalid utf-8 in user name (3.1.1)", V311, "server", e(Connect(client_id="c", username=H("fe")), V311),
         "MQTT-1.5.3-1", True),
    # Packet identifier 0.
    Case("subscribe packet id 0 (3.1.1)", V311, "server", e(Subscribe(packet_id=0, subscriptions=["a"]), V311),
         "MQTT-2.3.1-1", True),
    Case("unsubscribe packet id 0 (3.1)", V31, "server", e(Unsubscribe(packet_id=0, topic_filters=["a"]), V31),
         "MQTT-2.3.1-1", True),
    Case("qos 1 publish id 0 from a client (5.0)", V5, "server", e(Publish(topic="t", qos=1, packet_id=0), V5),
         "MQTT-2.2.1-3", True),
    Case("qos 2 publish id 0 from a server (5.0)", V5, "client", e(Publish(topic="t", qos=2, packet_id=0), V5),
         "MQTT-2.2.1-4", True),
    Case("subscribe packet id 0 (5.0)", V5, "server", e(Subscribe(packet_id=0, subscriptions=["a"]), V5),
         "MQTT-2.2.1-3", True),
    # PUBLISH header and topic.
    Case("publish qos 3", V311, "client", H("36 05 00 01 74 00 01"), "MQTT-3.3.1-4", True),
    Case("publish qos 3 (5.0, from client)", V5, "server", H("36 06 00 01 74 00 01 00"), "MQTT-3.3.1-4", True),
    Case("dup on qos 0", V311, "client", e(Publish(topic="t", dup=True), V311), "MQTT-3.3.1-2", False),
    Case("wildcard in topic name", V311, "client", e(Publish(topic="a/+"), V311), "MQTT-3.3.2-2", True),
    Case("hash in topic name (5.0)", V5, "server", e(Publish(topic="#"), V5), "MQTT-3.3.2-2", True),
    Case("empty topic (3.1.1)", V311, "client", e(Publish(topic=""), V311), "MQTT-4.7.3-1", True),
    Case("empty topic without alias (5.0)", V5, "client", e(Publish(topic=""), V5), "MQTT-4.7.3-1", True),
    Case("client publish with subscription identifier", V5, "server",
         e(Publish(topic="t", properties={"subscription_identifier": [1]}), V5), "MQTT-3.3.4-6", True),
    Case("response topic with wildcard", V5, "client",
         e(Publish(topic="t", properties={"response_topic": "r/#"}), V5), "MQTT-3.3.2-14", True),
    # 5.0 property table.
    Case("property not allowed on puback", V5, "client", e(Puback(packet_id=1, properties={"topic_alias": 3}), V5),
         "§2.2.2.2", True),
    Case("server reference not allowed on publish", V5, "server",
         e(Publish(topic="t", properties={"server_reference": "x"}), V5), "§2.2.2.2", True),
    Case("will delay interval not allowed on connect itself", V5, "server",
         e(Connect(client_id="c", properties={"will_delay_interval": 1}), V5), "§2.2.2.2", True),
    Case("session expiry not allowed in will properties", V5, "server",
         e(Connect(client_id="c", will=Will(topic="w", properties={"session_expiry_interval": 1})), V5),
         "§2.2.2.2", True),
    Case("duplicated property", V5, "client", e(Connack(properties=[("maximum_qos", 1), ("maximum_qos", 0)]), V5),
         "§2.2.2.2", True),
    Case("duplicated subscription identifier on subscribe", V5, "server",
         e(Subscribe(packet_id=1, subscriptions=["a"], properties=[("subscription_identifier", 1),
                                                                  ("subscription_identifier", 2)]), V5),
         "§2.2.2.2", True),
    Case("unknown property id", V5, "client", e(Connack(properties=[(0x05, RawField(b"\x00"))]), V5),
         "§2.2.2.2", True),
    Case("payload format indicator 2", V5, "client", e(Publish(topic="t", properties={"payload_format_indicator": 2}), V5),
         "§3.3.2.3.2", True),
    Case("will payload format indicator 2", V5, "server",
         e(Connect(client_id="c", will=Will(topic="w", properties={"payload_format_indicator": 2})), V5),
         "§3.1.3.2.3", True),
    Case("maximum qos 2", V5, "client", e(Connack(properties={"maximum_qos": 2}), V5), "§3.2.2.3.4", True),
    Case("receive maximum 0 on connack", V5, "client", e(Connack(properties={"receive_maximum": 0}), V5),
         "§3.2.2.3.3", True),
    Case("receive maximum 0 on connect", V5, "server", e(Connect(properties={"receive_maximum": 0}), V5),
         "§3.1.2.11.3", True),
    Case("maximum packet size 0 on connect", V5, "server", e(Connect(properties={"maximum_packet_size": 0}), V5),
         "§3.1.2.11.4", True),
    Case("request problem information 2", V5, "server",
         e(Connect(properties={"request_problem_information": 2}), V5), "§3.1.2.11.7", True),
    Case("retain available 2", V5, "client", e(Connack(properties={"retain_available": 2}), V5), "§3.2.2.3.5", True),
    Case("topic alias 0", V5, "client", e(Publish(topic="t", properties={"topic_alias": 0}), V5), "MQTT-3.3.2-8", True),
    Case("subscription identifier 0 on subscribe", V5, "server",
         e(Subscribe(packet_id=1, subscriptions=["a"], properties={"subscription_identifier": 0}), V5),
         "§3.8.2.1.2", True),
    Case("server disconnect with session expiry", V5, "client",
         e(Disconnect(reason_code=0x8B, properties={"session_expiry_interval": 5}), V5), "MQTT-3.14.2-2", True),
    Case("connack without property length", V5, "client", H("20 02 00 00"), "MQTT-2.2.2-1", True),
    Case("auth with a reason code but no property length", V5, "server", H("f0 01 18"), "MQTT-2.2.2-1", True),
    # Packet types the sender may not send.
    Case("server sends connect (3.1.1)", V311, "client", e(Connect(client_id="c"), V311), "§2.2.1", True),
    Case("server sends subscribe (5.0)", V5, "client", e(Subscribe(packet_id=1, subscriptions=["a"]), V5),
         "§2.1.2", True),
    Case("server sends unsubscribe (3.1)", V31, "client", e(Unsubscribe(packet_id=1, topic_filters=["a"]), V31),
         "§2.2.1", True),
    Case("server sends pingreq (5.0)", V5, "client", e(Pingreq(), V5), "§2.1.2", True),
    Case("client sends connack (3.1.1)", V311, "server", e(Connack(), V311), "§2.2.1", True),
    Case("client sends suback (5.0)", V5, "server", e(Suback(packet_id=1, reason_codes=[0]), V5), "§2.1.2", True),
    Case("client sends unsuback (3.1.1)", V311, "server", e(Unsuback(packet_id=1), V311), "§2.2.1", True),
    Case("client sends pingresp (5.0)", V5, "server", e(Pingresp(), V5), "§2.1.2", True),
    # 3.x return codes and acknowledge flags.
    Case("connack return code 6 (3.1.1)", V311, "client", H("20 02 00 06"), "§3.2.2.3", True),
    Case("connack return code 6 (3.1)", V31, "client", H("20 02 00 06"), "§3.2.2.3", False),
    Case("connack reserved ack flags (3.1.1)", V311, "client", H("20 02 02 00"), "§3.2.2.1", True),
    Case("connack reserved ack flags (5.0)", V5, "client", H("20 03 80 00 00"), "MQTT-3.2.2-1", True),
    Case("connack session present in 3.1", V31, "client", H("20 02 01 00"), "§3.2", False),
    Case("session present with a refusal (3.1.1)", V311, "client", H("20 02 01 05"), "MQTT-3.2.2-4", False),
    Case("session present with a refusal (5.0)", V5, "client", H("20 03 01 87 00"), "MQTT-3.2.2-6", False),
    Case("suback return code 3 (3.1.1)", V311, "client", H("90 03 00 01 03"), "MQTT-3.9.3-2", True),
    Case("suback 0x80 in 3.1", V31, "client", H("90 03 00 01 80"), "MQTT-3.9.3-2", False),
    # 5.0 reason codes per packet type.
    Case("connack reason 0x01", V5, "client", H("20 03 00 01 00"), "MQTT-3.2.2-8", True),
    Case("puback reason 0x92", V5, "client", H("40 03 00 01 92"), "MQTT-3.4.2-1", True),
    Case("pubrec reason 0x04", V5, "server", H("50 03 00 01 04"), "MQTT-3.5.2-1", True),
    Case("pubrel reason 0x10", V5, "client", H("62 03 00 01 10"), "MQTT-3.6.2-1", True),
    Case("pubcomp reason 0x80", V5, "server", H("70 03 00 01 80"), "MQTT-3.7.2-1", True),
    Case("suback reason 0x03", V5, "client", H("90 04 00 01 00 03"), "MQTT-3.9.3-2", True),
    Case("unsuback reason 0x10", V5, "client", H("b0 04 00 01 00 10"), "MQTT-3.11.3-2", True),
    Case("disconnect reason 0x01", V5, "server", H("e0 01 01"), "MQTT-3.14.2-1", True),
    Case("auth reason 0x01", V5, "client", H("f0 02 01 00"), "MQTT-3.15.2-1", True),
    Case("server sends disconnect 0x04", V5, "client", H("e0 01 04"), "MQTT-3.14.2-1", False),
    Case("client sends disconnect 0x8e", V5, "server", H("e0 01 8e"), "MQTT-3.14.2-1", False),
    # CONNECT.
    Case("protocol name MQTX (3.1.1)", V311, "server", e(Connect(client_id="c", protocol_name="MQTX"), V311),
         "MQTT-3.1.2-1", True),
    Case("protocol name MQTT with level 3", None, "server", e(Connect(client_id="c", protocol_name="MQTT"), V31),
         "MQTT-3.1.2-1", True, V31),
    Case("protocol level 6 (5.0)", V5, "server", e(Connect(client_id="c", protocol_level=6), V5), "MQTT-3.1.2-2", True),
    Case("level 5 connect on a 3.1.1 connection", V311, "server", e(Connect(client_id="c"), V5), "MQTT-3.1.2-2", True),
    Case("connect reserved flag (3.1.1)", V311, "server", e(Connect(client_id="c", reserved_flag=True), V311),
         "MQTT-3.1.2-3", True),
    Case("connect reserved flag (5.0)", V5, "server", e(Connect(client_id="c", reserved_flag=True), V5),
         "MQTT-3.1.2-3", True),
    Case("will qos without will flag (3.1.1)", V311, "server", e(Connect(client_id="c", connect_flags=0x0A), V311),
         "MQTT-3.1.2-13", True),
    Case("will qos without will flag (5.0)", V5, "server", e(Connect(client_id="c", connect_flags=0x0A), V5),
         "MQTT-3.1.2-11", True),
    Case("will retain without will flag (3.1.1)", V311, "server", e(Connect(client_id="c", connect_flags=0x22), V311),
         "MQTT-3.1.2-15", True),
    Case("will retain without will flag (5.0)", V5, "server", e(Connect(client_id="c", connect_flags=0x22), V5),
         "MQTT-3.1.2-13", True),
    Case("will qos 3 (3.1.1)", V311, "server", e(Connect(client_id="c", will=Will(topic="w", qos=3)), V311),
         "MQTT-3.1.2-14", True),
    Case("will qos 3 (5.0)", V5, "server", e(Connect(client_id="c", will=Will(topic="w", qos=3)), V5),
         "MQTT-3.1.2-12", True),
    Case("password without user name (3.1.1)", V311, "server", e(Connect(client_id="c", password=b"p"), V311),
         "MQTT-3.1.2-22", True),
    Case("password without user name (3.1)", V31, "server", e(Connect(client_id="c", password=b"p"), V31),
         "MQTT-3.1.2-22", False),
    # SUBSCRIBE and UNSUBSCRIBE payloads.
    Case("subscribe with no filters (3.1.1)", V311, "server", e(Subscribe(packet_id=1), V311), "MQTT-3.8.3-3", True),
    Case("subscribe with no filters (5.0)", V5, "server", e(Subscribe(packet_id=1), V5), "MQTT-3.8.3-2", True),
    Case("unsubscribe with no filters (3.1.1)", V311, "server", e(Unsubscribe(packet_id=1), V311),
         "MQTT-3.10.3-2", True),
    Case("unsubscribe with no filters (5.0)", V5, "server", e(Unsubscribe(packet_id=1), V5), "MQTT-3.10.3-2", True),
    Case("subscription options reserved bits (3.1.1)", V311, "server",
         e(Subscribe(packet_id=1, subscriptions=[Subscription(topic_filter="a", options=0x04)]), V311),
         "MQTT-3.8.3-4", True),
    Case("subscription qos 3 (3.1.1)", V311, "server",
         e(Subscribe(packet_id=1, subscriptions=[Subscription(topic_filter="a", qos=3)]), V311), "MQTT-3.8.3-4", True),
    Case("subscription qos 3 (3.1: should, not must)", V31, "server",
         e(Subscribe(packet_id=1, subscriptions=[Subscription(topic_filter="a", qos=3)]), V31), "MQTT-3.8.3-4", False),
    Case("subscription options reserved bits (5.0)", V5, "server",
         e(Subscribe(packet_id=1, subscriptions=[Subscription(topic_filter="a", options=0x40)]), V5),
         "MQTT-3.8.3-5", True),
    Case("subscription qos 3 (5.0)", V5, "server",
         e(Subscribe(packet_id=1, subscriptions=[Subscription(topic_filter="a", qos=3)]), V5), "§3.8.3.1", True),
    Case("retain handling 3 (5.0)", V5, "server",
         e(Subscribe(packet_id=1, subscriptions=[Subscription(topic_filter="a", retain_handling=3)]), V5),
         "§3.8.3.1", True),
    Case("no local on a shared subscription", V5, "server",
         e(Subscribe(packet_id=1, subscriptions=[Subscription(topic_filter="$share/g/a", no_local=True)]), V5),
         "MQTT-3.8.3-4", True),
    # Topic filter syntax: reported, not fatal.
    Case("hash not last (3.1.1)", V311, "server", e(Subscribe(packet_id=1, subscriptions=["a/#/b"]), V311),
         "MQTT-4.7.1-2", False),
    Case("hash not last (5.0)", V5, "server", e(Subscribe(packet_id=1, subscriptions=["a#"]), V5),
         "MQTT-4.7.1-1", False),
    Case("plus inside a level (3.1.1)", V311, "server", e(Unsubscribe(packet_id=1, topic_filters=["a+/b"]), V311),
         "MQTT-4.7.1-3", False),
    Case("plus inside a level (5.0)", V5, "server", e(Subscribe(packet_id=1, subscriptions=["a/b+"]), V5),
         "MQTT-4.7.1-2", False),
    Case("empty topic filter", V311, "server", e(Subscribe(packet_id=1, subscriptions=[""]), V311),
         "MQTT-4.7.3-1", False),
    Case("empty share name", V5, "server", e(Subscribe(packet_id=1, subscriptions=["$share//a"]), V5),
         "MQTT-4.8.2-1", False),
    Case("share name without a filter", V5, "server", e(Subscribe(packet_id=1, subscriptions=["$share/g"]), V5),
         "MQTT-4.8.2-2", False),
]


@pytest.mark.parametrize("case", FINDING_CASES, ids=[c.name for c in FINDING_CASES])
def test_crafted_input_gives_exactly_that_finding(case: Case) -> None:
    events = Decoder(case.version, role=case.role).feed(case.data)  # type: ignore[arg-type]
    assert len(events) == 1, events
    (event,) = events
    assert isinstance(event, Decoded), event
    assert [f.rule for f in event.findings] == [case.rule], [str(f) for f in event.findings]
    (finding,) = event.findings
    assert finding.fatal is case.fatal
    assert finding.version is (case.reported_version or case.version)
    assert finding.packet_type is PacketType(case.data[0] >> 4)
    assert finding.message and "\n" not in finding.message


def test_every_case_is_clean_when_fixed() -> None:
    # Guard against cases that only "pass" because everything produces findings: the same packets,
    # made valid, produce none.
    clean = [
        (V311, "client", e(Puback(packet_id=1), V311)),
        (V5, "server", H("62 02 00 01")),
        (V5, "server", H("c0 00")),
        (V5, "client", H("20 03 00 00 00")),
        (V311, "client", e(Publish(topic="a/b"), V311)),
        (V5, "client", e(Publish(topic="", properties={"topic_alias": 1}), V5)),
        (V5, "client", e(Publish(topic="t", properties={"subscription_identifier": [1, 2]}), V5)),
        (V5, "server", e(Connect(client_id="c", password=b"p"), V5)),  # 5.0 allows a lone password
        (V31, "server", H("6a 02 00 01")),  # 3.1 PUBREL retry with DUP and QoS 1
        (V31, "server", H("82 06 00 01 00 01 61 01")),  # 3.1 SUBSCRIBE with QoS 1 header
        (V31, "server", e(Subscribe(packet_id=1), V31)),  # 3.1 does not forbid an empty SUBSCRIBE
        (V311, "client", H("90 03 00 01 80")),
        (V5, "server", e(Subscribe(packet_id=1, subscriptions=["$share/g/a/#", "+/+"]), V5)),
    ]
    for version, role, data in clean:
        (event,) = Decoder(version, role=role).feed(data)  # type: ignore[arg-type]
        assert isinstance(event, Decoded) and event.findings == [], (data.hex(" "), event)


def test_decoded_fields_keep_what_was_received() -> None:
    (event,) = Decoder(V5).feed(e(Publish(topic=H("61 ff")), V5))
    assert isinstance(event, Decoded)
    assert event.packet.topic == H("61 ff")  # type: ignore[attr-defined]  # bytes, since not UTF-8
    (event,) = Decoder(V311, role="server").feed(e(Connect(client_id="c", connect_flags=0x0A), V311))
    assert isinstance(event, Decoded)
    assert event.packet.connect_flags == 0x0A  # type: ignore[attr-defined]
    (event,) = Decoder(V311).feed(H("20 02 02 00"))
    assert isinstance(event, Decoded) and event.packet.ack_flags == 2  # type: ignore[attr-defined]
    (event,) = Decoder(V5).feed(e(Connack(properties=[(0x05, RawField(b"\x00")), ("maximum_qos", 1)]), V5))
    # An unknown id ends the property block, but the packet is still decoded.
    assert isinstance(event, Decoded) and event.packet.properties == {}  # type: ignore[attr-defined]


def test_several_findings_in_one_packet_are_all_reported() -> None:
    data = e(Publish(topic="a/#", qos=1, packet_id=0, dup=False), V311, flags=0b0110 | 0b1000)
    (event,) = Decoder(V311).feed(data)
    assert isinstance(event, Decoded)
    assert sorted(f.rule for f in event.findings) == ["MQTT-2.3.1-1", "MQTT-3.3.1-4", "MQTT-3.3.2-2"]


@dataclass(frozen=True)
class MalformedCase:
    name: str
    version: Version | None
    role: str
    data: bytes
    rule: str


MALFORMED_CASES = [
    MalformedCase("packet type 0 (3.1.1)", V311, "client", H("00 00"), "§2.2.1"),
    MalformedCase("packet type 0 (5.0)", V5, "server", H("00 00"), "§2.1.2"),
    MalformedCase("auth in 3.1.1", V311, "client", H("f0 00"), "§2.2.1"),
    MalformedCase("auth before a connect teaches the version", None, "server", H("f0 00"), "§2.2.1"),
    MalformedCase("five-byte remaining length (3.1.1)", V311, "client", H("30 ff ff ff ff 01"), "§2.2.3"),
    MalformedCase("five-byte remaining length (5.0)", V5, "client", H("30 80 80 80 80"), "§2.1.4"),
    MalformedCase("topic overruns the packet", V311, "client", e(Publish(topic=RawField(H("00 0a 61 62"))), V311), "§2.2.3"),
    MalformedCase("pingresp with a body", V311, "client", H("d0 01 00"), "§2.2.3"),
    MalformedCase("3.1.1 puback with a reason code", V311, "client", H("40 03 00 01 00"), "§2.2.3"),
    MalformedCase("3.1.1 unsuback with a reason code", V311, "client", H("b0 03 00 01 00"), "§2.2.3"),
    MalformedCase("connack too short", V5, "client", H("20 01 00"), "§2.1.4"),
    MalformedCase("property length overruns", V5, "client", H("20 04 00 00 05 24"), "§2.1.4"),
    MalformedCase("property value overruns its block", V5, "client", H("20 06 00 00 02 21 00 01"), "§2.1.4"),
    MalformedCase("five-byte property length", V5, "client", H("20 07 00 00 80 80 80 80 01"), "§1.5.5"),
    MalformedCase("user name flag without user name (3.1.1)", V311, "server",
                  e(Connect(client_id="c", connect_flags=0x82), V311), "MQTT-3.1.2-19"),
    MalformedCase("password flag without password (3.1.1)", V311, "server",
                  e(Connect(client_id="c", username="u", connect_flags=0xC2), V311), "MQTT-3.1.2-21"),
    MalformedCase("user name flag without user name (5.0)", V5, "server",
                  e(Connect(client_id="c", connect_flags=0x82), V5), "MQTT-3.1.2-17"),
    MalformedCase("password flag without password (5.0)", V5, "server",
                  e(Connect(client_id="c", connect_flags=0x42), V5), "MQTT-3.1.2-19"),
    MalformedCase("connect with bytes after the payload", V311, "server",
                  e(Connect(client_id="c"), V311, trailing=b"\x00\x01u"), "§2.2.3"),
    MalformedCase("connect cut before the client id", V311, "server", e(Connect(), V311, body=H("00 04 4d 51 54 54 04 02 00 3c")),
                  "§2.2.3"),
]


@pytest.mark.parametrize("case", MALFORMED_CASES, ids=[c.name for c in MALFORMED_CASES])
def test_crafted_input_gives_a_malformed_event(case: MalformedCase) -> None:
    decoder = Decoder(case.version, role=case.role)  # type: ignore[arg-type]
    events = decoder.feed(case.data)
    assert len(events) == 1, events
    (event,) = events
    assert isinstance(event, Malformed), event
    assert event.finding.rule == case.rule, str(event.finding)
    assert event.finding.fatal
    assert event.raw == case.data
    assert decoder.failed is event


def test_3_1_lets_the_remaining_length_win_over_the_user_name_and_password_flags() -> None:
    data = e(Connect(client_id="c", connect_flags=0xC2), V31)
    (event,) = Decoder(V31, role="server").feed(data)
    assert isinstance(event, Decoded) and event.findings == []
    assert event.packet.username is None and event.packet.password is None  # type: ignore[attr-defined]
    assert event.packet.connect_flags == 0xC2  # type: ignore[attr-defined]


def test_findings_name_the_right_version_after_learning_it() -> None:
    decoder = Decoder(None, role="server")
    decoder.feed(e(Connect(client_id="c"), V5))
    (event,) = decoder.feed(H("60 02 00 01"))  # PUBREL with flags 0
    assert isinstance(event, Decoded)
    assert [(f.rule, f.version) for f in event.findings] == [("MQTT-2.1.3-1", V5)]


@pytest.mark.parametrize("packet", [Pubrec(packet_id=1), Pubcomp(packet_id=1), Auth(), Disconnect()])
def test_both_directions_accept_shared_packets(packet: object) -> None:
    for role in ("client", "server"):
        (event,) = Decoder(V5, role=role).feed(e(packet, V5))  # type: ignore[arg-type]
        assert isinstance(event, Decoded) and event.findings == []
