"""Packets to bytes: valid ones from typed fields, deliberately malformed ones through overrides.

Nothing here validates. A field holds what the scenario wants on the wire: a `bytes` string field is
sent as given after its length prefix (invalid UTF-8 included), a `RawField` is sent verbatim with
no prefix, integers are written modulo the width of their field, and the keyword overrides of
`encode()` can break the framing itself. Deciding whether a packet is valid is the decoder's job.
"""

from __future__ import annotations

from typing import Any

from harness.wire.constants import (
    PROPERTIES,
    PROPERTIES_BY_NAME,
    REQUIRED_FLAGS,
    PropertyType,
    Version,
)
from harness.wire.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Publish,
    RawField,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
    _PublishResponse,
)


def encode_varint(value: int) -> bytes:
    """A Variable Byte Integer (§1.5.5 / §2.2.3). Values above 268435455 give five or more bytes,
    which is how a scenario sends an over-long remaining length."""
    if value < 0:
        raise ValueError(f"a variable byte integer cannot be negative: {value}")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _u8(value: int) -> bytes:
    return bytes((int(value) & 0xFF,))


def _u16(value: int) -> bytes:
    return (int(value) & 0xFFFF).to_bytes(2, "big")


def _u32(value: int) -> bytes:
    return (int(value) & 0xFFFFFFFF).to_bytes(4, "big")


def _prefixed(data: bytes) -> bytes:
    # The length is written modulo 65536 so an over-long field still encodes (as a lie).
    return (len(data) & 0xFFFF).to_bytes(2, "big") + data


