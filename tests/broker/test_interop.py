"""Interoperability with real, independent clients: paho-mqtt 2.x (3.1.1, 5.0), Debian's
mosquitto_pub / mosquitto_sub (libmosquitto: 3.1, 3.1.1, 5.0) and gmqtt (asyncio, its own codec).

Each client does the same things: connect, QoS 0/1/2 both ways, a retained message, a will, and a
persistent session resumed with a message queued while it was away.
"""

from __future__ import annotations

import asyncio
import queue
import shutil
import signal
import subprocess
import threading
from typing import Any

import paho.mqtt.client as paho
import pytest
from broker_helpers import BrokerProcess, Client, uid
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from harness.wire import Version

TIMEOUT = 10.0


# -- paho ----------------------------------------------------------------------------------------

class Paho:
    """A paho client on its own network thread, with received messages in a queue."""

    def __init__(self, port: int, protocol: int, client_id: str, clean: bool = True, expiry: int = 0,
                 will: tuple[str, bytes, int, bool] | None = None) -> None:
        self.protocol = protocol
        kwargs: dict[str, Any] = {"client_id": client_id, "protocol": protocol}
        if protocol != paho.MQTTv5:
            kwargs["clean_session"] = clean
        self.client = paho.Client(CallbackAPIVersion.VERSION2, **kwargs)
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.session_present: bool | None = None
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.on_subscribe = lambda *a: self.subscribed.set()

        def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
            self.session_present = flags.session_present
            self.connected.set()

        self.client.on_connect = on_connect
        if will:
            self.client.will_set(*will)
        props = None
        if protocol == paho.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = expiry
        if protocol == paho.MQTTv5:
            self.client.connect("127.0.0.1", port, clean_start=clean, properties=props)
        else:
            self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.connected.wait(TIMEOUT)

    def subscribe(self, topic: str, qos: int) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic, qos)
        assert self.subscribed.wait(TIMEOUT)

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos, retain).wait_for_publish(TIMEOUT)

    def get(self) -> paho.MQTTMessage:
        return self.messages.get(timeout=TIMEOUT)

    def stop(self, clean: bool = True) -> None:
        if clean:
            self.client.disconnect()
        else:
            sock = self.client.socket()
            if sock is not None:
                sock.close()  # no DISCONNECT: an abnormal close, the will goes out
        self.client.loop_stop()


@pytest.mark.parametrize("protocol", [paho.MQTTv311, paho.MQTTv5], ids=["3.1.1", "5.0"])
def test_paho(broker: BrokerProcess, protocol: int) -> None:
    base = uid("p")
    sub = Paho(broker.port, protocol, uid())
    pub = Paho(broker.port, protocol, uid())
    try:
        sub.subscribe(f"{base}/#", 2)
        for qos in (0, 1, 2):
            pub.publish(f"{base}/q{qos}", b"qos %d" % qos, qos)
            got = sub.get()
            assert (got.topic, got.payload, got.qos, got.retain) == (f"{base}/q{qos}", b"qos %d" % qos, qos, False)
        pub.publish(f"{base}/retained", b"kept", 1, retain=True)
        assert sub.get().retain is False
        late = Paho(broker.port, protocol, uid())
        late.subscribe(f"{base}/retained", 1)
        got = late.get()
        assert (got.payload, got.retain) == (b"kept", True)
        late.stop()
        pub.publish(f"{base}/retained", b"", 1, retain=True)
        assert sub.get().payload == b""
        dying = Paho(broker.port, protocol, uid(), will=(f"{base}/will", b"bye", 1, False))
        dying.stop(clean=False)
        got = sub.get()
        assert (got.topic, got.payload) == (f"{base}/will", b"bye")
        cid = uid()
        persistent = Paho(broker.port, protocol, cid, clean=False, expiry=60)
        persistent.subscribe(f"{base}/session", 1)
        persistent.stop()
        pub.publish(f"{base}/session", b"while away", 1)
        assert sub.get().payload == b"while away"
        back = Paho(broker.port, protocol, cid, clean=False, expiry=0)
        assert back.session_present is True
        assert back.get().payload == b"while away"
        back.stop()
    finally:
        sub.stop()
        pub.stop()


