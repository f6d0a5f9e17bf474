"""Hostile and broken clients: none of them can crash the broker, stall other clients, or make it
grow without bound. Each test keeps a well-behaved client connected and checks it with a PINGREQ
round trip (and a publish/subscribe round trip) while the hostile one does its worst.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest
from broker_helpers import BrokerProcess, Client, running_broker, uid

from harness.wire import Connect, Publish, Subscribe, Subscription, Version, encode, encode_varint

MB = 1 << 20


@pytest.fixture(scope="module")
def target() -> Iterator[BrokerProcess]:
    with running_broker({"auth": {"allow_anonymous": True}, "limits": {"connect_timeout": 0.5}}) as proc:
        yield proc


@pytest.fixture
def bystander(target: BrokerProcess) -> Iterator[Client]:
    """A well-behaved subscriber that must keep working whatever the others do."""
    c = Client(target.port, Version.V5)
    c.connect(uid())
    c.subscribe("bystander/#", qos=1)
    yield c
    c.close()


def assert_healthy(target: BrokerProcess, bystander: Client) -> None:
    assert target.proc.poll() is None, target.log_text()
    start = time.monotonic()
    assert bystander.ping() == []
    publisher = Client(target.port, Version.V311)
    try:
        publisher.connect(uid())
        publisher.publish("bystander/x", b"still here", qos=1)
    finally:
        publisher.close()
    assert bystander.receive_publish().payload == b"still here"
    assert time.monotonic() - start < 2.0  # not stalled


def raw_socket(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def closed_by_peer(sock: socket.socket, timeout: float = 5.0) -> bool:
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_garbage_bytes(target: BrokerProcess, bystander: Client) -> None:
    for seed in range(5):
        sock = raw_socket(target.port)
        sock.sendall(os.urandom(4096) if seed else b"\x00" * 100)
        assert closed_by_peer(sock)
        sock.close()
    # garbage after a valid CONNECT, too
    sock = raw_socket(target.port)
    sock.sendall(encode(Connect(client_id=uid()), Version.V311) + b"\xff" * 64)
    assert closed_by_peer(sock)
    sock.close()
    assert_healthy(target, bystander)


def test_half_a_packet_then_silence(target: BrokerProcess, bystander: Client) -> None:
    connect = encode(Connect(client_id=uid(), keep_alive=1), Version.V311)
    before = raw_socket(target.port)
    before.sendall(connect[:5])  # half a CONNECT: the connect timeout (0.5 s here) closes it
    after = raw_socket(target.port)
    after.sendall(connect)
    after.recv(4)  # CONNACK
    after.sendall(encode(Publish(topic="bystander/half", payload=b"x" * 100), Version.V311)[:20])
    assert_healthy(target, bystander)  # while both are stuck mid-packet
    start = time.monotonic()
    assert closed_by_peer(before) and closed_by_peer(after)  # keep alive 1 s: closed at 1.5 s
    assert time.monotonic() - start < 3.0
    before.close()
    after.close()
    assert bystander.ping() == []  # the half PUBLISH was never delivered


def test_256mb_remaining_length(target: BrokerProcess, bystander: Client) -> None:
    rss_before = target.rss_kb()
    # Before CONNECT: a CONNECT announcing 256 MB (the spec maximum the default config accepts).
    sock = raw_socket(target.port)
    sock.sendall(b"\x10" + encode_varint(268_435_455) + b"\x00\x04MQTT\x04\x02\x00\x3c")
    # After CONNECT: a PUBLISH announcing 256 MB, then 4 MB of it, then silence.
    conn = raw_socket(target.port)
    conn.sendall(encode(Connect(client_id=uid(), keep_alive=0), Version.V311))
    conn.recv(4)
    conn.sendall(b"\x30" + encode_varint(268_435_455) + b"\x00\x03a/b" + b"x" * (4 * MB))
    assert_healthy(target, bystander)
    grown = (target.rss_kb() - rss_before) / 1024
    assert grown < 40, f"broker grew by {grown:.0f} MB for a 256 MB announcement"  # nothing preallocated
    assert closed_by_peer(sock, timeout=3)  # the connect timeout applies to a CONNECT that never completes
    sock.close()
    conn.close()
    # A five-byte remaining length is malformed: closed at once.
    bad = raw_socket(target.port)
    bad.sendall(b"\x10\xff\xff\xff\xff\x7f")
    assert closed_by_peer(bad)
    bad.close()


def test_oversize_packet_refused_without_buffering(bystander: Client) -> None:
    with running_broker({"limits": {"max_packet_size": 1 * MB}}) as small:
        c = Client(small.port, Version.V5)
        c.connect(uid())
        start = time.monotonic()
        c.send_raw(b"\x30" + encode_varint(268_435_455) + b"\x00\x03a/b")  # header only
        got = c.expect_closed()
        assert [p.reason_code for p in got] == [0x95]  # Packet too large, before any body arrived
        assert time.monotonic() - start < 1.0
        c.close()


def flood(port: int, topic: str, qos: int, limit: int = 512 * MB, duration: float = 4.0,
          echo: bool = True) -> tuple[int, bool, socket.socket]:
    """Publish without ever reading for `duration` s; bytes sent, whether the broker stopped reading us."""
    sock = raw_socket(port)
    sock.sendall(encode(Connect(client_id=uid(), keep_alive=0), Version.V311))
    if echo:  # subscribed to its own flood, so everything comes back to a client that never reads
        sock.sendall(encode(Subscribe(packet_id=1, subscriptions=[Subscription(topic_filter=topic)]),
                            Version.V311))
    payload = b"f" * 1024
    batch = b"".join(encode(Publish(topic=topic, payload=payload, qos=qos, packet_id=(i % 65535) + 1 if qos else None),
                            Version.V311) for i in range(256))
    sent = 0
    sock.settimeout(0.5)  # a send blocked that long means the broker applied backpressure
    deadline = time.monotonic() + duration
    try:
        while sent < limit and time.monotonic() < deadline:
            sock.sendall(batch)
            sent += len(batch)
    except TimeoutError:
        return sent, True, sock
    return sent, False, sock


def test_publish_flood_without_reading(target: BrokerProcess, bystander: Client) -> None:
    # A subscriber that never reads, and a QoS 1 publisher that never reads its PUBACKs.
    slow = raw_socket(target.port)
    slow.sendall(encode(Connect(client_id=uid(), keep_alive=0), Version.V311))
    slow.recv(4)
    slow.sendall(encode(Subscribe(packet_id=1, subscriptions=[Subscription(topic_filter="flood/#", qos=1)]),
                        Version.V311))
    rss_before = target.rss_kb()
    sent, blocked, sock = flood(target.port, "flood/x", qos=1)
    print(f"QoS 1 flood: {sent / MB:.0f} MB sent, blocked={blocked}")
    assert blocked  # its unread PUBACKs filled the broker's writer: the broker stopped reading it
    assert_healthy(target, bystander)  # others are served during the flood
    grown = (target.rss_kb() - rss_before) / 1024
    assert grown < 120, f"broker grew by {grown:.0f} MB after {sent / MB:.0f} MB of flood"
    sent0, blocked0, sock0 = flood(target.port, "flood/y", qos=0, duration=2.0)
    assert blocked0
    # QoS 0 without the echo: nothing ever comes back, so the broker reads all of it and only the
    # non-reading subscriber's bounded buffer and queue stand between the flood and memory.
    sent1, _, sock1 = flood(target.port, "flood/z", qos=0, duration=2.0, echo=False)
    total = (sent + sent0 + sent1) / MB
    print(f"floods: {sent / MB:.0f} + {sent0 / MB:.0f} + {sent1 / MB:.0f} MB, rss {target.rss_kb() // 1024} MB")
    assert sent1 > 40 * MB  # the stuck subscriber did not throttle this publisher for long
    assert_healthy(target, bystander)
    grown = (target.rss_kb() - rss_before) / 1024
    assert grown < 120, f"broker grew by {grown:.0f} MB after {total:.0f} MB of flood"
    for s in (sock, sock0, sock1, slow):
        s.close()
    assert_healthy(target, bystander)
