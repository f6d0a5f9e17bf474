"""The decoder as a stream: partial reads, several packets per read, limits, and the end of a stream."""

from __future__ import annotations

import os
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.wire import (
    Connack,
    Connect,
    Decoded,
    Decoder,
    Disconnect,
    Malformed,
    Pingresp,
    Puback,
    Publish,
    Suback,
    Subscribe,
    Version,
    encode,
)

V5 = Version.V5
V311 = Version.V311

SERVER_STREAM_5 = [
    Connack(session_present=False, reason_code=0, properties={"receive_maximum": 20, "topic_alias_maximum": 5}),
    Suback(packet_id=1, reason_codes=[1, 0x87]),
    Publish(topic="a/b", payload=b"x" * 300, qos=1, packet_id=9, properties={"subscription_identifier": [3]}),
    Publish(topic="a/b", payload=b"", qos=0),
    Puback(packet_id=2, reason_code=0x10),
    Pingresp(),
    Disconnect(reason_code=0x8B, properties={"reason_string": "bye"}),
]


def _packets(events: list[Decoded | Malformed]) -> list[object]:
    assert all(isinstance(e, Decoded) and not e.findings for e in events), events
    return [e.packet for e in events]  # type: ignore[union-attr]


def test_byte_at_a_time_gives_each_packet_once_complete() -> None:
    data = b"".join(encode(p, V5) for p in SERVER_STREAM_5)
    decoder = Decoder(V5)
    events: list[Decoded | Malformed] = []
    completed_at = []
    for index in range(len(data)):
        new = decoder.feed(data[index : index + 1])
        if new:
            completed_at.append(index + 1)
        events += new
    assert _packets(events) == SERVER_STREAM_5
    # Each packet is returned by the very byte that completes it, not later.
    ends, total = [], 0
    for packet in SERVER_STREAM_5:
        total += len(encode(packet, V5))
        ends.append(total)
    assert completed_at == ends


def test_many_packets_in_one_feed_keep_their_order_and_raw_bytes() -> None:
    encoded = [encode(p, V5) for p in SERVER_STREAM_5] * 50
    events = Decoder(V5).feed(b"".join(encoded))
    assert _packets(events) == SERVER_STREAM_5 * 50
    assert [e.raw for e in events] == encoded  # type: ignore[union-attr]


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(0, 2000), max_size=12))
def test_any_split_of_the_stream_gives_the_same_packets(cuts: list[int]) -> None:
    data = b"".join(encode(p, V5) for p in SERVER_STREAM_5)
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    decoder = Decoder(V5)
    events = []
    for start, end in zip(points, points[1:], strict=False):
        events += decoder.feed(data[start:end])
    assert _packets(events) == SERVER_STREAM_5


def test_a_large_packet_split_in_the_remaining_length() -> None:
    packet = Publish(topic="t", payload=os.urandom(200_000))  # remaining length needs three bytes
    data = encode(packet, V311)
    decoder = Decoder(V311)
    assert decoder.feed(data[:2]) == []  # first byte and half the remaining length
    assert decoder.feed(data[2:3]) == []
    assert decoder.feed(data[3:100_000]) == []
    (event,) = decoder.feed(data[100_000:])
    assert isinstance(event, Decoded) and event.packet == packet


def test_max_packet_size_rejects_on_the_header_without_waiting_for_the_body() -> None:
    decoder = Decoder(V5, max_packet_size=1000)
    ok = encode(Publish(topic="t", payload=b"x" * 900), V5)
    big = encode(Publish(topic="t", payload=b"x" * 5000), V5)
    events = decoder.feed(ok + big[:4])  # only the fixed header of the big one has arrived
    assert isinstance(events[0], Decoded)
    assert isinstance(events[1], Malformed)
    assert events[1].finding.rule == "MQTT-3.1.2-24"  # the server sent more than the client allows
    assert events[1].finding.fatal
    assert events[1].raw == big[:4]
    assert str(len(big)) in events[1].finding.message
    assert decoder.feed(big[4:]) == []  # the rest is ignored: the stream is over
    assert decoder.failed is events[1]


