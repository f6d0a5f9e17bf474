"""encode(): the overrides that break a packet on purpose, and the field forms scenarios use."""

from __future__ import annotations

import pytest

from harness.wire import (
    PACKET_CLASSES,
    Connack,
    Connect,
    Decoded,
    Decoder,
    Malformed,
    Pingreq,
    Puback,
    Publish,
    RawField,
    Subscribe,
    Subscription,
    Version,
    Will,
    encode,
    encode_varint,
)

V311, V5 = Version.V311, Version.V5
H = bytes.fromhex


@pytest.mark.parametrize(
    "value, expected",
    [(0, "00"), (127, "7f"), (128, "80 01"), (16_383, "ff 7f"), (16_384, "80 80 01"), (2_097_151, "ff ff 7f"),
     (2_097_152, "80 80 80 01"), (268_435_455, "ff ff ff 7f"), (268_435_456, "80 80 80 80 01")],
)
def test_encode_varint_matches_the_spec_table(value: int, expected: str) -> None:
    # §1.5.5 / §2.2.3 table; the last value needs five bytes, which is how a scenario sends one.
    assert encode_varint(value) == H(expected)


def test_encode_varint_refuses_negative_values() -> None:
    with pytest.raises(ValueError):
        encode_varint(-1)


def test_flags_override_replaces_the_low_nibble() -> None:
    assert encode(Pingreq(), V311, flags=0xF) == H("cf 00")
    assert encode(Publish(topic="t", qos=1, packet_id=1), V311, flags=0)[0] == 0x30
    assert encode(Subscribe(packet_id=1, subscriptions=["a"]), V311)[0] == 0x82  # default 0010


def test_remaining_length_override_as_int_may_lie() -> None:
    assert encode(Pingreq(), V311, remaining_length=5) == H("c0 05")
    data = encode(Puback(packet_id=7), V311, remaining_length=200)
    assert data == H("40 c8 01 00 07")


def test_remaining_length_override_as_bytes_is_written_verbatim() -> None:
    assert encode(Pingreq(), V311, remaining_length=b"\x80\x00") == H("c0 80 00")
    assert encode(Pingreq(), V311, remaining_length=b"\xff\xff\xff\xff\x7f") == H("c0 ff ff ff ff 7f")


def test_truncate_cuts_the_finished_packet() -> None:
    full = encode(Connect(client_id="abc"), V311)
    assert encode(Connect(client_id="abc"), V311, truncate=5) == full[:5]
    # The decoder then waits for the rest: a truncated packet is incomplete, not malformed.
    assert Decoder(V311, role="server").feed(full[:5]) == []


def test_trailing_bytes_count_in_the_remaining_length() -> None:
    assert encode(Pingreq(), V311, trailing=b"\x01\x02") == H("c0 02 01 02")
    assert encode(Puback(packet_id=1), V311, trailing=b"\xff") == H("40 03 00 01 ff")


def test_body_replaces_variable_header_and_payload() -> None:
    assert encode(Connack(reason_code=5), V311, body=b"\x00") == H("20 01 00")
    assert encode(Connack(), V311, body=b"\x00\x00", trailing=b"\x01") == H("20 03 00 00 01")


def test_bytes_string_fields_keep_the_length_prefix() -> None:
    assert encode(Publish(topic=H("ed a0 80")), V311) == H("30 05 00 03 ed a0 80")


def test_raw_field_is_written_without_a_length_prefix() -> None:
    assert encode(Publish(topic=RawField(H("00 05 61"))), V311) == H("30 03 00 05 61")
    data = encode(Connect(client_id=RawField(b""), keep_alive=1), V311)
    assert data == H("10 0a 00 04") + b"MQTT" + H("04 02 00 01")


def test_str_fields_keep_lone_surrogates() -> None:
    assert encode(Publish(topic="\ud800"), V311) == H("30 05 00 03 ed a0 80")


def test_integers_are_written_modulo_their_width() -> None:
    assert encode(Puback(packet_id=0x1_0005), V311) == H("40 02 00 05")


def test_list_form_properties_keep_order_and_duplicates() -> None:
    data = encode(Connack(properties=[("maximum_qos", 1), ("retain_available", 0), ("maximum_qos", 0)]), V5)
    assert data == H("20 09 00 00 06 24 01 25 00 24 00")


