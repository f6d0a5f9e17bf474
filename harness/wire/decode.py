"""The byte-stream decoder: frames packets, parses them, and reports what the sender did wrong.

It does no I/O: `feed()` takes whatever bytes arrived (one byte, or many packets) and returns the
packets completed by them. It never raises on input. A violation that leaves the stream framable
is a `Finding` on the `Decoded` packet; one that makes it unframable or unparsable is a `Malformed`
event, after which the decoder ignores all input, because a receiver must close the connection then.
"""

from __future__ import annotations

from harness.wire._body import PARSERS
from harness.wire._reader import Broken, Context, Reader, Role, remaining_length_section
from harness.wire.constants import (
    CLIENT_ONLY_TYPES,
    REQUIRED_FLAGS,
    SERVER_ONLY_TYPES,
    PacketType,
    Version,
)
from harness.wire.encode import encode_varint
from harness.wire.events import Decoded, Finding, Malformed

__all__ = ["Decoded", "Decoder", "Finding", "Malformed"]

# A 3.1 sender may set DUP and QoS 1 on these (retries); 3.1.1 made the flags fixed.
_V31_RETRY_FLAGS = {PacketType.PUBREL: {0b0010, 0b1010}, PacketType.SUBSCRIBE: {0b0010, 0b1010},
                    PacketType.UNSUBSCRIBE: {0b0010, 0b1010}}
_PACKET_TYPES = {int(t): t for t in PacketType}