def test_max_packet_size_rule_depends_on_who_sent_it() -> None:
    big = encode(Publish(topic="t", payload=b"x" * 100), V5)
    (event,) = Decoder(V5, role="server", max_packet_size=50).feed(big)
    assert isinstance(event, Malformed) and event.finding.rule == "MQTT-3.2.2-15"
    (event,) = Decoder(V311, max_packet_size=50).feed(big)
    assert isinstance(event, Malformed) and event.finding.rule == "§2.2.3"
    # A packet of exactly the maximum is fine.
    (event,) = Decoder(V5, max_packet_size=len(big)).feed(big)
    assert isinstance(event, Decoded)


def test_after_a_malformed_packet_all_input_is_ignored() -> None:
    good = encode(Pingresp(), V311)
    decoder = Decoder(V311)
    events = decoder.feed(good + b"\x00\x00" + good)
    assert isinstance(events[0], Decoded)
    assert isinstance(events[1], Malformed)
    assert len(events) == 2
    assert events[1].raw == b"\x00\x00" + good
    assert decoder.feed(good) == []


def test_a_body_error_stops_the_stream_but_keeps_earlier_packets() -> None:
    good = encode(Puback(packet_id=1), V311)
    broken = encode(Puback(packet_id=1), V311, trailing=b"\x00")  # 3.1.1 PUBACK is exactly two bytes
    events = Decoder(V311).feed(good + broken + good)
    assert [type(e) for e in events] == [Decoded, Malformed]
    assert events[1].raw == broken


def test_server_role_learns_the_version_from_connect() -> None:
    for version in Version:
        decoder = Decoder(None, role="server")
        stream = encode(Connect(client_id="c"), version) + encode(Subscribe(packet_id=1, subscriptions=["a"]), version)
        events = decoder.feed(stream)
        assert decoder.version is version
        assert all(isinstance(e, Decoded) and not e.findings for e in events)
        assert events[1].packet == Subscribe(packet_id=1, subscriptions=["a"])  # type: ignore[union-attr]


def test_a_5_0_connect_with_properties_is_parsed_as_5_0_by_a_learning_decoder() -> None:
    connect = Connect(client_id="c", properties={"session_expiry_interval": 30})
    decoder = Decoder(None, role="server")
    (event,) = decoder.feed(encode(connect, V5))
    assert isinstance(event, Decoded) and event.packet == connect and decoder.version is V5


def test_random_garbage_never_raises() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        decoder = Decoder(rng.choice([None, *Version]), role=rng.choice(["client", "server"]),
                          max_packet_size=rng.choice([None, 40]))
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 50)))
        for piece in (data[:3], data[3:]):
            for event in decoder.feed(piece):
                if isinstance(event, Malformed):
                    assert "decoder bug" not in event.finding.message, event


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=80), version=st.sampled_from([None, *Version]), role=st.sampled_from(["client", "server"]))
def test_fuzzed_bytes_never_raise(data: bytes, version: Version | None, role: str) -> None:
    for event in Decoder(version, role=role).feed(data):  # type: ignore[arg-type]
        if isinstance(event, Malformed):
            assert "decoder bug" not in event.finding.message, event


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=60), first=st.integers(0x10, 0xFF))
def test_fuzzed_bodies_of_well_framed_packets_never_raise(body: bytes, first: int) -> None:
    # Framed correctly, so the parsers (not the framing) meet the garbage.
    data = bytes((first, len(body))) + body
    for version in Version:
        for role in ("client", "server"):
            for event in Decoder(version, role=role).feed(data):  # type: ignore[arg-type]
                if isinstance(event, Malformed):
                    assert "decoder bug" not in event.finding.message, event
