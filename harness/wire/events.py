"""What the decoder reports: decoded packets, the protocol violations found in them, and the end of a stream."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.wire.constants import PacketType, Version
from harness.wire.packets import Packet


@dataclass(frozen=True)
class Finding:
    """One protocol violation by the sender of a packet."""

    rule: str  # statement id for `version`, e.g. "MQTT-2.2.2-1"; an unnumbered rule is its section, "§2.2.3"
    version: Version
    message: str  # one line: what was wrong, with the offending value
    packet_type: PacketType | None
    fatal: bool  # the spec makes this a malformed packet or protocol error: the connection is to be closed

    def __str__(self) -> str:
        where = self.packet_type.name if self.packet_type is not None else "stream"
        severity = "fatal" if self.fatal else "non-fatal"
        return f"[{self.rule}, MQTT {self.version.label}, {severity}] {where}: {self.message}"


@dataclass
class Decoded:
    packet: Packet
    raw: bytes  # the exact bytes of this packet
    flags: int  # fixed-header low nibble as received
    findings: list[Finding] = field(default_factory=list)

    @property
    def fatal(self) -> bool:
        return any(finding.fatal for finding in self.findings)


@dataclass
class Malformed:
    """The stream cannot be framed or parsed from here on; the decoder ignores all later input."""

    raw: bytes  # the bytes from the start of the undecodable packet (what was received of it)
    finding: Finding
