"""Packets as text for people (describe, hexdump) and as plain data for scenario matchers (packet_fields)."""

from __future__ import annotations

import dataclasses
from enum import IntEnum
from typing import Any

from harness.wire.constants import V5_REASON_CODES, PacketType, Version, reason_name, v3_return_codes
from harness.wire.packets import Packet, RawField, Subscription, Will

_PAYLOAD_PREVIEW = 48  # bytes of a payload shown by describe()
_V3_CODED = (PacketType.CONNACK, PacketType.SUBACK)  # the only 3.x packets with return codes


def _plain(value: Any) -> Any:
    """Plain data a YAML value can be compared with: dicts, lists, ints, str, bytes, bool, None."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, IntEnum):
        return int(value)
    if isinstance(value, RawField):
        return bytes(value)
    if isinstance(value, Will | Subscription):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def packet_fields(packet: Packet) -> dict[str, Any]:
    """The packet's fields as plain data, plus "packet": its lower-case type name.

    Will and Subscription become dicts, properties stay a dict (list form: a list of [name, value]),
    and user_property is a list of [name, value] lists, so values compare equal to YAML lists.
    """
    fields: dict[str, Any] = {"packet": packet.TYPE.name.lower()}
    for f in dataclasses.fields(packet):  # type: ignore[arg-type]
        fields[f.name] = _plain(getattr(packet, f.name))
    return fields


def _guess_version(packet_type: PacketType, code: int) -> Version:
    # Without a version, name a code as 5.0 if 5.0 defines it for this packet, else as 3.1.1.
    if code in V5_REASON_CODES.get(packet_type, ()) or code not in v3_return_codes(packet_type, Version.V311):
        return Version.V5
    return Version.V311


def _code_text(packet_type: PacketType, code: int, version: Version | None) -> str:
    named_version = version if version is not None else _guess_version(packet_type, code)
    return f"0x{code:02X} ({reason_name(packet_type, code, named_version)})"


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, bytes):
        preview = bytes(value[:_PAYLOAD_PREVIEW])
        more = f"...({len(value)} bytes)" if len(value) > _PAYLOAD_PREVIEW else ""
        return f"{preview!r}{more}"
    if isinstance(value, Will | Subscription):
        # Only what differs from the defaults, so a 3.x subscription does not list 5.0 options.
        inner = " ".join(
            f"{f.name}={_value_text(getattr(value, f.name))}"
            for f in dataclasses.fields(value)
            if f.name in ("topic", "topic_filter", "qos") or getattr(value, f.name) not in (None, {}, [], False, 0, b"")
        )
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_value_text(item) for item in value) + "]"
    return repr(value)


def describe(packet: Packet, version: Version | None = None) -> str:
    """One line, e.g. `CONNACK session_present=0 reason_code=0x87 (Not authorized) properties={...}`.

    Fields left at None or empty are omitted. Reason codes are named for `version` when given,
    else as 5.0 when 5.0 defines the code for this packet type, else as 3.1.1.
    """
    parts = [packet.TYPE.name]
    no_codes = version is not None and version is not Version.V5 and packet.TYPE not in _V3_CODED
    for f in dataclasses.fields(packet):  # type: ignore[arg-type]
        value = getattr(packet, f.name)
        if value is None or (f.name in ("properties", "reason_codes") and isinstance(value, dict | list) and not value):
            continue
        if (f.name == "reserved_flag" and not value) or (f.name == "reason_code" and no_codes and value == 0):
            continue
        if f.name == "reason_code":
            text = _code_text(packet.TYPE, value, version)
        elif f.name == "reason_codes":
            text = "[" + ", ".join(_code_text(packet.TYPE, code, version) for code in value) + "]"
        elif f.name in ("ack_flags", "connect_flags", "options"):
            text = f"0x{value:02X}"
        else:
            text = _value_text(value)
        parts.append(f"{f.name}={text}")
    return " ".join(parts)


def hexdump(data: bytes) -> str:
    """A classic dump: offset, 16 bytes in hex (two groups of 8), and the printable ASCII."""
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        hex_part = " ".join(f"{b:02x}" for b in chunk[:8])
        if len(chunk) > 8:
            hex_part += "  " + " ".join(f"{b:02x}" for b in chunk[8:])
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{offset:08x}  {hex_part:<48}  |{text}|")
    return "\n".join(lines)
