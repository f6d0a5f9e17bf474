"""The paho client kind: which steps need raw, property conversion, and PahoClient against brokers."""

import os
import socket
import threading
from pathlib import Path

import pytest

from harness.clients import Address, Closed, PacketReceived
from harness.clients.paho import (
    PahoClient,
    from_paho_properties,
    raw_only_reason,
    scenario_raw_only,
    to_paho_properties,
)
from harness.scenarios.model import Step
from harness.wire import (
    Connack,
    Connect,
    Disconnect,
    Pingreq,
    Pingresp,
    Publish,
    Subscribe,
    Unsubscribe,
    Version,
    encode,
)


def _step(kind: str, **args: object) -> Step:
    return Step(kind=kind, on=str(args.pop("on", "main")), args=dict(args), line=1)


@pytest.mark.parametrize(
    ("step", "words"),
    [
        (_step("send_raw", hex="c0 00"), "paho sends only well-formed"),
        (_step("send", packet="pingreq", flags=1), "flags"),
        (_step("send", packet="puback", packet_id=1), "sending PUBACK"),
        (_step("connect", protocol_level=7), "protocol_level"),
        (_step("send", packet="publish", topic="a/+", payload="x"), "wildcards"),
        (_step("send", packet="publish", topic="a", payload="x", qos=0, packet_id=3), "QoS 0 PUBLISH with a packet id"),
        (_step("send", packet="publish", topic="a", dup=True, qos=1, packet_id=1), "DUP"),
        (_step("send", packet="subscribe", packet_id=1, subscriptions=[{"topic_filter": "a/#/b"}]), "invalid filter"),
        (_step("send", packet="subscribe", packet_id=0, subscriptions=["a"]), "packet id 0"),
        (_step("send", packet="unsubscribe", packet_id=1, topic_filters=[]), "without topic filters"),
        (_step("send", packet="publish", topic="a\u0000b", payload="x"), "U+0000"),
        (_step("connect", will={"topic": "w", "properties": [["content_type", "a"], ["content_type", "b"]]}), "ordered"),
        (_step("expect", packet="pubrec"), "expecting PUBREC"),
        (_step("expect", packet="connack", flags=0), "fixed-header flags"),
        (_step("expect_close", keepalive=2), "Keep Alive"),
        (_step("expect_websocket", subprotocol="mqtt"), "WebSocket handshake"),
        (_step("send", packet="disconnect"), "paho closes its side"),
    ],
)
def test_steps_paho_cannot_do_say_why(step: Step, words: str) -> None:
    reason = raw_only_reason(step, Version.V311)
    assert reason is not None and words in reason


@pytest.mark.parametrize(
    "step",
    [
        _step("connected", client_id="${cid}", keep_alive=30, will={"topic": "${topic}/w", "payload": "x"}),
        _step("send", packet="publish", topic="${topic}/a", payload="x", qos=1, packet_id=4),
        _step("send", packet="subscribe", packet_id=1, subscriptions=[{"topic_filter": "${topic}/+", "qos": 2}]),
        _step("expect", packet="suback", packet_id=1, reason_codes=[2]),
        _step("expect_close", may_send=[{"packet": "disconnect", "reason_code": 0x8E}]),
        _step("disconnect"), _step("close", abort=True), _step("expect_nothing"),
        _step("expect_tls_failure", reason="unknown_ca", tls={"ca": "foreign"}),
    ],
)
def test_steps_paho_can_do(step: Step) -> None:
    assert raw_only_reason(step, Version.V5) is None


def test_sending_before_connect_needs_raw() -> None:
    steps = [_step("connected", on="a"), _step("send", on="b", packet="pingreq")]
    assert "before CONNECT" in (scenario_raw_only(steps, Version.V311) or "")
    assert scenario_raw_only(steps[:1], Version.V311) is None


def test_empty_client_id_needs_raw_only_under_3x() -> None:
    step = _step("connect", client_id="")
    assert raw_only_reason(step, Version.V311) and raw_only_reason(step, Version.V5) is None


def test_properties_convert_both_ways() -> None:
    ours = {"session_expiry_interval": 60, "user_property": [("a", "1"), ("b", "2")], "receive_maximum": 5}
    paho = to_paho_properties(ours, 1)  # CONNECT
    assert paho is not None and paho.SessionExpiryInterval == 60
    assert from_paho_properties(paho) == ours


# -- against scripted and real brokers -------------------------------------------------------------

def _scripted(script) -> Address:  # type: ignore[no-untyped-def]
    listener = socket.create_server(("127.0.0.1", 0))
    host, port = listener.getsockname()

    def serve() -> None:
        connection, _ = listener.accept()
        listener.close()
        connection.settimeout(5)
        try:
            script(connection)
        except OSError:
            pass
        finally:
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    return Address("tcp", host, port)


def test_what_paho_reports_carries_the_wire_bytes_and_findings() -> None:
    bad_connack = encode(Connack(reason_code=0), Version.V311, flags=1)  # reserved fixed-header flag set

    def script(connection: socket.socket) -> None:
        connection.recv(1024)  # CONNECT
        connection.sendall(bad_connack)
        connection.recv(1024)

    client = PahoClient(_scripted(script), Version.V311)
    client.send_packet(Connect(client_id="pahotest"))
    event = client.next_event(5)
    assert isinstance(event, PacketReceived) and event.decoded.packet.reason_code == 0
    assert event.decoded.raw == bad_connack
    assert [f.rule for f in event.decoded.findings] == ["MQTT-2.2.2-1"]
    assert [entry.direction for entry in client.transcript][:2] == ["sent", "received"]
    client.close()


