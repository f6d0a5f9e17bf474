"""One dataclass per MQTT packet type, built from typed fields or straight from a YAML mapping.

Every field has a default, so `PACKET_CLASSES["publish"](**mapping)` works for any subset of
fields. Construction normalises the shapes YAML produces (a will or a subscription given as a
mapping, a user property given as a two-item list, a text payload) so that a packet built from a
scenario compares equal to the same packet decoded from the wire. It never rejects a value: a
deliberately wrong value is how a scenario sends a malformed packet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.wire.constants import PacketType


class RawField(bytes):
    """Bytes written verbatim in place of a field: no length prefix, no encoding."""

    def __repr__(self) -> str:
        return f"RawField({bytes(self)!r})"


# A 5.0 property block: a dict keyed by snake_case name; or, to send something a dict cannot say
# (a duplicate, a chosen order, an unknown id), a list of (name or id, value) pairs; or bytes
# written verbatim in place of the whole block, property length included.
Properties = dict[str, Any] | list[tuple[str | int, Any]] | bytes
Text = str | bytes  # bytes: sent as given after the length prefix (may be invalid UTF-8)


def _normalise_properties(properties: Any) -> Any:
    """Give list-valued properties the shape the decoder produces: tuples for pairs, lists of ints."""
    if not isinstance(properties, dict):
        if isinstance(properties, list):
            # List form: make each entry a tuple so it compares equal however it was written.
            return [tuple(entry) if isinstance(entry, list) else entry for entry in properties]
        return properties
    result = dict(properties)
    pairs = result.get("user_property")
    if isinstance(pairs, list | tuple):
        result["user_property"] = [tuple(pair) if isinstance(pair, list) else pair for pair in pairs]
    elif isinstance(pairs, dict):
        result["user_property"] = list(pairs.items())
    identifiers = result.get("subscription_identifier")
    if isinstance(identifiers, int):
        result["subscription_identifier"] = [identifiers]
    elif isinstance(identifiers, tuple):
        result["subscription_identifier"] = list(identifiers)
    return result


def _as_payload(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return value


class Packet:
    """Base of every packet class; TYPE says which MQTT packet type it is."""

    TYPE: ClassVar[PacketType]

    @property
    def type_name(self) -> str:
        return self.TYPE.name.lower()


@dataclass(kw_only=True)
class Will:
    topic: Text = ""
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    properties: Properties = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.payload = _as_payload(self.payload)
        self.properties = _normalise_properties(self.properties)


@dataclass(kw_only=True)
class Connect(Packet):
    TYPE: ClassVar[PacketType] = PacketType.CONNECT
    client_id: Text = ""
    clean_session: bool = True  # Clean Start in 5.0
    keep_alive: int = 60
    username: Text | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: Properties = field(default_factory=dict)
    protocol_name: Text | None = None  # None: "MQIsdp" for 3.1, "MQTT" otherwise
    protocol_level: int | None = None  # None: the version number (3, 4, 5)
    reserved_flag: bool = False  # connect-flags bit 0
    connect_flags: int | None = None  # overrides the whole connect-flags byte

    def __post_init__(self) -> None:
        if isinstance(self.will, dict):
            self.will = Will(**self.will)
        self.password = _as_payload(self.password)
        self.properties = _normalise_properties(self.properties)


@dataclass(kw_only=True)
class Connack(Packet):
    TYPE: ClassVar[PacketType] = PacketType.CONNACK
    session_present: bool = False
    reason_code: int = 0  # the 3.x return code as well
    properties: Properties = field(default_factory=dict)
    ack_flags: int | None = None  # overrides the whole acknowledge-flags byte

    def __post_init__(self) -> None:
        self.properties = _normalise_properties(self.properties)


@dataclass(kw_only=True)
class Publish(Packet):
    TYPE: ClassVar[PacketType] = PacketType.PUBLISH
    topic: Text = ""
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None  # written when qos > 0 (None as 0), or whenever it is not None
    properties: Properties = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.payload = _as_payload(self.payload)
        self.properties = _normalise_properties(self.properties)


@dataclass(kw_only=True)
class _PublishResponse(Packet):
    """PUBACK, PUBREC, PUBREL and PUBCOMP share one layout."""

    packet_id: int = 0
    reason_code: int = 0
    properties: Properties = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.properties = _normalise_properties(self.properties)


@dataclass(kw_only=True)
class Puback(_PublishResponse):
    TYPE: ClassVar[PacketType] = PacketType.PUBACK


@dataclass(kw_only=True)
class Pubrec(_PublishResponse):
    TYPE: ClassVar[PacketType] = PacketType.PUBREC


@dataclass(kw_only=True)
class Pubrel(_PublishResponse):
    TYPE: ClassVar[PacketType] = PacketType.PUBREL


@dataclass(kw_only=True)
class Pubcomp(_PublishResponse):
    TYPE: ClassVar[PacketType] = PacketType.PUBCOMP


@dataclass(kw_only=True)
class Subscription:
    topic_filter: Text = ""
    qos: int = 0
    no_local: bool = False  # 5.0 only
    retain_as_published: bool = False  # 5.0 only
    retain_handling: int = 0  # 5.0 only
    options: int | None = None  # overrides the whole subscription-options byte


def _as_subscription(item: Any) -> Any:
    if isinstance(item, dict):
        return Subscription(**item)
    if isinstance(item, str | bytes):
        return Subscription(topic_filter=item)
    return item


@dataclass(kw_only=True)
class Subscribe(Packet):
    TYPE: ClassVar[PacketType] = PacketType.SUBSCRIBE
    packet_id: int = 0
    subscriptions: list[Subscription] = field(default_factory=list)
    properties: Properties = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.subscriptions = [_as_subscription(item) for item in self.subscriptions]
        self.properties = _normalise_properties(self.properties)


@dataclass(kw_only=True)
class Suback(Packet):
    TYPE: ClassVar[PacketType] = PacketType.SUBACK
    packet_id: int = 0
    reason_codes: list[int] = field(default_factory=list)  # the 3.x return codes as well
    properties: Properties = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reason_codes = list(self.reason_codes)
        self.properties = _normalise_properties(self.properties)


@dataclass(kw_only=True)
class Unsubscribe(Packet):
    TYPE: ClassVar[PacketType] = PacketType.UNSUBSCRIBE
    packet_id: int = 0
    topic_filters: list[Text] = field(default_factory=list)
    properties: Properties = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.topic_filters = list(self.topic_filters)
        self.properties = _normalise_properties(self.properties)


@dataclass(kw_only=True)
class Unsuback(Packet):
    TYPE: ClassVar[PacketType] = PacketType.UNSUBACK
    packet_id: int = 0
    reason_codes: list[int] = field(default_factory=list)  # always empty for 3.x
    properties: Properties = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reason_codes = list(self.reason_codes)
        self.properties = _normalise_properties(self.properties)


@dataclass(kw_only=True)
class Pingreq(Packet):
    TYPE: ClassVar[PacketType] = PacketType.PINGREQ


@dataclass(kw_only=True)
class Pingresp(Packet):
    TYPE: ClassVar[PacketType] = PacketType.PINGRESP


@dataclass(kw_only=True)
class Disconnect(Packet):
    TYPE: ClassVar[PacketType] = PacketType.DISCONNECT
    reason_code: int = 0
    properties: Properties = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.properties = _normalise_properties(self.properties)


@dataclass(kw_only=True)
class Auth(Packet):
    TYPE: ClassVar[PacketType] = PacketType.AUTH
    reason_code: int = 0
    properties: Properties = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.properties = _normalise_properties(self.properties)


PACKET_CLASSES: dict[str, type[Packet]] = {
    cls.TYPE.name.lower(): cls
    for cls in (Connect, Connack, Publish, Puback, Pubrec, Pubrel, Pubcomp, Subscribe, Suback, Unsubscribe,
                Unsuback, Pingreq, Pingresp, Disconnect, Auth)
}
CLASS_BY_TYPE: dict[PacketType, type[Packet]] = {cls.TYPE: cls for cls in PACKET_CLASSES.values()}
