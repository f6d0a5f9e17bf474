"""Packet captures of a scenario's connections, synthesized from the raw client's byte transcript.

The harness never sniffs the network (that needs privileges and a capture library); it knows
every byte it sent and received and when. Each connection becomes one classic pcap file: a TCP
handshake, one segment per recorded send or read (with the recorded time, correct sequence and
acknowledgement numbers and checksums), and the close as it happened (FIN from whoever closed
first, or RST). The server side is written as port 1883, so Wireshark and `tshark -r` decode MQTT
without `-d`; the real endpoint is given in the attachment's name.

The frames are packed with struct rather than scapy: a scenario's capture costs tens of
microseconds this way against milliseconds with scapy's layer objects, and pcaps are written for
every scenario of a reported run. The tests read them back with scapy and tshark.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

MQTT_PORT = 1883
CLIENT_IP = bytes([127, 0, 0, 1])
SERVER_IP = bytes([127, 0, 0, 2])  # distinct from the client so filters like ip.src pick a side
_MAX_PAYLOAD = 65_000  # keep each IPv4 datagram under 65535 bytes; longer reads are split
_FIN, _SYN, _RST, _PSH, _ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_ETHER = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"  # dst, src, IPv4
_ETHER_BACK = _ETHER[6:12] + _ETHER[0:6] + b"\x08\x00"
_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262_144, 1)  # microseconds, Ethernet


@dataclass(frozen=True)
class Segment:
    from_client: bool
    data: bytes
    at: float  # seconds since the epoch


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    # One's-complement sums are byte-order independent: sum native 16-bit words, fold, then
    # store the result in native order too.
    total = sum(array("H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class _Writer:
    def __init__(self, client_port: int) -> None:
        self.frames: list[bytes] = [_PCAP_HEADER]
        self.client_port = client_port
        self.seq = {True: 0x10000000, False: 0x20000000}  # next sequence number per side (True: client)
        self.ip_id = 1

    def frame(self, from_client: bool, flags: int, payload: bytes, at: float) -> None:
        src, dst = (CLIENT_IP, SERVER_IP) if from_client else (SERVER_IP, CLIENT_IP)
        sport, dport = (self.client_port, MQTT_PORT) if from_client else (MQTT_PORT, self.client_port)
        seq = self.seq[from_client]
        ack = self.seq[not from_client] if flags & _ACK else 0
        tcp = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0))
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
        tcp[16:18] = struct.pack("=H", _checksum(pseudo + bytes(tcp) + payload))
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), self.ip_id, 0x4000, 64, 6, 0, src, dst))
        ip[10:12] = struct.pack("=H", _checksum(bytes(ip)))
        self.ip_id += 1
        frame = (_ETHER if from_client else _ETHER_BACK) + bytes(ip) + bytes(tcp) + payload
        seconds = int(at)
        self.frames.append(struct.pack("<IIII", seconds, int((at - seconds) * 1_000_000), len(frame), len(frame)) + frame)
        self.seq[from_client] = (seq + len(payload) + (1 if flags & (_SYN | _FIN) else 0)) & 0xFFFFFFFF


def build_pcap(segments: Sequence[Segment], opened_at: float, closed: str | None, closed_at: float,
               client_port: int = 50000) -> bytes:
    """One connection as a pcap.

    `closed`: "client" (the harness closed first), "server" (the broker sent FIN), "reset" (the
    broker reset it), "abort" (the harness reset it) or None (still open when recorded).
    """
    writer = _Writer(client_port)
    writer.frame(True, _SYN, b"", opened_at)
    writer.frame(False, _SYN | _ACK, b"", opened_at)
    writer.frame(True, _ACK, b"", opened_at)
    for segment in segments:
        for start in range(0, len(segment.data), _MAX_PAYLOAD):
            writer.frame(segment.from_client, _PSH | _ACK, segment.data[start : start + _MAX_PAYLOAD], segment.at)
    if closed in ("client", "server"):
        first = closed == "client"
        writer.frame(first, _FIN | _ACK, b"", closed_at)
        writer.frame(not first, _FIN | _ACK, b"", closed_at)
        writer.frame(first, _ACK, b"", closed_at)
    elif closed in ("reset", "abort"):
        writer.frame(closed == "abort", _RST | _ACK, b"", closed_at)
    return b"".join(writer.frames)

