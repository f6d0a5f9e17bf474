"""Shared by the launcher tests: a launched mosquitto and a tiny raw MQTT client.

The client is hand-built on purpose: these tests check the broker setup, not a client library,
and a raw socket makes every reason code visible (paho hides some behind callbacks).
Imported by the test modules rather than a conftest.py, so the tests also run with --noconftest
(the repository root conftest loads the whole harness plugin).
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.launch import RunningBroker, launch

V31, V311, V5 = 3, 4, 5
TIMEOUT_S = 2.0  # upper bound for a reply that should come at once: only reached on failure


def _utf8(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("!H", len(data)) + data


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + _varint(len(body)) + body


class RawClient:
    """Just enough MQTT 3.1 / 3.1.1 / 5.0 to connect, subscribe, publish QoS 0 and ping."""

    def __init__(self, host: str, port: int, version: int) -> None:
        self.version = version
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT_S)
        self._next_id = 1
        self._pending: list[tuple[int, bytes]] = []  # PUBLISHes that arrived while awaiting a reply

    def close(self) -> None:
        self.sock.close()

    def _props(self) -> bytes:
        return b"\x00" if self.version == V5 else b""

    def _read_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            data += chunk
        return data

    def read_packet(self) -> tuple[int, bytes]:
        first = self._read_exact(1)[0]
        length, shift = 0, 0
        while True:
            byte = self._read_exact(1)[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return first, self._read_exact(length)

    def _await(self, expected: int) -> bytes:
        """The body of the next packet of type `expected`, keeping PUBLISHes that arrive before it."""
        while True:
            kind, body = self.read_packet()
            if kind >> 4 == expected >> 4:
                return body
            assert kind >> 4 == 3, f"expected {expected:#04x}, got {kind:#04x}"
            self._pending.append((kind, body))

    def _skip_props(self, body: bytes, at: int) -> int:
        if self.version != V5:
            return at
        length, shift = 0, 0
        while True:
            byte = body[at]
            at += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return at + length

    def connect(self, username: str | None, password: str | None, client_id: str = "launch-test") -> int:
        """CONNECT; returns the CONNACK return code (3.x) or reason code (5.0)."""
        name = b"\x00\x06MQIsdp" if self.version == V31 else b"\x00\x04MQTT"
        flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
        body = name + bytes([self.version, flags]) + struct.pack("!H", 60) + self._props() + _utf8(client_id)
        if username is not None:
            body += _utf8(username)
        if password is not None:
            body += _utf8(password)
        self.sock.sendall(_packet(0x10, body))
        kind, reply = self.read_packet()
        assert kind == 0x20, f"expected CONNACK, got {kind:#04x}"
        return reply[1]

    def subscribe(self, topic_filter: str, qos: int = 1) -> list[int]:
        """SUBSCRIBE one filter; returns the SUBACK return / reason codes."""
        packet_id, self._next_id = self._next_id, self._next_id + 1
        body = struct.pack("!H", packet_id) + self._props() + _utf8(topic_filter) + bytes([qos])
        self.sock.sendall(_packet(0x82, body))
        reply = self._await(0x90)
        assert struct.unpack("!H", reply[:2])[0] == packet_id
        return list(reply[self._skip_props(reply, 2) :])

    def publish(self, topic: str, payload: bytes) -> None:
        """PUBLISH at QoS 0: no reply whatever the ACL says, so a refusal can only show as non-delivery."""
        self.sock.sendall(_packet(0x30, _utf8(topic) + self._props() + payload))

    def ping(self) -> None:
        """PINGREQ -> PINGRESP: a barrier proving the broker has handled everything sent before it."""
        self.sock.sendall(b"\xc0\x00")
        self._await(0xD0)

    def next_publish(self) -> tuple[str, bytes]:
        """The next PUBLISH received (QoS 0 or 1; QoS 1 is acknowledged), as (topic, payload)."""
        while True:
            kind, body = self._pending.pop(0) if self._pending else self.read_packet()
            if kind >> 4 != 3:
                continue
            qos = (kind >> 1) & 0x03
            (topic_len,) = struct.unpack("!H", body[:2])
            topic = body[2 : 2 + topic_len].decode("utf-8")
            at = 2 + topic_len
            if qos:
                packet_id = body[at : at + 2]
                at += 2
                self.sock.sendall(_packet(0x40, packet_id))
            return topic, body[self._skip_props(body, at) :]


ClientFactory = Callable[..., RawClient]


@pytest.fixture
def mqtt_client() -> Iterator[ClientFactory]:
    """`mqtt_client(broker, version)` -> a connected socket (not yet an MQTT session), closed at teardown."""
    clients: list[RawClient] = []

    def make(broker: RunningBroker, version: int = V311) -> RawClient:
        client = RawClient(broker.host, broker.port, version)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def mosquitto_missing_reason() -> str | None:
    binary = os.environ.get("MOSQUITTO_BIN", "/usr/sbin/mosquitto")
    if shutil.which(binary) is None:
        return f"mosquitto binary {binary} not installed (apt-get install mosquitto)"
    return None


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    """One mosquitto for a whole module: the ACL tests only read its behaviour."""
    reason = mosquitto_missing_reason()
    if reason:
        pytest.skip(reason)
    workdir: Path = tmp_path_factory.mktemp("mosquitto")
    broker = launch("mosquitto", workdir)
    yield broker
    broker.stop()