def test_3x_refusal_is_reported_as_the_3x_return_code_then_closed() -> None:
    def script(connection: socket.socket) -> None:
        connection.recv(1024)
        connection.sendall(encode(Connack(reason_code=5), Version.V311))

    client = PahoClient(_scripted(script), Version.V311)
    client.send_packet(Connect(client_id="pahotest"))
    event = client.next_event(5)
    assert isinstance(event, PacketReceived) and event.decoded.packet.reason_code == 5  # paho says "Not authorized"
    closed = client.next_event(5)
    assert isinstance(closed, Closed) and "paho reports the connection lost" in closed.detail


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from harness.launch import launch

    if not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    broker = launch("mosquitto", tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.stop()


@pytest.mark.parametrize("version", [Version.V31, Version.V311, Version.V5])
def test_round_trip_through_paho(mosquitto, version: Version) -> None:  # type: ignore[no-untyped-def]
    account = mosquitto.accounts["default"]
    client = PahoClient(Address("tcp", mosquitto.host, mosquitto.port), version)
    client.send_packet(Connect(client_id=f"paho{version.value}", username=account.username, password=account.password))
    connack = client.next_event(5)
    assert isinstance(connack, PacketReceived) and connack.decoded.packet.reason_code == 0
    client.send_packet(Subscribe(packet_id=11, subscriptions=[{"topic_filter": f"paho/{version.value}/#", "qos": 1}]))
    suback = client.next_event(5)
    assert isinstance(suback, PacketReceived) and (suback.decoded.packet.packet_id, suback.decoded.packet.reason_codes) == (11, [1])
    client.send_packet(Publish(topic=f"paho/{version.value}/a", payload=b"hi", qos=1, packet_id=12))
    kinds = {}
    for _ in range(2):  # the PUBACK and our own message, in either order
        event = client.next_event(5)
        assert isinstance(event, PacketReceived)
        kinds[type(event.decoded.packet).__name__] = event.decoded.packet
    assert kinds["Puback"].packet_id == 12 and kinds["Publish"].payload == b"hi"
    client.send_packet(Pingreq())  # the barrier: paho's own PINGREQ, reported PINGRESP
    pingresp = client.next_event(5)
    assert isinstance(pingresp, PacketReceived) and isinstance(pingresp.decoded.packet, Pingresp)
    client.send_packet(Unsubscribe(packet_id=13, topic_filters=[f"paho/{version.value}/#"]))
    unsuback = client.next_event(5)
    assert isinstance(unsuback, PacketReceived) and unsuback.decoded.packet.packet_id == 13
    client.send_packet(Disconnect())
    client.close()
    assert client.next_event(0.05) is None  # a disconnect we asked for is not reported as a close


@pytest.fixture
def descriptors_above_1024():  # type: ignore[no-untyped-def]
    """The process holds descriptors 3..1100, so the next socket's number is past select()'s FD_SETSIZE."""
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the hard descriptor limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200) if soft != resource.RLIM_INFINITY else soft, hard))
    held = []
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_connection_whose_descriptor_is_past_1024_still_works(mosquitto, descriptors_above_1024) -> None:  # type: ignore[no-untyped-def]
    # paho's own loop_start() thread dies silently in select() there: no CONNACK was ever reported.
    account = mosquitto.accounts["default"]
    client = PahoClient(Address("tcp", mosquitto.host, mosquitto.port), Version.V5)
    client.send_packet(Connect(client_id="paho-high-fd", username=account.username, password=account.password))
    connack = client.next_event(5)
    assert isinstance(connack, PacketReceived) and connack.decoded.packet.reason_code == 0
    client.send_packet(Subscribe(packet_id=1, subscriptions=[{"topic_filter": "paho/high-fd", "qos": 1}]))
    suback = client.next_event(5)
    assert isinstance(suback, PacketReceived) and suback.decoded.packet.reason_codes == [1]
    client.send_packet(Publish(topic="paho/high-fd", payload=b"far", qos=1, packet_id=2))
    received = {type(client.next_event(5).decoded.packet).__name__ for _ in range(2)}  # type: ignore[union-attr]
    assert received == {"Puback", "Publish"}
    client.send_packet(Disconnect())
    client.close()
    assert client.next_event(0.05) is None


def test_a_failure_of_the_network_thread_is_reported_as_a_close(monkeypatch: pytest.MonkeyPatch) -> None:
    def script(connection: socket.socket) -> None:
        connection.recv(1024)
        connection.sendall(encode(Connack(reason_code=0), Version.V311))
        connection.recv(1024)

    def broken(self: object, max_packets: int = 1) -> int:
        raise RuntimeError("a bug in paho")

    from harness.clients import paho

    monkeypatch.setattr(paho._TappedClient, "loop_read", broken)
    client = PahoClient(_scripted(script), Version.V311)
    client.send_packet(Connect(client_id="pahotest"))
    closed = client.next_event(5)
    assert isinstance(closed, Closed) and "paho network thread failed: RuntimeError: a bug in paho" in closed.detail
    client.close()