# -- mosquitto_pub / mosquitto_sub ---------------------------------------------------------------

needs_mosquitto = pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="mosquitto-clients not installed")


class MosquittoSub:
    """mosquitto_sub in debug mode: waits for its SUBACK, then collects `topic payload` lines."""

    def __init__(self, port: int, version: str, topic: str, *extra: str) -> None:
        self.proc = subprocess.Popen(
            # stdbuf: its debug lines are block-buffered on a pipe otherwise
            ["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-V", version, "-t", topic,
             "-v", "-d", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.suback = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.suback.wait(TIMEOUT):
            self.stop(signal.SIGKILL)
            raise AssertionError("mosquitto_sub got no SUBACK")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if "received SUBACK" in line:
                self.suback.set()
            elif not line.startswith("Client ") and not line.startswith("Subscribed"):
                self.lines.put(line.rstrip("\n"))

    def get(self) -> str:
        return self.lines.get(timeout=TIMEOUT)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def mosquitto_pub(port: int, version: str, topic: str, message: str, *extra: str) -> None:
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", version, "-t", topic,
                    "-m", message, *extra], check=True, timeout=TIMEOUT, capture_output=True)


@needs_mosquitto
@pytest.mark.parametrize("version", ["mqttv31", "mqttv311", "mqttv5"])
def test_mosquitto_clients(broker: BrokerProcess, version: str) -> None:
    base = uid("m")
    sub = MosquittoSub(broker.port, version, f"{base}/#", "-q", "2", "-i", uid())
    try:
        for qos in (0, 1, 2):
            mosquitto_pub(broker.port, version, f"{base}/q{qos}", f"qos{qos}", "-q", str(qos))
            assert sub.get() == f"{base}/q{qos} qos{qos}"
        mosquitto_pub(broker.port, version, f"{base}/retained", "kept", "-q", "1", "-r")
        assert sub.get() == f"{base}/retained kept"
        late = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-V", version,
                               "-t", f"{base}/retained", "-C", "1", "-W", "5", "-F", "%r %p"],
                              capture_output=True, text=True, timeout=TIMEOUT)
        assert late.stdout.strip() == "1 kept"  # delivered on subscribe with RETAIN 1
        mosquitto_pub(broker.port, version, f"{base}/retained", "", "-q", "1", "-r")
        assert sub.get().split()[0] == f"{base}/retained"
        dying = MosquittoSub(broker.port, version, f"{base}/nothing", "--will-topic", f"{base}/will",
                             "--will-payload", "bye", "--will-qos", "1", "-i", uid())
        dying.stop(signal.SIGKILL)  # no DISCONNECT: the will goes out
        assert sub.get() == f"{base}/will bye"
        cid = uid()
        session = ["-c", "-i", cid, "-q", "1"] + (["-x", "60"] if version == "mqttv5" else [])
        first = MosquittoSub(broker.port, version, f"{base}/session", *session, "-E")
        assert first.proc.wait(TIMEOUT) == 0  # -E: exits by itself after the SUBACK (a SIGTERM then can hang it)
        mosquitto_pub(broker.port, version, f"{base}/session", "while away", "-q", "1")
        assert sub.get() == f"{base}/session while away"
        back = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-V", version,
                               "-t", f"{base}/session", *session, "-C", "1", "-W", "5"],
                              capture_output=True, text=True, timeout=TIMEOUT)
        assert back.stdout.strip() == "while away"
    finally:
        sub.stop()


# -- gmqtt (asyncio) -----------------------------------------------------------------------------

