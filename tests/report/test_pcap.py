"""Synthesized captures: valid TCP around the recorded bytes, readable by scapy and decoded as MQTT by tshark."""

import subprocess

import pytest
from report_helpers import need

from harness.report.pcap import MQTT_PORT, Segment, build_pcap
from harness.wire import Connack, Connect, Version, encode

CONNECT = encode(Connect(client_id="pcaptest", username="u", password=b"********"), Version.V311)
CONNACK = encode(Connack(reason_code=5), Version.V311)


def _capture(tmp_path, closed="server"):
    segments = [Segment(True, CONNECT, 1000.25), Segment(False, CONNACK[:2], 1000.5), Segment(False, CONNACK[2:], 1000.75)]
    path = tmp_path / "c.pcap"
    path.write_bytes(build_pcap(segments, 1000.0, closed, 1001.0, client_port=50001))
    return path


def test_scapy_reads_a_handshake_the_data_in_order_with_valid_sequence_numbers_and_checksums(tmp_path) -> None:
    scapy = pytest.importorskip("scapy.all")
    packets = scapy.rdpcap(str(_capture(tmp_path)))
    tcp = [p[scapy.TCP] for p in packets]
    assert [str(t.flags) for t in tcp[:3]] == ["S", "SA", "A"]
    assert [str(t.flags) for t in tcp[-3:]] == ["FA", "FA", "A"]  # the broker closed first
    assert tcp[0].dport == MQTT_PORT and tcp[0].sport == 50001
    client_isn, server_isn = tcp[0].seq, tcp[1].seq
    assert tcp[1].ack == client_isn + 1
    data = [t for t in tcp if bytes(t.payload)]
    assert bytes(data[0].payload) == CONNECT and data[0].seq == client_isn + 1
    assert bytes(data[1].payload) + bytes(data[2].payload) == CONNACK
    assert data[1].seq == server_isn + 1 and data[2].seq == server_isn + 3  # 2 bytes later
    assert data[1].ack == client_isn + 1 + len(CONNECT)  # the server has seen the CONNECT
    assert float(packets[3].time) == pytest.approx(1000.25, abs=1e-6)
    for packet in packets:  # scapy recomputes checksums when they are deleted: ours must equal its own
        rebuilt = packet.__class__(bytes(packet))
        del rebuilt[scapy.IP].chksum, rebuilt[scapy.TCP].chksum
        rebuilt = rebuilt.__class__(bytes(rebuilt))
        assert rebuilt[scapy.IP].chksum == packet[scapy.IP].chksum
        assert rebuilt[scapy.TCP].chksum == packet[scapy.TCP].chksum


@pytest.mark.parametrize(("closed", "flags"), [("client", ["FA", "FA", "A"]), ("reset", ["RA"]), ("abort", ["RA"])])
def test_the_close_is_written_as_it_happened(tmp_path, closed, flags) -> None:
    scapy = pytest.importorskip("scapy.all")
    tcp = [p[scapy.TCP] for p in scapy.rdpcap(str(_capture(tmp_path, closed)))]
    assert [str(t.flags) for t in tcp[-len(flags):]] == flags
    first_closer = tcp[-len(flags)]
    assert (first_closer.dport == MQTT_PORT) == (closed in ("client", "abort"))


def test_tshark_decodes_mqtt_with_no_port_hint(tmp_path) -> None:
    tshark = need("tshark")
    out = subprocess.run([tshark, "-r", str(_capture(tmp_path)), "-Y", "mqtt", "-T", "fields",
                          "-e", "mqtt.msgtype", "-e", "mqtt.clientid", "-e", "mqtt.conack.val"],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in out.strip().splitlines()]
    assert rows == [["1", "pcaptest", ""], ["2", "", "5"]]