def test_list_form_allows_int_ids_and_unknown_ids() -> None:
    data = encode(Connack(properties=[(0x24, 1), (0x05, RawField(b"\xaa"))]), V5)
    assert data == H("20 07 00 00 04 24 01 05 aa")


def test_raw_property_value_is_written_after_the_id() -> None:
    data = encode(Connack(properties={"receive_maximum": RawField(b"\x00")}), V5)  # one byte short
    assert data == H("20 05 00 00 02 21 00")


def test_properties_as_bytes_replace_the_whole_block() -> None:
    assert encode(Connack(properties=RawField(H("05 24 01"))), V5) == H("20 05 00 00 05 24 01")


def test_unknown_property_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="maximum_qox"):
        encode(Connack(properties={"maximum_qox": 1}), V5)


def test_properties_are_ignored_for_3_x() -> None:
    assert encode(Connack(properties={"maximum_qos": 1}), V311) == H("20 02 00 00")
    assert encode(Puback(packet_id=1, reason_code=0x80), V311) == H("40 02 00 01")


def test_publish_packet_id_rules() -> None:
    assert encode(Publish(topic="t", qos=1), V311) == H("32 05 00 01 74 00 00")  # None written as 0
    assert encode(Publish(topic="t", packet_id=9), V311) == H("30 05 00 01 74 00 09")  # QoS 0 with an id, on purpose


def test_connect_flags_follow_the_fields() -> None:
    data = encode(Connect(client_id="", clean_session=False, username="u", password=b"p",
                          will=Will(topic="w", payload=b"m", qos=2, retain=True)), V311)
    assert data[9] == 0b1111_0100
    assert encode(Connect(reserved_flag=True), V311)[9] == 0b0000_0011
    assert encode(Connect(connect_flags=0xFF), V311)[9] == 0xFF


def test_subscription_options_byte() -> None:
    sub = Subscription(topic_filter="a", qos=1, no_local=True, retain_as_published=True, retain_handling=2)
    assert encode(Subscribe(packet_id=1, subscriptions=[sub]), V5)[-1] == 0b0010_1101
    assert encode(Subscribe(packet_id=1, subscriptions=[sub]), V311)[-1] == 0b0000_0001  # 3.x: QoS only
    raw = Subscription(topic_filter="a", options=0xC0)
    assert encode(Subscribe(packet_id=1, subscriptions=[raw]), V5)[-1] == 0xC0


def test_packets_build_from_yaml_shaped_mappings() -> None:
    connect = PACKET_CLASSES["connect"](
        client_id="c", password="secret", will={"topic": "w", "payload": "bye", "qos": 1},
        properties={"user_property": [["a", "b"]], "session_expiry_interval": 5},
    )
    assert connect == Connect(client_id="c", password=b"secret", will=Will(topic="w", payload=b"bye", qos=1),
                              properties={"user_property": [("a", "b")], "session_expiry_interval": 5})
    subscribe = PACKET_CLASSES["subscribe"](packet_id=3, subscriptions=[{"topic_filter": "a/#", "qos": 2}, "b"],
                                            properties={"subscription_identifier": 7})
    assert subscribe.subscriptions == [Subscription(topic_filter="a/#", qos=2), Subscription(topic_filter="b")]
    assert subscribe.properties == {"subscription_identifier": [7]}
    publish = PACKET_CLASSES["publish"](topic="t", payload="héllo")
    assert publish.payload == "héllo".encode()
    # And what is built that way decodes back to itself.
    for packet, role in ((connect, "server"), (subscribe, "server"), (publish, "client")):
        (event,) = Decoder(V5, role=role).feed(encode(packet, V5))
        assert isinstance(event, Decoded) and event.packet == packet and not event.findings


def test_every_packet_class_has_defaults_and_a_type() -> None:
    assert len(PACKET_CLASSES) == 15
    for name, cls in PACKET_CLASSES.items():
        packet = cls()
        assert cls.TYPE.name.lower() == name
        encode(packet, V5)  # no field is required


def test_the_decoder_sees_each_override_for_what_it_is() -> None:
    # A lying remaining length that claims more: the decoder waits; that claims less: malformed leftovers.
    assert Decoder(V311).feed(encode(Puback(packet_id=1), V311, remaining_length=3)) == []
    (event,) = Decoder(V311).feed(encode(Puback(packet_id=1), V311, remaining_length=1) + b"\x00" * 4)
    assert isinstance(event, Malformed)
