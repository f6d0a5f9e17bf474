"""Fuzz cases from the codec: a valid packet, one mutation, and the expected outcome from the strict decoder.

A case is the bytes a client sends after a valid CONNECT (or instead of it). Its expectation is not
guessed: the bytes go through the harness's own server-role decoder, and a Malformed stream or a
fatal finding (a malformed packet or a protocol error) means the broker must close the connection
(MQTT 5.0: possibly after a DISCONNECT), citing that finding's statement; a clean decode means the
connection must keep working. A violation the specification leaves to the server (a non-fatal finding:
an invalid filter it may refuse in a SUBACK, invalid UTF-8 under 3.1, DUP on QoS 0) accepts either a
close or a working connection: such a case can still find a dead or hung broker. Bytes the decoder cannot settle (an incomplete packet, a DISCONNECT,
AUTH) are not cases: the generator draws again.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from harness.wire import (
    Connect,
    Decoded,
    Malformed,
    Pingreq,
    Puback,
    Publish,
    Subscribe,
    Unsubscribe,
    Version,
    encode,
)
from harness.wire.constants import PacketType
from harness.wire.decode import Decoder

Expect = Literal["close", "works", "either"]


@dataclass(frozen=True)
class Case:
    number: int
    version: Version
    base: str  # the valid packet mutated, e.g. "PUBLISH qos=1"
    mutation: str  # what was done to it, e.g. "bit 3 of byte 0 flipped"
    data: bytes
    expect: Expect
    rules: tuple[str, ...]  # the decoder's findings (statement ids) behind a "close"
    why: str  # the decoder's words
    before_connect: bool = False  # sent instead of CONNECT
    split: int | None = None  # sent in two writes, split after this many bytes
    retained: tuple[str, ...] = ()  # topics a broker may now hold a retained message on (the run clears them)

    @property
    def title(self) -> str:
        """"PUBLISH qos=1 with bit 3 of byte 0 flipped", "PINGREQ sent before CONNECT"."""
        return f"{self.base} {self.mutation}" if self.before_connect else f"{self.base} with {self.mutation}"


def _text(rng: random.Random, low: int = 1, high: int = 12) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rng.randint(low, high)))


def _base_packet(rng: random.Random, version: Version, topic: str) -> tuple[str, bytes]:
    """A valid client packet of a random kind, encoded."""
    kind = rng.choice(["publish0", "publish1", "publish2", "subscribe", "unsubscribe", "pingreq", "puback"])
    v5 = version is Version.V5
    name = f"{topic}/{_text(rng)}"
    if kind.startswith("publish"):
        qos = int(kind[-1])
        props = {"message_expiry_interval": rng.randint(1, 3600)} if v5 and rng.random() < 0.3 else {}
        packet = Publish(topic=name, payload=_text(rng, 0, 40).encode(), qos=qos, retain=False,
                         packet_id=rng.randint(1, 65535) if qos else None, properties=props)
        return f"PUBLISH qos={qos}", encode(packet, version)
    if kind == "subscribe":
        packet = Subscribe(packet_id=rng.randint(1, 65535), subscriptions=[{"topic_filter": name, "qos": rng.randint(0, 2)}])
        return "SUBSCRIBE", encode(packet, version)
    if kind == "unsubscribe":
        return "UNSUBSCRIBE", encode(Unsubscribe(packet_id=rng.randint(1, 65535), topic_filters=[name]), version)
    if kind == "puback":
        return "PUBACK", encode(Puback(packet_id=rng.randint(1, 65535)), version)
    return "PINGREQ", encode(Pingreq(), version)


def _body_start(data: bytes) -> int:
    index = 1
    while data[index] & 0x80:
        index += 1
    return index + 1


def _flip_header_bit(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    bit = rng.randrange(8)
    return f"bit {bit} of byte 0 flipped", bytes([data[0] ^ (1 << bit)]) + data[1:]


def _flip_body_bit(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    start = _body_start(data)
    if start >= len(data):
        return _flip_header_bit(rng, data)
    index, bit = rng.randrange(start, len(data)), rng.randrange(8)
    out = bytearray(data)
    out[index] ^= 1 << bit
    return f"bit {bit} of byte {index} flipped", bytes(out)


def _odd_byte(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    start = _body_start(data)
    if start >= len(data):
        return _flip_header_bit(rng, data)
    index = rng.randrange(start, len(data))
    value = rng.choice([0x00, 0xFF, 0xC0, 0xED, 0x80, 0x2B, 0x23])  # U+0000, invalid UTF-8, a surrogate lead, + and #
    out = bytearray(data)
    out[index] = value
    return f"byte {index} set to {value:02x}", bytes(out)


def _length_off_by_one(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    start = _body_start(data)
    remaining = len(data) - start
    if remaining == 0 or start != 2:
        return _flip_header_bit(rng, data)
    delta = rng.choice([-1, 1])
    extra = encode(Pingreq(), Version.V311) if delta > 0 else b""  # a longer length swallows the next packet's first byte
    return f"remaining length {remaining} -> {remaining + delta}", bytes([data[0], remaining + delta]) + data[2:] + extra


def _overlong_length(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    start = _body_start(data)
    remaining = len(data) - start
    if start != 2 or remaining > 127:
        return _flip_header_bit(rng, data)
    # The same value in two bytes: a continuation bit and a zero byte (not the minimum encoding).
    return f"remaining length {remaining} in two bytes", bytes([data[0], remaining | 0x80, 0x00]) + data[2:]


def _truncated(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    start = _body_start(data)
    if start != 2 or len(data) - start < 2:
        return _flip_header_bit(rng, data)
    cut = rng.randrange(1, len(data) - start)
    body = data[start:start + cut]
    return f"body cut to {cut} bytes (length fixed)", bytes([data[0], len(body)]) + body


MUTATIONS: list[Callable[[random.Random, bytes], tuple[str, bytes]]] = [
    _flip_header_bit, _flip_body_bit, _odd_byte, _length_off_by_one, _overlong_length, _truncated,
]


def oracle(version: Version, data: bytes, before_connect: bool = False) -> tuple[Expect, tuple[str, ...], str] | None:
    """What the broker must do with `data` (sent after a valid CONNECT unless `before_connect`), or None
    when the decoder cannot settle it."""
    return _judged(version, _decoded(version, data, before_connect), data, before_connect)


def _decoded(version: Version, data: bytes, before_connect: bool) -> list[Decoded | Malformed]:
    decoder = Decoder(version, role="server")
    if not before_connect:
        decoder.feed(encode(Connect(client_id="fuzz"), version))
    return decoder.feed(data)


def retained_topics(events: list[Decoded | Malformed]) -> tuple[str, ...]:
    """The topics of the decoded PUBLISHes that set a retained message (a mutated flag byte does), whichever
    way the case is judged: a lenient broker may keep one even where it must close. Only names a valid
    PUBLISH can reach again, so the run can clear them: the decoder gives a topic as str only when it is
    well-formed UTF-8 (so no surrogates), and U+0000 or a wildcard would make the clearing PUBLISH invalid."""
    return tuple(dict.fromkeys(
        e.packet.topic for e in events
        if isinstance(e, Decoded) and isinstance(e.packet, Publish) and e.packet.retain and e.packet.payload
        and isinstance(e.packet.topic, str) and e.packet.topic and not set(e.packet.topic) & {"+", "#", "\0"}))


def _judged(version: Version, events: list[Decoded | Malformed], data: bytes,
            before_connect: bool) -> tuple[Expect, tuple[str, ...], str] | None:
    consumed = sum(len(e.raw) for e in events if isinstance(e, Decoded))
    lenient: list[tuple[str, str]] = []  # non-fatal findings: the server may close or carry on
    for event in events:
        if isinstance(event, Malformed):
            return "close", (event.finding.rule,), event.finding.message
        fatal = [f for f in event.findings if f.fatal]
        if fatal:
            return "close", tuple(f.rule for f in fatal), "; ".join(f.message for f in fatal)
        lenient += [(f.rule, f.message) for f in event.findings]
        kind = event.packet.TYPE
        if before_connect and kind is not PacketType.CONNECT:
            return "close", ("MQTT-3.1.0-1",), f"{kind.name} before CONNECT"
        if kind is PacketType.CONNECT:
            if before_connect:
                return None
            return "close", ("MQTT-3.1.0-2",), "a second CONNECT"
        if kind in (PacketType.DISCONNECT, PacketType.AUTH):
            return None  # a legitimate end (or an exchange of its own): not a fuzz case
    if consumed != len(data) or not events:
        return None  # an incomplete packet: the broker would rightly wait for the rest
    if lenient:
        return "either", tuple(r for r, _ in lenient), "the server may close or carry on: " + "; ".join(m for _, m in lenient)
    return "works", (), "well-formed: " + ", ".join(e.packet.TYPE.name for e in events if isinstance(e, Decoded))


def generate(seed: int, version: Version, topic: str = "fuzz") -> Iterator[Case]:
    """Cases for ever, the same for the same seed and version."""
    rng = random.Random(f"{seed}/{version.label}")
    number = 0
    while True:
        base, data = _base_packet(rng, version, topic)
        roll = rng.random()
        if roll < 0.05:  # well-formed, split at a byte boundary
            split = rng.randrange(1, len(data))
            mutation, mutated, before, split_at = f"split after byte {split}", data, False, split
        elif roll < 0.08:  # out of state: before CONNECT
            mutation, mutated, before, split_at = "sent before CONNECT", data, True, None
        else:
            mutation, mutated = rng.choice(MUTATIONS)(rng, data)
            before, split_at = False, None
        events = _decoded(version, mutated, before)
        verdict = _judged(version, events, mutated, before)
        if verdict is None:
            continue
        number += 1
        yield Case(number, version, base, mutation, mutated, verdict[0], verdict[1], verdict[2], before, split_at,
                   retained_topics(events))