def encode_text(value: Any) -> bytes:
    """A UTF-8 Encoded String field: str is encoded (lone surrogates kept, so they can be sent),
    bytes are sent as given, RawField is sent with no length prefix."""
    if isinstance(value, RawField):
        return bytes(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _prefixed(bytes(value))
    if not isinstance(value, str):
        value = str(value)
    return _prefixed(value.encode("utf-8", "surrogatepass"))


encode_binary = encode_text  # Binary Data has the same two-byte length prefix


def _property_value(kind: PropertyType, value: Any) -> bytes:
    if isinstance(value, RawField):
        return bytes(value)
    if kind is PropertyType.BYTE:
        return _u8(value)
    if kind is PropertyType.TWO_BYTE_INTEGER:
        return _u16(value)
    if kind is PropertyType.FOUR_BYTE_INTEGER:
        return _u32(value)
    if kind is PropertyType.VARIABLE_BYTE_INTEGER:
        return encode_varint(int(value))
    if kind is PropertyType.UTF8_STRING_PAIR:
        name, text = value
        return encode_text(name) + encode_text(text)
    return encode_text(value)  # UTF-8 string or binary data


def _one_property(key: str | int, value: Any) -> bytes:
    info = PROPERTIES_BY_NAME.get(key) if isinstance(key, str) else PROPERTIES.get(key)
    if info is None:
        if isinstance(key, int) and isinstance(value, bytes):
            # An identifier the spec does not define: how a scenario sends an unknown property.
            return encode_varint(key) + bytes(value)
        raise ValueError(f"unknown property {key!r}: use a snake_case property name, or an int id with a RawField value")
    return encode_varint(info.id) + _property_value(info.type, value)


def encode_properties(properties: Any) -> bytes:
    """A 5.0 property block, property length included."""
    if isinstance(properties, bytes | bytearray):
        return bytes(properties)  # the whole block as given
    parts: list[bytes] = []
    if isinstance(properties, dict):
        for key, value in properties.items():
            if key in ("user_property", "subscription_identifier") and isinstance(value, list | tuple):
                parts.extend(_one_property(key, item) for item in value)
            else:
                parts.append(_one_property(key, value))
    else:
        parts.extend(_one_property(key, value) for key, value in properties)
    block = b"".join(parts)
    return encode_varint(len(block)) + block


def _connect_flags(packet: Connect) -> int:
    if packet.connect_flags is not None:
        return packet.connect_flags & 0xFF
    flags = int(bool(packet.reserved_flag)) | int(bool(packet.clean_session)) << 1
    if packet.will is not None:
        flags |= 0b100 | (packet.will.qos & 0b11) << 3 | int(bool(packet.will.retain)) << 5
    if packet.password is not None:
        flags |= 0x40
    if packet.username is not None:
        flags |= 0x80
    return flags


def _connect_body(packet: Connect, version: Version) -> bytes:
    v5 = version is Version.V5
    name = packet.protocol_name if packet.protocol_name is not None else version.protocol_name
    level = packet.protocol_level if packet.protocol_level is not None else int(version)
    parts = [encode_text(name), _u8(level), _u8(_connect_flags(packet)), _u16(packet.keep_alive)]
    if v5:
        parts.append(encode_properties(packet.properties))
    parts.append(encode_text(packet.client_id))
    will: Will | None = packet.will
    if will is not None:
        if v5:
            parts.append(encode_properties(will.properties))
        parts.append(encode_text(will.topic))
        parts.append(encode_binary(will.payload))
    if packet.username is not None:
        parts.append(encode_text(packet.username))
    if packet.password is not None:
        parts.append(encode_binary(packet.password))
    return b"".join(parts)


def _connack_body(packet: Connack, version: Version) -> bytes:
    flags = packet.ack_flags if packet.ack_flags is not None else int(bool(packet.session_present))
    body = _u8(flags) + _u8(packet.reason_code)
    if version is Version.V5:
        body += encode_properties(packet.properties)
    return body


def _publish_body(packet: Publish, version: Version) -> bytes:
    parts = [encode_text(packet.topic)]
    if packet.qos or packet.packet_id is not None:
        parts.append(_u16(packet.packet_id or 0))
    if version is Version.V5:
        parts.append(encode_properties(packet.properties))
    payload = packet.payload
    parts.append(payload.encode("utf-8") if isinstance(payload, str) else bytes(payload))
    return b"".join(parts)


def _reason_and_properties(reason_code: int, properties: Any, version: Version, *, lone_code: bool = True) -> bytes:
    """The 5.0 tail of PUBACK..PUBCOMP, DISCONNECT and AUTH, in the shortest form the spec allows:
    nothing for success without properties; a lone reason code without properties, except on AUTH,
    which may drop the property length only together with a success code (§3.15.2.2)."""
    if version is not Version.V5:
        return b""
    if not properties:
        if reason_code == 0:
            return b""
        return _u8(reason_code) if lone_code else _u8(reason_code) + b"\x00"
    return _u8(reason_code) + encode_properties(properties)


def _subscription_options(item: Subscription, version: Version) -> int:
    if item.options is not None:
        return item.options & 0xFF
    options = item.qos & 0b11
    if version is Version.V5:
        options |= (
            int(bool(item.no_local)) << 2 | int(bool(item.retain_as_published)) << 3 | (item.retain_handling & 0b11) << 4
        )
    return options


def _subscribe_body(packet: Subscribe, version: Version) -> bytes:
    parts = [_u16(packet.packet_id)]
    if version is Version.V5:
        parts.append(encode_properties(packet.properties))
    for item in packet.subscriptions:
        parts.append(encode_text(item.topic_filter))
        parts.append(_u8(_subscription_options(item, version)))
    return b"".join(parts)


def _ack_list_body(packet: Suback | Unsuback, version: Version) -> bytes:
    head = _u16(packet.packet_id)
    if version is Version.V5:
        head += encode_properties(packet.properties)
    return head + bytes(code & 0xFF for code in packet.reason_codes)


def _unsubscribe_body(packet: Unsubscribe, version: Version) -> bytes:
    parts = [_u16(packet.packet_id)]
    if version is Version.V5:
        parts.append(encode_properties(packet.properties))
    parts.extend(encode_text(topic_filter) for topic_filter in packet.topic_filters)
    return b"".join(parts)


def _body(packet: Packet, version: Version) -> bytes:
    if isinstance(packet, Publish):
        return _publish_body(packet, version)
    if isinstance(packet, _PublishResponse):
        return _u16(packet.packet_id) + _reason_and_properties(packet.reason_code, packet.properties, version)
    if isinstance(packet, Connect):
        return _connect_body(packet, version)
    if isinstance(packet, Connack):
        return _connack_body(packet, version)
    if isinstance(packet, Subscribe):
        return _subscribe_body(packet, version)
    if isinstance(packet, Suback | Unsuback):
        return _ack_list_body(packet, version)
    if isinstance(packet, Unsubscribe):
        return _unsubscribe_body(packet, version)
    if isinstance(packet, Disconnect):
        return _reason_and_properties(packet.reason_code, packet.properties, version)
    if isinstance(packet, Auth):
        return _reason_and_properties(packet.reason_code, packet.properties, version, lone_code=False)
    if isinstance(packet, Pingreq | Pingresp):
        return b""
    raise TypeError(f"not an MQTT packet: {packet!r}")


def default_flags(packet: Packet) -> int:
    """The fixed-header low nibble the packet's fields call for."""
    if isinstance(packet, Publish):
        return int(bool(packet.dup)) << 3 | (packet.qos & 0b11) << 1 | int(bool(packet.retain))
    return REQUIRED_FLAGS[packet.TYPE]


def encode(
    packet: Packet,
    version: Version | int | str,
    *,
    flags: int | None = None,
    remaining_length: int | bytes | None = None,
    truncate: int | None = None,
    trailing: bytes = b"",
    body: bytes | None = None,
) -> bytes:
    """The bytes of `packet` for `version`, with the overrides applied.

    flags: the fixed-header low nibble instead of the one the fields call for.
    remaining_length: an int is written as a variable byte integer (it may lie about the body);
        bytes are written verbatim (e.g. a non-minimal or five-byte encoding).
    truncate: cut the finished packet to this many bytes.
    trailing: bytes appended to the body, counted in the remaining length.
    body: replaces the variable header and payload entirely.
    """
    if not isinstance(version, Version):
        version = Version.parse(version)
    content = _body(packet, version) if body is None else bytes(body)
    if trailing:
        content += bytes(trailing)
    nibble = default_flags(packet) if flags is None else flags & 0x0F
    if remaining_length is None:
        length = encode_varint(len(content))
    elif isinstance(remaining_length, bytes | bytearray):
        length = bytes(remaining_length)
    else:
        length = encode_varint(remaining_length)
    data = bytes((int(packet.TYPE) << 4 | nibble,)) + length + content
    return data if truncate is None else data[:truncate]

