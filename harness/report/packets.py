"""Packets as evidence: what a step sent and received, decoded and in hex, with secrets masked.

Sent bytes are decoded again with a server-role decoder (the side that would receive them), so a
deliberately malformed packet shows what a broker's decoder makes of it. Masking happens on the
bytes before decoding, so the decoded text never holds a secret either.
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.report.secrets import Secrets
from harness.scenarios.runner import RunRecord
from harness.wire import Connect, Decoded, Decoder, Malformed, PacketType, Version, describe, hexdump

# Fields that carry credentials: CONNECT password, and 5.0 enhanced-authentication data.
_SECRET_PROPERTIES = ("authentication_data",)


def sent_secrets(record: RunRecord, version: Version) -> list[bytes]:
    """Passwords and authentication data the scenario sent: they are secrets of this scenario's output."""
    found: list[bytes] = []
    for client in record.clients.values():
        data = b"".join(entry.data for entry in client.transcript if entry.direction == "sent")
        if not data:
            continue
        for item in Decoder(version, role="server").feed(data):
            if not isinstance(item, Decoded):
                continue
            packet = item.packet
            if isinstance(packet, Connect) and packet.password:
                found.append(bytes(packet.password) if not isinstance(packet.password, str) else packet.password.encode())
            properties = getattr(packet, "properties", None)
            if isinstance(properties, dict):
                for name in _SECRET_PROPERTIES:
                    value = properties.get(name)
                    if isinstance(value, bytes | str):
                        found.append(value.encode() if isinstance(value, str) else value)
    return found


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def render_sent(chunks: Iterable[bytes], version: Version, secrets: Secrets) -> str:
    """Each sent packet: its decoded line (as the broker would read it) and its hexdump."""
    parts = []
    for data in filter(None, chunks):  # the paho client records b"" for what paho writes itself (see its transcript)
        masked = secrets.mask_bytes(data)
        decoder = Decoder(version, role="server")
        items = decoder.feed(masked)
        decoded = [i for i in items if isinstance(i, Decoded)]
        if len(decoded) == 1 and isinstance(items[-1], Decoded) and len(decoded[0].raw) == len(masked):
            parts.append(_packet_text(decoded[0], version))
        else:
            # send_raw, a truncated or malformed packet: say what a decoder sees, then the bytes.
            seen = "; ".join(_item_line(i, version) for i in items) or "an incomplete packet"
            parts.append(f"raw bytes ({len(masked)}): {seen}\n{_indent(hexdump(masked))}")
    return secrets.mask_text("\n\n".join(parts))


def packet_parameters(sent: list[bytes], received: list[Decoded], version: Version, secrets: Secrets) -> dict[str, str]:
    """A passing step's packets as Allure step parameters: decoded line and hex, inline in the result.

    Parameters cost no file: a passing run writes one result file per scenario plus its pcaps,
    where attachments would add a file per step.
    """
    parameters = {}
    for index, data in enumerate(filter(None, sent), start=1):
        masked = secrets.mask_bytes(data)
        items = Decoder(version, role="server").feed(masked)
        line = "; ".join(_item_line(i, version) for i in items) or "an incomplete packet"
        parameters[f"sent {index}"] = secrets.mask_text(f"{line}\n{_short_hex(masked)}")
    for index, decoded in enumerate(received, start=1):
        masked = secrets.mask_bytes(decoded.raw)
        shown = describe(decoded.packet, version) if masked == decoded.raw else "(holds a secret: see the pcap)"
        parameters[f"received {index}"] = secrets.mask_text(f"{shown}\n{_short_hex(masked)}")
    return parameters


def _short_hex(data: bytes, limit: int = 256) -> str:
    return data[:limit].hex(" ") + (f" ... ({len(data)} bytes)" if len(data) > limit else "")


def render_received(packets: Iterable[Decoded], version: Version, secrets: Secrets) -> str:
    parts = []
    for decoded in packets:
        masked = secrets.mask_bytes(decoded.raw)
        if masked != decoded.raw:  # a broker echoed a secret: decode the masked bytes instead
            again = [i for i in Decoder(version, role="client").feed(masked) if isinstance(i, Decoded)]
            decoded = again[0] if again else decoded
        parts.append(_packet_text(decoded, version))
    return secrets.mask_text("\n\n".join(parts))


def render_stream(chunks: list[bytes], version: Version, secrets: Secrets) -> str:
    """Bytes the broker sent that no step decoded (the step failed first): decoded afresh, and in hex."""
    data = secrets.mask_bytes(b"".join(chunks))
    parts = []
    for item in Decoder(version, role="client").feed(data):
        parts.append(_packet_text(item, version) if isinstance(item, Decoded)
                     else f"{_item_line(item, version)}\n{_indent(hexdump(item.raw))}")
    if not parts:
        parts.append(f"an incomplete packet ({len(data)} bytes)\n{_indent(hexdump(data))}")
    return secrets.mask_text("\n\n".join(parts))


def _item_line(item: Decoded | Malformed, version: Version) -> str:
    if isinstance(item, Decoded):
        return describe(item.packet, version)
    return f"malformed: {item.finding.rule}: {item.finding.message}"


def _packet_text(decoded: Decoded, version: Version) -> str:
    lines = [describe(decoded.packet, version)]
    lines += [f"  finding {f.rule}{' (fatal)' if f.fatal else ''}: {f.message}" for f in decoded.findings]
    lines.append(_indent(hexdump(decoded.raw)))
    return "\n".join(lines)


def packet_names(chunks: Iterable[bytes]) -> list[str]:
    """The packet type names in these bytes, from the first byte alone (cheap, for step titles)."""
    return [_type_name(data[0] >> 4) for data in chunks if data]


def _type_name(number: int) -> str:
    return PacketType(number).name if number in PacketType._value2member_map_ else f"type {number}"
