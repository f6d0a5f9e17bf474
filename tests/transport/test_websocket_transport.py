"""The WebSocket transport against scripted servers: the upgrade, frame boundaries, control frames."""

import socket
import struct
import threading

import pytest
from peers import FrameReader, accept_upgrade, serve_once, server_frame, tls_server

from harness.certs import Pki, make_pki
from harness.clients import (
    Address,
    Closed,
    HandshakeFailed,
    PacketReceived,
    RawClient,
    TlsOptions,
    open_transport,
)
from harness.clients.websocket import OPCODES, WebSocketTransport, encode_frame, mask, parse_frame
from harness.wire import Connack, Pingreq, Pingresp, Version, encode

CONNACK = encode(Connack(reason_code=0), Version.V311)
PINGRESP = encode(Pingresp(), Version.V311)


def _ws(port: int, path: str = "/mqtt", subprotocols: tuple[str, ...] = ("mqtt",)) -> WebSocketTransport:
    transport = open_transport(Address("ws", "127.0.0.1", port, path), connect_timeout=3, subprotocols=subprotocols)
    assert isinstance(transport, WebSocketTransport)
    return transport


@pytest.mark.parametrize("length", [0, 5, 125, 126, 65535, 65536, 70000])
def test_frames_roundtrip_with_every_length_encoding(length: int) -> None:
    payload = bytes(range(256)) * (length // 256) + bytes(length % 256)
    frame = encode_frame(payload)
    assert frame[1] & 0x80, "client frames are masked"
    fin, opcode, masked, decoded, size = parse_frame(frame + b"tail")  # type: ignore[misc]
    assert (fin, opcode, masked, decoded, size) == (True, OPCODES["binary"], True, payload, len(frame))
    assert parse_frame(frame[:-1] if length else frame[:1]) is None


def test_mask_is_its_own_inverse() -> None:
    assert mask(mask(b"hello world", b"\x01\x02\x03\x04"), b"\x01\x02\x03\x04") == b"hello world"


def test_upgrade_offers_mqtt_and_records_the_answer() -> None:
    seen: dict[str, str] = {}
    done = threading.Event()

    def script(connection: socket.socket) -> None:
        seen.update(accept_upgrade(connection))
        done.set()
        connection.recv(10)

    _, port = serve_once(script)
    transport = _ws(port, "/mqtt/path?x=1")
    assert transport.subprotocol == "mqtt" and transport.status.startswith("HTTP/1.1 101")
    transport.close()
    assert done.wait(5)
    assert seen["request-line"] == "GET /mqtt/path?x=1 HTTP/1.1"
    assert seen["sec-websocket-protocol"] == "mqtt"  # MQTT-6.0.0-3
    assert seen["sec-websocket-version"] == "13" and seen["upgrade"].lower() == "websocket"


def test_a_server_that_selects_no_subprotocol_is_recorded_not_refused() -> None:
    _, port = serve_once(lambda connection: (accept_upgrade(connection, subprotocol=None), connection.recv(10)))
    assert _ws(port).subprotocol is None


def test_a_refused_upgrade_is_a_handshake_failure() -> None:
    def script(connection: socket.socket) -> None:
        connection.recv(4096)
        connection.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    _, port = serve_once(script)
    with pytest.raises(HandshakeFailed, match="refused: HTTP/1.1 404 Not Found"):
        _ws(port)


def test_a_wrong_accept_key_is_a_handshake_failure() -> None:
    _, port = serve_once(lambda connection: (accept_upgrade(connection, accept="bm90IHRoZSBrZXk="), connection.recv(10)))
    with pytest.raises(HandshakeFailed, match="Sec-WebSocket-Accept"):
        _ws(port)


def test_a_plain_mqtt_port_is_not_http() -> None:
    def script(connection: socket.socket) -> None:
        connection.recv(4096)
        connection.sendall(CONNACK + b"\r\n\r\n")

    _, port = serve_once(script)
    with pytest.raises(HandshakeFailed, match="not an HTTP response"):
        _ws(port)


def test_packets_split_over_frames_and_coalesced_in_one_arrive_in_order() -> None:
    stream = CONNACK + PINGRESP + PINGRESP

    def script(connection: socket.socket) -> None:
        accept_upgrade(connection)
        # One frame ends inside the CONNACK, the next holds its end and two whole packets; plus a
        # fragmented message (continuation frame) and a frame right behind the 101 answer.
        connection.sendall(server_frame(stream[:1]) + server_frame(stream[1:3], fin=False))
        connection.sendall(server_frame(stream[3:], "continuation"))
        connection.recv(10)

    _, port = serve_once(script)
    client = RawClient(_ws(port), Version.V311)
    kinds = [type(e.decoded.packet).__name__ for e in (client.next_event(3) for _ in range(3)) if isinstance(e, PacketReceived)]
    assert kinds == ["Connack", "Pingresp", "Pingresp"]
    client.close()


def test_client_frames_are_masked_binary_and_framed_as_asked() -> None:
    frames: list[tuple[bool, int, bool, bytes]] = []

    def script(connection: socket.socket) -> None:
        accept_upgrade(connection)
        reader = FrameReader(connection)
        for _ in range(4):
            frames.append(reader.next())
        connection.sendall(server_frame(PINGRESP))

    _, port = serve_once(script)
    client = RawClient(_ws(port), Version.V311)
    client.send_packet(Pingreq(), frames=2)  # one packet over two frames
    client.send_packet(Pingreq(), hold=True)  # held ...
    client.send_packet(Pingreq())  # ... and sent with this one in one frame
    client.send_packet(Pingreq(), ws_opcode="text")
    assert isinstance(client.next_event(3), PacketReceived)
    assert [(f[1], f[2], f[3]) for f in frames] == [
        (OPCODES["binary"], True, b"\xc0"), (OPCODES["binary"], True, b"\x00"),
        (OPCODES["binary"], True, b"\xc0\x00\xc0\x00"), (OPCODES["text"], True, b"\xc0\x00"),
    ]
    client.close()


def test_ping_is_answered_with_pong() -> None:
    answers: list[tuple[bool, int, bool, bytes]] = []

    def script(connection: socket.socket) -> None:
        accept_upgrade(connection)
        connection.sendall(server_frame(b"are you there", "ping"))
        answers.append(FrameReader(connection).next())
        connection.sendall(server_frame(PINGRESP))

    _, port = serve_once(script)
    client = RawClient(_ws(port), Version.V311)
    assert isinstance(client.next_event(3), PacketReceived)
    assert answers == [(True, OPCODES["pong"], True, b"are you there")]


def test_a_close_frame_is_echoed_and_reported_with_its_code() -> None:
    echoed: list[tuple[bool, int, bool, bytes]] = []
    done = threading.Event()

    def script(connection: socket.socket) -> None:
        accept_upgrade(connection)
        connection.sendall(server_frame(struct.pack("!H", 1002) + b"protocol error", "close"))
        echoed.append(FrameReader(connection).next())
        done.set()

    _, port = serve_once(script)
    client = RawClient(_ws(port), Version.V311)
    event = client.next_event(3)
    assert isinstance(event, Closed) and event.how == "fin"
    assert "close frame 1002" in event.detail and "protocol error" in event.detail
    assert done.wait(5)
    assert echoed and echoed[0][1] == OPCODES["close"] and echoed[0][3] == struct.pack("!H", 1002)


def test_the_end_of_tcp_without_a_close_frame_is_said() -> None:
    _, port = serve_once(lambda connection: accept_upgrade(connection))
    event = RawClient(_ws(port), Version.V311).next_event(3)
    assert isinstance(event, Closed) and "without a WebSocket close frame" in event.detail


def test_a_text_frame_from_the_server_breaks_mqtt_6_0_0_1() -> None:
    def script(connection: socket.socket) -> None:
        accept_upgrade(connection)
        connection.sendall(server_frame(PINGRESP) + server_frame(PINGRESP, "text"))
        connection.recv(10)

    _, port = serve_once(script)
    client = RawClient(_ws(port), Version.V311)
    assert isinstance(client.next_event(3), PacketReceived)  # the binary frame before it still counts
    event = client.next_event(3)
    assert isinstance(event, Closed) and "MQTT-6.0.0-1" in event.detail


def test_a_masked_frame_from_the_server_is_a_violation() -> None:
    def script(connection: socket.socket) -> None:
        accept_upgrade(connection)
        connection.sendall(encode_frame(PINGRESP))  # masked, as only clients may
        connection.recv(10)

    _, port = serve_once(script)
    event = RawClient(_ws(port), Version.V311).next_event(3)
    assert isinstance(event, Closed) and "masked" in event.detail


def test_wss_is_websocket_over_tls(tmp_path_factory: pytest.TempPathFactory) -> None:
    pki: Pki = make_pki(tmp_path_factory.mktemp("pki"))

    def script(connection: socket.socket) -> None:
        accept_upgrade(connection)
        connection.sendall(server_frame(CONNACK))
        connection.recv(10)

    _, port = tls_server(pki, script)
    transport = open_transport(Address("wss", "127.0.0.1", port, "/mqtt", TlsOptions(ca_file=str(pki.ca))), 3)
    client = RawClient(transport, Version.V311)
    assert isinstance(client.next_event(3), PacketReceived)
    client.close()
