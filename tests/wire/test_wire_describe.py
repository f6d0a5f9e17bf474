"""describe(), packet_fields(), hexdump(), reason names and version parsing."""

from __future__ import annotations

import pytest
import yaml

from harness.wire import (
    Connack,
    ConnackCode,
    Connect,
    Decoded,
    Decoder,
    Disconnect,
    Finding,
    PacketType,
    Publish,
    ReasonCode,
    Suback,
    Subscribe,
    Subscription,
    Version,
    Will,
    describe,
    encode,
    hexdump,
    packet_fields,
    reason_name,
)

_P = PacketType


@pytest.mark.parametrize(
    "text, version",
    [("3.1", Version.V31), ("3.1.1", Version.V311), ("5.0", Version.V5), ("5", Version.V5), (3, Version.V31),
     (4, Version.V311), (5, Version.V5), (3.1, Version.V31), (5.0, Version.V5), ("MQTT 5.0", Version.V5),
     (Version.V311, Version.V311)],
)
def test_version_parse(text: object, version: Version) -> None:
    assert Version.parse(text) is version  # type: ignore[arg-type]


def test_version_parse_rejects_unknown_versions() -> None:
    with pytest.raises(ValueError, match="3.2"):
        Version.parse("3.2")


def test_version_labels_and_protocol_names() -> None:
    assert [v.label for v in Version] == ["3.1", "3.1.1", "5.0"]
    assert [v.protocol_name for v in Version] == ["MQIsdp", "MQTT", "MQTT"]


@pytest.mark.parametrize(
    "packet_type, code, version, name",
    [
        (_P.CONNACK, 0x00, Version.V5, "Success"),
        (_P.DISCONNECT, 0x00, Version.V5, "Normal disconnection"),
        (_P.SUBACK, 0x00, Version.V5, "Granted QoS 0"),
        (_P.SUBACK, 0x02, Version.V5, "Granted QoS 2"),
        (_P.PUBACK, 0x10, Version.V5, "No matching subscribers"),
        (_P.UNSUBACK, 0x11, Version.V5, "No subscription existed"),
        (_P.AUTH, 0x19, Version.V5, "Re-authenticate"),
        (_P.CONNACK, 0x87, Version.V5, "Not authorized"),
        (_P.DISCONNECT, 0x8E, Version.V5, "Session taken over"),
        (_P.CONNACK, 0x00, Version.V311, "Connection Accepted"),
        (_P.CONNACK, 0x01, Version.V311, "Connection Refused, unacceptable protocol version"),
        (_P.CONNACK, 0x05, Version.V31, "Connection Refused, not authorized"),
        (_P.SUBACK, 0x80, Version.V311, "Failure"),
        (_P.SUBACK, 0x01, Version.V311, "Success - Maximum QoS 1"),
    ],
)
def test_reason_names_follow_the_spec_tables(packet_type: PacketType, code: int, version: Version, name: str) -> None:
    assert reason_name(packet_type, code, version) == name


def test_reason_names_for_codes_a_packet_does_not_define_never_raise() -> None:
    assert "not a PUBACK reason code" in reason_name(_P.PUBACK, 0x8A, Version.V5)
    assert "0xFF" in reason_name(_P.CONNACK, 0xFF, Version.V5)
    assert "reserved" in reason_name(_P.CONNACK, 6, Version.V311)
    assert "reserved" in reason_name(_P.SUBACK, 0x80, Version.V31)  # 3.1 has no failure code
    assert reason_name(99, 0, 5)  # not even a packet type


def test_reason_code_enums() -> None:
    assert ReasonCode.NORMAL_DISCONNECTION == ReasonCode.SUCCESS == ReasonCode.GRANTED_QOS_0 == 0
    assert ReasonCode.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED == 0xA2
    assert ConnackCode.NOT_AUTHORIZED == 5


def test_describe_is_one_line_with_named_codes() -> None:
    text = describe(Connack(reason_code=0x87, properties={"reason_string": "no"}), Version.V5)
    assert text == "CONNACK session_present=0 reason_code=0x87 (Not authorized) properties={'reason_string': 'no'}"
    assert describe(Connack(reason_code=1), Version.V311) == (
        "CONNACK session_present=0 reason_code=0x01 (Connection Refused, unacceptable protocol version)")
    text = describe(Publish(topic="a/b", payload=b"x" * 500, qos=1, packet_id=4))
    assert "\n" not in text and "packet_id=4" in text and "(500 bytes)" in text
    assert describe(Disconnect(), Version.V311) == "DISCONNECT"
    sub = describe(Subscribe(packet_id=2, subscriptions=[Subscription(topic_filter="t", qos=1)]), Version.V311)
    assert sub == "SUBSCRIBE packet_id=2 subscriptions=[{topic_filter='t' qos=1}]"


def test_describe_without_a_version_names_codes_sensibly() -> None:
    assert "(Connection Refused, not authorized)" in describe(Connack(reason_code=5))
    assert "(Granted QoS 1)" in describe(Suback(packet_id=1, reason_codes=[1]))


def test_packet_fields_are_plain_data_equal_to_yaml() -> None:
    packet = Connect(client_id="c", will=Will(topic="w", payload=b"m", properties={"user_property": [("a", "b")]}),
                     properties={"user_property": [("x", "y"), ("x", "z")], "receive_maximum": 5})
    fields = packet_fields(packet)
    expected = yaml.safe_load("""
        packet: connect
        client_id: c
        will: {topic: w, qos: 0, retain: false, properties: {user_property: [[a, b]]}}
        properties: {user_property: [[x, y], [x, z]], receive_maximum: 5}
        keep_alive: 60
    """)
    assert fields["will"].pop("payload") == b"m"  # bytes stay bytes; the matcher compares text to bytes
    for key, value in expected.items():
        assert fields[key] == value, key


def test_packet_fields_of_a_decoded_subscribe() -> None:
    data = encode(Subscribe(packet_id=1, subscriptions=[Subscription(topic_filter="a/+", qos=1, no_local=True)],
                            properties={"subscription_identifier": [9]}), Version.V5)
    (event,) = Decoder(Version.V5, role="server").feed(data)
    assert isinstance(event, Decoded)
    fields = packet_fields(event.packet)
    assert fields["subscriptions"] == [{"topic_filter": "a/+", "qos": 1, "no_local": True, "retain_as_published": False,
                                        "retain_handling": 0, "options": None}]
    assert fields["properties"] == {"subscription_identifier": [9]}
    assert type(fields["packet_id"]) is int


def test_hexdump_layout() -> None:
    dump = hexdump(bytes(range(0x41, 0x41 + 20)))
    lines = dump.splitlines()
    assert lines[0] == "00000000  41 42 43 44 45 46 47 48  49 4a 4b 4c 4d 4e 4f 50  |ABCDEFGHIJKLMNOP|"
    assert lines[1].startswith("00000010  51 52 53 54") and lines[1].endswith("|QRST|")
    assert lines[1].index("|") == lines[0].index("|")
    assert hexdump(b"") == ""
    assert hexdump(b"\x00\xff").endswith("|..|")


def test_finding_text_is_one_line() -> None:
    finding = Finding("MQTT-2.2.2-1", Version.V311, "flags 0x1", PacketType.PUBACK, True)
    assert str(finding) == "[MQTT-2.2.2-1, MQTT 3.1.1, fatal] PUBACK: flags 0x1"
