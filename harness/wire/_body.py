"""Parsing the variable header and payload of each packet type, and checking what the sender owed.

Each parser reads with a `Reader` (which raises `Broken` when a field runs past the packet) and
adds a finding to the reader's context for every rule the sender broke. The fixed header is
checked by the decoder before it gets here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.wire._properties import read_properties
from harness.wire._reader import Broken, Context, Reader
from harness.wire.constants import (
    V5_DISCONNECT_CLIENT_ONLY,
    V5_DISCONNECT_SERVER_ONLY,
    V5_REASON_CODES,
    WILL,
    PacketType,
    Version,
    reason_name,
    v3_return_codes,
)
from harness.wire.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
)
from harness.wire.topics import filter_problem

_P = PacketType

# The statement each 5.0 packet's "sender must use one of these reason codes" rule has.
_V5_REASON_RULES = {
    _P.CONNACK: "MQTT-3.2.2-8",
    _P.PUBACK: "MQTT-3.4.2-1",
    _P.PUBREC: "MQTT-3.5.2-1",
    _P.PUBREL: "MQTT-3.6.2-1",
    _P.PUBCOMP: "MQTT-3.7.2-1",
    _P.SUBACK: "MQTT-3.9.3-2",
    _P.UNSUBACK: "MQTT-3.11.3-2",
    _P.DISCONNECT: "MQTT-3.14.2-1",
    _P.AUTH: "MQTT-3.15.2-1",
}
_LEVEL_VERSIONS = {3: Version.V31, 4: Version.V311, 5: Version.V5}


def _check_v5_reason_code(ctx: Context, code: int) -> None:
    if code not in V5_REASON_CODES[ctx.packet_type]:
        ctx.add(
            _V5_REASON_RULES[ctx.packet_type],
            f"reason code 0x{code:02X} is not a {ctx.packet_type.name} reason code",
        )


def _check_packet_id(ctx: Context, packet_id: int) -> None:
    if packet_id == 0:
        rule = ctx.rule("MQTT-2.3.1-1", "MQTT-2.2.1-3" if ctx.sender == "client" else "MQTT-2.2.1-4")
        ctx.add(rule, "packet identifier 0 where a non-zero one is required")


def _check_filter(ctx: Context, topic_filter: str | bytes) -> None:
    # Invalid filters are not made fatal: the server may answer with a failure code instead of closing.
    if isinstance(topic_filter, str):
        problem = filter_problem(topic_filter, ctx.version)
        if problem is not None:
            rule, message = problem
            ctx.add(rule, message, fatal=False)


def _end(reader: Reader, what: str) -> None:
    if reader.remaining():
        raise Broken(
            f"{reader.remaining()} byte(s) left over after {what}",
            "§2.1.4" if reader.ctx.v5 else "§2.2.3",
        )


# CONNECT ---------------------------------------------------------------------------------------


def _connect_version(ctx: Context, name: str | bytes, level: int) -> Version:
    """The version to parse this CONNECT as, with findings for a wrong protocol name or level."""
    declared = _LEVEL_VERSIONS.get(level)
    version = declared or ctx.decoder_version or Version.V311
    ctx.version = version
    # The rule ids happen to be the same in 3.1.1 and 5.0.
    if declared is None:
        ctx.add("MQTT-3.1.2-2", f"unsupported protocol level {level}")
    elif ctx.decoder_version is not None and declared is not ctx.decoder_version:
        # Reported against the version the decoder was told to expect, but parsed as declared.
        ctx.version = ctx.decoder_version
        ctx.add("MQTT-3.1.2-2",
                f"protocol level {level} ({declared.label}) on a connection decoded as {ctx.decoder_version.label}")
        ctx.version = version
    if name != version.protocol_name:
        ctx.add("MQTT-3.1.2-1",
                f"protocol name {name!r} with level {level}; {version.label} uses {version.protocol_name!r}")
    elif declared is not None:
        ctx.learned_version = declared
    return version


def _connect(reader: Reader, flags: int) -> Packet:
    ctx = reader.ctx
    name = reader.text("protocol name")
    level = reader.u8("protocol level")
    version = _connect_version(ctx, name, level)
    connect_flags = reader.u8("connect flags")
    keep_alive = reader.u16("keep alive")
    properties = read_properties(reader, _P.CONNECT) if ctx.v5 else {}
    client_id = reader.text("client identifier")

    if connect_flags & 0x01 and not ctx.v31:
        ctx.add("MQTT-3.1.2-3", "the reserved connect flag (bit 0) is set")
    will_qos = connect_flags >> 3 & 0b11
    will_retain = bool(connect_flags & 0x20)
    will: Will | None = None
    if connect_flags & 0x04:
        will_properties = read_properties(reader, WILL) if ctx.v5 else {}
        will_topic = reader.text("will topic")
        will_payload = reader.binary("will payload")
        will = Will(topic=will_topic, payload=will_payload, qos=will_qos, retain=will_retain,
                    properties=will_properties)
        if will_qos == 3:
            ctx.add(ctx.rule("MQTT-3.1.2-14", "MQTT-3.1.2-12"), "will QoS 3", fatal=not ctx.v31)
    elif not ctx.v31:
        if will_qos:
            ctx.add(ctx.rule("MQTT-3.1.2-13", "MQTT-3.1.2-11"), f"will QoS {will_qos} with the will flag 0")
        if will_retain:
            ctx.add(ctx.rule("MQTT-3.1.2-15", "MQTT-3.1.2-13"), "will retain 1 with the will flag 0")

    username = _optional_field(reader, connect_flags & 0x80, "user name", ctx.rule("MQTT-3.1.2-19", "MQTT-3.1.2-17"))
    password = _optional_field(reader, connect_flags & 0x40, "password", ctx.rule("MQTT-3.1.2-21", "MQTT-3.1.2-19"))
    if connect_flags & 0x40 and not connect_flags & 0x80 and not ctx.v5:
        ctx.add("MQTT-3.1.2-22", "password flag set without the user name flag", fatal=not ctx.v31)
    _end(reader, "the CONNECT payload")

    packet = Connect(
        client_id=client_id,
        clean_session=bool(connect_flags & 0x02),
        keep_alive=keep_alive,
        username=username,
        password=password,
        will=will,
        properties=properties,
        protocol_name=None if name == version.protocol_name else name,
        protocol_level=None if level == int(version) else level,
        reserved_flag=bool(connect_flags & 0x01),
    )
    # Keep the raw byte only when the fields cannot say it (e.g. will QoS without a will, or a 3.1
    # user name flag with no user name), so a well-formed CONNECT round-trips with connect_flags None.
    expected = (int(packet.reserved_flag) | int(packet.clean_session) << 1
                | (0b100 | will_qos << 3 | int(will_retain) << 5 if will else 0)
                | (0x40 if password is not None else 0) | (0x80 if username is not None else 0))
    if expected != connect_flags:
        packet.connect_flags = connect_flags
    return packet


def _optional_field(reader: Reader, flag: int, what: str, rule: str) -> Any:
    if not flag:
        return None
    if reader.remaining() == 0:
        if reader.ctx.v31:
            return None  # 3.1: the remaining length wins over the flags, for compatibility with V3
        raise Broken(f"the {what} flag is set but the packet ends before the {what}", rule)
    return reader.binary(what) if what == "password" else reader.text(what)


# CONNACK ---------------------------------------------------------------------------------------


def _connack(reader: Reader, flags: int) -> Packet:
    ctx = reader.ctx
    ack_flags = reader.u8("acknowledge flags")
    code = reader.u8("reason code" if ctx.v5 else "return code")
    properties = read_properties(reader, _P.CONNACK) if ctx.v5 else {}
    _end(reader, "the CONNACK variable header")
    if ctx.v31:
        if ack_flags:
            ctx.add("§3.2", f"acknowledge flags 0x{ack_flags:02X}: 3.1 reserves this byte (no session present)",
                    fatal=False)
    elif ack_flags & 0xFE:
        ctx.add(ctx.rule("§3.2.2.1", "MQTT-3.2.2-1"), f"reserved acknowledge flags set: 0x{ack_flags:02X}")
    if ctx.v5:
        _check_v5_reason_code(ctx, code)
    elif code not in v3_return_codes(_P.CONNACK, ctx.version):
        ctx.add("§3.2.2.3", f"return code {code} is reserved", fatal=not ctx.v31)
    if ack_flags & 0x01 and code != 0 and not ctx.v31:
        ctx.add(ctx.rule("MQTT-3.2.2-4", "MQTT-3.2.2-6"), f"session present 1 with the non-zero code 0x{code:02X}",
                fatal=False)
    return Connack(session_present=bool(ack_flags & 0x01), reason_code=code, properties=properties,
                   ack_flags=None if ack_flags in (0, 1) else ack_flags)


# PUBLISH ---------------------------------------------------------------------------------------


def _publish(reader: Reader, flags: int) -> Packet:
    ctx = reader.ctx
    qos = flags >> 1 & 0b11
    topic = reader.text("topic name")
    packet_id = reader.u16("packet identifier") if qos else None
    properties = read_properties(reader, _P.PUBLISH) if ctx.v5 else {}
    payload = reader.rest()

    if qos == 3:
        ctx.add("MQTT-3.3.1-4", "QoS 3 (both QoS bits set)")
    if flags & 0x08 and qos == 0:
        # Not made fatal: the spec forbids sending it but does not make it a malformed packet.
        ctx.add("MQTT-3.3.1-2", "DUP 1 on a QoS 0 PUBLISH", fatal=False)
    if packet_id == 0:
        _check_packet_id(ctx, packet_id)
    wildcards = ("+", "#") if isinstance(topic, str) else (b"+", b"#")
    if wildcards[0] in topic or wildcards[1] in topic:  # type: ignore[operator]
        ctx.add(ctx.rule("MQTT-3.3.2-2", "MQTT-3.3.2-2"), f"wildcard in the topic name {topic!r}")
    if not topic and not (ctx.v5 and "topic_alias" in properties):
        ctx.add("MQTT-4.7.3-1", "empty topic name" + (" without a topic alias" if ctx.v5 else ""))
    if ctx.v5:
        if "subscription_identifier" in properties and ctx.sender == "client":
            ctx.add("MQTT-3.3.4-6", "a client PUBLISH carries a subscription identifier")
        response_topic = properties.get("response_topic")
        if isinstance(response_topic, str) and ("+" in response_topic or "#" in response_topic):
            ctx.add("MQTT-3.3.2-14", f"wildcard in the response topic {response_topic!r}")
    return Publish(topic=topic, payload=payload, qos=qos, retain=bool(flags & 0x01), dup=bool(flags & 0x08),
                   packet_id=packet_id, properties=properties)


def _reason_tail(reader: Reader) -> tuple[int, dict[str, Any]]:
    """The optional 5.0 reason code and properties: absent means success and no properties."""
    if not reader.ctx.v5 or reader.remaining() == 0:
        return 0, {}
    code = reader.u8("reason code")
    if reader.remaining() == 0 and reader.ctx.packet_type is not _P.AUTH:
        properties: dict[str, Any] = {}
    else:
        properties = read_properties(reader, reader.ctx.packet_type)
    _check_v5_reason_code(reader.ctx, code)
    return code, properties


def _publish_response(cls: type[Puback | Pubrec | Pubrel | Pubcomp]) -> Callable[[Reader, int], Packet]:
    def parse(reader: Reader, flags: int) -> Packet:
        packet_id = reader.u16("packet identifier")
        code, properties = _reason_tail(reader)
        _end(reader, f"the {cls.TYPE.name} variable header")
        return cls(packet_id=packet_id, reason_code=code, properties=properties)

    return parse


# SUBSCRIBE / SUBACK / UNSUBSCRIBE / UNSUBACK ---------------------------------------------------


def _subscription(ctx: Context, topic_filter: str | bytes, options: int) -> Subscription:
    qos = options & 0b11
    if ctx.v5:
        reserved = options & 0xC0
        retain_handling = options >> 4 & 0b11
        no_local = bool(options & 0x04)
        if reserved:
            ctx.add("MQTT-3.8.3-5", f"reserved subscription option bits set: 0x{options:02X} for {topic_filter!r}")
        if qos == 3:
            ctx.add("§3.8.3.1", f"maximum QoS 3 for {topic_filter!r}")
        if retain_handling == 3:
            ctx.add("§3.8.3.1", f"retain handling 3 for {topic_filter!r}")
        if no_local and isinstance(topic_filter, str) and topic_filter.startswith("$share/"):
            ctx.add("MQTT-3.8.3-4", f"no local on the shared subscription {topic_filter!r}")
        return Subscription(topic_filter=topic_filter, qos=qos, no_local=no_local,
                            retain_as_published=bool(options & 0x08), retain_handling=retain_handling,
                            options=options if reserved else None)
    if ctx.v31:
        # 3.1 only says a QoS with both bits set "should" be treated as invalid; other bits are unchecked.
        if qos == 3:
            ctx.add("MQTT-3.8.3-4", f"requested QoS 3 for {topic_filter!r}", fatal=False)
    elif options & 0xFC or qos == 3:
        ctx.add("MQTT-3.8.3-4", f"subscription options 0x{options:02X} for {topic_filter!r}: reserved bits or QoS 3")
    return Subscription(topic_filter=topic_filter, qos=qos, options=options if options & 0xFC else None)


def _subscribe(reader: Reader, flags: int) -> Packet:
    ctx = reader.ctx
    packet_id = reader.u16("packet identifier")
    properties = read_properties(reader, _P.SUBSCRIBE) if ctx.v5 else {}
    subscriptions = []
    while reader.remaining():
        topic_filter = reader.text("topic filter")
        options = reader.u8("subscription options")
        _check_filter(ctx, topic_filter)
        subscriptions.append(_subscription(ctx, topic_filter, options))
    _check_packet_id(ctx, packet_id)
    if not subscriptions and not ctx.v31:
        ctx.add(ctx.rule("MQTT-3.8.3-3", "MQTT-3.8.3-2"), "SUBSCRIBE with no topic filter")
    return Subscribe(packet_id=packet_id, subscriptions=subscriptions, properties=properties)


def _suback(reader: Reader, flags: int) -> Packet:
    ctx = reader.ctx
    packet_id = reader.u16("packet identifier")
    properties = read_properties(reader, _P.SUBACK) if ctx.v5 else {}
    codes = list(reader.rest())
    if ctx.v5:
        for code in codes:
            _check_v5_reason_code(ctx, code)
    else:
        allowed = v3_return_codes(_P.SUBACK, ctx.version)
        for code in codes:
            if code not in allowed:
                ctx.add("MQTT-3.9.3-2", f"return code 0x{code:02X} is not allowed in a {ctx.version.label} SUBACK",
                        fatal=not ctx.v31)
    return Suback(packet_id=packet_id, reason_codes=codes, properties=properties)


def _unsubscribe(reader: Reader, flags: int) -> Packet:
    ctx = reader.ctx
    packet_id = reader.u16("packet identifier")
    properties = read_properties(reader, _P.UNSUBSCRIBE) if ctx.v5 else {}
    topic_filters = []
    while reader.remaining():
        topic_filter = reader.text("topic filter")
        _check_filter(ctx, topic_filter)
        topic_filters.append(topic_filter)
    _check_packet_id(ctx, packet_id)
    if not topic_filters and not ctx.v31:
        ctx.add("MQTT-3.10.3-2", "UNSUBSCRIBE with no topic filter")
    return Unsubscribe(packet_id=packet_id, topic_filters=topic_filters, properties=properties)


def _unsuback(reader: Reader, flags: int) -> Packet:
    ctx = reader.ctx
    packet_id = reader.u16("packet identifier")
    if not ctx.v5:
        _end(reader, "the UNSUBACK packet identifier")
        return Unsuback(packet_id=packet_id)
    properties = read_properties(reader, _P.UNSUBACK)
    codes = list(reader.rest())
    for code in codes:
        _check_v5_reason_code(ctx, code)
    return Unsuback(packet_id=packet_id, reason_codes=codes, properties=properties)


# PINGREQ / PINGRESP / DISCONNECT / AUTH --------------------------------------------------------


def _empty(cls: type[Pingreq | Pingresp]) -> Callable[[Reader, int], Packet]:
    def parse(reader: Reader, flags: int) -> Packet:
        _end(reader, f"the {cls.TYPE.name} fixed header")
        return cls()

    return parse


def _disconnect(reader: Reader, flags: int) -> Packet:
    ctx = reader.ctx
    code, properties = _reason_tail(reader)
    _end(reader, "the DISCONNECT variable header")
    if ctx.v5:
        one_sided = V5_DISCONNECT_SERVER_ONLY if ctx.sender == "client" else V5_DISCONNECT_CLIENT_ONLY
        if code in one_sided:
            other = "server" if ctx.sender == "client" else "client"
            ctx.add("MQTT-3.14.2-1",
                    f"reason code 0x{code:02X} ({reason_name(_P.DISCONNECT, code, Version.V5)}) is for the {other} to send",
                    fatal=False)
        if ctx.sender == "server" and "session_expiry_interval" in properties:
            ctx.add("MQTT-3.14.2-2", "the server's DISCONNECT carries a session expiry interval")
    return Disconnect(reason_code=code, properties=properties)


def _auth(reader: Reader, flags: int) -> Packet:
    code, properties = _reason_tail(reader)
    _end(reader, "the AUTH variable header")
    return Auth(reason_code=code, properties=properties)


PARSERS: dict[PacketType, Callable[[Reader, int], Packet]] = {
    _P.CONNECT: _connect,
    _P.CONNACK: _connack,
    _P.PUBLISH: _publish,
    _P.PUBACK: _publish_response(Puback),
    _P.PUBREC: _publish_response(Pubrec),
    _P.PUBREL: _publish_response(Pubrel),
    _P.PUBCOMP: _publish_response(Pubcomp),
    _P.SUBSCRIBE: _subscribe,
    _P.SUBACK: _suback,
    _P.UNSUBSCRIBE: _unsubscribe,
    _P.UNSUBACK: _unsuback,
    _P.PINGREQ: _empty(Pingreq),
    _P.PINGRESP: _empty(Pingresp),
    _P.DISCONNECT: _disconnect,
    _P.AUTH: _auth,
}
