"""The raw client against a scripted peer: packets, malformed streams and every kind of close."""

import socket
import threading
from collections.abc import Callable

import pytest

from harness.clients import Closed, PacketReceived, RawClient, StreamMalformed, TcpTransport
from harness.wire import Connack, Pingreq, Version, encode


def _peer(script: Callable[[socket.socket], None]) -> tuple[str, int]:
    """A one-connection server on a free loopback port that runs `script` on the accepted socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    host, port = listener.getsockname()

    def serve() -> None:
        connection, _ = listener.accept()
        listener.close()
        script(connection)

    threading.Thread(target=serve, daemon=True).start()
    return host, port


def _client(script: Callable[[socket.socket], None], version: Version = Version.V311) -> RawClient:
    host, port = _peer(script)
    return RawClient(TcpTransport(host, port), version)


def test_packets_split_and_coalesced_arrive_in_order():
    data = encode(Connack(reason_code=0), Version.V311) + encode(Connack(reason_code=5), Version.V311)

    def script(connection: socket.socket) -> None:
        connection.sendall(data[:3])
        connection.sendall(data[3:])
        connection.recv(10)

    client = _client(script)
    first, second = client.next_event(2), client.next_event(2)
    assert isinstance(first, PacketReceived) and first.decoded.packet.reason_code == 0
    assert isinstance(second, PacketReceived) and second.decoded.packet.reason_code == 5
    assert b"".join(e.data for e in client.transcript if e.direction == "received") == data
    client.close()


def test_a_clean_close_is_fin():
    client = _client(lambda connection: connection.close())
    event = client.next_event(2)
    assert isinstance(event, Closed) and event.how == "fin"
    assert client.next_event(0.01) is None


def test_a_reset_is_reported_as_reset():
    def script(connection: socket.socket) -> None:
        connection.recv(1)  # reset only once the client is connected, never during connect()
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        connection.close()

    client = _client(script)
    client.send_bytes(b"\xc0")
    event = client.next_event(2)
    assert isinstance(event, Closed) and event.how == "reset"


def test_nothing_within_the_timeout_is_none():
    done = threading.Event()
    client = _client(lambda connection: done.wait(5))
    assert client.next_event(0.05) is None
    done.set()


def test_an_unframeable_stream_is_reported_malformed():
    client = _client(lambda connection: connection.sendall(b"\x20\xff\xff\xff\xff\x01"))
    event = client.next_event(2)
    assert isinstance(event, StreamMalformed)
    assert event.malformed.finding.fatal


def test_sent_bytes_are_in_the_transcript():
    received: list[bytes] = []
    client = _client(lambda connection: received.append(connection.recv(10)))
    sent = client.send_packet(Pingreq())
    assert sent == b"\xc0\x00"
    assert [e.direction for e in client.transcript] == ["sent"]
    client.close()


@pytest.mark.parametrize("abort", [False, True])
def test_closing_our_side_is_seen_by_the_peer(abort):
    seen: list[bytes | Exception] = []
    finished = threading.Event()

    def script(connection: socket.socket) -> None:
        try:
            seen.append(connection.recv(10))
        except OSError as exc:
            seen.append(exc)
        finished.set()

    client = _client(script)
    client.close(abort=abort)
    assert finished.wait(2)
    assert isinstance(seen[0], ConnectionResetError) if abort else seen[0] == b""