class Decoder:
    """Decodes what one side of a connection sends.

    role is the side this decoder sits on: "client" decodes what a server sends, "server" decodes
    what a client sends. A server-role decoder created with version None learns the version from
    the CONNECT it receives; until then packets are checked as 3.1.1.
    """

    def __init__(self, version: Version | int | str | None, *, role: Role = "client",
                 max_packet_size: int | None = None) -> None:
        if role not in ("client", "server"):
            raise ValueError(f"role must be 'client' or 'server', not {role!r}")
        self.version: Version | None = None if version is None else Version.parse(version)
        self.role: Role = role
        self.max_packet_size = max_packet_size
        self.failed: Malformed | None = None  # set once the stream is malformed; later input is ignored
        self._buffer = bytearray()
        self._needed = 0  # bytes the buffer must hold before a packet can complete

    def feed(self, data: bytes) -> list[Decoded | Malformed]:
        if self.failed is not None or not data:
            return []
        buffer = self._buffer
        buffer += data
        if len(buffer) < self._needed:
            return []  # still inside a packet whose length is known: nothing to do yet
        events: list[Decoded | Malformed] = []
        start = 0
        size = len(buffer)
        while start < size:
            first = buffer[start]
            malformed = self._check_type(first)
            if malformed is not None:
                return self._fail(events, Malformed(bytes(buffer[start:]), malformed))
            # Remaining length: up to four bytes of seven bits (§2.2.3 / §2.1.4).
            remaining = 0
            index = start + 1
            shift = 0
            while True:
                if index >= size:
                    self._needed = 0
                    del buffer[:start]
                    return events
                byte = buffer[index]
                index += 1
                remaining |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    break
                shift += 7
                if shift == 28:
                    finding = self._stream_finding(
                        remaining_length_section(self._version), first,
                        "the remaining length has a continuation bit in its fourth byte")
                    return self._fail(events, Malformed(bytes(buffer[start:]), finding))
            header_size = index - start
            total = header_size + remaining
            if self.max_packet_size is not None and total > self.max_packet_size:
                finding = self._stream_finding(
                    self._size_rule(), first,
                    f"packet of {total} bytes exceeds the maximum packet size {self.max_packet_size}")
                return self._fail(events, Malformed(bytes(buffer[start : start + total]), finding))
            if size - start < total:
                self._needed = total
                del buffer[:start]
                return events
            raw = bytes(buffer[start : start + total])
            start += total
            event = self._decode(raw, header_size, remaining)
            events.append(event)
            if isinstance(event, Malformed):
                return self._fail(events[:-1], event)
        self._needed = 0
        buffer.clear()
        return events

    @property
    def _version(self) -> Version:
        return self.version or Version.V311

    def _fail(self, events: list[Decoded | Malformed], malformed: Malformed) -> list[Decoded | Malformed]:
        self.failed = malformed
        self._buffer = bytearray()
        events.append(malformed)
        return events

    def _stream_finding(self, rule: str, first: int, message: str) -> Finding:
        return Finding(rule, self._version, message, _PACKET_TYPES.get(first >> 4), True)

    def _size_rule(self) -> str:
        if self._version is not Version.V5:
            return "§2.2.3"  # 3.x has no maximum packet size: this is the harness's own limit
        return "MQTT-3.1.2-24" if self.role == "client" else "MQTT-3.2.2-15"

    def _check_type(self, first: int) -> Finding | None:
        kind = first >> 4
        if kind == 0 or (kind == PacketType.AUTH and self._version is not Version.V5):
            section = "§2.1.2" if self._version is Version.V5 else "§2.2.1"
            return Finding(section, self._version, f"reserved packet type {kind} (first byte 0x{first:02X})",
                           None, True)
        return None

    def _decode(self, raw: bytes, header_size: int, remaining: int) -> Decoded | Malformed:
        first = raw[0]
        packet_type = _PACKET_TYPES[first >> 4]
        flags = first & 0x0F
        ctx = Context(self._version, self.version, self.role, packet_type)
        reader = Reader(raw, header_size, len(raw), ctx)
        try:
            packet = PARSERS[packet_type](reader, flags)
        except Broken as exc:
            finding = Finding(exc.rule or remaining_length_section(ctx.version), ctx.version, exc.message,
                              packet_type, True)
            return Malformed(raw, finding)
        except Exception as exc:  # noqa: BLE001 - the decoder must never raise on input; this is a bug
            finding = Finding(remaining_length_section(ctx.version), ctx.version,
                              f"decoder bug while parsing: {type(exc).__name__}: {exc}", packet_type, True)
            return Malformed(raw, finding)
        if ctx.learned_version is not None and self.version is None and self.role == "server":
            self.version = ctx.learned_version
        # The fixed header is checked after the body, so a CONNECT's findings carry its own version.
        header_findings = self._header_findings(ctx, flags, header_size, remaining)
        return Decoded(packet, raw, flags, header_findings + ctx.findings if header_findings else ctx.findings)

    def _header_findings(self, ctx: Context, flags: int, header_size: int, remaining: int) -> list[Finding]:
        version = ctx.version
        packet_type = ctx.packet_type
        findings: list[Finding] = []
        if header_size > 2 and header_size - 1 > len(encode_varint(remaining)):
            findings.append(Finding(
                "MQTT-1.5.5-1" if version is Version.V5 else "§2.2.3", version,
                f"remaining length {remaining} is encoded in {header_size - 1} bytes, not the minimum",
                packet_type, version is Version.V5))
        if self.role == "server" and packet_type in SERVER_ONLY_TYPES:
            findings.append(self._direction_finding(version, packet_type, "client"))
        elif self.role == "client" and packet_type in CLIENT_ONLY_TYPES:
            findings.append(self._direction_finding(version, packet_type, "server"))
        if packet_type is not PacketType.PUBLISH:
            required = REQUIRED_FLAGS[packet_type]
            if flags != required:
                if version is Version.V31:
                    # 3.1 has no mandatory flag rule; DUP and QoS 1 on retries are legal there.
                    if flags not in _V31_RETRY_FLAGS.get(packet_type, ()):
                        findings.append(Finding("MQTT-2.2.2-1", version,
                                                f"fixed-header flags 0x{flags:X}, expected 0x{required:X}",
                                                packet_type, False))
                else:
                    findings.append(Finding("MQTT-2.1.3-1" if version is Version.V5 else "MQTT-2.2.2-1", version,
                                            f"fixed-header flags 0x{flags:X}, reserved value is 0x{required:X}",
                                            packet_type, True))
        return findings

    @staticmethod
    def _direction_finding(version: Version, packet_type: PacketType, sender: str) -> Finding:
        return Finding("§2.1.2" if version is Version.V5 else "§2.2.1", version,
                       f"a {sender} may not send {packet_type.name}", packet_type, True)
