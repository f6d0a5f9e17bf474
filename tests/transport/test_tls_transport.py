"""The TLS transport against scripted TLS peers: MQTT through it, and every handshake failure named."""

import socket
import ssl
from pathlib import Path

import pytest
from peers import serve_once, tls_server

from harness.certs import Pki, make_pki
from harness.clients import Address, Closed, PacketReceived, RawClient, TlsFailure, TlsOptions, open_transport
from harness.clients.tls import classify
from harness.wire import Connack, Pingreq, Version, encode


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _trusting(pki: Pki, **options: object) -> TlsOptions:
    return TlsOptions(ca_file=str(pki.ca), **options)  # type: ignore[arg-type]


def _open(port: int, options: TlsOptions, host: str = "127.0.0.1") -> object:
    return open_transport(Address("tls", host, port, tls=options), connect_timeout=3)


def test_mqtt_packets_split_and_coalesced_over_tls(pki: Pki) -> None:
    data = encode(Connack(reason_code=0), Version.V311) + encode(Connack(reason_code=5), Version.V311)

    def script(connection: socket.socket) -> None:
        assert connection.recv(10) == b"\xc0\x00"  # the PINGREQ, decrypted
        connection.sendall(data[:3])
        connection.sendall(data[3:])
        connection.recv(10)

    _, port = tls_server(pki, script)
    client = RawClient(_open(port, _trusting(pki)), Version.V311)  # type: ignore[arg-type]
    client.send_packet(Pingreq())
    first, second = client.next_event(3), client.next_event(3)
    assert isinstance(first, PacketReceived) and first.decoded.packet.reason_code == 0
    assert isinstance(second, PacketReceived) and second.decoded.packet.reason_code == 5
    client.close()


def test_a_clean_tls_close_is_fin(pki: Pki) -> None:
    _, port = tls_server(pki, lambda connection: connection.unwrap())
    event = RawClient(_open(port, _trusting(pki)), Version.V311).next_event(3)  # type: ignore[arg-type]
    assert isinstance(event, Closed) and event.how == "fin"


@pytest.mark.parametrize(
    ("pair", "options", "reason", "words"),
    [
        ("server", {"ca": "foreign"}, "unknown_ca", "unable to get local issuer certificate"),
        ("server", {"server_name": "not-the-broker.invalid"}, "hostname_mismatch", "Hostname mismatch"),
        ("expired", {}, "expired", "certificate has expired"),
        ("not_yet_valid", {}, "not_yet_valid", "certificate is not yet valid"),
    ],
)
def test_a_certificate_that_cannot_be_trusted_fails_the_handshake(pki: Pki, pair: str, options: dict, reason: str, words: str) -> None:
    _, port = tls_server(pki, lambda connection: connection.recv(1), pair=getattr(pki, pair))
    tls = TlsOptions(ca_file=str(pki.foreign_ca if options.pop("ca", None) else pki.ca), **options)
    with pytest.raises(TlsFailure) as failure:
        _open(port, tls)
    assert failure.value.reason == reason
    assert str(failure.value).startswith("TLS handshake failed: certificate verify failed: ")
    assert words in str(failure.value)


def test_insecure_skips_verification(pki: Pki) -> None:
    _, port = tls_server(pki, lambda connection: connection.sendall(b"\x20\x02\x00\x00"), pair=pki.expired)
    client = RawClient(_open(port, TlsOptions(insecure=True)), Version.V311)  # type: ignore[arg-type]
    event = client.next_event(3)
    assert isinstance(event, PacketReceived)


def test_the_certificate_names_localhost_too(pki: Pki) -> None:
    _, port = tls_server(pki, lambda connection: connection.sendall(b"\x20\x02\x00\x00"))
    client = RawClient(_open(port, _trusting(pki), host="localhost"), Version.V311)  # type: ignore[arg-type]
    assert isinstance(client.next_event(3), PacketReceived)


def test_client_certificate_accepted_by_a_server_that_requires_one(pki: Pki) -> None:
    _, port = tls_server(pki, lambda connection: connection.sendall(b"\x20\x02\x00\x00"), client_ca=pki.ca)
    tls = _trusting(pki, cert_file=str(pki.client.cert), key_file=str(pki.client.key))
    assert isinstance(RawClient(_open(port, tls), Version.V311).next_event(3), PacketReceived)  # type: ignore[arg-type]


def test_tls13_missing_client_certificate_arrives_as_an_alert_on_read(pki: Pki) -> None:
    # TLS 1.3: the client's handshake completes before the server checks for a certificate.
    _, port = tls_server(pki, lambda connection: connection.recv(1), client_ca=pki.ca)
    client = RawClient(_open(port, _trusting(pki)), Version.V311)  # type: ignore[arg-type]
    client.send_packet(Pingreq())
    event = client.next_event(3)
    assert isinstance(event, Closed) and event.tls_reason == "client_cert_required"
    assert "requires a client certificate" in event.detail


def test_tls13_foreign_client_certificate_is_refused(pki: Pki) -> None:
    _, port = tls_server(pki, lambda connection: connection.recv(1), client_ca=pki.ca)
    tls = _trusting(pki, cert_file=str(pki.foreign_client.cert), key_file=str(pki.foreign_client.key))
    client = RawClient(_open(port, tls), Version.V311)  # type: ignore[arg-type]
    client.send_packet(Pingreq())
    event = client.next_event(3)
    assert isinstance(event, Closed) and event.tls_reason == "client_cert_refused"


@pytest.mark.parametrize(("client_cert", "reason"), [(False, "client_cert_required"), (True, "client_cert_refused")])
def test_tls12_client_certificate_problems_fail_the_handshake(pki: Pki, client_cert: bool, reason: str) -> None:
    _, port = tls_server(pki, lambda connection: connection.recv(1), client_ca=pki.ca, max_version=ssl.TLSVersion.TLSv1_2)
    extra = {"cert_file": str(pki.foreign_client.cert), "key_file": str(pki.foreign_client.key)} if client_cert else {}
    with pytest.raises(TlsFailure) as failure:
        _open(port, _trusting(pki, **extra))
    assert failure.value.reason == reason


def test_min_version_above_the_server_is_a_protocol_version_failure(pki: Pki) -> None:
    _, port = tls_server(pki, lambda connection: connection.recv(1), max_version=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(TlsFailure) as failure:
        _open(port, _trusting(pki, min_version="1.3"))
    assert failure.value.reason == "protocol_version"


def test_a_plain_mqtt_port_is_not_tls() -> None:
    def script(connection: socket.socket) -> None:
        connection.recv(1024)
        connection.sendall(b"\x20\x02\x00\x00" * 4)  # what a plain broker might answer

    _, port = serve_once(script)
    with pytest.raises(TlsFailure) as failure:
        _open(port, TlsOptions())
    assert failure.value.reason == "not_tls"


def test_a_peer_that_hangs_up_during_the_handshake_is_closed() -> None:
    _, port = serve_once(lambda connection: None)
    with pytest.raises(TlsFailure) as failure:
        _open(port, TlsOptions())
    assert failure.value.reason == "closed"


def test_bad_tls_options_are_value_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown TLS version"):
        TlsOptions(min_version="1.7").context()
    with pytest.raises(OSError):
        TlsOptions(ca_file=str(tmp_path / "missing.pem")).context()


def test_classify_never_raises_on_odd_exceptions() -> None:
    assert classify(RuntimeError("odd"), sent_client_cert=False).reason == "other"
    assert classify(ConnectionResetError(104, "reset"), sent_client_cert=False).reason == "closed"
