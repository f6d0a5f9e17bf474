"""Reading a 5.0 property block and checking it against the §2.2.2.2 table."""

from __future__ import annotations

from typing import Any

from harness.wire._reader import Broken, Reader, remaining_length_section
from harness.wire.constants import PROPERTIES, WILL, PacketType, PropertyPlace, PropertyType

_P = PacketType

# Where each "It is a Protocol Error if the value is ..." rule is written, per property and place.
# Anything not listed falls back to the property table's own section.
_VALUE_RULES: dict[tuple[str, PropertyPlace], str] = {
    ("payload_format_indicator", _P.PUBLISH): "§3.3.2.3.2",
    ("payload_format_indicator", WILL): "§3.1.3.2.3",
    ("subscription_identifier", _P.PUBLISH): "§3.3.2.3.8",
    ("subscription_identifier", _P.SUBSCRIBE): "§3.8.2.1.2",
    ("receive_maximum", _P.CONNECT): "§3.1.2.11.3",
    ("receive_maximum", _P.CONNACK): "§3.2.2.3.3",
    ("maximum_packet_size", _P.CONNECT): "§3.1.2.11.4",
    ("maximum_packet_size", _P.CONNACK): "§3.2.2.3.6",
    ("request_response_information", _P.CONNECT): "§3.1.2.11.6",
    ("request_problem_information", _P.CONNECT): "§3.1.2.11.7",
    ("maximum_qos", _P.CONNACK): "§3.2.2.3.4",
    ("retain_available", _P.CONNACK): "§3.2.2.3.5",
    ("wildcard_subscription_available", _P.CONNACK): "§3.2.2.3.11",
    ("subscription_identifier_available", _P.CONNACK): "§3.2.2.3.12",
    ("shared_subscription_available", _P.CONNACK): "§3.2.2.3.13",
    ("topic_alias", _P.PUBLISH): "MQTT-3.3.2-8",
}
_TABLE_SECTION = "§2.2.2.2"


def _place_name(place: PropertyPlace) -> str:
    return "Will Properties" if place == WILL else str(getattr(place, "name", place))


def read_properties(reader: Reader, place: PropertyPlace) -> dict[str, Any]:
    """The property block at the reader's position, as a dict; findings for every table violation.

    An unknown identifier ends the reading of the block (its length cannot be known) but not of the
    packet: the property length says where the block ends, so the fields after it are still read.
    """
    ctx = reader.ctx
    if reader.remaining() == 0:
        ctx.add("MQTT-2.2.2-1", f"{_place_name(place)}: the property length is missing")
        return {}
    length = reader.varint("property length")
    block_end = reader.pos + length
    if block_end > reader.end:
        raise Broken(
            f"property length {length} overruns the packet ({reader.end - reader.pos} bytes remain)",
            remaining_length_section(ctx.version),
        )
    packet_end = reader.end
    reader.end = block_end  # a property value must not run past its own block
    properties: dict[str, Any] = {}
    try:
        while reader.pos < block_end:
            identifier = reader.varint("property identifier")
            info = PROPERTIES.get(identifier)
            if info is None:
                ctx.add(_TABLE_SECTION, f"unknown property identifier 0x{identifier:02X} in {_place_name(place)}")
                reader.pos = block_end
                break
            value = _read_value(reader, info.type, info.name)
            name = info.name
            if place not in info.allowed_on:
                ctx.add(_TABLE_SECTION, f"property {name} (0x{identifier:02X}) is not allowed in {_place_name(place)}")
            if name in properties and place not in info.repeatable:
                ctx.add(_TABLE_SECTION, f"property {name} (0x{identifier:02X}) appears more than once")
            if isinstance(value, int) and (value < info.min_value or (info.max_value is not None and value > info.max_value)):
                ctx.add(_VALUE_RULES.get((name, place), _TABLE_SECTION), f"property {name} has the invalid value {value}")
            if name in ("user_property", "subscription_identifier"):
                properties.setdefault(name, []).append(value)
            elif name not in properties:
                properties[name] = value
    finally:
        reader.end = packet_end
    return properties


def _read_value(reader: Reader, kind: PropertyType, name: str) -> Any:
    if kind is PropertyType.BYTE:
        return reader.u8(name)
    if kind is PropertyType.TWO_BYTE_INTEGER:
        return reader.u16(name)
    if kind is PropertyType.FOUR_BYTE_INTEGER:
        return reader.u32(name)
    if kind is PropertyType.VARIABLE_BYTE_INTEGER:
        return reader.varint(name)
    if kind is PropertyType.UTF8_STRING:
        return reader.text(name)
    if kind is PropertyType.BINARY:
        return reader.binary(name)
    return (reader.text(f"{name} name"), reader.text(f"{name} value"))
