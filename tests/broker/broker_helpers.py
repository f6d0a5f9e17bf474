"""Test plumbing for the reference broker: run it as a process, and a blocking raw client.

The raw client decodes everything the broker sends with a client-role `harness.wire.Decoder` and
fails the test on any finding, so every test also checks that the broker's own packets conform.
"Nothing arrives" is always proven with a PINGREQ/PINGRESP barrier (`ping()`), never a sleep.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.wire import (
    Connack,
    Connect,
    Decoded,
    Decoder,
    Disconnect,
    Malformed,
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

REPO = Path(__file__).resolve().parents[2]
READY = re.compile(r"ready .*?listening ((?:\S+:\d+ ?)+)")
TIMEOUT = 5.0


@dataclass
class BrokerProcess:
    proc: subprocess.Popen[str]
    host: str
    port: int
    log: list[str] = field(default_factory=list)

    def log_text(self) -> str:
        return "".join(self.log)

    def rss_kb(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


def start_broker(config: dict[str, Any] | None = None, *args: str, timeout: float = 10.0) -> BrokerProcess:
    """Start `python -m harness.broker` on a free loopback port; returns once it printed `ready`."""
    handle, path = tempfile.mkstemp(suffix=".yaml", prefix="broker-")
    with os.fdopen(handle, "w") as out:
        yaml.safe_dump(config or {}, out)
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.broker", "--config", path, "--listen", "127.0.0.1:0", *args],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=REPO,
    )
    log: list[str] = []
    ready = threading.Event()
    found: list[tuple[str, int]] = []

    def drain() -> None:  # read stderr for the whole life of the process, so it never blocks on a pipe
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)
            match = READY.search(line)
            if match and not ready.is_set():
                host, port = match.group(1).split()[0].rsplit(":", 1)
                found.append((host, int(port)))
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    ready.wait(timeout)
    os.unlink(path)
    if not found:
        stop_process(proc)
        raise RuntimeError("broker did not become ready:\n" + "".join(log))
    return BrokerProcess(proc, found[0][0], found[0][1], log)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 5.0) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@contextlib.contextmanager
def running_broker(config: dict[str, Any] | None = None, *args: str) -> Iterator[BrokerProcess]:
    broker = start_broker(config, *args)
    try:
        yield broker
    finally:
        code = stop_process(broker.proc)
        assert code == 0, f"broker exited with {code}:\n{broker.log_text()}"
        assert "Traceback" not in broker.log_text(), broker.log_text()


class Closed(Exception):
    pass


class Client:
    """A blocking MQTT client that sends exactly what it is told and checks what comes back."""

    def __init__(self, port: int, version: Version = Version.V311, host: str = "127.0.0.1") -> None:
        self.version = version
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.decoder = Decoder(version, role="client")
        self.pending: deque[Packet] = deque()
        self.closed = False

    # -- sending -------------------------------------------------------------------------------

    def send(self, packet: Packet, **overrides: Any) -> None:
        self.send_raw(encode(packet, self.version, **overrides))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    # -- receiving -----------------------------------------------------------------------------

    def _read(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 16)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.closed = True
            raise Closed
        for event in self.decoder.feed(data):
            if isinstance(event, Malformed):
                raise AssertionError(f"broker sent a malformed stream: {event.finding}")
            assert isinstance(event, Decoded)
            assert not event.findings, f"broker violated the spec: {[str(f) for f in event.findings]}"
            self.pending.append(event.packet)

    def recv(self, timeout: float = TIMEOUT) -> Packet:
        deadline = time.monotonic() + timeout
        while not self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no packet from the broker")
            self._read(left)
        return self.pending.popleft()

    def expect(self, kind: type, timeout: float = TIMEOUT) -> Any:
        packet = self.recv(timeout)
        assert isinstance(packet, kind), f"expected {kind.__name__}, got {packet}"
        return packet

    def ping(self) -> list[Packet]:
        """Barrier: everything the broker sent before answering a PINGREQ."""
        self.send(Pingreq())
        before = []
        while True:
            packet = self.recv()
            if isinstance(packet, Pingresp):
                return before
            before.append(packet)

    def sync(self) -> None:
        """Barrier that keeps what arrives: once it returns, the broker has handled all we sent."""
        self.send(Pingreq())
        kept = []
        while True:
            packet = self.recv()
            if isinstance(packet, Pingresp):
                break
            kept.append(packet)
        self.pending.extendleft(reversed(kept))

    def expect_closed(self, timeout: float = TIMEOUT) -> list[Packet]:
        """The broker closes the connection; returns what it sent before closing."""
        got = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"connection still open; received {got}")
                got.append(self.recv(left))
        except Closed:
            return got
        except TimeoutError:
            raise AssertionError(f"connection still open; received {got}") from None

    # -- conveniences --------------------------------------------------------------------------

    def connect(self, client_id: str, *, clean: bool = True, keep_alive: int = 60, username: str | None = None,
                password: bytes | None = None, will: Will | None = None, properties: dict[str, Any] | None = None,
                expect_code: int | None = 0) -> Connack:
        self.send(Connect(client_id=client_id, clean_session=clean, keep_alive=keep_alive, username=username,
                          password=password, will=will, properties=properties or {}))
        connack = self.expect(Connack)
        if expect_code is not None:
            assert connack.reason_code == expect_code, connack
        return connack

    def subscribe(self, *filters: str | Subscription, qos: int = 0, packet_id: int = 1,
                  properties: dict[str, Any] | None = None) -> list[int]:
        subs = [f if isinstance(f, Subscription) else Subscription(topic_filter=f, qos=qos) for f in filters]
        self.send(Subscribe(packet_id=packet_id, subscriptions=subs, properties=properties or {}))
        suback = self.expect(Suback)
        assert suback.packet_id == packet_id
        return list(suback.reason_codes)

    def unsubscribe(self, *filters: str, packet_id: int = 2) -> Unsuback:
        self.send(Unsubscribe(packet_id=packet_id, topic_filters=list(filters)))
        unsuback = self.expect(Unsuback)
        assert unsuback.packet_id == packet_id
        return unsuback

    def publish(self, topic: str, payload: bytes = b"", qos: int = 0, retain: bool = False, packet_id: int = 1,
                properties: dict[str, Any] | None = None) -> Packet | None:
        """Publish and complete the QoS flow; returns the PUBACK / PUBCOMP (None for QoS 0).

        On return the broker has routed the message (for QoS 0 a PINGREQ round trip makes sure).
        """
        self.send(Publish(topic=topic, payload=payload, qos=qos, retain=retain,
                          packet_id=packet_id if qos else None, properties=properties or {}))
        if qos == 1:
            ack = self.expect(Puback)
            assert ack.packet_id == packet_id
            return ack
        if qos == 2:
            rec = self.expect(Pubrec)
            assert rec.packet_id == packet_id
            self.send(Pubrel(packet_id=packet_id))
            comp = self.expect(Pubcomp)
            assert comp.packet_id == packet_id
            return comp
        self.sync()
        return None

    def receive_publish(self, ack: bool = True) -> Publish:
        packet = self.expect(Publish)
        if ack and packet.qos == 1:
            self.send(Puback(packet_id=packet.packet_id))
        elif ack and packet.qos == 2:
            self.send(Pubrec(packet_id=packet.packet_id))
            rel = self.expect(Pubrel)
            assert rel.packet_id == packet.packet_id
            self.send(Pubcomp(packet_id=packet.packet_id))
        return packet

    def disconnect(self, **kwargs: Any) -> None:
        self.send(Disconnect(**kwargs))
        self.close()

    def close(self, abort: bool = False) -> None:
        if abort:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        with contextlib.suppress(OSError):
            self.sock.close()


_counter = iter(range(1, 1 << 30))


def uid(prefix: str = "c") -> str:
    """A ClientId / topic segment unique in this run: short alphanumerics (fits MQTT 3.1's 23 chars)."""
    return f"{prefix}{os.getpid() % 10000}x{next(_counter)}"
