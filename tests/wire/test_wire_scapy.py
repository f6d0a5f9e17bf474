"""Cross-check against scapy's MQTT layer, an independent implementation, for 3.1 and 3.1.1.

Our encodings must dissect in scapy to the same field values, and scapy-built packets must decode in
ours to the same fields. scapy has no 5.0 properties, so 5.0 is not cross-checked here.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.contrib.mqtt import (
    MQTT,
    MQTTConnack,
    MQTTConnect,
    MQTTDisconnect,
    MQTTPuback,
    MQTTPubcomp,
    MQTTPublish,
    MQTTPubrec,
    MQTTPubrel,
    MQTTSuback,
    MQTTSubscribe,
    MQTTTopic,
    MQTTTopicQOS,
    MQTTUnsuback,
    MQTTUnsubscribe,
)

from harness.wire import (
    Connack,
    Connect,
    Decoded,
    Decoder,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Version,
    Will,
    encode,
)

V3X = [Version.V31, Version.V311]
ascii_text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters="+#"), min_size=1, max_size=10)


def decode_one(data: bytes, version: Version, role: str) -> Packet:
    (event,) = Decoder(version, role=role).feed(data)  # type: ignore[arg-type]
    assert isinstance(event, Decoded), event
    assert event.findings == [], [str(f) for f in event.findings]
    return event.packet


def dissect(data: bytes) -> Any:
    frame = MQTT(data)
    assert bytes(frame) == data  # scapy consumed and can rebuild exactly these bytes
    return frame


# Our encoding -> scapy ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", V3X, ids=lambda v: v.label)
@settings(max_examples=25, deadline=None)
@given(client_id=ascii_text, username=st.none() | ascii_text, password=st.none() | st.binary(min_size=1, max_size=8),
       will=st.none() | st.builds(Will, topic=ascii_text, payload=st.binary(max_size=8), qos=st.integers(0, 2),
                                  retain=st.booleans()),
       clean=st.booleans(), keep_alive=st.integers(0, 0xFFFF))
def test_connect_dissects_in_scapy(version: Version, client_id: str, username: str | None, password: bytes | None,
                                   will: Will | None, clean: bool, keep_alive: int) -> None:
    if username is None:
        password = None
    packet = Connect(client_id=client_id, username=username, password=password, will=will, clean_session=clean,
                     keep_alive=keep_alive)
    frame = dissect(encode(packet, version))
    assert frame.type == 1
    layer = frame[MQTTConnect]
    assert layer.protoname == version.protocol_name.encode()
    assert layer.protolevel == int(version)
    assert layer.cleansess == int(clean)
    assert layer.reserved == 0
    assert layer.klive == keep_alive
    assert layer.clientId == client_id.encode()
    assert layer.willflag == int(will is not None)
    if will is not None:
        assert (layer.willtopic, layer.willmsg) == (will.topic.encode(), will.payload)  # type: ignore[union-attr]
        assert (layer.willQOSflag, layer.willretainflag) == (will.qos, int(will.retain))
    assert layer.usernameflag == int(username is not None)
    if username is not None:
        assert layer.username == username.encode()
    assert layer.passwordflag == int(password is not None)
    if password is not None:
        assert layer.password == password


@pytest.mark.parametrize("version", V3X, ids=lambda v: v.label)
@pytest.mark.parametrize("present, code", [(False, 0), (True, 0), (False, 5)])
def test_connack_dissects_in_scapy(version: Version, present: bool, code: int) -> None:
    frame = dissect(encode(Connack(session_present=present, reason_code=code), version))
    assert frame.type == 2
    assert (frame[MQTTConnack].sessPresentFlag, frame[MQTTConnack].retcode) == (int(present), code)


@pytest.mark.parametrize("version", V3X, ids=lambda v: v.label)
@pytest.mark.parametrize("qos", [0, 1, 2])
@settings(max_examples=15, deadline=None)
@given(topic=ascii_text, payload=st.binary(max_size=300), retain=st.booleans(), dup=st.booleans(),
       packet_id=st.integers(1, 0xFFFF))
def test_publish_dissects_in_scapy(version: Version, qos: int, topic: str, payload: bytes, retain: bool, dup: bool,
                                   packet_id: int) -> None:
    packet = Publish(topic=topic, payload=payload, qos=qos, retain=retain, dup=dup and qos > 0,
                     packet_id=packet_id if qos else None)
    frame = dissect(encode(packet, version))
    assert (frame.type, frame.QOS, frame.DUP, frame.RETAIN) == (3, qos, int(packet.dup), int(retain))
    layer = frame[MQTTPublish]
    assert layer.topic == topic.encode()
    assert layer.value == payload
    if qos:
        assert layer.msgid == packet_id


@pytest.mark.parametrize("version", V3X, ids=lambda v: v.label)
@pytest.mark.parametrize("cls, layer_cls, type_", [(Puback, MQTTPuback, 4), (Pubrec, MQTTPubrec, 5),
                                                   (Pubrel, MQTTPubrel, 6), (Pubcomp, MQTTPubcomp, 7)])
def test_publish_responses_dissect_in_scapy(version: Version, cls: type, layer_cls: type, type_: int) -> None:
    frame = dissect(encode(cls(packet_id=0xBEEF), version))
    assert frame.type == type_
    assert frame[layer_cls].msgid == 0xBEEF
    qos_bits = frame.QOS
    assert qos_bits == (1 if cls is Pubrel else 0)  # PUBREL's fixed flags are 0010


@pytest.mark.parametrize("version", V3X, ids=lambda v: v.label)
def test_subscribe_and_suback_dissect_in_scapy(version: Version) -> None:
    packet = Subscribe(packet_id=7, subscriptions=[Subscription(topic_filter="a/+", qos=1),
                                                   Subscription(topic_filter="b/#", qos=2), "c"])
    frame = dissect(encode(packet, version))
    assert (frame.type, frame.QOS) == (8, 1)
    layer = frame[MQTTSubscribe]
    assert layer.msgid == 7
    assert [(t.topic, t.QOS) for t in layer.topics] == [(b"a/+", 1), (b"b/#", 2), (b"c", 0)]
    frame = dissect(encode(Suback(packet_id=7, reason_codes=[1, 2, 0]), version))
    assert frame.type == 9
    assert (frame[MQTTSuback].msgid, frame[MQTTSuback].retcodes) == (7, [1, 2, 0])


@pytest.mark.parametrize("version", V3X, ids=lambda v: v.label)
def test_unsubscribe_and_unsuback_dissect_in_scapy(version: Version) -> None:
    frame = dissect(encode(Unsubscribe(packet_id=9, topic_filters=["a/b", "c/#"]), version))
    assert (frame.type, frame.QOS) == (10, 1)
    assert frame[MQTTUnsubscribe].msgid == 9
    assert [t.topic for t in frame[MQTTUnsubscribe].topics] == [b"a/b", b"c/#"]
    frame = dissect(encode(Unsuback(packet_id=9), version))
    assert (frame.type, frame[MQTTUnsuback].msgid) == (11, 9)


@pytest.mark.parametrize("version", V3X, ids=lambda v: v.label)
@pytest.mark.parametrize("packet, type_", [(Pingreq(), 12), (Pingresp(), 13), (Disconnect(), 14)])
def test_empty_packets_dissect_in_scapy(version: Version, packet: Packet, type_: int) -> None:
    frame = dissect(encode(packet, version))
    assert (frame.type, frame.len) == (type_, 0)


# scapy -> our decoder -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", V3X, ids=lambda v: v.label)
def test_scapy_connect_decodes(version: Version) -> None:
    frame = MQTT() / MQTTConnect(protoname=version.protocol_name, protolevel=int(version), cleansess=1, klive=30,
                                 clientId="abc", willflag=1, willQOSflag=2, willretainflag=1, willtopic="w/t",
                                 willmsg=b"bye", usernameflag=1, username="user", passwordflag=1, password=b"pw")
    packet = decode_one(bytes(frame), version, "server")
    assert packet == Connect(client_id="abc", clean_session=True, keep_alive=30, username="user", password=b"pw",
                             will=Will(topic="w/t", payload=b"bye", qos=2, retain=True))
    # And a learning decoder tells the version from scapy's protocol name and level.
    decoder = Decoder(None, role="server")
    decoder.feed(bytes(frame))
    assert decoder.version is version


@pytest.mark.parametrize("version", V3X, ids=lambda v: v.label)
def test_scapy_connack_decodes(version: Version) -> None:
    present = int(version is Version.V311)  # 3.1 has no session present flag
    packet = decode_one(bytes(MQTT(type=2) / MQTTConnack(sessPresentFlag=present, retcode=0)), version, "client")
    assert packet == Connack(session_present=bool(present), reason_code=0)
    packet = decode_one(bytes(MQTT(type=2) / MQTTConnack(retcode=4)), version, "client")
    assert packet == Connack(reason_code=4)


@pytest.mark.parametrize("version", V3X, ids=lambda v: v.label)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_scapy_publish_decodes(version: Version, qos: int) -> None:
    layer = MQTTPublish(topic="x/y", value=b"\x00payload\xff", msgid=42 if qos else None)
    frame = MQTT(type=3, QOS=qos, RETAIN=1, DUP=int(qos == 2)) / layer
    packet = decode_one(bytes(frame), version, "client")
    assert packet == Publish(topic="x/y", payload=b"\x00payload\xff", qos=qos, retain=True, dup=qos == 2,
                             packet_id=42 if qos else None)


@pytest.mark.parametrize("version", V3X, ids=lambda v: v.label)
@pytest.mark.parametrize("cls, layer_cls, type_, qos", [(Puback, MQTTPuback, 4, 0), (Pubrec, MQTTPubrec, 5, 0),
                                                        (Pubrel, MQTTPubrel, 6, 1), (Pubcomp, MQTTPubcomp, 7, 0)])
def test_scapy_publish_responses_decode(version: Version, cls: type, layer_cls: type, type_: int, qos: int) -> None:
    frame = MQTT(type=type_, QOS=qos) / layer_cls(msgid=513)
    for role in ("client", "server"):
        assert decode_one(bytes(frame), version, role) == cls(packet_id=513)


@pytest.mark.parametrize("version", V3X, ids=lambda v: v.label)
def test_scapy_subscribe_family_decodes(version: Version) -> None:
    frame = MQTT(type=8, QOS=1) / MQTTSubscribe(msgid=3, topics=[MQTTTopicQOS(topic="a/#", QOS=2),
                                                                MQTTTopicQOS(topic="b", QOS=0)])
    assert decode_one(bytes(frame), version, "server") == Subscribe(
        packet_id=3, subscriptions=[Subscription(topic_filter="a/#", qos=2), Subscription(topic_filter="b")])
    frame = MQTT(type=9) / MQTTSuback(msgid=3, retcodes=[2, 0])
    assert decode_one(bytes(frame), version, "client") == Suback(packet_id=3, reason_codes=[2, 0])
    frame = MQTT(type=10, QOS=1) / MQTTUnsubscribe(msgid=4, topics=[MQTTTopic(topic="a/#"), MQTTTopic(topic="c")])
    assert decode_one(bytes(frame), version, "server") == Unsubscribe(packet_id=4, topic_filters=["a/#", "c"])
    frame = MQTT(type=11) / MQTTUnsuback(msgid=4)
    assert decode_one(bytes(frame), version, "client") == Unsuback(packet_id=4)


@pytest.mark.parametrize("version", V3X, ids=lambda v: v.label)
def test_scapy_empty_packets_decode(version: Version) -> None:
    assert decode_one(bytes(MQTT(type=12)), version, "server") == Pingreq()
    assert decode_one(bytes(MQTT(type=13)), version, "client") == Pingresp()
    assert decode_one(bytes(MQTT(type=14) / MQTTDisconnect()), version, "server") == Disconnect()


def test_scapy_and_we_agree_on_a_long_remaining_length() -> None:
    payload = bytes(range(256)) * 700  # 179200 bytes: a three-byte remaining length
    ours = encode(Publish(topic="big", payload=payload, qos=1, packet_id=1), Version.V311)
    theirs = bytes(MQTT(type=3, QOS=1) / MQTTPublish(topic="big", msgid=1, value=payload))
    assert ours == theirs