async def _gmqtt_client(port: int, version: int, client_id: str, *, clean: bool = True, expiry: int = 0,
                        will: Any = None) -> tuple[Any, asyncio.Queue[tuple[str, bytes, int, int]]]:
    import gmqtt

    inbox: asyncio.Queue[tuple[str, bytes, int, int]] = asyncio.Queue()
    client = gmqtt.Client(client_id, clean_session=clean, session_expiry_interval=expiry, will_message=will)
    client.set_config({"reconnect_retries": 0})

    def on_message(c: Any, topic: str, payload: bytes, qos: int, properties: dict[str, Any]) -> int:
        inbox.put_nowait((topic, payload, qos, properties.get("retain", 0)))
        return 0

    client.on_message = on_message
    await client.connect("127.0.0.1", port, version=version)
    return client, inbox


async def _subscribed(client: Any, topic: str, qos: int) -> None:
    done = asyncio.get_running_loop().create_future()
    client.on_subscribe = lambda *a: done.done() or done.set_result(True)
    client.subscribe(topic, qos=qos)
    await asyncio.wait_for(done, TIMEOUT)


async def _gmqtt_scenario(port: int, version: int) -> None:
    from gmqtt import Message

    base = uid("g")
    sub, inbox = await _gmqtt_client(port, version, uid())
    pub, _ = await _gmqtt_client(port, version, uid())

    async def get() -> tuple[str, bytes, int, int]:
        return await asyncio.wait_for(inbox.get(), TIMEOUT)

    await _subscribed(sub, f"{base}/#", 2)
    for qos in (0, 1, 2):
        pub.publish(f"{base}/q{qos}", b"qos %d" % qos, qos=qos)
        assert await get() == (f"{base}/q{qos}", b"qos %d" % qos, qos, 0)
    pub.publish(f"{base}/retained", b"kept", qos=1, retain=True)
    assert (await get())[1] == b"kept"
    late, late_inbox = await _gmqtt_client(port, version, uid())
    await _subscribed(late, f"{base}/retained", 1)
    topic, payload, qos, retain = await asyncio.wait_for(late_inbox.get(), TIMEOUT)
    assert (payload, retain) == (b"kept", 1)
    await late.disconnect()
    pub.publish(f"{base}/retained", b"", qos=1, retain=True)
    assert (await get())[1] == b""
    dying, _ = await _gmqtt_client(port, version, uid(), will=Message(f"{base}/will", b"bye", qos=1))
    dying._connection._transport.abort()  # no DISCONNECT: the will goes out
    assert (await get())[:2] == (f"{base}/will", b"bye")
    cid = uid()
    first, _ = await _gmqtt_client(port, version, cid, clean=False, expiry=60)
    await _subscribed(first, f"{base}/session", 1)
    await first.disconnect()
    pub.publish(f"{base}/session", b"while away", qos=1)
    assert (await get())[1] == b"while away"
    back, back_inbox = await _gmqtt_client(port, version, cid, clean=False, expiry=60)
    assert (await asyncio.wait_for(back_inbox.get(), TIMEOUT))[1] == b"while away"
    await back.disconnect()
    await sub.disconnect()
    await pub.disconnect()


@pytest.mark.parametrize("version", [4, 5], ids=["3.1.1", "5.0"])
def test_gmqtt(broker: BrokerProcess, version: int) -> None:
    pytest.importorskip("gmqtt", reason="gmqtt is not installed (pip install gmqtt)")
    asyncio.run(_gmqtt_scenario(broker.port, version))


def test_raw_client_sees_interop_traffic_as_conformant(broker: BrokerProcess) -> None:
    """Cross-check: what paho publishes reaches a strict decoder with no findings (Client asserts it)."""
    topic = uid("x")
    raw = Client(broker.port, Version.V5)
    try:
        raw.connect(uid())
        raw.subscribe(topic, qos=2)
        p = Paho(broker.port, paho.MQTTv5, uid())
        p.publish(topic, b"x", 2)
        p.stop()
        assert raw.receive_publish().payload == b"x"
    finally:
        raw.close()
