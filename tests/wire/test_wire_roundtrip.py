"""decode(encode(p)) == p with no findings, for every packet type in every version it exists in,
and for every 5.0 property on every packet (and the will) it is allowed on."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.wire import (
    PROPERTIES,
    V5_REASON_CODES,
    WILL,
    Auth,
    Connack,
    Connect,
    Decoded,
    Decoder,
    Disconnect,
    Packet,
    PacketType,
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
from harness.wire.constants import (
    V5_DISCONNECT_CLIENT_ONLY,
    V5_DISCONNECT_SERVER_ONLY,
    PropertyType,
    v3_return_codes,
)

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALL_VERSIONS = list(Version)
_P = PacketType

# Valid text: no surrogates (not encodable), no U+0000 (forbidden in every string field).
# Strings a well-behaved sender writes: no surrogates, no U+0000, no control characters or non-characters
# (those get a non-fatal finding, test_discouraged_characters_are_a_non_fatal_finding).
text = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn"), blacklist_characters="\x00"), max_size=12)
_level = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn"), blacklist_characters="\x00+#/"), min_size=1, max_size=6)
topic_names = st.lists(_level, min_size=1, max_size=4).map("/".join)
topic_filters = st.builds(
    lambda levels, tail: "/".join(levels + tail),
    st.lists(st.one_of(st.just("+"), _level), min_size=1, max_size=4),
    st.sampled_from([[], ["#"]]),
).filter(lambda f: not f.startswith("$share/"))
packet_ids = st.integers(1, 0xFFFF)


def sender_of(role: str) -> str:
    return "server" if role == "client" else "client"


def property_value(name: str, place: Any) -> st.SearchStrategy[Any]:
    """A valid value for a property (respecting its value rules) in that place."""
    info = next(i for i in PROPERTIES.values() if i.name == name)
    kind = info.type
    if kind is PropertyType.UTF8_STRING_PAIR:
        return st.tuples(text, text)
    if kind is PropertyType.UTF8_STRING:
        return topic_names if name == "response_topic" else text
    if kind is PropertyType.BINARY:
        return st.binary(max_size=12)
    widths = {PropertyType.BYTE: 0xFF, PropertyType.TWO_BYTE_INTEGER: 0xFFFF,
              PropertyType.FOUR_BYTE_INTEGER: 0xFFFFFFFF, PropertyType.VARIABLE_BYTE_INTEGER: 268_435_455}
    top = info.max_value if info.max_value is not None else widths[kind]
    return st.integers(info.min_value, top)


def properties_for(place: Any, role: str) -> st.SearchStrategy[dict[str, Any]]:
    """Any valid set of the properties allowed in `place`, sent by the side opposite `role`."""
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for info in PROPERTIES.values():
        if place not in info.allowed_on:
            continue
        if info.name == "subscription_identifier" and place is _P.PUBLISH and sender_of(role) == "client":
            continue  # MQTT-3.3.4-6: only a server may put it on a PUBLISH
        if info.name == "session_expiry_interval" and place is _P.DISCONNECT and sender_of(role) == "server":
            continue  # MQTT-3.14.2-2
        value = property_value(info.name, place)
        if info.name == "user_property":
            value = st.lists(value, min_size=1, max_size=3)
        elif info.name == "subscription_identifier":
            value = st.lists(value, min_size=1, max_size=3 if place is _P.PUBLISH else 1)
        optional[info.name] = value
    return st.fixed_dictionaries({}, optional=optional)


def no_props(place: Any, role: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.just({})


def props(version: Version):
    return properties_for if version is Version.V5 else no_props


def v5_codes(packet_type: PacketType, role: str = "client") -> st.SearchStrategy[int]:
    codes = set(V5_REASON_CODES[packet_type])
    if packet_type is _P.DISCONNECT:
        codes -= V5_DISCONNECT_SERVER_ONLY if sender_of(role) == "client" else V5_DISCONNECT_CLIENT_ONLY
    return st.sampled_from(sorted(codes))


def wills(version: Version) -> st.SearchStrategy[Will]:
    return st.builds(Will, topic=topic_names, payload=st.binary(max_size=16), qos=st.integers(0, 2),
                     retain=st.booleans(), properties=props(version)(WILL, "server"))


@st.composite
def connects(draw: st.DrawFn, version: Version) -> Connect:
    username = draw(st.none() | text)
    # 3.x: a password needs a user name (MQTT-3.1.2-22); 5.0 allows it alone.
    password = draw(st.none() | st.binary(max_size=12)) if username is not None or version is Version.V5 else None
    return Connect(client_id=draw(text), clean_session=draw(st.booleans()), keep_alive=draw(st.integers(0, 0xFFFF)),
                   username=username, password=password, will=draw(st.none() | wills(version)),
                   properties=draw(props(version)(_P.CONNECT, "server")))


@st.composite
def connacks(draw: st.DrawFn, version: Version) -> Connack:
    if version is Version.V5:
        code = draw(v5_codes(_P.CONNACK))
    else:
        code = draw(st.sampled_from(sorted(v3_return_codes(_P.CONNACK, version))))
    present = draw(st.booleans()) if code == 0 and version is not Version.V31 else False
    return Connack(session_present=present, reason_code=code, properties=draw(props(version)(_P.CONNACK, "client")))


@st.composite
def publishes(draw: st.DrawFn, version: Version, role: str) -> Publish:
    qos = draw(st.integers(0, 2))
    return Publish(topic=draw(topic_names), payload=draw(st.binary(max_size=40)), qos=qos,
                   retain=draw(st.booleans()), dup=draw(st.booleans()) if qos else False,
                   packet_id=draw(packet_ids) if qos else None,
                   properties=draw(props(version)(_P.PUBLISH, role)))


@st.composite
def publish_responses(draw: st.DrawFn, cls: type, version: Version, role: str) -> Packet:
    code = draw(v5_codes(cls.TYPE)) if version is Version.V5 else 0
    return cls(packet_id=draw(packet_ids), reason_code=code, properties=draw(props(version)(cls.TYPE, role)))


@st.composite
def subscribes(draw: st.DrawFn, version: Version) -> Subscribe:
    v5 = version is Version.V5
    subscriptions = draw(st.lists(
        st.builds(Subscription, topic_filter=topic_filters, qos=st.integers(0, 2),
                  no_local=st.booleans() if v5 else st.just(False),
                  retain_as_published=st.booleans() if v5 else st.just(False),
                  retain_handling=st.integers(0, 2) if v5 else st.just(0)),
        min_size=1, max_size=3))
    return Subscribe(packet_id=draw(packet_ids), subscriptions=subscriptions,
                     properties=draw(props(version)(_P.SUBSCRIBE, "server")))


@st.composite
def subacks(draw: st.DrawFn, version: Version) -> Suback:
    codes = v5_codes(_P.SUBACK) if version is Version.V5 else st.sampled_from(
        sorted(v3_return_codes(_P.SUBACK, version)))
    return Suback(packet_id=draw(packet_ids), reason_codes=draw(st.lists(codes, min_size=1, max_size=4)),
                  properties=draw(props(version)(_P.SUBACK, "client")))


@st.composite
def unsubscribes(draw: st.DrawFn, version: Version) -> Unsubscribe:
    return Unsubscribe(packet_id=draw(packet_ids), topic_filters=draw(st.lists(topic_filters, min_size=1, max_size=3)),
                       properties=draw(props(version)(_P.UNSUBSCRIBE, "server")))


@st.composite
def unsubacks(draw: st.DrawFn, version: Version) -> Unsuback:
    codes = draw(st.lists(v5_codes(_P.UNSUBACK), min_size=1, max_size=4)) if version is Version.V5 else []
    return Unsuback(packet_id=draw(packet_ids), reason_codes=codes, properties=draw(props(version)(_P.UNSUBACK, "client")))


@st.composite
def disconnects(draw: st.DrawFn, version: Version, role: str) -> Disconnect:
    code = draw(v5_codes(_P.DISCONNECT, role)) if version is Version.V5 else 0
    return Disconnect(reason_code=code, properties=draw(props(version)(_P.DISCONNECT, role)))


@st.composite
def auths(draw: st.DrawFn, role: str) -> Auth:
    return Auth(reason_code=draw(v5_codes(_P.AUTH)), properties=draw(properties_for(_P.AUTH, role)))


def assert_round_trip(packet: Packet, version: Version, role: str) -> None:
    data = encode(packet, version)
    events = Decoder(version, role=role).feed(data)
    assert len(events) == 1, events
    event = events[0]
    assert isinstance(event, Decoded), event
    assert event.findings == [], [str(f) for f in event.findings]
    assert event.packet == packet
    assert event.raw == data
    # Encoding the decoded packet gives the same bytes: nothing was lost on the way in.
    assert encode(event.packet, version) == data


# role: the decoder's side. Packets a client sends are decoded by a "server" decoder and vice versa.
CASES: list[tuple[str, Any, list[Version], list[str]]] = [
    ("connect", connects, ALL_VERSIONS, ["server"]),
    ("connack", connacks, ALL_VERSIONS, ["client"]),
    ("subscribe", subscribes, ALL_VERSIONS, ["server"]),
    ("suback", subacks, ALL_VERSIONS, ["client"]),
    ("unsubscribe", unsubscribes, ALL_VERSIONS, ["server"]),
    ("unsuback", unsubacks, ALL_VERSIONS, ["client"]),
]


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: v.label)
@pytest.mark.parametrize("name, strategy, versions, roles", CASES, ids=[c[0] for c in CASES])
@SETTINGS
@given(data=st.data())
def test_one_way_packets_round_trip(name: str, strategy: Any, versions: list[Version], roles: list[str],
                                    version: Version, data: st.DataObject) -> None:
    packet = data.draw(strategy(version))
    assert_round_trip(packet, version, roles[0])


@pytest.mark.parametrize("role", ["client", "server"])
@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: v.label)
@pytest.mark.parametrize("kind", ["publish", "puback", "pubrec", "pubrel", "pubcomp", "disconnect"])
@SETTINGS
@given(data=st.data())
def test_two_way_packets_round_trip(kind: str, version: Version, role: str, data: st.DataObject) -> None:
    classes = {"puback": Puback, "pubrec": Pubrec, "pubrel": Pubrel, "pubcomp": Pubcomp}
    if kind == "publish":
        packet = data.draw(publishes(version, role))
    elif kind == "disconnect":
        packet = data.draw(disconnects(version, role))
    else:
        packet = data.draw(publish_responses(classes[kind], version, role))
    assert_round_trip(packet, version, role)


@pytest.mark.parametrize("role", ["client", "server"])
@SETTINGS
@given(data=st.data())
def test_auth_round_trips_in_5(role: str, data: st.DataObject) -> None:
    assert_round_trip(data.draw(auths(role)), Version.V5, role)


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: v.label)
def test_ping_packets_round_trip(version: Version) -> None:
    assert_round_trip(Pingreq(), version, "server")
    assert_round_trip(Pingresp(), version, "client")
    assert encode(Pingreq(), version) == b"\xc0\x00"
    assert encode(Pingresp(), version) == b"\xd0\x00"


# Every (property, place) pair the §2.2.2.2 table allows, with one deterministic sample value each.
_SAMPLES = {
    PropertyType.BYTE: 1, PropertyType.TWO_BYTE_INTEGER: 0x1234, PropertyType.FOUR_BYTE_INTEGER: 0x01020304,
    PropertyType.VARIABLE_BYTE_INTEGER: 200_000, PropertyType.UTF8_STRING: "a/é", PropertyType.BINARY: b"\x00\xff",
}
PROPERTY_PLACES = [(info.name, place) for info in PROPERTIES.values() for place in sorted(info.allowed_on, key=str)]


def _sample(name: str) -> Any:
    info = next(i for i in PROPERTIES.values() if i.name == name)
    if name == "user_property":
        return [("k", "v"), ("k", "w")]
    if name == "subscription_identifier":
        return [200_000]
    return _SAMPLES[info.type]


def _carrier(name: str, place: Any) -> tuple[Packet, str]:
    """A minimal valid packet carrying only this property, and the decoder role that receives it."""
    properties = {name: _sample(name)}
    if place == WILL:
        return Connect(client_id="c", will=Will(topic="w", properties=properties)), "server"
    return {
        _P.CONNECT: lambda: (Connect(client_id="c", properties=properties), "server"),
        _P.CONNACK: lambda: (Connack(properties=properties), "client"),
        _P.PUBLISH: lambda: (Publish(topic="t", qos=1, packet_id=1, properties=properties), "client"),
        _P.PUBACK: lambda: (Puback(packet_id=1, properties=properties), "client"),
        _P.PUBREC: lambda: (Pubrec(packet_id=1, properties=properties), "server"),
        _P.PUBREL: lambda: (Pubrel(packet_id=1, properties=properties), "client"),
        _P.PUBCOMP: lambda: (Pubcomp(packet_id=1, properties=properties), "server"),
        _P.SUBSCRIBE: lambda: (Subscribe(packet_id=1, subscriptions=[Subscription(topic_filter="a")],
                                         properties=properties), "server"),
        _P.SUBACK: lambda: (Suback(packet_id=1, reason_codes=[0], properties=properties), "client"),
        _P.UNSUBSCRIBE: lambda: (Unsubscribe(packet_id=1, topic_filters=["a"], properties=properties), "server"),
        _P.UNSUBACK: lambda: (Unsuback(packet_id=1, reason_codes=[0], properties=properties), "client"),
        _P.DISCONNECT: lambda: (Disconnect(properties=properties), "server"),
        _P.AUTH: lambda: (Auth(reason_code=0x18, properties=properties), "client"),
    }[place]()


@pytest.mark.parametrize("name, place", PROPERTY_PLACES, ids=[f"{n}-{getattr(p, 'name', p)}" for n, p in PROPERTY_PLACES])
def test_every_property_round_trips_where_allowed(name: str, place: Any) -> None:
    packet, role = _carrier(name, place)
    assert_round_trip(packet, Version.V5, role)
    decoded = Decoder(Version.V5, role=role).feed(encode(packet, Version.V5))[0]
    assert isinstance(decoded, Decoded)
    carrier = decoded.packet.will if place == WILL else decoded.packet  # type: ignore[attr-defined]
    assert carrier.properties == {name: _sample(name)}


def test_property_table_covers_every_defined_id() -> None:
    # The 27 identifiers of §2.2.2.2, and nothing else, between 0x01 and 0x2A.
    assert sorted(PROPERTIES) == [0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x18,
                                  0x19, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A]
    # Counted by hand from the table: 64 (property, place) pairs, user property alone on 14 places.
    assert len(PROPERTY_PLACES) == 64
    places = {name: {p for n, p in PROPERTY_PLACES if n == name} for name, _ in PROPERTY_PLACES}
    assert len(places["user_property"]) == 14
    assert places["reason_string"] == {_P.CONNACK, _P.PUBACK, _P.PUBREC, _P.PUBREL, _P.PUBCOMP, _P.SUBACK,
                                       _P.UNSUBACK, _P.DISCONNECT, _P.AUTH}
    assert places["will_delay_interval"] == {WILL}
    assert places["subscription_identifier"] == {_P.PUBLISH, _P.SUBSCRIBE}


def test_short_forms_of_5_0_acknowledgements() -> None:
    assert encode(Puback(packet_id=5), Version.V5) == bytes.fromhex("40 02 00 05")
    assert encode(Puback(packet_id=5, reason_code=0x10), Version.V5) == bytes.fromhex("40 03 00 05 10")
    assert encode(Disconnect(), Version.V5) == bytes.fromhex("e0 00")
    assert encode(Disconnect(reason_code=0x04), Version.V5) == bytes.fromhex("e0 01 04")
    assert encode(Auth(), Version.V5) == bytes.fromhex("f0 00")
    assert encode(Auth(reason_code=0x18), Version.V5) == bytes.fromhex("f0 02 18 00")
    # The long forms a peer may send decode to the same packets without findings.
    for data, packet, role in [
        ("40 04 00 05 00 00", Puback(packet_id=5), "client"),
        ("62 03 00 05 92", Pubrel(packet_id=5, reason_code=0x92), "server"),
        ("e0 02 00 00", Disconnect(), "server"),
    ]:
        event = Decoder(Version.V5, role=role).feed(bytes.fromhex(data))[0]
        assert isinstance(event, Decoded) and event.packet == packet and not event.findings


def test_known_bytes_for_a_3_1_and_a_5_0_connect() -> None:
    # Independent of the encoder: the bytes as the specs lay them out.
    v31 = bytes.fromhex("10 10 00 06") + b"MQIsdp" + bytes.fromhex("03 02 00 3c 00 02") + b"id"
    assert encode(Connect(client_id="id"), Version.V31) == v31
    v5 = bytes.fromhex("10 12 00 04") + b"MQTT" + bytes.fromhex("05 02 00 3c 03 21 00 0a 00 02") + b"id"
    assert encode(Connect(client_id="id", properties={"receive_maximum": 10}), Version.V5) == v5


# Written out from the 5.0 §2.2.2.2 table by hand, independently of harness.wire.constants, so a
# wrong data type there (which encoder and decoder would share, and round trips would not notice)
# fails here: identifier, data type, and the places the property may appear.
SPEC_TABLE = {
    "payload_format_indicator": (0x01, "Byte", "PUBLISH will"),
    "message_expiry_interval": (0x02, "Four Byte Integer", "PUBLISH will"),
    "content_type": (0x03, "UTF-8 Encoded String", "PUBLISH will"),
    "response_topic": (0x08, "UTF-8 Encoded String", "PUBLISH will"),
    "correlation_data": (0x09, "Binary Data", "PUBLISH will"),
    "subscription_identifier": (0x0B, "Variable Byte Integer", "PUBLISH SUBSCRIBE"),
    "session_expiry_interval": (0x11, "Four Byte Integer", "CONNECT CONNACK DISCONNECT"),
    "assigned_client_identifier": (0x12, "UTF-8 Encoded String", "CONNACK"),
    "server_keep_alive": (0x13, "Two Byte Integer", "CONNACK"),
    "authentication_method": (0x15, "UTF-8 Encoded String", "CONNECT CONNACK AUTH"),
    "authentication_data": (0x16, "Binary Data", "CONNECT CONNACK AUTH"),
    "request_problem_information": (0x17, "Byte", "CONNECT"),
    "will_delay_interval": (0x18, "Four Byte Integer", "will"),
    "request_response_information": (0x19, "Byte", "CONNECT"),
    "response_information": (0x1A, "UTF-8 Encoded String", "CONNACK"),
    "server_reference": (0x1C, "UTF-8 Encoded String", "CONNACK DISCONNECT"),
    "reason_string": (0x1F, "UTF-8 Encoded String",
                      "CONNACK PUBACK PUBREC PUBREL PUBCOMP SUBACK UNSUBACK DISCONNECT AUTH"),
    "receive_maximum": (0x21, "Two Byte Integer", "CONNECT CONNACK"),
    "topic_alias_maximum": (0x22, "Two Byte Integer", "CONNECT CONNACK"),
    "topic_alias": (0x23, "Two Byte Integer", "PUBLISH"),
    "maximum_qos": (0x24, "Byte", "CONNACK"),
    "retain_available": (0x25, "Byte", "CONNACK"),
    "user_property": (0x26, "UTF-8 String Pair",
                      "CONNECT CONNACK PUBLISH will PUBACK PUBREC PUBREL PUBCOMP SUBSCRIBE SUBACK UNSUBSCRIBE "
                      "UNSUBACK DISCONNECT AUTH"),
    "maximum_packet_size": (0x27, "Four Byte Integer", "CONNECT CONNACK"),
    "wildcard_subscription_available": (0x28, "Byte", "CONNACK"),
    "subscription_identifier_available": (0x29, "Byte", "CONNACK"),
    "shared_subscription_available": (0x2A, "Byte", "CONNACK"),
}


@pytest.mark.parametrize("name", sorted(SPEC_TABLE))
def test_property_table_matches_the_spec(name: str) -> None:
    identifier, data_type, places = SPEC_TABLE[name]
    info = PROPERTIES[identifier]
    assert info.name == name
    assert info.type.value == data_type
    assert {getattr(p, "name", p) for p in info.allowed_on} == set(places.split())


def test_property_values_have_the_spec_widths_on_the_wire() -> None:
    # One CONNACK carrying one property of each width, compared with bytes laid out by hand.
    packet = Connack(properties={"maximum_qos": 1, "server_keep_alive": 0x0102, "session_expiry_interval": 0x03040506,
                                 "reason_string": "ok", "authentication_data": b"\x07",
                                 "user_property": [("a", "b")]})
    expected = bytes.fromhex("20 1d 00 00 1a"
                             "24 01"  # maximum QoS: byte
                             "13 01 02"  # server keep alive: two bytes
                             "11 03 04 05 06"  # session expiry: four bytes
                             "1f 00 02 6f 6b"  # reason string: UTF-8 string
                             "16 00 01 07"  # authentication data: binary
                             "26 00 01 61 00 01 62")  # user property: string pair
    assert encode(packet, Version.V5) == expected
    assert encode(Subscribe(packet_id=1, subscriptions=["a"], properties={"subscription_identifier": 200}),
                  Version.V5) == bytes.fromhex("82 0a 00 01 03 0b c8 01 00 01 61 00")  # varint 200 = c8 01


@pytest.mark.parametrize("character", ["\x01", "\x1f", "\x7f", "\x9f", "\ufdd0", "\uffff", "\U0010fffe"])
@pytest.mark.parametrize("version", [Version.V311, Version.V5])
def test_discouraged_characters_are_a_non_fatal_finding(character: str, version: Version) -> None:
    from harness.wire.decode import Decoder

    decoder = Decoder(version, role="server")
    decoder.feed(encode(Connect(client_id="c"), version))
    [event] = decoder.feed(encode(Publish(topic=f"a{character}b", payload=b"x"), version))
    assert [(f.rule, f.fatal) for f in event.findings] == [("§1.5.4" if version is Version.V5 else "§1.5.3", False)]
