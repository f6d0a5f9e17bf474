"""Protocol constants for MQTT 3.1, 3.1.1 and 5.0: versions, packet types, reason codes, properties."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum


class Version(IntEnum):
    """The protocol level byte of CONNECT is the value, so a Version can be written as-is."""

    V31 = 3  # protocol name "MQIsdp", level 3
    V311 = 4  # "MQTT", level 4
    V5 = 5  # "MQTT", level 5

    @classmethod
    def parse(cls, text: str | int | float) -> Version:
        """Accept what a person or a YAML file writes: "3.1", "3.1.1", "5.0", "5", 3, 4, 5, 3.1, 5.0."""
        if isinstance(text, Version):
            return text
        key = str(text).strip().lower().removeprefix("mqtt").strip().removeprefix("v")
        try:
            return _VERSION_NAMES[key]
        except KeyError:
            raise ValueError(f"not an MQTT version: {text!r} (use 3.1, 3.1.1 or 5.0)") from None

    @property
    def label(self) -> str:
        return {Version.V31: "3.1", Version.V311: "3.1.1", Version.V5: "5.0"}[self]

    @property
    def protocol_name(self) -> str:
        """The protocol name a CONNECT of this version carries."""
        return "MQIsdp" if self is Version.V31 else "MQTT"


# "3" means 3.1 (the level byte 3) and "4" means 3.1.1, so levels and labels both parse.
_VERSION_NAMES = {
    "3.1": Version.V31,
    "3": Version.V31,
    "31": Version.V31,
    "3.1.1": Version.V311,
    "4": Version.V311,
    "311": Version.V311,
    "5.0": Version.V5,
    "5": Version.V5,
    "50": Version.V5,
}


class PacketType(IntEnum):
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15  # 5.0 only; reserved in 3.x


# Fixed-header flags every packet but PUBLISH must carry (3.1.1 §2.2.2, 5.0 §2.1.3).
REQUIRED_FLAGS: dict[PacketType, int] = {t: 0 for t in PacketType if t is not PacketType.PUBLISH}
REQUIRED_FLAGS[PacketType.PUBREL] = 0b0010
REQUIRED_FLAGS[PacketType.SUBSCRIBE] = 0b0010
REQUIRED_FLAGS[PacketType.UNSUBSCRIBE] = 0b0010

# Packet types each side may send (3.1.1 §2.2.1, 5.0 §2.1.2). AUTH goes both ways in 5.0.
CLIENT_ONLY_TYPES = frozenset({PacketType.CONNECT, PacketType.SUBSCRIBE, PacketType.UNSUBSCRIBE, PacketType.PINGREQ})
SERVER_ONLY_TYPES = frozenset({PacketType.CONNACK, PacketType.SUBACK, PacketType.UNSUBACK, PacketType.PINGRESP})


class ConnackCode(IntEnum):
    """The 3.1 / 3.1.1 CONNACK return codes; 6 to 255 are reserved."""

    ACCEPTED = 0
    UNACCEPTABLE_PROTOCOL_VERSION = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_USERNAME_OR_PASSWORD = 4
    NOT_AUTHORIZED = 5


class ReasonCode(IntEnum):
    """The 5.0 reason codes (§2.4). Several names share a value; the first name is the canonical one."""

    SUCCESS = 0x00
    NORMAL_DISCONNECTION = 0x00
    GRANTED_QOS_0 = 0x00
    GRANTED_QOS_1 = 0x01
    GRANTED_QOS_2 = 0x02
    DISCONNECT_WITH_WILL_MESSAGE = 0x04
    NO_MATCHING_SUBSCRIBERS = 0x10
    NO_SUBSCRIPTION_EXISTED = 0x11
    CONTINUE_AUTHENTICATION = 0x18
    RE_AUTHENTICATE = 0x19
    UNSPECIFIED_ERROR = 0x80
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_IDENTIFIER_NOT_VALID = 0x85
    BAD_USER_NAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87
    SERVER_UNAVAILABLE = 0x88
    SERVER_BUSY = 0x89
    BANNED = 0x8A
    SERVER_SHUTTING_DOWN = 0x8B
    BAD_AUTHENTICATION_METHOD = 0x8C
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    PACKET_IDENTIFIER_IN_USE = 0x91
    PACKET_IDENTIFIER_NOT_FOUND = 0x92
    RECEIVE_MAXIMUM_EXCEEDED = 0x93
    TOPIC_ALIAS_INVALID = 0x94
    PACKET_TOO_LARGE = 0x95
    MESSAGE_RATE_TOO_HIGH = 0x96
    QUOTA_EXCEEDED = 0x97
    ADMINISTRATIVE_ACTION = 0x98
    PAYLOAD_FORMAT_INVALID = 0x99
    RETAIN_NOT_SUPPORTED = 0x9A
    QOS_NOT_SUPPORTED = 0x9B
    USE_ANOTHER_SERVER = 0x9C
    SERVER_MOVED = 0x9D
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
    CONNECTION_RATE_EXCEEDED = 0x9F
    MAXIMUM_CONNECT_TIME = 0xA0
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2


# The spec's own wording of each 5.0 reason code (§2.4 table); 0x00..0x02 depend on the packet.
_V5_NAMES: dict[int, str] = {
    0x00: "Success",
    0x01: "Granted QoS 1",
    0x02: "Granted QoS 2",
    0x04: "Disconnect with Will Message",
    0x10: "No matching subscribers",
    0x11: "No subscription existed",
    0x18: "Continue authentication",
    0x19: "Re-authenticate",
    0x80: "Unspecified error",
    0x81: "Malformed Packet",
    0x82: "Protocol Error",
    0x83: "Implementation specific error",
    0x84: "Unsupported Protocol Version",
    0x85: "Client Identifier not valid",
    0x86: "Bad User Name or Password",
    0x87: "Not authorized",
    0x88: "Server unavailable",
    0x89: "Server busy",
    0x8A: "Banned",
    0x8B: "Server shutting down",
    0x8C: "Bad authentication method",
    0x8D: "Keep Alive timeout",
    0x8E: "Session taken over",
    0x8F: "Topic Filter invalid",
    0x90: "Topic Name invalid",
    0x91: "Packet Identifier in use",
    0x92: "Packet Identifier not found",
    0x93: "Receive Maximum exceeded",
    0x94: "Topic Alias invalid",
    0x95: "Packet too large",
    0x96: "Message rate too high",
    0x97: "Quota exceeded",
    0x98: "Administrative action",
    0x99: "Payload format invalid",
    0x9A: "Retain not supported",
    0x9B: "QoS not supported",
    0x9C: "Use another server",
    0x9D: "Server moved",
    0x9E: "Shared Subscriptions not supported",
    0x9F: "Connection rate exceeded",
    0xA0: "Maximum connect time",
    0xA1: "Subscription Identifiers not supported",
    0xA2: "Wildcard Subscriptions not supported",
}

_PUBACK_CODES = frozenset({0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99})

# Which 5.0 reason codes each packet type may carry (§3.x.2.1 tables).
V5_REASON_CODES: dict[PacketType, frozenset[int]] = {
    PacketType.CONNACK: frozenset(
        {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
         0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F}
    ),
    PacketType.PUBACK: _PUBACK_CODES,
    PacketType.PUBREC: _PUBACK_CODES,
    PacketType.PUBREL: frozenset({0x00, 0x92}),
    PacketType.PUBCOMP: frozenset({0x00, 0x92}),
    PacketType.SUBACK: frozenset({0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2}),
    PacketType.UNSUBACK: frozenset({0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91}),
    PacketType.DISCONNECT: frozenset(
        {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
         0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2}
    ),
    PacketType.AUTH: frozenset({0x00, 0x18, 0x19}),
}

# DISCONNECT codes the §3.14.2.1 table marks as sent by one side only.
V5_DISCONNECT_CLIENT_ONLY = frozenset({0x04})
V5_DISCONNECT_SERVER_ONLY = frozenset(
    {0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2}
)

# 3.x: only CONNACK and SUBACK carry codes (3.1.1 §3.2.2.3 and §3.9.3; 3.1 has no 0x80).
_V3_CONNACK_NAMES = {
    0: "Connection Accepted",
    1: "Connection Refused, unacceptable protocol version",
    2: "Connection Refused, identifier rejected",
    3: "Connection Refused, Server unavailable",
    4: "Connection Refused, bad user name or password",
    5: "Connection Refused, not authorized",
}
_V3_SUBACK_NAMES = {0: "Success - Maximum QoS 0", 1: "Success - Maximum QoS 1", 2: "Success - Maximum QoS 2",
                    0x80: "Failure"}


def v3_return_codes(packet_type: PacketType, version: Version) -> frozenset[int]:
    """The return codes a 3.x CONNACK or SUBACK may carry; empty for other packet types."""
    if packet_type is PacketType.CONNACK:
        return frozenset(_V3_CONNACK_NAMES)
    if packet_type is PacketType.SUBACK:
        return frozenset({0, 1, 2}) if version is Version.V31 else frozenset(_V3_SUBACK_NAMES)
    return frozenset()


def reason_name(packet_type: PacketType | int, code: int, version: Version | int) -> str:
    """The spec's name for `code` on this packet type in this version, e.g. "Normal disconnection".

    A code the packet type does not define still gets a readable text rather than an error, because
    this is used to describe whatever a broker sent.
    """
    try:
        packet_type = PacketType(packet_type)
        version = Version(version)
    except ValueError:
        return f"unknown reason code 0x{code:02X}"
    if version is Version.V5:
        if code in V5_REASON_CODES.get(packet_type, ()):
            if code == 0x00 and packet_type is PacketType.SUBACK:
                return "Granted QoS 0"
            if code == 0x00 and packet_type is PacketType.DISCONNECT:
                return "Normal disconnection"
            return _V5_NAMES[code]
        if code in _V5_NAMES:
            return f"{_V5_NAMES[code]} (not a {packet_type.name} reason code)"
        return f"unknown reason code 0x{code:02X}"
    if code in v3_return_codes(packet_type, version):
        table = _V3_CONNACK_NAMES if packet_type is PacketType.CONNACK else _V3_SUBACK_NAMES
        return table[code]
    if packet_type in (PacketType.CONNACK, PacketType.SUBACK):
        return f"reserved return code 0x{code:02X}"
    return f"no return codes on {packet_type.name} in {version.label}"


class PropertyType(Enum):
    """The data types of 5.0 properties (§1.5, §2.2.2.2)."""

    BYTE = "Byte"
    TWO_BYTE_INTEGER = "Two Byte Integer"
    FOUR_BYTE_INTEGER = "Four Byte Integer"
    VARIABLE_BYTE_INTEGER = "Variable Byte Integer"
    UTF8_STRING = "UTF-8 Encoded String"
    BINARY = "Binary Data"
    UTF8_STRING_PAIR = "UTF-8 String Pair"


class PropertyId(IntEnum):
    PAYLOAD_FORMAT_INDICATOR = 0x01
    MESSAGE_EXPIRY_INTERVAL = 0x02
    CONTENT_TYPE = 0x03
    RESPONSE_TOPIC = 0x08
    CORRELATION_DATA = 0x09
    SUBSCRIPTION_IDENTIFIER = 0x0B
    SESSION_EXPIRY_INTERVAL = 0x11
    ASSIGNED_CLIENT_IDENTIFIER = 0x12
    SERVER_KEEP_ALIVE = 0x13
    AUTHENTICATION_METHOD = 0x15
    AUTHENTICATION_DATA = 0x16
    REQUEST_PROBLEM_INFORMATION = 0x17
    WILL_DELAY_INTERVAL = 0x18
    REQUEST_RESPONSE_INFORMATION = 0x19
    RESPONSE_INFORMATION = 0x1A
    SERVER_REFERENCE = 0x1C
    REASON_STRING = 0x1F
    RECEIVE_MAXIMUM = 0x21
    TOPIC_ALIAS_MAXIMUM = 0x22
    TOPIC_ALIAS = 0x23
    MAXIMUM_QOS = 0x24
    RETAIN_AVAILABLE = 0x25
    USER_PROPERTY = 0x26
    MAXIMUM_PACKET_SIZE = 0x27
    WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
    SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
    SHARED_SUBSCRIPTION_AVAILABLE = 0x2A


# Properties live on packets, and also in the CONNECT payload as Will Properties: WILL stands for
# that place in the `allowed_on` sets (it is not a real packet type, so it is a string).
WILL = "will"
PropertyPlace = PacketType | str


@dataclass(frozen=True)
class PropertyInfo:
    id: PropertyId
    name: str  # snake_case key used in `properties` dicts
    type: PropertyType
    allowed_on: frozenset[PropertyPlace]
    repeatable: frozenset[PropertyPlace]  # places where it may appear more than once
    max_value: int | None = None  # the largest valid value for integer properties with a narrower range
    min_value: int = 0


_P = PacketType
_ALL_WITH_PROPERTIES = frozenset(
    {_P.CONNECT, _P.CONNACK, _P.PUBLISH, _P.PUBACK, _P.PUBREC, _P.PUBREL, _P.PUBCOMP, _P.SUBSCRIBE, _P.SUBACK,
     _P.UNSUBSCRIBE, _P.UNSUBACK, _P.DISCONNECT, _P.AUTH, WILL}
)
_ACKS_WITH_REASON_STRING = frozenset(
    {_P.CONNACK, _P.PUBACK, _P.PUBREC, _P.PUBREL, _P.PUBCOMP, _P.SUBACK, _P.UNSUBACK, _P.DISCONNECT, _P.AUTH}
)
_PUBLISH_AND_WILL = frozenset({_P.PUBLISH, WILL})
_T = PropertyType


def _info(pid: PropertyId, type_: PropertyType, allowed_on: frozenset[PropertyPlace] | set[PropertyPlace],
          *, repeatable: frozenset[PropertyPlace] = frozenset(), max_value: int | None = None,
          min_value: int = 0) -> PropertyInfo:
    return PropertyInfo(pid, pid.name.lower(), type_, frozenset(allowed_on), repeatable, max_value, min_value)


# §2.2.2.2 table: identifier, data type and the packets each property may appear on. max_value and
# min_value encode the "It is a Protocol Error if ..." value rules of each property's own section.
PROPERTIES: dict[int, PropertyInfo] = {
    info.id: info
    for info in (
        _info(PropertyId.PAYLOAD_FORMAT_INDICATOR, _T.BYTE, _PUBLISH_AND_WILL, max_value=1),
        _info(PropertyId.MESSAGE_EXPIRY_INTERVAL, _T.FOUR_BYTE_INTEGER, _PUBLISH_AND_WILL),
        _info(PropertyId.CONTENT_TYPE, _T.UTF8_STRING, _PUBLISH_AND_WILL),
        _info(PropertyId.RESPONSE_TOPIC, _T.UTF8_STRING, _PUBLISH_AND_WILL),
        _info(PropertyId.CORRELATION_DATA, _T.BINARY, _PUBLISH_AND_WILL),
        _info(PropertyId.SUBSCRIPTION_IDENTIFIER, _T.VARIABLE_BYTE_INTEGER, {_P.PUBLISH, _P.SUBSCRIBE},
              repeatable=frozenset({_P.PUBLISH}), min_value=1, max_value=268_435_455),
        _info(PropertyId.SESSION_EXPIRY_INTERVAL, _T.FOUR_BYTE_INTEGER, {_P.CONNECT, _P.CONNACK, _P.DISCONNECT}),
        _info(PropertyId.ASSIGNED_CLIENT_IDENTIFIER, _T.UTF8_STRING, {_P.CONNACK}),
        _info(PropertyId.SERVER_KEEP_ALIVE, _T.TWO_BYTE_INTEGER, {_P.CONNACK}),
        _info(PropertyId.AUTHENTICATION_METHOD, _T.UTF8_STRING, {_P.CONNECT, _P.CONNACK, _P.AUTH}),
        _info(PropertyId.AUTHENTICATION_DATA, _T.BINARY, {_P.CONNECT, _P.CONNACK, _P.AUTH}),
        _info(PropertyId.REQUEST_PROBLEM_INFORMATION, _T.BYTE, {_P.CONNECT}, max_value=1),
        _info(PropertyId.WILL_DELAY_INTERVAL, _T.FOUR_BYTE_INTEGER, {WILL}),
        _info(PropertyId.REQUEST_RESPONSE_INFORMATION, _T.BYTE, {_P.CONNECT}, max_value=1),
        _info(PropertyId.RESPONSE_INFORMATION, _T.UTF8_STRING, {_P.CONNACK}),
        _info(PropertyId.SERVER_REFERENCE, _T.UTF8_STRING, {_P.CONNACK, _P.DISCONNECT}),
        _info(PropertyId.REASON_STRING, _T.UTF8_STRING, _ACKS_WITH_REASON_STRING),
        _info(PropertyId.RECEIVE_MAXIMUM, _T.TWO_BYTE_INTEGER, {_P.CONNECT, _P.CONNACK}, min_value=1),
        _info(PropertyId.TOPIC_ALIAS_MAXIMUM, _T.TWO_BYTE_INTEGER, {_P.CONNECT, _P.CONNACK}),
        _info(PropertyId.TOPIC_ALIAS, _T.TWO_BYTE_INTEGER, {_P.PUBLISH}, min_value=1),
        _info(PropertyId.MAXIMUM_QOS, _T.BYTE, {_P.CONNACK}, max_value=1),
        _info(PropertyId.RETAIN_AVAILABLE, _T.BYTE, {_P.CONNACK}, max_value=1),
        _info(PropertyId.USER_PROPERTY, _T.UTF8_STRING_PAIR, _ALL_WITH_PROPERTIES,
              repeatable=_ALL_WITH_PROPERTIES),
        _info(PropertyId.MAXIMUM_PACKET_SIZE, _T.FOUR_BYTE_INTEGER, {_P.CONNECT, _P.CONNACK}, min_value=1),
        _info(PropertyId.WILDCARD_SUBSCRIPTION_AVAILABLE, _T.BYTE, {_P.CONNACK}, max_value=1),
        _info(PropertyId.SUBSCRIPTION_IDENTIFIER_AVAILABLE, _T.BYTE, {_P.CONNACK}, max_value=1),
        _info(PropertyId.SHARED_SUBSCRIPTION_AVAILABLE, _T.BYTE, {_P.CONNACK}, max_value=1),
    )
}
PROPERTIES_BY_NAME: dict[str, PropertyInfo] = {info.name: info for info in PROPERTIES.values()}

# Properties whose value in a `properties` dict is a list because the property may repeat.
LIST_VALUED_PROPERTIES = frozenset({"user_property", "subscription_identifier"})

# Packet types whose 5.0 variable header has a property block at all.
PACKETS_WITH_PROPERTIES = frozenset(t for t in _ALL_WITH_PROPERTIES if isinstance(t, PacketType))

MAX_VARIABLE_BYTE_INTEGER = 268_435_455  # four bytes of seven bits (§1.5.5)
