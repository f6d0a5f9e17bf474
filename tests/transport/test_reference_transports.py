"""The reference broker's TLS and WebSocket listeners, and its Cumulocity-style certificate identity."""

import dataclasses
import socket
from pathlib import Path

import pytest

from harness.broker.config import ConfigError, config_from_mapping
from harness.clients import (
    Address,
    Closed,
    HandshakeFailed,
    PacketReceived,
    RawClient,
    TlsFailure,
    TlsOptions,
    open_transport,
)
from harness.clients.websocket import OPCODES, WebSocketTransport
from harness.launch import ALL_LISTENERS, RunningBroker, launch
from harness.wire import Connect, Pingreq, Version


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> RunningBroker:
    broker = launch("reference", tmp_path_factory.mktemp("reference"), transports=ALL_LISTENERS, client_id_from_cn=True)
    yield broker
    broker.stop()


def _address(broker: RunningBroker, name: str, **tls: object) -> Address:
    served = broker.endpoints[name]
    options = TlsOptions(ca_file=str(broker.ca_file), **tls) if served.transport in ("tls", "wss") else None  # type: ignore[arg-type]
    return Address(served.transport, served.host, served.port, served.path or "/mqtt", options)


def _connack(broker: RunningBroker, address: Address, client_id: str, credentials: bool = True) -> object:
    account = broker.accounts["default"]
    client = RawClient(open_transport(address, 3), Version.V311)
    extra = {"username": account.username, "password": account.password} if credentials else {}
    client.send_packet(Connect(client_id=client_id, **extra))  # type: ignore[arg-type]
    event = client.next_event(3)
    client.close()
    return event


@pytest.mark.parametrize("name", ["tcp", "tls", "ws", "wss"])
def test_every_transport_serves_mqtt(reference: RunningBroker, name: str) -> None:
    event = _connack(reference, _address(reference, name), f"ref{name}")
    assert isinstance(event, PacketReceived) and event.decoded.packet.reason_code == 0


def test_websocket_upgrade_selects_mqtt_and_text_frames_close(reference: RunningBroker) -> None:
    transport = open_transport(_address(reference, "ws"), 3)
    assert isinstance(transport, WebSocketTransport) and transport.subprotocol == "mqtt"
    client = RawClient(transport, Version.V311)
    account = reference.accounts["default"]
    client.send_packet(Connect(client_id="reftext", username=account.username, password=account.password))
    assert isinstance(client.next_event(3), PacketReceived)
    client.send_packet(Pingreq(), ws_opcode="text")
    event = client.next_event(3)
    assert isinstance(event, Closed) and "1003" in event.detail  # MQTT-6.0.0-1


def test_websocket_without_the_mqtt_subprotocol_is_refused(reference: RunningBroker) -> None:
    with pytest.raises(HandshakeFailed, match="400"):
        open_transport(_address(reference, "ws"), 3, subprotocols=("chat",))


def test_websocket_on_another_path_is_not_found(reference: RunningBroker) -> None:
    address = dataclasses.replace(_address(reference, "ws"), path="/elsewhere")
    with pytest.raises(HandshakeFailed, match="404"):
        open_transport(address, 3)


def test_split_and_coalesced_frames_reach_the_broker_whole(reference: RunningBroker) -> None:
    client = RawClient(open_transport(_address(reference, "ws"), 3), Version.V311)
    account = reference.accounts["default"]
    client.send_packet(Connect(client_id="refsplit", username=account.username, password=account.password), frames=5)
    assert isinstance(client.next_event(3), PacketReceived)
    client.send_packet(Pingreq(), hold=True)
    client.send_packet(Pingreq())
    assert [type(e.decoded.packet).__name__ for e in (client.next_event(3), client.next_event(3))  # type: ignore[union-attr]
            ] == ["Pingresp", "Pingresp"]
    client.close()


def test_a_refused_client_certificate_gets_an_alert(reference: RunningBroker) -> None:
    pki = reference.pki
    assert pki is not None
    with pytest.raises(TlsFailure) as failure:  # TLS 1.2: in the handshake
        open_transport(_address(reference, "mtls", cert_file=str(pki.foreign_client.cert),
                                key_file=str(pki.foreign_client.key), max_version="1.2"), 3)
    assert failure.value.reason == "client_cert_refused"
    client = RawClient(open_transport(_address(reference, "mtls"), 3), Version.V311)  # TLS 1.3: on the first read
    client.send_packet(Pingreq())
    event = client.next_event(3)
    assert isinstance(event, Closed) and event.tls_reason == "client_cert_required"


@pytest.mark.parametrize("client_id", ["harnessdevice", "d:harnessdevice", "d:harnessdevice:tpl"])
def test_the_certificate_common_name_is_the_device_id(reference: RunningBroker, client_id: str) -> None:
    pki = reference.pki
    assert pki is not None
    address = _address(reference, "mtls", cert_file=str(pki.client.cert), key_file=str(pki.client.key))
    event = _connack(reference, address, client_id, credentials=False)  # the certificate is the credential
    assert isinstance(event, PacketReceived) and event.decoded.packet.reason_code == 0


def test_a_client_id_that_is_not_the_common_name_is_not_authorized(reference: RunningBroker) -> None:
    pki = reference.pki
    assert pki is not None
    address = _address(reference, "mtls", cert_file=str(pki.client.cert), key_file=str(pki.client.key))
    event = _connack(reference, address, "d:someoneelse", credentials=False)
    assert isinstance(event, PacketReceived) and event.decoded.packet.reason_code == 5  # C8Y: 5 on certificate issues


def test_a_tls_client_on_the_websocket_port_is_told_it_is_not_tls(reference: RunningBroker) -> None:
    served = reference.endpoints["ws"]
    with pytest.raises(TlsFailure) as failure:
        open_transport(Address("tls", served.host, served.port, tls=TlsOptions(ca_file=str(reference.ca_file))), 3)
    assert failure.value.reason == "not_tls"


def test_listener_config_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs certfile and keyfile"):
        config_from_mapping({"listeners": [{"transport": "tls", "port": 0}]})
    with pytest.raises(ConfigError, match="not found"):
        config_from_mapping({"listeners": [{"transport": "wss", "certfile": str(tmp_path / "x.pem"), "keyfile": "k"}]})
    with pytest.raises(ConfigError, match="not supported"):
        config_from_mapping({"listeners": [{"transport": "quic"}]})


def test_plain_tcp_to_the_tls_port_gets_nothing_useful(reference: RunningBroker) -> None:
    # Not a verdict the harness relies on; documents that the TLS port does not speak MQTT in clear.
    served = reference.endpoints["tls"]
    with socket.create_connection((served.host, served.port), timeout=3) as sock:
        sock.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")
        sock.settimeout(3)
        assert not sock.recv(100).startswith(b"\x20")


def test_opcode_table_is_rfc6455() -> None:
    assert OPCODES == {"continuation": 0, "text": 1, "binary": 2, "close": 8, "ping": 9, "pong": 10}
